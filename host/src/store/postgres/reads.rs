//! Reading events, deliveries and attempts back from PostgreSQL: single
//! records, and pages in id order filtered as the API asks. An event's
//! status is derived from its deliveries (see the migration): processing
//! while one is active, else failed if one failed, else completed.

use sqlx::{PgPool, Postgres, QueryBuilder};

use super::super::{DeliveryQuery, EventQuery, Page, Result};
use super::catalog::limit;
use super::rows::{self, DELIVERY_COLUMNS, EVENT_COLUMNS, FINAL_STATUSES, from_json, text};
use crate::attempt::AttemptRecord;
use crate::model::{Delivery, Event, EventStatus};

pub async fn event(pool: &PgPool, workspace: &str, id: &str) -> Result<Option<Event>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE workspace = $1 AND id = $2");
    let row = sqlx::query(&sql).bind(workspace).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(rows::event).transpose()
}

/// Whether event `e` has a delivery in one of `statuses` (an SQL condition).
fn has_delivery(statuses: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM deliveries d WHERE d.workspace = e.workspace AND d.event_id = e.id AND d.status {statuses})"
    )
}

pub async fn events(pool: &PgPool, workspace: &str, q: &EventQuery, page: &Page) -> Result<Vec<Event>> {
    let mut select =
        QueryBuilder::<Postgres>::new(format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.workspace = "));
    select.push_bind(workspace);
    if let Some(cursor) = &page.cursor {
        select.push(" AND e.id > ").push_bind(cursor);
    }
    // Matched as stored (see `rows::text`).
    if let Some(name) = &q.event {
        select.push(" AND e.event = ").push_bind(text(name));
    }
    if let Some(resource) = &q.resource {
        select.push(" AND e.resource = ").push_bind(text(resource));
    }
    if let Some(resource_id) = &q.resource_id {
        select.push(" AND e.resource_id = ").push_bind(text(resource_id));
    }
    let active = has_delivery(&format!("NOT IN {FINAL_STATUSES}"));
    let failed = has_delivery("= 'failed'");
    match q.status {
        None => {}
        Some(EventStatus::Processing) => {
            select.push(format!(" AND {active}"));
        }
        Some(EventStatus::Failed) => {
            select.push(format!(" AND NOT {active} AND {failed}"));
        }
        Some(EventStatus::Completed) => {
            select.push(format!(" AND NOT {active} AND NOT {failed}"));
        }
    }
    select.push(" ORDER BY e.id LIMIT ").push_bind(limit(page));
    let found = select.build().fetch_all(pool).await?;
    found.iter().map(rows::event).collect()
}

pub async fn delivery(pool: &PgPool, id: &str) -> Result<Option<Delivery>> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(rows::delivery).transpose()
}

/// The event's deliveries in the event's order.
pub async fn deliveries_of(pool: &PgPool, event: &Event) -> Result<Vec<Delivery>> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ANY($1)");
    let found = sqlx::query(&sql).bind(&event.delivery_ids).fetch_all(pool).await?;
    let mut by_id = std::collections::HashMap::new();
    for row in &found {
        let d = rows::delivery(row)?;
        by_id.insert(d.id.clone(), d);
    }
    Ok(event.delivery_ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

pub async fn deliveries(pool: &PgPool, workspace: &str, q: &DeliveryQuery, page: &Page) -> Result<Vec<Delivery>> {
    let mut select =
        QueryBuilder::<Postgres>::new(format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE workspace = "));
    select.push_bind(workspace);
    if let Some(cursor) = &page.cursor {
        select.push(" AND id > ").push_bind(cursor);
    }
    if let Some(status) = q.status {
        select.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(connection) = &q.connection {
        select.push(" AND connection = ").push_bind(connection);
    }
    if let Some(rule) = &q.rule {
        select.push(" AND rule = ").push_bind(rule);
    }
    if let Some(since) = q.since {
        select.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(until) = q.until {
        select.push(" AND created_at < ").push_bind(until);
    }
    select.push(" ORDER BY id LIMIT ").push_bind(limit(page));
    let found = select.build().fetch_all(pool).await?;
    found.iter().map(rows::delivery).collect()
}

pub async fn attempts(pool: &PgPool, delivery: &str) -> Result<Vec<AttemptRecord>> {
    let found: Vec<(i32, String)> =
        sqlx::query_as("SELECT n, record::text FROM attempts WHERE delivery_id = $1 ORDER BY n")
            .bind(delivery)
            .fetch_all(pool)
            .await?;
    found.iter().map(|(n, record)| from_json("attempts", &format!("{delivery}/{n}"), record)).collect()
}
