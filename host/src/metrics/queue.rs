//! The state gauges of `GET /metrics`: queue depth by state, the age of the
//! oldest due delivery, paused connections. Read from the store when
//! scraped ([`Store::queue_stats`](crate::store::Store::queue_stats)), not
//! tracked along the way, so they cannot drift from the truth.
//!
//! Each App's numbers come from its own store and are rendered through a
//! throw-away recorder, not the process-wide one: two Apps in one process
//! never overwrite each other's gauges. They are kept for [`FRESH`] per
//! App, and refreshed by one scrape at a time, so a storm of scrapes costs
//! the store one read per second.

use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use ::metrics::{Unit, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::sync::Mutex;

use crate::app::App;
use crate::store::QueueStats;
use crate::time::now_ms;

const QUEUE_DEPTH: &str = "switchboard_queue_depth";
const OLDEST_DUE: &str = "switchboard_queue_oldest_due_seconds";
const PAUSED: &str = "switchboard_connections_paused";

/// How long one reading of the store serves scrapes.
const FRESH: Duration = Duration::from_secs(1);

struct Reading {
    /// Weak, so a cached reading keeps no App alive; and while it is held,
    /// no other App can be allocated at the same address.
    app: Weak<App>,
    at: Instant,
    text: Arc<str>,
}

/// Recent readings, one per App; the lock is held while the store is read.
static READINGS: LazyLock<Mutex<Vec<Reading>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// The gauges' text for `app`, from a reading at most [`FRESH`] old. When
/// the store cannot answer, nothing: the counters are still worth a scrape,
/// and an absent gauge says more than a made-up zero.
pub async fn render(app: &Arc<App>) -> Arc<str> {
    let mut readings = READINGS.lock().await;
    readings.retain(|r| r.app.strong_count() > 0 && r.at.elapsed() < FRESH);
    let me = Arc::downgrade(app);
    if let Some(r) = readings.iter().find(|r| r.app.ptr_eq(&me)) {
        return r.text.clone();
    }
    let now = now_ms();
    let text: Arc<str> = match app.store().queue_stats(now).await {
        Ok(stats) => gauges(&stats, now).into(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the queue for /metrics");
            "".into()
        }
    };
    readings.push(Reading { app: me, at: Instant::now(), text: text.clone() });
    text
}

/// The three families in the text format, through a recorder of their own.
fn gauges(stats: &QueueStats, now: i64) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    ::metrics::with_local_recorder(&recorder, || {
        describe_gauge!(QUEUE_DEPTH, "Active deliveries by state (the delivery status the API shows).");
        let states = [
            ("pending", stats.pending),
            ("processing", stats.processing),
            ("retrying", stats.retrying),
            ("waiting", stats.waiting),
        ];
        for (state, n) in states {
            gauge!(QUEUE_DEPTH, "state" => state).set(n as f64);
        }
        describe_gauge!(OLDEST_DUE, Unit::Seconds, "How long the oldest due delivery has been due; 0 when none is.");
        let late_ms = stats.oldest_due.map_or(0, |at| now.saturating_sub(at).max(0));
        gauge!(OLDEST_DUE).set(late_ms as f64 / 1000.0);
        describe_gauge!(PAUSED, "Connections paused (inactive) until someone fixes them, in every workspace.");
        gauge!(PAUSED).set(stats.paused_connections as f64);
    });
    recorder.handle().render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauges_show_each_state_and_how_late_the_queue_runs() {
        let stats = QueueStats {
            pending: 3,
            processing: 1,
            retrying: 0,
            waiting: 2,
            oldest_due: Some(7_500),
            paused_connections: 1,
        };
        let text = gauges(&stats, 10_000);
        for line in [
            "# TYPE switchboard_queue_depth gauge",
            "switchboard_queue_depth{state=\"pending\"} 3",
            "switchboard_queue_depth{state=\"retrying\"} 0",
            "switchboard_queue_depth{state=\"waiting\"} 2",
            "switchboard_queue_oldest_due_seconds 2.5",
            "# HELP switchboard_connections_paused",
            "switchboard_connections_paused 1",
        ] {
            assert!(text.contains(line), "{line:?} in:\n{text}");
        }
        let idle = gauges(&QueueStats::default(), 10_000);
        assert!(idle.contains("switchboard_queue_oldest_due_seconds 0\n"), "{idle}");
    }
}
