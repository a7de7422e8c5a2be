//! Rules over HTTP: when an event matches, run an action of a connection
//! with templated fields. Event names and resources are held here to what
//! ingest accepts, references to the name bounds (`api::limits`); what a
//! rule refers to, its filter and its templates are checked by `ops::rules`,
//! with the path of any fault in the message and the body's `path`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::WorkspaceAccess;
use super::limits::{check_event_field, check_name};
use super::views::{List, RuleView};
use super::{Answer, ApiError, AppState, Id, Json, PageParams, Query};
use crate::model::{Rule, new_id, now_ms};
use crate::ops;

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

/// The bounds on what a rule's text fields may hold (the same as ingest's);
/// what they refer to is checked by `ops::rules`.
fn check_bounds(r: &Rule) -> Result<(), ApiError> {
    check_event_field("event", &r.event)?;
    for (field, value) in [("resource", &r.resource), ("resource_id", &r.resource_id)] {
        value.as_deref().map_or(Ok(()), |v| check_event_field(field, v))?;
    }
    check_name("connection", &r.connection)?;
    check_name("action", &r.action)
}

async fn create(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Json(b): Json<RuleBody>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    let required = |field: &str| ApiError::invalid(field, "is required");
    let now = now_ms();
    let rule = Rule {
        id: new_id("rule_"),
        workspace: access.workspace,
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
    check_bounds(&rule)?;
    let rule = ops::rules::save(&app, rule).await?;
    Ok((StatusCode::CREATED, Json((&rule).into())))
}

#[derive(Deserialize)]
struct ListParams {
    event: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_rules(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Query(p): Query<ListParams>,
) -> Answer<List<RuleView>> {
    let page = PageParams { limit: p.limit, cursor: p.cursor.clone() }.page()?;
    let rules: Vec<Rule> = app
        .store()
        .rules(&access.workspace, &page)
        .await?
        .into_iter()
        .filter(|r| p.event.as_ref().is_none_or(|e| *e == r.event))
        .collect();
    let last = rules.last().map(|r| r.id.clone());
    Ok(Json(List::page(rules.iter().map(Into::into).collect(), page.limit, last)))
}

async fn show(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<RuleView> {
    Ok(Json((&ops::rules::load(&app, &access.workspace, &id).await?).into()))
}

async fn update(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Id(id): Id,
    Json(b): Json<RuleBody>,
) -> Answer<RuleView> {
    let mut rule = ops::rules::load(&app, &access.workspace, &id).await?;
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
    check_bounds(&rule)?;
    Ok(Json((&ops::rules::save(&app, rule).await?).into()))
}

async fn remove(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Result<StatusCode, ApiError> {
    ops::rules::remove(&app, &access.workspace, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
