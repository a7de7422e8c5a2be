//! Group commit: one writer task applies accepts and makes them durable
//! with one sync for everything that arrived while the previous sync ran.
//! A 201 is sent only after the sync that covers its event returns.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Accept, Accepted, Store, StoreError};

type Reply = oneshot::Sender<Result<Vec<Accepted>, String>>;

#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<(Vec<Accept>, Reply)>,
}

/// Upper bound on accept requests per sync, so one sync's latency stays bounded.
const MAX_GROUP: usize = 512;

impl Committer {
    pub fn start(store: Arc<dyn Store>) -> Committer {
        let (tx, mut rx) = mpsc::channel::<(Vec<Accept>, Reply)>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let store = store.clone();
                let done = tokio::task::spawn_blocking(move || {
                    let results: Vec<Result<Vec<Accepted>, StoreError>> =
                        group.iter().map(|(accepts, _)| accepts.iter().map(|a| store.accept(a)).collect()).collect();
                    let synced = store.sync();
                    (group, results, synced)
                })
                .await;
                let Ok((group, results, synced)) = done else { continue };
                for ((_, reply), result) in group.into_iter().zip(results) {
                    let answer = match (&synced, result) {
                        (Err(e), _) => Err(e.to_string()),
                        (Ok(()), Err(e)) => Err(e.to_string()),
                        (Ok(()), Ok(accepted)) => Ok(accepted),
                    };
                    let _ = reply.send(answer);
                }
            }
        });
        Committer { tx }
    }

    /// Accept these events atomically each and durably together.
    pub async fn accept(&self, accepts: Vec<Accept>) -> Result<Vec<Accepted>, String> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((accepts, reply)).await.map_err(|_| "the store writer has stopped".to_string())?;
        answer.await.map_err(|_| "the store writer has stopped".to_string())?
    }
}
