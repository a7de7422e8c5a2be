//! Every delivery state change in PostgreSQL but the claim (`claim.rs`):
//! finishing an attempt, releasing, parking, requeueing and canceling, each
//! one conditional `UPDATE` so the check and the change are one step — a
//! stale lease token matches no row. Also the queue's read side: waiting
//! deliveries, the next due time and the queue's numbers. The changes are
//! the embedded store's (`embedded/queue.rs`), written as SQL.

use sqlx::PgPool;

use super::super::{Next, QueueStats, Result};
use super::notify;
use super::rows::{self, DELIVERY_COLUMNS, FINAL_STATUSES, int, text, to_json};
use crate::attempt::AttemptRecord;
use crate::model::{Delivery, DeliveryStatus};

/// `status` for a delivery queued again without an attempt in flight:
/// [`DeliveryStatus::queued`] of its `attempt_count`.
const QUEUED: &str = "CASE WHEN attempt_count = 0 THEN 'pending' ELSE 'retrying' END";

pub async fn finish_attempt(
    pool: &PgPool,
    id: &str,
    lease: &str,
    attempt: &AttemptRecord,
    next: Next,
    now: i64,
) -> Result<bool> {
    let (status, due_at) = match next {
        Next::Completed => (DeliveryStatus::Completed, None),
        Next::Failed => (DeliveryStatus::Failed, None),
        Next::Retry { at } => (DeliveryStatus::Retrying, Some(at)),
        Next::Wait => (DeliveryStatus::Waiting, None),
    };
    let mut tx = pool.begin().await?;
    let moved = sqlx::query(
        "UPDATE deliveries SET attempt_count = GREATEST(attempt_count, $3), lease = NULL, updated_at = $4, \
         interruptions = 0, connector_version = $5, last_outcome = $6, last_error = $7, status = $8, due_at = $9 \
         WHERE id = $1 AND lease = $2",
    )
    .bind(id)
    .bind(lease)
    .bind(int(attempt.n))
    .bind(now)
    .bind(text(&attempt.connector_version))
    .bind(attempt.outcome.as_str())
    .bind(attempt.error.as_deref().map(text))
    .bind(status.as_str())
    .bind(due_at)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        return Ok(false); // stale lease: another worker owns it now (the transaction rolls back)
    }
    record_attempts(&mut tx, &[(id, attempt)]).await?;
    tx.commit().await?;
    Ok(true)
}

/// Write attempt records, replacing any with the same number.
pub async fn record_attempts(db: &mut sqlx::PgConnection, attempts: &[(&str, &AttemptRecord)]) -> Result<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = attempts.iter().map(|(id, _)| *id).collect();
    let numbers: Vec<i32> = attempts.iter().map(|(_, a)| int(a.n)).collect();
    let records: Vec<String> = attempts.iter().map(|(_, a)| to_json(a)).collect();
    sqlx::query(
        "INSERT INTO attempts (delivery_id, n, record) \
         SELECT id, n, record::json FROM UNNEST($1::text[], $2::int4[], $3::text[]) AS a(id, n, record) \
         ON CONFLICT (delivery_id, n) DO UPDATE SET record = EXCLUDED.record",
    )
    .bind(&ids)
    .bind(&numbers)
    .bind(&records)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn release(pool: &PgPool, id: &str, lease: &str, at: i64, now: i64) -> Result<bool> {
    let sql = format!(
        "UPDATE deliveries SET lease = NULL, due_at = $3, status = {QUEUED}, updated_at = $4 \
         WHERE id = $1 AND lease = $2"
    );
    let moved = sqlx::query(&sql).bind(id).bind(lease).bind(at).bind(now).execute(pool).await?;
    Ok(moved.rows_affected() > 0)
}

pub async fn park(pool: &PgPool, id: &str, lease: &str, now: i64) -> Result<bool> {
    let moved = sqlx::query(
        "UPDATE deliveries SET lease = NULL, due_at = NULL, status = 'waiting', updated_at = $3 \
         WHERE id = $1 AND lease = $2",
    )
    .bind(id)
    .bind(lease)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(moved.rows_affected() > 0)
}

/// Queue again unless in flight (leased), and signal the work to every node.
pub async fn requeue(pool: &PgPool, id: &str, at: i64, now: i64) -> Result<Option<Delivery>> {
    let sql = format!(
        "UPDATE deliveries SET due_at = $2, status = {QUEUED}, interruptions = 0, updated_at = $3 \
         WHERE id = $1 AND lease IS NULL RETURNING {DELIVERY_COLUMNS}"
    );
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&sql).bind(id).bind(at).bind(now).fetch_optional(&mut *tx).await?;
    let Some(row) = row else { return Ok(None) };
    notify::work(&mut *tx).await?;
    tx.commit().await?;
    rows::delivery(&row).map(Some)
}

/// Cancel unless final; a delivery in flight is canceled too (its worker's
/// lease no longer matches when it finishes).
pub async fn cancel(pool: &PgPool, id: &str, now: i64) -> Result<Option<Delivery>> {
    let sql = format!(
        "UPDATE deliveries SET status = 'canceled', due_at = NULL, lease = NULL, updated_at = $2 \
         WHERE id = $1 AND status NOT IN {FINAL_STATUSES} RETURNING {DELIVERY_COLUMNS}"
    );
    let row = sqlx::query(&sql).bind(id).bind(now).fetch_optional(pool).await?;
    row.as_ref().map(rows::delivery).transpose()
}

pub async fn waiting(pool: &PgPool, connection: &str) -> Result<Vec<String>> {
    let ids: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM deliveries WHERE connection = $1 AND status = 'waiting' ORDER BY id")
            .bind(connection)
            .fetch_all(pool)
            .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// The earliest due time after `after` of any queued (or leased) delivery.
pub async fn next_due(pool: &PgPool, after: i64) -> Result<Option<i64>> {
    let (at,): (Option<i64>,) =
        sqlx::query_as("SELECT min(due_at) FROM deliveries WHERE due_at > $1").bind(after).fetch_one(pool).await?;
    Ok(at)
}

/// One statement over indexes: the active deliveries by status through the
/// `deliveries_active` partial index (work grows with the queue, never with
/// the history of final deliveries), the earliest due time from the head of
/// `deliveries_due`, and the paused connections (the catalog, small).
pub async fn queue_stats(pool: &PgPool, now: i64) -> Result<QueueStats> {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'processing'), \
         count(*) FILTER (WHERE status = 'retrying'), count(*) FILTER (WHERE status = 'waiting'), \
         (SELECT min(due_at) FROM deliveries WHERE due_at IS NOT NULL AND due_at <= $1), \
         (SELECT count(*) FROM connections WHERE (record->>'active')::boolean IS NOT TRUE) \
         FROM deliveries WHERE status NOT IN {FINAL_STATUSES}"
    );
    let (pending, processing, retrying, waiting, oldest_due, paused): (i64, i64, i64, i64, Option<i64>, i64) =
        sqlx::query_as(&sql).bind(now).fetch_one(pool).await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(QueueStats {
        pending: count(pending),
        processing: count(processing),
        retrying: count(retrying),
        waiting: count(waiting),
        oldest_due,
        paused_connections: count(paused),
    })
}
