//! Rules: when an event matches, run an action of a connection
//! with templated fields. Filters and templates are validated on save, with
//! the path of any fault in the message and the body's `path`: filters
//! against their limits, templates by compiling them and by a dry
//! render against a sample event, which must stay within the render bounds.
//! Event names and resources are held to what ingest accepts, references to
//! the name bounds (`api::limits`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::WorkspaceAccess;
use super::limits::{check_event_field, check_name};
use super::{ApiError, AppState, Json, PageParams, Path, Query, list};
use crate::app::App;
use crate::model::{Rule, new_id, now_ms, rfc3339};
use crate::routing::fields::{FieldError, FieldTemplates};
use crate::routing::filter::Filter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workspaces/{ws}/rules", get(list_rules).post(create))
        .route("/api/v1/workspaces/{ws}/rules/{id}", get(show).patch(update).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    event: Option<String>,
    resource: Option<String>,
    resource_id: Option<String>,
    filter: Option<Value>,
    connection: Option<String>,
    action: Option<String>,
    fields: Option<Value>,
    active: Option<bool>,
}

fn view(r: &Rule) -> Value {
    json!({
        "id": r.id, "workspace": r.workspace, "event": r.event, "resource": r.resource, "resource_id": r.resource_id,
        "filter": r.filter, "connection": r.connection, "action": r.action, "fields": r.fields, "active": r.active,
        "created_at": rfc3339(r.created_at), "updated_at": rfc3339(r.updated_at),
    })
}

/// Everything a rule refers to must exist and parse, within its limits.
async fn validate(app: &App, r: &Rule) -> Result<(), ApiError> {
    check_event_field("event", &r.event)?;
    for (field, value) in [("resource", &r.resource), ("resource_id", &r.resource_id)] {
        value.as_deref().map_or(Ok(()), |v| check_event_field(field, v))?;
    }
    check_name("connection", &r.connection)?;
    check_name("action", &r.action)?;
    let connection =
        app.store.connection(&r.workspace, &r.connection).await?.ok_or_else(|| {
            ApiError::unprocessable(format!("connection `{}` not found in this workspace", r.connection))
        })?;
    if let Some(connector) = app.registry.resolve(&connection.connector, &connection.version)
        && !connector.manifest().actions.iter().any(|a| a.name == r.action)
    {
        let names: Vec<&str> = connector.manifest().actions.iter().map(|a| a.name.as_str()).collect();
        return Err(ApiError::unprocessable(format!(
            "connector `{}` has no action `{}` (it has: {})",
            connection.connector,
            r.action,
            names.join(", ")
        )));
    }
    if let Some(f) = &r.filter {
        Filter::parse(f).map_err(|e| ApiError::unprocessable(e.to_string()).with_error(json!({"path": e.path})))?;
    }
    let field_error = |e: FieldError| ApiError::unprocessable(e.to_string()).with_error(json!({"path": e.path}));
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

async fn create(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
    Json(b): Json<RuleBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    app.store.workspace(&ws).await?.ok_or_else(|| ApiError::not_found("workspace", &ws))?;
    let required = |field: &str| ApiError::invalid(field, "is required");
    let now = now_ms();
    let rule = Rule {
        id: new_id("rule_"),
        workspace: ws.clone(),
        event: b.event.ok_or_else(|| required("event"))?,
        resource: b.resource,
        resource_id: b.resource_id,
        filter: b.filter,
        connection: b.connection.ok_or_else(|| required("connection"))?,
        action: b.action.ok_or_else(|| required("action"))?,
        fields: b.fields.unwrap_or_else(|| json!({})),
        active: b.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    validate(&app, &rule).await?;
    app.store.put_rule(&rule).await?;
    app.rules_changed(&ws);
    Ok((StatusCode::CREATED, Json(view(&rule))))
}

#[derive(Deserialize)]
struct ListParams {
    event: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_rules(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
    Query(p): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let page = PageParams { limit: p.limit, cursor: p.cursor.clone() }.page()?;
    let rules: Vec<Rule> = app
        .store
        .rules(&ws, &page)
        .await?
        .into_iter()
        .filter(|r| p.event.as_ref().is_none_or(|e| *e == r.event))
        .collect();
    let last = rules.last().map(|r| r.id.clone());
    Ok(Json(list(rules.iter().map(view).collect(), page.limit, last)))
}

async fn load(app: &App, ws: &str, id: &str) -> Result<Rule, ApiError> {
    app.store.rule(ws, id).await?.ok_or_else(|| ApiError::not_found("rule", id))
}

async fn show(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&load(&app, &ws, &id).await?)))
}

async fn update(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
    Json(b): Json<RuleBody>,
) -> Result<Json<Value>, ApiError> {
    let mut rule = load(&app, &ws, &id).await?;
    if let Some(v) = b.event {
        rule.event = v;
    }
    if b.resource.is_some() {
        rule.resource = b.resource;
    }
    if b.resource_id.is_some() {
        rule.resource_id = b.resource_id;
    }
    if b.filter.is_some() {
        rule.filter = b.filter.filter(|f| !f.is_null());
    }
    if let Some(v) = b.connection {
        rule.connection = v;
    }
    if let Some(v) = b.action {
        rule.action = v;
    }
    if let Some(v) = b.fields {
        rule.fields = v;
    }
    if let Some(v) = b.active {
        rule.active = v;
    }
    rule.updated_at = now_ms();
    validate(&app, &rule).await?;
    app.store.put_rule(&rule).await?;
    app.rules_changed(&ws);
    Ok(Json(view(&rule)))
}

async fn remove(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !app.store.delete_rule(&ws, &id).await? {
        return Err(ApiError::not_found("rule", &id));
    }
    app.rules_changed(&ws);
    Ok(StatusCode::NO_CONTENT)
}
