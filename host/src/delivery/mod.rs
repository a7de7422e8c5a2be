//! Delivery: the scheduler claims due deliveries with a lease, checks each
//! connection's limits, and hands them to workers that run one attempt each
//! in the sandbox and record it. See `retry.rs` for the policy and
//! `limits.rs` for per-connection fairness.

pub mod limits;
pub mod retry;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::model::now_ms;

/// Run the scheduler until `shutdown`; then wait for in-flight attempts up to
/// the grace period. Leases of attempts cut short expire and are retried.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let workers = Arc::new(Semaphore::new(app.config.delivery.concurrency));
    let limits = limits::Limits::default();
    let tracker = TaskTracker::new();
    let lease_ms = app.config.delivery.lease.as_millis() as i64;
    match app.store.release_all_leases(now_ms()) {
        Ok(n) if n > 0 => tracing::info!(released = n, "deliveries claimed before the restart are due again"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "releasing leases at start"),
    }
    loop {
        let free = workers.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match app.store.claim_due(now_ms(), free, lease_ms) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "claiming due deliveries");
                    Vec::new()
                }
            }
        };
        let full = !claimed.is_empty() && claimed.len() == free;
        for delivery in claimed {
            let Ok(permit) = workers.clone().acquire_owned().await else { break };
            let app = app.clone();
            let limits = limits.clone();
            tracker.spawn(async move {
                worker::attempt(&app, &limits, delivery).await;
                drop(permit);
                app.wake.notify_one();
            });
        }
        if full {
            continue;
        }
        let sleep = next_wait(&app);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = app.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    tracker.close();
    if tokio::time::timeout(app.config.delivery.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!("in-flight attempts did not finish within the shutdown grace period; their leases will expire");
    }
}

/// Sleep until the next due delivery, at most one poll interval.
fn next_wait(app: &App) -> Duration {
    let poll = app.config.delivery.poll_interval;
    match app.store.next_due() {
        Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(1, poll.as_millis() as i64) as u64),
        _ => poll,
    }
}
