//! Retention in PostgreSQL: removing old events whose deliveries are all
//! final, with their deliveries and attempts (`ON DELETE CASCADE`), in
//! bounded batches, by one node at a time (an advisory lock). Nothing waits on a row another call holds: the sweep
//! skips locked events and deliveries, and leaves an event for a later
//! sweep when it could not lock all of its deliveries (one being requeued
//! or finished right now).

use std::collections::HashMap;

use sqlx::PgPool;

use super::super::Result;
use super::rows::FINAL_STATUSES;

/// The advisory lock of the retention sweep ("SB" + 3; see `cache.rs`):
/// one node sweeps at a time, the others find it taken and skip their turn.
const SWEEP_LOCK: (i32, i32) = (0x5342_0003, 0);

pub async fn sweep(pool: &PgPool, before: i64, max: usize) -> Result<usize> {
    let mut tx = pool.begin().await?;
    let (ours,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1, $2)")
        .bind(SWEEP_LOCK.0)
        .bind(SWEEP_LOCK.1)
        .fetch_one(&mut *tx)
        .await?;
    if !ours {
        return Ok(0);
    }
    let sql = format!(
        "SELECT e.workspace, e.id, cardinality(e.delivery_ids) FROM events e \
         WHERE e.created_at < $1 AND NOT EXISTS ( \
             SELECT 1 FROM deliveries d \
             WHERE d.workspace = e.workspace AND d.event_id = e.id AND d.status NOT IN {FINAL_STATUSES}) \
         ORDER BY e.created_at LIMIT $2 FOR UPDATE OF e SKIP LOCKED"
    );
    let old: Vec<(String, String, i32)> =
        sqlx::query_as(&sql).bind(before).bind(i64::try_from(max).unwrap_or(i64::MAX)).fetch_all(&mut *tx).await?;
    if old.is_empty() {
        return Ok(0);
    }
    let workspaces: Vec<&str> = old.iter().map(|(ws, _, _)| ws.as_str()).collect();
    let events: Vec<&str> = old.iter().map(|(_, id, _)| id.as_str()).collect();
    // Lock their deliveries: whatever is held now may be changing status.
    let sql = format!(
        "SELECT workspace, event_id, status IN {FINAL_STATUSES} FROM deliveries \
         WHERE (workspace, event_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) \
         FOR UPDATE SKIP LOCKED"
    );
    let held: Vec<(String, String, bool)> =
        sqlx::query_as(&sql).bind(&workspaces).bind(&events).fetch_all(&mut *tx).await?;
    let mut final_held: HashMap<(&str, &str), i32> = HashMap::new();
    let mut active: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for (ws, event, is_final) in &held {
        if *is_final {
            *final_held.entry((ws, event)).or_default() += 1;
        } else {
            active.insert((ws, event));
        }
    }
    let doomed: Vec<(&str, &str)> = old
        .iter()
        .map(|(ws, id, n)| ((ws.as_str(), id.as_str()), *n))
        .filter(|(key, n)| !active.contains(key) && final_held.get(key).copied().unwrap_or(0) == *n)
        .map(|(key, _)| key)
        .collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    let (workspaces, events): (Vec<&str>, Vec<&str>) = doomed.iter().copied().unzip();
    // Idempotency records first: an accept that holds one of them is
    // reading its event back, which must still be there.
    sqlx::query(
        "DELETE FROM idempotency WHERE (workspace, event_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
    )
    .bind(&workspaces)
    .bind(&events)
    .execute(&mut *tx)
    .await?;
    let removed =
        sqlx::query("DELETE FROM events WHERE (workspace, id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))")
            .bind(&workspaces)
            .bind(&events)
            .execute(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(usize::try_from(removed.rows_affected()).unwrap_or(usize::MAX))
}
