//! Releasing a connector version beyond registering it: what an upload
//! would refuse among existing connections and rules (the compatibility
//! report), an admin's approval of wider capabilities, staged rollout to a
//! share of the connections following `latest`, and the automatic rollback
//! of a version that fails more than the one before it.
//!
//! Release decisions outlive restarts (`releases.json` beside the uploads)
//! and, on a shared store, reach every node.

use serde::Serialize;

use super::{OpError, Result, connections};
use crate::app::App;
use crate::registry::{Capabilities, Pin, Release, VersionState};
use crate::store::Page;
use crate::validation::{self, SchemaError};

/// What a new version means for what already exists.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Compatibility {
    /// Connections whose settings or secrets the version refuses.
    pub refused_connections: Vec<RefusedConnection>,
    /// Rules whose action or fields the version refuses.
    pub refused_rules: Vec<RefusedRule>,
    /// Connections following `latest` (or a requirement the version meets)
    /// that stay on the version they run, wholly (their settings are
    /// refused) or for the refused rules' deliveries.
    pub held_back: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefusedConnection {
    pub workspace: String,
    pub connection: String,
    /// The connection's `version`: `latest`, exact, or a requirement.
    pub version: String,
    pub errors: Vec<SchemaError>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefusedRule {
    pub workspace: String,
    pub rule: String,
    pub connection: String,
    pub errors: Vec<SchemaError>,
}

/// Where a version stands after a release decision.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReleaseStatus {
    pub name: String,
    pub version: String,
    pub state: VersionState,
    /// What it asks for beyond the version before it (hosts, secret names).
    pub widened: Capabilities,
    pub approved: bool,
    /// The share of `latest` connections it serves, while in staged rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_percent: Option<u8>,
}

pub fn status(app: &App, name: &str, version: &str) -> Result<ReleaseStatus> {
    let state = app
        .registry()
        .state(name, version)
        .ok_or_else(|| OpError::not_found("connector version", format!("{name}@{version}")))?;
    let release = app.registry().release(name, version);
    Ok(ReleaseStatus {
        name: name.to_string(),
        version: version.to_string(),
        state,
        widened: app.registry().widened(name, version),
        approved: release.approved,
        rollout_percent: release.rollout,
    })
}

/// What `name@version` refuses among the connections and rules of every workspace.
pub async fn compatibility(app: &App, name: &str, version: &str) -> Result<Compatibility> {
    // An exact version resolves whatever its state.
    let connector = app
        .registry()
        .resolve(name, version)
        .ok_or_else(|| OpError::not_found("connector version", format!("{name}@{version}")))?;
    let semver = semver::Version::parse(version).map_err(|e| OpError::Refused(e.to_string()))?;
    let mut report = Compatibility::default();
    let everything = Page { cursor: None, limit: usize::MAX };
    for c in connections::everywhere(app).await?.into_iter().filter(|c| c.connector == name) {
        let follows = match Pin::parse(&c.version) {
            Ok(Pin::Latest) => true,
            Ok(Pin::Matching(req)) => req.matches(&semver),
            _ => false,
        };
        let errors = validation::connection(&connector, &c.settings, &c.secret_names);
        let mut held = !errors.is_empty();
        if !errors.is_empty() {
            report.refused_connections.push(RefusedConnection {
                workspace: c.workspace.clone(),
                connection: c.id.clone(),
                version: c.version.clone(),
                errors,
            });
        }
        for r in app.store().rules(&c.workspace, &everything).await?.into_iter().filter(|r| r.connection == c.id) {
            let errors = validation::rule(&connector, &r.action, &r.fields);
            if !errors.is_empty() {
                held = true;
                report.refused_rules.push(RefusedRule {
                    workspace: r.workspace,
                    rule: r.id,
                    connection: c.id.clone(),
                    errors,
                });
            }
        }
        if held && follows {
            report.held_back.push(c.id);
        }
    }
    Ok(report)
}

/// An admin approves what `name@version` asks for beyond the version before it.
pub async fn approve(app: &App, name: &str, version: &str) -> Result<ReleaseStatus> {
    change(app, name, version, |r| r.approved = true).await?;
    tracing::info!(connector = %name, %version, "connector version approved");
    status(app, name, version)
}

/// Serve `name@version` to `percent` of the connections following `latest`
/// (100: to all of them, still watched for rollback).
pub async fn rollout(app: &App, name: &str, version: &str, percent: u8) -> Result<ReleaseStatus> {
    if percent > 100 {
        return Err(OpError::Invalid { field: "percent".into(), message: "must be between 0 and 100".into() });
    }
    if app.registry().is_blocked(name, version) {
        return Err(OpError::Conflict(format!("{name}@{version} is blocked; unblock it before rolling it out")));
    }
    change(app, name, version, |r| r.rollout = Some(percent)).await?;
    app.rollout.started(name);
    tracing::info!(connector = %name, %version, percent, "connector version rolling out");
    status(app, name, version)
}

/// Record a release decision here, on disk and for the other nodes.
pub(crate) async fn change(app: &App, name: &str, version: &str, f: impl FnOnce(&mut Release)) -> Result<()> {
    if app.registry().state(name, version).is_none() {
        return Err(OpError::not_found("connector version", format!("{name}@{version}")));
    }
    record(app, name, version, f).await
}

/// [`change`] for a version that need not be registered yet.
pub(crate) async fn record(app: &App, name: &str, version: &str, f: impl FnOnce(&mut Release)) -> Result<()> {
    if !app.registry().set_release(name, version, f) {
        return Err(OpError::Refused(format!("version `{version}` is not semver")));
    }
    app.store().share_release(name, version, &app.registry().release(name, version)).await?;
    app.registry()
        .save_releases(&app.uploads_dir())
        .await
        .map_err(|source| OpError::Disk { what: "the release decision", source })
}
