//! Builds the guest components (for wasm32-wasip2) and the `switchboard`
//! binary once per test process, with the same cargo that runs the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Every guest crate the suite loads.
pub const GUESTS: [&str; 12] = [
    "switchboard-connector-webhook",
    "switchboard-connector-hubspot",
    "switchboard-connector-activecampaign",
    "switchboard-connector-intercom",
    "switchboard-connector-slack",
    "switchboard-fixture-hostile",
    "switchboard-fixture-echo-v1",
    "switchboard-fixture-echo-v2",
    "switchboard-fixture-echo-v3",
    "switchboard-fixture-echo-v4",
    "switchboard-fixture-bad-describe",
    "switchboard-fixture-other-world",
];

pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace root")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

fn cargo(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo {args:?}: {e}"));
    assert!(status.success(), "cargo {args:?} failed; is the wasm32-wasip2 target installed? (scripts/setup.sh)");
}

fn built() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut args = vec!["build", "--quiet", "--profile", "guest", "--target", "wasm32-wasip2"];
        for g in GUESTS {
            args.extend(["-p", g]);
        }
        cargo(&args);
        // With the suite's features, so the binary is the library it tests.
        cargo(&["build", "--quiet", "-p", "switchboard", "--bin", "switchboard", "--features", "fault-injection"]);
        target_dir()
    })
}

/// The component bytes of a guest crate, e.g. `switchboard-connector-webhook`.
pub fn component(package: &str) -> Vec<u8> {
    let path = component_path(package);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn component_path(package: &str) -> PathBuf {
    assert!(GUESTS.contains(&package), "{package} is not a guest the suite builds");
    built().join("wasm32-wasip2/guest").join(format!("{}.wasm", package.replace('-', "_")))
}

/// The `switchboard` binary (debug build).
pub fn binary() -> PathBuf {
    built().join("debug/switchboard")
}
