//! Work signals between nodes: a write that queues work (an accept with
//! deliveries, a requeue) sends `NOTIFY switchboard_work` inside its
//! transaction, so PostgreSQL delivers it on commit; every node runs one
//! listener task that turns those into `()` on a broadcast channel
//! ([`crate::store::Store::work_signals`]). The listener reconnects on its
//! own and sends a signal after each reconnection, for whatever it may
//! have missed meanwhile.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgExecutor, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The channel every node listens on.
pub const CHANNEL: &str = "switchboard_work";

/// Signals a slow receiver may lag behind by; lagging loses nothing, as
/// one signal means "look for work".
const BACKLOG: usize = 16;
/// Waits between attempts to listen again after an error.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Signal work, delivered when the surrounding transaction commits.
pub async fn work(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(db).await?;
    Ok(())
}

/// Start listening on `pool` (the listener keeps one of its connections)
/// until `stop` is cancelled; returns the sender receivers subscribe to.
pub fn spawn(pool: PgPool, stop: CancellationToken) -> broadcast::Sender<()> {
    let (signals, _) = broadcast::channel(BACKLOG);
    let sender = signals.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = listen(pool, sender) => {}
        }
    });
    signals
}

async fn listen(pool: PgPool, signals: broadcast::Sender<()>) {
    let mut retry = RETRY_FIRST;
    loop {
        match relay(&pool, &signals, &mut retry).await {
            Ok(()) => return, // the pool closed: the store is gone
            Err(e) => tracing::warn!(error = %e, retry_in = ?retry, "listening for other nodes' work; retrying"),
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Listen and pass every notification on, until an error.
async fn relay(pool: &PgPool, signals: &broadcast::Sender<()>, retry: &mut Duration) -> sqlx::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    *retry = RETRY_FIRST;
    // Whatever was notified before this listener started is unknown.
    let _ = signals.send(());
    loop {
        // `try_recv` answers `None` when the connection dropped (it
        // reconnects on the next call): notifications may have been lost.
        match listener.try_recv().await {
            Ok(_) => {
                let _ = signals.send(());
            }
            Err(sqlx::Error::PoolClosed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
