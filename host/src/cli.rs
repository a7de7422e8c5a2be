//! The command line: `switchboard connector run` today; `serve` and the rest
//! of the author tooling grow here. Exit codes: 0 delivered, 1 not delivered
//! (or the component failed to load), 2 usage or input error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::egress::EgressPolicy;
use crate::outcome::Outcome;
use crate::runtime::cache::MemoryCache;
use crate::runtime::transport::ReqwestTransport;
use crate::runtime::{EventData, Invocation, Labels, Runtime, SandboxLimits};
use crate::secrets::SecretSet;

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Self-hosted event routing through sandboxed WebAssembly connectors")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: ingest, management API and delivery workers.
    Serve(ServeArgs),
    /// Work with connector components.
    #[command(subcommand)]
    Connector(ConnectorCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML config file; `SWITCHBOARD_*` environment variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Run one invocation in the real sandbox against real HTTP and print the
    /// attempt record as JSON.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The connector component (.wasm).
    pub component: PathBuf,
    /// The action to run, e.g. send_webhook.
    #[arg(long)]
    pub action: String,
    /// A JSON file with the event as the ingest API takes it:
    /// {"event", "payload", "resource"?, "resource_id"?}.
    #[arg(long)]
    pub event: PathBuf,
    /// The rule's fields, already rendered (JSON).
    #[arg(long, default_value = "{}")]
    pub fields: String,
    /// The connection's settings (JSON).
    #[arg(long, default_value = "{}")]
    pub settings: String,
    /// A connection secret, NAME=VALUE; repeatable.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,
    /// Allow loopback and private addresses (local receivers).
    #[arg(long)]
    pub allow_private_networks: bool,
    /// An extra host the connector may reach; repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
}

/// Input errors: reported on stderr, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    event: String,
    payload: serde_json::Value,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
    #[serde(default, rename = "type")]
    _type: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => match serve(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Connector(ConnectorCommand::Run(args)) => match connector_run(args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = crate::config::Config::load(args.config.as_deref(), std::env::vars())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        trigger.cancel();
    });
    crate::server::run(config, listener, shutdown).await
}

fn parse_json(what: &str, text: &str) -> Result<serde_json::Value, UsageError> {
    serde_json::from_str(text).map_err(|e| UsageError(format!("{what} is not valid JSON: {e}")))
}

async fn connector_run(args: RunArgs) -> Result<ExitCode, UsageError> {
    let bytes = std::fs::read(&args.component)
        .map_err(|e| UsageError(format!("cannot read component {}: {e}", args.component.display())))?;
    let event_text = std::fs::read_to_string(&args.event)
        .map_err(|e| UsageError(format!("cannot read event file {}: {e}", args.event.display())))?;
    let event: EventFile = serde_json::from_str(&event_text)
        .map_err(|e| UsageError(format!("event file {} is not a valid event: {e}", args.event.display())))?;
    if !event.payload.is_object() {
        return Err(UsageError("event file: `payload` must be a JSON object".into()));
    }
    let fields = parse_json("--fields", &args.fields)?;
    let settings = parse_json("--settings", &args.settings)?;
    let mut secrets = Vec::new();
    for pair in &args.secrets {
        let (name, value) = pair.split_once('=').ok_or_else(|| {
            UsageError(format!("--secret expects NAME=VALUE, got `{}`", pair.split('=').next().unwrap_or("")))
        })?;
        secrets.push((name.to_string(), value.to_string()));
    }

    let egress = Arc::new(EgressPolicy {
        allow_private_networks: args.allow_private_networks,
        allow_hosts: args.allow_hosts.clone(),
    });
    let transport = ReqwestTransport::new(egress.clone()).map_err(|e| UsageError(format!("HTTP client: {e}")))?;
    let limits = SandboxLimits { max_concurrent_instances: 4, ..SandboxLimits::default() };
    let runtime = Runtime::new(limits, egress, Arc::new(transport), Arc::new(MemoryCache::default()))
        .map_err(|e| UsageError(format!("cannot start the sandbox: {e:#}")))?;
    let connector = match runtime.load(&bytes).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", args.component.display());
            return Ok(ExitCode::from(1));
        }
    };
    if !connector.manifest().actions.iter().any(|a| a.name == args.action) {
        let known: Vec<_> = connector.manifest().actions.iter().map(|a| a.name.as_str()).collect();
        return Err(UsageError(format!(
            "connector `{}` has no action `{}` (it has: {})",
            connector.manifest().name,
            args.action,
            known.join(", ")
        )));
    }
    match runtime.validate(&connector, &settings.to_string()).await {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => return Err(UsageError(format!("settings rejected by the connector: {msg}"))),
        Err(e) => {
            eprintln!("error: validate: {e}");
            return Ok(ExitCode::from(1));
        }
    }

    let id = event.id.unwrap_or_else(|| format!("evt_{}", ulid::Ulid::new()));
    let invocation = Invocation {
        event: EventData {
            id,
            delivery_id: format!("dlv_{}", ulid::Ulid::new()),
            name: event.event,
            resource: event.resource.unwrap_or_else(|| "global".into()),
            resource_id: event.resource_id,
            payload: event.payload.to_string(),
            created_at: crate::runtime::now_rfc3339(),
            workspace: "cli".into(),
        },
        action: args.action,
        fields: fields.to_string(),
        settings: settings.to_string(),
        secrets: Arc::new(SecretSet::new(secrets)),
        cache_scope: "cli".into(),
        attempt: 1,
    };
    let labels = Labels {
        connector: connector.manifest().name.clone(),
        version: connector.manifest().version.clone(),
        workspace: "cli".into(),
        delivery: invocation.event.delivery_id.clone(),
    };
    let record = runtime.invoke(&connector, invocation, labels).await;
    match serde_json::to_string_pretty(&record) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("error: cannot print the attempt record: {e}"),
    }
    Ok(if record.outcome == Outcome::Delivered { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
