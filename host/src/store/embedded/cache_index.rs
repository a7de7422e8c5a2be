//! The connector cache's quota and expiry index, in memory: per connection
//! its entries' sizes and expiries, and every entry by expiry time. It
//! decides what a write must evict to stay within the quota
//! (`CACHE_MAX_ENTRIES`, `CACHE_MAX_BYTES` per connection) and what the
//! sweeper removes; rebuilt from the cache table at open.

use std::collections::{BTreeSet, HashMap};

use super::super::{CACHE_MAX_BYTES, CACHE_MAX_ENTRIES};

#[derive(Debug, Default)]
struct Usage {
    /// key → (expires_at, bytes)
    entries: HashMap<String, (i64, usize)>,
    by_expiry: BTreeSet<(i64, String)>,
    bytes: usize,
}

#[derive(Debug, Default)]
pub struct CacheIndex {
    connections: HashMap<String, Usage>,
    /// (expires_at, connection, key) of every entry.
    expiring: BTreeSet<(i64, String, String)>,
}

/// What one entry costs against the quota: its key and value.
pub fn cost(key: &str, value: &str) -> usize {
    key.len() + value.len()
}

impl CacheIndex {
    /// Note an entry as stored (at open, and after every write).
    pub fn insert(&mut self, connection: &str, key: &str, expires_at: i64, bytes: usize) {
        self.remove(connection, key);
        let usage = self.connections.entry(connection.to_string()).or_default();
        usage.entries.insert(key.to_string(), (expires_at, bytes));
        usage.by_expiry.insert((expires_at, key.to_string()));
        usage.bytes += bytes;
        self.expiring.insert((expires_at, connection.to_string(), key.to_string()));
    }

    pub fn remove(&mut self, connection: &str, key: &str) {
        let Some(usage) = self.connections.get_mut(connection) else { return };
        let Some((expires_at, bytes)) = usage.entries.remove(key) else { return };
        usage.by_expiry.remove(&(expires_at, key.to_string()));
        usage.bytes -= bytes;
        if usage.entries.is_empty() {
            self.connections.remove(connection);
        }
        self.expiring.remove(&(expires_at, connection.to_string(), key.to_string()));
    }

    /// The keys to evict so that `key` (costing `bytes`) fits the
    /// connection's quota: those expiring soonest (expired ones first).
    /// `None` when the entry alone is larger than the quota.
    pub fn evictions_for(&self, connection: &str, key: &str, bytes: usize) -> Option<Vec<String>> {
        if bytes > CACHE_MAX_BYTES {
            return None;
        }
        let Some(usage) = self.connections.get(connection) else { return Some(Vec::new()) };
        let (mut entries, mut used) = (usage.entries.len(), usage.bytes);
        if let Some((_, old)) = usage.entries.get(key) {
            // Replacing an entry frees its own room first.
            entries -= 1;
            used -= old;
        }
        let mut evict = Vec::new();
        for (_, k) in &usage.by_expiry {
            if entries < CACHE_MAX_ENTRIES && used + bytes <= CACHE_MAX_BYTES {
                break;
            }
            if k != key {
                entries -= 1;
                used -= usage.entries[k].1;
                evict.push(k.clone());
            }
        }
        Some(evict)
    }

    /// Up to `max` (connection, key) whose expiry is at or before `now`.
    pub fn expired(&self, now: i64, max: usize) -> Vec<(String, String)> {
        self.expiring
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(max)
            .map(|(_, c, k)| (c.clone(), k.clone()))
            .collect()
    }

    #[cfg(test)]
    fn usage(&self, connection: &str) -> (usize, usize) {
        self.connections.get(connection).map_or((0, 0), |u| (u.entries.len(), u.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_connection_evicts_what_expires_soonest_and_only_its_own() {
        let mut index = CacheIndex::default();
        for i in 0..CACHE_MAX_ENTRIES {
            index.insert("c1", &format!("k{i}"), 1_000 + i as i64, 10);
        }
        index.insert("c2", "other", 0, 10);
        assert_eq!(index.evictions_for("c1", "k5", 10), Some(vec![]), "replacing a key needs no room");
        assert_eq!(index.evictions_for("c1", "new", 10), Some(vec!["k0".to_string()]));
        assert_eq!(index.evictions_for("c1", "big", CACHE_MAX_BYTES).map(|e| e.len()), Some(CACHE_MAX_ENTRIES));
        assert_eq!(index.evictions_for("c1", "huge", CACHE_MAX_BYTES + 1), None);
        assert_eq!(index.usage("c2"), (1, 10));
    }

    #[test]
    fn expired_entries_are_listed_oldest_first_until_removed() {
        let mut index = CacheIndex::default();
        index.insert("c1", "a", 5, 1);
        index.insert("c2", "b", 3, 1);
        index.insert("c1", "c", 50, 1);
        assert_eq!(index.expired(10, 10), [("c2".into(), "b".into()), ("c1".into(), "a".into())]);
        assert_eq!(index.expired(10, 1).len(), 1, "at most `max`");
        index.remove("c2", "b");
        index.insert("c1", "a", 100, 1);
        assert!(index.expired(10, 10).is_empty(), "rewritten with a later expiry");
        assert_eq!(index.usage("c1"), (2, 2));
        assert_eq!(index.usage("c2"), (0, 0));
    }
}
