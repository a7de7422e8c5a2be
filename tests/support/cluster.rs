//! A throw-away PostgreSQL and `switchboard serve` nodes sharing it: a
//! [`Cluster`] is N [`ServerProcess`]es on one fresh database of the test
//! process's scratch PostgreSQL, all with one master key and the admin
//! token, so any node opens what another sealed and takes the same admin
//! calls. Each node can be `kill -9`'d and started again. Nodes are numbered
//! from 1, as the tests' prose names them ("node 1", "node 3").

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::store::postgres::scratch::ScratchCluster;

use crate::build::component;
use crate::host::Ws;
use crate::process::{ADMIN, ServerProcess};

/// The delivery statuses that are not final: a settled workspace has none.
const UNSETTLED: [&str; 4] = ["pending", "processing", "retrying", "waiting"];

pub struct Cluster {
    nodes: Vec<ServerProcess>,
    http: reqwest::Client,
    /// The nodes' connectors dir: only the guests a test asked for.
    _bundled: tempfile::TempDir,
}

impl Cluster {
    /// Start `n` nodes on a fresh database, with the guest packages
    /// `bundled` (e.g. `switchboard-connector-webhook`) as their bundled
    /// connectors and `extra_env` on every node, and wait until all are ready.
    pub async fn start(n: usize, bundled: &[&str], extra_env: &[(&str, &str)]) -> Cluster {
        let scratch = tokio::task::spawn_blocking(ScratchCluster::shared)
            .await
            .expect("starting the scratch PostgreSQL")
            .unwrap_or_else(|e| panic!("a scratch PostgreSQL for the cluster tests: {e}"));
        let database = scratch.database().await.unwrap_or_else(|e| panic!("a fresh database: {e}"));
        let dir = tempfile::tempdir().expect("temp dir");
        for package in bundled {
            let path = dir.path().join(format!("{}.wasm", package.replace('-', "_")));
            std::fs::write(&path, component(package)).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        let master_key = switchboard::secrets::MasterKey::generate();
        let connectors_dir = dir.path().display().to_string();
        let mut env = vec![
            ("SWITCHBOARD_STORE__BACKEND", "postgres"),
            ("SWITCHBOARD_STORE__URL", database.as_str()),
            ("SWITCHBOARD_MASTER_KEY", master_key.as_str()),
            ("SWITCHBOARD_CONNECTORS_DIR", connectors_dir.as_str()),
        ];
        env.extend_from_slice(extra_env);
        let nodes: Vec<ServerProcess> = (0..n).map(|_| ServerProcess::start(&env)).collect();
        for node in &nodes {
            node.wait_ready().await;
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        Cluster { nodes, http, _bundled: dir }
    }

    /// Node `n` (from 1).
    pub fn node(&self, n: usize) -> &ServerProcess {
        assert!((1..=self.nodes.len()).contains(&n), "there is no node {n} in a cluster of {}", self.nodes.len());
        &self.nodes[n - 1]
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `kill -9` node `n`, start it again on the same data dir, and wait
    /// until it is ready.
    pub async fn restart(&self, n: usize) {
        let node = self.node(n);
        node.kill9();
        node.spawn();
        node.wait_ready().await;
    }

    /// An admin request to node `n`: JSON `body` if given; the status and
    /// the JSON answer (`Null` when there is none).
    pub async fn call(&self, n: usize, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.node(n).url())).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request, &format!("node {n}: {method} {path}")).await
    }

    /// An admin request to node `n` that must answer `expect`.
    pub async fn admin(&self, n: usize, method: Method, path: &str, body: Option<Value>, expect: StatusCode) -> Value {
        let (status, value) = self.call(n, method.clone(), path, body).await;
        assert_eq!(status, expect, "node {n}: {method} {path}: {value}");
        value
    }

    /// An admin GET to node `n` that must answer 200.
    pub async fn get(&self, n: usize, path: &str) -> Value {
        self.admin(n, Method::GET, path, None, StatusCode::OK).await
    }

    /// Upload a connector's component bytes through node `n`
    /// (`PUT /api/v1/connectors/{name}`).
    pub async fn upload(&self, n: usize, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let request = self
            .http
            .put(format!("{}/api/v1/connectors/{name}", self.node(n).url()))
            .bearer_auth(ADMIN)
            .header("content-type", "application/wasm")
            .body(bytes);
        answer(request, &format!("node {n}: PUT /api/v1/connectors/{name}")).await
    }

    /// A workspace, created through node 1.
    pub async fn workspace(&self, name: &str) -> Ws {
        let v =
            self.admin(1, Method::POST, "/api/v1/workspaces", Some(json!({"name": name})), StatusCode::CREATED).await;
        Ws {
            id: v["id"].as_str().unwrap().into(),
            publishable: v["publishable_key"].as_str().unwrap().into(),
            secret: v["secret_key"].as_str().unwrap().into(),
        }
    }

    /// A connection from `connection` and a rule sending to it (`rule`
    /// names no connection, this fills it in), created through node 1; the
    /// connection's id.
    pub async fn route(&self, ws: &Ws, connection: Value, mut rule: Value) -> String {
        let path = format!("/api/v1/workspaces/{}/connections", ws.id);
        let conn = self.admin(1, Method::POST, &path, Some(connection), StatusCode::CREATED).await;
        rule["connection"] = conn["id"].clone();
        let path = format!("/api/v1/workspaces/{}/rules", ws.id);
        self.admin(1, Method::POST, &path, Some(rule), StatusCode::CREATED).await;
        conn["id"].as_str().unwrap().into()
    }

    /// Emit one event through node `n` with the workspace's publishable key
    /// (and `idempotency_key`, if given). An `Err` is no answer at all: the
    /// node is down, or died during the request.
    pub async fn emit(
        &self,
        n: usize,
        ws: &Ws,
        event: &Value,
        idempotency_key: Option<&str>,
    ) -> reqwest::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .post(format!("{}/api/v1/events", self.node(n).url()))
            .header("X-Meshes-Publishable-Key", &ws.publishable)
            .json(event);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let answer = request.send().await?;
        let status = answer.status();
        let bytes = answer.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// Emit one event through node `n` that must be accepted (201); its id.
    pub async fn emit_ok(&self, n: usize, ws: &Ws, event: Value) -> String {
        let (status, answer) =
            self.emit(n, ws, &event, None).await.unwrap_or_else(|e| panic!("node {n}: POST /api/v1/events: {e}"));
        assert_eq!(status, StatusCode::CREATED, "node {n}: POST /api/v1/events: {answer}");
        answer["event"]["id"].as_str().unwrap().into()
    }

    /// Emit `events` in one bulk request through node `n` with the
    /// workspace's secret key, all of which must be accepted (201); their ids.
    pub async fn emit_bulk(&self, n: usize, ws: &Ws, events: &[Value]) -> Vec<String> {
        let request =
            self.http.post(format!("{}/api/v1/events/bulk", self.node(n).url())).bearer_auth(&ws.secret).json(&events);
        let (status, answer) = answer(request, &format!("node {n}: POST /api/v1/events/bulk")).await;
        assert_eq!(status, StatusCode::CREATED, "node {n}: POST /api/v1/events/bulk: {answer}");
        answer["records"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().into()).collect()
    }

    /// How many of the workspace's deliveries node `n` lists in each status
    /// that is not final; empty when every delivery is final.
    pub async fn unsettled(&self, n: usize, ws: &Ws) -> Vec<(&'static str, usize)> {
        let mut found = Vec::new();
        for status in UNSETTLED {
            let path = format!("/api/v1/workspaces/{}/deliveries?status={status}&limit=200", ws.id);
            let count = self.get(n, &path).await["count"].as_u64().unwrap_or(0) as usize;
            if count > 0 {
                found.push((status, count));
            }
        }
        found
    }

    /// Poll node `n` until every delivery of the workspace is final; panics
    /// naming what is left if that takes longer than `within`.
    pub async fn wait_settled(&self, n: usize, ws: &Ws, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = self.unsettled(n, ws).await;
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "deliveries not final after {within:?} (status, count up to 200): {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every delivery of the workspace, as node `n` lists them (all pages).
    pub async fn deliveries(&self, n: usize, ws: &Ws) -> Vec<Value> {
        let (mut all, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
            let page = self.get(n, &format!("/api/v1/workspaces/{}/deliveries?limit=200{after}", ws.id)).await;
            all.extend(page["records"].as_array().expect("records").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return all,
            }
        }
    }

    /// The deliveries of one event, as node `n` lists them.
    pub async fn event_deliveries(&self, n: usize, ws: &Ws, event: &str) -> Vec<Value> {
        let path = format!("/api/v1/workspaces/{}/events/{event}/deliveries", ws.id);
        self.get(n, &path).await["records"].as_array().expect("records").clone()
    }

    /// The attempts of one delivery, oldest first, as node `n` lists them.
    pub async fn attempts(&self, n: usize, ws: &Ws, delivery: &str) -> Vec<Value> {
        let path = format!("/api/v1/workspaces/{}/deliveries/{delivery}/attempts", ws.id);
        self.get(n, &path).await["records"].as_array().expect("records").clone()
    }
}

/// Send `request`; its status and JSON answer (`Null` when there is none).
async fn answer(request: reqwest::RequestBuilder, what: &str) -> (StatusCode, Value) {
    let answer = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = answer.status();
    let bytes = answer.bytes().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Call `check` every `every` until it gives `Some`, for at most `within`;
/// `None` if it never did. The last call starts before the deadline.
pub async fn poll<T, F, Fut>(within: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}
