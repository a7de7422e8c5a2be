//! Group commit: one writer task applies accepts and makes them durable
//! with one sync for everything that arrived while the previous sync ran.
//! A 201 is sent only after the sync that covers its event returns.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Accept, Accepted, Store};

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
                    let all: Vec<&Accept> = group.iter().flat_map(|(accepts, _)| accepts.iter()).collect();
                    let written = store.accept_all(&all).and_then(|r| store.sync().map(|()| r));
                    (group, written)
                })
                .await;
                let Ok((group, written)) = done else { continue };
                match written {
                    Ok(results) => {
                        let mut results = results.into_iter();
                        for (accepts, reply) in group {
                            let _ = reply.send(Ok(results.by_ref().take(accepts.len()).collect()));
                        }
                    }
                    Err(e) => {
                        for (_, reply) in group {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
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
