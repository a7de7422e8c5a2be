//! `switchboard connector publish COMPONENT.wasm --server URL --token TOKEN`:
//! load the component locally (so a broken build fails here, with the
//! sandbox's reason), then `PUT /api/v1/connectors/{name}` with its bytes.
//! The registry answers 201 with the version's state (`live`,
//! `pending_approval`, `rolling_out`) and its compatibility report, which
//! this prints in one line each. Any other answer is exit 1 with the
//! server's message.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde_json::Value;

use super::{UsageError, cli_runtime, failed, read_component};
use crate::egress::EgressPolicy;
use crate::runtime::transport::{FnTransport, OutboundRequest, TransportError};

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The connector component (.wasm).
    pub component: PathBuf,
    /// The Switchboard server, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The server's admin token.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
}

pub async fn run(args: PublishArgs) -> Result<ExitCode, UsageError> {
    let bytes = read_component(&args.component)?;
    let base = url::Url::parse(&args.server)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| UsageError(format!("--server `{}` is not an http(s) URL", args.server)))?;

    let refuse = FnTransport(|_: &OutboundRequest| Err(TransportError::Denied("no HTTP while loading".into())));
    let runtime = cli_runtime(Arc::new(EgressPolicy::default()), Arc::new(refuse))?;
    let connector = match runtime.load(&bytes).await {
        Ok(c) => c,
        Err(e) => return Ok(failed(format_args!("{}: {e}", args.component.display()))),
    };
    let name = connector.manifest().name.clone();
    let endpoint = format!("{}/api/v1/connectors/{name}", base.as_str().trim_end_matches('/'));

    let response = reqwest::Client::new()
        .put(&endpoint)
        .bearer_auth(&args.token)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Ok(failed(format_args!("cannot reach {endpoint}: {e}"))),
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().map(String::from).unwrap_or_else(|| text.trim().to_string());
        return Ok(failed(format_args!(
            "the server refused {name} {}: HTTP {status}: {message}",
            connector.manifest().version
        )));
    }
    let version = body["version"].as_str().unwrap_or(&connector.manifest().version);
    let state = match body["state"].as_str() {
        Some("pending_approval") => "waiting for an admin's approval of what it asks for beyond the last version",
        Some("rolling_out") => "rolling out to a share of the connections following `latest`",
        _ => "live for new deliveries",
    };
    println!("published {name} {version} to {}: {state}", base.as_str().trim_end_matches('/'));
    let count = |key: &str| body["compatibility"][key].as_array().map_or(0, Vec::len);
    let (refused, rules, held) = (count("refused_connections"), count("refused_rules"), count("held_back"));
    if refused + rules > 0 {
        println!(
            "it refuses {refused} connection(s) and {rules} rule(s); {held} connection(s) following `latest` stay on \
             their version (see the upload's compatibility report)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
