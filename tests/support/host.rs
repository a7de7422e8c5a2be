//! `TestHost`: the real service started in-process on port 0 with a temp
//! data dir, the guest components registered, a compressed retry schedule,
//! and a small JSON client for its API.

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

    pub async fn workspace(&self, name: &str) -> Ws {
        let v = self.admin(Method::POST, "/api/v1/workspaces", Some(json!({"name": name})), StatusCode::CREATED).await;
        Ws {
            id: v["id"].as_str().unwrap().into(),
            publishable: v["publishable_key"].as_str().unwrap().into(),
            secret: v["secret_key"].as_str().unwrap().into(),
        }
    }

    /// A webhook connection to `url` with the test signing secret.
    pub async fn webhook_connection(&self, ws: &Ws, url: &str) -> String {
        let body = json!({"connector": "webhook", "name": "hook", "settings": {"url": url},
                          "secrets": {"signing_secret": super::WEBHOOK_SECRET}});
        let v = self
            .admin(Method::POST, &format!("/api/v1/workspaces/{}/connections", ws.id), Some(body), StatusCode::CREATED)
            .await;
        v["id"].as_str().unwrap().into()
    }

    pub async fn rule(&self, ws: &Ws, body: Value) -> String {
        let v = self
            .admin(Method::POST, &format!("/api/v1/workspaces/{}/rules", ws.id), Some(body), StatusCode::CREATED)
            .await;
        v["id"].as_str().unwrap().into()
    }

    /// Emit one event with the workspace's publishable key.
    pub async fn emit(&self, ws: &Ws, body: Value) -> (StatusCode, Value) {
        let res = self
            .client
            .post(format!("{}/api/v1/events", self.url))
            .header("X-Meshes-Publishable-Key", &ws.publishable)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
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

    /// Wait until the event's status is final and return the event view.
    pub async fn settled_event(&self, ws: &Ws, event_id: &str) -> Value {
        let path = format!("/api/v1/workspaces/{}/events/{event_id}", ws.id);
        self.wait_until("event settled", || async {
            let (_, v) = self.raw(Method::GET, &path, Some(ADMIN), None).await;
            v["status"] != "processing"
        })
        .await;
        self.admin(Method::GET, &path, None, StatusCode::OK).await
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
