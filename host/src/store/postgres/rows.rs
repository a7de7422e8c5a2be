//! Between rows and records: the column lists each query selects, reading a
//! row back into an [`Event`] or a [`Delivery`], and JSON documents in and
//! out. A value that does not read back is `StoreError::Corrupt`, naming
//! the table and id.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::query_builder::Separated;
use sqlx::{Postgres, Row};

use super::super::{Result, StoreError};
use crate::model::{Delivery, DeliveryStatus, Event};
use crate::outcome::Outcome;

/// The columns [`event`] reads, in a query over `events`.
pub const EVENT_COLUMNS: &str =
    "workspace, id, event, resource, resource_id, payload, created_by, created_at, delivery_ids";

/// The columns [`delivery`] reads, in a query over `deliveries`.
pub const DELIVERY_COLUMNS: &str = "id, workspace, event_id, rule, connection, connector, action, \
     fields::text AS fields, status, attempt_count, due_at, lease, connector_version, last_error, \
     last_outcome, interruptions, created_at, updated_at";

/// The columns [`bind_delivery`] writes, in an insert into `deliveries`.
pub const DELIVERY_INSERT_COLUMNS: &str = "id, workspace, event_id, rule, connection, connector, action, fields, \
     status, attempt_count, due_at, lease, connector_version, last_error, last_outcome, interruptions, created_at, \
     updated_at";

/// The final statuses as an SQL list, for `status IN (…)`; the tests check
/// it against [`DeliveryStatus::is_final`].
pub const FINAL_STATUSES: &str = "('completed', 'failed', 'canceled')";

/// A record as the JSON text bound to a `json` parameter (`$n::json`).
/// An event's values in [`EVENT_COLUMNS`] order, for a multi-row insert.
/// Free text never holds NUL (see [`text`]).
pub fn bind_event<'args>(row: &mut Separated<'_, 'args, Postgres, &'static str>, e: &'args Event) {
    row.push_bind(&e.workspace)
        .push_bind(&e.id)
        .push_bind(text(&e.event))
        .push_bind(text(&e.resource))
        .push_bind(e.resource_id.as_deref().map(text))
        .push_bind(text(&e.payload))
        .push_bind(&e.created_by)
        .push_bind(e.created_at)
        .push_bind(e.delivery_ids.as_slice());
}

/// A delivery's values in [`DELIVERY_COLUMNS`] order, for a multi-row insert.
pub fn bind_delivery<'args>(row: &mut Separated<'_, 'args, Postgres, &'static str>, d: &'args Delivery) {
    row.push_bind(&d.id)
        .push_bind(&d.workspace)
        .push_bind(&d.event_id)
        .push_bind(&d.rule)
        .push_bind(&d.connection)
        .push_bind(&d.connector)
        .push_bind(&d.action)
        .push_bind(d.fields.to_string())
        .push_unseparated("::json")
        .push_bind(d.status.as_str())
        .push_bind(int(d.attempt_count))
        .push_bind(d.due_at)
        .push_bind(d.lease.as_deref())
        .push_bind(d.connector_version.as_deref().map(text))
        .push_bind(d.last_error.as_deref().map(text))
        .push_bind(d.last_outcome.map(|o| o.as_str()))
        .push_bind(int(d.interruptions))
        .push_bind(d.created_at)
        .push_bind(d.updated_at);
}

pub fn to_json<T: Serialize>(record: &T) -> String {
    // The records are plain data (strings, numbers, maps with string keys):
    // serialising them cannot fail.
    serde_json::to_string(record).expect("records serialise")
}

/// Free text from outside (an event's name, an error message) as a `text`
/// value: PostgreSQL's `text` cannot hold NUL, so a NUL becomes U+FFFD
/// rather than failing the write (and, for an accept, its whole group).
pub fn text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') { s.replace('\0', "\u{FFFD}").into() } else { s.into() }
}

/// A record from its JSON text; `table` and `id` name it when it is corrupt.
pub fn from_json<T: DeserializeOwned>(table: &str, id: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt { key: format!("{table}/{id}"), source })
}

/// A unit enum (a status, an outcome) from its name as serde writes it.
fn from_name<T: DeserializeOwned>(table: &str, id: &str, name: String) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name))
        .map_err(|source| StoreError::Corrupt { key: format!("{table}/{id}"), source })
}

/// Counts are `integer` columns; none comes near `i32::MAX`.
pub fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

pub fn event(row: &PgRow) -> Result<Event> {
    Ok(Event {
        workspace: row.try_get("workspace")?,
        id: row.try_get("id")?,
        event: row.try_get("event")?,
        resource: row.try_get("resource")?,
        resource_id: row.try_get("resource_id")?,
        payload: row.try_get("payload")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        delivery_ids: row.try_get("delivery_ids")?,
    })
}

pub fn delivery(row: &PgRow) -> Result<Delivery> {
    let id: String = row.try_get("id")?;
    let fields: String = row.try_get("fields")?;
    let status: DeliveryStatus = from_name("deliveries", &id, row.try_get("status")?)?;
    let last_outcome: Option<String> = row.try_get("last_outcome")?;
    let last_outcome: Option<Outcome> = last_outcome.map(|o| from_name("deliveries", &id, o)).transpose()?;
    Ok(Delivery {
        workspace: row.try_get("workspace")?,
        event_id: row.try_get("event_id")?,
        rule: row.try_get("rule")?,
        connection: row.try_get("connection")?,
        connector: row.try_get("connector")?,
        action: row.try_get("action")?,
        fields: from_json("deliveries", &id, &fields)?,
        status,
        attempt_count: count(row.try_get("attempt_count")?),
        due_at: row.try_get("due_at")?,
        lease: row.try_get("lease")?,
        connector_version: row.try_get("connector_version")?,
        last_error: row.try_get("last_error")?,
        last_outcome,
        interruptions: count(row.try_get("interruptions")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_list_is_the_models() {
        use DeliveryStatus::*;
        for status in [Pending, Processing, Retrying, Waiting, Completed, Failed, Canceled] {
            let listed = FINAL_STATUSES.contains(&format!("'{}'", status.as_str()));
            assert_eq!(listed, status.is_final(), "{status:?}");
        }
    }

    #[test]
    fn text_never_holds_nul() {
        assert_eq!(text("page.completed"), "page.completed");
        assert!(matches!(text("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
    }

    #[test]
    fn names_round_trip() {
        let status: DeliveryStatus = from_name("t", "i", "retrying".into()).unwrap();
        assert_eq!(status, DeliveryStatus::Retrying);
        assert!(matches!(from_name::<DeliveryStatus>("t", "i", "lost".into()), Err(StoreError::Corrupt { .. })));
    }
}
