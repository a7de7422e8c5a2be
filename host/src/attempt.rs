//! The attempt record: what one connector invocation did, as users see it in
//! the API and `connector run` prints it. Requests are recorded as the guest
//! wrote them (placeholders, never secret values); bodies are capped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;

/// One connector invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "connector": "webhook", "connector_version": "0.1.0", "component_sha256": "9f2c4e7a…", "n": 1,
    "started_at": "2026-03-21T15:06:00.210Z", "duration_ms": 41.7, "outcome": "delivered", "summary": "HTTP 204",
    "steps": [{
        "request": {"method": "POST", "url": "https://hooks.example.com/in",
                    "headers": {"content-type": "application/json", "webhook-signature": "[redacted]"}, "body_bytes": 312},
        "response": {"status": 204, "headers": {}, "body": ""}, "duration_ms": 39.2
    }]
}))]
pub struct AttemptRecord {
    pub connector: String,
    pub connector_version: String,
    /// SHA-256 (hex) of the component that ran; absent when none ran (the
    /// attempt was cut short before, or was recorded by an older version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_sha256: Option<String>,
    /// 1-based attempt number within the delivery.
    pub n: u32,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub duration_ms: f64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The connector's summary on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The delay the destination asked for (Retry-After or a reset header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogLine>,
}

/// One HTTP request the connector asked for and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Step {
    pub request: StepRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<StepResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRequest {
    pub method: String,
    /// As the guest wrote it: `{{secret.NAME}}` placeholders are kept.
    pub url: String,
    /// Sensitive headers without a placeholder show `[redacted]`.
    pub headers: BTreeMap<String, String>,
    pub body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// The first 4 KiB of the body as text, secret values scrubbed.
    pub body: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body_truncated: bool,
}

/// Why a step produced no response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum StepError {
    Timeout,
    Connect(String),
    Interrupted(String),
    Denied(String),
    LimitExceeded(String),
    Invalid(String),
}

/// A line the connector logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

/// Case-folded header map; repeated headers are joined with `, `.
pub fn header_map<'a>(headers: impl IntoIterator<Item = (&'a str, String)>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        map.entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}
