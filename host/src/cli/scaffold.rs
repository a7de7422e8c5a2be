//! `switchboard connector new NAME [--dir PATH]`: a connector crate that
//! builds as generated — one action, a README, native unit tests and the
//! fixtures `connector test` takes.
//!
//! It needs only this binary and a Rust toolchain: the SDK is not on
//! crates.io, so the crate carries a copy of it, which the binary embeds
//! ([`vendor`]): the SDK's source in `vendor/switchboard-sdk`, the WIT it
//! binds in `vendor/wit`, and the crate depends on it by that relative path.
//! It has its own `[workspace]` table so it builds standalone wherever it
//! lives, even inside another workspace's tree, and it starts from the
//! Switchboard workspace's `Cargo.lock`, so its dependencies are the
//! versions the SDK is tested with.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::{UsageError, failed};

mod vendor;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The connector's name: `[a-z][a-z0-9_-]{0,63}`. It is the manifest name
    /// (the registry name); the crate is `switchboard-connector-NAME`.
    pub name: String,
    /// The directory to create (default: ./NAME). Must not exist yet.
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

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
    if let Err(e) = write_crate(&dir, &args.name) {
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

fn write_crate(dir: &Path, name: &str) -> Result<(), String> {
    let krate = format!("switchboard-connector-{name}");
    let substitutions = [
        ("__CRATE__", krate.clone()),
        ("__LIB__", krate.replace('-', "_")),
        ("__TYPE__", type_name(name)),
        ("__NAME__", name.to_string()),
        ("__SDK_VERSION__", env!("CARGO_PKG_VERSION").to_string()),
    ];
    // create_dir (not create_dir_all) for the crate itself: a directory that
    // appeared since the check in `run` is still never overwritten.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (path, template) in FILES {
        let mut text = template.to_string();
        for (placeholder, value) in &substitutions {
            text = text.replace(placeholder, value);
        }
        write(dir, path, &text)?;
    }
    for (path, text) in vendor::files() {
        write(dir, &path, &text)?;
    }
    write(dir, "Cargo.lock", vendor::LOCKFILE)
}

/// Write `text` to `path` in the crate `dir`, creating the directories on the way.
fn write(dir: &Path, path: &str, text: &str) -> Result<(), String> {
    let target = dir.join(path);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(&target, text).map_err(|e| format!("cannot write {}: {e}", target.display()))
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
    fn the_crate_carries_the_sdk_and_the_wit_and_depends_on_them_by_relative_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("acme");
        write_crate(&dir, "acme-crm").unwrap();
        let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
        assert_eq!(manifest["dependencies"]["switchboard-sdk"]["path"].as_str(), Some(vendor::SDK_DIR));
        assert!(manifest.contains_key("workspace"), "a workspace of its own");
        for (path, _) in vendor::files() {
            assert!(dir.join(&path).is_file(), "{path}");
        }
        assert!(dir.join(vendor::SDK_DIR).join("../wit/connector.wit").is_file(), "where generate! looks");
        assert!(dir.join("Cargo.lock").is_file());
        for (path, _) in FILES {
            let text = std::fs::read_to_string(dir.join(path)).unwrap();
            for placeholder in ["__CRATE__", "__LIB__", "__TYPE__", "__NAME__", "__SDK_VERSION__"] {
                assert!(!text.contains(placeholder), "{path} still has {placeholder}");
            }
        }
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("acme-crm_v2"), "AcmeCrmV2Connector");
        assert_eq!(type_name("host"), "HostConnector");
        assert_eq!(type_name("a--b"), "ABConnector");
    }
}
