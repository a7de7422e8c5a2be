//! What the PostgreSQL store is working on, kept in process so health checks
//! never wait on the database: every store call in flight with when it
//! started ([`Busy::busy_for`] is the oldest), and the test hook that makes
//! the store stuck ([`Busy::stall`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

#[derive(Debug, Default)]
pub struct Busy {
    /// Calls in flight by entry number (so in the order they started).
    calls: Mutex<Calls>,
    /// Every call passes through (a read); a stall holds it (a write), so
    /// calls queue behind a stall as they would behind a stuck database.
    gate: Arc<RwLock<()>>,
}

#[derive(Debug, Default)]
struct Calls {
    next: u64,
    started: BTreeMap<u64, Instant>,
}

/// One call in flight; it leaves the tracker when dropped (finished,
/// failed, or abandoned at its timeout).
#[derive(Debug)]
pub struct InFlight {
    busy: Arc<Busy>,
    entry: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.busy.calls().started.remove(&self.entry);
    }
}

impl Busy {
    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        // A panic elsewhere while the map was held cannot leave it inconsistent.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Count a call from now until the returned guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        let mut calls = self.calls();
        let entry = calls.next;
        calls.next += 1;
        calls.started.insert(entry, Instant::now());
        InFlight { busy: self.clone(), entry }
    }

    /// Wait until no stall holds the store.
    pub async fn pass(&self) {
        drop(self.gate.read().await);
    }

    /// How long the oldest call in flight has been running.
    pub fn busy_for(&self) -> Option<Duration> {
        self.calls().started.first_key_value().map(|(_, at)| at.elapsed())
    }

    /// Hold every call for `d` from now, counted as a call in flight itself.
    /// Returns once the stall holds the store (calls made after it wait).
    pub async fn stall(self: &Arc<Self>, d: Duration) {
        let in_flight = self.enter();
        let held = self.gate.clone().write_owned().await;
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            // Leave the tracker before letting calls through, so a call that
            // waited for the stall finds it over when it returns.
            drop(in_flight);
            drop(held);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_the_oldest_call_until_it_leaves() {
        let busy = Arc::new(Busy::default());
        assert!(busy.busy_for().is_none());
        let first = busy.enter();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = busy.enter();
        assert!(busy.busy_for().unwrap() >= Duration::from_millis(20), "the oldest call counts");
        drop(first);
        assert!(busy.busy_for().unwrap() < Duration::from_millis(20));
        drop(second);
        assert!(busy.busy_for().is_none());
    }

    #[tokio::test]
    async fn calls_wait_out_a_stall() {
        let busy = Arc::new(Busy::default());
        let started = Instant::now();
        busy.stall(Duration::from_millis(100)).await;
        assert!(busy.busy_for().is_some());
        busy.pass().await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(busy.busy_for().is_none(), "the stall left before letting the call through");
    }
}
