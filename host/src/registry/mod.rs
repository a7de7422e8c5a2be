//! The connector registry: every loaded connector version by name, where it
//! came from, how far it is released (`release.rs`) and how a connection's
//! `version` resolves (`resolve.rs`). Versions are immutable once
//! registered. A newer upload is picked up by the next delivery that
//! resolves to it; an attempt already running holds its own
//! `LoadedConnector` and finishes on the version it started.

mod release;
mod resolve;

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use semver::Version;
use serde::Serialize;

use crate::runtime::LoadedConnector;
pub use release::{Capabilities, Release, VersionState, bucket};
use resolve::Versions;
pub use resolve::{Pin, Resolved};

/// Where the blocked versions are recorded, in the uploads directory.
const BLOCKED_FILE: &str = "blocked.json";
/// Where the operators' release decisions are recorded, beside it.
const RELEASES_FILE: &str = "releases.json";

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
    /// Kept apart from the entries: a decision may precede the version's
    /// arrival on this node, and outlives a reload of the same version.
    releases: RwLock<HashMap<(String, Version), Release>>,
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

    /// The version `pin` (`latest`, exact, or a requirement) resolves to
    /// for no connection in particular: what the API shows and checks a
    /// rule against. See `resolve.rs`.
    pub fn resolve(&self, name: &str, pin: &str) -> Option<LoadedConnector> {
        let pin = Pin::parse(pin).ok()?;
        self.with_versions(name, |vs| vs.resolve(&pin, None, &|_| true)).flatten().map(|r| r.connector)
    }

    /// The version `connection` runs when its `pin` is resolved now, taking
    /// rollout shares and `fits` (does this version accept what the
    /// connection and delivery hold?) into account.
    pub fn resolve_for(
        &self,
        name: &str,
        pin: &str,
        connection: &str,
        fits: &dyn Fn(&LoadedConnector) -> bool,
    ) -> Option<Resolved> {
        let pin = Pin::parse(pin).ok()?;
        self.with_versions(name, |vs| vs.resolve(&pin, Some(connection), fits)).flatten()
    }

    /// Where `name@version` stands; `None` when there is no such version.
    pub fn state(&self, name: &str, version: &str) -> Option<VersionState> {
        let v = Version::parse(version).ok()?;
        self.with_versions(name, |vs| {
            let entry = vs.entries.get(&v)?;
            let release = (vs.release)(&v);
            Some(if release.rolled_back && entry.blocked {
                VersionState::RolledBack
            } else if entry.blocked {
                VersionState::Blocked
            } else if vs.pending().contains(&v) {
                VersionState::PendingApproval
            } else if release.rollout.is_some_and(|p| p < 100) {
                VersionState::RollingOut
            } else {
                VersionState::Live
            })
        })
        .flatten()
    }

    /// What `name@version` asks for beyond the version before it.
    pub fn widened(&self, name: &str, version: &str) -> Capabilities {
        let Ok(v) = Version::parse(version) else { return Capabilities::default() };
        self.with_versions(name, |vs| vs.widened(&v)).unwrap_or_default()
    }

    pub fn release(&self, name: &str, version: &str) -> Release {
        let Ok(v) = Version::parse(version) else { return Release::default() };
        self.releases.read().unwrap_or_else(|p| p.into_inner()).get(&(name.to_string(), v)).copied().unwrap_or_default()
    }

    /// Change the release of `name@version` (registered or about to be:
    /// an upload decides its rollout before it goes live); false when
    /// `version` is not semver.
    pub fn set_release(&self, name: &str, version: &str, change: impl FnOnce(&mut Release)) -> bool {
        let Ok(v) = Version::parse(version) else { return false };
        let mut releases = self.releases.write().unwrap_or_else(|p| p.into_inner());
        change(releases.entry((name.to_string(), v)).or_default());
        true
    }

    /// Every release decision, as `name@version` → release.
    pub fn releases(&self) -> BTreeMap<String, Release> {
        let releases = self.releases.read().unwrap_or_else(|p| p.into_inner());
        releases.iter().filter(|(_, r)| **r != Release::default()).map(|((n, v), r)| (format!("{n}@{v}"), *r)).collect()
    }

    /// Take `releases` (from [`Registry::releases`], another node or disk) as the truth.
    pub fn apply_releases(&self, releases: &BTreeMap<String, Release>) {
        let mut all = self.releases.write().unwrap_or_else(|p| p.into_inner());
        all.clear();
        for (key, release) in releases {
            if let Some((name, version)) = key.split_once('@')
                && let Ok(v) = Version::parse(version)
            {
                all.insert((name.to_string(), v), *release);
            }
        }
    }

    /// Record the release decisions in `dir` (see [`Registry::save_blocked`]).
    pub async fn save_releases(&self, dir: &std::path::Path) -> std::io::Result<()> {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(dir.join(RELEASES_FILE), serde_json::to_vec(&self.releases()).unwrap_or_default()).await
    }

    pub async fn load_releases(&self, dir: &std::path::Path) {
        let Ok(text) = tokio::fs::read_to_string(dir.join(RELEASES_FILE)).await else { return };
        match serde_json::from_str::<BTreeMap<String, Release>>(&text) {
            Ok(releases) => self.apply_releases(&releases),
            Err(e) => tracing::warn!(error = %e, "ignoring an unreadable {RELEASES_FILE}"),
        }
    }

    fn with_versions<T>(&self, name: &str, f: impl FnOnce(&Versions<'_>) -> T) -> Option<T> {
        let all = self.connectors.read().unwrap_or_else(|p| p.into_inner());
        let releases = self.releases.read().unwrap_or_else(|p| p.into_inner());
        let entries = all.get(name)?;
        let release = |v: &Version| releases.get(&(name.to_string(), v.clone())).copied().unwrap_or_default();
        Some(f(&Versions { entries, release: &release }))
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
