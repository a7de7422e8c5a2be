//! The embedded backends: one process, the data dir on local disk. Every
//! operation runs on the owner thread (`owner.rs`) against `tables.rs`,
//! `queue.rs` and `stats.rs`, over fjall (the default) or sled (`kv.rs`).

mod active;
mod cache_index;
mod export;
mod kv;
mod owner;
mod queue;
mod stats;
mod tables;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::owner::Owner;
use self::tables::Tables;
use super::{
    Accept, Accepted, CacheEntry, ClaimPlan, Claimed, DeliveryQuery, EventQuery, Next, Page, QueueStats, Result, Store,
    StoreConfig, StoreError,
};
use crate::attempt::AttemptRecord;
use crate::model::{ApiKey, Connection, Delivery, Event, ReplayJob, Rule, Workspace};

/// Which embedded engine holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Fjall,
    Sled,
}

#[derive(Clone)]
pub struct EmbeddedStore {
    owner: Owner,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Open (or create) the store in `dir`. Blocking: call it off the async
    /// runtime. A previous instance in this process that is still closing
    /// holds the engine's lock for a moment, so a locked store is retried
    /// for a few seconds before giving up.
    pub fn open(engine: Engine, dir: &Path, config: &StoreConfig) -> Result<EmbeddedStore> {
        let dir = dir.join(match engine {
            Engine::Fjall => "fjall",
            Engine::Sled => "sled",
        });
        let cache = config.cache_bytes;
        let open = move || -> Result<Tables> {
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::Engine(Box::new(e)))?;
            let mut tries = 0;
            let kv: Box<dyn kv::Kv> = loop {
                let opened: Result<Box<dyn kv::Kv>> = match engine {
                    Engine::Fjall => kv::Fjall::open(&dir, cache).map(|k| Box::new(k) as Box<dyn kv::Kv>),
                    Engine::Sled => kv::Sled::open(&dir, cache).map(|k| Box::new(k) as Box<dyn kv::Kv>),
                };
                match opened {
                    Ok(kv) => break kv,
                    Err(e) if tries < 100 && is_locked(&e) => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) if is_locked(&e) => {
                        let words = format!("another switchboard is using the data dir {}", dir.display());
                        return Err(StoreError::Engine(Box::new(std::io::Error::other(words))));
                    }
                    Err(e) => return Err(e),
                }
            };
            Tables::open(kv)
        };
        Ok(EmbeddedStore { owner: Owner::start(open, config.timeout)? })
    }
}

fn is_locked(e: &StoreError) -> bool {
    let text = e.to_string().to_lowercase();
    let StoreError::Engine(inner) = e else { return false };
    let inner = inner.to_string().to_lowercase();
    text.contains("lock")
        || inner.contains("lock")
        || inner.contains("would block")
        || inner.contains("resource temporarily unavailable")
}

/// Clone the arguments into the job and run `$body` with `t` = the tables.
macro_rules! on_owner {
    ($self:ident, $durable:expr, |$t:ident $(, $arg:ident)*| $body:expr) => {{
        $(let $arg = $arg.to_owned();)*
        $self.owner.call($durable, move |$t: &mut Tables| $body).await
    }};
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn put_workspace(&self, ws: &Workspace) -> Result<()> {
        on_owner!(self, false, |t, ws| t.put_workspace(&ws))
    }
    async fn workspace(&self, id: &str) -> Result<Option<Workspace>> {
        on_owner!(self, false, |t, id| t.workspace(&id))
    }
    async fn workspaces(&self, page: &Page) -> Result<Vec<Workspace>> {
        on_owner!(self, false, |t, page| t.workspaces(&page))
    }
    async fn put_key(&self, key: &ApiKey) -> Result<()> {
        on_owner!(self, false, |t, key| t.put_key(&key))
    }
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        on_owner!(self, false, |t, hash| t.key_by_hash(&hash))
    }
    async fn keys(&self, workspace: &str) -> Result<Vec<ApiKey>> {
        on_owner!(self, false, |t, workspace| t.keys(&workspace))
    }
    async fn put_connection(&self, c: &Connection) -> Result<()> {
        on_owner!(self, false, |t, c| t.put_connection(&c))
    }
    async fn connection(&self, workspace: &str, id: &str) -> Result<Option<Connection>> {
        on_owner!(self, false, |t, workspace, id| t.connection(&workspace, &id))
    }
    async fn connections(&self, workspace: &str, page: &Page) -> Result<Vec<Connection>> {
        on_owner!(self, false, |t, workspace, page| t.connections(&workspace, &page))
    }
    async fn delete_connection(&self, workspace: &str, id: &str) -> Result<bool> {
        on_owner!(self, false, |t, workspace, id| t.delete_connection(&workspace, &id))
    }
    async fn put_rule(&self, r: &Rule) -> Result<()> {
        on_owner!(self, false, |t, r| t.put_rule(&r))
    }
    async fn rule(&self, workspace: &str, id: &str) -> Result<Option<Rule>> {
        on_owner!(self, false, |t, workspace, id| t.rule(&workspace, &id))
    }
    async fn rules(&self, workspace: &str, page: &Page) -> Result<Vec<Rule>> {
        on_owner!(self, false, |t, workspace, page| t.rules(&workspace, &page))
    }
    async fn delete_rule(&self, workspace: &str, id: &str) -> Result<bool> {
        on_owner!(self, false, |t, workspace, id| t.delete_rule(&workspace, &id))
    }

    async fn accept_all(&self, accepts: Vec<Accept>) -> Result<Vec<Accepted>> {
        self.owner.call(true, move |t: &mut Tables| t.accept_all(&accepts)).await
    }
    async fn sync(&self) -> Result<()> {
        self.owner.call(true, |_: &mut Tables| Ok(())).await
    }
    async fn event(&self, workspace: &str, id: &str) -> Result<Option<Event>> {
        on_owner!(self, false, |t, workspace, id| t.event(&workspace, &id))
    }
    async fn events(&self, workspace: &str, query: &EventQuery, page: &Page) -> Result<Vec<Event>> {
        on_owner!(self, false, |t, workspace, query, page| t.events(&workspace, &query, &page))
    }
    async fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        on_owner!(self, false, |t, id| t.delivery(&id))
    }
    async fn deliveries_of(&self, event: &Event) -> Result<Vec<Delivery>> {
        on_owner!(self, false, |t, event| t.deliveries_of(&event))
    }
    async fn deliveries(&self, workspace: &str, query: &DeliveryQuery, page: &Page) -> Result<Vec<Delivery>> {
        on_owner!(self, false, |t, workspace, query, page| t.deliveries(&workspace, &query, &page))
    }
    async fn attempts(&self, delivery: &str) -> Result<Vec<AttemptRecord>> {
        on_owner!(self, false, |t, delivery| t.attempts(&delivery))
    }

    async fn claim_due(&self, plan: ClaimPlan) -> Result<Vec<Claimed>> {
        self.owner.call(false, move |t: &mut Tables| t.claim_due(&plan)).await
    }
    async fn finish_attempt(
        &self,
        id: &str,
        lease: &str,
        attempt: &AttemptRecord,
        next: Next,
        now: i64,
    ) -> Result<bool> {
        on_owner!(self, false, |t, id, lease, attempt| t.finish_attempt(&id, &lease, &attempt, next, now))
    }
    async fn release(&self, id: &str, lease: &str, at: i64, now: i64) -> Result<bool> {
        on_owner!(self, false, |t, id, lease| t.release(&id, &lease, at, now))
    }
    async fn park(&self, id: &str, lease: &str, now: i64) -> Result<bool> {
        on_owner!(self, false, |t, id, lease| t.park(&id, &lease, now))
    }
    async fn requeue(&self, id: &str, at: i64, now: i64) -> Result<Option<Delivery>> {
        on_owner!(self, false, |t, id| t.requeue(&id, at, now))
    }
    async fn cancel(&self, id: &str, now: i64) -> Result<Option<Delivery>> {
        on_owner!(self, false, |t, id| t.cancel(&id, now))
    }
    async fn waiting(&self, connection: &str) -> Result<Vec<String>> {
        on_owner!(self, false, |t, connection| Ok(t.waiting(&connection)))
    }
    async fn next_due(&self, after: i64) -> Result<Option<i64>> {
        self.owner.call(false, move |t: &mut Tables| Ok(t.active.next_due_after(after))).await
    }
    async fn queue_stats(&self, now: i64) -> Result<QueueStats> {
        self.owner.call(false, move |t: &mut Tables| Ok(t.queue_stats(now))).await
    }

    async fn cache_get(&self, connection: &str, key: &str, now: i64) -> Result<Option<String>> {
        on_owner!(self, false, |t, connection, key| t.cache_get(&connection, &key, now))
    }
    async fn cache_set(&self, connection: &str, key: &str, entry: &CacheEntry) -> Result<()> {
        on_owner!(self, false, |t, connection, key, entry| t.cache_set(&connection, &key, &entry))
    }
    async fn cache_sweep(&self, now: i64, max: usize) -> Result<usize> {
        self.owner.call(false, move |t: &mut Tables| t.cache_sweep(now, max)).await
    }
    async fn put_replay(&self, job: &ReplayJob) -> Result<()> {
        on_owner!(self, false, |t, job| t.put_replay(&job))
    }
    async fn replay(&self, workspace: &str, id: &str) -> Result<Option<ReplayJob>> {
        on_owner!(self, false, |t, workspace, id| t.replay(&workspace, &id))
    }
    async fn replays_pending(&self) -> Result<Vec<ReplayJob>> {
        self.owner.call(false, |t: &mut Tables| t.replays_pending()).await
    }

    async fn sweep(&self, before: i64, max: usize) -> Result<usize> {
        self.owner.call(false, move |t: &mut Tables| t.sweep(before, max)).await
    }

    fn busy_for(&self) -> Option<Duration> {
        self.owner.busy_for()
    }
    async fn stall(&self, d: Duration) -> Result<()> {
        self.owner.spawn(move |_| std::thread::sleep(d))
    }
}
