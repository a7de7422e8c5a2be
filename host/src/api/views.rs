//! What the API answers: one `Serialize` type per resource, built from the
//! domain record. The wire shape of each answer is written once, here;
//! handlers pick the view, they do not assemble JSON. Times are RFC 3339;
//! secrets and key hashes have no field to travel in.

use serde::Serialize;
use serde_json::Value;

use crate::attempt::AttemptRecord;
use crate::model::{
    ApiKey, Connection, Delivery, DeliveryStatus, Event, EventStatus, InactiveReason, KeyKind, ReplayJob, ReplayState,
    Rule, Workspace, rfc3339,
};
use crate::outcome::Outcome;

/// The list envelope: `{"count", "limit", "next_cursor", "records"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub count: usize,
    pub limit: usize,
    pub next_cursor: Option<String>,
    pub records: Vec<T>,
}

impl<T> List<T> {
    /// One page: a full page names the last record's id as the cursor of
    /// the next (`last_id` is the last record the store returned).
    pub fn page(records: Vec<T>, limit: usize, last_id: Option<String>) -> Self {
        let next_cursor = if records.len() == limit { last_id } else { None };
        List { count: records.len(), limit, next_cursor, records }
    }

    /// A complete, unpaginated list (the `limit` is the count).
    pub fn all(records: Vec<T>) -> Self {
        List { count: records.len(), limit: records.len(), next_cursor: None, records }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

impl From<&Workspace> for WorkspaceView {
    fn from(ws: &Workspace) -> Self {
        WorkspaceView { id: ws.id.clone(), name: ws.name.clone(), created_at: rfc3339(ws.created_at) }
    }
}

/// A new workspace with its two keys, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "ws-01JQ4Z8X2M7R5T9V3B6N1C0D8E", "name": "Northstar prod", "created_at": "2026-03-21T15:06:00.123Z",
    "publishable_key": "mesh_pub_ws-01JQ4Z8X2M7R5T9V3B6N1C0D8E_key-01JQ4Z8X3A1B2C3D4E5F6G7H8J_q3Zr…",
    "secret_key": "mesh_sec_Xk2…"
}))]
pub struct CreatedWorkspace {
    #[serde(flatten)]
    pub workspace: WorkspaceView,
    pub publishable_key: String,
    pub secret_key: String,
}

/// A key by its hint: the key text itself is only in [`CreatedKey`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub kind: KeyKind,
    pub hint: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        KeyView {
            id: k.id.clone(),
            kind: k.kind,
            hint: k.hint.clone(),
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub record: KeyView,
    pub key: String,
}

/// A connection: secret names, never their values.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "conn_01JQ4Z9A7K3M5P8R2T4V6X8Z0B", "workspace": "ws-01JQ4Z8X2M7R5T9V3B6N1C0D8E", "name": "Data warehouse",
    "connector": "webhook", "version": "latest", "settings": {"url": "https://hooks.example.com/in"},
    "secrets": ["signing_secret"], "active": true, "inactive_reason": null, "rate_limit_per_second": null,
    "concurrency": null, "created_at": "2026-03-21T15:07:12.000Z", "updated_at": "2026-03-21T15:07:12.000Z"
}))]
pub struct ConnectionView {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub connector: String,
    pub version: String,
    pub settings: Value,
    pub secrets: Vec<String>,
    pub active: bool,
    pub inactive_reason: Option<InactiveReason>,
    pub rate_limit_per_second: Option<f64>,
    pub concurrency: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        ConnectionView {
            id: c.id.clone(),
            workspace: c.workspace.clone(),
            name: c.name.clone(),
            connector: c.connector.clone(),
            version: c.version.clone(),
            settings: c.settings.clone(),
            secrets: c.secret_names.clone(),
            active: c.active,
            inactive_reason: c.inactive_reason,
            rate_limit_per_second: c.rate_limit_per_second,
            concurrency: c.concurrency,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "rule_01JQ4ZA3C5E7G9J1L3N5Q7S9U1", "workspace": "ws-01JQ4Z8X2M7R5T9V3B6N1C0D8E", "event": "page.completed",
    "resource": "onboarding_sequence", "resource_id": null, "filter": {"payload": {"sequence_step": {"$gte": 3}}},
    "connection": "conn_01JQ4Z9A7K3M5P8R2T4V6X8Z0B", "action": "send_webhook",
    "fields": {"body": {"email": "{{ payload.email }}"}}, "active": true,
    "created_at": "2026-03-21T15:08:30.000Z", "updated_at": "2026-03-21T15:08:30.000Z"
}))]
pub struct RuleView {
    pub id: String,
    pub workspace: String,
    pub event: String,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub filter: Option<Value>,
    pub connection: String,
    pub action: String,
    pub fields: Value,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Rule> for RuleView {
    fn from(r: &Rule) -> Self {
        RuleView {
            id: r.id.clone(),
            workspace: r.workspace.clone(),
            event: r.event.clone(),
            resource: r.resource.clone(),
            resource_id: r.resource_id.clone(),
            filter: r.filter.clone(),
            connection: r.connection.clone(),
            action: r.action.clone(),
            fields: r.fields.clone(),
            active: r.active,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// The Meshes event record, as ingest answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    pub id: String,
    /// Always `event`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub event: String,
    pub workspace: String,
    pub created_by: String,
    pub created_at: String,
    pub resource: String,
    pub resource_id: Option<String>,
}

impl From<&Event> for EventRecord {
    fn from(e: &Event) -> Self {
        EventRecord {
            id: e.id.clone(),
            kind: "event",
            event: e.event.clone(),
            workspace: e.workspace.clone(),
            created_by: e.created_by.clone(),
            created_at: rfc3339(e.created_at),
            resource: e.resource.clone(),
            resource_id: e.resource_id.clone(),
        }
    }
}

/// An event with how its deliveries stand.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    #[serde(flatten)]
    pub record: EventRecord,
    pub total_rules: usize,
    pub completed_count: usize,
    pub failed_count: usize,
    pub status: EventStatus,
}

impl EventView {
    pub fn new(e: &Event, deliveries: &[Delivery]) -> Self {
        let count = |s: DeliveryStatus| deliveries.iter().filter(|d| d.status == s).count();
        EventView {
            record: e.into(),
            total_rules: deliveries.len(),
            completed_count: count(DeliveryStatus::Completed),
            failed_count: count(DeliveryStatus::Failed),
            status: EventStatus::of(deliveries.iter().map(|d| &d.status)),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "dlv_01JQ4ZB6D8F0H2K4M6P8R0T2V4", "event_id": "evt_01JQ4ZB6D1X3Z5B7D9F1H3K5M7",
    "rule": "rule_01JQ4ZA3C5E7G9J1L3N5Q7S9U1", "connection": "conn_01JQ4Z9A7K3M5P8R2T4V6X8Z0B",
    "connector": "webhook", "connector_version": "0.1.0", "status": "retrying", "attempt_count": 2,
    "next_attempt_at": "2026-03-21T15:11:05.402Z", "last_error": "HTTP 503 from hooks.example.com",
    "last_outcome": "rejected_server_error", "created_at": "2026-03-21T15:10:00.120Z",
    "updated_at": "2026-03-21T15:10:05.400Z"
}))]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub rule: String,
    pub connection: String,
    pub connector: String,
    pub connector_version: Option<String>,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    /// When it runs next; none while an attempt is in flight.
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub last_outcome: Option<Outcome>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        DeliveryView {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            rule: d.rule.clone(),
            connection: d.connection.clone(),
            connector: d.connector.clone(),
            connector_version: d.connector_version.clone(),
            status: d.status,
            attempt_count: d.attempt_count,
            next_attempt_at: d.due_at.filter(|_| d.lease.is_none()).map(rfc3339),
            last_error: d.last_error.clone(),
            last_outcome: d.last_outcome,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

/// An attempt as recorded: the record is its own view.
pub type AttemptView = AttemptRecord;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayView {
    pub id: String,
    pub status: DeliveryStatus,
    pub connection: Option<String>,
    pub rule: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub matched: u64,
    pub requeued: u64,
    /// Deliveries the job selects; absent until counted.
    pub total: Option<u64>,
    pub state: ReplayState,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&ReplayJob> for ReplayView {
    fn from(j: &ReplayJob) -> Self {
        ReplayView {
            id: j.id.clone(),
            status: j.status,
            connection: j.connection.clone(),
            rule: j.rule.clone(),
            since: j.since.map(rfc3339),
            until: j.until.map(rfc3339),
            matched: j.matched,
            requeued: j.requeued,
            total: j.total,
            state: j.state,
            created_at: rfc3339(j.created_at),
            updated_at: rfc3339(j.updated_at.max(j.created_at)),
        }
    }
}
