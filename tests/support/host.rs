//! `TestHost`: the real service started in-process on port 0 with a temp
//! data dir, the guest components registered, a compressed retry schedule,
//! and a small JSON client for its API: the steps every test takes (create a
//! workspace, a connection, a rule; emit; read deliveries and attempts), each
//! asserting the status it expects so the tests themselves read as specs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::app::App;
use switchboard::config::Config;
use switchboard::secrets::MasterKey;
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "test-admin-token";

pub struct TestHost {
    pub url: String,
    pub config: Config,
    /// The running service's state, for tests that reach below the API
    /// (fault hooks in the store). Let go on stop so the store can close.
    pub app: Option<Arc<App>>,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: Option<tempfile::TempDir>,
}

/// A workspace as created through the API, with its keys.
#[derive(Debug, Clone)]
pub struct Ws {
    pub id: String,
    pub publishable: String,
    pub secret: String,
}

/// Config for tests: loopback receivers allowed, retries in milliseconds.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let guests = super::build::component_path("switchboard-connector-webhook").parent().unwrap().to_path_buf();
    let mut c = Config {
        data_dir: data_dir.to_path_buf(),
        admin_token: Some(ADMIN.into()),
        master_key: Some(MasterKey::generate()),
        connectors_dir: Some(guests),
        ..Config::default()
    };
    c.egress.allow_private_networks = true;
    c.egress.allow_hosts = vec!["127.0.0.1".into(), "localhost".into()];
    c.retry.schedule = ["0s", "100ms", "100ms", "100ms", "100ms"]
        .iter()
        .map(|d| switchboard::config::duration::parse(d).unwrap())
        .collect();
    c.retry.jitter = 0.0;
    c.delivery.poll_interval = Duration::from_millis(20);
    c.sandbox.max_concurrent_instances = 64;
    c
}

impl TestHost {
    pub async fn start() -> TestHost {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestHost {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::start_config(config, Some(dir)).await
    }

    /// A host whose `connectors_dir` holds only the components of
    /// `packages` (the bundled connectors come with the binary anyway), so
    /// tests can upload the other versions themselves.
    pub async fn start_with_connectors(packages: &[&str], adjust: impl FnOnce(&mut Config)) -> TestHost {
        let dir = tempfile::tempdir().unwrap();
        let connectors = dir.path().join("connectors");
        std::fs::create_dir(&connectors).unwrap();
        for p in packages {
            std::fs::write(connectors.join(format!("{p}.wasm")), super::build::component(p)).unwrap();
        }
        let mut config = test_config(&dir.path().join("data"));
        config.connectors_dir = Some(connectors);
        adjust(&mut config);
        Self::start_config(config, Some(dir)).await
    }

    /// Upload `bytes` as connector `name` (`query`: `""` or `"?rollout=0"`);
    /// the status and the answer.
    pub async fn upload(&self, name: &str, query: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let res = self
            .client
            .put(format!("{}/api/v1/connectors/{name}{query}", self.url))
            .bearer_auth(ADMIN)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn start_config(config: Config, dir: Option<tempfile::TempDir>) -> TestHost {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let app = switchboard::server::build(config.clone()).await.expect("build the service");
        let task = tokio::spawn(switchboard::server::serve(app.clone(), listener, shutdown.clone()));
        let host =
            TestHost { url, config, app: Some(app), client: reqwest::Client::new(), shutdown, task: Some(task), dir };
        // Not `raw`: until the server is up a connection error is expected.
        host.wait_until("ready", || async {
            host.client.get(format!("{}/readyz", host.url)).send().await.is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        host
    }

    /// Stop gracefully and start again on the same data dir.
    pub async fn restart(mut self) -> TestHost {
        let config = self.config.clone();
        let dir = self.dir.take();
        self.stop().await;
        Self::start_config(config, dir).await
    }

    pub async fn stop(&mut self) {
        self.app = None;
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let bytes = res.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// An admin request that must answer `expect`.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>, expect: StatusCode) -> Value {
        let (status, value) = self.raw(method.clone(), path, Some(ADMIN), body).await;
        assert_eq!(status, expect, "{method} {path}: {value}");
        value
    }

    /// An admin GET that must answer 200.
    pub async fn get(&self, path: &str) -> Value {
        self.admin(Method::GET, path, None, StatusCode::OK).await
    }

    pub async fn workspace(&self, name: &str) -> Ws {
        let v = self.admin(Method::POST, "/api/v1/workspaces", Some(json!({"name": name})), StatusCode::CREATED).await;
        Ws {
            id: v["id"].as_str().unwrap().into(),
            publishable: v["publishable_key"].as_str().unwrap().into(),
            secret: v["secret_key"].as_str().unwrap().into(),
        }
    }

    /// A connection created from `body`; its id.
    pub async fn connection(&self, ws: &Ws, body: Value) -> String {
        self.create(ws, "connections", body).await
    }

    /// A connection from `connection` and a rule sending to it (`rule`
    /// names no connection, this fills it in); the connection's id.
    pub async fn route(&self, ws: &Ws, connection: Value, mut rule: Value) -> String {
        let id = self.connection(ws, connection).await;
        rule["connection"] = json!(id);
        self.rule(ws, rule).await;
        id
    }

    /// A webhook connection to `url` with the test signing secret.
    pub async fn webhook_connection(&self, ws: &Ws, url: &str) -> String {
        self.connection(ws, webhook(url)).await
    }

    /// A webhook connection to `url` and `rule` sending to it; the
    /// connection's id.
    pub async fn webhook_route(&self, ws: &Ws, url: &str, rule: Value) -> String {
        self.route(ws, webhook(url), rule).await
    }

    /// A rule created from `body`; its id.
    pub async fn rule(&self, ws: &Ws, body: Value) -> String {
        self.create(ws, "rules", body).await
    }

    /// Create one of a workspace's `resource`s (`connections`, `rules`) from
    /// `body`; its id.
    async fn create(&self, ws: &Ws, resource: &str, body: Value) -> String {
        let path = format!("/api/v1/workspaces/{}/{resource}", ws.id);
        self.admin(Method::POST, &path, Some(body), StatusCode::CREATED).await["id"].as_str().unwrap().into()
    }

    /// A POST to the ingest API at `path` (`/api/v1/events`, or `…/bulk`)
    /// with the workspace's publishable key, for tests that set more headers
    /// or read the answer's.
    pub fn ingest(&self, ws: &Ws, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url)).header("X-Meshes-Publishable-Key", &ws.publishable)
    }

    /// Emit one event with the workspace's publishable key.
    pub async fn emit(&self, ws: &Ws, body: Value) -> (StatusCode, Value) {
        let res = self.ingest(ws, "/api/v1/events").json(&body).send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Emit one event that must be accepted (201); its id.
    pub async fn emit_ok(&self, ws: &Ws, body: Value) -> String {
        let (status, answer) = self.emit(ws, body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["event"]["id"].as_str().unwrap().into()
    }

    /// Emit one event named `event` with `payload`, which must be accepted; its id.
    pub async fn emit_event(&self, ws: &Ws, event: &str, payload: Value) -> String {
        self.emit_ok(ws, json!({"event": event, "payload": payload})).await
    }

    /// Emit `events` in one bulk request with the workspace's secret key (one
    /// durable write, so they are due at once) that must accept them all
    /// (201); their ids.
    pub async fn emit_bulk(&self, ws: &Ws, events: &[Value]) -> Vec<String> {
        let (status, answer) =
            self.raw(Method::POST, "/api/v1/events/bulk", Some(&ws.secret), Some(json!(events))).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["records"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().into()).collect()
    }

    /// The deliveries of one event.
    pub async fn deliveries(&self, ws: &Ws, event: &str) -> Vec<Value> {
        let path = format!("/api/v1/workspaces/{}/events/{event}/deliveries", ws.id);
        self.get(&path).await["records"].as_array().unwrap().clone()
    }

    /// The one delivery an event has (asserting it has exactly one).
    pub async fn only_delivery(&self, ws: &Ws, event: &str) -> Value {
        let path = format!("/api/v1/workspaces/{}/events/{event}/deliveries", ws.id);
        let v = self.get(&path).await;
        assert_eq!(v["count"], 1, "{v}");
        v["records"][0].clone()
    }

    /// The attempts of one delivery, oldest first.
    pub async fn attempts(&self, ws: &Ws, delivery: &str) -> Vec<Value> {
        let path = format!("/api/v1/workspaces/{}/deliveries/{delivery}/attempts", ws.id);
        self.get(&path).await["records"].as_array().unwrap().clone()
    }

    /// The attempts of the one delivery an event has.
    pub async fn only_delivery_attempts(&self, ws: &Ws, event: &str) -> Vec<Value> {
        let delivery = self.only_delivery(ws, event).await;
        self.attempts(ws, delivery["id"].as_str().unwrap()).await
    }

    /// Poll (every 10 ms, at most 20 s) until `check` holds.
    pub async fn wait_until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Wait until the connection is paused and return it as the API shows it.
    pub async fn paused_connection(&self, ws: &Ws, conn: &str) -> Value {
        let path = format!("/api/v1/workspaces/{}/connections/{conn}", ws.id);
        self.wait_until("connection paused", || async {
            self.raw(Method::GET, &path, Some(ADMIN), None).await.1["active"] == false
        })
        .await;
        self.get(&path).await
    }

    /// Wait until `n` of the workspace's deliveries wait (for a paused connection).
    pub async fn wait_waiting(&self, ws: &Ws, n: usize) {
        let path = format!("/api/v1/workspaces/{}/deliveries?status=waiting", ws.id);
        self.wait_until(&format!("{n} deliveries waiting"), || async {
            self.raw(Method::GET, &path, Some(ADMIN), None).await.1["count"] == n
        })
        .await;
    }

    /// Wait until the replay job has completed and return it as the API shows it.
    pub async fn replay_done(&self, ws: &Ws, job: &str) -> Value {
        let path = format!("/api/v1/workspaces/{}/replays/{job}", ws.id);
        self.wait_until("replay completed", || async {
            self.raw(Method::GET, &path, Some(ADMIN), None).await.1["state"] == "completed"
        })
        .await;
        self.get(&path).await
    }

    /// Wait until the event's status is final and return the event view.
    pub async fn settled_event(&self, ws: &Ws, event_id: &str) -> Value {
        let path = format!("/api/v1/workspaces/{}/events/{event_id}", ws.id);
        self.wait_until("event settled", || async {
            let (_, v) = self.raw(Method::GET, &path, Some(ADMIN), None).await;
            v["status"] != "processing"
        })
        .await;
        self.get(&path).await
    }
}

/// A webhook connection's body: to `url`, with the test signing secret.
pub fn webhook(url: &str) -> Value {
    json!({"connector": "webhook", "name": "hook", "settings": {"url": url},
           "secrets": {"signing_secret": super::WEBHOOK_SECRET}})
}

/// The seed `page.completed` event of the README (tests/vectors).
pub fn seed_event() -> Value {
    let path = super::build::workspace_root().join("tests/vectors/page_completed.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
