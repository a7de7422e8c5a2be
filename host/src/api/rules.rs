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
use super::error::ErrorBody;
use super::limits::{check_event_field, check_name};
use super::openapi::WorkspacePath;
use super::views::{List, RuleView};
use super::{Answer, ApiError, AppState, Id, Json, PageParams, Query};
use crate::model::{Rule, new_id, now_ms};
use crate::ops;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workspaces/{ws}/rules", get(list_rules).post(create))
        .route("/api/v1/workspaces/{ws}/rules/{id}", get(show).patch(update).delete(remove))
}

/// A rule to create (`event`, `connection` and `action` required) or the
/// fields to change (all optional).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "event": "page.completed", "resource": "onboarding_sequence",
    "filter": {"payload": {"sequence_step": {"$gte": 3}}},
    "connection": "conn_01JQ4Z9A7K3M5P8R2T4V6X8Z0B", "action": "send_webhook",
    "fields": {"body": {"email": "{{ payload.email }}"}}
}))]
struct RuleBody {
    /// The event name, matched exactly (1 to 256 bytes). Required on create.
    event: Option<String>,
    /// If set, the event's `resource` must equal it.
    resource: Option<String>,
    /// If set, the event's `resource_id` must equal it.
    resource_id: Option<String>,
    /// An extra condition on the event (Hookdeck/Outpost filter syntax); `null` removes it.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    /// A connection of the workspace. Required on create.
    connection: Option<String>,
    /// An action the connection's connector declares. Required on create.
    action: Option<String>,
    /// Templates rendered for each delivery (default `{}`).
    #[schema(value_type = Option<Object>)]
    fields: Option<Value>,
    /// Inactive rules match nothing (default `true`).
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

/// Create a rule: when an event matches, run `action` on `connection`.
#[utoipa::path(
    post, path = "/api/v1/workspaces/{ws}/rules", tag = "rules", operation_id = "create_rule",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath),
    request_body = RuleBody,
    responses(
        (status = 201, description = "The rule.", body = RuleView),
        (status = 404, description = "No such workspace.", body = ErrorBody),
        (status = 422, description = "A field missing or out of bounds, an unknown connection or action, or a \
            filter or template fault; `details.path` names it.", body = ErrorBody),
    ),
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only rules for this event name (applied within each page).
    event: Option<String>,
    #[param(ignore)]
    limit: Option<usize>,
    #[param(ignore)]
    cursor: Option<String>,
}

/// List the workspace's rules.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/rules", tag = "rules", operation_id = "list_rules",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ListParams, PageParams),
    responses(
        (status = 200, description = "A page of rules.", body = List<RuleView>),
        (status = 400, description = "`limit` or `cursor` out of range.", body = ErrorBody),
    ),
)]
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

/// One rule.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/rules/{id}", tag = "rules", operation_id = "get_rule",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The rule's id (`rule_…`).")),
    responses(
        (status = 200, description = "The rule.", body = RuleView),
        (status = 404, description = "No such rule.", body = ErrorBody),
    ),
)]
async fn show(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<RuleView> {
    Ok(Json((&ops::rules::load(&app, &access.workspace, &id).await?).into()))
}

/// Change a rule.
///
/// The result is checked as on create; events accepted later see the change.
#[utoipa::path(
    patch, path = "/api/v1/workspaces/{ws}/rules/{id}", tag = "rules", operation_id = "update_rule",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The rule's id (`rule_…`).")),
    request_body = RuleBody,
    responses(
        (status = 200, description = "The rule as changed.", body = RuleView),
        (status = 404, description = "No such rule.", body = ErrorBody),
        (status = 422, description = "The resulting rule is refused, as on create.", body = ErrorBody),
    ),
)]
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

/// Delete a rule.
#[utoipa::path(
    delete, path = "/api/v1/workspaces/{ws}/rules/{id}", tag = "rules", operation_id = "delete_rule",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The rule's id (`rule_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such rule.", body = ErrorBody),
    ),
)]
async fn remove(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Result<StatusCode, ApiError> {
    ops::rules::remove(&app, &access.workspace, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
