//! `switchboard connector build [PATH]`: `cargo build --release --target
//! wasm32-wasip2` in PATH, then the component is loaded in the real sandbox
//! (which runs its `describe`) and its manifest and path are printed.
//!
//! Nothing is installed behind the user's back: without the wasm32-wasip2
//! target the command fails and says how to add it. Cargo's own output goes
//! to stderr; stdout is one JSON document, `{"component", "manifest"}`.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;

use clap::Args;
use serde_json::{Value, json};

use super::{UsageError, cli_runtime, failed};
use crate::egress::EgressPolicy;
use crate::runtime::transport::{FnTransport, OutboundRequest, TransportError};

pub const TARGET: &str = "wasm32-wasip2";

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The connector crate (the directory holding its Cargo.toml).
    #[arg(default_value = ".")]
    pub path: PathBuf,
}

pub async fn run(args: BuildArgs) -> Result<ExitCode, UsageError> {
    let manifest_path = args.path.join("Cargo.toml");
    if !manifest_path.is_file() {
        return Err(UsageError(format!(
            "{} has no Cargo.toml; pass the connector crate's directory",
            args.path.display()
        )));
    }
    if let Err(e) = check_target() {
        return Ok(failed(e));
    }
    let component = match cargo_build(&args.path) {
        Ok(path) => path,
        Err(e) => return Ok(failed(e)),
    };
    let bytes = match std::fs::read(&component) {
        Ok(b) => b,
        Err(e) => return Ok(failed(format_args!("cannot read the built component {}: {e}", component.display()))),
    };
    // Loading runs only `describe`; a request from it has nowhere to go.
    let refuse = FnTransport(|_: &OutboundRequest| Err(TransportError::Denied("no HTTP while loading".into())));
    let runtime = cli_runtime(Arc::new(EgressPolicy::default()), Arc::new(refuse))?;
    let connector = match runtime.load(&bytes).await {
        Ok(c) => c,
        Err(e) => return Ok(failed(format_args!("{} does not load in the sandbox: {e}", component.display()))),
    };
    let out = json!({"component": component.display().to_string(), "manifest": connector.manifest()});
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    eprintln!(
        "built {} {} ({} bytes): {}",
        connector.manifest().name,
        connector.manifest().version,
        bytes.len(),
        component.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Fail, saying how to fix it, when rustup does not list the target.
fn check_target() -> Result<(), String> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run `rustup target list --installed` ({e}); the {TARGET} target is needed"))?;
    if !output.status.success() {
        return Err(format!(
            "`rustup target list --installed` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    if String::from_utf8_lossy(&output.stdout).lines().any(|l| l.trim() == TARGET) {
        return Ok(());
    }
    Err(format!("the {TARGET} Rust target is not installed; run `rustup target add {TARGET}` and build again"))
}

/// `cargo` as the environment names it (cargo sets `CARGO` for the processes it runs).
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Stdout of a child, sent to our stderr so our stdout stays JSON.
fn to_stderr() -> Stdio {
    std::io::stderr().as_fd().try_clone_to_owned().map(Stdio::from).unwrap_or_else(|_| Stdio::null())
}

/// Build and return the path of the `.wasm` cargo produced.
fn cargo_build(dir: &Path) -> Result<PathBuf, String> {
    let status = cargo()
        .args(["build", "--release", "--target", TARGET])
        .current_dir(dir)
        .stdout(to_stderr())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo build --release --target {TARGET}` failed in {} ({status})", dir.display()));
    }
    let metadata = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .stderr(to_stderr())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !metadata.status.success() {
        return Err(format!("`cargo metadata` failed in {}", dir.display()));
    }
    let metadata: Value =
        serde_json::from_slice(&metadata.stdout).map_err(|e| format!("cargo metadata printed something else: {e}"))?;
    component_path(&metadata, &dir.join("Cargo.toml"))
}

/// `{target_directory}/wasm32-wasip2/release/{lib name}.wasm` for the
/// package whose manifest is `manifest`, which must be a cdylib.
fn component_path(metadata: &Value, manifest: &Path) -> Result<PathBuf, String> {
    let manifest = std::fs::canonicalize(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let target_dir = metadata["target_directory"].as_str().ok_or("cargo metadata has no target_directory")?;
    let packages = metadata["packages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let package = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().and_then(|m| std::fs::canonicalize(m).ok()).as_ref() == Some(&manifest))
        .ok_or_else(|| format!("{} is a workspace manifest, not a connector crate", manifest.display()))?;
    let targets = package["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
    let lib = targets
        .iter()
        .find(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib")))
        .and_then(|t| t["name"].as_str())
        .ok_or_else(|| {
            format!(
                "package `{}` builds no component: add `crate-type = [\"cdylib\", \"rlib\"]` under [lib]",
                package["name"].as_str().unwrap_or("?")
            )
        })?;
    let path = Path::new(target_dir).join(TARGET).join("release").join(format!("{}.wasm", lib.replace('-', "_")));
    if !path.is_file() {
        return Err(format!("cargo succeeded but {} is missing", path.display()));
    }
    Ok(path)
}
