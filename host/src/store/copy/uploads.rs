//! The connector versions uploaded to the single node, its blocks and its
//! release decisions, made the cluster's: on one node they are files in
//! `<data_dir>/connectors/` (`<name>-<version>.wasm`, `blocked.json` listing
//! `name@version`, `releases.json` mapping `name@version` to a decision, see
//! `ops::connectors`, `ops::releases` and `registry/`); on PostgreSQL the
//! nodes share them through the store (`Store::share_component`,
//! `share_block`, `share_release`), so
//! connections pinned to an uploaded version find it on every new node.
//! One component is held at a time.

use std::path::{Path, PathBuf};

use super::{Copied, CopyError};
use crate::store::{PgStore, SharedVersion, Store};

/// Where `ops::connectors` records the blocked versions.
const BLOCKED_FILE: &str = "blocked.json";
/// Where `ops::releases` records approvals, rollouts and rollbacks.
const RELEASES_FILE: &str = "releases.json";

/// `(name, version)` from an uploaded component's file name. A name is
/// `[a-z0-9_-]` (no dot) and a version semver, whose first `-` (a
/// pre-release) comes after its first dot: the name ends at the last `-`
/// before the first dot.
fn name_and_version(file: &str) -> Option<(&str, &str)> {
    let stem = file.strip_suffix(".wasm")?;
    let first_dot = stem.find('.')?;
    let split = stem[..first_dot].rfind('-')?;
    let (name, version) = (&stem[..split], &stem[split + 1..]);
    let valid = !name.is_empty() && semver::Version::parse(version).is_ok();
    valid.then_some((name, version))
}

fn disk(path: &Path) -> impl FnOnce(std::io::Error) -> CopyError + '_ {
    move |source| CopyError::Uploads { path: path.to_path_buf(), source }
}

/// Offer every component in `dir` to the cluster, then its blocks. A
/// missing `dir` is a node nothing was uploaded to.
pub async fn copy_uploads(dir: &Path, target: &PgStore, copied: &mut Copied) -> Result<(), CopyError> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut files: Vec<PathBuf> = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await.map_err(disk(dir))?;
    while let Some(entry) = entries.next_entry().await.map_err(disk(dir))? {
        files.push(entry.path());
    }
    files.sort();
    for path in &files {
        let Some((name, version)) = path.file_name().and_then(|f| f.to_str()).and_then(name_and_version) else {
            continue; // not a component `ops::connectors` wrote (blocked.json, say)
        };
        let bytes = tokio::fs::read(path).await.map_err(disk(path))?;
        let uploaded_at = tokio::fs::metadata(path)
            .await
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(crate::time::now_ms, |d| d.as_millis() as i64);
        let shared = SharedVersion {
            name: name.to_string(),
            version: version.to_string(),
            sha256: crate::runtime::sha256_hex(&bytes),
        };
        target.share_component(&shared, &bytes, uploaded_at).await.map_err(CopyError::Write)?;
        copied.connector_versions += 1;
    }
    let blocked = dir.join(BLOCKED_FILE);
    let listed = match tokio::fs::read(&blocked).await {
        Ok(bytes) => serde_json::from_slice::<Vec<String>>(&bytes)
            .map_err(|e| CopyError::Uploads { path: blocked.clone(), source: e.into() })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(disk(&blocked)(e)),
    };
    for entry in &listed {
        if let Some((name, version)) = entry.split_once('@') {
            target.share_block(name, version, true).await.map_err(CopyError::Write)?;
            copied.blocked_versions += 1;
        }
    }
    let releases = dir.join(RELEASES_FILE);
    let decided = match tokio::fs::read(&releases).await {
        Ok(bytes) => serde_json::from_slice::<std::collections::BTreeMap<String, crate::registry::Release>>(&bytes)
            .map_err(|e| CopyError::Uploads { path: releases.clone(), source: e.into() })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(disk(&releases)(e)),
    };
    for (key, release) in &decided {
        if let Some((name, version)) = key.split_once('@') {
            target.share_release(name, version, release).await.map_err(CopyError::Write)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::name_and_version;

    #[test]
    fn file_names_split_into_name_and_version() {
        assert_eq!(name_and_version("webhook-0.1.0.wasm"), Some(("webhook", "0.1.0")));
        assert_eq!(name_and_version("my-crm-2-1.0.0-rc.1.wasm"), Some(("my-crm-2", "1.0.0-rc.1")));
        assert_eq!(name_and_version("a_b-10.2.3+build.5.wasm"), Some(("a_b", "10.2.3+build.5")));
        for not_one in ["blocked.json", "webhook.wasm", "-1.0.0.wasm", "webhook-1.0.wasm", "webhook-0.1.0.txt"] {
            assert_eq!(name_and_version(not_one), None, "{not_one}");
        }
    }
}
