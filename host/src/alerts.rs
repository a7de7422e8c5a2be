//! Operator alerts: Switchboard's own events about connections, emitted into
//! the workspace `[alerts] workspace` names and routed there by its ordinary
//! rules. When to alert is decided in memory on each node (`window.rs`);
//! emitting plans the event like ingest does and stores it, within a short
//! budget so the worker or the request that paused is never held up long.
//!
//! Loops are bounded: an alert about a connection of the alert workspace
//! itself (its Slack connection failing, say) routes to that connection too,
//! and its failed attempts count again, but the debounce lets at most one
//! event per connection and kind out per window, here and across nodes (each
//! event carries an idempotency key naming its window).

mod window;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::attempt::AttemptRecord;
use crate::keys::hash_key;
use crate::model::Connection;
use crate::outcome::Outcome;
use crate::routing::plan::{NewEvent, plan};
use crate::store::StoreError;
use crate::time::now_ms;
use window::{Counts, Thresholds};

/// How long a caller may wait for an alert to be stored; past it the write
/// goes on in the background and the scheduler finds the delivery at its
/// next poll.
const EMIT_BUDGET: Duration = Duration::from_millis(500);

/// The error text an alert carries at most (it is scrubbed already; this
/// only keeps the event small).
const MAX_ERROR_CHARS: usize = 1000;

/// The kinds of alert; each is debounced on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `switchboard.connection.paused`
    Paused,
    /// `switchboard.connection.failing`
    Failing,
    /// `switchboard.connector.rolled_back`: its subject is a connector
    /// version, not a connection, and it happens once per version.
    RolledBack,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Paused, Kind::Failing, Kind::RolledBack];

    /// The event's name in the alert workspace.
    pub fn event(self) -> &'static str {
        match self {
            Kind::Paused => "switchboard.connection.paused",
            Kind::Failing => "switchboard.connection.failing",
            Kind::RolledBack => "switchboard.connector.rolled_back",
        }
    }
}

/// What an alert is about: its `resource`, `resource_id`, and the key that
/// makes nodes raising the same alert store one event.
struct Subject {
    resource: &'static str,
    id: String,
    idempotency: String,
}

impl Subject {
    fn connection(kind: Kind, c: &Connection, now: i64, window_ms: i64) -> Self {
        let idempotency = format!("switchboard/{}/{}/{}", kind.event(), c.id, now / window_ms);
        Subject { resource: "connection", id: c.id.clone(), idempotency }
    }
}

/// This node's alert state, owned by [`App`]. Each node judges only the
/// attempts it ran and the pauses it made.
#[derive(Debug, Default)]
pub struct Alerts {
    tracker: Mutex<window::Tracker>,
}

impl Alerts {
    /// Never held across an await.
    fn tracker(&self) -> MutexGuard<'_, window::Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
enum AlertError {
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error("the store did not answer within {EMIT_BUDGET:?}")]
    Slow(#[from] tokio::time::error::Elapsed),
    #[error("storing the alert stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A connection was paused (`switchboard.connection.paused`), by a refused
/// credential, a blocked connector version or an operator.
pub async fn connection_paused(app: &App, connection: &Connection) {
    let config = &app.config().alerts;
    let Some(workspace) = config.workspace.as_deref() else { return };
    let now = now_ms();
    let window_ms = Thresholds::from(config).window_ms;
    if !app.alerts.tracker().claim(&connection.id, Kind::Paused, now, window_ms) {
        return;
    }
    let mut payload = about(connection);
    payload.insert("reason".into(), json!(connection.inactive_reason));
    emit(app, workspace, Kind::Paused, Subject::connection(Kind::Paused, connection, now, window_ms), payload, now)
        .await;
}

/// A version in staged rollout failed more than the version before it and
/// was blocked (`switchboard.connector.rolled_back`); `payload` says how.
pub async fn connector_rolled_back(app: &App, connector: &str, version: &str, payload: Map<String, Value>) {
    let Some(workspace) = app.config().alerts.workspace.as_deref() else { return };
    let id = format!("{connector}@{version}");
    let idempotency = format!("switchboard/{}/{id}", Kind::RolledBack.event());
    let subject = Subject { resource: "connector", id, idempotency };
    emit(app, workspace, Kind::RolledBack, subject, payload, now_ms()).await;
}

/// An attempt finished: counts toward the connection's failure ratio
/// (`switchboard.connection.failing`).
pub async fn attempt_finished(app: &App, connection: &Connection, record: &AttemptRecord) {
    let config = &app.config().alerts;
    let Some(workspace) = config.workspace.as_deref() else { return };
    // An interrupted attempt says this process stopped, not that the
    // destination failed: a restart must not raise alerts.
    if record.outcome == Outcome::Interrupted {
        return;
    }
    let now = now_ms();
    let thresholds = Thresholds::from(config);
    let failed = record.outcome != Outcome::Delivered;
    let Some(counts) = app.alerts.tracker().attempt(&connection.id, failed, now, &thresholds) else { return };
    let mut payload = about(connection);
    payload.extend(failing(&counts, &thresholds, record));
    let subject = Subject::connection(Kind::Failing, connection, now, thresholds.window_ms);
    emit(app, workspace, Kind::Failing, subject, payload, now).await;
}

/// What every alert says about the connection: no settings, no secrets.
fn about(c: &Connection) -> Map<String, Value> {
    let about = json!({
        "workspace_id": c.workspace,
        "connection_id": c.id,
        "name": c.name,
        "connector": c.connector,
        "version": c.version,
    });
    let Value::Object(map) = about else { unreachable!("a JSON object literal") };
    map
}

fn failing(counts: &Counts, thresholds: &Thresholds, record: &AttemptRecord) -> Map<String, Value> {
    let last_error = record.error.as_deref().map(|e| e.chars().take(MAX_ERROR_CHARS).collect::<String>());
    let fields = json!({
        "failed": counts.failed,
        "attempts": counts.attempts,
        "ratio": counts.ratio(),
        "window_seconds": thresholds.window_ms / 1000,
        "last_outcome": record.outcome,
        "last_error": last_error,
    });
    let Value::Object(map) = fields else { unreachable!("a JSON object literal") };
    map
}

/// Emit the alert; failures are logged, never the caller's.
async fn emit(app: &App, workspace: &str, kind: Kind, subject: Subject, payload: Map<String, Value>, now: i64) {
    let about = subject.id.clone();
    if let Err(e) = try_emit(app, workspace, kind, subject, payload, now).await {
        tracing::warn!(alert = kind.event(), subject = %about, error = %e, "operator alert");
    }
}

async fn try_emit(
    app: &App,
    workspace: &str,
    kind: Kind,
    subject: Subject,
    payload: Map<String, Value>,
    now: i64,
) -> Result<(), AlertError> {
    let deadline = tokio::time::Instant::now() + EMIT_BUDGET;
    let window_ms = Thresholds::from(&app.config().alerts).window_ms;
    if tokio::time::timeout_at(deadline, app.store().workspace(workspace)).await??.is_none() {
        if app.alerts.tracker().warn_missing_workspace(now, window_ms) {
            tracing::warn!(%workspace, "the [alerts] workspace does not exist; operator alerts are dropped");
        }
        return Ok(());
    }
    let rules = tokio::time::timeout_at(deadline, app.rules_for(workspace)).await??;
    // Nodes that raise the same alert (in the same window) store one event.
    let idempotency = hash_key(&subject.idempotency);
    let event = NewEvent {
        workspace: workspace.to_string(),
        event: kind.event().to_string(),
        resource: subject.resource.into(),
        resource_id: Some(subject.id),
        payload,
        created_by: "switchboard".into(),
        idempotency: Some(idempotency),
    };
    let accept = plan(&rules, event, now);
    // Spawned, so a write that outlasts the budget still lands.
    let store = app.store().clone();
    let write = tokio::spawn(async move {
        let stored = store.accept_all(vec![accept]).await;
        if let Err(e) = &stored {
            tracing::warn!(error = %e, "storing an operator alert");
        }
        stored.ok()
    });
    let Some(accepted) = tokio::time::timeout_at(deadline, write).await?? else { return Ok(()) };
    crate::metrics::events_accepted(&accepted);
    app.wake().notify_one();
    Ok(())
}
