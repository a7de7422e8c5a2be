//! Retention: final events older than `[retention] days` are removed with
//! their deliveries and attempts (hourly), and expired connector-cache
//! entries (every minute) — both in small steps, so a sweep never holds the
//! store for long.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::time::now_ms;

/// Records removed per sweep step.
const SWEEP_STEP: usize = 200;
/// How often expired connector-cache entries are removed.
const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Retention (hourly) and expired connector-cache entries (every minute).
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let keep_ms = i64::from(app.config().retention.days) * 24 * 3600 * 1000;
    let mut retention_due = tokio::time::Instant::now();
    loop {
        let now = now_ms();
        in_steps("connector cache sweep", &shutdown, || app.store().cache_sweep(now, SWEEP_STEP)).await;
        if tokio::time::Instant::now() >= retention_due {
            in_steps("retention sweep", &shutdown, || app.store().sweep(now - keep_ms, SWEEP_STEP)).await;
            retention_due += Duration::from_secs(3600);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CACHE_SWEEP_EVERY) => {}
        }
    }
}

/// Run a sweep in small steps, so it never holds the store for long.
async fn in_steps<F, Fut>(what: &str, shutdown: &CancellationToken, step: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = crate::store::Result<usize>>,
{
    let mut removed = 0;
    loop {
        match step().await {
            Ok(n) => {
                removed += n;
                if n == 0 || shutdown.is_cancelled() {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "{what}");
                break;
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "{what}");
    }
}
