//! Ingest throughput and latency (issue #3's Measure), against a baseline
//! axum handler in the same process that parses the same JSON, checks the
//! same fields and answers 201 without storing anything.
//!
//! - single: 64 keep-alive clients, `POST /api/v1/events`, closed loop;
//! - bulk: 64 clients, 100 events per `POST /api/v1/events/bulk`;
//! - latency: 1,000 events/s offered (open loop), p50/p99;
//! - single again with a JSON log subscriber (the access log's cost).
//!
//! Every 201 from Switchboard means the event was fsync'd (group commit).
//! Run: `scripts/bench.sh ingest`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use common::{closed_loop, ms, open_loop, start};
use serde_json::{Value, json};

const DURATION: Duration = Duration::from_secs(10);
const CLIENTS: usize = 64;

fn event_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": "page.completed", "resource": "onboarding_sequence", "resource_id": "workspace-setup",
        "payload": {"user_id": "usr_5012", "email": "alex@northstar.io", "page_id": "page_connect-crm",
                    "page_title": "Connect your CRM", "sequence_step": 3, "completed_at": "2026-03-21T15:06:00Z",
                    "time_on_page_seconds": 522}
    }))
    .unwrap()
}

/// The baseline: parse, validate the same fields, answer 201, store nothing.
async fn baseline(body: Bytes) -> (StatusCode, Json<Value>) {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else { return (StatusCode::BAD_REQUEST, Json(json!({}))) };
    let items: Vec<&Value> = match &v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut records = Vec::new();
    for item in items {
        let ok = item["event"].is_string() && item["payload"].as_object().is_some_and(|p| !p.is_empty());
        if !ok {
            return (StatusCode::BAD_REQUEST, Json(json!({"message": "bad"})));
        }
        records.push(json!({"id": ulid::Ulid::new().to_string(), "type": "event", "event": item["event"],
            "workspace": "ws", "created_by": "key", "created_at": "2026-01-01T00:00:00Z",
            "resource": item["resource"], "resource_id": item["resource_id"]}));
    }
    (StatusCode::CREATED, Json(json!({"count": records.len(), "records": records})))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let service = start(|_| {}).await;
        let (_ws, key) = service.workspace().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, axum::Router::new().route("/baseline", axum::routing::post(baseline))).await.unwrap()
        });
        let headers = vec![("X-Meshes-Publishable-Key".to_string(), key)];
        let single = Arc::new(event_body());
        let bulk: Vec<Value> = (0..100).map(|_| serde_json::from_slice(&single).unwrap()).collect();
        let bulk = Arc::new(serde_json::to_vec(&bulk).unwrap());

        println!("| run | events/s | p50 ms | p99 ms | errors |");
        println!("|---|---:|---:|---:|---:|");
        let report = |name: &str, r: &common::LoadResult, per_request: u64| {
            let eps = (r.requests * per_request) as f64 / r.elapsed.as_secs_f64();
            println!("| {name} | {eps:.0} | {:.2} | {:.2} | {} |", ms(r.latency.p50), ms(r.latency.p99), r.errors);
            eps
        };
        let b1 = closed_loop(format!("{base_url}/baseline"), vec![], single.clone(), CLIENTS, DURATION).await;
        let base_single = report("baseline, single, 64 clients", &b1, 1);
        let s1 =
            closed_loop(format!("{}/api/v1/events", service.url), headers.clone(), single.clone(), CLIENTS, DURATION)
                .await;
        let sw_single = report("switchboard, single, 64 clients (durable)", &s1, 1);
        let b2 = closed_loop(format!("{base_url}/baseline"), vec![], bulk.clone(), CLIENTS, DURATION).await;
        let base_bulk = report("baseline, bulk x100, 64 clients", &b2, 100);
        let s2 = closed_loop(
            format!("{}/api/v1/events/bulk", service.url),
            headers.clone(),
            bulk.clone(),
            CLIENTS,
            DURATION,
        )
        .await;
        let sw_bulk = report("switchboard, bulk x100, 64 clients (durable)", &s2, 100);
        let o1 = open_loop(format!("{base_url}/baseline"), vec![], single.clone(), 1000, DURATION).await;
        report("baseline, 1,000/s offered", &o1, 1);
        let o2 =
            open_loop(format!("{}/api/v1/events", service.url), headers.clone(), single.clone(), 1000, DURATION).await;
        report("switchboard, 1,000/s offered (durable)", &o2, 1);
        // Last, because a subscriber cannot be taken back: the same single run
        // with every request's access-log line formatted as JSON (and thrown
        // away), what `[log] format = "json"` costs a busy server.
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::sink)
            .with_env_filter("info")
            .init();
        let s3 =
            closed_loop(format!("{}/api/v1/events", service.url), headers.clone(), single.clone(), CLIENTS, DURATION)
                .await;
        let sw_logged = report("switchboard, single, 64 clients, JSON access log", &s3, 1);
        println!();
        println!("ratio to baseline: single {:.2}, bulk {:.2}", sw_single / base_single, sw_bulk / base_bulk);
        println!("JSON access log: {:.2}x the single rate without a subscriber", sw_logged / sw_single);
        println!("resident memory after the run: {:.0} MiB (service + load generator)", common::rss_mib());
        service.shutdown.cancel();
    });
}
