//! Connector versions across the installation: blocking one pauses the
//! connections pinned to it (`latest` falls back to the newest unblocked
//! version), unblocking resumes them. Blocks outlive restarts (the registry
//! records them on disk).

use super::{OpError, Result, connections};
use crate::app::App;
use crate::model::InactiveReason;

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

/// Mark the version in the registry and record every block on disk.
async fn set_blocked(app: &App, name: &str, version: &str, blocked: bool) -> Result<()> {
    if !app.registry().set_blocked(name, version, blocked) {
        return Err(OpError::not_found("connector version", format!("{name}@{version}")));
    }
    app.registry().save_blocked(&app.uploads_dir()).await.map_err(|source| OpError::Disk { what: "the block", source })
}
