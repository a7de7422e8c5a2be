//! `switchboard store copy --from DATA_DIR --to postgres://…`: move a
//! stopped single node's embedded store into PostgreSQL (`store::copy` does
//! the copying) — with a progress bar on a terminal, and a summary line of
//! what was copied. The database URL may come from `SWITCHBOARD_STORE__URL`
//! instead of the command line; its password is never printed, not even in
//! a refusal of the URL. Exit 0 copied, 1 failed or refused (source in use,
//! database not empty), 2 usage error (no store in DATA_DIR, a bad URL).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::failed;
use crate::store::copy::{self, CopyError, CopyOptions};
use crate::store::{Backend, DatabaseUrl, EmbeddedStore, Engine, PgStore, StoreConfig};

/// A store call of the copy may take this long: nothing else waits on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Connections to the target: the copy writes one page at a time.
const TARGET_CONNECTIONS: u32 = 4;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a stopped node's embedded store (workspaces, keys, connections,
    /// rules, events, deliveries, attempts, replay jobs, idempotency keys)
    /// into a PostgreSQL database, running its migrations first.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The stopped node's data dir (the one holding `store/`).
    #[arg(long, value_name = "DATA_DIR")]
    pub from: PathBuf,
    /// The PostgreSQL database to copy into: postgres://user:password@host:port/db.
    #[arg(long, value_name = "URL", env = "SWITCHBOARD_STORE__URL", hide_env_values = true, value_parser = UrlParser)]
    pub to: DatabaseUrl,
    /// Which embedded store to read, when DATA_DIR holds both.
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Copy into a database that already holds a workspace or an event:
    /// records with the same ids are replaced by the source's, others kept.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EngineArg {
    Fjall,
    Sled,
}

impl From<EngineArg> for Engine {
    fn from(e: EngineArg) -> Engine {
        match e {
            EngineArg::Fjall => Engine::Fjall,
            EngineArg::Sled => Engine::Sled,
        }
    }
}

/// Parses `--to` without ever quoting it: clap's own refusal would repeat
/// the value, password included.
#[derive(Debug, Clone, Copy)]
struct UrlParser;

impl TypedValueParser for UrlParser {
    type Value = DatabaseUrl;

    fn parse_ref(&self, cmd: &clap::Command, _: Option<&clap::Arg>, value: &OsStr) -> Result<DatabaseUrl, clap::Error> {
        let refuse =
            |reason: &str| clap::Error::raw(ErrorKind::ValueValidation, format!("--to: {reason}\n")).with_cmd(cmd);
        let text = value.to_str().ok_or_else(|| refuse("the URL is not UTF-8"))?;
        DatabaseUrl::parse(text).map_err(|reason| refuse(&reason))
    }
}

pub async fn run(command: StoreCommand) -> ExitCode {
    match command {
        StoreCommand::Copy(args) => copy_command(args).await,
    }
}

async fn copy_command(args: CopyArgs) -> ExitCode {
    let engine = match copy::source_engine(&args.from, args.engine.map(Engine::from)) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let source_config = StoreConfig { timeout: CALL_TIMEOUT, ..StoreConfig::default() };
    let from = args.from.clone();
    // Opening reads and locks files: off the async runtime.
    let opened = tokio::task::spawn_blocking(move || EmbeddedStore::open_existing(engine, &from, &source_config)).await;
    let source = match opened {
        Ok(Ok(source)) => source,
        Ok(Err(e @ CopyError::NoSource(_))) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Ok(Err(e)) => return failed(e),
        Err(e) => return failed(format_args!("opening the embedded store: {e}")),
    };
    let target_config = StoreConfig {
        backend: Backend::Postgres,
        url: Some(args.to.clone()),
        timeout: CALL_TIMEOUT,
        max_connections: TARGET_CONNECTIONS,
        ..StoreConfig::default()
    };
    // Opening connects and runs the migrations.
    let target = match PgStore::open(&target_config).await {
        Ok(target) => target,
        Err(e) => return failed(format_args!("opening {}: {e}", args.to)),
    };
    let bar = progress_bar();
    let started = Instant::now();
    let options = CopyOptions { force: args.force, uploads: Some(args.from.join("connectors")) };
    let result = copy::copy(&source, &target, &options, &bar).await;
    match result {
        Ok(copied) => {
            bar.finish_and_clear();
            println!(
                "copied {copied} from {} ({}) to {} in {:.1} s",
                args.from.display(),
                match engine {
                    Engine::Fjall => "fjall",
                    Engine::Sled => "sled",
                },
                args.to,
                started.elapsed().as_secs_f64()
            );
            if args.from.join("master_key").is_file() {
                println!(
                    "connection secrets are sealed with the master key in {}: set it as `master_key` on every new node",
                    args.from.join("master_key").display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            bar.abandon();
            failed(e)
        }
    }
}

/// Events copied out of the total, on stderr; hidden when stderr is not a
/// terminal (indicatif draws nothing there).
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    let template = "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events ({eta} left) {msg}";
    // The template is a constant: it parses, but a failure must not stop the copy.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn parse(to: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["switchboard", "store", "copy", "--from", "./data", "--to", to])
    }

    #[test]
    fn the_url_is_never_shown() {
        let cli = parse("postgres://sb:hunter2-pw@db.internal/sb").unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("hunter2") && shown.contains("sb:***@db.internal"), "{shown}");
        let Command::Store(super::StoreCommand::Copy(args)) = cli.command else { panic!("{shown}") };
        assert_eq!(args.to.expose(), "postgres://sb:hunter2-pw@db.internal/sb");
        for refused in ["mysql://root:hunter2-pw@db/x", "hunter2-pw"] {
            let err = parse(refused).unwrap_err().to_string();
            assert!(!err.contains("hunter2") && err.contains("--to"), "{err}");
        }
    }
}
