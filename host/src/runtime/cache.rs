//! The `cache` import's storage: a key/value map per connection, kept in
//! the store by the server ([`StoreCache`]) and in memory for one-off runs
//! ([`MemoryCache`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-connection cache. `scope` is the connection id: guests never choose it.
#[async_trait::async_trait]
pub trait ConnectorCache: Send + Sync + 'static {
    async fn get(&self, scope: &str, key: &str) -> Option<String>;
    async fn set(&self, scope: &str, key: &str, value: &str, ttl: Duration);
}

/// The `cache` import backed by the store (the production one), so cached
/// lookups survive restarts; the store keeps each connection's quota.
pub struct StoreCache(pub std::sync::Arc<dyn crate::store::Store>);

#[async_trait::async_trait]
impl ConnectorCache for StoreCache {
    async fn get(&self, scope: &str, key: &str) -> Option<String> {
        self.0.cache_get(scope, key, crate::time::now_ms()).await.ok().flatten()
    }
    async fn set(&self, scope: &str, key: &str, value: &str, ttl: Duration) {
        let expires_at = crate::time::now_ms() + ttl.as_millis() as i64;
        let entry = crate::store::CacheEntry { value: value.to_string(), expires_at };
        if let Err(e) = self.0.cache_set(scope, key, &entry).await {
            tracing::warn!(error = %e, "connector cache write failed");
        }
    }
}

/// Bounded in-memory cache with expiry (tests and `connector run`).
#[derive(Debug)]
pub struct MemoryCache {
    entries: Mutex<HashMap<(String, String), (String, Instant)>>,
    max_entries: usize,
}

impl MemoryCache {
    pub fn new(max_entries: usize) -> Self {
        MemoryCache { entries: Mutex::new(HashMap::new()), max_entries }
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

#[async_trait::async_trait]
impl ConnectorCache for MemoryCache {
    async fn get(&self, scope: &str, key: &str) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (value, expires) = entries.get(&(scope.to_string(), key.to_string()))?;
        (*expires > Instant::now()).then(|| value.clone())
    }

    async fn set(&self, scope: &str, key: &str, value: &str, ttl: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if entries.len() >= self.max_entries {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.max_entries {
                return; // Full of live entries: a cache may forget, it must not grow without bound.
            }
        }
        entries.insert((scope.to_string(), key.to_string()), (value.to_string(), now + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scopes_are_isolated_and_entries_expire() {
        let cache = MemoryCache::new(10);
        cache.set("conn_a", "tag:x", "16", Duration::from_secs(60)).await;
        assert_eq!(cache.get("conn_a", "tag:x").await.as_deref(), Some("16"));
        assert_eq!(cache.get("conn_b", "tag:x").await, None);
        cache.set("conn_a", "old", "1", Duration::ZERO).await;
        assert_eq!(cache.get("conn_a", "old").await, None);
    }
}
