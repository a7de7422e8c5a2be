//! The [`Connector`] trait and the domain types it receives.

use serde::Deserialize;
use serde_json::Value;

use crate::typed::{self, Scope, json_kind};
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
    /// What the event is about (`global` unless the emitter said otherwise).
    pub resource: String,
    /// Which one of `resource`, when the emitter said.
    pub resource_id: Option<String>,
    /// The payload as JSON text, byte for byte as stored.
    pub payload: String,
    /// When Switchboard accepted the event, RFC 3339 UTC.
    pub created_at: String,
    /// The workspace the event belongs to.
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
    /// The event being delivered.
    pub event: Event,
    /// The action the rule asks for, one of the manifest's.
    pub action: String,
    /// The rule's fields, rendered from the event (a JSON object).
    pub fields: Value,
    /// The connection's settings, as [`Connector::validate`] accepted them.
    pub settings: Value,
}

impl Delivery {
    /// A delivery from its parts (the host builds them; tests use this).
    pub fn new(event: Event, action: impl Into<String>, fields: Value, settings: Value) -> Self {
        Delivery { event, action: action.into(), fields, settings }
    }

    /// The action, when it is one of `actions`; otherwise an `invalid-fields`
    /// failure naming the ones there are. The first line of every `deliver`:
    /// `delivery.expect_action(&[ACTION])?;`.
    pub fn expect_action(&self, actions: &[&str]) -> Result<&str, Failure> {
        if actions.contains(&self.action.as_str()) {
            return Ok(&self.action);
        }
        let known: Vec<String> = actions.iter().map(|a| format!("`{a}`")).collect();
        Err(Failure::invalid_fields(format!(
            "unknown action `{}`; this connector has {}",
            self.action,
            known.join(", ")
        )))
    }

    /// The rule's fields as `T`, typically a struct with
    /// `#[serde(deny_unknown_fields)]`, or an `invalid-fields` failure naming
    /// the field: ``field `text` is required``, ``field `icon` is not a field
    /// of send_message (it takes: channel, text, blocks)``,
    /// ``field `text` must be a string, got a number``. See [`crate::NonEmpty`]
    /// for strings that must not be empty.
    pub fn fields_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Failure> {
        typed::parse(&self.fields, Scope::Fields { action: &self.action }).map_err(Failure::invalid_fields)
    }

    /// The connection's settings as `T`, with the messages of
    /// [`crate::settings_as`]. They were validated when the connection was
    /// saved, so a refusal here is a permanent failure, not a field error.
    pub fn settings_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Failure> {
        crate::settings_as(&self.settings).map_err(Failure::permanent)
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
