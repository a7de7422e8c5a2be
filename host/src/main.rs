//! The `switchboard` binary: parse arguments, start the async runtime, run.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Logging starts in `cli::run`, once `serve` has read its `[log]` section.
    let cli = switchboard::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(switchboard::cli::run(cli))
}
