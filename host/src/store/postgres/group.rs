//! Group commit for ingest: accepts that arrive while a transaction is
//! being written wait for the next one and share it, as the embedded
//! store's owner thread does. One event per request at a time would cost
//! one commit (one WAL flush) each; under load a commit carries dozens.
//!
//! A few committers work side by side, each taking what is queued when it
//! is free. A group that fails (one accept in it may be at fault) is
//! retried accept by accept, so each caller gets its own answer.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::super::{Accept, Accepted, Result, StoreError};
use super::accept::accept_all;

/// Committers writing at once: enough to keep the disk's flushes
/// overlapping, few enough to leave the pool to the queue.
const COMMITTERS: usize = 4;
/// Events in one group at most (a transaction of a few hundred rows).
const MAX_GROUP_EVENTS: usize = 500;
/// Accepts waiting for a committer before callers wait to queue.
const QUEUE: usize = 4_096;

struct Job {
    accepts: Vec<Accept>,
    answer: oneshot::Sender<Result<Vec<Accepted>>>,
}

#[derive(Clone)]
pub struct Grouper {
    jobs: mpsc::Sender<Job>,
}

impl Grouper {
    /// Start the committers; they stop when the last `Grouper` is dropped.
    pub fn spawn(pool: PgPool) -> Grouper {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..COMMITTERS {
            tokio::spawn(commit_loop(pool.clone(), queue.clone()));
        }
        Grouper { jobs }
    }

    /// Accept in the next group; answered once that group has committed.
    pub async fn accept(&self, accepts: Vec<Accept>) -> Result<Vec<Accepted>> {
        let (answer, answered) = oneshot::channel();
        self.jobs.send(Job { accepts, answer }).await.map_err(|_| StoreError::Stopped)?;
        answered.await.map_err(|_| StoreError::Stopped)?
    }
}

async fn commit_loop(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let group = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else { return };
            let mut events = first.accepts.len();
            let mut group = vec![first];
            while events < MAX_GROUP_EVENTS {
                let Ok(next) = queue.try_recv() else { break };
                events += next.accepts.len();
                group.push(next);
            }
            group
        };
        commit(&pool, group).await;
    }
}

async fn commit(pool: &PgPool, mut group: Vec<Job>) {
    if group.len() == 1 {
        let job = group.remove(0);
        let _ = job.answer.send(accept_all(pool, job.accepts).await);
        return;
    }
    let all: Vec<Accept> = group.iter().flat_map(|job| job.accepts.iter().cloned()).collect();
    match accept_all(pool, all).await {
        Ok(answers) => {
            let mut answers = answers.into_iter();
            for job in group {
                let _ = job.answer.send(Ok(answers.by_ref().take(job.accepts.len()).collect()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, accepts = group.len(), "a group commit failed; committing its accepts one by one");
            for job in group {
                let _ = job.answer.send(accept_all(pool, job.accepts).await);
            }
        }
    }
}
