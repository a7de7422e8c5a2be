//! Fair share: one workspace's backlog, slow destinations and hostile
//! connector (burning CPU, looping on sends and on log lines) raise another workspace's ingest-to-delivery p50 by
//! at most 2×. Measured against the real server process: the victim's
//! latency alone first, then again while a hostile workspace floods.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::process::ServerProcess;
use switchboard_tests::receiver::{Receiver, reply};
use tokio::sync::Notify;

/// Victim events per measurement, and the pause between them.
const SAMPLES: u64 = 40;
const PACE: Duration = Duration::from_millis(25);
/// Hostile events; each fans out to every hostile connection.
const FLOOD_EVENTS: usize = 1_000;
const SLOW_ANSWER: Duration = Duration::from_secs(2);

/// When each victim delivery arrived, by the `seq` in its payload.
#[derive(Clone, Default)]
struct Arrivals {
    at: Arc<Mutex<HashMap<u64, Instant>>>,
    changed: Arc<Notify>,
}

impl Arrivals {
    async fn receiver(&self) -> Receiver {
        let arrivals = self.clone();
        Receiver::start(move |r| {
            if let Ok(body) = serde_json::from_slice::<Value>(&r.body)
                && let Some(seq) = body["data"]["seq"].as_u64()
            {
                arrivals.at.lock().unwrap().entry(seq).or_insert_with(Instant::now);
                arrivals.changed.notify_waiters();
            }
            reply(204, &[], "")
        })
        .await
    }

    /// Wait (at most 60 s) until every seq in `seqs` arrived.
    async fn all(&self, seqs: std::ops::Range<u64>) -> HashMap<u64, Instant> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let changed = self.changed.notified();
            {
                let at = self.at.lock().unwrap();
                if seqs.clone().all(|s| at.contains_key(&s)) {
                    return at.clone();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "victim deliveries did not all arrive within 60 s");
            let _ = tokio::time::timeout(left, changed).await;
        }
    }
}

struct Workspace {
    id: String,
    key: String,
}

async fn workspace(server: &ServerProcess, name: &str) -> Workspace {
    let ws = server.admin("/api/v1/workspaces", Some(json!({"name": name}))).await;
    Workspace { id: ws["id"].as_str().unwrap().into(), key: ws["publishable_key"].as_str().unwrap().into() }
}

async fn route(server: &ServerProcess, ws: &Workspace, event: &str, connection: Value, action: &str, fields: Value) {
    let conn = server.admin(&format!("/api/v1/workspaces/{}/connections", ws.id), Some(connection)).await;
    let rule = json!({"event": event, "connection": conn["id"], "action": action, "fields": fields});
    server.admin(&format!("/api/v1/workspaces/{}/rules", ws.id), Some(rule)).await;
}

fn webhook(name: &str, url: String) -> Value {
    json!({"connector": "webhook", "name": name, "settings": {"url": url}, "secrets": {"signing_secret": WEBHOOK_SECRET}})
}

/// Emit `SAMPLES` victim events starting at `first`, paced, and return the
/// median time from sending the event to its delivery's arrival.
async fn victim_p50(server: &ServerProcess, victim: &Workspace, arrivals: &Arrivals, first: u64) -> Duration {
    let http = reqwest::Client::new();
    let mut sent = HashMap::new();
    for seq in first..first + SAMPLES {
        // From the moment the product emits: ingest time counts too.
        let emitted = Instant::now();
        let answer = http
            .post(format!("{}/api/v1/events", server.url()))
            .header("X-Meshes-Publishable-Key", &victim.key)
            .json(&json!({"event": "ping", "payload": {"seq": seq}}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "victim emit: {}", answer.status());
        sent.insert(seq, emitted);
        tokio::time::sleep(PACE).await; // pacing the load, not waiting for a result
    }
    let arrived = arrivals.all(first..first + SAMPLES).await;
    let mut latencies: Vec<Duration> =
        sent.iter().map(|(seq, at)| arrived[seq].saturating_duration_since(*at)).collect();
    latencies.sort();
    latencies[latencies.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_workspace_at_most_doubles_another_workspaces_delivery_p50() {
    let _alone = switchboard_tests::measuring_alone().await;
    let server = ServerProcess::start(&[]);
    server.wait_ready().await;
    let arrivals = Arrivals::default();
    let victim_receiver = arrivals.receiver().await;
    let slow = Receiver::start_delayed(SLOW_ANSWER, |_| reply(204, &[], "")).await;
    let fast = Receiver::answering(204, "").await;

    let victim = workspace(&server, "victim").await;
    route(&server, &victim, "ping", webhook("victim", victim_receiver.url("/in")), "send_webhook", json!({})).await;
    let hostile = workspace(&server, "hostile").await;
    for n in 0..4 {
        route(&server, &hostile, "flood", webhook(&format!("slow-{n}"), slow.url("/in")), "send_webhook", json!({}))
            .await;
    }
    route(&server, &hostile, "flood", webhook("fast", fast.url("/in")), "send_webhook", json!({})).await;
    // The hostile connector: burning its CPU budget, looping on sends to the
    // slow destination, looping on log lines.
    for (action, fields) in
        [("spin", json!({})), ("send_loop", json!({"url": slow.url("/loop")})), ("log_loop", json!({}))]
    {
        let connection = json!({"connector": "hostile", "name": action, "settings": {}});
        route(&server, &hostile, "flood", connection, action, fields).await;
    }

    let alone = victim_p50(&server, &victim, &arrivals, 0).await;

    let http = reqwest::Client::new();
    for chunk in 0..FLOOD_EVENTS / 100 {
        let items: Vec<Value> =
            (0..100).map(|i| json!({"event": "flood", "payload": {"n": chunk * 100 + i}})).collect();
        let answer = http
            .post(format!("{}/api/v1/events/bulk", server.url()))
            .header("X-Meshes-Publishable-Key", &hostile.key)
            .json(&items)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "hostile bulk emit: {}", answer.status());
    }
    let flooded = victim_p50(&server, &victim, &arrivals, SAMPLES).await;
    let backlog =
        server.admin(&format!("/api/v1/workspaces/{}/deliveries?status=pending&limit=1", hostile.id), None).await;
    assert_eq!(backlog["count"], 1, "the flood was still queued when the measurement ended");

    println!("victim delivery p50: alone {alone:?}, during the flood {flooded:?}");
    assert!(
        flooded <= alone * 2,
        "the hostile workspace raised the victim's p50 from {alone:?} to {flooded:?} (more than 2×)"
    );
    assert!(server.is_alive());
}
