//! The queue's numbers for `GET /metrics` ([`QueueStats`]), answered from
//! memory on the owner thread: active deliveries by status and the earliest
//! due time come from the delay-queue index (`active.rs`), paused
//! connections from a set kept here beside the connection records.
//!
//! Why a set rather than a count at scrape time: connections live on disk
//! in one table across workspaces, so counting the paused ones would read
//! every connection on every scrape. The set is filled from that table at
//! open (as the queue index is) and follows every connection write.

use std::collections::HashSet;

use super::super::keys::{self, end_of, prefix};
use super::super::{QueueStats, Result};
use super::tables::{Tables, decode};
use crate::model::{Connection, DeliveryStatus};

/// `(workspace, connection id)` of every paused (inactive) connection.
#[derive(Debug, Default)]
pub struct Paused(HashSet<(String, String)>);

impl Paused {
    /// Follow a connection's new record.
    pub fn apply(&mut self, c: &Connection) {
        let id = (c.workspace.clone(), c.id.clone());
        if c.active {
            self.0.remove(&id);
        } else {
            self.0.insert(id);
        }
    }

    pub fn remove(&mut self, workspace: &str, id: &str) {
        self.0.remove(&(workspace.to_string(), id.to_string()));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl Tables {
    /// Fill the paused set from the connection records (at open).
    pub(super) fn index_paused(&mut self) -> Result<()> {
        let pfx = prefix(keys::CONNECTION, &[]);
        let mut failed = None;
        let paused = &mut self.paused;
        self.kv.scan(&pfx, &end_of(&pfx), &mut |k, v| match decode::<Connection>(k, v) {
            Ok(c) => {
                paused.apply(&c);
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Counted from memory: a few map lookups, whatever the queue's size.
    pub fn queue_stats(&self, now: i64) -> QueueStats {
        let count = |status| self.active.count(status) as u64;
        QueueStats {
            pending: count(DeliveryStatus::Pending),
            processing: count(DeliveryStatus::Processing),
            retrying: count(DeliveryStatus::Retrying),
            waiting: count(DeliveryStatus::Waiting),
            oldest_due: self.active.earliest_due().filter(|at| *at <= now),
            paused_connections: self.paused.len() as u64,
        }
    }
}
