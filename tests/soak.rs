//! Soak: one node under steady load for `SOAK_SECONDS` (default 180), killed
//! with `kill -9` every 20–40 s and restarted. 16 clients emit single and bulk
//! events, 4 readers list events, deliveries and attempts; every event goes
//! to a fast, a slow (2 s) and a flaky (503 first, then 200) destination.
//! It proves that through the kills `/healthz` answers within 1 s whenever
//! the process lives, no live server answers a 5xx other than 503, every
//! acknowledged event reaches every destination, nothing is left pending,
//! processing, retrying or failed, and attempts cut by a kill read
//! `interrupted`. Duplicates are allowed (at-least-once) and counted.
//! `SOAK_SEED` repeats a run's kill times (the seed is printed); `SOAK_RATE`
//! sets events/s. From 180 s on, the load lasts until the fifth kill at least.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::process::{ADMIN, ServerProcess};
use switchboard_tests::receiver::{Call, Receiver, reply};

const CLIENTS: u64 = 16;
const READERS: usize = 4;
const BULK: u64 = 10;
const EVENT: &str = "soak.tick";
/// The slow destination's answer time; it gets 64 attempts in flight (not
/// the default 16) so it drains 32 events/s, above the default load.
const SLOW: Duration = Duration::from_secs(2);
const SLOW_CONCURRENCY: u32 = 64;
const DEFAULT_RATE: f64 = 24.0;
const HEALTH_EVERY: Duration = Duration::from_millis(500);
const HEALTH_LIMIT: Duration = Duration::from_secs(1);
/// A process younger than this is still starting: the watchdog leaves it be.
const STARTUP_GRACE: Duration = Duration::from_secs(2);
const DRAIN: Duration = Duration::from_secs(120);

/// Quick enough that the flaky destination's 503 is retried within 100 ms;
/// attempts are cut at 5 s and leases (8 s) outlast them, so a delivery
/// whose process died is due again 8 s later.
const SERVER_ENV: [(&str, &str); 5] = [
    ("SWITCHBOARD_DELIVERY__LEASE", "8s"),
    ("SWITCHBOARD_DELIVERY__CONCURRENCY", "128"),
    ("SWITCHBOARD_SANDBOX__WALL", "5s"),
    ("SWITCHBOARD_SANDBOX__REQUEST_TIMEOUT", "4s"),
    ("SWITCHBOARD_RETRY__SCHEDULE", r#"["0s","100ms","200ms","400ms","800ms","1s","1s","1s","1s","1s"]"#),
];

/// splitmix64: a reproducible sequence from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the load tasks saw, judged at the end.
struct Observed {
    started: Instant,
    acked: Mutex<HashSet<(u64, u64)>>,
    failures: Mutex<Vec<String>>,
    /// Ready and not about to be killed: only then is an error the server's fault.
    up: AtomicBool,
    max_health_us: AtomicU64,
    unavailable: AtomicUsize,
}

impl Observed {
    fn fail(&self, what: String) {
        let line = format!("{:>7.1}s {what}", self.started.elapsed().as_secs_f64());
        eprintln!("soak failure: {line}");
        self.failures.lock().unwrap().push(line);
    }

    /// A non-2xx answer: 503 is the server shedding load (counted); anything
    /// else from a server that is up is a failure.
    fn judge(&self, who: &str, status: StatusCode, body: &[u8]) {
        if status == StatusCode::SERVICE_UNAVAILABLE {
            self.unavailable.fetch_add(1, Ordering::Relaxed);
        } else if self.up.load(Ordering::SeqCst) {
            self.fail(format!("{who} answered {status}: {}", String::from_utf8_lossy(body)));
        }
    }
}

/// Acceptances per event (client, i) at one destination.
type Tally = Arc<Mutex<HashMap<(u64, u64), usize>>>;

struct Destination {
    name: &'static str,
    receiver: Receiver,
    tally: Tally,
    concurrency: Option<u32>,
}

/// A receiver that answers `ok` after `delay` and counts what it accepted;
/// requests `refuse` picks get a 503 instead.
async fn destination(
    name: &'static str,
    delay: Duration,
    concurrency: Option<u32>,
    ok: u16,
    refuse: impl Fn(&Call) -> bool + Send + Sync + 'static,
) -> Destination {
    let tally = Tally::default();
    let t = tally.clone();
    let receiver = Receiver::start_delayed(delay, move |r| {
        if refuse(r) {
            return reply(503, &[], "try again");
        }
        if let Ok(body) = serde_json::from_slice::<Value>(&r.body)
            && let (Some(c), Some(i)) = (body["data"]["c"].as_u64(), body["data"]["i"].as_u64())
        {
            *t.lock().unwrap().entry((c, i)).or_default() += 1;
        }
        reply(ok, &[], "")
    })
    .await;
    Destination { name, receiver, tally, concurrency }
}

async fn destinations() -> Vec<Destination> {
    // The flaky one refuses the first request of each delivery (its `webhook-id`).
    let tried = Mutex::new(HashSet::<String>::new());
    let first = move |r: &Call| tried.lock().unwrap().insert(r.header("webhook-id").unwrap_or_default().into());
    vec![
        destination("fast", Duration::ZERO, None, 204, |_| false).await,
        destination("slow", SLOW, Some(SLOW_CONCURRENCY), 204, |_| false).await,
        destination("flaky", Duration::ZERO, None, 200, first).await,
    ]
}

/// One workspace whose rules send every `EVENT` to all three destinations;
/// returns its id and publishable key.
async fn setup(server: &ServerProcess, destinations: &[Destination]) -> (String, String) {
    let ws = server.admin("/api/v1/workspaces", Some(json!({"name": "soak"}))).await;
    let id = ws["id"].as_str().unwrap().to_string();
    for d in destinations {
        let conn = json!({"connector": "webhook", "name": d.name, "settings": {"url": d.receiver.url("/in")},
                          "secrets": {"signing_secret": WEBHOOK_SECRET}, "concurrency": d.concurrency});
        let conn = server.admin(&format!("/api/v1/workspaces/{id}/connections"), Some(conn)).await;
        let rule = json!({"event": EVENT, "connection": conn["id"], "action": "send_webhook"});
        server.admin(&format!("/api/v1/workspaces/{id}/rules"), Some(rule)).await;
    }
    (id, ws["publishable_key"].as_str().unwrap().to_string())
}

/// Whether an ingest answer acknowledges all `n` events (each has an id).
fn acknowledged(bulk: bool, status: StatusCode, body: &Value, n: u64) -> bool {
    let records =
        if bulk { body["records"].as_array().cloned().unwrap_or_default() } else { vec![body["event"].clone()] };
    matches!(status.as_u16(), 200 | 201 | 207)
        && records.len() as u64 == n
        && records.iter().all(|r| r["id"].is_string())
}

/// Emit at `rate` events/s until `stop`: 3 of 4 sends single, 1 of 4 a bulk
/// of 10. A send is repeated, with the same idempotency keys, until it is
/// acknowledged, so a kill that ate the answer creates no second event.
async fn client(c: u64, url: String, key: String, rate: f64, seed: u64, obs: Arc<Observed>, stop: CancellationToken) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut rng = Rng(seed ^ (c + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut next = 0;
    let mut due = Instant::now();
    while !stop.is_cancelled() {
        let bulk = rng.next().is_multiple_of(4);
        let n = if bulk { BULK } else { 1 };
        let event = |i: u64| json!({"event": EVENT, "id": format!("soak-{c}-{i}"), "payload": {"c": c, "i": i}});
        loop {
            let request = if bulk {
                let items: Vec<Value> = (next..next + n).map(event).collect();
                http.post(format!("{url}/api/v1/events/bulk")).json(&items)
            } else {
                let body = json!({"event": EVENT, "payload": {"c": c, "i": next}});
                http.post(format!("{url}/api/v1/events"))
                    .header("Idempotency-Key", format!("soak-{c}-{next}"))
                    .json(&body)
            };
            // A connection error means the server is down or was killed mid-request.
            if let Ok(answer) = request.header("X-Meshes-Publishable-Key", &key).send().await {
                let status = answer.status();
                let bytes = answer.bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if acknowledged(bulk, status, &body, n) {
                    break;
                }
                if !status.is_success() {
                    obs.judge(&format!("client {c}: POST"), status, &bytes);
                }
                if status.is_client_error() {
                    return; // the harness is wrong; already recorded as a failure
                }
            }
            sleep(Duration::from_millis(rng.between(50, 200))).await;
        }
        obs.acked.lock().unwrap().extend((next..next + n).map(|i| (c, i)));
        next += n;
        // Paced, not bursting to catch up after an outage: the backlog stays bounded.
        due = due.max(Instant::now()) + Duration::from_secs_f64(n as f64 / rate);
        tokio::select! {
            _ = sleep_until(due) => {}
            _ = stop.cancelled() => {}
        }
    }
}

/// GET as the admin; `None` when there is no usable answer.
async fn read(http: &reqwest::Client, obs: &Observed, url: &str, path: &str) -> Option<Value> {
    let answer = http.get(format!("{url}{path}")).bearer_auth(ADMIN).send().await.ok()?;
    let status = answer.status();
    let bytes = answer.bytes().await.ok()?;
    if !status.is_success() {
        obs.judge(&format!("reader: GET {path}"), status, &bytes);
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// List events, deliveries (cycling through statuses) and the attempts of
/// the last delivery listed, until `stop`.
async fn reader(r: usize, url: String, ws: String, obs: Arc<Observed>, stop: CancellationToken) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let statuses = ["pending", "processing", "retrying", "completed", "failed"];
    let base = format!("/api/v1/workspaces/{ws}");
    for k in r.. {
        if stop.is_cancelled() {
            return;
        }
        read(&http, &obs, &url, &format!("{base}/events?limit=50")).await;
        let path = format!("{base}/deliveries?status={}&limit=50", statuses[k % statuses.len()]);
        if let Some(list) = read(&http, &obs, &url, &path).await
            && let Some(id) = list["records"].as_array().and_then(|r| r.last()).and_then(|d| d["id"].as_str())
        {
            read(&http, &obs, &url, &format!("{base}/deliveries/{id}/attempts")).await;
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// Every 500 ms, `/healthz` must answer 2xx within 1 s while the process
/// lives, except in its first 2 s; and the process must not die unkilled.
async fn watchdog(server: Arc<ServerProcess>, obs: Arc<Observed>, stop: CancellationToken) {
    let http = reqwest::Client::builder().timeout(HEALTH_LIMIT).build().unwrap();
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (url, mut reported) = (format!("{}/healthz", server.url()), 0);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let (spawned_at, life) = server.spawned();
        if spawned_at.elapsed() < STARTUP_GRACE {
            continue;
        }
        let sent = std::time::Instant::now();
        let answer = http.get(&url).send().await;
        let took = sent.elapsed();
        // `up` is cleared before a kill and `life` moves on at the restart,
        // so a dead child with both unchanged exited by itself.
        if !server.is_alive() {
            if obs.up.load(Ordering::SeqCst) && server.spawned().1 == life && reported != life {
                obs.fail("watchdog: the server exited without being killed".into());
                reported = life;
            }
            continue;
        }
        if server.spawned().1 != life {
            continue; // killed and restarted while the probe was out
        }
        match answer {
            Ok(a) if a.status().is_success() && took <= HEALTH_LIMIT => {}
            Err(e) if e.is_connect() && !obs.up.load(Ordering::SeqCst) => {} // not listening yet
            Ok(a) => obs.fail(format!("watchdog: /healthz answered {} after {took:?}", a.status())),
            Err(e) => obs.fail(format!("watchdog: /healthz gave no answer within {took:?}: {e}")),
        }
        obs.max_health_us.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Deliveries listed, and the outcomes of the attempts of every delivery
/// tried more than once (an interrupted attempt is always followed by another).
async fn scan_attempts(server: &Arc<ServerProcess>, ws: &str) -> (usize, BTreeMap<String, usize>) {
    let (mut deliveries, mut retried, mut cursor) = (0, Vec::new(), None::<String>);
    loop {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = server.admin(&format!("/api/v1/workspaces/{ws}/deliveries?limit=200{after}"), None).await;
        for d in page["records"].as_array().expect("records") {
            deliveries += 1;
            if d["attempt_count"].as_u64().unwrap_or(0) > 1 {
                retried.push(d["id"].as_str().unwrap().to_string());
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut outcomes = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut merge = |found: Vec<String>| found.into_iter().for_each(|o| *outcomes.entry(o).or_default() += 1);
    for id in retried {
        if tasks.len() >= 8 {
            merge(tasks.join_next().await.unwrap().unwrap());
        }
        let (server, path) = (server.clone(), format!("/api/v1/workspaces/{ws}/deliveries/{id}/attempts"));
        tasks.spawn(async move {
            let list = server.admin(&path, None).await;
            let records = list["records"].as_array().cloned().unwrap_or_default();
            records.iter().map(|a| a["outcome"].as_str().unwrap_or("?").to_string()).collect::<Vec<_>>()
        });
    }
    while let Some(found) = tasks.join_next().await {
        merge(found.unwrap());
    }
    (deliveries, outcomes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_kill_nine_keeps_every_promise() {
    let _alone = switchboard_tests::measuring_alone().await;
    let seconds: u64 = env_or("SOAK_SECONDS", 180);
    let rate: f64 = env_or("SOAK_RATE", DEFAULT_RATE);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let seed: u64 = env_or("SOAK_SEED", u64::from(nanos));
    let min_kills = if seconds >= 180 { 5 } else { 0 };
    eprintln!("soak: {seconds} s at {rate} events/s, seed {seed} (SOAK_SEED={seed} repeats the kill schedule)");
    let mut rng = Rng(seed);

    let destinations = destinations().await;
    let server = Arc::new(ServerProcess::start(&SERVER_ENV));
    server.wait_ready().await;
    let url = server.url();
    let (ws, key) = setup(&server, &destinations).await;

    let obs = Arc::new(Observed {
        started: Instant::now(),
        acked: Mutex::default(),
        failures: Mutex::default(),
        up: AtomicBool::new(true),
        max_health_us: AtomicU64::new(0),
        unavailable: AtomicUsize::new(0),
    });
    let (load, watch) = (CancellationToken::new(), CancellationToken::new());
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, key, obs, stop) = (url.clone(), key.clone(), obs.clone(), load.clone());
        tasks.push(tokio::spawn(client(c, url, key, rate / CLIENTS as f64, seed, obs, stop)));
    }
    for r in 0..READERS {
        tasks.push(tokio::spawn(reader(r, url.clone(), ws.clone(), obs.clone(), load.clone())));
    }
    let dog = tokio::spawn(watchdog(server.clone(), obs.clone(), watch.clone()));

    // Kill every 20–40 s until the time is up (and the CI minimum is met).
    let end = obs.started + Duration::from_secs(seconds);
    let mut kills = 0;
    loop {
        let at = Instant::now() + Duration::from_secs(rng.between(20, 40));
        if at >= end && kills >= min_kills {
            sleep_until(end).await;
            break;
        }
        sleep_until(at).await;
        obs.up.store(false, Ordering::SeqCst);
        server.kill9();
        kills += 1;
        let down = Instant::now();
        server.spawn();
        server.wait_ready().await;
        obs.up.store(true, Ordering::SeqCst);
        let (at, acked) = (down - obs.started, obs.acked.lock().unwrap().len());
        eprintln!("soak: kill -9 #{kills} at {at:.0?}, {acked} acknowledged; ready again in {:.1?}", down.elapsed());
    }
    let load_secs = obs.started.elapsed().as_secs_f64();
    load.cancel();
    for t in tasks {
        t.await.expect("a load task panicked");
    }
    let acked = obs.acked.lock().unwrap().clone();
    eprintln!("soak: load stopped at {load_secs:.0} s; {} events acknowledged; draining", acked.len());

    // The server stays up from here: everything acknowledged must arrive.
    let missing = |d: &Destination| {
        let got = d.tally.lock().unwrap();
        acked.iter().filter(|k| !got.contains_key(k)).count()
    };
    let deadline = Instant::now() + DRAIN;
    while destinations.iter().any(|d| missing(d) > 0) && Instant::now() < deadline {
        sleep(Duration::from_millis(250)).await;
    }
    // Then nothing may be left in a non-final state, nor have given up.
    let (settle_by, mut stuck) = (Instant::now() + Duration::from_secs(30), Vec::new());
    for status in ["pending", "processing", "retrying", "waiting", "failed"] {
        let path = format!("/api/v1/workspaces/{ws}/deliveries?status={status}&limit=1");
        let mut v = server.admin(&path, None).await;
        while v["count"] != 0 && status != "failed" && Instant::now() < settle_by {
            sleep(Duration::from_millis(250)).await;
            v = server.admin(&path, None).await;
        }
        if v["count"] != 0 {
            stuck.push(format!("`{status}`: {}", v["records"][0]));
        }
    }
    let drain_secs = obs.started.elapsed().as_secs_f64() - load_secs;
    let (deliveries, outcomes) = scan_attempts(&server, &ws).await;
    watch.cancel();
    dog.await.expect("the watchdog panicked");

    let interrupted = outcomes.get("interrupted").copied().unwrap_or(0);
    let duplicates: Vec<String> = destinations
        .iter()
        .map(|d| format!("{}={}", d.name, d.tally.lock().unwrap().values().map(|n| n - 1).sum::<usize>()))
        .collect();
    eprintln!(
        "soak summary: {load_secs:.0} s load, {drain_secs:.0} s drain, {kills} kills, {} events acknowledged, \
         {deliveries} deliveries; duplicates {}; {interrupted} interrupted attempts; attempts of retried \
         deliveries {outcomes:?}; max /healthz {:.0} ms; {} answers 503; seed {seed}",
        acked.len(),
        duplicates.join(" "),
        obs.max_health_us.load(Ordering::Relaxed) as f64 / 1000.0,
        obs.unavailable.load(Ordering::Relaxed),
    );

    let failures = obs.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failures during the run:\n{}", failures.len(), failures.join("\n"));
    for d in &destinations {
        assert_eq!(missing(d), 0, "acknowledged events never reached `{}` within {DRAIN:?}", d.name);
        let got = d.tally.lock().unwrap();
        assert!(got.keys().all(|k| acked.contains(k)), "`{}` got an event no client had acknowledged", d.name);
    }
    assert!(stuck.is_empty(), "deliveries not completed after the drain: {}", stuck.join("; "));
    assert!(kills >= min_kills, "{kills} kills; a run of {seconds} s needs at least {min_kills}");
    assert!(
        kills == 0 || interrupted > 0,
        "after {kills} kill -9s no attempt reads `interrupted`: an attempt cut short by the process's death \
         must be recorded with outcome `interrupted` (outcomes seen: {outcomes:?})"
    );
}
