//! Rules over HTTP: when an event matches, run an action of a connection
//! with templated fields. Event names and resources are held here to what
//! ingest accepts, references to the name bounds (`api::limits`); what a
//! rule refers to, its filter and its templates are checked by `ops::rules`,
//! with the path of any fault in the message and the body's `path`. A
//! preview (`ops::preview`) runs the same checks on a rule it does not save
//! and reports every fault in its answer instead.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::WorkspaceAccess;
use super::error::ErrorBody;
use super::limits::{check_event_field, check_name};
use super::openapi::WorkspacePath;
use super::views::{List, RuleView};
use super::{Answer, ApiError, AppState, Id, Json, PageParams, Query};
use crate::model::{Rule, new_id, now_ms};
use crate::ops;
use crate::ops::preview::{Preview, PreviewError, PreviewEvent};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workspaces/{ws}/rules", get(list_rules).post(create))
        .route("/api/v1/workspaces/{ws}/rules/preview", post(preview))
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
    bounds(r).into_iter().collect()
}

/// Each bound of a rule, checked.
fn bounds(r: &Rule) -> [Result<(), ApiError>; 5] {
    let optional =
        |field: &str, value: &Option<String>| value.as_deref().map_or(Ok(()), |v| check_event_field(field, v));
    [
        check_event_field("event", &r.event),
        optional("resource", &r.resource),
        optional("resource_id", &r.resource_id),
        check_name("connection", &r.connection),
        check_name("action", &r.action),
    ]
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

/// A rule to try (the body of a create) and the event to try it on: one
/// given here, or one of the workspace's by `event_id` — exactly one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "rule": {"event": "page.completed", "connection": "conn_01JQ4Z9A7K3M5P8R2T4V6X8Z0B", "action": "send_webhook",
             "fields": {"body": {"email": "{{ payload.email }}"}}},
    "event": {"event": "page.completed", "resource": "onboarding_sequence", "payload": {"email": "alex@northstar.io"}}
}))]
struct PreviewBody {
    rule: RuleBody,
    event: Option<PreviewEventBody>,
    /// One of the workspace's events (`evt_…`).
    event_id: Option<String>,
}

/// An event as it would be emitted.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewEventBody {
    /// The event name, 1 to 256 bytes, not blank.
    event: String,
    /// 1 to 256 bytes; `global` when absent.
    resource: Option<String>,
    /// 1 to 256 bytes.
    resource_id: Option<String>,
    /// A JSON object.
    payload: Map<String, Value>,
}

/// Preview a rule: whether it matches an event, the fields it renders, and
/// everything wrong with it.
///
/// Nothing is saved. Faults of the rule, including those creating it would
/// refuse, are in the answer's `errors`, with a 200; only a malformed
/// request or a bad event is refused.
#[utoipa::path(
    post, path = "/api/v1/workspaces/{ws}/rules/preview", tag = "rules", operation_id = "preview_rule",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath),
    request_body = PreviewBody,
    responses(
        (status = 200, description = "What the rule would do with the event.", body = Preview),
        (status = 404, description = "No such workspace, or no such event (`event_id`).", body = ErrorBody),
        (status = 422, description = "Neither or both of `event` and `event_id`, or an event out of bounds; \
            `details.path` names the field.", body = ErrorBody),
    ),
)]
async fn preview(State(app): State<AppState>, access: WorkspaceAccess, Json(b): Json<PreviewBody>) -> Answer<Preview> {
    let event = match (b.event, b.event_id) {
        (Some(e), None) => {
            check_event_field("event.event", &e.event)?;
            for (field, value) in [("event.resource", &e.resource), ("event.resource_id", &e.resource_id)] {
                value.as_deref().map_or(Ok(()), |v| check_event_field(field, v))?;
            }
            let resource = e.resource.unwrap_or_else(|| "global".into());
            PreviewEvent::Given { event: e.event, resource, resource_id: e.resource_id, payload: e.payload }
        }
        (None, Some(id)) => {
            check_name("event_id", &id)?;
            PreviewEvent::Stored(id)
        }
        (None, None) => return Err(ApiError::invalid("event", "or `event_id` is required")),
        (Some(_), Some(_)) => return Err(ApiError::invalid("event_id", "cannot be given with `event`")),
    };
    let r = b.rule;
    let mut known = Vec::new();
    for (field, missing) in
        [("event", r.event.is_none()), ("connection", r.connection.is_none()), ("action", r.action.is_none())]
    {
        if missing {
            known.push(PreviewError::new(field, "is required"));
        }
    }
    let now = now_ms();
    let rule = Rule {
        id: "rule_preview".into(),
        workspace: access.workspace,
        event: r.event.unwrap_or_default(),
        resource: r.resource,
        resource_id: r.resource_id,
        filter: r.filter,
        connection: r.connection.unwrap_or_default(),
        action: r.action.unwrap_or_default(),
        fields: r.fields.unwrap_or_else(|| json!({})),
        active: r.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    // Out of bounds is a fault of the rule like any other here; one per field.
    for fault in bound_faults(&rule) {
        if !known.iter().any(|k| k.path == fault.path) {
            known.push(fault);
        }
    }
    Ok(Json(ops::preview::preview(&app, &rule, event, known).await?))
}

/// Every bound `r` breaks, as preview faults.
fn bound_faults(r: &Rule) -> Vec<PreviewError> {
    bounds(r)
        .into_iter()
        .filter_map(Result::err)
        .map(|e| {
            let path = e.error.as_ref().and_then(|d| d["path"].as_str()).unwrap_or_default().to_string();
            // `ApiError::invalid` names the field in the message; the path says it here.
            let message = e.message.strip_prefix(&format!("`{path}` ")).unwrap_or(&e.message).to_string();
            PreviewError::new(path, message)
        })
        .collect()
}
