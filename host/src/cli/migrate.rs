//! `switchboard migrate [--config FILE]`: bring the configured store's
//! schema up to date and exit, without serving — for deployments that run
//! migrations as a step of their own (`serve` also migrates at start). The
//! embedded stores have no schema: nothing to do. Exit 1 when the store
//! cannot be reached or a migration fails, 2 when the configuration is
//! refused. The database URL is never printed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{UsageError, failed};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// A TOML config file; `SWITCHBOARD_*` environment variables override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn run(args: MigrateArgs) -> Result<ExitCode, UsageError> {
    let config =
        crate::config::Config::load(args.config.as_deref(), std::env::vars()).map_err(|e| UsageError(e.to_string()))?;
    let backend = config.store.backend.name();
    match crate::store::migrate(&config.store).await {
        Ok(Some(version)) => {
            let at = config.store.url.as_ref().map(|u| u.redacted()).unwrap_or_default();
            println!("the {backend} store at {at} is at schema version {version}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => {
            println!("the {backend} store has no schema: nothing to migrate");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(format_args!("migrating the store: {e}"))),
    }
}
