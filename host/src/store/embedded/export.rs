//! Reading an embedded store whole, for `store copy` (see `store::copy`):
//! opening an existing store without creating one or waiting out another
//! process's lock, counting its events, and listing what the `Store` trait
//! has no way to list — every replay job (it lists pending ones only) and
//! every idempotency record — a page at a time, in key order.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::super::copy::{CopyError, IdempotencyKey};
use super::super::keys::{self, after, end_of, prefix};
use super::super::{Page, Result, StoreConfig, StoreError};
use super::owner::Owner;
use super::tables::{Tables, decode};
use super::{EmbeddedStore, Engine, is_locked, kv};
use crate::model::ReplayJob;

/// Keys one counting call walks at most: the owner thread answers between
/// chunks, and no call comes near the store's timeout. (3 in the crate's
/// tests, so their few events take several chunks.)
const COUNT_CHUNK: usize = if cfg!(test) { 3 } else { 50_000 };

/// An idempotency record as `queue.rs` writes it (`IdemRecord` there): the
/// event the key first made, and when.
#[derive(Debug, serde::Deserialize)]
struct StoredIdempotency {
    event: String,
    at: i64,
}

impl EmbeddedStore {
    /// Open the store a stopped node left in `data_dir/store/<engine>`.
    /// Unlike [`EmbeddedStore::open`] it never creates an empty store where
    /// there was none, and it does not wait for a lock to be released: a
    /// held lock means a process (`serve`) still has the store open.
    pub fn open_existing(
        engine: Engine,
        data_dir: &Path,
        config: &StoreConfig,
    ) -> std::result::Result<Self, CopyError> {
        let dir = data_dir.join("store").join(engine_dir(engine));
        if !dir.is_dir() {
            return Err(CopyError::NoSource(data_dir.to_path_buf()));
        }
        let cache = config.cache_bytes;
        let path = dir.clone();
        let open = move || -> Result<Tables> {
            let kv: Box<dyn kv::Kv> = match engine {
                Engine::Fjall => Box::new(kv::Fjall::open(&path, cache)?),
                Engine::Sled => Box::new(kv::Sled::open(&path, cache)?),
            };
            Tables::open(kv)
        };
        match Owner::start(open, config.timeout) {
            Ok(owner) => Ok(EmbeddedStore { owner }),
            Err(e) if is_locked(&e) => Err(CopyError::SourceInUse { path: dir, source: e }),
            Err(e) => Err(CopyError::Read(e)),
        }
    }

    /// Which engines have a store in `data_dir/store`.
    pub fn engines_in(data_dir: &Path) -> Vec<Engine> {
        [Engine::Fjall, Engine::Sled]
            .into_iter()
            .filter(|e| data_dir.join("store").join(engine_dir(*e)).is_dir())
            .collect()
    }

    /// How many events the store holds, all workspaces together: a walk of
    /// the event keys in bounded chunks.
    pub async fn count_events(&self) -> Result<u64> {
        let table = prefix(keys::EVENT, &[]);
        let mut from = table.clone();
        let mut total = 0;
        loop {
            let (start, end) = (from, end_of(&table));
            let (n, last) = self
                .owner
                .call(false, move |t: &mut Tables| {
                    let (mut n, mut last) = (0, None);
                    t.kv.scan(&start, &end, &mut |k, _| {
                        n += 1;
                        if n == COUNT_CHUNK {
                            last = Some(k.to_vec());
                        }
                        n < COUNT_CHUNK
                    })?;
                    Ok((n, last))
                })
                .await?;
            total += n as u64;
            match last {
                Some(mut k) => {
                    k.push(0); // the first key after it
                    from = k;
                }
                None => return Ok(total),
            }
        }
    }

    /// The cursor after `job` for [`EmbeddedStore::replay_jobs`].
    pub fn replay_cursor(job: &ReplayJob) -> String {
        format!("{}/{}", job.workspace, job.id)
    }

    /// Replay jobs of every workspace and state, in (workspace, id) order,
    /// after the page's cursor ([`EmbeddedStore::replay_cursor`]).
    pub async fn replay_jobs(&self, page: &Page) -> Result<Vec<ReplayJob>> {
        let page = page.clone();
        let found = self.owner.call(false, move |t: &mut Tables| scan::<ReplayJob>(t, keys::REPLAY, &page)).await?;
        Ok(found.into_iter().map(|(_, job)| job).collect())
    }

    /// The cursor after `record` for [`EmbeddedStore::idempotency_keys`].
    pub fn idempotency_cursor(record: &IdempotencyKey) -> String {
        format!("{}/{}", record.workspace, record.key)
    }

    /// Idempotency records of every workspace, in (workspace, key) order,
    /// after the page's cursor ([`EmbeddedStore::idempotency_cursor`]).
    /// Records whose event the retention sweep has removed are listed too:
    /// the store keeps them, and a backend treats them as expired.
    pub async fn idempotency_keys(&self, page: &Page) -> Result<Vec<IdempotencyKey>> {
        let page = page.clone();
        let found = self
            .owner
            .call(false, move |t: &mut Tables| scan::<StoredIdempotency>(t, keys::IDEMPOTENCY, &page))
            .await?;
        found
            .into_iter()
            .map(|(rest, record)| {
                let (workspace, key) = rest.split_once(keys::SEP as char).ok_or_else(|| StoreError::Corrupt {
                    key: format!("idempotency/{rest}"),
                    source: serde::de::Error::custom("the key names no workspace"),
                })?;
                Ok(IdempotencyKey {
                    workspace: workspace.to_string(),
                    key: key.to_string(),
                    event_id: record.event,
                    at: record.at,
                })
            })
            .collect()
    }
}

fn engine_dir(engine: Engine) -> &'static str {
    match engine {
        Engine::Fjall => "fjall",
        Engine::Sled => "sled",
    }
}

/// Up to `page.limit` records of `table`, all workspaces, after the page's
/// cursor (the key below the table's prefix), each with that rest of its key.
fn scan<T: DeserializeOwned>(t: &Tables, table: u8, page: &Page) -> Result<Vec<(String, T)>> {
    let pfx = prefix(table, &[]);
    let mut out = Vec::new();
    let mut failed = None;
    t.kv.scan(&after(&pfx, page.cursor.as_deref()), &end_of(&pfx), &mut |k, v| match decode::<T>(k, v) {
        Ok(record) => {
            out.push((String::from_utf8_lossy(&k[pfx.len()..]).into_owned(), record));
            out.len() < page.limit.max(1)
        }
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    failed.map_or(Ok(out), Err)
}
