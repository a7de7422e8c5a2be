//! Delivery: the scheduler claims due deliveries with a lease, within each
//! connection's room (`limits.rs`) and each workspace's share of the workers
//! (`in_flight.rs`; the store takes turns between workspaces), and hands them to workers that run one
//! attempt each in the sandbox and record it (`worker.rs`, policy in
//! `retry.rs`). A lease that expires unfinished (the process died) is
//! recorded by the store as an `interrupted` attempt when it is claimed again.

mod in_flight;
pub mod limits;
pub mod retry;
pub(crate) mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::model::{Connection, now_ms};
use crate::store::{Admission, ClaimPlan, Claimed};

/// Run the scheduler until `shutdown`; then wait for in-flight attempts up to
/// the grace period. Leases of attempts cut short expire and are retried.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let workers = Arc::new(Semaphore::new(app.config().delivery.concurrency));
    let limits = limits::Limits::default();
    let in_flight = in_flight::InFlight::default();
    let tracker = TaskTracker::new();
    let lease_ms = app.config().delivery.lease.as_millis() as i64;
    if let Some(signals) = app.store().work_signals() {
        tokio::spawn(follow_signals(app.clone(), signals, shutdown.clone()));
    }
    loop {
        let free = workers.available_permits();
        let mut full = false;
        if free > 0 {
            let now = now_ms();
            let plan = ClaimPlan {
                now,
                lease_ms,
                limit: free,
                default_room: app.config().delivery.per_connection_concurrency,
                room: limits.rooms(now),
                workers: app.config().delivery.concurrency,
                in_flight: in_flight.snapshot(),
            };
            match app.store().claim_due(plan).await {
                Ok(claimed) => {
                    full = claimed.len() == free;
                    for c in claimed {
                        let Ok(permit) = workers.clone().try_acquire_owned() else { break };
                        let started = in_flight.start(&c.delivery.workspace);
                        let (app, limits) = (app.clone(), limits.clone());
                        tracker.spawn(async move {
                            dispatch(&app, &limits, c).await;
                            drop((started, permit));
                            app.wake().notify_one();
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "claiming due deliveries"),
            }
        }
        if full {
            tokio::task::yield_now().await;
            continue;
        }
        let sleep = next_wait(&app, &limits).await;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = app.wake().notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    tracker.close();
    if tokio::time::timeout(app.config().delivery.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!("in-flight attempts did not finish within the shutdown grace period; their leases will expire");
    }
}

/// Wake the scheduler when another node queues work (a store several
/// nodes share signals it), so it claims at once instead of at its next poll.
async fn follow_signals(app: Arc<App>, mut signals: tokio::sync::broadcast::Receiver<()>, stop: CancellationToken) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            signal = signals.recv() => match signal {
                // Lagged: signals were missed, which is a signal too.
                Ok(()) | Err(RecvError::Lagged(_)) => app.wake().notify_one(),
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// Take the connection's slot, then run the attempt; a connection that
/// turned out to be at its limits (first seen in this claim, or busy on
/// other nodes) gets the delivery back in the queue for when it has room.
#[tracing::instrument(name = "dispatch", skip_all, fields(delivery = %c.delivery.id))]
async fn dispatch(app: &App, limits: &limits::Limits, c: Claimed) {
    let Some(lease) = c.delivery.lease.clone() else { return };
    let now = now_ms();
    let slot = match &c.connection {
        Some(connection) => match room(app, limits, connection, now).await {
            Ok(slot) => Some(slot),
            Err(retry_at) => {
                if let Err(e) = app.store().release(&c.delivery.id, &lease, retry_at, now).await {
                    tracing::error!(delivery = %c.delivery.id, error = %e, "releasing a delivery");
                }
                return;
            }
        },
        None => None,
    };
    worker::attempt(app, c, &lease).await;
    drop(slot);
}

/// A slot of this node's, then — for a connection with a rate or a
/// concurrency of its own — the store's admission, which on a store
/// several nodes share holds those limits for all of them together. The
/// default concurrency cap is per node. `Err`: when to try again.
async fn room(app: &App, limits: &limits::Limits, connection: &Connection, now: i64) -> Result<limits::Slot, i64> {
    let (rate, max_in_flight) = connection_limits(app, connection);
    let slot = limits.try_acquire(&connection.id, rate, max_in_flight, now)?;
    if rate.is_none() && connection.concurrency.is_none() {
        return Ok(slot);
    }
    match app.store().admit(&connection.id, rate, connection.concurrency.map(|_| max_in_flight), now).await {
        Ok(Admission::Admitted) => Ok(slot),
        Ok(Admission::RetryAt(at)) => Err(at),
        Err(e) => {
            tracing::error!(connection = %connection.id, error = %e, "asking the store for room");
            Err(now + 1_000)
        }
    }
}

/// Deliveries per second (the connection's, else its connector's default)
/// and attempts in flight allowed for a connection.
fn connection_limits(app: &App, connection: &Connection) -> (Option<f64>, u32) {
    let rate = connection.rate_limit_per_second.or_else(|| {
        let connector = app.registry().resolve(&connection.connector, &connection.version)?;
        connector.manifest().default_rate_limit.map(|r| f64::from(r.requests) / f64::from(r.per_seconds))
    });
    let cap = connection.concurrency.unwrap_or(app.config().delivery.per_connection_concurrency as u32);
    // The API refuses values out of these ranges; records saved before it
    // did are clamped here, so a zero can neither stall nor spin the queue.
    let rate = rate.filter(|r| r.is_finite() && *r > 0.0).map(|r| r.min(10_000.0));
    (rate, cap.clamp(1, 256))
}

/// Sleep until the next delivery falls due or a token arrives, at most one
/// poll interval. Whatever is due already was left by the last claim for
/// want of room, which an ending attempt (a wake) or a token frees.
async fn next_wait(app: &App, limits: &limits::Limits) -> Duration {
    let poll = app.config().delivery.poll_interval.as_millis() as i64;
    let now = now_ms();
    let due = app.store().next_due(now).await.ok().flatten();
    let next = [due, limits.next_token_at()].into_iter().flatten().min();
    Duration::from_millis(next.map_or(poll, |at| (at - now).clamp(1, poll)) as u64)
}
