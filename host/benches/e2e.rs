//! End to end with default settings: one rule, the webhook connector in a
//! fresh sandbox per delivery, a local receiver answering 204. Measured: how
//! fast a 20,000-event burst drains through one connection (next to a
//! baseline: the same requests posted straight to the receiver at the
//! connection's concurrency), ingest-to-delivery latency at a steady 1,000
//! events/s, and resident memory with 100,000 deliveries queued behind a
//! paused connection.
//!
//! Run: `scripts/bench.sh e2e`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{ms, percentiles, start};
use reqwest::Method;
use serde_json::{Value, json};

const EVENTS: usize = 20_000;
const QUEUED: usize = 100_000;
const STEADY: usize = 10_000;

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// Emit `events` in 4 parallel streams of 100-event bulk requests, as fast
/// as ingest takes them.
async fn burst<F, Fut>(emit: &F, events: usize)
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut emitters = Vec::new();
    for _ in 0..4 {
        let emit = emit.clone();
        emitters.push(tokio::spawn(async move {
            for _ in 0..events / 400 {
                emit(100).await;
            }
        }));
    }
    for e in emitters {
        e.await.unwrap();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // The receiver records when each delivery arrived and when it was emitted.
        let arrivals: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
        let seen = arrivals.clone();
        let receiver = common::receiver("/hook", true, move |body| {
            let arrived = now_ns();
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let sent = v["data"]["sent_ns"].as_str().and_then(|s| s.parse::<u128>().ok()).unwrap_or(arrived);
            seen.lock().unwrap().push((Instant::now(), Duration::from_nanos((arrived.saturating_sub(sent)) as u64)));
        })
        .await;

        // Baseline: the receiver alone, 16 concurrent senders (the default
        // per-connection concurrency), the same body, no Switchboard.
        let base_url = receiver.clone();
        let body = Arc::new(serde_json::to_vec(&json!({"type": "page.completed", "data": {"i": 0, "email": "alex@northstar.io", "sequence_step": 3}})).unwrap());
        let base = common::closed_loop(base_url, vec![], body, 16, Duration::from_secs(5)).await;
        arrivals.lock().unwrap().clear();
        let base_rate = base.requests as f64 / base.elapsed.as_secs_f64();

        // Default settings; E2E_PER_CONNECTION overrides the per-connection
        // concurrency to compare (not used for the recorded numbers).
        let service = start(|c| {
            if let Some(n) = std::env::var("E2E_PER_CONNECTION").ok().and_then(|v| v.parse().ok()) {
                c.delivery.per_connection_concurrency = n;
            }
        })
        .await;
        let (ws, key) = service.workspace().await;
        let conn = service
            .admin(Method::POST, &format!("/api/v1/workspaces/{ws}/connections"),
                json!({"connector": "webhook", "name": "bench", "settings": {"url": receiver},
                       "secrets": {"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}))
            .await["id"].as_str().unwrap().to_string();
        service.admin(Method::POST, &format!("/api/v1/workspaces/{ws}/rules"),
            json!({"event": "page.completed", "connection": conn, "action": "send_webhook"})).await;

        let bulk_url = format!("{}/api/v1/events/bulk", service.url);
        let steady_key = key.clone();
        let http = service.client.clone();
        let emit = move |n: usize| {
            let (client, url, key) = (http.clone(), bulk_url.clone(), key.clone());
            async move {
                let batch: Vec<Value> = (0..n)
                    .map(|i| json!({"event": "page.completed", "payload": {"sent_ns": now_ns().to_string(), "i": i, "email": "alex@northstar.io", "sequence_step": 3}}))
                    .collect();
                let r = client.post(url).header("X-Meshes-Publishable-Key", key).json(&batch).send().await.unwrap();
                assert_eq!(r.status(), reqwest::StatusCode::CREATED);
            }
        };
        let started = Instant::now();
        burst(&emit, EVENTS).await;
        let ingested = started.elapsed();
        while arrivals.lock().unwrap().len() < EVENTS {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(started.elapsed() < Duration::from_secs(600), "deliveries stalled");
        }
        let done = arrivals.lock().unwrap().clone();
        let last = done.iter().map(|(t, _)| *t).max().unwrap();
        let first = done.iter().map(|(t, _)| *t).min().unwrap();
        let total = last.duration_since(started);
        let lat = percentiles(done.iter().map(|(_, l)| *l).collect());
        println!("| measure | value |");
        println!("|---|---:|");
        println!("| events | {EVENTS} |");
        println!("| baseline: straight to the receiver, 16 senders | {base_rate:.0} req/s |");
        println!("| ingest time (bulk x100, 4 streams) | {:.2} s |", ingested.as_secs_f64());
        println!("| first emit to last delivery | {:.2} s |", total.as_secs_f64());
        let rate = EVENTS as f64 / total.as_secs_f64();
        println!("| delivered/s, first emit to last delivery | {rate:.0} ({:.2}x baseline) |", rate / base_rate);
        let drain = EVENTS as f64 / last.duration_since(first).as_secs_f64();
        println!("| delivered/s, first to last delivery | {drain:.0} ({:.2}x baseline) |", drain / base_rate);
        println!("| burst of {EVENTS}: ingest-to-delivery p50 (queueing included) | {:.1} ms |", ms(lat.p50));
        println!("| burst of {EVENTS}: ingest-to-delivery p99 (queueing included) | {:.1} ms |", ms(lat.p99));

        // Latency at a steady 1,000 events/s (single-event ingest), no backlog.
        arrivals.lock().unwrap().clear();
        let single_url = format!("{}/api/v1/events", service.url);
        let mut ticker = tokio::time::interval(Duration::from_millis(1));
        let mut sends = Vec::new();
        for i in 0..STEADY {
            ticker.tick().await;
            let (client, url, key) = (service.client.clone(), single_url.clone(), steady_key.clone());
            sends.push(tokio::spawn(async move {
                let body = json!({"event": "page.completed", "payload": {"sent_ns": now_ns().to_string(), "i": i}});
                let t = Instant::now();
                client.post(url).header("X-Meshes-Publishable-Key", key).json(&body).send().await.unwrap();
                t.elapsed()
            }));
        }
        let mut posts = Vec::new();
        for s in sends {
            posts.push(s.await.unwrap());
        }
        let posts = percentiles(posts);
        println!("| steady: ingest answer p50 / p99 | {:.1} / {:.1} ms |", ms(posts.p50), ms(posts.p99));
        while arrivals.lock().unwrap().len() < STEADY {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let steady = percentiles(arrivals.lock().unwrap().iter().map(|(_, l)| *l).collect());
        println!("| steady 1,000 events/s: ingest-to-delivery p50 | {:.1} ms |", ms(steady.p50));
        println!("| steady 1,000 events/s: ingest-to-delivery p99 | {:.1} ms |", ms(steady.p99));

        // Memory with 100,000 deliveries queued: pause the connection, emit.
        let rss_before = common::rss_mib();
        service.admin(Method::PATCH, &format!("/api/v1/workspaces/{ws}/connections/{conn}"), json!({"active": false})).await;
        burst(&emit, QUEUED).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!("| resident memory before queueing | {rss_before:.0} MiB |");
        println!("| resident memory with {QUEUED} deliveries queued | {:.0} MiB |", common::rss_mib());
        service.shutdown.cancel();
    });
}
