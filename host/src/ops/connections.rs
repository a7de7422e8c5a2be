//! Connection state: pausing and resuming. A connection is paused by the
//! API (`active: false`), by the worker when the destination refuses its
//! credentials, or by blocking the version it is pinned to; its deliveries
//! then wait. Resuming queues them again. Every change re-reads the record
//! and sets `updated_at`, so the writers cannot undo each other's fields.

use super::{OpError, Result};
use crate::app::App;
use crate::model::{Connection, InactiveReason, now_ms};

/// Pause the connection for `reason`; false when it was already paused.
/// An automatic pause keeps the first reason (that is what needs fixing);
/// an operator's disable replaces it, as what they asked for is what shows.
pub async fn pause(app: &App, workspace: &str, id: &str, reason: InactiveReason) -> Result<bool> {
    let mut c = load(app, workspace, id).await?;
    let disables = reason == InactiveReason::Disabled && c.inactive_reason != Some(InactiveReason::Disabled);
    if !c.active && !disables {
        return Ok(false);
    }
    c.active = false;
    c.inactive_reason = Some(reason);
    c.updated_at = now_ms();
    app.store.put_connection(&c).await?;
    app.rules_changed(workspace);
    tracing::warn!(connection = %id, ?reason, "connection paused until it is fixed");
    Ok(true)
}

/// Resume a paused connection and queue again every delivery that waited
/// for it; false when it was active already.
pub async fn resume(app: &App, workspace: &str, id: &str) -> Result<bool> {
    let mut c = load(app, workspace, id).await?;
    if c.active {
        return Ok(false);
    }
    c.active = true;
    c.inactive_reason = None;
    c.updated_at = now_ms();
    app.store.put_connection(&c).await?;
    app.rules_changed(workspace);
    resume_waiting(app, id).await?;
    Ok(true)
}

/// Queue again every delivery that waited for this connection.
async fn resume_waiting(app: &App, connection: &str) -> Result<usize> {
    let now = now_ms();
    let waiting = app.store.waiting(connection).await?;
    for delivery in &waiting {
        app.store.requeue(delivery, now, now).await?;
    }
    app.wake.notify_one();
    Ok(waiting.len())
}

pub async fn load(app: &App, workspace: &str, id: &str) -> Result<Connection> {
    app.store.connection(workspace, id).await?.ok_or_else(|| OpError::not_found("connection", id))
}

/// Every connection of every workspace (for operations across tenants,
/// such as blocking a connector version).
pub async fn everywhere(app: &App) -> Result<Vec<Connection>> {
    let everything = crate::store::Page { cursor: None, limit: usize::MAX };
    let mut out = Vec::new();
    for ws in app.store.workspaces(&everything).await? {
        out.extend(app.store.connections(&ws.id, &everything).await?);
    }
    Ok(out)
}
