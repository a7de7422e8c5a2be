//! `switchboard replay --server URL --token TOKEN --workspace WS [--status failed]
//! [--connection ID] [--rule ID] [--since T] [--until T]`: start a replay job
//! through the API and follow its progress (a bar on a terminal) until it
//! completes. Exit 0 when it completed, 1 when the server refused it.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::{UsageError, failed};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The Switchboard server, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL", env = "SWITCHBOARD_SERVER")]
    pub server: String,
    /// The admin token, or the workspace's secret key.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    #[arg(long, value_name = "WS")]
    pub workspace: String,
    /// Which final deliveries to send again: failed, completed or canceled.
    #[arg(long, default_value = "failed")]
    pub status: String,
    #[arg(long, value_name = "ID")]
    pub connection: Option<String>,
    #[arg(long, value_name = "ID")]
    pub rule: Option<String>,
    /// Deliveries created at or after this instant (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Deliveries created before this instant (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
}

/// How often the job's progress is read.
const POLL: Duration = Duration::from_millis(250);

pub async fn run(args: ReplayArgs) -> Result<ExitCode, UsageError> {
    let base = url::Url::parse(&args.server)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| UsageError(format!("--server `{}` is not an http(s) URL", args.server)))?;
    let base = format!("{}/api/v1/workspaces/{}/replays", base.as_str().trim_end_matches('/'), args.workspace);
    let client = reqwest::Client::new();
    let body = json!({
        "status": args.status, "connection": args.connection, "rule": args.rule,
        "since": args.since, "until": args.until,
    });
    let job = match call(client.post(&base).bearer_auth(&args.token).json(&body)).await {
        Ok(job) => job,
        Err(message) => return Ok(failed(format_args!("the server refused the replay: {message}"))),
    };
    let id = job["id"].as_str().unwrap_or_default().to_string();
    let bar = progress_bar();
    let mut job = job;
    loop {
        if let Some(total) = job["total"].as_u64() {
            bar.set_length(total);
        }
        bar.set_position(job["matched"].as_u64().unwrap_or(0));
        bar.set_message(format!("{} requeued", job["requeued"].as_u64().unwrap_or(0)));
        if job["state"] == "completed" {
            break;
        }
        tokio::time::sleep(POLL).await;
        job = match call(client.get(format!("{base}/{id}")).bearer_auth(&args.token)).await {
            Ok(job) => job,
            Err(message) => {
                bar.abandon();
                return Ok(failed(format_args!("reading replay {id}: {message}")));
            }
        };
    }
    bar.finish_and_clear();
    println!(
        "replay {id} completed: {} matched, {} requeued",
        job["matched"].as_u64().unwrap_or(0),
        job["requeued"].as_u64().unwrap_or(0)
    );
    Ok(ExitCode::SUCCESS)
}

/// The answer's JSON, or the server's message (or why it could not be reached).
async fn call(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| format!("cannot reach the server: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let message = body["message"].as_str().map(String::from).unwrap_or_else(|| text.trim().to_string());
    Err(format!("HTTP {status}: {message}"))
}

/// Drawn on stderr when it is a terminal; otherwise indicatif draws nothing.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    let template = "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} deliveries {msg}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
