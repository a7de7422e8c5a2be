//! The engine never hangs: a store stuck on one operation costs
//! its callers a clear 503, never the HTTP server. `/healthz` does not touch
//! the store; `/readyz` reports a store stuck for more than 5 s.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use switchboard_tests::host::TestHost;

#[tokio::test]
async fn a_stalled_store_costs_a_503_not_a_hang() {
    let host = TestHost::start_with(|c| c.store.timeout = Duration::from_secs(1)).await;
    let ws = host.workspace("stalled").await;
    let store = host.app.as_ref().unwrap().store().clone();
    let client = reqwest::Client::new();

    // A stuck disk: the store's owner thread is busy for 6.5 s.
    store.stall(Duration::from_millis(6500)).await.unwrap();
    let stalled_at = Instant::now();

    // Ingest answers within its store timeout, with 503 and Retry-After.
    let started = Instant::now();
    let event = json!({"event": "page.completed", "payload": {"n": 1}});
    let res = host.ingest(&ws, "/api/v1/events").json(&event).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"), "a 503 says when to come back");
    assert!(started.elapsed() < Duration::from_secs(3), "answered in {:?}", started.elapsed());

    // Liveness never waits on the store.
    for _ in 0..5 {
        let started = Instant::now();
        let res = client.get(format!("{}/healthz", host.url)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_millis(100), "healthz took {:?}", started.elapsed());
    }

    // Readiness reports the store once an operation has been stuck for 5 s.
    let res = client.get(format!("{}/readyz", host.url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "not yet: stuck for {:?}", stalled_at.elapsed());
    tokio::time::sleep(Duration::from_millis(5500).saturating_sub(stalled_at.elapsed())).await;
    let started = Instant::now();
    let res = client.get(format!("{}/readyz", host.url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(100), "readyz itself never waits on the store");
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["store"]["stuck_for_ms"].as_u64().unwrap() >= 5000, "{body}");

    // When the stall ends, everything works again.
    host.wait_until("ready again", || async {
        client.get(format!("{}/readyz", host.url)).send().await.is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    host.emit_event(&ws, "page.completed", json!({"n": 2})).await;
}
