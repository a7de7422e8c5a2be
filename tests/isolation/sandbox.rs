//! Host calls are not free time: a connector that loops on `http.send`
//! (refused sends answer at once) or on `cache.set` spends its own CPU
//! budget and ends within it, and cache writes are capped per invocation.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::outcome::Outcome;
use switchboard::runtime::Labels;
use switchboard_tests::receiver::Receiver;
use switchboard_tests::sandbox::{invocation, load, runtime};

const HOSTILE: &str = "switchboard-fixture-hostile";

#[tokio::test]
async fn a_loop_of_refused_sends_ends_at_the_cpu_budget() {
    let receiver = Receiver::answering(200, "ok").await;
    let rt = runtime(true);
    let hostile = load(&rt, HOSTILE).await;
    let started = Instant::now();
    let inv = invocation("send_loop", json!({"url": receiver.url("/loop")}), json!({}), &[]);
    let record = rt.invoke(&hostile, inv, Labels::default()).await;
    assert!(started.elapsed() < Duration::from_secs(5), "ran {:?} (the wall budget is 30 s)", started.elapsed());
    assert_ne!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert!(record.steps.len() <= 11, "the record stops growing at the request cap: {} steps", record.steps.len());
    assert_eq!(receiver.requests().len(), 10, "only the first 10 sends went out");
}

#[tokio::test]
async fn a_loop_of_cache_writes_ends_and_only_the_first_hundred_count() {
    let rt = runtime(true);
    let hostile = load(&rt, HOSTILE).await;
    let started = Instant::now();
    let record = rt.invoke(&hostile, invocation("cache_loop", json!({}), json!({}), &[]), Labels::default()).await;
    assert!(started.elapsed() < Duration::from_secs(5), "ran {:?}", started.elapsed());
    assert_eq!(record.outcome, Outcome::ConnectorError, "{record:#?}");
    assert!(record.error.as_deref().unwrap_or_default().contains("CPU budget"), "{record:#?}");
    assert!(
        record.logs.iter().any(|l| l.message.contains("more than 100 writes")),
        "the cap is reported once in the attempt's log: {:?}",
        record.logs
    );
}
