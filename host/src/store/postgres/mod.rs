//! The PostgreSQL backend: [`PgStore`], so several nodes can share one
//! database (`[store] backend = "postgres"`, `url = "postgres://…"`).
//!
//! Every call runs as SQL over a connection pool, within the configured
//! timeout, counted in an in-process tracker (`busy.rs`) so health checks
//! never wait on the database. The schema is `host/migrations/`, embedded
//! in the binary and brought up to date at open (and by `switchboard
//! migrate`); the migrator's advisory lock lets nodes start together.
//!
//! By concept: `catalog.rs` (workspaces, keys, connections, rules,
//! replays), `accept.rs` (events with their deliveries and idempotency
//! keys), `reads.rs` (events, deliveries, attempts), `claim.rs` (claiming
//! due deliveries within a plan), `queue.rs` (every other delivery state
//! change), `cache.rs` (the connector cache), `retention.rs` (the sweep),
//! `notify.rs` (work signals between nodes), `rows.rs` (rows to records),
//! `url.rs` (the URL, never shown), `scratch.rs` (a throw-away cluster for
//! tests).
//!
//! What differs from the embedded store, by design: commits are durable
//! when they return, so `sync` has nothing to do; the round robin between
//! workspaces continues from the workspace this node served last (each
//! node keeps its own); `next_due` is the earliest due time of any queued
//! delivery, not only of each connection's head (a scheduler may wake for
//! a connection that is still full, and finds nothing to take); `stall`
//! holds calls in this process, as a stuck database would; free text that
//! holds NUL is stored with U+FFFD instead (`rows::text`).

mod accept;
mod busy;
mod cache;
mod catalog;
mod claim;
mod cluster;
mod group;
mod import;
mod notify;
mod queue;
mod reads;
mod retention;
mod rows;
#[cfg(any(test, feature = "fault-injection"))]
pub mod scratch;
#[cfg(test)]
mod tests;
mod url;

use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use self::busy::Busy;
pub use self::url::DatabaseUrl;
use super::{
    Accept, Accepted, Admission, CacheEntry, ClaimPlan, Claimed, DeliveryQuery, EventQuery, Next, Page, QueueStats,
    Result, SharedRegistry, SharedVersion, Store, StoreConfig, StoreError,
};
use crate::attempt::AttemptRecord;
use crate::model::{ApiKey, Connection, Delivery, Event, ReplayJob, Rule, Workspace};

/// The schema, from `host/migrations/` at build time. (A new migration file
/// alone does not rebuild the crate: touch this file with it.)
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct PgStore {
    pool: PgPool,
    timeout: Duration,
    busy: Arc<Busy>,
    /// The workspace the last claim served last: the next claim's turns
    /// start after it.
    last_served: Mutex<String>,
    signals: broadcast::Sender<()>,
    /// Ingest's group commit.
    group: group::Grouper,
    /// This process among the nodes, for the work it holds (replay jobs).
    node: String,
    /// Stops the listener task when the store goes.
    _listener: DropGuard,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// The pool `config` describes, with one connection made (so a wrong URL
/// or an unreachable server fails here, within the timeout).
async fn connect(config: &StoreConfig) -> Result<PgPool> {
    let url = config.url.as_ref().ok_or_else(|| StoreError::Config("store.url is not set".into()))?;
    let options = PgConnectOptions::from_str(url.expose())?
        .application_name("switchboard")
        // NOTICEs (an idempotent migration's "already exists, skipping")
        // would be logged on every start: warnings and errors only.
        .options([("client_min_messages", "warning")]);
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.timeout)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Bring the schema up to date; the version it is at.
pub async fn migrate(config: &StoreConfig) -> Result<i64> {
    let pool = connect(config).await?;
    MIGRATOR.run(&pool).await?;
    let version = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    pool.close().await;
    Ok(version)
}

impl PgStore {
    /// Connect, bring the schema up to date, and start listening for other
    /// nodes' work signals.
    pub async fn open(config: &StoreConfig) -> Result<PgStore> {
        let pool = connect(config).await?;
        MIGRATOR.run(&pool).await?;
        let stop = CancellationToken::new();
        let signals = notify::spawn(pool.clone(), stop.clone());
        let group = group::Grouper::spawn(pool.clone());
        Ok(PgStore {
            pool,
            timeout: config.timeout,
            busy: Arc::default(),
            last_served: Mutex::default(),
            signals,
            group,
            node: ulid::Ulid::new().to_string(),
            _listener: stop.drop_guard(),
        })
    }

    /// One store call: counted as busy from now, behind any stall, failing
    /// as unavailable when it has not answered within the timeout (the
    /// transaction it may hold rolls back).
    async fn call<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let _in_flight = self.busy.enter();
        let work = async {
            self.busy.pass().await;
            work.await
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| StoreError::Timeout(self.timeout))?
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn put_workspace(&self, ws: &Workspace) -> Result<()> {
        self.call(catalog::put_workspace(&self.pool, ws)).await
    }
    async fn workspace(&self, id: &str) -> Result<Option<Workspace>> {
        self.call(catalog::workspace(&self.pool, id)).await
    }
    async fn workspaces(&self, page: &Page) -> Result<Vec<Workspace>> {
        self.call(catalog::workspaces(&self.pool, page)).await
    }
    async fn put_key(&self, key: &ApiKey) -> Result<()> {
        self.call(catalog::put_key(&self.pool, key)).await
    }
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        self.call(catalog::key_by_hash(&self.pool, hash)).await
    }
    async fn keys(&self, workspace: &str) -> Result<Vec<ApiKey>> {
        self.call(catalog::keys(&self.pool, workspace)).await
    }
    async fn put_connection(&self, c: &Connection) -> Result<()> {
        self.call(catalog::put_connection(&self.pool, c)).await
    }
    async fn connection(&self, workspace: &str, id: &str) -> Result<Option<Connection>> {
        self.call(catalog::connection(&self.pool, workspace, id)).await
    }
    async fn connections(&self, workspace: &str, page: &Page) -> Result<Vec<Connection>> {
        self.call(catalog::connections(&self.pool, workspace, page)).await
    }
    async fn delete_connection(&self, workspace: &str, id: &str) -> Result<bool> {
        self.call(catalog::delete_connection(&self.pool, workspace, id)).await
    }
    async fn put_rule(&self, r: &Rule) -> Result<()> {
        self.call(catalog::put_rule(&self.pool, r)).await
    }
    async fn rule(&self, workspace: &str, id: &str) -> Result<Option<Rule>> {
        self.call(catalog::rule(&self.pool, workspace, id)).await
    }
    async fn rules(&self, workspace: &str, page: &Page) -> Result<Vec<Rule>> {
        self.call(catalog::rules(&self.pool, workspace, page)).await
    }
    async fn delete_rule(&self, workspace: &str, id: &str) -> Result<bool> {
        self.call(catalog::delete_rule(&self.pool, workspace, id)).await
    }

    async fn accept_all(&self, accepts: Vec<Accept>) -> Result<Vec<Accepted>> {
        self.call(self.group.accept(accepts)).await
    }
    async fn sync(&self) -> Result<()> {
        Ok(()) // every call answered after its commit, which is durable
    }
    async fn event(&self, workspace: &str, id: &str) -> Result<Option<Event>> {
        self.call(reads::event(&self.pool, workspace, id)).await
    }
    async fn events(&self, workspace: &str, query: &EventQuery, page: &Page) -> Result<Vec<Event>> {
        self.call(reads::events(&self.pool, workspace, query, page)).await
    }
    async fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        self.call(reads::delivery(&self.pool, id)).await
    }
    async fn deliveries_of(&self, event: &Event) -> Result<Vec<Delivery>> {
        self.call(reads::deliveries_of(&self.pool, event)).await
    }
    async fn deliveries(&self, workspace: &str, query: &DeliveryQuery, page: &Page) -> Result<Vec<Delivery>> {
        self.call(reads::deliveries(&self.pool, workspace, query, page)).await
    }
    async fn attempts(&self, delivery: &str) -> Result<Vec<AttemptRecord>> {
        self.call(reads::attempts(&self.pool, delivery)).await
    }

    async fn claim_due(&self, plan: ClaimPlan) -> Result<Vec<Claimed>> {
        self.call(claim::claim_due(&self.pool, &plan, &self.last_served)).await
    }
    async fn finish_attempt(
        &self,
        id: &str,
        lease: &str,
        attempt: &AttemptRecord,
        next: Next,
        now: i64,
    ) -> Result<bool> {
        self.call(queue::finish_attempt(&self.pool, id, lease, attempt, next, now)).await
    }
    async fn release(&self, id: &str, lease: &str, at: i64, now: i64) -> Result<bool> {
        self.call(queue::release(&self.pool, id, lease, at, now)).await
    }
    async fn park(&self, id: &str, lease: &str, now: i64) -> Result<bool> {
        self.call(queue::park(&self.pool, id, lease, now)).await
    }
    async fn requeue(&self, id: &str, at: i64, now: i64) -> Result<Option<Delivery>> {
        self.call(queue::requeue(&self.pool, id, at, now)).await
    }
    async fn cancel(&self, id: &str, now: i64) -> Result<Option<Delivery>> {
        self.call(queue::cancel(&self.pool, id, now)).await
    }
    async fn waiting(&self, connection: &str) -> Result<Vec<String>> {
        self.call(queue::waiting(&self.pool, connection)).await
    }
    async fn next_due(&self, after: i64) -> Result<Option<i64>> {
        self.call(queue::next_due(&self.pool, after)).await
    }
    async fn queue_stats(&self, now: i64) -> Result<QueueStats> {
        self.call(queue::queue_stats(&self.pool, now)).await
    }

    async fn cache_get(&self, connection: &str, key: &str, now: i64) -> Result<Option<String>> {
        self.call(cache::get(&self.pool, connection, key, now)).await
    }
    async fn cache_set(&self, connection: &str, key: &str, entry: &CacheEntry) -> Result<()> {
        self.call(cache::set(&self.pool, connection, key, entry)).await
    }
    async fn cache_sweep(&self, now: i64, max: usize) -> Result<usize> {
        self.call(cache::sweep(&self.pool, now, max)).await
    }
    async fn put_replay(&self, job: &ReplayJob) -> Result<()> {
        self.call(catalog::put_replay(&self.pool, job)).await
    }
    async fn replay(&self, workspace: &str, id: &str) -> Result<Option<ReplayJob>> {
        self.call(catalog::replay(&self.pool, workspace, id)).await
    }
    async fn replays_pending(&self) -> Result<Vec<ReplayJob>> {
        self.call(catalog::replays_pending(&self.pool)).await
    }

    async fn sweep(&self, before: i64, max: usize) -> Result<usize> {
        self.call(retention::sweep(&self.pool, before, max)).await
    }

    fn busy_for(&self) -> Option<Duration> {
        self.busy.busy_for()
    }
    async fn stall(&self, d: Duration) -> Result<()> {
        self.busy.stall(d).await;
        Ok(())
    }

    fn work_signals(&self) -> Option<broadcast::Receiver<()>> {
        Some(self.signals.subscribe())
    }

    async fn shared_registry(&self) -> Result<Option<SharedRegistry>> {
        self.call(cluster::registry(&self.pool)).await.map(Some)
    }
    async fn share_component(&self, version: &SharedVersion, component: &[u8], now: i64) -> Result<()> {
        self.call(cluster::put_component(&self.pool, version, component, now)).await
    }
    async fn shared_component(&self, name: &str, version: &str) -> Result<Option<Vec<u8>>> {
        self.call(cluster::component(&self.pool, name, version)).await
    }
    async fn unshare_component(&self, name: &str, version: &str) -> Result<()> {
        self.call(cluster::remove_component(&self.pool, name, version)).await
    }
    async fn share_block(&self, name: &str, version: &str, blocked: bool) -> Result<()> {
        self.call(cluster::set_blocked(&self.pool, name, version, blocked)).await
    }
    async fn share_release(&self, name: &str, version: &str, release: &crate::registry::Release) -> Result<()> {
        self.call(cluster::put_release(&self.pool, name, version, release)).await
    }
    async fn claim_replay(&self, workspace: &str, id: &str, until: i64, now: i64) -> Result<bool> {
        self.call(cluster::claim_replay(&self.pool, &self.node, workspace, id, until, now)).await
    }
    async fn admit(
        &self,
        connection: &str,
        rate: Option<f64>,
        max_in_flight: Option<u32>,
        now: i64,
    ) -> Result<Admission> {
        self.call(cluster::admit(&self.pool, connection, rate, max_in_flight, now)).await
    }
}
