//! `ServerProcess`: the real `switchboard serve` binary (debug build) as a
//! child process on a fixed port and data dir, so a test can `kill -9` it and
//! start it again on the same state. Its stdout and stderr are appended to a
//! log file in its temp dir; the log's tail is printed when a test that owns
//! it panics.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::build::{binary, component_path};

/// The admin token every `ServerProcess` is started with.
pub const ADMIN: &str = "process-admin";

/// Retries in milliseconds, so a delivery that failed once completes quickly.
const RETRY_SCHEDULE: &str = r#"["0s", "100ms", "200ms", "400ms", "800ms", "1s", "1s", "1s"]"#;

/// How much of the log `Drop` prints when the test is failing.
const LOG_TAIL_LINES: usize = 60;

pub struct ServerProcess {
    child: Mutex<Option<Child>>,
    /// When the current child was spawned, and how many spawns so far.
    spawned: Mutex<(Instant, u64)>,
    port: u16,
    master_key: String,
    extra_env: Vec<(String, String)>,
    log: PathBuf,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl ServerProcess {
    /// Spawn the server on a free port and a fresh data dir. `extra_env` is
    /// set after the defaults, so it can override them (e.g. the retry
    /// schedule), or unset them with an empty value. Call
    /// [`wait_ready`](Self::wait_ready) before using it.
    pub fn start(extra_env: &[(&str, &str)]) -> ServerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = ServerProcess {
            child: Mutex::new(None),
            spawned: Mutex::new((Instant::now(), 0)),
            port,
            master_key: switchboard::secrets::MasterKey::generate(),
            extra_env: extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            log: dir.path().join("switchboard.log"),
            dir,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        };
        server.spawn();
        server
    }

    /// Start the binary again on the same port and data dir (after `kill9`).
    pub fn spawn(&self) {
        let mut slot = self.child.lock().unwrap();
        assert!(slot.is_none(), "spawn while the previous child still runs; kill9 first");
        let guests = component_path("switchboard-connector-webhook").parent().unwrap().to_path_buf();
        let log = self.open_log();
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("SWITCHBOARD_DATA_DIR", self.data_dir())
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN)
            .env("SWITCHBOARD_MASTER_KEY", &self.master_key)
            .env("SWITCHBOARD_CONNECTORS_DIR", guests)
            .env("SWITCHBOARD_EGRESS__ALLOW_PRIVATE_NETWORKS", "true")
            .env("SWITCHBOARD_RETRY__SCHEDULE", RETRY_SCHEDULE)
            .env("SWITCHBOARD_DELIVERY__POLL_INTERVAL", "20ms")
            .env("SWITCHBOARD_LOG", "warn");
        for (k, v) in &self.extra_env {
            // An empty value unsets a default (no connectors dir at all).
            if v.is_empty() {
                command.env_remove(k);
            } else {
                command.env(k, v);
            }
        }
        let child = command
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start switchboard");
        *slot = Some(child);
        let mut spawned = self.spawned.lock().unwrap();
        *spawned = (Instant::now(), spawned.1 + 1);
    }

    /// SIGKILL the child (no chance to flush or release anything) and reap it.
    pub fn kill9(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
            child.wait().expect("reap the child");
            // Marks where one life of the server ends in the shared log.
            let _ = writeln_log(&self.open_log(), "---- kill -9 ----");
        }
    }

    /// Whether the child is running (spawned, not killed, not exited).
    pub fn is_alive(&self) -> bool {
        match self.child.lock().unwrap().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// When the current child was spawned and which spawn it is (1, 2, ...):
    /// a changed number means a kill and restart happened in between.
    pub fn spawned(&self) -> (Instant, u64) {
        *self.spawned.lock().unwrap()
    }

    /// Wait (at most 60 s) until `/readyz` answers 200. Panics early, with the
    /// log's tail, if the child exits instead.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(format!("{}/readyz", self.url())).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(self.is_alive(), "switchboard exited during startup; log tail:\n{}", self.log_tail(LOG_TAIL_LINES));
            assert!(Instant::now() < deadline, "switchboard did not become ready within 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's data dir (it persists across `kill9` and `spawn`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An admin request that must succeed: POST `body` if given, else GET.
    pub async fn admin(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.url());
        let request = match &body {
            Some(b) => self.http.post(url).json(b),
            None => self.http.get(url),
        };
        let answer = request.bearer_auth(ADMIN).send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The last `lines` lines the server wrote, across restarts.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn open_log(&self) -> File {
        OpenOptions::new().create(true).append(true).open(&self.log).expect("open the server log")
    }
}

fn writeln_log(mut file: &File, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(file, "{line}")
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- switchboard log ({}), last {LOG_TAIL_LINES} lines ----", self.log.display());
            eprintln!("{}", self.log_tail(LOG_TAIL_LINES));
        }
    }
}
