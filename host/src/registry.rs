//! The connector registry: every loaded connector version by name, and how a
//! connection's `version` (`latest` or exact) resolves to one. Versions are
//! immutable once registered; a newer one is picked up by the next delivery.

use std::collections::BTreeMap;
use std::sync::RwLock;

use semver::Version;

use crate::runtime::LoadedConnector;

#[derive(Debug, Default)]
pub struct Registry {
    connectors: RwLock<BTreeMap<String, BTreeMap<Version, LoadedConnector>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("connector `{name}` already has version {existing}; a new version must be greater")]
    NotGreater { name: String, existing: String },
    #[error("version `{0}` is not semver")]
    BadVersion(String),
}

impl Registry {
    pub fn register(&self, connector: LoadedConnector) -> Result<(), RegistryError> {
        let m = connector.manifest();
        let version = Version::parse(&m.version).map_err(|_| RegistryError::BadVersion(m.version.clone()))?;
        let mut all = self.connectors.write().unwrap_or_else(|p| p.into_inner());
        let versions = all.entry(m.name.clone()).or_default();
        if let Some((latest, _)) = versions.last_key_value()
            && *latest >= version
        {
            return Err(RegistryError::NotGreater { name: m.name.clone(), existing: latest.to_string() });
        }
        versions.insert(version, connector);
        Ok(())
    }

    /// `version` is `latest` or an exact semver version.
    pub fn resolve(&self, name: &str, version: &str) -> Option<LoadedConnector> {
        let all = self.connectors.read().unwrap_or_else(|p| p.into_inner());
        let versions = all.get(name)?;
        if version == "latest" {
            return versions.last_key_value().map(|(_, c)| c.clone());
        }
        versions.get(&Version::parse(version).ok()?).cloned()
    }

    /// Every connector with its versions, oldest first.
    pub fn list(&self) -> Vec<(String, Vec<LoadedConnector>)> {
        let all = self.connectors.read().unwrap_or_else(|p| p.into_inner());
        all.iter().map(|(name, vs)| (name.clone(), vs.values().cloned().collect())).collect()
    }
}
