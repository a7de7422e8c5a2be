//! What the nodes sharing one database keep in step beyond the records: the
//! connector versions uploaded to any node and the blocked ones (each node
//! follows them, see `crate::cluster`), and the limits of a connection for
//! all nodes together — its rate as a token bucket row, its attempts in
//! flight counted from the leases in the queue.

use sqlx::PgPool;

use super::super::{Admission, Result, SharedRegistry, SharedVersion};
use crate::registry::Release;

/// The advisory-lock namespace of admissions ("SB" + 2; see `cache.rs`):
/// one lock per connection serialises its count-and-take across nodes.
const ADMISSION_LOCKS: i32 = 0x5342_0002;

pub async fn registry(pool: &PgPool) -> Result<SharedRegistry> {
    let uploaded: Vec<(String, String, String)> =
        sqlx::query_as("SELECT name, version, sha256 FROM connector_versions ORDER BY name, version")
            .fetch_all(pool)
            .await?;
    let blocked: Vec<(String, String)> =
        sqlx::query_as("SELECT name, version FROM connector_blocks ORDER BY name, version").fetch_all(pool).await?;
    let uploaded =
        uploaded.into_iter().map(|(name, version, sha256)| SharedVersion { name, version, sha256 }).collect();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT name, version, release FROM connector_releases").fetch_all(pool).await?;
    let releases = rows
        .into_iter()
        // A row this version cannot read (written by a newer one) is no decision.
        .filter_map(|(name, version, json)| Some((format!("{name}@{version}"), serde_json::from_str(&json).ok()?)))
        .collect();
    Ok(SharedRegistry { uploaded, blocked, releases })
}

pub async fn put_release(pool: &PgPool, name: &str, version: &str, release: &Release) -> Result<()> {
    if *release == Release::default() {
        sqlx::query("DELETE FROM connector_releases WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(pool)
            .await?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO connector_releases (name, version, release) VALUES ($1, $2, $3) \
         ON CONFLICT (name, version) DO UPDATE SET release = EXCLUDED.release",
    )
    .bind(name)
    .bind(version)
    .bind(serde_json::to_string(release).unwrap_or_default())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn put_component(pool: &PgPool, v: &SharedVersion, component: &[u8], now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO connector_versions (name, version, sha256, component, uploaded_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name, version) DO UPDATE SET sha256 = EXCLUDED.sha256, component = EXCLUDED.component",
    )
    .bind(&v.name)
    .bind(&v.version)
    .bind(&v.sha256)
    .bind(component)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn component(pool: &PgPool, name: &str, version: &str) -> Result<Option<Vec<u8>>> {
    let row: Option<(Vec<u8>,)> =
        sqlx::query_as("SELECT component FROM connector_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(bytes,)| bytes))
}

pub async fn remove_component(pool: &PgPool, name: &str, version: &str) -> Result<()> {
    sqlx::query("DELETE FROM connector_versions WHERE name = $1 AND version = $2")
        .bind(name)
        .bind(version)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_blocked(pool: &PgPool, name: &str, version: &str, blocked: bool) -> Result<()> {
    let sql = if blocked {
        "INSERT INTO connector_blocks (name, version) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM connector_blocks WHERE name = $1 AND version = $2"
    };
    sqlx::query(sql).bind(name).bind(version).execute(pool).await?;
    Ok(())
}

/// Count the connection's live leases and take a token from its bucket, in
/// one transaction under the connection's advisory lock, so two nodes
/// cannot both take the last room.
pub async fn admit(
    pool: &PgPool,
    connection: &str,
    rate: Option<f64>,
    max_in_flight: Option<u32>,
    now: i64,
) -> Result<Admission> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(ADMISSION_LOCKS)
        .bind(connection)
        .execute(&mut *tx)
        .await?;
    if let Some(max) = max_in_flight {
        // A claimed delivery holds a lease until its attempt is recorded;
        // one whose lease expired (its node died) no longer counts.
        let (leased,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM deliveries WHERE connection = $1 AND due_at > $2 AND lease IS NOT NULL",
        )
        .bind(connection)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if leased > i64::from(max) {
            // A slot frees when an attempt ends somewhere; look again soon.
            return Ok(Admission::RetryAt(now + 100));
        }
    }
    if let Some(rate) = rate {
        let cap = rate.max(1.0);
        // Refill for the time since the last take, then take one if there is one.
        let row: Option<(f64, i64)> =
            sqlx::query_as("SELECT tokens, refilled_at FROM rate_buckets WHERE connection = $1")
                .bind(connection)
                .fetch_optional(&mut *tx)
                .await?;
        let tokens = match row {
            None => cap,
            Some((tokens, at)) => (tokens + (now - at).max(0) as f64 * rate / 1000.0).min(cap),
        };
        if tokens < 1.0 {
            let wait_ms = ((1.0 - tokens) / rate * 1000.0).ceil() as i64;
            return Ok(Admission::RetryAt(now + wait_ms.max(1)));
        }
        sqlx::query(
            "INSERT INTO rate_buckets (connection, tokens, refilled_at) VALUES ($1, $2, $3) \
             ON CONFLICT (connection) DO UPDATE SET tokens = EXCLUDED.tokens, \
             refilled_at = GREATEST(rate_buckets.refilled_at, EXCLUDED.refilled_at)",
        )
        .bind(connection)
        .bind(tokens - 1.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Admission::Admitted)
}

/// Hold a replay job for `node` until `until`, unless another node holds it.
pub async fn claim_replay(pool: &PgPool, node: &str, workspace: &str, id: &str, until: i64, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE replays SET claimed_by = $3, claimed_until = $4 WHERE workspace = $1 AND id = $2 \
         AND (claimed_until IS NULL OR claimed_until <= $5 OR claimed_by = $3)",
    )
    .bind(workspace)
    .bind(id)
    .bind(node)
    .bind(until)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}
