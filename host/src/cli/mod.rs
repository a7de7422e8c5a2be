//! The command line: `switchboard serve`, `switchboard migrate`,
//! `switchboard store copy`, `switchboard replay` and the
//! connector-author tooling (`switchboard connector new|build|run|test|publish`).
//!
//! Exit codes, every command: 0 ok (for `run`/`test`: delivered as
//! expected), 1 failed (the component, the build, the test or the server
//! said no), 2 usage or input error. `run` lives here; each other connector
//! command has its own module.

mod build;
mod fixture;
mod migrate;
mod publish;
mod replay;
mod scaffold;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::egress::EgressPolicy;
use crate::outcome::Outcome;
use crate::runtime::cache::MemoryCache;
use crate::runtime::transport::{ReqwestTransport, Transport};
use crate::runtime::{EventData, Invocation, Labels, LoadedConnector, Runtime, SandboxLimits, ValidateError};
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
    /// Bring the configured store's schema up to date, then exit (`serve`
    /// does it too, at start).
    Migrate(migrate::MigrateArgs),
    /// Move a single node's embedded store into PostgreSQL.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Send final deliveries again, following the job's progress.
    Replay(replay::ReplayArgs),
    /// Work with connector components.
    #[command(subcommand)]
    Connector(ConnectorCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML config file; `SWITCHBOARD_*` environment variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Register every `*.wasm` in DIR (overrides `connectors_dir` from the
    /// config file and the environment).
    #[arg(long, value_name = "DIR")]
    pub connectors_dir: Option<PathBuf>,
    /// Development mode: reload a connector in the connectors directory
    /// when its file changes (`[registry] watch = true`).
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Scaffold a connector crate on switchboard-sdk: one action, a README,
    /// native unit tests and fixtures.
    New(scaffold::NewArgs),
    /// Build a connector crate for wasm32-wasip2, load it in the sandbox and
    /// print its manifest and the component's path.
    Build(build::BuildArgs),
    /// Run one invocation in the real sandbox against real HTTP and print the
    /// attempt record as JSON.
    Run(RunArgs),
    /// Run one invocation in the real sandbox with HTTP answered from a
    /// fixture file (no network); fail on any unexpected, differing or missing
    /// request. With --record, run against the network and write the fixture.
    Test(fixture::TestArgs),
    /// Upload a component to a Switchboard server's registry.
    Publish(publish::PublishArgs),
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
    // `serve` starts logging once it has read its `[log]` section.
    if !matches!(cli.command, Command::Serve(_))
        && let Err(e) = crate::telemetry::init(&crate::config::LogConfig::default())
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Serve(args) => match serve(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Migrate(args) => migrate::run(args).await.unwrap_or_else(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }),
        Command::Store(command) => store::run(command).await,
        Command::Replay(args) => replay::run(args).await.unwrap_or_else(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }),
        Command::Connector(command) => {
            let result = match command {
                ConnectorCommand::New(args) => scaffold::run(args),
                ConnectorCommand::Build(args) => build::run(args).await,
                ConnectorCommand::Run(args) => connector_run(args).await,
                ConnectorCommand::Test(args) => fixture::run(args).await,
                ConnectorCommand::Publish(args) => publish::run(args).await,
            };
            match result {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Report a failure (not a usage error) and return exit code 1.
fn failed(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = crate::config::Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = args.connectors_dir {
        config.connectors_dir = Some(dir);
    }
    config.registry.watch |= args.dev;
    crate::telemetry::init(&config.log)?;
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

/// The component's bytes, or a usage error naming the file.
fn read_component(path: &Path) -> Result<Vec<u8>, UsageError> {
    std::fs::read(path).map_err(|e| UsageError(format!("cannot read component {}: {e}", path.display())))
}

/// What `run` and `test` both take: the event file, fields, settings and
/// secrets, read and checked.
struct InvocationInput {
    event: EventFile,
    fields: serde_json::Value,
    settings: serde_json::Value,
    secrets: Arc<SecretSet>,
}

fn read_input(event: &Path, fields: &str, settings: &str, secrets: &[String]) -> Result<InvocationInput, UsageError> {
    let event_text = std::fs::read_to_string(event)
        .map_err(|e| UsageError(format!("cannot read event file {}: {e}", event.display())))?;
    let event_file: EventFile = serde_json::from_str(&event_text)
        .map_err(|e| UsageError(format!("event file {} is not a valid event: {e}", event.display())))?;
    if !event_file.payload.is_object() {
        return Err(UsageError("event file: `payload` must be a JSON object".into()));
    }
    let fields = parse_json("--fields", fields)?;
    let settings = parse_json("--settings", settings)?;
    let mut pairs = Vec::new();
    for pair in secrets {
        let (name, value) = pair.split_once('=').ok_or_else(|| {
            UsageError(format!("--secret expects NAME=VALUE, got `{}`", pair.split('=').next().unwrap_or("")))
        })?;
        pairs.push((name.to_string(), value.to_string()));
    }
    Ok(InvocationInput { event: event_file, fields, settings, secrets: Arc::new(SecretSet::new(pairs)) })
}

/// A sandbox for one CLI invocation over `transport`.
fn cli_runtime(egress: Arc<EgressPolicy>, transport: Arc<dyn Transport>) -> Result<Runtime, UsageError> {
    let limits = SandboxLimits { max_concurrent_instances: 4, ..SandboxLimits::default() };
    Runtime::new(limits, egress, transport, Arc::new(MemoryCache::default()))
        .map_err(|e| UsageError(format!("cannot start the sandbox: {e:#}")))
}

/// Refuse an action the manifest does not declare, listing the ones it does.
fn check_action(connector: &LoadedConnector, action: &str) -> Result<(), UsageError> {
    if connector.manifest().actions.iter().any(|a| a.name == action) {
        return Ok(());
    }
    let known: Vec<_> = connector.manifest().actions.iter().map(|a| a.name.as_str()).collect();
    Err(UsageError(format!(
        "connector `{}` has no action `{action}` (it has: {})",
        connector.manifest().name,
        known.join(", ")
    )))
}

/// The invocation (attempt 1, workspace `cli`) and its log labels.
fn invocation(connector: &LoadedConnector, input: InvocationInput, action: String) -> (Invocation, Labels) {
    let event = input.event;
    let id = event.id.unwrap_or_else(|| format!("evt_{}", ulid::Ulid::new()));
    let invocation = Invocation {
        event: EventData {
            id,
            delivery_id: format!("dlv_{}", ulid::Ulid::new()),
            name: event.event,
            resource: event.resource.unwrap_or_else(|| "global".into()),
            resource_id: event.resource_id,
            payload: event.payload.to_string(),
            created_at: crate::time::now_rfc3339(),
            workspace: "cli".into(),
        },
        action,
        fields: input.fields.to_string(),
        settings: input.settings.to_string(),
        secrets: input.secrets,
        cache_scope: "cli".into(),
        attempt: 1,
    };
    let labels = Labels {
        connector: connector.manifest().name.clone(),
        version: connector.manifest().version.clone(),
        workspace: "cli".into(),
        delivery: invocation.event.delivery_id.clone(),
    };
    (invocation, labels)
}

async fn connector_run(args: RunArgs) -> Result<ExitCode, UsageError> {
    let bytes = read_component(&args.component)?;
    let input = read_input(&args.event, &args.fields, &args.settings, &args.secrets)?;
    let egress = Arc::new(EgressPolicy {
        allow_private_networks: args.allow_private_networks,
        allow_hosts: args.allow_hosts.clone(),
    });
    let transport = ReqwestTransport::new(egress.clone()).map_err(|e| UsageError(format!("HTTP client: {e}")))?;
    let runtime = cli_runtime(egress, Arc::new(transport))?;
    let connector = match runtime.load(&bytes).await {
        Ok(c) => c,
        Err(e) => return Ok(failed(format_args!("{}: {e}", args.component.display()))),
    };
    check_action(&connector, &args.action)?;
    match runtime.validate(&connector, &input.settings.to_string()).await {
        Ok(()) => {}
        Err(ValidateError::Rejected(msg)) => {
            return Err(UsageError(format!("settings rejected by the connector: {msg}")));
        }
        Err(ValidateError::Failed(e)) => return Ok(failed(format_args!("validate: {e}"))),
    }
    let (invocation, labels) = invocation(&connector, input, args.action);
    let record = runtime.invoke(&connector, invocation, labels).await;
    match serde_json::to_string_pretty(&record) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("error: cannot print the attempt record: {e}"),
    }
    Ok(if record.outcome == Outcome::Delivered { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
