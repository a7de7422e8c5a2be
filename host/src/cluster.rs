//! A node in step with the others on a store they share. Connector versions
//! uploaded to any node and blocks set on any node are kept in the store
//! (`ops::connectors` writes them there); every node reads them back every
//! [`FOLLOW_INTERVAL`], loads the versions it lacks (compiled once per
//! content hash, cached in its own artifacts dir), drops the ones removed
//! elsewhere and applies the blocks. On a store only this node uses there
//! is nothing to follow. Every [`REPLAY_EVERY`] turns it also takes over
//! replay jobs whose node stopped running them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::registry::{Entry, Origin};
use crate::store::{SharedRegistry, StoreError};

/// How often a node reads the shared registry: a block or an upload on one
/// node holds on every node within this, plus the time to compile a new
/// component.
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// Turns of [`follow`] between looks for abandoned replay jobs.
const REPLAY_EVERY: u32 = 10;

/// Follow the shared registry until `stop`; returns at once on a store no
/// other node shares.
pub async fn follow(app: Arc<App>, stop: CancellationToken) {
    for turn in 1u32.. {
        match sync(&app).await {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => tracing::warn!(error = %e, "reading the shared connector registry"),
        }
        if turn % REPLAY_EVERY == 0 {
            crate::ops::replay::resume(&app).await;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
    }
}

/// Bring this node's registry in step with the shared one, once. False when
/// the store is not shared.
pub async fn sync(app: &App) -> Result<bool, StoreError> {
    let Some(shared) = app.store().shared_registry().await? else { return Ok(false) };
    load_uploaded(app, &shared).await?;
    drop_removed(app, &shared);
    apply_blocks(app, &shared);
    app.registry().apply_releases(&shared.releases);
    Ok(true)
}

/// Load every shared version this node does not have with the same content.
async fn load_uploaded(app: &App, shared: &SharedRegistry) -> Result<(), StoreError> {
    for v in &shared.uploaded {
        if app.registry().resolve(&v.name, &v.version).is_some_and(|c| c.sha256() == v.sha256) {
            continue;
        }
        let Some(bytes) = app.store().shared_component(&v.name, &v.version).await? else { continue };
        match app.runtime().load_cached(&bytes, &app.artifacts_dir()).await {
            Ok((connector, compiled)) => {
                app.registry().replace(Entry { connector, origin: Origin::Uploaded, compiled, blocked: false });
                tracing::info!(connector = %v.name, version = %v.version, compiled, "connector version from the cluster");
            }
            // It loaded on the node it was uploaded to; this one may differ
            // (sandbox limits): say so, and keep serving what it has.
            Err(e) => {
                tracing::warn!(connector = %v.name, version = %v.version, error = %e, "cluster connector refused")
            }
        }
    }
    Ok(())
}

/// Drop uploaded versions another node removed.
fn drop_removed(app: &App, shared: &SharedRegistry) {
    let kept: HashSet<(&str, &str)> = shared.uploaded.iter().map(|v| (v.name.as_str(), v.version.as_str())).collect();
    for (name, versions) in app.registry().list() {
        for e in versions.iter().filter(|e| e.origin == Origin::Uploaded) {
            let version = &e.connector.manifest().version;
            if !kept.contains(&(name.as_str(), version.as_str())) {
                app.registry().remove(&name, version);
                tracing::info!(connector = %name, %version, "connector version removed by the cluster");
            }
        }
    }
}

fn apply_blocks(app: &App, shared: &SharedRegistry) {
    let blocked: HashSet<(&str, &str)> = shared.blocked.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    for (name, versions) in app.registry().list() {
        for e in &versions {
            let version = &e.connector.manifest().version;
            let wanted = blocked.contains(&(name.as_str(), version.as_str()));
            if e.blocked != wanted {
                app.registry().set_blocked(&name, version, wanted);
            }
        }
    }
}
