//! The connector registry: every loaded connector version by name, where it
//! came from, and how a connection's `version` (`latest` or exact) resolves.
//! Versions are immutable once registered. A newer upload is picked up by
//! the next delivery that resolves `latest`; an attempt already running
//! holds its own `LoadedConnector` and finishes on the version it started.

use std::collections::BTreeMap;
use std::sync::RwLock;

use semver::Version;
use serde::Serialize;

use crate::runtime::LoadedConnector;

/// Where the blocked versions are recorded, in the uploads directory.
const BLOCKED_FILE: &str = "blocked.json";

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Shipped inside the `switchboard` binary.
    Bundled,
    /// A `*.wasm` in the configured `connectors_dir`.
    Directory,
    /// `PUT /api/v1/connectors/{name}`; kept in the data dir.
    Uploaded,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub connector: LoadedConnector,
    pub origin: Origin,
    /// Compiled by this process, rather than read from the artifact cache.
    pub compiled: bool,
    /// Blocked by an operator: `latest` skips it; connections pinned to it
    /// pause until it is unblocked.
    pub blocked: bool,
}

#[derive(Debug, Default)]
pub struct Registry {
    connectors: RwLock<BTreeMap<String, BTreeMap<Version, Entry>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("connector `{name}` already has version {existing}; a new version must be greater")]
    NotGreater { name: String, existing: String },
    #[error("version `{0}` is not semver")]
    BadVersion(String),
}

impl Registry {
    /// Add a new version; it must be greater than every version of that name.
    pub fn register(&self, entry: Entry) -> Result<(), RegistryError> {
        self.insert(entry, true)
    }

    /// Add a version found at start, in whatever order files are read; an
    /// exact duplicate is refused.
    pub fn restore(&self, entry: Entry) -> Result<(), RegistryError> {
        self.insert(entry, false)
    }

    /// Add or overwrite a version (development mode: the same version rebuilt).
    pub fn replace(&self, entry: Entry) {
        let m = entry.connector.manifest();
        let Ok(version) = Version::parse(&m.version) else { return };
        let mut all = self.connectors.write().unwrap_or_else(|p| p.into_inner());
        all.entry(m.name.clone()).or_default().insert(version, entry);
    }

    /// Block or unblock a version; false when there is no such version.
    pub fn set_blocked(&self, name: &str, version: &str, blocked: bool) -> bool {
        let Ok(version) = Version::parse(version) else { return false };
        let mut all = self.connectors.write().unwrap_or_else(|p| p.into_inner());
        match all.get_mut(name).and_then(|vs| vs.get_mut(&version)) {
            Some(e) => {
                e.blocked = blocked;
                true
            }
            None => false,
        }
    }

    /// Record every blocked `name@version` in `dir`, so blocks outlive a
    /// restart ([`Registry::load_blocked`] applies them again).
    pub async fn save_blocked(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let blocked: Vec<String> = self
            .list()
            .iter()
            .flat_map(|(name, vs)| {
                vs.iter().filter(|e| e.blocked).map(move |e| format!("{name}@{}", e.connector.manifest().version))
            })
            .collect();
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(dir.join(BLOCKED_FILE), serde_json::to_vec(&blocked).unwrap_or_default()).await
    }

    /// Block again what [`Registry::save_blocked`] recorded in `dir`.
    pub async fn load_blocked(&self, dir: &std::path::Path) {
        let Ok(text) = tokio::fs::read_to_string(dir.join(BLOCKED_FILE)).await else { return };
        for blocked in serde_json::from_str::<Vec<String>>(&text).unwrap_or_default() {
            if let Some((name, version)) = blocked.split_once('@') {
                self.set_blocked(name, version, true);
            }
        }
    }

    pub fn is_blocked(&self, name: &str, version: &str) -> bool {
        let Ok(version) = Version::parse(version) else { return false };
        let all = self.connectors.read().unwrap_or_else(|p| p.into_inner());
        all.get(name).and_then(|vs| vs.get(&version)).is_some_and(|e| e.blocked)
    }

    fn insert(&self, entry: Entry, must_be_newest: bool) -> Result<(), RegistryError> {
        let m = entry.connector.manifest();
        let version = Version::parse(&m.version).map_err(|_| RegistryError::BadVersion(m.version.clone()))?;
        let name = m.name.clone();
        let mut all = self.connectors.write().unwrap_or_else(|p| p.into_inner());
        let versions = all.entry(name.clone()).or_default();
        let blocking = if must_be_newest {
            versions.last_key_value().map(|(v, _)| v)
        } else {
            versions.get_key_value(&version).map(|(v, _)| v)
        };
        if let Some(existing) = blocking
            && *existing >= version
        {
            return Err(RegistryError::NotGreater { name, existing: existing.to_string() });
        }
        versions.insert(version, entry);
        Ok(())
    }

    /// `version` is `latest` or an exact semver version.
    pub fn resolve(&self, name: &str, version: &str) -> Option<LoadedConnector> {
        let all = self.connectors.read().unwrap_or_else(|p| p.into_inner());
        let versions = all.get(name)?;
        if version == "latest" {
            // A blocked version is skipped: `latest` falls back to the newest good one.
            return versions.values().rev().find(|e| !e.blocked).map(|e| e.connector.clone());
        }
        versions.get(&Version::parse(version).ok()?).map(|e| e.connector.clone())
    }

    pub fn remove(&self, name: &str, version: &str) -> Option<Entry> {
        let version = Version::parse(version).ok()?;
        let mut all = self.connectors.write().unwrap_or_else(|p| p.into_inner());
        let versions = all.get_mut(name)?;
        let removed = versions.remove(&version);
        if versions.is_empty() {
            all.remove(name);
        }
        removed
    }

    /// Every connector with its versions, oldest first.
    pub fn list(&self) -> Vec<(String, Vec<Entry>)> {
        let all = self.connectors.read().unwrap_or_else(|p| p.into_inner());
        all.iter().map(|(name, vs)| (name.clone(), vs.values().cloned().collect())).collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.connectors.read().unwrap_or_else(|p| p.into_inner()).contains_key(name)
    }
}
