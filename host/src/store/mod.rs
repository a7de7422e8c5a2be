//! Durable state behind one async trait, so every backend passes the same
//! conformance suite. The embedded backends (`embedded/`, fjall by default,
//! sled on request) run every operation on one owner thread; the async
//! runtime only ever waits on a channel, never on the disk. The PostgreSQL
//! backend (`postgres/`) lets several nodes share one database.
//!
//! Writes that must be atomic are single calls here: accepting events with
//! their deliveries and idempotency records; finishing an attempt with its
//! record and the delivery's next state. [`Store::accept_all`] answers only
//! once its events are durable (fsync, or a committed transaction), so
//! ingest can group-commit.
//!
//! Beside the trait: `config.rs` (`[store]`), `plan.rs` (what a claim may
//! take and what comes of it), `copy.rs` (moving an install to PostgreSQL).

mod config;
pub mod copy;
mod embedded;
mod keys;
mod plan;
pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::config::{Backend, StoreConfig};
pub use self::embedded::{EmbeddedStore, Engine};
pub(crate) use self::plan::interrupted_attempt;
pub use self::plan::{ClaimPlan, Claimed, MAX_INTERRUPTIONS, Next};
pub use self::postgres::{DatabaseUrl, PgStore};
use crate::attempt::AttemptRecord;
use crate::model::{ApiKey, Connection, Delivery, DeliveryStatus, Event, EventStatus, ReplayJob, Rule, Workspace};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("postgres migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store configuration: {0}")]
    Config(String),
    #[error("stored record {key} is corrupt")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the store has more work queued than it accepts")]
    Overloaded,
    #[error("the store has stopped")]
    Stopped,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A page request: records after `cursor` (exclusive), at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub cursor: Option<String>,
    pub limit: usize,
}

impl Page {
    pub fn all() -> Page {
        Page { cursor: None, limit: usize::MAX }
    }
}

/// An event to accept with the deliveries routing planned for it.
#[derive(Debug, Clone)]
pub struct Accept {
    pub event: Event,
    pub deliveries: Vec<Delivery>,
    /// Hash of the idempotency key, scoped to the workspace.
    pub idempotency: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    New(Event),
    /// The idempotency key was seen within 24 h: the original event.
    Duplicate(Event),
}

/// Filters for listing deliveries.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    pub connection: Option<String>,
    pub rule: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Filters for listing events.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub event: Option<String>,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub status: Option<EventStatus>,
}

/// Entries one connection's cache holds at most.
pub const CACHE_MAX_ENTRIES: usize = 1_000;
/// Bytes (keys and values) one connection's cache holds at most.
pub const CACHE_MAX_BYTES: usize = 1 << 20;

/// A cached value with its expiry (ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub value: String,
    pub expires_at: i64,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    // --- catalog -----------------------------------------------------------
    async fn put_workspace(&self, ws: &Workspace) -> Result<()>;
    async fn workspace(&self, id: &str) -> Result<Option<Workspace>>;
    async fn workspaces(&self, page: &Page) -> Result<Vec<Workspace>>;
    async fn put_key(&self, key: &ApiKey) -> Result<()>;
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>>;
    async fn keys(&self, workspace: &str) -> Result<Vec<ApiKey>>;
    async fn put_connection(&self, c: &Connection) -> Result<()>;
    async fn connection(&self, workspace: &str, id: &str) -> Result<Option<Connection>>;
    async fn connections(&self, workspace: &str, page: &Page) -> Result<Vec<Connection>>;
    async fn delete_connection(&self, workspace: &str, id: &str) -> Result<bool>;
    async fn put_rule(&self, r: &Rule) -> Result<()>;
    async fn rule(&self, workspace: &str, id: &str) -> Result<Option<Rule>>;
    async fn rules(&self, workspace: &str, page: &Page) -> Result<Vec<Rule>>;
    async fn delete_rule(&self, workspace: &str, id: &str) -> Result<bool>;

    // --- events and deliveries ---------------------------------------------
    /// Write each event with its deliveries (due now) and idempotency record
    /// atomically, unless its idempotency key is already known; answer once
    /// all of them are durable. Results are in input order.
    async fn accept_all(&self, accepts: Vec<Accept>) -> Result<Vec<Accepted>>;
    /// Make every write so far durable (flush and fsync).
    async fn sync(&self) -> Result<()>;
    async fn event(&self, workspace: &str, id: &str) -> Result<Option<Event>>;
    async fn events(&self, workspace: &str, query: &EventQuery, page: &Page) -> Result<Vec<Event>>;
    async fn delivery(&self, id: &str) -> Result<Option<Delivery>>;
    /// The deliveries of one event, in the event's order.
    async fn deliveries_of(&self, event: &Event) -> Result<Vec<Delivery>>;
    async fn deliveries(&self, workspace: &str, query: &DeliveryQuery, page: &Page) -> Result<Vec<Delivery>>;
    async fn attempts(&self, delivery: &str) -> Result<Vec<AttemptRecord>>;

    // --- the delay queue -----------------------------------------------------
    /// Claim due deliveries within `plan`: each gets a fresh lease token and
    /// becomes due again at `now + lease_ms` unless finished first. A
    /// delivery whose previous lease expired unfinished gets an
    /// `interrupted` attempt recorded first; at [`MAX_INTERRUPTIONS`] in a
    /// row it fails instead of being claimed.
    async fn claim_due(&self, plan: ClaimPlan) -> Result<Vec<Claimed>>;
    /// Record an attempt and move the delivery on. Ignored (false) when the
    /// lease token is stale: another worker owns the delivery now.
    async fn finish_attempt(
        &self,
        id: &str,
        lease: &str,
        attempt: &AttemptRecord,
        next: Next,
        now: i64,
    ) -> Result<bool>;
    /// Give a claimed delivery back, due at `at`, without an attempt.
    async fn release(&self, id: &str, lease: &str, at: i64, now: i64) -> Result<bool>;
    /// Move a claimed delivery to `waiting` without an attempt: its
    /// connection is paused.
    async fn park(&self, id: &str, lease: &str, now: i64) -> Result<bool>;
    /// Queue a delivery again at `at` whatever its state, unless it is in
    /// flight. Returns the updated delivery, or None when not found or leased.
    async fn requeue(&self, id: &str, at: i64, now: i64) -> Result<Option<Delivery>>;
    async fn cancel(&self, id: &str, now: i64) -> Result<Option<Delivery>>;
    /// Deliveries waiting for a paused connection.
    async fn waiting(&self, connection: &str) -> Result<Vec<String>>;
    /// The earliest time a queued delivery falls due after `after`.
    async fn next_due(&self, after: i64) -> Result<Option<i64>>;
    /// The queue at a glance (`GET /metrics` asks every scrape): cheap on
    /// a large queue, never a scan of every record ever kept.
    async fn queue_stats(&self, now: i64) -> Result<QueueStats>;

    // --- the connector cache and replays -------------------------------------
    async fn cache_get(&self, connection: &str, key: &str, now: i64) -> Result<Option<String>>;
    /// Store an entry within the connection's quota ([`CACHE_MAX_ENTRIES`],
    /// [`CACHE_MAX_BYTES`] of keys and values): what expires soonest makes
    /// room; an entry larger than the quota is not stored.
    async fn cache_set(&self, connection: &str, key: &str, entry: &CacheEntry) -> Result<()>;
    /// Remove up to `max` entries expired at `now`; returns how many.
    async fn cache_sweep(&self, now: i64, max: usize) -> Result<usize>;
    async fn put_replay(&self, job: &ReplayJob) -> Result<()>;
    async fn replay(&self, workspace: &str, id: &str) -> Result<Option<ReplayJob>>;
    async fn replays_pending(&self) -> Result<Vec<ReplayJob>>;

    // --- retention ---------------------------------------------------------------
    /// Remove up to `max` final events older than `before` with their
    /// deliveries and attempts. Returns how many were removed; call again
    /// while it returns `max`. Bounded so the sweep never holds the store.
    async fn sweep(&self, before: i64, max: usize) -> Result<usize>;

    // --- health ------------------------------------------------------------------
    /// How long the operation the store is working on has been running, if
    /// one is. Never waits on the store itself.
    fn busy_for(&self) -> Option<Duration>;
    /// Test hook: occupy the store for `d`, as a stuck disk would.
    async fn stall(&self, d: Duration) -> Result<()>;

    // --- other nodes -------------------------------------------------------------
    /// Signals that another node (or this one) queued work — accepted events
    /// with deliveries, requeued deliveries — so a scheduler can claim at
    /// once instead of at its next poll. `None` when no other node can queue
    /// work (the embedded store: this process's own wake-ups suffice). A
    /// signal may be spurious or stand for many changes, and one may be
    /// lost while the backend reconnects (a signal is sent once it is back):
    /// it shortens a poll, never replaces it. A `Lagged` error from the
    /// receiver is a signal too.
    fn work_signals(&self) -> Option<tokio::sync::broadcast::Receiver<()>> {
        None
    }

    // --- the cluster: what nodes sharing this store keep in step -------------
    // A store only one node uses keeps the defaults: that node's registry
    // and limits are the whole truth.

    /// The connector versions uploaded to any node, and the blocked ones;
    /// `None` when no other node shares this store.
    async fn shared_registry(&self) -> Result<Option<SharedRegistry>> {
        Ok(None)
    }
    /// Offer an uploaded component to the other nodes.
    async fn share_component(&self, _version: &SharedVersion, _component: &[u8], _now: i64) -> Result<()> {
        Ok(())
    }
    async fn shared_component(&self, _name: &str, _version: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn unshare_component(&self, _name: &str, _version: &str) -> Result<()> {
        Ok(())
    }
    async fn share_block(&self, _name: &str, _version: &str, _blocked: bool) -> Result<()> {
        Ok(())
    }
    /// An operator's release decision about `name@version`, for the other nodes.
    async fn share_release(&self, _name: &str, _version: &str, _release: &crate::registry::Release) -> Result<()> {
        Ok(())
    }
    /// Hold the replay job until `until` (ms) unless another node holds it
    /// now; true when this node may run it.
    async fn claim_replay(&self, _workspace: &str, _id: &str, _until: i64, _now: i64) -> Result<bool> {
        Ok(true)
    }
    /// Admit one more attempt of `connection`, already claimed, within
    /// limits that hold for all nodes together: `rate` per second (a bucket
    /// of one second of tokens, at least one) and `max_in_flight` claimed
    /// at once (this one included).
    async fn admit(
        &self,
        _connection: &str,
        _rate: Option<f64>,
        _max_in_flight: Option<u32>,
        _now: i64,
    ) -> Result<Admission> {
        Ok(Admission::Admitted)
    }
}

/// How many deliveries are active, by status, how late the queue runs, and
/// how many connections are paused, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Queued, never attempted (due now or later).
    pub pending: u64,
    /// Claimed: an attempt is in flight (or its lease has yet to expire).
    pub processing: u64,
    /// Queued for another attempt after a retryable failure.
    pub retrying: u64,
    /// Held for a paused connection.
    pub waiting: u64,
    /// The due time (ms) of the earliest delivery due at `now` (a claim
    /// would take it); `None` when nothing is due.
    pub oldest_due: Option<i64>,
    /// Connections paused (inactive), in every workspace.
    pub paused_connections: u64,
}

/// The connector versions and blocks the nodes of a cluster share.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedRegistry {
    pub uploaded: Vec<SharedVersion>,
    /// `(name, version)` of each blocked version.
    pub blocked: Vec<(String, String)>,
    /// Release decisions by `name@version`.
    pub releases: std::collections::BTreeMap<String, crate::registry::Release>,
}

/// An uploaded connector version, known by its component's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedVersion {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// Whether an attempt may start now under the cluster's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// No room: try again at this time (ms).
    RetryAt(i64),
}

/// Open the configured backend: the embedded one in `data_dir/store`, or
/// the PostgreSQL database (connecting and bringing its schema up to date).
pub async fn open(config: &StoreConfig, data_dir: &std::path::Path) -> Result<Arc<dyn Store>> {
    match config.backend.engine() {
        Some(engine) => {
            let (config, dir) = (config.clone(), data_dir.join("store"));
            // Opening an engine reads and locks files: off the async runtime.
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(engine, &dir, &config))
                .await
                .map_err(|e| StoreError::Engine(Box::new(e)))??;
            Ok(Arc::new(store))
        }
        None => Ok(Arc::new(PgStore::open(config).await?)),
    }
}

/// Bring the configured store's schema up to date, and nothing else
/// (`switchboard migrate`). Returns the schema version, `None` for the
/// embedded backends, which have no schema.
pub async fn migrate(config: &StoreConfig) -> Result<Option<i64>> {
    match config.backend {
        Backend::Postgres => postgres::migrate(config).await.map(Some),
        Backend::Fjall | Backend::Sled => Ok(None),
    }
}

#[cfg(test)]
mod conformance;
