//! Crash safety (at-least-once): the real binary as a child process,
//! `kill -9`'d three times while 64 clients emit 20,000 events. Every event
//! that got a 2xx is delivered at least once; nothing is left stuck;
//! duplicates are counted and reported.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::process::ServerProcess;
use switchboard_tests::receiver::{Receiver, reply};

const CLIENTS: usize = 64;
const EVENTS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_acknowledged_event() {
    // The receiver counts deliveries per (client, i).
    let received: Arc<Mutex<HashMap<(u64, u64), usize>>> = Arc::default();
    let seen = received.clone();
    let receiver = Receiver::start(move |r| {
        if let Ok(body) = serde_json::from_slice::<Value>(&r.body) {
            let key = (body["data"]["c"].as_u64().unwrap_or(u64::MAX), body["data"]["i"].as_u64().unwrap_or(u64::MAX));
            *seen.lock().unwrap().entry(key).or_default() += 1;
        }
        reply(204, &[], "")
    })
    .await;

    // Short leases, so deliveries cut by a kill are due again within seconds.
    let server = ServerProcess::start(&[("SWITCHBOARD_DELIVERY__LEASE", "6s"), ("SWITCHBOARD_SANDBOX__WALL", "4s")]);
    server.wait_ready().await;
    let url = server.url();

    let ws = server.admin("/api/v1/workspaces", Some(json!({"name": "crash"}))).await;
    let (ws_id, key) = (ws["id"].as_str().unwrap().to_string(), ws["publishable_key"].as_str().unwrap().to_string());
    let conn = json!({"connector": "webhook", "name": "r", "settings": {"url": receiver.url("/in")},
                      "secrets": {"signing_secret": WEBHOOK_SECRET}});
    let conn = server.admin(&format!("/api/v1/workspaces/{ws_id}/connections"), Some(conn)).await;
    let rule = json!({"event": "tick", "connection": conn["id"], "action": "send_webhook"});
    server.admin(&format!("/api/v1/workspaces/{ws_id}/rules"), Some(rule)).await;

    // 64 clients; each event carries an Idempotency-Key so a client that lost
    // its answer to a crash can send it again without creating a second event.
    let acked: Arc<Mutex<HashSet<(u64, u64)>>> = Arc::default();
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS as u64 {
        let (acked, accepted, url, key) = (acked.clone(), accepted.clone(), url.clone(), key.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            for i in 0..(EVENTS / CLIENTS) as u64 {
                loop {
                    let sent = http
                        .post(format!("{url}/api/v1/events"))
                        .header("X-Meshes-Publishable-Key", &key)
                        .header("Idempotency-Key", format!("{c}-{i}"))
                        .json(&json!({"event": "tick", "payload": {"c": c, "i": i}}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == StatusCode::CREATED || r.status() == StatusCode::OK => {
                            acked.lock().unwrap().insert((c, i));
                            accepted.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(50)).await, // server down: retry
                    }
                }
            }
        }));
    }

    // Kill -9 three times at moments spread over the run, restarting each time.
    let total = (EVENTS / CLIENTS) * CLIENTS;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as usize;
    for (k, fraction) in [0.2, 0.5, 0.8].iter().enumerate() {
        let at = (total as f64 * fraction) as usize + (nanos >> (k * 4)) % 1000;
        while accepted.load(Ordering::Relaxed) < at.min(total - 1) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill9();
        server.spawn();
        server.wait_ready().await;
    }
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), total);

    // Every acknowledged event is delivered at least once.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let missing = {
            let got = received.lock().unwrap();
            acked.iter().filter(|k| !got.contains_key(k)).count()
        };
        if missing == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{missing} acknowledged events were never delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing is stuck: every delivery reaches `completed`.
    for status in ["pending", "processing", "retrying", "waiting", "failed"] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = server.admin(&format!("/api/v1/workspaces/{ws_id}/deliveries?status={status}&limit=1"), None).await;
            if v["count"] == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "deliveries stuck in `{status}`: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let got = received.lock().unwrap();
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: {total} events acknowledged and delivered; {duplicates} duplicate deliveries across 3 kill -9s"
    );
    assert!(got.keys().all(|k| acked.contains(k)), "only acknowledged events are delivered");
}
