//! Connections: creating, changing and removing them, pausing and resuming.
//! Secrets are sealed with the master key before they are stored and are
//! checked against the connector (names it takes, required ones, length)
//! and its `validate` before anything is saved.
//!
//! A connection is paused by the API (`active: false`), by the worker when
//! the destination refuses its credentials, or by blocking the version it
//! is pinned to; its deliveries then wait. Resuming queues them again. Every
//! change re-reads the record and sets `updated_at`, so the writers cannot
//! undo each other's fields.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{OpError, Result};
use crate::app::App;
use crate::model::{Connection, InactiveReason, new_id, now_ms};
use crate::runtime::{LoadedConnector, ValidateError};
use crate::secrets::MIN_SECRET_BYTES;

/// The longest secret value a connection may hold (scrubbing cost grows with it).
pub const MAX_SECRET_BYTES: usize = 16 << 10;

/// A connection to create (its bounds on names and numbers already checked).
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub connector: String,
    /// `latest`, an exact version, or a semver requirement (`^1.2`).
    pub version: String,
    pub name: String,
    pub settings: Value,
    pub secrets: BTreeMap<String, String>,
    pub rate_limit_per_second: Option<f64>,
    pub concurrency: Option<u32>,
}

/// A change to a connection: `None` leaves a field as it is; a secret set
/// to `None` is removed.
#[derive(Debug, Clone, Default)]
pub struct ConnectionChange {
    pub name: Option<String>,
    pub version: Option<String>,
    pub settings: Option<Value>,
    pub secrets: BTreeMap<String, Option<String>>,
    pub active: Option<bool>,
    pub rate_limit_per_second: Option<f64>,
    pub concurrency: Option<u32>,
}

pub async fn create(app: &App, workspace: &str, new: NewConnection) -> Result<Connection> {
    if app.store().workspace(workspace).await?.is_none() {
        return Err(OpError::not_found("workspace", workspace));
    }
    let connector = resolve(app, &new.connector, &new.version)?;
    check(app, &connector, &new.settings, &new.secrets).await?;
    check_secret_lengths(&new.secrets)?;
    let now = now_ms();
    let id = new_id("conn_");
    let connection = Connection {
        sealed_secrets: app.master_key().seal(&new.secrets, &id),
        id,
        workspace: workspace.to_string(),
        name: new.name,
        connector: new.connector,
        version: new.version,
        settings: new.settings,
        secret_names: new.secrets.keys().cloned().collect(),
        active: true,
        inactive_reason: None,
        rate_limit_per_second: new.rate_limit_per_second,
        concurrency: new.concurrency,
        created_at: now,
        updated_at: now,
    };
    app.store().put_connection(&connection).await?;
    Ok(connection)
}

/// Apply `change`; new credentials (or `active: true`) resume a paused
/// connection, `active: false` pauses it.
pub async fn update(app: &App, workspace: &str, id: &str, change: ConnectionChange) -> Result<Connection> {
    let mut c = load(app, workspace, id).await?;
    let mut secrets = app.master_key().open(&c.sealed_secrets, &c.id).map_err(|e| OpError::Sealed(e.to_string()))?;
    let secrets_changed = !change.secrets.is_empty();
    let saved: Vec<String> = change.secrets.iter().filter(|(_, v)| v.is_some()).map(|(n, _)| n.clone()).collect();
    for (name, value) in change.secrets {
        match value {
            Some(v) => secrets.insert(name, v),
            None => secrets.remove(&name),
        };
    }
    if let Some(v) = change.version {
        c.version = v;
    }
    if let Some(s) = change.settings {
        c.settings = s;
    }
    let connector = resolve(app, &c.connector, &c.version)?;
    check(app, &connector, &c.settings, &secrets).await?;
    // Values already stored are not re-checked, so a connection saved
    // before these rules can still be renamed or paused.
    check_secret_lengths(saved.iter().filter_map(|name| secrets.get_key_value(name)))?;
    if let Some(n) = change.name {
        c.name = n;
    }
    if change.rate_limit_per_second.is_some() {
        c.rate_limit_per_second = change.rate_limit_per_second;
    }
    if change.concurrency.is_some() {
        c.concurrency = change.concurrency;
    }
    c.sealed_secrets = app.master_key().seal(&secrets, &c.id);
    c.secret_names = secrets.keys().cloned().collect();
    c.updated_at = now_ms();
    app.store().put_connection(&c).await?;
    app.rules_changed(workspace);
    if change.active == Some(true) || (secrets_changed && change.active.is_none()) {
        resume(app, workspace, id).await?;
    } else if change.active == Some(false) {
        pause(app, workspace, id, InactiveReason::Disabled).await?;
    }
    load(app, workspace, id).await
}

/// Remove a connection; the rules that use it too when `force`, otherwise
/// their existence is a conflict.
pub async fn remove(app: &App, workspace: &str, id: &str, force: bool) -> Result<()> {
    load(app, workspace, id).await?;
    let rules = app.store().rules(workspace, &crate::store::Page { cursor: None, limit: usize::MAX }).await?;
    let using: Vec<_> = rules.into_iter().filter(|r| r.connection == id).collect();
    if !using.is_empty() && !force {
        let ids: Vec<&str> = using.iter().map(|r| r.id.as_str()).collect();
        return Err(OpError::Conflict(format!(
            "rules use this connection: {}; delete them or pass ?force=true",
            ids.join(", ")
        )));
    }
    for r in using {
        app.store().delete_rule(workspace, &r.id).await?;
    }
    app.store().delete_connection(workspace, id).await?;
    app.rules_changed(workspace);
    Ok(())
}

fn resolve(app: &App, connector: &str, version: &str) -> Result<LoadedConnector> {
    if !app.registry().has(connector) {
        return Err(OpError::Refused(format!("unknown connector `{connector}`")));
    }
    if let Err(message) = crate::registry::Pin::parse(version) {
        return Err(OpError::RefusedAt { path: "version".into(), message });
    }
    app.registry()
        .resolve(connector, version)
        .ok_or_else(|| OpError::Refused(format!("connector `{connector}` has no version `{version}`")))
}

/// Secrets being saved are long enough to be scrubbed safely (a short value
/// would also match unrelated text) and short enough to be scrubbed cheaply.
fn check_secret_lengths<'a>(saved: impl IntoIterator<Item = (&'a String, &'a String)>) -> Result<()> {
    for (name, value) in saved {
        let field = format!("secrets.{name}");
        if value.len() < MIN_SECRET_BYTES {
            let message =
                format!("is shorter than {MIN_SECRET_BYTES} bytes; a secret this short cannot be redacted safely");
            return Err(OpError::Invalid { field, message });
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(OpError::Invalid { field, message: format!("is longer than {MAX_SECRET_BYTES} bytes") });
        }
    }
    Ok(())
}

/// Settings and secrets checked against the connector before anything is saved.
async fn check(
    app: &App,
    connector: &LoadedConnector,
    settings: &Value,
    secrets: &BTreeMap<String, String>,
) -> Result<()> {
    if !settings.is_object() {
        return Err(OpError::Invalid { field: "settings".into(), message: "must be a JSON object".into() });
    }
    let m = connector.manifest();
    for name in secrets.keys() {
        if !m.secrets.iter().any(|s| s.name == *name) {
            let known: Vec<&str> = m.secrets.iter().map(|s| s.name.as_str()).collect();
            let message = format!("connector `{}` has no secret `{name}` (it takes: {})", m.name, known.join(", "));
            return Err(OpError::RefusedAt { path: format!("secrets.{name}"), message });
        }
    }
    for spec in m.secrets.iter().filter(|s| s.required) {
        if !secrets.contains_key(&spec.name) {
            let message = format!("secret `{}` is required: {}", spec.name, spec.description);
            return Err(OpError::RefusedAt { path: format!("secrets.{}", spec.name), message });
        }
    }
    // The declared schema first: its faults come with a path.
    if let Some(e) = crate::validation::settings(connector, settings).into_iter().next() {
        return Err(OpError::RefusedAt { message: format!("`{}` {}", e.path, e.message), path: e.path });
    }
    app.runtime().validate(connector, &settings.to_string()).await.map_err(|e| match e {
        ValidateError::Rejected(message) => OpError::Refused(format!("invalid settings: {message}")),
        ValidateError::Failed(e) => OpError::Refused(format!("the connector failed to validate settings: {e}")),
    })
}

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
    app.store().put_connection(&c).await?;
    app.rules_changed(workspace);
    tracing::warn!(connection = %id, ?reason, "connection paused until it is fixed");
    crate::alerts::connection_paused(app, &c).await;
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
    app.store().put_connection(&c).await?;
    app.rules_changed(workspace);
    resume_waiting(app, id).await?;
    Ok(true)
}

/// Queue again every delivery that waited for this connection.
async fn resume_waiting(app: &App, connection: &str) -> Result<usize> {
    let now = now_ms();
    let waiting = app.store().waiting(connection).await?;
    for delivery in &waiting {
        app.store().requeue(delivery, now, now).await?;
    }
    app.wake().notify_one();
    Ok(waiting.len())
}

pub async fn load(app: &App, workspace: &str, id: &str) -> Result<Connection> {
    app.store().connection(workspace, id).await?.ok_or_else(|| OpError::not_found("connection", id))
}

/// Every connection of every workspace (for operations across tenants,
/// such as blocking a connector version).
pub async fn everywhere(app: &App) -> Result<Vec<Connection>> {
    let everything = crate::store::Page { cursor: None, limit: usize::MAX };
    let mut out = Vec::new();
    for ws in app.store().workspaces(&everything).await? {
        out.extend(app.store().connections(&ws.id, &everything).await?);
    }
    Ok(out)
}
