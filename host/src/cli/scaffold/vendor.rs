//! What `connector new` copies into a crate from the Switchboard checkout
//! this binary was built from, embedded at compile time so that a copied
//! binary scaffolds anywhere: the SDK's source (`sdk/src`) with a manifest
//! of its own, the WIT contract it binds (`wit/`), and the workspace's
//! `Cargo.lock`. The list of SDK and WIT files is kept here alone; a test
//! fails when either directory gains a file that is not in it.

/// Where the SDK goes in the connector crate, which depends on it by this path.
pub const SDK_DIR: &str = "vendor/switchboard-sdk";
/// Where the WIT goes: `../wit` from the SDK's manifest, the path its
/// `wit_bindgen::generate!` reads.
pub const WIT_DIR: &str = "vendor/wit";

/// `[(file name, contents)]` of files in `$dir` (relative to the workspace root).
macro_rules! embed {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        [$(($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $dir, "/", $file)))),+]
    };
}

const SDK_SOURCES: [(&str, &str); 10] = embed!("sdk/src":
    "__private.rs",
    "connector.rs",
    "failure.rs",
    "host.rs",
    "http.rs",
    "lib.rs",
    "manifest.rs",
    "testing.rs",
    "typed.rs",
    "url.rs",
);

const WIT: [(&str, &str); 1] = embed!("wit": "connector.wit");

/// `sdk/Cargo.toml` without the workspace: concrete versions, no lints table.
const SDK_MANIFEST: &str = include_str!("../template/sdk.Cargo.toml.tmpl");

/// The versions the SDK is built and tested with in the checkout. The crate
/// starts from it (cargo prunes what the crate does not use), so its first
/// build resolves nothing anew.
pub const LOCKFILE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"));

/// Every vendored file: (path in the connector crate, contents).
pub fn files() -> Vec<(String, String)> {
    // The SDK is versioned with the workspace, as this crate is.
    let manifest = SDK_MANIFEST.replace("__VERSION__", env!("CARGO_PKG_VERSION"));
    let mut files = vec![(format!("{SDK_DIR}/Cargo.toml"), manifest)];
    files.extend(SDK_SOURCES.iter().map(|(name, text)| (format!("{SDK_DIR}/src/{name}"), text.to_string())));
    files.extend(WIT.iter().map(|(name, text)| (format!("{WIT_DIR}/{name}"), text.to_string())));
    files
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use toml::{Table, Value};

    use super::*;

    fn workspace_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn names_in(dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(workspace_root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn sorted(list: &[(&str, &str)]) -> Vec<String> {
        let mut names: Vec<String> = list.iter().map(|(name, _)| name.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn every_file_of_the_sdk_and_the_wit_is_embedded() {
        assert_eq!(sorted(&SDK_SOURCES), names_in("sdk/src"), "add the new file to SDK_SOURCES");
        assert_eq!(sorted(&WIT), names_in("wit"), "add the new file to WIT");
    }

    fn read_toml(path: &str) -> Table {
        toml::from_str(&std::fs::read_to_string(workspace_root().join(path)).unwrap()).unwrap()
    }

    /// `"1"` → `{version = "1"}`: one shape for every dependency spec.
    fn spec(value: &Value) -> Table {
        match value {
            Value::String(_) => Table::from_iter([("version".to_string(), value.clone())]),
            Value::Table(table) => table.clone(),
            other => panic!("not a dependency spec: {other}"),
        }
    }

    /// `sdk/Cargo.toml`'s dependencies, with `workspace = true` replaced by
    /// the workspace's spec (its features and the SDK's both kept).
    fn sdk_dependencies(workspace: &Table, sdk: &Table) -> Table {
        let inherited = workspace["workspace"]["dependencies"].as_table().unwrap();
        let mut resolved = Table::new();
        for (name, value) in sdk["dependencies"].as_table().unwrap() {
            let mut own = spec(value);
            if own.remove("workspace") == Some(Value::Boolean(true)) {
                let mut full = spec(&inherited[name]);
                for (key, value) in own {
                    match (full.get_mut(&key), value) {
                        (Some(Value::Array(features)), Value::Array(more)) if key == "features" => {
                            features.extend(more)
                        }
                        (_, value) => {
                            full.insert(key, value);
                        }
                    }
                }
                own = full;
            }
            resolved.insert(name.clone(), Value::Table(own));
        }
        resolved
    }

    #[test]
    fn the_vendored_manifest_declares_what_sdk_cargo_toml_does() {
        let (workspace, sdk) = (read_toml("Cargo.toml"), read_toml("sdk/Cargo.toml"));
        let files = files();
        let vendored: Table = toml::from_str(&files[0].1).unwrap();

        let vendored_deps: Table = vendored["dependencies"]
            .as_table()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), Value::Table(spec(v))))
            .collect();
        assert_eq!(vendored_deps, sdk_dependencies(&workspace, &sdk), "sdk.Cargo.toml.tmpl [dependencies]");
        assert_eq!(vendored["features"], sdk["features"], "sdk.Cargo.toml.tmpl [features]");
        let package = &workspace["workspace"]["package"];
        for key in ["version", "edition", "rust-version", "license"] {
            assert_eq!(vendored["package"][key], package[key], "sdk.Cargo.toml.tmpl package.{key}");
        }
        assert_eq!(vendored["package"]["name"], sdk["package"]["name"]);
    }
}
