//! Connector versions across the installation: uploading one (checked in
//! the sandbox before anything is kept, and only greater than the newest),
//! removing one no connection pins, blocking one (the connections pinned
//! to it pause, `latest` falls back to the newest unblocked version) and
//! unblocking it. Uploads and blocks outlive restarts (kept on disk).
//! What a version means for existing connections, approval and rollout
//! are in `releases.rs`.

use super::{OpError, Result, connections, releases};
use crate::app::App;
use crate::model::InactiveReason;
use crate::registry::{Entry, Origin, RegistryError};
use crate::runtime::ConnectorManifest;
use crate::store::SharedVersion;
use crate::time::now_ms;

/// A version uploaded: what it is, where it stands, what it refuses.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub manifest: ConnectorManifest,
    pub status: releases::ReleaseStatus,
    pub compatibility: releases::Compatibility,
}

/// Check `bytes` as connector `name` and make it its newest version: live
/// at once for the connections it fits, unless it asks for more than the
/// version before it (then it waits for approval) or `rollout` gives it
/// only a share of them.
pub async fn upload(app: &App, name: &str, bytes: &[u8], rollout: Option<u8>) -> Result<Uploaded> {
    if rollout.is_some_and(|p| p > 100) {
        return Err(OpError::Invalid { field: "rollout".into(), message: "must be between 0 and 100".into() });
    }
    let (connector, compiled) =
        app.runtime().load_cached(bytes, &app.artifacts_dir()).await.map_err(|e| OpError::Refused(e.to_string()))?;
    let m = connector.manifest().clone();
    if m.name != name {
        return Err(OpError::Refused(format!("the component describes itself as `{}`, not `{name}`", m.name)));
    }
    // Check before writing anything; `register` checks again under its lock.
    if let Some(latest) =
        app.registry().list().into_iter().find(|(n, _)| n == name).and_then(|(_, v)| v.last().cloned())
    {
        let latest = semver::Version::parse(&latest.connector.manifest().version).ok();
        if latest >= semver::Version::parse(&m.version).ok() {
            let latest = latest.map(|v| v.to_string()).unwrap_or_default();
            return Err(OpError::Conflict(format!(
                "connector `{name}` already has version {latest}; upload a greater version"
            )));
        }
    }
    let dir = app.uploads_dir();
    let file = dir.join(format!("{name}-{}.wasm", m.version));
    let stored = match tokio::fs::create_dir_all(&dir).await {
        Ok(()) => tokio::fs::write(&file, bytes).await,
        Err(e) => Err(e),
    };
    stored.map_err(|source| OpError::Disk { what: "the component", source })?;
    // Offered to the other nodes before it is live here: a version some
    // node serves is one every node can load.
    let shared =
        SharedVersion { name: name.to_string(), version: m.version.clone(), sha256: connector.sha256().into() };
    app.store().share_component(&shared, bytes, now_ms()).await?;
    if let Some(percent) = rollout {
        // Decided before the version is live, so no delivery runs it outside its share.
        releases::record(app, name, &m.version, |r| r.rollout = Some(percent)).await?;
        app.rollout.started(name);
    }
    match app.registry().register(Entry { connector, origin: Origin::Uploaded, compiled, blocked: false }) {
        Ok(()) => {}
        Err(RegistryError::NotGreater { existing, .. }) => {
            let _ = tokio::fs::remove_file(&file).await;
            app.store().unshare_component(name, &m.version).await?;
            return Err(OpError::Conflict(format!("connector `{name}` already has version {existing}")));
        }
        Err(e) => return Err(OpError::Refused(e.to_string())),
    }
    let status = releases::status(app, name, &m.version)?;
    let compatibility = releases::compatibility(app, name, &m.version).await?;
    tracing::info!(
        connector = %name, version = %m.version, state = ?status.state, held_back = compatibility.held_back.len(),
        "connector version uploaded"
    );
    Ok(Uploaded { manifest: m, status, compatibility })
}

/// Remove `name@version` unless a connection pins it exactly.
pub async fn remove(app: &App, name: &str, version: &str) -> Result<()> {
    if app.registry().resolve(name, version).is_none() {
        return Err(OpError::not_found("connector version", format!("{name}@{version}")));
    }
    let pinned: Vec<String> = connections::everywhere(app)
        .await?
        .into_iter()
        .filter(|c| c.connector == name && c.version == version)
        .map(|c| c.id)
        .collect();
    if !pinned.is_empty() {
        return Err(OpError::Conflict(format!("connections pin {name}@{version}: {}", pinned.join(", "))));
    }
    app.store().unshare_component(name, version).await?;
    if let Some(entry) = app.registry().remove(name, version)
        && entry.origin == Origin::Uploaded
    {
        let _ = tokio::fs::remove_file(app.uploads_dir().join(format!("{name}-{version}.wasm"))).await;
    }
    Ok(())
}

/// Block `name@version`; returns the connections paused.
pub async fn block(app: &App, name: &str, version: &str) -> Result<Vec<String>> {
    set_blocked(app, name, version, true).await?;
    let mut paused = Vec::new();
    for c in connections::everywhere(app).await? {
        if c.connector == name
            && c.version == version
            && connections::pause(app, &c.workspace, &c.id, InactiveReason::ConnectorVersionBlocked).await?
        {
            paused.push(c.id);
        }
    }
    tracing::warn!(connector = %name, %version, paused = paused.len(), "connector version blocked");
    Ok(paused)
}

/// Unblock `name@version`; returns the connections resumed (those of the
/// connector paused by a block).
pub async fn unblock(app: &App, name: &str, version: &str) -> Result<Vec<String>> {
    set_blocked(app, name, version, false).await?;
    if app.registry().release(name, version).rolled_back {
        // Unblocked by an operator: watched afresh if still in rollout.
        releases::change(app, name, version, |r| r.rolled_back = false).await?;
        app.rollout.started(name);
    }
    let mut resumed = Vec::new();
    for c in connections::everywhere(app).await? {
        if c.connector == name
            && c.inactive_reason == Some(InactiveReason::ConnectorVersionBlocked)
            && connections::resume(app, &c.workspace, &c.id).await?
        {
            resumed.push(c.id);
        }
    }
    Ok(resumed)
}

/// Mark the version in the registry, for the other nodes in the store, and
/// record every block on disk.
async fn set_blocked(app: &App, name: &str, version: &str, blocked: bool) -> Result<()> {
    if !app.registry().set_blocked(name, version, blocked) {
        return Err(OpError::not_found("connector version", format!("{name}@{version}")));
    }
    app.store().share_block(name, version, blocked).await?;
    app.registry().save_blocked(&app.uploads_dir()).await.map_err(|source| OpError::Disk { what: "the block", source })
}
