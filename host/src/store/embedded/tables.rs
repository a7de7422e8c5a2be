//! The records and their indexes over a [`Kv`]: catalog, events, deliveries,
//! attempts, cache, replays and retention. Synchronous and single-threaded:
//! only the owner thread calls it, so a read-modify-write here cannot race.
//! The delay queue and every delivery state change live in `queue.rs`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::super::keys::{self, after, end_of, key, prefix};
use super::super::{CacheEntry, DeliveryQuery, EventQuery, Page, Result, StoreError};
use super::active::Active;
use super::cache_index::{self, CacheIndex};
use super::kv::{Batch, Kv};
use super::stats::Paused;
use crate::attempt::AttemptRecord;
use crate::model::{ApiKey, Connection, Delivery, Event, EventStatus, ReplayJob, Rule, Workspace};

pub struct Tables {
    pub(super) kv: Box<dyn Kv>,
    pub(super) active: Active,
    cache: CacheIndex,
    pub(super) paused: Paused,
    /// Where the retention sweep continues (an event key), so each bounded
    /// sweep call moves on instead of re-reading what it kept.
    sweep_from: Vec<u8>,
}

pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise")
}

pub(super) fn decode<T: DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T> {
    serde_json::from_slice(v)
        .map_err(|source| StoreError::Corrupt { key: String::from_utf8_lossy(k).into_owned(), source })
}

impl Tables {
    pub fn open(kv: Box<dyn Kv>) -> Result<Tables> {
        let mut tables = Tables {
            kv,
            active: Active::default(),
            cache: CacheIndex::default(),
            paused: Paused::default(),
            sweep_from: Vec::new(),
        };
        // Rebuild the memory index from the active markers and their records.
        let pfx = prefix(keys::ACTIVE, &[]);
        let mut ids = Vec::new();
        tables.index(&pfx, None, |id| {
            ids.push(id);
            true
        })?;
        for id in ids {
            if let Some(d) = tables.delivery(&id)? {
                tables.active.apply(&d);
            }
        }
        tables.index_cache()?;
        tables.index_paused()?;
        Ok(tables)
    }

    pub(super) fn get<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>> {
        match self.kv.get(k)? {
            Some(v) => decode(k, &v).map(Some),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, k: Vec<u8>, v: &T) -> Result<()> {
        let mut b = Batch::default();
        b.put(k, encode(v));
        self.kv.commit(b)
    }

    fn remove(&self, k: Vec<u8>) -> Result<bool> {
        let existed = self.kv.get(&k)?.is_some();
        let mut b = Batch::default();
        b.remove(k);
        self.kv.commit(b)?;
        Ok(existed)
    }

    /// Records under `pfx` after the page's cursor (an id), in key order,
    /// that `keep` accepts, at most `page.limit`.
    fn records<T: DeserializeOwned>(
        &self,
        pfx: &[u8],
        page: &Page,
        mut keep: impl FnMut(&T) -> bool,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut failed = None;
        self.kv.scan(&after(pfx, page.cursor.as_deref()), &end_of(pfx), &mut |k, v| match decode::<T>(k, v) {
            Ok(record) => {
                if keep(&record) {
                    out.push(record);
                }
                out.len() < page.limit.max(1)
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        failed.map_or(Ok(out), Err)
    }

    /// Ids at the end of index keys under `pfx`, after `cursor`, in order,
    /// fed to `take` until it returns false.
    pub(super) fn index(&self, pfx: &[u8], cursor: Option<&str>, mut take: impl FnMut(String) -> bool) -> Result<()> {
        self.kv.scan(&after(pfx, cursor), &end_of(pfx), &mut |k, _| {
            take(String::from_utf8_lossy(&k[pfx.len()..]).into_owned())
        })
    }

    /// Index ids resolved to records, filtered, at most `limit`.
    fn resolve<T: DeserializeOwned>(
        &self,
        pfx: &[u8],
        page: &Page,
        record_key: impl Fn(&str) -> Vec<u8>,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>> {
        let mut ids = Vec::new();
        let mut out = Vec::new();
        let mut cursor = page.cursor.clone();
        // In chunks: the scan callback cannot read the store itself.
        loop {
            ids.clear();
            self.index(pfx, cursor.as_deref(), |id| {
                ids.push(id);
                ids.len() < 256
            })?;
            for id in &ids {
                if let Some(r) = self.get::<T>(&record_key(id))?
                    && keep(&r)
                {
                    out.push(r);
                    if out.len() >= page.limit.max(1) {
                        return Ok(out);
                    }
                }
            }
            if ids.len() < 256 {
                return Ok(out);
            }
            cursor = ids.last().cloned();
        }
    }

    // --- catalog -------------------------------------------------------------
    pub fn put_workspace(&self, ws: &Workspace) -> Result<()> {
        self.put(key(keys::WORKSPACE, &[&ws.id]), ws)
    }
    pub fn workspace(&self, id: &str) -> Result<Option<Workspace>> {
        self.get(&key(keys::WORKSPACE, &[id]))
    }
    pub fn workspaces(&self, page: &Page) -> Result<Vec<Workspace>> {
        self.records(&prefix(keys::WORKSPACE, &[]), page, |_| true)
    }
    pub fn put_key(&self, k: &ApiKey) -> Result<()> {
        let mut b = Batch::default();
        b.put(key(keys::KEY, &[&k.hash]), encode(k));
        b.put(key(keys::WS_KEYS, &[&k.workspace, &k.id]), k.hash.as_bytes().to_vec());
        self.kv.commit(b)
    }
    pub fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        self.get(&key(keys::KEY, &[hash]))
    }
    pub fn keys(&self, workspace: &str) -> Result<Vec<ApiKey>> {
        let mut hashes = Vec::new();
        let pfx = prefix(keys::WS_KEYS, &[workspace]);
        self.kv.scan(&pfx, &end_of(&pfx), &mut |_, v| {
            hashes.push(String::from_utf8_lossy(v).into_owned());
            true
        })?;
        let mut out = Vec::new();
        for hash in hashes {
            out.extend(self.key_by_hash(&hash)?);
        }
        Ok(out)
    }
    pub fn put_connection(&mut self, c: &Connection) -> Result<()> {
        self.put(key(keys::CONNECTION, &[&c.workspace, &c.id]), c)?;
        self.paused.apply(c);
        Ok(())
    }
    pub fn connection(&self, workspace: &str, id: &str) -> Result<Option<Connection>> {
        self.get(&key(keys::CONNECTION, &[workspace, id]))
    }
    pub fn connections(&self, workspace: &str, page: &Page) -> Result<Vec<Connection>> {
        self.records(&prefix(keys::CONNECTION, &[workspace]), page, |_| true)
    }
    pub fn delete_connection(&mut self, workspace: &str, id: &str) -> Result<bool> {
        let existed = self.remove(key(keys::CONNECTION, &[workspace, id]))?;
        self.paused.remove(workspace, id);
        Ok(existed)
    }
    pub fn put_rule(&self, r: &Rule) -> Result<()> {
        self.put(key(keys::RULE, &[&r.workspace, &r.id]), r)
    }
    pub fn rule(&self, workspace: &str, id: &str) -> Result<Option<Rule>> {
        self.get(&key(keys::RULE, &[workspace, id]))
    }
    pub fn rules(&self, workspace: &str, page: &Page) -> Result<Vec<Rule>> {
        self.records(&prefix(keys::RULE, &[workspace]), page, |_| true)
    }
    pub fn delete_rule(&self, workspace: &str, id: &str) -> Result<bool> {
        self.remove(key(keys::RULE, &[workspace, id]))
    }

    // --- events and deliveries -------------------------------------------------
    pub fn event(&self, workspace: &str, id: &str) -> Result<Option<Event>> {
        self.get(&key(keys::EVENT, &[workspace, id]))
    }

    pub fn events(&self, workspace: &str, q: &EventQuery, page: &Page) -> Result<Vec<Event>> {
        let keep = |e: &Event| {
            q.event.as_ref().is_none_or(|n| *n == e.event)
                && q.resource.as_ref().is_none_or(|r| *r == e.resource)
                && q.resource_id.as_ref().is_none_or(|r| Some(r) == e.resource_id.as_ref())
        };
        match q.status {
            Some(EventStatus::Processing) => {
                let ids = self.active.processing_events(workspace, page.cursor.as_deref());
                self.fetch(ids, page, |id| key(keys::EVENT, &[workspace, id]), keep)
            }
            Some(status) => self.resolve(
                &prefix(keys::EVENT_STATUS, &[workspace, status.as_str()]),
                page,
                |id| key(keys::EVENT, &[workspace, id]),
                keep,
            ),
            None => self.records(&prefix(keys::EVENT, &[workspace]), page, keep),
        }
    }

    /// Records for `ids` (in order), filtered, at most `page.limit`.
    fn fetch<T: DeserializeOwned>(
        &self,
        ids: Vec<String>,
        page: &Page,
        record_key: impl Fn(&str) -> Vec<u8>,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.get::<T>(&record_key(&id))?
                && keep(&r)
            {
                out.push(r);
                if out.len() >= page.limit.max(1) {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        self.get(&key(keys::DELIVERY, &[id]))
    }

    pub fn deliveries_of(&self, event: &Event) -> Result<Vec<Delivery>> {
        let mut out = Vec::with_capacity(event.delivery_ids.len());
        for id in &event.delivery_ids {
            out.extend(self.delivery(id)?);
        }
        Ok(out)
    }

    /// Through the narrowest index the query allows: status (in memory
    /// for active statuses), then connection, then the workspace's time order.
    pub fn deliveries(&self, workspace: &str, q: &DeliveryQuery, page: &Page) -> Result<Vec<Delivery>> {
        let keep = |d: &Delivery| {
            d.workspace == workspace
                && q.status.is_none_or(|s| s == d.status)
                && q.connection.as_ref().is_none_or(|c| *c == d.connection)
                && q.rule.as_ref().is_none_or(|r| *r == d.rule)
                && q.since.is_none_or(|s| d.created_at >= s)
                && q.until.is_none_or(|u| d.created_at < u)
        };
        let record = |id: &str| key(keys::DELIVERY, &[id]);
        match (&q.status, &q.connection) {
            (Some(s), _) if !s.is_final() => {
                let ids = self.active.with_status(workspace, *s, page.cursor.as_deref());
                self.fetch(ids, page, record, keep)
            }
            (Some(s), _) => self.resolve(&prefix(keys::DELIVERY_STATUS, &[workspace, s.as_str()]), page, record, keep),
            (None, Some(c)) => self.resolve(&prefix(keys::CONN_DELIVERIES, &[c]), page, record, keep),
            (None, None) => self.resolve(&prefix(keys::WS_DELIVERIES, &[workspace]), page, record, keep),
        }
    }

    pub fn attempts(&self, delivery: &str) -> Result<Vec<AttemptRecord>> {
        self.records(&prefix(keys::ATTEMPT, &[delivery]), &Page::all(), |_| true)
    }

    pub fn waiting(&self, connection: &str) -> Vec<String> {
        self.active.waiting(connection)
    }

    // --- cache and replays ---------------------------------------------------------
    pub fn cache_get(&self, connection: &str, k: &str, now: i64) -> Result<Option<String>> {
        let entry: Option<CacheEntry> = self.get(&key(keys::CACHE, &[connection, k]))?;
        Ok(entry.filter(|e| e.expires_at > now).map(|e| e.value))
    }
    /// Store an entry, evicting what expires soonest in the connection's
    /// cache when it is at its quota, in one batch. An entry larger than the
    /// whole quota is not stored (a cache may forget; it must not grow).
    pub fn cache_set(&mut self, connection: &str, k: &str, entry: &CacheEntry) -> Result<()> {
        let bytes = cache_index::cost(k, &entry.value);
        let Some(evict) = self.cache.evictions_for(connection, k, bytes) else { return Ok(()) };
        let mut batch = Batch::default();
        for old in &evict {
            batch.remove(key(keys::CACHE, &[connection, old]));
        }
        batch.put(key(keys::CACHE, &[connection, k]), encode(entry));
        self.kv.commit(batch)?;
        for old in &evict {
            self.cache.remove(connection, old);
        }
        self.cache.insert(connection, k, entry.expires_at, bytes);
        Ok(())
    }

    /// Remove up to `max` expired cache entries.
    pub fn cache_sweep(&mut self, now: i64, max: usize) -> Result<usize> {
        let expired = self.cache.expired(now, max);
        let mut batch = Batch::default();
        for (connection, k) in &expired {
            batch.remove(key(keys::CACHE, &[connection, k]));
        }
        self.kv.commit(batch)?;
        for (connection, k) in &expired {
            self.cache.remove(connection, k);
        }
        Ok(expired.len())
    }

    /// Rebuild the cache's quota index from the cache table.
    fn index_cache(&mut self) -> Result<()> {
        let pfx = prefix(keys::CACHE, &[]);
        let mut failed = None;
        let cache = &mut self.cache;
        self.kv.scan(&pfx, &end_of(&pfx), &mut |k, v| {
            let rest = String::from_utf8_lossy(&k[pfx.len()..]).into_owned();
            let Some((connection, name)) = rest.split_once(keys::SEP as char) else { return true };
            match decode::<CacheEntry>(k, v) {
                Ok(entry) => cache.insert(connection, name, entry.expires_at, cache_index::cost(name, &entry.value)),
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            }
            true
        })?;
        failed.map_or(Ok(()), Err)
    }

    pub fn put_replay(&self, job: &ReplayJob) -> Result<()> {
        self.put(key(keys::REPLAY, &[&job.workspace, &job.id]), job)
    }
    pub fn replay(&self, workspace: &str, id: &str) -> Result<Option<ReplayJob>> {
        self.get(&key(keys::REPLAY, &[workspace, id]))
    }
    pub fn replays_pending(&self) -> Result<Vec<ReplayJob>> {
        let all: Vec<ReplayJob> = self.records(&prefix(keys::REPLAY, &[]), &Page::all(), |_| true)?;
        Ok(all.into_iter().filter(|j| j.state != crate::model::ReplayState::Completed).collect())
    }

    // --- retention -------------------------------------------------------------------
    /// Remove up to `max` final events older than `before`, looking at no
    /// more than `16 × max` events per call.
    pub fn sweep(&mut self, before: i64, max: usize) -> Result<usize> {
        let table = prefix(keys::EVENT, &[]);
        let from = if self.sweep_from.is_empty() { table.clone() } else { self.sweep_from.clone() };
        let mut old = Vec::new();
        let mut seen = 0;
        let mut last = None;
        let mut failed = None;
        self.kv.scan(&from, &end_of(&table), &mut |k, v| {
            seen += 1;
            last = Some(k.to_vec());
            match decode::<Event>(k, v) {
                Ok(e) if e.created_at < before => old.push(e),
                Ok(_) => {}
                Err(e) => failed = Some(e),
            }
            failed.is_none() && old.len() < max && seen < max.saturating_mul(16).max(64)
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        self.sweep_from = match last {
            Some(mut k) if seen >= max.saturating_mul(16).max(64) || old.len() >= max => {
                k.push(0);
                k
            }
            _ => Vec::new(), // reached the end: start over next time
        };
        let mut removed = 0;
        'events: for e in old {
            let deliveries = self.deliveries_of(&e)?;
            if deliveries.iter().any(|d| !d.status.is_final()) {
                continue 'events; // still in flight: keep it all
            }
            let mut b = Batch::default();
            b.remove(key(keys::EVENT, &[&e.workspace, &e.id]));
            let status = EventStatus::of(deliveries.iter().map(|d| &d.status));
            b.remove(key(keys::EVENT_STATUS, &[&e.workspace, status.as_str(), &e.id]));
            for d in deliveries {
                b.remove(key(keys::DELIVERY, &[&d.id]));
                b.remove(key(keys::WS_DELIVERIES, &[&e.workspace, &d.id]));
                b.remove(key(keys::CONN_DELIVERIES, &[&d.connection, &d.id]));
                b.remove(key(keys::DELIVERY_STATUS, &[&e.workspace, d.status.as_str(), &d.id]));
                let pfx = prefix(keys::ATTEMPT, &[&d.id]);
                let mut attempts = Vec::new();
                self.kv.scan(&pfx, &end_of(&pfx), &mut |k, _| {
                    attempts.push(k.to_vec());
                    true
                })?;
                for k in attempts {
                    b.remove(k);
                }
            }
            self.kv.commit(b)?;
            removed += 1;
        }
        Ok(removed)
    }
}
