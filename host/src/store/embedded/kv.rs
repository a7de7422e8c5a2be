//! The little an embedded engine must do for `tables.rs`: point reads,
//! ordered range scans, atomic batches and an honest fsync. fjall and sled
//! both implement it here; nothing else names either crate.
//!
//! Only the owner thread (`owner.rs`) touches a `Kv`, so no engine sees
//! concurrent writers and none of their transaction machinery is used.

use std::path::Path;

use super::super::{Result, StoreError};

/// Writes applied atomically by [`Kv::commit`]: `None` removes the key.
#[derive(Debug, Default)]
pub struct Batch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }
    pub fn remove(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }
}

pub trait Kv: Send + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Visit keys in `[from, to)` in order until `visit` returns false.
    fn scan(&self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;
    fn commit(&self, batch: Batch) -> Result<()>;
    /// Everything committed so far survives a power loss when this returns.
    fn persist(&self) -> Result<()>;
}

fn engine(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Engine(Box::new(e))
}

const MEMTABLE_BYTES: u64 = 16 << 20;

/// fjall: an LSM tree with a write-ahead journal. Each commit reaches the
/// OS before it returns (a `kill -9` loses nothing committed); `persist`
/// is an fsync of the journal.
pub struct Fjall {
    db: fjall::Database,
    tree: fjall::Keyspace,
}

impl Fjall {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Fjall> {
        let db = fjall::Database::builder(dir).cache_size(cache_bytes).open().map_err(engine)?;
        // Small memtables: a large queue is flushed to disk instead of being
        // held in memory (fjall's default is 64 MiB per memtable).
        let options = || fjall::KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
        let tree = db.keyspace("switchboard", options).map_err(engine)?;
        Ok(Fjall { db, tree })
    }
}

impl Kv for Fjall {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key).map_err(engine)?.map(|v| v.to_vec()))
    }

    fn scan(&self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        for item in self.tree.range(from..to) {
            let (k, v) = item.into_inner().map_err(engine)?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn commit(&self, batch: Batch) -> Result<()> {
        let mut b = self.db.batch();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(&self.tree, k, v),
                None => b.remove(&self.tree, k),
            }
        }
        b.commit().map_err(engine)
    }

    fn persist(&self) -> Result<()> {
        self.db.persist(fjall::PersistMode::SyncAll).map_err(engine)
    }
}

/// sled 0.34, kept for installs that already use it. Driven from one
/// thread with plain batches only: its concurrent transactions are what
/// deadlocked. `flush` is not an honest fsync on 0.34, so `persist` also
/// fsyncs the data file and its directory.
pub struct Sled {
    tree: sled::Db,
    dir: std::path::PathBuf,
}

impl Sled {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Sled> {
        std::fs::create_dir_all(dir).map_err(engine)?;
        let tree = sled::Config::new().path(dir).cache_capacity(cache_bytes).open().map_err(engine)?;
        Ok(Sled { tree, dir: dir.to_path_buf() })
    }
}

impl Kv for Sled {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key).map_err(engine)?.map(|v| v.to_vec()))
    }

    fn scan(&self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        for item in self.tree.range(from..to) {
            let (k, v) = item.map_err(engine)?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn commit(&self, batch: Batch) -> Result<()> {
        let mut b = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.tree.apply_batch(b).map_err(engine)
    }

    fn persist(&self) -> Result<()> {
        self.tree.flush().map_err(engine)?;
        std::fs::File::open(self.dir.join("db")).and_then(|f| f.sync_all()).map_err(engine)?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(engine)?;
        Ok(())
    }
}
