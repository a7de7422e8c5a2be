//! `GET /metrics`: Prometheus text that moves with ingest and delivery,
//! every family described, the queue's state read from the store (a paused
//! connection's waiting deliveries among it), and a token when one is set.
//!
//! Counters are process-wide and other tests in the same process move them
//! too: each check compares a reading before with one after, and asks for
//! at least the change this test made.

use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value as Json, json};
use switchboard_tests::host::{TestHost, Ws};
use switchboard_tests::receiver::{Receiver, reply};

const TOKEN: &str = "metrics-token-for-tests";

/// One parsed scrape.
struct Metrics {
    text: String,
    scrape: Scrape,
}

impl Metrics {
    /// The sum of the samples of `name` that carry `labels` (0 when none do).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(_) | Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// A histogram's observation count.
    fn observed(&self, histogram: &str) -> f64 {
        self.value(&format!("{histogram}_count"), &[])
    }

    fn has_family(&self, name: &str, kind: &str) -> bool {
        let help = format!("# HELP {name} ");
        let kind = format!("# TYPE {name} {kind}");
        self.text.lines().any(|l| l.starts_with(&help)) && self.text.lines().any(|l| l == kind)
    }
}

async fn get(host: &TestHost, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{}/metrics", host.url));
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    request.send().await.unwrap()
}

async fn metrics(host: &TestHost) -> Metrics {
    let token = host.config.metrics.token.as_deref();
    let response = get(host, token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    Metrics { text, scrape }
}

/// A workspace whose `page.completed` events go to a webhook at `receiver`.
async fn routed(host: &TestHost, receiver: &Receiver) -> Ws {
    let ws = host.workspace("acme").await;
    host.webhook_route(&ws, &receiver.url("/h"), json!({"event": "page.completed", "action": "send_webhook"})).await;
    ws
}

/// Emit one event to a receiver answering 200 and wait for its delivery.
async fn deliver_one(host: &TestHost) {
    let receiver = Receiver::answering(200, "ok").await;
    let ws = routed(host, &receiver).await;
    let id = host.emit_event(&ws, "page.completed", json!({"n": 1})).await;
    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
}

#[tokio::test]
async fn ingest_and_delivery_move_the_counters() {
    let host = TestHost::start().await;
    let receiver = Receiver::answering(200, "ok").await;
    let ws = routed(&host, &receiver).await;
    let before = metrics(&host).await;

    let id = host.emit_event(&ws, "page.completed", json!({"n": 1})).await;
    let (status, _) = host.emit(&ws, json!({"event": "page.completed"})).await; // no payload: refused
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let ingested = metrics(&host).await;
    let delta = |name: &str, labels: &[(&str, &str)]| ingested.value(name, labels) - before.value(name, labels);
    assert!(delta("switchboard_ingest_requests_total", &[("status", "201")]) >= 1.0);
    assert!(delta("switchboard_ingest_requests_total", &[("status", "400")]) >= 1.0);
    assert!(delta("switchboard_events_accepted_total", &[]) >= 1.0);
    assert!(
        ingested.observed("switchboard_ingest_duration_seconds")
            >= before.observed("switchboard_ingest_duration_seconds") + 2.0
    );
    assert!(
        ingested.observed("switchboard_store_sync_duration_seconds")
            > before.observed("switchboard_store_sync_duration_seconds"),
        "the accept was made durable"
    );

    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    let delivered = [("outcome", "delivered"), ("connector", "webhook")];
    let counted = || async {
        metrics(&host).await.value("switchboard_deliveries_total", &delivered)
            > before.value("switchboard_deliveries_total", &delivered)
    };
    host.wait_until("the attempt is counted", counted).await;
    let after = metrics(&host).await;
    assert!(
        after.observed("switchboard_attempt_duration_seconds")
            > before.observed("switchboard_attempt_duration_seconds")
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn every_family_is_listed_with_help_and_type() {
    let host = TestHost::start().await;
    deliver_one(&host).await;
    let families = [
        ("switchboard_ingest_requests_total", "counter"),
        ("switchboard_ingest_duration_seconds", "histogram"),
        ("switchboard_events_accepted_total", "counter"),
        ("switchboard_deliveries_total", "counter"),
        ("switchboard_attempt_duration_seconds", "histogram"),
        ("switchboard_queue_depth", "gauge"),
        ("switchboard_queue_oldest_due_seconds", "gauge"),
        ("switchboard_store_sync_duration_seconds", "histogram"),
        ("switchboard_connections_paused", "gauge"),
    ];
    host.wait_until("every family is listed", || async {
        let m = metrics(&host).await;
        families.iter().all(|(name, kind)| m.has_family(name, kind))
    })
    .await;
    let m = metrics(&host).await;
    let labelled: Vec<_> = m.scrape.samples.iter().filter(|s| s.metric.starts_with("switchboard_")).collect();
    for sample in labelled {
        for name in ["workspace", "connection", "event", "id", "delivery"] {
            assert!(sample.labels.get(name).is_none(), "no `{name}` label: {}", sample.metric);
        }
    }
}

#[tokio::test]
async fn queue_depth_counts_a_paused_connections_waiting_deliveries() {
    let receiver = Receiver::start(|_| reply(401, &[], "who are you")).await;
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let rule = json!({"event": "page.completed", "action": "send_webhook"});
    let conn = host.webhook_route(&ws, &receiver.url("/h"), rule).await;
    host.emit_event(&ws, "page.completed", json!({"n": 1})).await;
    host.paused_connection(&ws, &conn).await;
    host.emit_event(&ws, "page.completed", json!({"n": 2})).await;
    host.emit_event(&ws, "page.completed", json!({"n": 3})).await;
    host.wait_waiting(&ws, 3).await;

    // This host's own store: gauges are exact, whatever other tests do.
    host.wait_until("the gauges show the paused connection", || async {
        let m = metrics(&host).await;
        let depth = |state| m.value("switchboard_queue_depth", &[("state", state)]);
        depth("waiting") == 3.0
            && depth("pending") == 0.0
            && depth("processing") == 0.0
            && m.value("switchboard_connections_paused", &[]) == 1.0
            && m.value("switchboard_queue_oldest_due_seconds", &[]) == 0.0
    })
    .await;
    let auth_failed = metrics(&host).await.value("switchboard_deliveries_total", &[("outcome", "auth_failed")]);
    assert!(auth_failed >= 1.0, "the attempt that paused it is counted");
}

#[tokio::test]
async fn a_configured_token_is_required() {
    let host = TestHost::start_with(|c| c.metrics.token = Some(TOKEN.into())).await;
    for token in [None, Some("wrong"), Some(switchboard_tests::host::ADMIN)] {
        let response = get(&host, token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        let body: Json = response.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized", "{body}");
        assert!(!body.to_string().contains(TOKEN), "the token is never echoed");
    }
    let m = metrics(&host).await; // with the token
    assert!(m.has_family("switchboard_queue_depth", "gauge"));
}

#[tokio::test]
async fn without_a_token_metrics_are_open() {
    let host = TestHost::start().await;
    assert!(host.config.metrics.token.is_none());
    assert_eq!(get(&host, None).await.status(), StatusCode::OK);
}
