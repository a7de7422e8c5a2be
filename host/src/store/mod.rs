//! Durable state behind one trait, so a second backend can pass the same
//! conformance suite. [`SledStore`] is the default (all sled code lives in
//! `sled.rs`).
//!
//! Writes that must be atomic are single calls here: accepting an event with
//! its deliveries, due entries and idempotency record; finishing an attempt
//! with its record and the delivery's next state. Durability is separate:
//! [`Store::sync`] makes everything written so far survive a crash, so the
//! ingest path can group-commit (many accepts, one sync).

pub mod commit;
mod keys;
mod sled;

use serde::{Deserialize, Serialize};

pub use self::sled::SledStore;
use crate::attempt::AttemptRecord;
use crate::model::{ApiKey, Connection, Delivery, DeliveryStatus, Event, ReplayJob, Rule, Workspace};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A page request: records after `cursor` (exclusive), at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub cursor: Option<String>,
    pub limit: usize,
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

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Completed,
    Failed,
    Retry {
        at: i64,
    },
    /// The connection is paused: wait, without a due time, until it is fixed.
    Wait,
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
}

/// A cached value with its expiry (ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub value: String,
    pub expires_at: i64,
}

pub trait Store: Send + Sync + 'static {
    // --- catalog -----------------------------------------------------------
    fn put_workspace(&self, ws: &Workspace) -> Result<()>;
    fn workspace(&self, id: &str) -> Result<Option<Workspace>>;
    fn workspaces(&self, page: &Page) -> Result<Vec<Workspace>>;
    fn put_key(&self, key: &ApiKey) -> Result<()>;
    fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>>;
    fn keys(&self, workspace: &str) -> Result<Vec<ApiKey>>;
    fn put_connection(&self, c: &Connection) -> Result<()>;
    fn connection(&self, workspace: &str, id: &str) -> Result<Option<Connection>>;
    fn connections(&self, workspace: &str, page: &Page) -> Result<Vec<Connection>>;
    fn delete_connection(&self, workspace: &str, id: &str) -> Result<bool>;
    fn put_rule(&self, r: &Rule) -> Result<()>;
    fn rule(&self, workspace: &str, id: &str) -> Result<Option<Rule>>;
    fn rules(&self, workspace: &str, page: &Page) -> Result<Vec<Rule>>;
    fn delete_rule(&self, workspace: &str, id: &str) -> Result<bool>;

    // --- events and deliveries ---------------------------------------------
    /// Atomically write the event, its deliveries (due now) and idempotency
    /// record, unless the idempotency key is already known. Not yet durable.
    fn accept(&self, accept: &Accept) -> Result<Accepted>;
    /// `accept` for many events at once (the group commit's unit); a backend
    /// may write them in one batch. Results are in input order.
    fn accept_all(&self, accepts: &[&Accept]) -> Result<Vec<Accepted>> {
        accepts.iter().map(|a| self.accept(a)).collect()
    }
    /// Make every write so far durable (flush and fsync).
    fn sync(&self) -> Result<()>;
    fn event(&self, workspace: &str, id: &str) -> Result<Option<Event>>;
    fn events(&self, workspace: &str, query: &EventQuery, page: &Page) -> Result<Vec<Event>>;
    fn delivery(&self, id: &str) -> Result<Option<Delivery>>;
    fn deliveries(&self, workspace: &str, query: &DeliveryQuery, page: &Page) -> Result<Vec<Delivery>>;
    fn attempts(&self, delivery: &str) -> Result<Vec<AttemptRecord>>;

    // --- the delay queue -----------------------------------------------------
    /// Claim up to `limit` deliveries due at `now`: each gets a fresh lease
    /// token and becomes due again at `now + lease_ms` unless finished.
    fn claim_due(&self, now: i64, limit: usize, lease_ms: i64) -> Result<Vec<Delivery>>;
    /// Record an attempt and move the delivery on. Ignored (false) when the
    /// lease token is stale: another worker owns the delivery now.
    fn finish_attempt(&self, id: &str, lease: &str, attempt: &AttemptRecord, next: Next, now: i64) -> Result<bool>;
    /// Give a claimed delivery back, due at `at`, without an attempt (its
    /// connection was at its rate or concurrency limit).
    fn release(&self, id: &str, lease: &str, at: i64) -> Result<bool>;
    /// Move a claimed delivery to `waiting` without an attempt: its
    /// connection is paused.
    fn park(&self, id: &str, lease: &str, now: i64) -> Result<bool>;
    /// Queue a delivery again at `at` whatever its state, unless it is in
    /// flight. Returns the updated delivery, or None when not found.
    fn requeue(&self, id: &str, at: i64, now: i64) -> Result<Option<Delivery>>;
    fn cancel(&self, id: &str, now: i64) -> Result<Option<Delivery>>;
    /// Deliveries waiting for a paused connection.
    fn waiting(&self, connection: &str) -> Result<Vec<String>>;
    /// After a restart no worker holds a lease: make every claimed delivery due now.
    fn release_all_leases(&self, now: i64) -> Result<usize>;
    /// The earliest due time in the queue.
    fn next_due(&self) -> Result<Option<i64>>;

    // --- the connector cache and replays -------------------------------------
    fn cache_get(&self, connection: &str, key: &str, now: i64) -> Result<Option<String>>;
    fn cache_set(&self, connection: &str, key: &str, entry: &CacheEntry) -> Result<()>;
    fn put_replay(&self, job: &ReplayJob) -> Result<()>;
    fn replay(&self, workspace: &str, id: &str) -> Result<Option<ReplayJob>>;
    fn replays_pending(&self) -> Result<Vec<ReplayJob>>;

    // --- retention ---------------------------------------------------------------
    /// Remove final events older than `before` with their deliveries and
    /// attempts. Returns how many events were removed.
    fn sweep(&self, before: i64) -> Result<usize>;
}

#[cfg(test)]
mod conformance;
