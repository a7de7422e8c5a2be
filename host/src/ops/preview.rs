//! Rule preview: what a rule would do with an event, nothing saved —
//! whether it matches, the fields its templates render, and every fault
//! saving it would meet or the event reveals. Matching is the router's own
//! (`routing::plan`), the template context the delivery's
//! (`delivery::worker`), the save checks `ops::rules`' own; the rendered
//! fields are then held to the action's fields schema in full.

use serde::Serialize;
use serde_json::{Map, Value};

use super::rules::{Fault, faults};
use super::{OpError, Result};
use crate::app::{App, CompiledRule};
use crate::delivery::worker::template_context;
use crate::model::{Event, Rule, new_id, now_ms};
use crate::routing::fields::FieldTemplates;
use crate::routing::filter::Filter;
use crate::routing::plan::{NewEvent, plan};
use crate::validation::{self, Fields};

/// The event a rule is previewed against.
#[derive(Debug, Clone)]
pub enum PreviewEvent {
    /// One of the workspace's events, by id.
    Stored(String),
    /// An event as it would be emitted (checked already, as ingest checks it).
    Given { event: String, resource: String, resource_id: Option<String>, payload: Map<String, Value> },
}

/// What a rule would do with an event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "matches": true, "fields": {"body": {"email": "alex@northstar.io"}}, "errors": []
}))]
pub struct Preview {
    /// Whether the event has the rule's event name, resource and resource
    /// id and passes its filter (whatever the rule's `active`).
    pub matches: bool,
    /// The rule's fields rendered for the event; `null` when they cannot be.
    #[schema(value_type = Option<Object>, required = true)]
    pub fields: Option<Value>,
    /// Everything wrong with the rule: what saving it would refuse, and how
    /// its fields fail to render for this event or, rendered, break the
    /// action's fields schema. Empty when none.
    pub errors: Vec<PreviewError>,
}

/// One fault of a previewed rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PreviewError {
    /// JSON path in the rule: `event`, `connection`, `action`,
    /// `filter.payload.sequence_step.$gte`, `fields.body.email`.
    pub path: String,
    pub message: String,
}

impl PreviewError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        PreviewError { path: path.into(), message: message.into() }
    }
}

/// Preview `rule` (of its workspace, which must exist) against `event`.
/// `known` are faults the caller already found in the rule's shape (a
/// missing or out-of-bounds value); further faults at the same path are
/// not repeated.
pub async fn preview(app: &App, rule: &Rule, event: PreviewEvent, known: Vec<PreviewError>) -> Result<Preview> {
    if app.store().workspace(&rule.workspace).await?.is_none() {
        return Err(OpError::not_found("workspace", &rule.workspace));
    }
    let event = match event {
        PreviewEvent::Stored(id) => {
            app.store().event(&rule.workspace, &id).await?.ok_or_else(|| OpError::not_found("event", id))?
        }
        PreviewEvent::Given { event, resource, resource_id, payload } => Event {
            id: new_id("evt_"),
            workspace: rule.workspace.clone(),
            event,
            resource,
            resource_id,
            payload: Value::Object(payload).to_string(),
            created_by: String::new(),
            created_at: now_ms(),
            delivery_ids: Vec::new(),
        },
    };
    let mut errors = known;
    let shape_paths: Vec<String> = errors.iter().map(|e| e.path.clone()).collect();
    let mut add = |e: PreviewError| {
        if !shape_paths.contains(&e.path) && !errors.contains(&e) {
            errors.push(e);
        }
    };
    for fault in faults(app, rule).await? {
        add(match fault {
            Fault::Connection(m) => PreviewError::new("connection", m),
            Fault::Action(m) => PreviewError::new("action", m),
            Fault::Schema(e) => PreviewError::new(e.path, e.message),
            Fault::Filter(e) => PreviewError::new(under("filter", &e.path), e.message),
            Fault::Field(e) => PreviewError::new(under("fields", &e.path), e.message),
        });
    }

    let connection = app.store().connection(&rule.workspace, &rule.connection).await?;
    let connector = connection.as_ref().and_then(|c| app.registry().resolve(&c.connector, &c.version));
    let matches = matches(rule, connection.map(|c| c.connector).unwrap_or_default(), &event);
    let fields = match FieldTemplates::compile(&rule.fields).and_then(|t| t.render(&template_context(&event))) {
        Ok(rendered) => Some(rendered),
        Err(e) => {
            add(PreviewError::new(under("fields", &e.path), e.message));
            None
        }
    };
    if let (Some(connector), Some(rendered)) = (&connector, &fields) {
        for e in validation::fields(connector, &rule.action, rendered, Fields::Rendered) {
            add(PreviewError::new(e.path, e.message));
        }
    }
    Ok(Preview { matches, fields, errors })
}

/// Whether routing `event` would give `rule` a delivery: the router's own
/// planning, on a set of one rule. A filter that does not parse matches
/// nothing, as for saved rules (`App::rules_for`).
fn matches(rule: &Rule, connector: String, event: &Event) -> bool {
    let Ok(filter) = rule.filter.as_ref().map(Filter::parse).transpose() else { return false };
    let compiled = CompiledRule { rule: rule.clone(), filter, connector };
    let new = NewEvent {
        workspace: event.workspace.clone(),
        event: event.event.clone(),
        resource: event.resource.clone(),
        resource_id: event.resource_id.clone(),
        payload: serde_json::from_str(&event.payload).unwrap_or_default(),
        created_by: String::new(),
        idempotency: None,
    };
    !plan(&[compiled], new, now_ms()).deliveries.is_empty()
}

/// `path` (as a filter or template error names it) under `root`.
fn under(root: &str, path: &str) -> String {
    match path {
        "" => root.to_string(),
        p if p.starts_with('[') => format!("{root}{p}"),
        p => format!("{root}.{p}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(event: &str, filter: Option<Value>) -> Rule {
        Rule {
            id: "rule_preview".into(),
            workspace: "ws".into(),
            event: event.into(),
            resource: Some("onboarding_sequence".into()),
            resource_id: None,
            filter,
            connection: "conn".into(),
            action: "send".into(),
            fields: json!({}),
            active: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn event(name: &str, resource: &str, payload: Value) -> Event {
        Event {
            id: "evt_1".into(),
            workspace: "ws".into(),
            event: name.into(),
            resource: resource.into(),
            resource_id: None,
            payload: payload.to_string(),
            created_by: String::new(),
            created_at: 0,
            delivery_ids: Vec::new(),
        }
    }

    #[test]
    fn matching_is_the_routers_event_resource_and_filter() {
        let step3 = event("page.completed", "onboarding_sequence", json!({"sequence_step": 3}));
        let gte = |n: i64| Some(json!({"payload": {"sequence_step": {"$gte": n}}}));
        assert!(matches(&rule("page.completed", gte(3)), "webhook".into(), &step3));
        assert!(!matches(&rule("page.completed", gte(4)), "webhook".into(), &step3), "the filter decides");
        assert!(!matches(&rule("page.viewed", None), "webhook".into(), &step3), "the event name decides");
        let elsewhere = event("page.completed", "global", json!({}));
        assert!(!matches(&rule("page.completed", None), "webhook".into(), &elsewhere), "the resource decides");
        assert!(!matches(&rule("page.completed", Some(json!({"$bogus": 1}))), "webhook".into(), &step3));
    }

    #[test]
    fn fault_paths_are_named_from_the_top_of_the_rule() {
        assert_eq!(under("fields", "body.email"), "fields.body.email");
        assert_eq!(under("fields", "[2]"), "fields[2]");
        assert_eq!(under("filter", ""), "filter");
    }
}
