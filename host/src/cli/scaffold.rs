//! `switchboard connector new NAME [--dir PATH]`: a connector crate that
//! builds as generated — one action, a README, native unit tests and the
//! fixtures `connector test` takes.
//!
//! The SDK is not on crates.io, so the crate depends on it by path: the
//! `sdk/` directory of the checkout this binary was built from, baked in at
//! compile time. The crate has its own `[workspace]` table so it builds
//! standalone wherever it lives, even inside another workspace's tree.
//! It starts from the checkout's `Cargo.lock` (cargo prunes what the crate
//! does not use), so its dependencies are the versions the SDK is tested
//! with, and the first build needs no registry lookup.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::{UsageError, failed};

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The connector's name: `[a-z][a-z0-9_-]{0,63}`. It is the manifest name
    /// (the registry name); the crate is `switchboard-connector-NAME`.
    pub name: String,
    /// The directory to create (default: ./NAME). Must not exist yet.
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

/// Where the SDK was when this binary was compiled.
const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// The generated files: (path in the crate, template).
const FILES: [(&str, &str); 7] = [
    ("Cargo.toml", include_str!("template/Cargo.toml.tmpl")),
    ("README.md", include_str!("template/README.md.tmpl")),
    (".gitignore", include_str!("template/gitignore.tmpl")),
    ("src/lib.rs", include_str!("template/lib.rs.tmpl")),
    ("src/tests.rs", include_str!("template/tests.rs.tmpl")),
    ("fixtures/event.json", include_str!("template/event.json.tmpl")),
    ("fixtures/responses.json", include_str!("template/responses.json.tmpl")),
];

pub fn run(args: NewArgs) -> Result<ExitCode, UsageError> {
    check_name(&args.name)?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        return Err(UsageError(format!("{} already exists; refusing to overwrite it", dir.display())));
    }
    let sdk = match std::fs::canonicalize(SDK_DIR) {
        Ok(p) if p.join("Cargo.toml").is_file() => p,
        _ => {
            return Ok(failed(format_args!(
                "the switchboard-sdk crate is not at {SDK_DIR}, where it was when this binary was built; \
                 build `switchboard` from a Switchboard checkout"
            )));
        }
    };
    if let Err(e) = write_crate(&dir, &args.name, &sdk) {
        return Ok(failed(e));
    }
    println!("created connector `{}` in {}", args.name, dir.display());
    println!("next: cd {} && cargo test && switchboard connector build", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `[a-z][a-z0-9_-]{0,63}`.
fn check_name(name: &str) -> Result<(), UsageError> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if first_ok && rest_ok && name.len() <= 64 {
        return Ok(());
    }
    Err(UsageError(format!(
        "invalid connector name `{name}`: it must be a lower-case letter followed by at most 63 of a-z, 0-9, `-`, `_`"
    )))
}

fn write_crate(dir: &Path, name: &str, sdk: &Path) -> Result<(), String> {
    let krate = format!("switchboard-connector-{name}");
    let sdk_toml = toml::Value::String(sdk.display().to_string()).to_string();
    let substitutions = [
        ("__CRATE__", krate.clone()),
        ("__LIB__", krate.replace('-', "_")),
        ("__TYPE__", type_name(name)),
        ("__NAME__", name.to_string()),
        ("__SDK__", sdk_toml),
    ];
    // create_dir (not create_dir_all) for the crate itself: a directory that
    // appeared since the check above is still never overwritten.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (path, template) in FILES {
        let mut text = template.to_string();
        for (placeholder, value) in &substitutions {
            text = text.replace(placeholder, value);
        }
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&target, text).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    if let Some(lock) = sdk.parent().map(|checkout| checkout.join("Cargo.lock")).filter(|l| l.is_file()) {
        let target = dir.join("Cargo.lock");
        std::fs::copy(&lock, &target)
            .map_err(|e| format!("cannot copy {} to {}: {e}", lock.display(), target.display()))?;
    }
    Ok(())
}

/// `acme-crm_v2` → `AcmeCrmV2Connector`: the connector's Rust type. The
/// suffix keeps it clear of the SDK prelude's names (`host` → `HostConnector`).
fn type_name(name: &str) -> String {
    let camel: String = name
        .split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect();
    camel + "Connector"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_registry_rule() {
        for ok in ["a", "acme-crm", "crm_2", &"a".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "1crm", "-x", "a b", "crm.io", &"a".repeat(65)] {
            assert!(check_name(bad).unwrap_err().0.contains("invalid connector name"), "{bad}");
        }
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("acme-crm_v2"), "AcmeCrmV2Connector");
        assert_eq!(type_name("host"), "HostConnector");
        assert_eq!(type_name("a--b"), "ABConnector");
    }
}
