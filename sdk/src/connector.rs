//! The [`Connector`] trait and the domain types it receives.

use serde_json::Value;

use crate::{Failure, Host, Manifest};

/// What a connector implements. Every bundled connector has this shape.
///
/// Implementations hold no state: a fresh instance serves each invocation.
/// Anything worth keeping between deliveries goes through [`Host::cache_set`].
pub trait Connector {
    /// The manifest: name, version, schemas, secrets, actions, allowed hosts.
    fn describe() -> Manifest;

    /// Semantic checks of a connection's settings that the JSON Schema cannot
    /// express. Return a message naming the faulty field.
    fn validate(settings: &Value) -> Result<(), String> {
        let _ = settings;
        Ok(())
    }

    /// Deliver one event. `Ok` carries a short summary for the attempt log.
    fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure>;
}

/// The event being delivered and the delivery's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event id.
    pub id: String,
    /// Stable across attempts of one delivery: use it as the idempotency key.
    pub delivery_id: String,
    /// Event name, e.g. `page.completed`.
    pub name: String,
    pub resource: String,
    pub resource_id: Option<String>,
    /// The payload as JSON text, byte for byte as stored.
    pub payload: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub workspace: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Unix seconds when this attempt started; connectors have no clock.
    pub attempt_time: u64,
}

impl Event {
    /// The payload parsed as JSON (`Value::Null` if the host sent invalid JSON,
    /// which it never does).
    pub fn payload_value(&self) -> Value {
        serde_json::from_str(&self.payload).unwrap_or(Value::Null)
    }
}

/// One invocation's input: the event, the action to run, the rule's rendered
/// fields and the connection's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub event: Event,
    pub action: String,
    pub fields: Value,
    pub settings: Value,
}

impl Delivery {
    pub fn new(event: Event, action: impl Into<String>, fields: Value, settings: Value) -> Self {
        Delivery { event, action: action.into(), fields, settings }
    }

    /// A required string field, or an `invalid-fields` failure naming it.
    pub fn field_str(&self, name: &str) -> Result<&str, Failure> {
        match self.fields.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(Value::String(_)) => Err(Failure::invalid_fields(format!("field `{name}` is empty"))),
            Some(other) => {
                Err(Failure::invalid_fields(format!("field `{name}` must be a string, got {}", json_kind(other))))
            }
            None => Err(Failure::invalid_fields(format!("field `{name}` is required"))),
        }
    }

    /// An optional string field; a non-string value is an `invalid-fields` failure.
    pub fn field_opt_str(&self, name: &str) -> Result<Option<&str>, Failure> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.field_str(name).map(Some),
        }
    }

    /// A required string setting. Settings were validated when the connection
    /// was saved, so a missing one is a permanent failure, not a field error.
    pub fn setting_str(&self, name: &str) -> Result<&str, Failure> {
        match self.settings.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(Failure::permanent(format!("setting `{name}` is missing or not a string"))),
        }
    }

    /// An optional string setting.
    pub fn setting_opt_str(&self, name: &str) -> Option<&str> {
        self.settings.get(name).and_then(Value::as_str)
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
