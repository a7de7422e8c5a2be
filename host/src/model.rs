//! The records Switchboard stores and the API shows: workspaces, keys,
//! connections, rules, events, deliveries, replay jobs. Identifiers are
//! time-ordered (ULID), so sorting by id is sorting by creation time.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A new id: `prefix` + ULID. Workspace and key ids use `-`, because the
/// Meshes publishable-key grammar forbids `_` inside them.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", ulid::Ulid::new())
}

pub use crate::time::{now_ms, rfc3339};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Publishable,
    Secret,
}

/// A workspace key. Only its SHA-256 is stored; `hint` is safe to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub workspace: String,
    pub kind: KeyKind,
    pub hash: String,
    pub hint: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Why a connection is not delivering (its deliveries wait until it is
/// resumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InactiveReason {
    /// Paused through the API (`active: false`).
    Disabled,
    /// The destination refused the connection's credentials.
    AuthenticationInvalid,
    /// The connector version it is pinned to was blocked.
    ConnectorVersionBlocked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub connector: String,
    /// `latest`, an exact version, or a semver requirement (`^1.2`).
    pub version: String,
    pub settings: Value,
    /// Names only; values live sealed in `sealed_secrets`.
    pub secret_names: Vec<String>,
    #[serde(with = "crate::model::base64_bytes")]
    pub sealed_secrets: Vec<u8>,
    pub active: bool,
    pub inactive_reason: Option<InactiveReason>,
    /// Deliveries per second (token bucket); the connector's default when absent.
    pub rate_limit_per_second: Option<f64>,
    pub concurrency: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
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
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub workspace: String,
    pub event: String,
    pub resource: String,
    pub resource_id: Option<String>,
    /// The payload JSON text as received.
    pub payload: String,
    /// The id of the key that emitted it (never the key).
    pub created_by: String,
    pub created_at: i64,
    pub delivery_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Processing,
    Retrying,
    /// The connection is inactive; resumes when it is fixed.
    Waiting,
    Completed,
    Failed,
    Canceled,
}

impl DeliveryStatus {
    pub fn is_final(self) -> bool {
        matches!(self, DeliveryStatus::Completed | DeliveryStatus::Failed | DeliveryStatus::Canceled)
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Processing => "processing",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Waiting => "waiting",
            DeliveryStatus::Completed => "completed",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Canceled => "canceled",
        }
    }
    /// Queued again without an attempt in flight: pending before the first
    /// attempt, retrying after.
    pub fn queued(attempt_count: u32) -> Self {
        if attempt_count == 0 { DeliveryStatus::Pending } else { DeliveryStatus::Retrying }
    }
}

/// An event's status, derived from its deliveries: failed if any failed,
/// completed when all are final, processing otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Processing,
    Completed,
    Failed,
}

impl EventStatus {
    pub fn of<'a>(deliveries: impl IntoIterator<Item = &'a DeliveryStatus>) -> EventStatus {
        let mut status = EventStatus::Completed;
        for d in deliveries {
            if *d == DeliveryStatus::Failed {
                return EventStatus::Failed;
            }
            if !d.is_final() {
                status = EventStatus::Processing;
            }
        }
        status
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Processing => "processing",
            EventStatus::Completed => "completed",
            EventStatus::Failed => "failed",
        }
    }
}

/// One (event × rule) unit of work. The rule's action and field templates
/// are copied in at accept time: a later rule change does not re-route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub workspace: String,
    pub event_id: String,
    pub rule: String,
    pub connection: String,
    pub connector: String,
    pub action: String,
    pub fields: Value,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    /// When it is next due (ms), if it is queued.
    pub due_at: Option<i64>,
    /// Lease token of the worker holding it, if claimed.
    pub lease: Option<String>,
    pub connector_version: Option<String>,
    pub last_error: Option<String>,
    pub last_outcome: Option<crate::outcome::Outcome>,
    /// Attempts in a row cut short by a process death (see `store::MAX_INTERRUPTIONS`).
    #[serde(default)]
    pub interruptions: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where a replay job is: recorded, running (counted: `total` is known),
/// or every matched delivery requeued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    Pending,
    Running,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayJob {
    pub id: String,
    pub workspace: String,
    pub status: DeliveryStatus,
    pub connection: Option<String>,
    pub rule: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub matched: u64,
    pub requeued: u64,
    /// How many deliveries the job selects, once counted (jobs recorded
    /// before this field existed read as not counted).
    #[serde(default)]
    pub total: Option<u64>,
    pub state: ReplayState,
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
}

pub mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD.decode(String::deserialize(d)?).map_err(D::Error::custom)
    }
}
