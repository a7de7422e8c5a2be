//! Planning an accepted event: the record to store and one delivery per
//! matching rule. Ingest plans what a client sent; operator alerts plan
//! Switchboard's own events the same way, so they route by ordinary rules.

use serde_json::{Map, Value, json};

use crate::app::CompiledRule;
use crate::model::{Delivery, DeliveryStatus, Event, new_id};
use crate::store::Accept;

/// An event as validated, before it has an id.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub workspace: String,
    pub event: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub payload: Map<String, Value>,
    /// The key id that emitted it (`created_by`).
    pub created_by: String,
    /// The hashed idempotency key, when the client gave one.
    pub idempotency: Option<String>,
}

/// The event record and a pending delivery for every rule it matches.
pub fn plan(rules: &[CompiledRule], new: NewEvent, now: i64) -> Accept {
    let event_id = new_id("evt_");
    let payload = Value::Object(new.payload);
    let doc = json!({"event": new.event, "resource": new.resource, "resource_id": new.resource_id, "payload": payload});
    let deliveries: Vec<Delivery> = rules
        .iter()
        .filter(|c| {
            let r = &c.rule;
            r.event == new.event
                && r.resource.as_ref().is_none_or(|x| *x == new.resource)
                && r.resource_id.as_ref().is_none_or(|x| Some(x) == new.resource_id.as_ref())
                && c.filter.as_ref().is_none_or(|f| f.matches(&doc))
        })
        .map(|c| Delivery {
            id: new_id("dlv_"),
            workspace: new.workspace.clone(),
            event_id: event_id.clone(),
            rule: c.rule.id.clone(),
            connection: c.rule.connection.clone(),
            connector: c.connector.clone(),
            action: c.rule.action.clone(),
            fields: c.rule.fields.clone(),
            status: DeliveryStatus::Pending,
            attempt_count: 0,
            due_at: Some(now),
            lease: None,
            connector_version: None,
            last_error: None,
            last_outcome: None,
            interruptions: 0,
            created_at: now,
            updated_at: now,
        })
        .collect();
    let event = Event {
        id: event_id,
        workspace: new.workspace,
        event: new.event,
        resource: new.resource,
        resource_id: new.resource_id,
        payload: payload.to_string(),
        created_by: new.created_by,
        created_at: now,
        delivery_ids: deliveries.iter().map(|d| d.id.clone()).collect(),
    };
    Accept { event, deliveries, idempotency: new.idempotency }
}
