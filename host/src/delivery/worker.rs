//! One attempt of one delivery: load what it needs, render the fields, run
//! the connector in the sandbox, decide the next state and record it all in
//! one write. Every path ends in a recorded state; nothing is dropped.

use std::sync::Arc;

use serde_json::json;

use super::retry::RetryPolicy;
use crate::app::App;
use crate::attempt::AttemptRecord;
use crate::model::{Connection, Delivery, Event, InactiveReason, now_ms, rfc3339};
use crate::outcome::Outcome;
use crate::routing::fields::FieldTemplates;
use crate::runtime::{EventData, Invocation, Labels, LoadedConnector};
use crate::secrets::SecretSet;
use crate::store::{Claimed, Next};

#[tracing::instrument(name = "attempt", skip_all, fields(
    delivery = %claimed.delivery.id,
    workspace = %claimed.delivery.workspace,
    connection = %claimed.delivery.connection,
    n = claimed.delivery.attempt_count + 1,
))]
pub async fn attempt(app: &App, claimed: Claimed, lease: &str) {
    let Claimed { delivery: d, event, connection } = claimed;
    let now = now_ms();
    let (event, connection) = match (event, connection) {
        (Some(e), Some(c)) => (e, c),
        (_, None) => {
            return finish_without_run(app, &d, lease, Outcome::InternalError, "the connection was deleted").await;
        }
        (None, _) => return finish_without_run(app, &d, lease, Outcome::InternalError, "the event is gone").await,
    };
    if !connection.active {
        park(app, &d, lease, now).await;
        return;
    }
    // `latest` and requirements skip versions that refuse what this
    // connection and delivery hold (held back), so an upload cannot break them.
    let fits = |c: &LoadedConnector| {
        crate::validation::connection(c, &connection.settings, &connection.secret_names).is_empty()
            && crate::validation::rule(c, &d.action, &d.fields).is_empty()
    };
    let resolved = app.registry().resolve_for(&connection.connector, &connection.version, &connection.id, &fits);
    let Some(connector) = resolved.map(|r| r.connector) else {
        tracing::warn!(delivery = %d.id, connector = %connection.connector, version = %connection.version, "connector version not registered; waiting");
        let _ = app.store().release(&d.id, lease, now + 5000, now).await;
        return;
    };
    if app.registry().is_blocked(&connection.connector, &connector.manifest().version) {
        // Pinned to a version an operator blocked: wait, do not fail.
        pause_connection(app, &connection, InactiveReason::ConnectorVersionBlocked).await;
        park(app, &d, lease, now).await;
        return;
    }

    #[cfg(feature = "fault-injection")]
    crate::fault::before_attempt(&event.event);

    let n = d.attempt_count + 1;
    let fields = match render_fields(&d, &event) {
        Ok(f) => f,
        Err(message) => {
            let record = synthetic(&connection, &connector.manifest().version, n, Outcome::MappingError, message);
            let _ = app.store().finish_attempt(&d.id, lease, &record, Next::Failed, now_ms()).await;
            return;
        }
    };
    let secrets = match app.master_key().open(&connection.sealed_secrets, &connection.id) {
        Ok(s) => SecretSet::new(s),
        Err(e) => {
            let record =
                synthetic(&connection, &connector.manifest().version, n, Outcome::InternalError, e.to_string());
            let _ = app.store().finish_attempt(&d.id, lease, &record, Next::Failed, now_ms()).await;
            return;
        }
    };
    let invocation = invocation(&d, &event, &connection, &fields, secrets, n);
    let record = app.runtime().invoke(&connector, invocation, labels(&connector, &d)).await;
    let policy = RetryPolicy { schedule: app.config().retry.schedule.clone(), jitter: app.config().retry.jitter };
    let now = now_ms();
    let next = policy.next(record.outcome, n, record.retry_after_ms, now, rand::random());
    if record.outcome == Outcome::AuthFailed {
        pause_connection(app, &connection, InactiveReason::AuthenticationInvalid).await;
    }
    match app.store().finish_attempt(&d.id, lease, &record, next.clone(), now).await {
        Ok(true) => {
            crate::metrics::attempt_finished(&connection.connector, &record, &next);
            crate::alerts::attempt_finished(app, &connection, &record).await;
            crate::rollout::attempt_finished(app, &record.connector, &record.connector_version, record.outcome).await;
        }
        Ok(false) => tracing::warn!(delivery = %d.id, "lease lost before the attempt finished; its record was dropped"),
        Err(e) => tracing::error!(delivery = %d.id, error = %e, "recording an attempt"),
    }
    if matches!(next, Next::Retry { at } if at <= now_ms()) {
        app.wake().notify_one();
    }
}

/// The delivery's fields rendered for its event.
pub(crate) fn render_fields(d: &Delivery, event: &Event) -> Result<serde_json::Value, String> {
    let templates = FieldTemplates::compile(&d.fields).map_err(|e| e.to_string())?;
    templates.render(&template_context(event)).map_err(|e| e.to_string())
}

/// Attempt `n` of delivery `d`: what the connector is called with.
pub(crate) fn invocation(
    d: &Delivery,
    event: &Event,
    connection: &Connection,
    fields: &serde_json::Value,
    secrets: SecretSet,
    n: u32,
) -> Invocation {
    Invocation {
        event: EventData {
            id: event.id.clone(),
            delivery_id: d.id.clone(),
            name: event.event.clone(),
            resource: event.resource.clone(),
            resource_id: event.resource_id.clone(),
            payload: event.payload.clone(),
            created_at: rfc3339(event.created_at),
            workspace: event.workspace.clone(),
        },
        action: d.action.clone(),
        fields: fields.to_string(),
        settings: connection.settings.to_string(),
        secrets: Arc::new(secrets),
        cache_scope: connection.id.clone(),
        attempt: n,
    }
}

/// Who runs an attempt of `d`, for the sandbox's logs.
pub(crate) fn labels(connector: &LoadedConnector, d: &Delivery) -> Labels {
    Labels {
        connector: connector.manifest().name.clone(),
        version: connector.manifest().version.clone(),
        workspace: d.workspace.clone(),
        delivery: d.id.clone(),
    }
}

/// The context rule templates render against (the README's architecture section).
pub(crate) fn template_context(event: &Event) -> serde_json::Value {
    let payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap_or(serde_json::Value::Null);
    json!({
        "event": event.event,
        "payload": payload,
        "resource": event.resource,
        "resource_id": event.resource_id,
        "workspace": event.workspace,
        "id": event.id,
        "created_at": rfc3339(event.created_at),
    })
}

fn synthetic(connection: &Connection, version: &str, n: u32, outcome: Outcome, error: String) -> AttemptRecord {
    AttemptRecord {
        connector: connection.connector.clone(),
        connector_version: version.to_string(),
        component_sha256: None,
        n,
        started_at: rfc3339(now_ms()),
        duration_ms: 0.0,
        outcome,
        error: Some(error),
        summary: None,
        retry_after_ms: None,
        steps: Vec::new(),
        logs: Vec::new(),
    }
}

async fn finish_without_run(app: &App, d: &Delivery, lease: &str, outcome: Outcome, why: &str) {
    let record = AttemptRecord {
        connector: d.connector.clone(),
        connector_version: d.connector_version.clone().unwrap_or_default(),
        component_sha256: None,
        n: d.attempt_count + 1,
        started_at: rfc3339(now_ms()),
        duration_ms: 0.0,
        outcome,
        error: Some(why.to_string()),
        summary: None,
        retry_after_ms: None,
        steps: Vec::new(),
        logs: Vec::new(),
    };
    let _ = app.store().finish_attempt(&d.id, lease, &record, Next::Failed, now_ms()).await;
}

/// The connection is paused: the delivery waits, without an attempt, until
/// the connection is fixed.
async fn park(app: &App, d: &Delivery, lease: &str, now: i64) {
    if let Err(e) = app.store().park(&d.id, lease, now).await {
        tracing::error!(delivery = %d.id, error = %e, "parking a delivery");
    }
}

async fn pause_connection(app: &App, connection: &Connection, reason: InactiveReason) {
    if let Err(e) = crate::ops::connections::pause(app, &connection.workspace, &connection.id, reason).await {
        tracing::error!(connection = %connection.id, error = %e, "pausing a connection");
    }
}
