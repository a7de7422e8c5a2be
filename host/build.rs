//! Builds the bundled connectors (`connectors/*`) as wasm32-wasip2
//! components and puts them in `OUT_DIR`, where `src/bundled.rs` embeds them:
//! the `switchboard` binary serves them with no configuration at all.
//!
//! The build is a nested `cargo build --profile guest` of the workspace's
//! connector packages, in a target directory of its own (`target/bundled`):
//! the outer cargo holds the lock on its own build directory while this
//! script runs, and the nested build is kept across `check`, `clippy`,
//! `build` and `test`, so only the first of them compiles the guests.
//! Without the wasm32-wasip2 target the build fails saying how to add it: a
//! binary that silently shipped no connectors would be worse.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The connector packages the binary carries, in the order they register.
const BUNDLED: [&str; 5] = [
    "switchboard-connector-webhook",
    "switchboard-connector-hubspot",
    "switchboard-connector-activecampaign",
    "switchboard-connector-intercom",
    "switchboard-connector-slack",
];
const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// What cargo (or cargo-clippy, or the user's shell) gives this script that
/// would change the nested build: the host's flags and wrappers, the outer
/// target and target directory. `CARGO_MAKEFLAGS` stays, so the nested
/// cargo takes its jobs from the outer one's jobserver.
const CLEARED: [&str; 29] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_TARGET_TMPDIR",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTC_LINKER",
];

/// Prefixes of the per-package variables cargo sets for a build script
/// (`CARGO_CFG_UNIX` would reach the guests' build scripts, which run for a
/// target that is not unix).
const CLEARED_PREFIXES: [&str; 5] = ["CARGO_CFG_", "CARGO_FEATURE_", "CARGO_PKG_", "DEP_", "__CARGO"];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("host/ lives in the workspace root").to_path_buf();
    for input in ["connectors", "sdk", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    if let Err(message) = check_target() {
        fail(&message);
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| if dir.is_relative() { workspace.join(dir) } else { dir })
        .unwrap_or_else(|| workspace.join("target"))
        .join("bundled");
    if let Err(message) = nested_build(&workspace, &target_dir) {
        fail(&message);
    }

    let out_dir = PathBuf::from(env("OUT_DIR"));
    let built = target_dir.join(TARGET).join(PROFILE);
    let mut table = String::from("/// (package, component) of every bundled connector, in registration order.\n");
    table.push_str(&format!("pub const CONNECTORS: [(&str, &[u8]); {}] = [\n", BUNDLED.len()));
    for package in BUNDLED {
        let file = format!("{}.wasm", package.replace('-', "_"));
        let (from, to) = (built.join(&file), out_dir.join(&file));
        if let Err(e) = std::fs::copy(&from, &to) {
            fail(&format!("the nested build succeeded but {} cannot be copied: {e}", from.display()));
        }
        table.push_str(&format!("    ({package:?}, include_bytes!({:?})),\n", to.display().to_string()));
    }
    table.push_str("];\n");
    if let Err(e) = std::fs::write(out_dir.join("bundled.rs"), table) {
        fail(&format!("cannot write {}: {e}", out_dir.join("bundled.rs").display()));
    }
}

fn env(name: &str) -> OsString {
    std::env::var_os(name).unwrap_or_else(|| fail(&format!("cargo did not set {name}")))
}

/// Stop the build with `message` (cargo shows a build script's stderr when it fails).
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

/// The toolchain that builds this crate must have the wasm32-wasip2 standard library.
fn check_target() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&rustc).display()))?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let has_std = std::fs::read_dir(&libdir)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        .unwrap_or(false);
    if output.status.success() && has_std {
        return Ok(());
    }
    Err(format!(
        "the `switchboard` binary carries its bundled connectors, built for the {TARGET} target, \
         which this Rust toolchain does not have. Run `rustup target add {TARGET}` \
         (or `scripts/setup.sh`, which installs everything the build needs) and build again."
    ))
}

fn nested_build(workspace: &Path, target_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--locked", "--profile", PROFILE, "--target", TARGET, "--target-dir"])
        .arg(target_dir);
    for package in BUNDLED {
        command.args(["-p", package]);
    }
    for name in CLEARED {
        command.env_remove(name);
    }
    for (name, _) in std::env::vars_os() {
        if CLEARED_PREFIXES.iter().any(|prefix| name.to_string_lossy().starts_with(prefix)) {
            command.env_remove(name);
        }
    }
    // Cargo reads a build script's stdout for directives: the nested
    // cargo's output all goes to stderr, shown when the build fails.
    let stderr = std::io::stderr();
    let stdout = std::os::fd::AsFd::as_fd(&stderr).try_clone_to_owned().map(Stdio::from).unwrap_or(Stdio::null());
    let status = command.stdout(stdout).status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        return Ok(());
    }
    Err(format!(
        "building the bundled connectors failed ({status}): `cargo build --locked --profile {PROFILE} \
         --target {TARGET} -p {}` in {} (target dir {}); its output is above",
        BUNDLED.join(" -p "),
        workspace.display(),
        target_dir.display()
    ))
}
