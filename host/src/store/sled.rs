//! The sled backend: one tree, JSON values, keys from `keys.rs`. The only
//! file that names sled.
//!
//! Durability: sled's `flush` writes its log but, on sled 0.34, is not an
//! honest fsync of the data file, so [`SledStore::sync`] flushes and then
//! `fsync`s the data file and its directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::keys::{self, key, prefix};
use super::{Accept, Accepted, CacheEntry, DeliveryQuery, EventQuery, Next, Page, Result, Store, StoreError};
use crate::attempt::AttemptRecord;
use crate::model::{ApiKey, Connection, Delivery, DeliveryStatus, Event, ReplayJob, Rule, Workspace};

const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct IdemRecord {
    event: String,
    at: i64,
}

pub struct SledStore {
    tree: sled::Db,
    dir: PathBuf,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("dir", &self.dir).finish()
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise")
}

fn decode<T: DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(k))))
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<SledStore> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        // A previous instance in this process (a fast restart) may still be
        // letting go of the database lock; wait for it briefly.
        let mut attempts = 0;
        let tree = loop {
            match sled::Config::new().path(dir).cache_capacity(256 << 20).open() {
                Ok(tree) => break tree,
                Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock && attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(backend(e)),
            }
        };
        Ok(SledStore { tree, dir: dir.to_path_buf() })
    }

    fn get<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>> {
        match self.tree.get(k).map_err(backend)? {
            Some(v) => decode(k, &v).map(Some),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, k: &[u8], v: &T) -> Result<()> {
        self.tree.insert(k, encode(v)).map_err(backend)?;
        Ok(())
    }

    /// Records under `prefix`, in key order, after `cursor` (the last id seen).
    fn scan<T: DeserializeOwned>(&self, pfx: &[u8], page: &Page, mut keep: impl FnMut(&T) -> bool) -> Result<Vec<T>> {
        let start = match &page.cursor {
            Some(c) => {
                let mut s = pfx.to_vec();
                s.extend_from_slice(c.as_bytes());
                s.push(0);
                s
            }
            None => pfx.to_vec(),
        };
        let mut end = pfx.to_vec();
        end.push(0xff);
        let mut out = Vec::new();
        for item in self.tree.range(start..end) {
            let (k, v) = item.map_err(backend)?;
            let record: T = decode(&k, &v)?;
            if keep(&record) {
                out.push(record);
                if out.len() >= page.limit.max(1) {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Move a delivery in one transaction, if `check` accepts its current state.
    fn update_delivery(
        &self,
        id: &str,
        check: impl Fn(&Delivery) -> bool,
        change: impl Fn(
            &mut Delivery,
            &sled::transaction::TransactionalTree,
        ) -> std::result::Result<(), ConflictableTransactionError<StoreError>>,
    ) -> Result<Option<Delivery>> {
        let dkey = key(keys::DELIVERY, &[id]);
        let result = self.tree.transaction(|tx| {
            let Some(raw) = tx.get(&dkey)? else { return Ok(None) };
            let mut d: Delivery = decode(&dkey, &raw).map_err(ConflictableTransactionError::Abort)?;
            if !check(&d) {
                return Ok(None);
            }
            if let Some(at) = d.due_at {
                tx.remove(keys::due(at, id))?;
            }
            if d.status == DeliveryStatus::Waiting {
                tx.remove(key(keys::WAITING, &[&d.connection, id]))?;
            }
            change(&mut d, tx)?;
            if let Some(at) = d.due_at {
                tx.insert(keys::due(at, id), b"".as_slice())?;
            }
            if d.status == DeliveryStatus::Waiting {
                tx.insert(key(keys::WAITING, &[&d.connection, id]), b"".as_slice())?;
            }
            tx.insert(dkey.as_slice(), encode(&d))?;
            Ok(Some(d))
        });
        match result {
            Ok(d) => Ok(d),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(backend(e)),
        }
    }
}

impl Store for SledStore {
    fn put_workspace(&self, ws: &Workspace) -> Result<()> {
        self.put(&key(keys::WORKSPACE, &[&ws.id]), ws)
    }
    fn workspace(&self, id: &str) -> Result<Option<Workspace>> {
        self.get(&key(keys::WORKSPACE, &[id]))
    }
    fn workspaces(&self, page: &Page) -> Result<Vec<Workspace>> {
        self.scan(&prefix(keys::WORKSPACE, &[]), page, |_| true)
    }
    fn put_key(&self, k: &ApiKey) -> Result<()> {
        let mut batch = sled::Batch::default();
        batch.insert(key(keys::KEY, &[&k.hash]), encode(k));
        batch.insert(key(keys::WS_KEYS, &[&k.workspace, &k.id]), k.hash.as_bytes());
        self.tree.apply_batch(batch).map_err(backend)
    }
    fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        self.get(&key(keys::KEY, &[hash]))
    }
    fn keys(&self, workspace: &str) -> Result<Vec<ApiKey>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix(keys::WS_KEYS, &[workspace])) {
            let (_, hash) = item.map_err(backend)?;
            if let Some(k) = self.key_by_hash(&String::from_utf8_lossy(&hash))? {
                out.push(k);
            }
        }
        Ok(out)
    }
    fn put_connection(&self, c: &Connection) -> Result<()> {
        self.put(&key(keys::CONNECTION, &[&c.workspace, &c.id]), c)
    }
    fn connection(&self, workspace: &str, id: &str) -> Result<Option<Connection>> {
        self.get(&key(keys::CONNECTION, &[workspace, id]))
    }
    fn connections(&self, workspace: &str, page: &Page) -> Result<Vec<Connection>> {
        self.scan(&prefix(keys::CONNECTION, &[workspace]), page, |_| true)
    }
    fn delete_connection(&self, workspace: &str, id: &str) -> Result<bool> {
        Ok(self.tree.remove(key(keys::CONNECTION, &[workspace, id])).map_err(backend)?.is_some())
    }
    fn put_rule(&self, r: &Rule) -> Result<()> {
        self.put(&key(keys::RULE, &[&r.workspace, &r.id]), r)
    }
    fn rule(&self, workspace: &str, id: &str) -> Result<Option<Rule>> {
        self.get(&key(keys::RULE, &[workspace, id]))
    }
    fn rules(&self, workspace: &str, page: &Page) -> Result<Vec<Rule>> {
        self.scan(&prefix(keys::RULE, &[workspace]), page, |_| true)
    }
    fn delete_rule(&self, workspace: &str, id: &str) -> Result<bool> {
        Ok(self.tree.remove(key(keys::RULE, &[workspace, id])).map_err(backend)?.is_some())
    }

    fn accept(&self, a: &Accept) -> Result<Accepted> {
        self.accept_all(&[a]).map(|mut r| r.remove(0))
    }

    fn accept_all(&self, accepts: &[&Accept]) -> Result<Vec<Accepted>> {
        // One sled batch for the whole group: atomic, and far cheaper than
        // a batch per event. Callers serialise accepts (one writer), so the
        // idempotency checks cannot race with another writer.
        let mut batch = sled::Batch::default();
        let mut in_batch: std::collections::HashMap<Vec<u8>, Event> = std::collections::HashMap::new();
        let mut results = Vec::with_capacity(accepts.len());
        for a in accepts {
            let ws = &a.event.workspace;
            let idem_key = a.idempotency.as_ref().map(|h| key(keys::IDEMPOTENCY, &[ws, h]));
            if let Some(ik) = &idem_key {
                if let Some(original) = in_batch.get(ik) {
                    results.push(Accepted::Duplicate(original.clone()));
                    continue;
                }
                if let Some(seen) = self.get::<IdemRecord>(ik)?
                    && a.event.created_at - seen.at < IDEMPOTENCY_WINDOW_MS
                    && let Some(original) = self.event(ws, &seen.event)?
                {
                    results.push(Accepted::Duplicate(original));
                    continue;
                }
            }
            batch.insert(key(keys::EVENT, &[ws, &a.event.id]), encode(&a.event));
            for d in &a.deliveries {
                batch.insert(key(keys::DELIVERY, &[&d.id]), encode(d));
                batch.insert(key(keys::WS_DELIVERIES, &[ws, &d.id]), b"".as_slice());
                if let Some(at) = d.due_at {
                    batch.insert(keys::due(at, &d.id), b"".as_slice());
                }
            }
            if let Some(ik) = idem_key {
                batch.insert(ik.clone(), encode(&IdemRecord { event: a.event.id.clone(), at: a.event.created_at }));
                in_batch.insert(ik, a.event.clone());
            }
            results.push(Accepted::New(a.event.clone()));
        }
        self.tree.apply_batch(batch).map_err(backend)?;
        Ok(results)
    }

    fn sync(&self) -> Result<()> {
        self.tree.flush().map_err(backend)?;
        File::open(self.dir.join("db")).and_then(|f| f.sync_all()).map_err(backend)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(backend)?;
        Ok(())
    }

    fn event(&self, workspace: &str, id: &str) -> Result<Option<Event>> {
        self.get(&key(keys::EVENT, &[workspace, id]))
    }
    fn events(&self, workspace: &str, q: &EventQuery, page: &Page) -> Result<Vec<Event>> {
        self.scan(&prefix(keys::EVENT, &[workspace]), page, |e: &Event| {
            q.event.as_ref().is_none_or(|n| *n == e.event)
                && q.resource.as_ref().is_none_or(|r| *r == e.resource)
                && q.resource_id.as_ref().is_none_or(|r| Some(r) == e.resource_id.as_ref())
        })
    }
    fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        self.get(&key(keys::DELIVERY, &[id]))
    }
    fn deliveries(&self, workspace: &str, q: &DeliveryQuery, page: &Page) -> Result<Vec<Delivery>> {
        let pfx = prefix(keys::WS_DELIVERIES, &[workspace]);
        let mut start = pfx.clone();
        if let Some(c) = &page.cursor {
            start.extend_from_slice(c.as_bytes());
            start.push(0);
        }
        let mut end = pfx.clone();
        end.push(0xff);
        let mut out = Vec::new();
        for item in self.tree.range(start..end) {
            let (k, _) = item.map_err(backend)?;
            let id = String::from_utf8_lossy(&k[pfx.len()..]).into_owned();
            let Some(d) = self.delivery(&id)? else { continue };
            let keep = q.status.is_none_or(|s| s == d.status)
                && q.connection.as_ref().is_none_or(|c| *c == d.connection)
                && q.rule.as_ref().is_none_or(|r| *r == d.rule)
                && q.since.is_none_or(|s| d.created_at >= s)
                && q.until.is_none_or(|u| d.created_at < u);
            if keep {
                out.push(d);
                if out.len() >= page.limit.max(1) {
                    break;
                }
            }
        }
        Ok(out)
    }
    fn attempts(&self, delivery: &str) -> Result<Vec<AttemptRecord>> {
        self.scan(&prefix(keys::ATTEMPT, &[delivery]), &Page { cursor: None, limit: usize::MAX }, |_| true)
    }

    fn claim_due(&self, now: i64, limit: usize, lease_ms: i64) -> Result<Vec<Delivery>> {
        let mut ids = Vec::new();
        for item in self.tree.range(prefix(keys::DUE, &[])..keys::due_upto(now)) {
            let (k, _) = item.map_err(backend)?;
            if let Some(id) = keys::due_delivery(&k) {
                ids.push(id.to_string());
            }
            if ids.len() >= limit {
                break;
            }
        }
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let token = ulid::Ulid::new().to_string();
            let updated = self.update_delivery(
                &id,
                |d| !d.status.is_final() && d.due_at.is_some_and(|at| at <= now),
                |d, _| {
                    d.lease = Some(token.clone());
                    d.due_at = Some(now + lease_ms);
                    d.status = DeliveryStatus::Processing;
                    d.updated_at = now;
                    Ok(())
                },
            )?;
            claimed.extend(updated);
        }
        Ok(claimed)
    }

    fn finish_attempt(&self, id: &str, lease: &str, attempt: &AttemptRecord, next: Next, now: i64) -> Result<bool> {
        let record = encode(attempt);
        let updated = self.update_delivery(
            id,
            |d| d.lease.as_deref() == Some(lease),
            |d, tx| {
                d.attempt_count = d.attempt_count.max(attempt.n);
                tx.insert(keys::attempt(id, attempt.n), record.clone())?;
                d.lease = None;
                d.updated_at = now;
                d.connector_version = Some(attempt.connector_version.clone());
                d.last_outcome = Some(attempt.outcome.as_str().to_string());
                d.last_error = attempt.error.clone();
                (d.status, d.due_at) = match next {
                    Next::Completed => (DeliveryStatus::Completed, None),
                    Next::Failed => (DeliveryStatus::Failed, None),
                    Next::Retry { at } => (DeliveryStatus::Retrying, Some(at)),
                    Next::Wait => (DeliveryStatus::Waiting, None),
                };
                Ok(())
            },
        )?;
        Ok(updated.is_some())
    }

    fn release(&self, id: &str, lease: &str, at: i64) -> Result<bool> {
        let updated = self.update_delivery(
            id,
            |d| d.lease.as_deref() == Some(lease),
            |d, _| {
                d.lease = None;
                d.due_at = Some(at);
                d.status = if d.attempt_count == 0 { DeliveryStatus::Pending } else { DeliveryStatus::Retrying };
                Ok(())
            },
        )?;
        Ok(updated.is_some())
    }

    fn park(&self, id: &str, lease: &str, now: i64) -> Result<bool> {
        let updated = self.update_delivery(
            id,
            |d| d.lease.as_deref() == Some(lease),
            |d, _| {
                d.lease = None;
                d.due_at = None;
                d.status = DeliveryStatus::Waiting;
                d.updated_at = now;
                Ok(())
            },
        )?;
        Ok(updated.is_some())
    }

    fn requeue(&self, id: &str, at: i64, now: i64) -> Result<Option<Delivery>> {
        self.update_delivery(
            id,
            |d| d.lease.is_none(),
            |d, _| {
                d.due_at = Some(at);
                d.status = if d.attempt_count == 0 { DeliveryStatus::Pending } else { DeliveryStatus::Retrying };
                d.updated_at = now;
                Ok(())
            },
        )
    }

    fn cancel(&self, id: &str, now: i64) -> Result<Option<Delivery>> {
        self.update_delivery(
            id,
            |d| !d.status.is_final(),
            |d, _| {
                d.status = DeliveryStatus::Canceled;
                d.due_at = None;
                d.lease = None;
                d.updated_at = now;
                Ok(())
            },
        )
    }

    fn waiting(&self, connection: &str) -> Result<Vec<String>> {
        let pfx = prefix(keys::WAITING, &[connection]);
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(&pfx) {
            let (k, _) = item.map_err(backend)?;
            out.push(String::from_utf8_lossy(&k[pfx.len()..]).into_owned());
        }
        Ok(out)
    }

    fn release_all_leases(&self, now: i64) -> Result<usize> {
        let mut held = Vec::new();
        for item in self.tree.scan_prefix(prefix(keys::DUE, &[])) {
            let (k, _) = item.map_err(backend)?;
            if let Some(id) = keys::due_delivery(&k) {
                held.push(id.to_string());
            }
        }
        let mut released = 0;
        for id in held {
            let updated = self.update_delivery(
                &id,
                |d| d.lease.is_some(),
                |d, _| {
                    d.lease = None;
                    d.due_at = Some(now);
                    d.status = if d.attempt_count == 0 { DeliveryStatus::Pending } else { DeliveryStatus::Retrying };
                    Ok(())
                },
            )?;
            released += usize::from(updated.is_some());
        }
        Ok(released)
    }

    fn next_due(&self) -> Result<Option<i64>> {
        let Some(item) = self.tree.scan_prefix(prefix(keys::DUE, &[])).next() else { return Ok(None) };
        let (k, _) = item.map_err(backend)?;
        let bytes: [u8; 8] =
            k.get(2..10).and_then(|b| b.try_into().ok()).ok_or_else(|| StoreError::Corrupt("due key".into()))?;
        Ok(Some(u64::from_be_bytes(bytes) as i64))
    }

    fn cache_get(&self, connection: &str, k: &str, now: i64) -> Result<Option<String>> {
        let entry: Option<CacheEntry> = self.get(&key(keys::CACHE, &[connection, k]))?;
        Ok(entry.filter(|e| e.expires_at > now).map(|e| e.value))
    }
    fn cache_set(&self, connection: &str, k: &str, entry: &CacheEntry) -> Result<()> {
        self.put(&key(keys::CACHE, &[connection, k]), entry)
    }
    fn put_replay(&self, job: &ReplayJob) -> Result<()> {
        self.put(&key(keys::REPLAY, &[&job.workspace, &job.id]), job)
    }
    fn replay(&self, workspace: &str, id: &str) -> Result<Option<ReplayJob>> {
        self.get(&key(keys::REPLAY, &[workspace, id]))
    }
    fn replays_pending(&self) -> Result<Vec<ReplayJob>> {
        let all: Vec<ReplayJob> =
            self.scan(&prefix(keys::REPLAY, &[]), &Page { cursor: None, limit: usize::MAX }, |_| true)?;
        Ok(all.into_iter().filter(|j| j.state != "completed").collect())
    }

    fn sweep(&self, before: i64) -> Result<usize> {
        let mut removed = 0;
        let mut old = Vec::new();
        for item in self.tree.scan_prefix(prefix(keys::EVENT, &[])) {
            let (k, v) = item.map_err(backend)?;
            let e: Event = decode(&k, &v)?;
            if e.created_at < before {
                old.push(e);
            }
        }
        'events: for e in old {
            let mut deliveries = Vec::new();
            for id in &e.delivery_ids {
                match self.delivery(id)? {
                    Some(d) if !d.status.is_final() => continue 'events, // still pending: keep it all
                    Some(d) => deliveries.push(d),
                    None => {}
                }
            }
            let mut batch = sled::Batch::default();
            batch.remove(key(keys::EVENT, &[&e.workspace, &e.id]));
            for d in deliveries {
                batch.remove(key(keys::DELIVERY, &[&d.id]));
                batch.remove(key(keys::WS_DELIVERIES, &[&e.workspace, &d.id]));
                for item in self.tree.scan_prefix(prefix(keys::ATTEMPT, &[&d.id])) {
                    batch.remove(item.map_err(backend)?.0);
                }
            }
            self.tree.apply_batch(batch).map_err(backend)?;
            removed += 1;
        }
        Ok(removed)
    }
}
