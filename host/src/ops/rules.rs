//! Rules: saving one checks everything it refers to — the connection exists
//! in the workspace, its connector has the action, the filter parses within
//! its limits, the templates compile and a dry render against a sample event
//! stays within the render bounds — then invalidates the workspace's
//! compiled rules, so the next event is matched against the new set.

use serde_json::{Value, json};

use super::{OpError, Result};
use crate::app::App;
use crate::model::{Rule, now_ms, rfc3339};
use crate::routing::fields::{FieldError, FieldTemplates};
use crate::routing::filter::{Filter, FilterError};
use crate::validation::{Fields, SchemaError};

pub async fn load(app: &App, workspace: &str, id: &str) -> Result<Rule> {
    app.store().rule(workspace, id).await?.ok_or_else(|| OpError::not_found("rule", id))
}

/// Save a new or changed rule after checking it.
pub async fn save(app: &App, rule: Rule) -> Result<Rule> {
    if app.store().workspace(&rule.workspace).await?.is_none() {
        return Err(OpError::not_found("workspace", &rule.workspace));
    }
    check(app, &rule).await?;
    app.store().put_rule(&rule).await?;
    app.rules_changed(&rule.workspace);
    Ok(rule)
}

pub async fn remove(app: &App, workspace: &str, id: &str) -> Result<()> {
    if !app.store().delete_rule(workspace, id).await? {
        return Err(OpError::not_found("rule", id));
    }
    app.rules_changed(workspace);
    Ok(())
}

/// Everything a rule refers to must exist and parse, within its limits.
async fn check(app: &App, r: &Rule) -> Result<()> {
    Err(match faults(app, r).await?.into_iter().next() {
        None => return Ok(()),
        Some(Fault::Connection(m) | Fault::Action(m)) => OpError::Refused(m),
        Some(Fault::Schema(e)) => OpError::RefusedAt { message: format!("`{}` {}", e.path, e.message), path: e.path },
        Some(Fault::Filter(e)) => OpError::RefusedAt { path: e.path.clone(), message: e.to_string() },
        Some(Fault::Field(e)) => OpError::RefusedAt { path: e.path.clone(), message: e.to_string() },
    })
}

/// A reason saving a rule is refused.
#[derive(Debug)]
pub(crate) enum Fault {
    Connection(String),
    Action(String),
    Schema(SchemaError),
    Filter(FilterError),
    Field(FieldError),
}

/// Every reason saving `r` would be refused, in the order saving reports
/// the first (a rule preview shows them all).
pub(crate) async fn faults(app: &App, r: &Rule) -> Result<Vec<Fault>> {
    let mut faults = Vec::new();
    match app.store().connection(&r.workspace, &r.connection).await? {
        None => faults.push(Fault::Connection(format!("connection `{}` not found in this workspace", r.connection))),
        Some(connection) => {
            if let Some(connector) = app.registry().resolve(&connection.connector, &connection.version) {
                if !connector.manifest().actions.iter().any(|a| a.name == r.action) {
                    let names: Vec<&str> = connector.manifest().actions.iter().map(|a| a.name.as_str()).collect();
                    faults.push(Fault::Action(format!(
                        "connector `{}` has no action `{}` (it has: {})",
                        connection.connector,
                        r.action,
                        names.join(", ")
                    )));
                }
                let schema = crate::validation::fields(&connector, &r.action, &r.fields, Fields::Templates);
                faults.extend(schema.into_iter().map(Fault::Schema));
            }
        }
    }
    if let Some(Err(e)) = r.filter.as_ref().map(Filter::parse) {
        faults.push(Fault::Filter(e));
    }
    // A template that breaks a bound on a sample event would break it on every event.
    if let Err(e) = FieldTemplates::compile(&r.fields).and_then(|t| t.dry_run(&sample_event(r))) {
        faults.push(Fault::Field(e));
    }
    Ok(faults)
}

/// The template context of an event this rule could match, with an empty payload: the dry
/// render tolerates what real payloads would fill in.
fn sample_event(r: &Rule) -> Value {
    json!({
        "event": r.event, "resource": r.resource.as_deref().unwrap_or("global"), "resource_id": r.resource_id,
        "workspace": r.workspace, "id": "evt_sample", "created_at": rfc3339(now_ms()), "payload": {},
    })
}
