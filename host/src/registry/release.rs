//! How far a version is released, beyond being registered: approved by an
//! admin when it asks for more than the version before it, rolled out to a
//! share of the connections following `latest`, rolled back automatically.
//! Also what a version asks for ([`Capabilities`]) and which share of
//! connections a connection falls in ([`bucket`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::runtime::ConnectorManifest;

/// An operator's decisions about one version. The default is a version
/// released to everyone, nothing decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Release {
    /// An admin approved its wider capabilities.
    pub approved: bool,
    /// In staged rollout to this percentage of the connections following
    /// `latest`; `None` when released to all of them.
    pub rollout: Option<u8>,
    /// Blocked automatically when its failure ratio rose during rollout.
    pub rolled_back: bool,
}

/// Where a version stands, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Serving every connection that resolves to it.
    Live,
    /// Asks for more hosts or secrets than the version before it: the
    /// connections following `latest` stay where they are until an admin
    /// approves it.
    PendingApproval,
    /// Serving its share of the connections following `latest`.
    RollingOut,
    /// Blocked by an operator.
    Blocked,
    /// Blocked automatically: it failed more than the version before it.
    RolledBack,
}

/// What a version may reach: hosts and secret names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Capabilities {
    pub hosts: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

impl Capabilities {
    pub fn of(m: &ConnectorManifest) -> Self {
        Capabilities {
            hosts: m.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            secrets: m.secrets.iter().map(|s| s.name.clone()).collect(),
        }
    }

    /// What `self` asks for that `before` did not; empty when nothing.
    /// A host `before` already covered with `*` is not new.
    pub fn beyond(&self, before: &Capabilities) -> Capabilities {
        let any_host = before.hosts.contains("*");
        Capabilities {
            hosts: self.hosts.iter().filter(|h| !any_host && !before.hosts.contains(*h)).cloned().collect(),
            secrets: self.secrets.difference(&before.secrets).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.secrets.is_empty()
    }
}

/// The connection's place, 0..100, in every staged rollout: stable for an
/// id on every node and across restarts, spread evenly over ids.
pub fn bucket(connection: &str) -> u8 {
    let digest = Sha256::digest(connection.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    (n % 100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("conn_a"), bucket("conn_a"));
        let under_half = (0..1000).filter(|i| bucket(&format!("conn_{i}")) < 50).count();
        assert!((430..570).contains(&under_half), "{under_half} of 1000 under 50");
    }

    #[test]
    fn capabilities_beyond_name_only_what_is_new() {
        let caps = |hosts: &[&str], secrets: &[&str]| Capabilities {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
        };
        let before = caps(&["api.a.com"], &["token"]);
        assert!(caps(&["api.a.com"], &["token"]).beyond(&before).is_empty());
        let wider = caps(&["api.a.com", "evil.com"], &["token", "key"]).beyond(&before);
        assert_eq!(wider, caps(&["evil.com"], &["key"]));
        assert!(caps(&["x.com"], &[]).beyond(&caps(&["*"], &[])).is_empty());
    }
}
