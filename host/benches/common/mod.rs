//! Shared benchmark helpers: start the real service in-process, a closed-
//! loop and an open-loop HTTP load generator, percentiles, resident memory.

#![allow(dead_code)] // each bench uses a subset

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::secrets::MasterKey;
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "bench-admin";

pub struct Service {
    pub url: String,
    pub shutdown: CancellationToken,
    pub _dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

pub fn guests_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/guest")
}

pub async fn start(adjust: impl FnOnce(&mut Config)) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(ADMIN.into()),
        master_key: Some(MasterKey::generate()),
        connectors_dir: Some(guests_dir()),
        ..Config::default()
    };
    config.egress.allow_private_networks = true;
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(switchboard::run(config, listener, shutdown.clone()));
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    for _ in 0..500 {
        if client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Service { url, shutdown, _dir: dir, client }
}

impl Service {
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let res = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// A workspace; returns (id, publishable key).
    pub async fn workspace(&self) -> (String, String) {
        let v = self.admin(reqwest::Method::POST, "/api/v1/workspaces", json!({"name": "bench"})).await;
        (v["id"].as_str().unwrap().into(), v["publishable_key"].as_str().unwrap().into())
    }
}

/// A receiver on a fresh loopback port that answers every `POST path` with
/// 204 after handing the body to `record`; returns its URL, `path` included.
/// With `nodelay`, each accepted connection gets `TCP_NODELAY`.
pub async fn receiver(path: &str, nodelay: bool, record: impl Fn(&[u8]) + Clone + Send + Sync + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        path,
        axum::routing::post(move |body: Bytes| {
            let record = record.clone();
            async move {
                record(&body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = axum::serve::ListenerExt::tap_io(listener, move |tcp| {
        if nodelay {
            let _ = tcp.set_nodelay(true);
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Percentiles { p50: at(0.5), p99: at(0.99), max: *v.last().unwrap() }
}

pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Percentiles,
}

/// One JSON POST of `body` with `headers`: how long the answer took when it
/// was a success (its body read), `None` for an error or any other status.
async fn post(client: &reqwest::Client, url: &str, headers: &[(String, String)], body: &[u8]) -> Option<Duration> {
    let mut req = client.post(url).header("content-type", "application/json").body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let t = Instant::now();
    match req.send().await {
        Ok(r) if r.status().is_success() => {
            let _ = r.bytes().await;
            Some(t.elapsed())
        }
        _ => None,
    }
}

/// `clients` keep-alive connections each sending `body` back to back for `duration`.
pub async fn closed_loop(
    url: String,
    headers: Vec<(String, String)>,
    body: Arc<Vec<u8>>,
    clients: usize,
    duration: Duration,
) -> LoadResult {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, headers, body, stop) = (url.clone(), headers.clone(), body.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match post(&client, &url, &headers, &body).await {
                    Some(d) => lat.push(d),
                    None => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed();
    LoadResult { requests: all.len() as u64, errors, elapsed, latency: percentiles(all) }
}

/// Offer `rate` requests per second for `duration` regardless of answers.
pub async fn open_loop(
    url: String,
    headers: Vec<(String, String)>,
    body: Arc<Vec<u8>>,
    rate: u32,
    duration: Duration,
) -> LoadResult {
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build().unwrap();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    while started.elapsed() < duration {
        ticker.tick().await;
        let (client, url, headers, body) = (client.clone(), url.clone(), headers.clone(), body.clone());
        tasks.push(tokio::spawn(async move { post(&client, &url, &headers, &body).await }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        match t.await.unwrap() {
            Some(d) => lat.push(d),
            None => errors += 1,
        }
    }
    LoadResult { requests: lat.len() as u64, errors, elapsed: started.elapsed(), latency: percentiles(lat) }
}

/// Resident set size of this process, from /proc.
pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
