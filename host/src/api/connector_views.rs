//! What the connector registry API answers: connectors, their versions and
//! release state, uploads with their compatibility report, blocks, and a
//! workspace's connectors in use.

use serde::Serialize;

use crate::model::{Connection, InactiveReason};
use crate::ops::connectors::Uploaded;
use crate::ops::releases::{Compatibility, ReleaseStatus};
use crate::registry::{Entry, Origin, Resolved};
use crate::runtime::ConnectorManifest as Manifest;

/// A connector in the registry: its versions, oldest first, and the newest.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectorView {
    pub name: String,
    pub versions: Vec<String>,
    pub latest: Option<String>,
    pub manifest: Option<Manifest>,
}

impl ConnectorView {
    pub fn new(name: &str, versions: &[Entry]) -> Self {
        let latest = versions.last().map(|e| e.connector.manifest().clone());
        ConnectorView {
            name: name.to_string(),
            versions: versions.iter().map(|e| e.connector.manifest().version.clone()).collect(),
            latest: latest.as_ref().map(|m| m.version.clone()),
            manifest: latest,
        }
    }
}

/// One version of a connector: where it came from, where it stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    /// `name`, `version`, `state`, `widened`, `approved`, `rollout_percent`.
    #[serde(flatten)]
    pub release: ReleaseStatus,
    pub origin: Origin,
    pub blocked: bool,
    /// SHA-256 (hex) of the component: what attempts record as `component_sha256`.
    pub component_sha256: String,
    /// `compiled` at load, or `cached` from an earlier compilation.
    pub artifact: &'static str,
    pub manifest: Manifest,
}

impl VersionView {
    pub fn new(e: &Entry, release: ReleaseStatus) -> Self {
        let manifest = e.connector.manifest().clone();
        VersionView {
            origin: e.origin,
            blocked: e.blocked,
            release,
            component_sha256: e.connector.sha256().to_string(),
            artifact: if e.compiled { "compiled" } else { "cached" },
            manifest,
        }
    }
}

/// An upload's answer: the version, where it stands (live, waiting for
/// approval, rolling out) and what it refuses of what exists.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadedView {
    #[serde(flatten)]
    pub release: ReleaseStatus,
    pub manifest: Manifest,
    pub compatibility: Compatibility,
}

impl From<Uploaded> for UploadedView {
    fn from(u: Uploaded) -> Self {
        UploadedView { release: u.status, manifest: u.manifest, compatibility: u.compatibility }
    }
}

/// A block or an unblock, with the connections it paused or resumed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlockView {
    pub name: String,
    pub version: String,
    pub blocked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_connections: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_connections: Option<Vec<String>>,
}

/// A workspace's connections of one connector.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnabledConnector {
    pub connector: String,
    pub connections: Vec<EnabledConnection>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnabledConnection {
    pub connection: String,
    pub name: String,
    pub version: String,
    /// The version `version` resolves to now; none when it is gone.
    pub resolved_version: Option<String>,
    /// A newer version this connection would run but whose settings schema
    /// refuses its settings: it is held back on `resolved_version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back_from: Option<String>,
    pub active: bool,
    pub inactive_reason: Option<EnabledReason>,
}

/// Why an enabled connection does not deliver: its own reason, or that the
/// version it names no longer resolves.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EnabledReason {
    Connection(InactiveReason),
    /// `connector_version_missing`.
    Missing(&'static str),
}

impl EnabledConnection {
    pub fn new(c: &Connection, resolved: Option<Resolved>) -> Self {
        let resolved_version = resolved.as_ref().map(|r| r.connector.manifest().version.clone());
        let inactive_reason = match &resolved_version {
            None => Some(EnabledReason::Missing("connector_version_missing")),
            Some(_) => c.inactive_reason.map(EnabledReason::Connection),
        };
        EnabledConnection {
            connection: c.id.clone(),
            name: c.name.clone(),
            version: c.version.clone(),
            active: c.active && resolved_version.is_some(),
            resolved_version,
            held_back_from: resolved.and_then(|r| r.held_back_from),
            inactive_reason,
        }
    }
}
