//! The catalog in PostgreSQL: workspaces, keys, connections, rules and
//! replay jobs. Each record is kept whole as JSON with the columns it is
//! found by (see `migrations/0001_store.sql`); a write replaces the record.
//! Pages are in id order, after the cursor, as in the embedded store.

use sqlx::PgPool;

use super::super::{Page, Result};
use super::rows::{from_json, to_json};
use crate::model::{ApiKey, Connection, ReplayJob, ReplayState, Rule, Workspace};

/// A page's `LIMIT`: at least one record, as the embedded store reads.
pub fn limit(page: &Page) -> i64 {
    i64::try_from(page.limit.max(1)).unwrap_or(i64::MAX)
}

/// `(id, record)` rows decoded, `table` naming them when one is corrupt.
fn records<T: serde::de::DeserializeOwned>(table: &str, rows: Vec<(String, String)>) -> Result<Vec<T>> {
    rows.iter().map(|(id, record)| from_json(table, id, record)).collect()
}

fn record<T: serde::de::DeserializeOwned>(table: &str, id: &str, row: Option<(String,)>) -> Result<Option<T>> {
    row.map(|(record,)| from_json(table, id, &record)).transpose()
}

pub async fn put_workspace(pool: &PgPool, ws: &Workspace) -> Result<()> {
    sqlx::query(
        "INSERT INTO workspaces (id, record) VALUES ($1, $2::json) \
         ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
    )
    .bind(&ws.id)
    .bind(to_json(ws))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn workspace(pool: &PgPool, id: &str) -> Result<Option<Workspace>> {
    let row = sqlx::query_as("SELECT record::text FROM workspaces WHERE id = $1").bind(id).fetch_optional(pool).await?;
    record("workspaces", id, row)
}

pub async fn workspaces(pool: &PgPool, page: &Page) -> Result<Vec<Workspace>> {
    let rows = sqlx::query_as(
        "SELECT id, record::text FROM workspaces WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2",
    )
    .bind(page.cursor.as_deref())
    .bind(limit(page))
    .fetch_all(pool)
    .await?;
    records("workspaces", rows)
}

pub async fn put_key(pool: &PgPool, key: &ApiKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (hash, workspace, id, record) VALUES ($1, $2, $3, $4::json) \
         ON CONFLICT (hash) DO UPDATE SET workspace = EXCLUDED.workspace, id = EXCLUDED.id, record = EXCLUDED.record",
    )
    .bind(&key.hash)
    .bind(&key.workspace)
    .bind(&key.id)
    .bind(to_json(key))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn key_by_hash(pool: &PgPool, hash: &str) -> Result<Option<ApiKey>> {
    let row =
        sqlx::query_as("SELECT record::text FROM api_keys WHERE hash = $1").bind(hash).fetch_optional(pool).await?;
    // The hash is the key's only id here; it is not secret (a SHA-256).
    record("api_keys", hash, row)
}

pub async fn keys(pool: &PgPool, workspace: &str) -> Result<Vec<ApiKey>> {
    let rows = sqlx::query_as("SELECT id, record::text FROM api_keys WHERE workspace = $1 ORDER BY id")
        .bind(workspace)
        .fetch_all(pool)
        .await?;
    records("api_keys", rows)
}

// Connections and rules: `(workspace, id, record)` tables, written and read
// alike. `table` is always one of this file's constants, never input.

async fn put_scoped(pool: &PgPool, table: &str, workspace: &str, id: &str, record: String) -> Result<()> {
    let sql = format!(
        "INSERT INTO {table} (workspace, id, record) VALUES ($1, $2, $3::json) \
         ON CONFLICT (workspace, id) DO UPDATE SET record = EXCLUDED.record"
    );
    sqlx::query(&sql).bind(workspace).bind(id).bind(record).execute(pool).await?;
    Ok(())
}

async fn get_scoped<T: serde::de::DeserializeOwned>(
    pool: &PgPool,
    table: &str,
    workspace: &str,
    id: &str,
) -> Result<Option<T>> {
    let sql = format!("SELECT record::text FROM {table} WHERE workspace = $1 AND id = $2");
    let row = sqlx::query_as(&sql).bind(workspace).bind(id).fetch_optional(pool).await?;
    record(table, id, row)
}

async fn page_scoped<T: serde::de::DeserializeOwned>(
    pool: &PgPool,
    table: &str,
    workspace: &str,
    page: &Page,
) -> Result<Vec<T>> {
    let sql = format!(
        "SELECT id, record::text FROM {table} WHERE workspace = $1 AND ($2::text IS NULL OR id > $2) \
         ORDER BY id LIMIT $3"
    );
    let rows =
        sqlx::query_as(&sql).bind(workspace).bind(page.cursor.as_deref()).bind(limit(page)).fetch_all(pool).await?;
    records(table, rows)
}

async fn delete_scoped(pool: &PgPool, table: &str, workspace: &str, id: &str) -> Result<bool> {
    let sql = format!("DELETE FROM {table} WHERE workspace = $1 AND id = $2");
    Ok(sqlx::query(&sql).bind(workspace).bind(id).execute(pool).await?.rows_affected() > 0)
}

const CONNECTIONS: &str = "connections";
const RULES: &str = "rules";

pub async fn put_connection(pool: &PgPool, c: &Connection) -> Result<()> {
    put_scoped(pool, CONNECTIONS, &c.workspace, &c.id, to_json(c)).await
}

pub async fn connection(pool: &PgPool, workspace: &str, id: &str) -> Result<Option<Connection>> {
    get_scoped(pool, CONNECTIONS, workspace, id).await
}

pub async fn connections(pool: &PgPool, workspace: &str, page: &Page) -> Result<Vec<Connection>> {
    page_scoped(pool, CONNECTIONS, workspace, page).await
}

pub async fn delete_connection(pool: &PgPool, workspace: &str, id: &str) -> Result<bool> {
    delete_scoped(pool, CONNECTIONS, workspace, id).await
}

pub async fn put_rule(pool: &PgPool, r: &Rule) -> Result<()> {
    put_scoped(pool, RULES, &r.workspace, &r.id, to_json(r)).await
}

pub async fn rule(pool: &PgPool, workspace: &str, id: &str) -> Result<Option<Rule>> {
    get_scoped(pool, RULES, workspace, id).await
}

pub async fn rules(pool: &PgPool, workspace: &str, page: &Page) -> Result<Vec<Rule>> {
    page_scoped(pool, RULES, workspace, page).await
}

pub async fn delete_rule(pool: &PgPool, workspace: &str, id: &str) -> Result<bool> {
    delete_scoped(pool, RULES, workspace, id).await
}

/// A replay job's `state` column: pending jobs are resumed at start.
fn state(job: &ReplayJob) -> &'static str {
    match job.state {
        ReplayState::Pending => "pending",
        ReplayState::Running => "running",
        ReplayState::Completed => "completed",
    }
}

pub async fn put_replay(pool: &PgPool, job: &ReplayJob) -> Result<()> {
    sqlx::query(
        "INSERT INTO replays (workspace, id, state, record) VALUES ($1, $2, $3, $4::json) \
         ON CONFLICT (workspace, id) DO UPDATE SET state = EXCLUDED.state, record = EXCLUDED.record",
    )
    .bind(&job.workspace)
    .bind(&job.id)
    .bind(state(job))
    .bind(to_json(job))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn replay(pool: &PgPool, workspace: &str, id: &str) -> Result<Option<ReplayJob>> {
    get_scoped(pool, "replays", workspace, id).await
}

/// Every job not completed, in (workspace, id) order. Few: a job completes
/// once it has requeued what it matched.
pub async fn replays_pending(pool: &PgPool) -> Result<Vec<ReplayJob>> {
    let rows = sqlx::query_as("SELECT id, record::text FROM replays WHERE state <> 'completed' ORDER BY workspace, id")
        .fetch_all(pool)
        .await?;
    records("replays", rows)
}
