//! The store's owner thread: the only thread that touches the engine. Jobs
//! arrive on a bounded channel and run one after another; writes that must
//! be durable (accepts) are answered only after one fsync covers every such
//! job that arrived together (group commit). Async callers wait on a
//! oneshot with a deadline, so a stuck disk costs them a timeout, never a
//! runtime worker thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::super::{Result, StoreError};
use super::tables::Tables;

/// Jobs queued beyond this are refused (`Overloaded`) instead of piling up.
const QUEUE: usize = 16 * 1024;
/// Jobs run between two group-commit fsyncs at most.
const GROUP: usize = 1024;

type Reply = Box<dyn FnOnce(Result<()>) + Send>;

struct Job {
    work: Box<dyn FnOnce(&mut Tables) -> Reply + Send>,
    durable: bool,
    /// Set by a caller that stopped waiting: the job is skipped if not started.
    abandoned: Arc<AtomicBool>,
}

/// When the job running now started (ms since `epoch`, +1), 0 when idle.
#[derive(Debug)]
struct Busy {
    epoch: Instant,
    since: AtomicU64,
}

impl Busy {
    fn enter(&self) {
        self.since.store(self.epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
    }
    fn leave(&self) {
        self.since.store(0, Ordering::Relaxed);
    }
    fn running_for(&self) -> Option<Duration> {
        match self.since.load(Ordering::Relaxed) {
            0 => None,
            s => Some(Duration::from_millis((self.epoch.elapsed().as_millis() as u64 + 1).saturating_sub(s))),
        }
    }
}

#[derive(Clone)]
pub struct Owner {
    tx: SyncSender<Job>,
    busy: Arc<Busy>,
    timeout: Duration,
}

impl Owner {
    /// Start the thread; `open` runs on it, and its error is returned here.
    pub fn start(open: impl FnOnce() -> Result<Tables> + Send + 'static, timeout: Duration) -> Result<Owner> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let busy = Arc::new(Busy { epoch: Instant::now(), since: AtomicU64::new(0) });
        let (opened_tx, opened) = mpsc::channel();
        let thread_busy = busy.clone();
        std::thread::Builder::new()
            .name("switchboard-store".into())
            .spawn(move || match open() {
                Ok(tables) => {
                    let _ = opened_tx.send(Ok(()));
                    run(tables, rx, &thread_busy);
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            })
            .map_err(|e| StoreError::Engine(Box::new(e)))?;
        opened.recv().map_err(|_| StoreError::Stopped)??;
        Ok(Owner { tx, busy, timeout })
    }

    /// Run `f` on the owner thread and wait for its answer (and, when
    /// `durable`, for the fsync that covers it), at most the timeout.
    pub async fn call<R: Send + 'static>(
        &self,
        durable: bool,
        f: impl FnOnce(&mut Tables) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (reply_tx, reply) = tokio::sync::oneshot::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let work = Box::new(move |tables: &mut Tables| -> Reply {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(tables)))
                .unwrap_or_else(|_| Err(StoreError::Engine("a store operation panicked".into())));
            Box::new(move |persisted: Result<()>| {
                let _ = reply_tx.send(result.and_then(|v| persisted.map(|()| v)));
            })
        });
        self.send(Job { work, durable, abandoned: abandoned.clone() })?;
        match tokio::time::timeout(self.timeout, reply).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(StoreError::Stopped),
            Err(_) => {
                abandoned.store(true, Ordering::Relaxed);
                Err(StoreError::Timeout(self.timeout))
            }
        }
    }

    /// Queue `f` without waiting for it (test hooks).
    pub fn spawn(&self, f: impl FnOnce(&mut Tables) + Send + 'static) -> Result<()> {
        let work = Box::new(move |tables: &mut Tables| -> Reply {
            f(tables);
            Box::new(|_| {})
        });
        self.send(Job { work, durable: false, abandoned: Arc::new(AtomicBool::new(false)) })
    }

    fn send(&self, job: Job) -> Result<()> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => StoreError::Overloaded,
            TrySendError::Disconnected(_) => StoreError::Stopped,
        })
    }

    pub fn busy_for(&self) -> Option<Duration> {
        self.busy.running_for()
    }
}

fn run(mut tables: Tables, rx: Receiver<Job>, busy: &Busy) {
    let mut waiting: Vec<Reply> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut ran = 0;
        while let Some(job) = next.take() {
            if !job.abandoned.load(Ordering::Relaxed) {
                busy.enter();
                let reply = (job.work)(&mut tables);
                busy.leave();
                if job.durable { waiting.push(reply) } else { reply(Ok(())) }
            }
            ran += 1;
            if ran < GROUP {
                next = rx.try_recv().ok();
            }
        }
        if !waiting.is_empty() {
            busy.enter();
            let started = Instant::now();
            let persisted = tables.kv.persist();
            crate::metrics::store_synced(started.elapsed());
            busy.leave();
            for reply in waiting.drain(..) {
                reply(match &persisted {
                    Ok(()) => Ok(()),
                    Err(e) => Err(StoreError::Engine(e.to_string().into())),
                });
            }
        }
    }
    // Every handle is gone: make what was written durable before closing.
    if let Err(e) = tables.kv.persist() {
        tracing::error!(error = %e, "final store sync");
    }
}
