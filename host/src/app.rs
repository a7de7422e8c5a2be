//! The running service's shared state: configuration, store, sandbox,
//! registry, master key and the wiring between ingest and delivery.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use crate::config::Config;
use crate::model::{ApiKey, Rule};
use crate::registry::Registry;
use crate::routing::fields::FieldTemplates;
use crate::routing::filter::Filter;
use crate::runtime::Runtime;
use crate::secrets::MasterKey;
use crate::store::{Page, Store, StoreError};

pub struct App {
    config: Config,
    store: Arc<dyn Store>,
    runtime: Runtime,
    registry: Registry,
    master_key: MasterKey,
    /// SHA-256 of the admin token.
    admin_token_hash: [u8; 32],
    /// Wakes the scheduler when deliveries become due now.
    wake: Notify,
    /// The delivery workers run (false once shutdown began): `/readyz`.
    workers_up: std::sync::atomic::AtomicBool,
    rules: RwLock<HashMap<String, Arc<Vec<CompiledRule>>>>,
    /// Per-workspace ingest buckets: (tokens, last refill ms).
    ingest_buckets: std::sync::Mutex<HashMap<String, (f64, i64)>>,
    /// Keys by hash, so authenticating a request does not wait on the
    /// store; every key write goes through [`App::put_key`], which updates it.
    keys: RwLock<HashMap<String, ApiKey>>,
    /// Bumped by every key write: a lookup that raced with one is not cached.
    keys_generation: std::sync::atomic::AtomicU64,
    /// What operator alerts remember on this node (`alerts.rs`).
    pub(crate) alerts: crate::alerts::Alerts,
    /// Failure ratios of connector versions, for automatic rollback.
    pub(crate) rollout: crate::rollout::RolloutWatch,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("listen", &self.config.listen).finish_non_exhaustive()
    }
}

/// A rule ready for matching at ingest.
#[derive(Debug)]
pub struct CompiledRule {
    pub rule: Rule,
    pub filter: Option<Filter>,
    /// The connector of the rule's connection, copied into each delivery.
    pub connector: String,
}

impl App {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        runtime: Runtime,
        master_key: MasterKey,
        admin_token_hash: [u8; 32],
    ) -> App {
        App {
            config,
            store,
            runtime,
            registry: Registry::default(),
            master_key,
            admin_token_hash,
            wake: Notify::new(),
            workers_up: std::sync::atomic::AtomicBool::new(true),
            rules: RwLock::new(HashMap::new()),
            ingest_buckets: std::sync::Mutex::new(HashMap::new()),
            keys: RwLock::new(HashMap::new()),
            keys_generation: std::sync::atomic::AtomicU64::new(0),
            alerts: crate::alerts::Alerts::default(),
            rollout: crate::rollout::RolloutWatch::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.master_key
    }

    pub fn admin_token_hash(&self) -> &[u8; 32] {
        &self.admin_token_hash
    }

    /// Wakes the scheduler (deliveries became due now), or waits for that.
    pub fn wake(&self) -> &Notify {
        &self.wake
    }

    /// The workspace's active rules, compiled; cached until a rule changes.
    pub async fn rules_for(&self, workspace: &str) -> Result<Arc<Vec<CompiledRule>>, StoreError> {
        if let Some(r) = self.rules.read().unwrap_or_else(|p| p.into_inner()).get(workspace) {
            return Ok(r.clone());
        }
        let mut compiled = Vec::new();
        let mut page = Page { cursor: None, limit: 500 };
        loop {
            let batch = self.store.rules(workspace, &page).await?;
            let done = batch.len() < page.limit;
            page.cursor = batch.last().map(|r| r.id.clone());
            for rule in batch.into_iter().filter(|r| r.active) {
                // Saved rules were validated; a filter that no longer parses matches nothing.
                let filter = match &rule.filter {
                    Some(f) => match Filter::parse(f) {
                        Ok(f) => Some(f),
                        Err(_) => continue,
                    },
                    None => None,
                };
                if FieldTemplates::compile(&rule.fields).is_err() {
                    continue;
                }
                let Some(connection) = self.store.connection(workspace, &rule.connection).await? else { continue };
                compiled.push(CompiledRule { rule, filter, connector: connection.connector });
            }
            if done {
                break;
            }
        }
        let compiled = Arc::new(compiled);
        self.rules.write().unwrap_or_else(|p| p.into_inner()).insert(workspace.to_string(), compiled.clone());
        Ok(compiled)
    }

    /// Where uploaded connector components are kept.
    pub fn uploads_dir(&self) -> std::path::PathBuf {
        self.config.data_dir.join("connectors")
    }

    /// Where compiled artifacts are cached (by component hash and engine).
    pub fn artifacts_dir(&self) -> std::path::PathBuf {
        self.config.data_dir.join("artifacts")
    }

    /// Take `n` events from the workspace's ingest bucket, or say how many
    /// seconds to wait (the Retry-After).
    pub fn take_ingest(&self, workspace: &str, n: usize, now_ms: i64) -> Result<(), u64> {
        let Some(rate) = self.config.ingest.rate_per_workspace else { return Ok(()) };
        let capacity = rate.max(1.0);
        let mut buckets = self.ingest_buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets.entry(workspace.to_string()).or_insert((capacity, now_ms));
        *tokens = (*tokens + (now_ms - *last).max(0) as f64 / 1000.0 * rate).min(capacity);
        *last = now_ms;
        let n = n as f64;
        if *tokens >= n {
            *tokens -= n;
            return Ok(());
        }
        Err((((n.min(capacity) - *tokens) / rate).ceil() as u64).max(1))
    }

    /// The key with this hash (cached; unknown keys are not).
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        if let Some(k) = self.keys.read().unwrap_or_else(|p| p.into_inner()).get(hash) {
            return Ok(Some(k.clone()));
        }
        let generation = self.keys_generation.load(std::sync::atomic::Ordering::SeqCst);
        let found = self.store.key_by_hash(hash).await?;
        if let Some(k) = &found {
            let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
            if self.keys_generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
                keys.insert(hash.to_string(), k.clone());
            }
        }
        Ok(found)
    }

    /// Store a key (new or revoked); the cache follows at once.
    pub async fn put_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.keys_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.keys.write().unwrap_or_else(|p| p.into_inner()).remove(&key.hash);
        let stored = self.store.put_key(key).await;
        self.keys_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.keys.write().unwrap_or_else(|p| p.into_inner()).remove(&key.hash);
        stored
    }

    pub fn workers_up(&self) -> bool {
        self.workers_up.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_workers_up(&self, up: bool) {
        self.workers_up.store(up, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn rules_changed(&self, workspace: &str) {
        self.rules.write().unwrap_or_else(|p| p.into_inner()).remove(workspace);
    }
}
