//! Several `switchboard serve` nodes on one PostgreSQL database. A node that
//! dies with `kill -9` loses no acknowledged event, and no delivery is ever
//! attempted by two nodes at once; a block and an upload made through one
//! node hold on the others; a connection's rate limit is the cluster's, not
//! each node's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use switchboard_tests::build::component;
use switchboard_tests::cluster::{Cluster, poll};
use switchboard_tests::host::{Ws, webhook};
use switchboard_tests::measuring_alone;
use switchboard_tests::receiver::{Receiver, reply};

const NODES: usize = 3;
const WEBHOOK: &str = "switchboard-connector-webhook";

/// Every node's leases are short, so the deliveries a kill cut short are
/// claimed again (by any node) 5 s later; attempts are cut at 4 s.
const SHORT_LEASES: [(&str, &str); 2] = [("SWITCHBOARD_DELIVERY__LEASE", "5s"), ("SWITCHBOARD_SANDBOX__WALL", "4s")];

const CLIENTS: usize = 16;
const EVENTS: usize = 6_000;
/// The node that is killed, twice.
const VICTIM: usize = 2;
/// How long one event may go unacknowledged by every node before the test gives up.
const ACK_WITHIN: Duration = Duration::from_secs(60);
/// How long the load may take to reach each kill point.
const LOAD_WITHIN: Duration = Duration::from_secs(120);
/// How long the cluster may take to finish every delivery once the load stops.
const DRAIN_WITHIN: Duration = Duration::from_secs(60);
/// `started_at` is rounded to the millisecond: one attempt may seem to
/// start up to that much before the previous one ended.
const ROUNDING_MS: f64 = 1.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_is_delivered_when_a_node_dies_twice() {
    let _alone = measuring_alone().await;
    let started = Instant::now();
    // The receiver counts arrivals per event id: the rule's body carries it.
    let arrivals: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let tally = arrivals.clone();
    let receiver = Receiver::start(move |call| {
        if let Some(id) = call.json()["event_id"].as_str() {
            *tally.lock().unwrap().entry(id.to_string()).or_default() += 1;
        }
        reply(204, &[], "")
    })
    .await;
    let cluster = Arc::new(Cluster::start(NODES, &[WEBHOOK], &SHORT_LEASES).await);
    let ws = cluster.workspace("crash").await;
    let rule = json!({"event": "tick", "action": "send_webhook", "fields": {"body": {"event_id": "{{ id }}"}}});
    cluster.route(&ws, webhook(&receiver.url("/in")), rule).await;
    let ready = started.elapsed();

    // 16 clients send their events to the nodes in turn.
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        clients.spawn(client(c, cluster.clone(), ws.clone(), acked.clone()));
    }

    // Meanwhile node 2 dies by `kill -9` at a third and at two thirds of the
    // load, and is started again each time.
    let load_started = Instant::now();
    let total = EVENTS / CLIENTS * CLIENTS;
    for (kill, at) in [total / 3, total * 2 / 3].into_iter().enumerate() {
        let reached =
            poll(LOAD_WITHIN, Duration::from_millis(5), || async { (acked.lock().unwrap().len() >= at).then_some(()) })
                .await;
        assert!(reached.is_some(), "the clients did not reach {at} acknowledged events within {LOAD_WITHIN:?}");
        let down = Instant::now();
        cluster.restart(VICTIM).await;
        eprintln!(
            "cluster crash: kill -9 #{} of node {VICTIM} at {:.1?} into the load, {} acknowledged; ready again in {:.1?}",
            kill + 1,
            down - load_started,
            acked.lock().unwrap().len(),
            down.elapsed()
        );
    }
    while let Some(done) = clients.join_next().await {
        done.expect("a client failed");
    }
    let load = load_started.elapsed();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), total, "every client got each of its events acknowledged");

    // Then everything settles, and every acknowledged event has arrived.
    cluster.wait_settled(1, &ws, DRAIN_WITHIN).await;
    let drain = load_started.elapsed() - load;
    let arrivals = arrivals.lock().unwrap().clone();
    let missing: Vec<&String> = acked.iter().filter(|id| !arrivals.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {total} acknowledged events never reached the receiver, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let unacknowledged: Vec<&String> = arrivals.keys().filter(|id| !acked.contains(*id)).collect();
    assert!(unacknowledged.is_empty(), "delivered events no client had acknowledged: {unacknowledged:?}");
    let duplicates: usize = arrivals.values().map(|n| n - 1).sum();

    // Every delivery completed: none failed, none is stuck.
    let deliveries = cluster.deliveries(1, &ws).await;
    let mut statuses = BTreeMap::<String, usize>::new();
    for d in &deliveries {
        *statuses.entry(d["status"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    assert_eq!(deliveries.len(), total, "one delivery per acknowledged event (one rule)");
    assert_eq!(statuses.get("completed"), Some(&total), "every delivery completed; statuses: {statuses:?}");

    // No two attempts of one delivery overlapped in time: one node at a time held it.
    let retried: Vec<String> = deliveries
        .iter()
        .filter(|d| d["attempt_count"].as_u64().unwrap_or(0) > 1)
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let (outcomes, overlaps) = check_attempts(&cluster, &ws, &retried).await;
    eprintln!(
        "cluster crash: {total} events acknowledged by {NODES} nodes and delivered; {duplicates} duplicate deliveries \
         across 2 kill -9s of node {VICTIM}; {} deliveries attempted more than once, their attempts {outcomes:?}; \
         ready {ready:.1?}, load {load:.1?}, drain {drain:.1?}, total {:.1?}",
        retried.len(),
        started.elapsed()
    );
    assert!(overlaps.is_empty(), "attempts of one delivery overlapped in time:\n{}", overlaps.join("\n"));
}

/// Send this client's share of the events, each to the next node in turn.
/// An event that a node does not acknowledge (it is down, or died during the
/// request) goes to the next node with the same idempotency key, so it
/// becomes one event whichever node had stored it; only an answer of 201 or
/// 200 counts it as acknowledged.
async fn client(c: usize, cluster: Arc<Cluster>, ws: Ws, acked: Arc<Mutex<HashSet<String>>>) {
    for i in 0..EVENTS / CLIENTS {
        let (key, event) = (format!("{c}-{i}"), json!({"event": "tick", "payload": {"c": c, "i": i}}));
        let deadline = Instant::now() + ACK_WITHIN;
        let mut node = (c + i) % cluster.len() + 1;
        let id = loop {
            match cluster.emit(node, &ws, &event, Some(&key)).await {
                Ok((status, answer)) if status == StatusCode::CREATED || status == StatusCode::OK => {
                    break answer["event"]["id"].as_str().expect("an acknowledged event has an id").to_string();
                }
                Ok((status, answer)) if status.is_client_error() => {
                    panic!("client {c}: node {node} refused event {i}: {status} {answer}")
                }
                _ => {}
            }
            assert!(Instant::now() < deadline, "client {c}: no node acknowledged event {i} within {ACK_WITHIN:?}");
            node = node % cluster.len() + 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        acked.lock().unwrap().insert(id);
    }
}

/// Read the attempts of `deliveries` (8 at a time, through node 1): their
/// outcomes counted, and every pair of one delivery's attempts that
/// overlapped in time.
async fn check_attempts(
    cluster: &Arc<Cluster>,
    ws: &Ws,
    deliveries: &[String],
) -> (BTreeMap<String, usize>, Vec<String>) {
    let (mut outcomes, mut overlaps) = (BTreeMap::new(), Vec::new());
    let mut reads = JoinSet::new();
    let mut pending = deliveries.iter();
    loop {
        while reads.len() < 8
            && let Some(id) = pending.next()
        {
            let (cluster, ws, id) = (cluster.clone(), ws.clone(), id.clone());
            reads.spawn(async move {
                let attempts = cluster.attempts(1, &ws, &id).await;
                (id, attempts)
            });
        }
        let Some(read) = reads.join_next().await else { break };
        let (id, attempts) = read.expect("reading attempts");
        for a in &attempts {
            *outcomes.entry(a["outcome"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        }
        overlaps.extend(overlapping(&id, &attempts));
    }
    (outcomes, overlaps)
}

/// Each pair of attempts of one delivery where one started before the
/// other had ended (`started_at` + `duration_ms`).
fn overlapping(delivery: &str, attempts: &[Value]) -> Vec<String> {
    let spans: Vec<(u64, f64, f64)> = attempts
        .iter()
        .map(|a| {
            let at: jiff::Timestamp = a["started_at"].as_str().expect("started_at").parse().expect("an RFC 3339 time");
            let start = at.as_millisecond() as f64;
            (a["n"].as_u64().unwrap_or(0), start, start + a["duration_ms"].as_f64().expect("duration_ms"))
        })
        .collect();
    let mut found = Vec::new();
    for (k, a) in spans.iter().enumerate() {
        for b in &spans[k + 1..] {
            if a.1 < b.2 - ROUNDING_MS && b.1 < a.2 - ROUNDING_MS {
                found.push(format!(
                    "{delivery}: attempt {} ({:.0}–{:.0} ms) and attempt {} ({:.0}–{:.0} ms)",
                    a.0, a.1, a.2, b.0, b.1, b.2
                ));
            }
        }
    }
    found
}

const ECHO_V1: &str = "switchboard-fixture-echo-v1";
const ECHO_V2: &str = "switchboard-fixture-echo-v2";
/// How long a block or an upload made through one node may take to hold on another.
const HOLDS_WITHIN: Duration = Duration::from_secs(2);
/// How long the test looks for it before failing (to report how late it was).
const SHOWN_WITHIN: Duration = Duration::from_secs(5);
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_one_node_holds_on_another_within_two_seconds() {
    let _alone = measuring_alone().await;
    let cluster = Cluster::start(NODES, &[WEBHOOK, ECHO_V1], &[]).await;

    // Node 1 blocks the bundled webhook version; node 3 lists it blocked within 2 s.
    let version = versions(&cluster, 1, "webhook").await[0].0.clone();
    let blocked = (version.clone(), true);
    assert!(!versions(&cluster, 3, "webhook").await.contains(&blocked), "nothing is blocked yet");
    let block = format!("/api/v1/connectors/webhook/versions/{version}/block");
    cluster.admin(1, Method::POST, &block, None, StatusCode::OK).await;
    let took = shown_on(&cluster, 3, "webhook", Instant::now(), |v| v.contains(&blocked)).await;
    eprintln!("cluster registry: node 3 showed node 1's block of webhook {version} after {took:.3?}");
    assert!(
        took <= HOLDS_WITHIN,
        "node 3 showed node 1's block of webhook {version} after {took:?}, more than {HOLDS_WITHIN:?}"
    );

    // A greater version uploaded through node 1 reaches node 3 within the
    // same 2 s, and node 3's next delivery for a connection on `latest` runs it.
    let receiver = Receiver::answering(204, "").await;
    let ws = cluster.workspace("registry").await;
    let echo =
        json!({"connector": "echo", "version": "latest", "name": "echo", "settings": {"url": receiver.url("/echo")}});
    cluster.route(&ws, echo, json!({"event": "tick", "action": "send"})).await;
    assert_eq!(delivered_version(&cluster, 3, &ws).await, "1.0.0", "before the upload, `latest` is the bundled 1.0.0");
    let (status, body) = cluster.upload(1, "echo", component(ECHO_V2)).await;
    assert_eq!(status, StatusCode::CREATED, "node 1 takes echo 2.0.0: {body}");
    let took = shown_on(&cluster, 3, "echo", Instant::now(), |v| v.iter().any(|(version, _)| version == "2.0.0")).await;
    eprintln!("cluster registry: node 3 listed echo 2.0.0, uploaded through node 1, after {took:.3?}");
    assert!(
        took <= HOLDS_WITHIN,
        "node 3 listed echo 2.0.0, uploaded through node 1, after {took:?}, more than {HOLDS_WITHIN:?}"
    );
    // From here node 3 is the only node left to deliver.
    cluster.node(1).kill9();
    cluster.node(2).kill9();
    let ran = delivered_version(&cluster, 3, &ws).await;
    assert_eq!(ran, "2.0.0", "node 3's next delivery on `latest` after it listed echo 2.0.0 ran echo {ran}");
    let body: Value = receiver.requests().last().expect("the echo arrived").json();
    assert_eq!(body["version"], "2.0.0", "and the connector that sent it says so: {body}");
}

/// The versions of `connector` node `n` lists, oldest first, each with
/// whether it is blocked.
async fn versions(cluster: &Cluster, n: usize, connector: &str) -> Vec<(String, bool)> {
    let listing = cluster.get(n, &format!("/api/v1/connectors/{connector}/versions")).await;
    let records = listing["records"].as_array().cloned().unwrap_or_default();
    records.iter().map(|v| (v["version"].as_str().unwrap_or("?").to_string(), v["blocked"] == true)).collect()
}

/// Poll node `n`'s versions of `connector` until `holds` is true of them;
/// how long after `since` that was. Panics with what node `n` lists if that
/// has not happened within `SHOWN_WITHIN`.
async fn shown_on(
    cluster: &Cluster,
    n: usize,
    connector: &str,
    since: Instant,
    holds: impl Fn(&[(String, bool)]) -> bool,
) -> Duration {
    let seen = poll(SHOWN_WITHIN, Duration::from_millis(10), || async {
        holds(&versions(cluster, n, connector).await).then(|| since.elapsed())
    })
    .await;
    match seen {
        Some(took) => took,
        None => panic!(
            "node {n} did not show the change within {SHOWN_WITHIN:?}; it lists {connector} (version, blocked): {:?}",
            versions(cluster, n, connector).await
        ),
    }
}

/// Emit one `tick` through node `n` and wait until its delivery completes;
/// the connector version its attempt ran, as node `n` records it (the
/// delivery's and the attempt record's, which must agree).
async fn delivered_version(cluster: &Cluster, n: usize, ws: &Ws) -> String {
    let event = cluster.emit_ok(n, ws, json!({"event": "tick", "payload": {"n": 1}})).await;
    let settled = poll(DELIVERY_WAIT, Duration::from_millis(20), || async {
        let d = cluster.event_deliveries(n, ws, &event).await.into_iter().next()?;
        ["completed", "failed", "canceled"].contains(&d["status"].as_str()?).then_some(d)
    })
    .await;
    let Some(delivery) = settled else {
        panic!(
            "event {event}'s delivery is not final on node {n} after {DELIVERY_WAIT:?}: {:?}",
            cluster.event_deliveries(n, ws, &event).await
        )
    };
    assert_eq!(delivery["status"], "completed", "{delivery}");
    let attempts = cluster.attempts(n, ws, delivery["id"].as_str().unwrap()).await;
    let last = attempts.last().unwrap_or_else(|| panic!("a completed delivery has an attempt: {delivery}"));
    assert_eq!(last["connector_version"], delivery["connector_version"], "{delivery} vs {last}");
    last["connector_version"].as_str().expect("connector_version").to_string()
}

/// The connection's limit, deliveries per second; its bucket holds one
/// second of tokens, so the first `RATE` may go at once.
const RATE: usize = 20;
const LIMITED_EVENTS: usize = 200;
/// A second of arrivals may hold the bucket's burst and a second of refill,
/// plus what a quarter second of variation in how long an attempt takes to
/// reach the receiver can bunch together.
const BUSIEST_SECOND_MAX: usize = RATE + RATE + RATE / 4;
/// After the burst, the other 180 take at least 9 s at 20/s: 8.5 s leaves
/// slack for timing.
const MIN_SPAN: Duration = Duration::from_millis(8_500);
const LIMITED_WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_for_the_cluster() {
    let _alone = measuring_alone().await;
    let receiver = Receiver::answering(204, "").await;
    let cluster = Cluster::start(NODES, &[WEBHOOK], &[]).await;
    let ws = cluster.workspace("limited").await;
    let mut limited = webhook(&receiver.url("/in"));
    limited["rate_limit_per_second"] = json!(RATE);
    cluster.route(&ws, limited, json!({"event": "tick", "action": "send_webhook"})).await;

    // 200 events, a third ingested through each node.
    let events: Vec<Value> = (0..LIMITED_EVENTS).map(|i| json!({"event": "tick", "payload": {"i": i}})).collect();
    for (k, share) in events.chunks(LIMITED_EVENTS.div_ceil(NODES)).enumerate() {
        cluster.emit_bulk(k + 1, &ws, share).await;
    }

    // Every one arrives (each delivery once or more: `webhook-id` is the delivery).
    let distinct = || {
        receiver
            .requests()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(String::from))
            .collect::<HashSet<_>>()
            .len()
    };
    let all =
        poll(LIMITED_WAIT, Duration::from_millis(100), || async { (distinct() == LIMITED_EVENTS).then_some(()) }).await;
    assert!(all.is_some(), "{} of {LIMITED_EVENTS} deliveries arrived within {LIMITED_WAIT:?}", distinct());

    // The receiver saw them at no more than 20/s after the first burst of 20, cluster-wide.
    let arrivals: Vec<Instant> = receiver.requests().iter().map(|r| r.at).collect();
    let span = *arrivals.last().unwrap() - arrivals[0];
    let busiest = (0..arrivals.len())
        .map(|i| arrivals[i..].iter().take_while(|t| **t - arrivals[i] < Duration::from_secs(1)).count())
        .max()
        .unwrap_or(0);
    let rate = (arrivals.len() - RATE) as f64 / span.as_secs_f64();
    eprintln!(
        "cluster rate limit: {} arrivals ({LIMITED_EVENTS} deliveries) over {span:.2?}: {rate:.1}/s after the burst of \
         {RATE}; the busiest second held {busiest} (limit {RATE}/s on {NODES} nodes)",
        arrivals.len()
    );
    assert!(
        span >= MIN_SPAN,
        "{LIMITED_EVENTS} deliveries limited to {RATE}/s arrived within {span:.2?} ({rate:.1}/s after the burst); \
         at {RATE}/s for the whole cluster they take at least {MIN_SPAN:?}"
    );
    assert!(
        busiest <= BUSIEST_SECOND_MAX,
        "one second held {busiest} arrivals; a {RATE}/s limit allows at most {BUSIEST_SECOND_MAX} (burst and refill)"
    );
}
