//! The connector cache in PostgreSQL, within each connection's quota
//! ([`CACHE_MAX_ENTRIES`], [`CACHE_MAX_BYTES`] of keys and values). Keys
//! and values are stored as bytes, so anything a connector caches (a NUL
//! included) comes back as it was. A write
//! evicts what expires soonest in the same transaction, holding a lock on
//! the connection's cache (an advisory lock, as a connection with no
//! entries yet has no row to lock) so two nodes cannot both fill the last
//! room. Expired entries are swept in bounded batches.

use sqlx::PgPool;

use super::super::{CACHE_MAX_BYTES, CACHE_MAX_ENTRIES, CacheEntry, Result, StoreError};

/// The advisory-lock namespace of cache writes ("SB" + 1): the first key of
/// PostgreSQL's two-key advisory locks, which never collide with one-key
/// locks (the migrator's).
const CACHE_LOCKS: i32 = 0x5342_0001;

/// What one entry costs against the quota: its key and value (as the
/// embedded store's `cache_index::cost`).
fn cost(key: &str, value: &str) -> usize {
    key.len() + value.len()
}

pub async fn get(pool: &PgPool, connection: &str, key: &str, now: i64) -> Result<Option<String>> {
    let value: Option<(Vec<u8>,)> =
        sqlx::query_as("SELECT value FROM cache WHERE connection = $1 AND key = $2 AND expires_at > $3")
            .bind(connection)
            .bind(key.as_bytes())
            .bind(now)
            .fetch_optional(pool)
            .await?;
    // Written from a `&str`: always UTF-8 unless the table was edited by hand.
    value.map(|(v,)| String::from_utf8(v).map_err(|e| StoreError::Engine(Box::new(e)))).transpose()
}

/// Store an entry, first evicting — soonest expiry first, the entry it
/// replaces aside — until it fits. An entry larger than the whole quota is
/// not stored: a cache may forget, it must not grow.
pub async fn set(pool: &PgPool, connection: &str, key: &str, entry: &CacheEntry) -> Result<()> {
    let bytes = cost(key, &entry.value);
    if bytes > CACHE_MAX_BYTES {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(CACHE_LOCKS)
        .bind(connection)
        .execute(&mut *tx)
        .await?;
    // Walking the other entries in expiry order, entry n (1-based) goes
    // while, before it goes, the quota is still exceeded: more than
    // MAX - 1 entries left, or the bytes left plus the new entry's over MAX.
    sqlx::query(
        "WITH others AS ( \
             SELECT key, bytes, \
                    row_number() OVER w AS n, sum(bytes) OVER w AS freed, \
                    count(*) OVER () AS entries, sum(bytes) OVER () AS used \
             FROM cache WHERE connection = $1 AND key <> $2 \
             WINDOW w AS (ORDER BY expires_at, key ROWS UNBOUNDED PRECEDING) \
         ) \
         DELETE FROM cache c USING others o \
         WHERE c.connection = $1 AND c.key = o.key \
           AND (o.entries - (o.n - 1) >= $3 OR o.used - (o.freed - o.bytes) + $4 > $5)",
    )
    .bind(connection)
    .bind(key.as_bytes())
    .bind(CACHE_MAX_ENTRIES as i64)
    .bind(bytes as i64)
    .bind(CACHE_MAX_BYTES as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO cache (connection, key, value, expires_at, bytes) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (connection, key) DO UPDATE \
         SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, bytes = EXCLUDED.bytes",
    )
    .bind(connection)
    .bind(key.as_bytes())
    .bind(entry.value.as_bytes())
    .bind(entry.expires_at)
    .bind(i32::try_from(bytes).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Remove up to `max` entries expired at `now`, soonest first.
pub async fn sweep(pool: &PgPool, now: i64, max: usize) -> Result<usize> {
    let removed = sqlx::query(
        "DELETE FROM cache WHERE (connection, key) IN ( \
             SELECT connection, key FROM cache WHERE expires_at <= $1 \
             ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(now)
    .bind(i64::try_from(max).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(usize::try_from(removed.rows_affected()).unwrap_or(usize::MAX))
}
