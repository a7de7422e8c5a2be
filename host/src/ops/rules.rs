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
use crate::routing::filter::Filter;

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
    let connection = app
        .store()
        .connection(&r.workspace, &r.connection)
        .await?
        .ok_or_else(|| OpError::Refused(format!("connection `{}` not found in this workspace", r.connection)))?;
    if let Some(connector) = app.registry().resolve(&connection.connector, &connection.version)
        && !connector.manifest().actions.iter().any(|a| a.name == r.action)
    {
        let names: Vec<&str> = connector.manifest().actions.iter().map(|a| a.name.as_str()).collect();
        return Err(OpError::Refused(format!(
            "connector `{}` has no action `{}` (it has: {})",
            connection.connector,
            r.action,
            names.join(", ")
        )));
    }
    if let Some(f) = &r.filter {
        Filter::parse(f).map_err(|e| OpError::RefusedAt { path: e.path.clone(), message: e.to_string() })?;
    }
    let field_error = |e: FieldError| OpError::RefusedAt { path: e.path.clone(), message: e.to_string() };
    let templates = FieldTemplates::compile(&r.fields).map_err(field_error)?;
    // A template that breaks a bound on a sample event would break it on every event.
    templates.dry_run(&sample_event(r)).map_err(field_error)?;
    Ok(())
}

/// The template context of an event this rule could match, with an empty payload: the dry
/// render tolerates what real payloads would fill in.
fn sample_event(r: &Rule) -> Value {
    json!({
        "event": r.event, "resource": r.resource.as_deref().unwrap_or("global"), "resource_id": r.resource_id,
        "workspace": r.workspace, "id": "evt_sample", "created_at": rfc3339(now_ms()), "payload": {},
    })
}
