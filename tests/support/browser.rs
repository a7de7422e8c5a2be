//! `Browser`: a headless Chromium driven over WebDriver, for the dashboard's
//! tests. `chromedriver` runs as a child process on a free port, in a process
//! group of its own so that dropping the `Browser` ends it and the Chromium
//! it started, even when a test panics; the fantoccini session uses a fresh
//! profile and none of Chromium's own network chatter.
//!
//! Every wait polls the page against a deadline: a test never sleeps a fixed
//! time hoping the page has caught up.

use std::future::Future;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long any one thing may take to show up on the page.
const DEADLINE: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    /// Dropped after the client: the session is gone before its driver.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// The chromedriver child; dropping it kills its whole process group
/// (chromedriver and the browser it launched), then reaps it.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let killed = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        if !killed.is_ok_and(|s| s.success()) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Browser {
    /// Start chromedriver and open a Chromium session on a fresh profile.
    pub async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER} (scripts/setup.sh installs it): {e}"));
        let driver = Driver(child);
        let url = format!("http://127.0.0.1:{port}");
        wait_for_driver(&url).await;

        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,900",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), json!({"binary": CHROMIUM, "args": args}));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("open a Chromium session");
        Browser { client, _driver: driver, _profile: profile }
    }

    /// End the session; the driver and browser stop when `self` drops.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn current_url(&self) -> String {
        self.client.current_url().await.expect("the current URL").to_string()
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.wait().at_most(DEADLINE).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => {
                panic!("no `{css}` on the page within {DEADLINE:?} ({e}); the page shows:\n{}", self.page_text().await)
            }
        }
    }

    /// Every element matching `css` now (none is fine).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.expect("find elements")
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Type `text` into the field matching `css`, replacing what it held.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("element text")
    }

    /// Scroll the first element matching `css` to the top of the window.
    pub async fn scroll_to(&self, css: &str) {
        let element = self.find(css).await;
        let script = "arguments[0].scrollIntoView({block: 'start'})";
        self.client.execute(script, vec![serde_json::to_value(&element).unwrap()]).await.expect("scroll");
    }

    /// Run `script` in the page (a function body: `return …`).
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("run `{script}`: {e}"))
    }

    /// Poll until `check` holds, at most [`DEADLINE`].
    pub async fn wait_until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + DEADLINE;
        while !check().await {
            if Instant::now() >= deadline {
                panic!("timed out waiting for: {what}; the page shows:\n{}", self.page_text().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Save a screenshot as `target/test-output/dashboard/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = super::build::workspace_root().join("target/test-output/dashboard");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        let png = self.client.screenshot().await.expect("take a screenshot");
        std::fs::write(&path, png).unwrap();
        path
    }

    /// What the page says, for failure messages.
    async fn page_text(&self) -> String {
        match self.client.execute("return document.body ? document.body.innerText : ''", vec![]).await {
            Ok(Value::String(text)) => text,
            other => format!("(cannot read the page: {other:?})"),
        }
    }
}

/// chromedriver answers `/status` with `ready: true` once it takes sessions.
async fn wait_for_driver(url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(res) = http.get(format!("{url}/status")).send().await
            && res.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true)
        {
            return;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start on {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
