//! Writing records as they are, for `store copy` (see `store::copy`):
//! events with their deliveries in whatever state they are in, attempt
//! records and idempotency keys with their times — which `accept_all`,
//! made for new events, cannot write. Each call is one transaction of
//! multi-row statements, and every statement upserts, so a copy run again
//! over the same database replaces what it wrote before instead of failing.

use sqlx::{Postgres, QueryBuilder, Transaction};

use super::super::Result;
use super::super::copy::IdempotencyKey;
use super::PgStore;
use super::queue::record_attempts;
use super::rows::{DELIVERY_INSERT_COLUMNS, EVENT_COLUMNS, bind_delivery, bind_event};
use crate::attempt::AttemptRecord;
use crate::model::{Delivery, Event};

/// PostgreSQL takes at most this many parameters in one statement.
const MAX_BINDS: usize = u16::MAX as usize;
const EVENT_BINDS: usize = 9;
const DELIVERY_BINDS: usize = 18;

/// `col = EXCLUDED.col` for each of `columns` but the key ones.
fn replace_all(columns: &str, key: &[&str]) -> String {
    let set: Vec<String> =
        columns.split(',').map(str::trim).filter(|c| !key.contains(c)).map(|c| format!("{c} = EXCLUDED.{c}")).collect();
    set.join(", ")
}

impl PgStore {
    /// What the database holds already: its workspaces and events, counted.
    pub async fn occupancy(&self) -> Result<(i64, i64)> {
        self.call(async {
            let counts = sqlx::query_as("SELECT (SELECT count(*) FROM workspaces), (SELECT count(*) FROM events)")
                .fetch_one(&self.pool)
                .await?;
            Ok(counts)
        })
        .await
    }

    /// Write `events`, their `deliveries` as they are (status, due time,
    /// lease, counts, last outcome) and the deliveries' `attempts` (by
    /// delivery id), replacing any record with the same key, in one
    /// transaction. A delivery's event must be in `events` or stored.
    pub async fn import_events(
        &self,
        events: &[Event],
        deliveries: &[Delivery],
        attempts: &[(String, AttemptRecord)],
    ) -> Result<()> {
        self.call(async {
            let mut tx = self.pool.begin().await?;
            upsert_events(&mut tx, events).await?;
            upsert_deliveries(&mut tx, deliveries).await?;
            let attempts: Vec<(&str, &AttemptRecord)> = attempts.iter().map(|(d, a)| (d.as_str(), a)).collect();
            record_attempts(&mut tx, &attempts).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Write idempotency keys with their events and times, replacing any
    /// stored for the same (workspace, key).
    pub async fn import_idempotency(&self, keys: &[IdempotencyKey]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let workspaces: Vec<&str> = keys.iter().map(|k| k.workspace.as_str()).collect();
        let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        let events: Vec<&str> = keys.iter().map(|k| k.event_id.as_str()).collect();
        let ats: Vec<i64> = keys.iter().map(|k| k.at).collect();
        self.call(async {
            sqlx::query(
                "INSERT INTO idempotency (workspace, key, event_id, at) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) \
                 ON CONFLICT (workspace, key) DO UPDATE SET event_id = EXCLUDED.event_id, at = EXCLUDED.at",
            )
            .bind(&workspaces)
            .bind(&names)
            .bind(&events)
            .bind(&ats)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }
}

async fn upsert_events(tx: &mut Transaction<'_, Postgres>, events: &[Event]) -> Result<()> {
    let update = replace_all(EVENT_COLUMNS, &["workspace", "id"]);
    for chunk in events.chunks(MAX_BINDS / EVENT_BINDS) {
        let mut insert = QueryBuilder::<Postgres>::new(format!("INSERT INTO events ({EVENT_COLUMNS}) "));
        insert.push_values(chunk, |mut row, e| bind_event(&mut row, e));
        insert.push(format!(" ON CONFLICT (workspace, id) DO UPDATE SET {update}"));
        // Each chunk size is a new statement text: not worth preparing.
        insert.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn upsert_deliveries(tx: &mut Transaction<'_, Postgres>, deliveries: &[Delivery]) -> Result<()> {
    let update = replace_all(DELIVERY_INSERT_COLUMNS, &["id"]);
    for chunk in deliveries.chunks(MAX_BINDS / DELIVERY_BINDS) {
        let mut insert = QueryBuilder::<Postgres>::new(format!("INSERT INTO deliveries ({DELIVERY_INSERT_COLUMNS}) "));
        insert.push_values(chunk, |mut row, d| bind_delivery(&mut row, d));
        insert.push(format!(" ON CONFLICT (id) DO UPDATE SET {update}"));
        insert.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upsert_replaces_every_column_but_the_key() {
        assert_eq!(replace_all("workspace, id, event", &["workspace", "id"]), "event = EXCLUDED.event");
        let deliveries = replace_all(DELIVERY_INSERT_COLUMNS, &["id"]);
        assert_eq!(deliveries.matches("EXCLUDED").count(), DELIVERY_BINDS - 1);
        assert_eq!(EVENT_COLUMNS.split(',').count(), EVENT_BINDS);
    }
}
