//! Events, deliveries, attempts and replays: what happened to
//! everything a workspace emitted, and the levers to retry, cancel and replay;
//! and re-running an attempt on another connector version (`ops::rerun`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::WorkspaceAccess;
use super::error::ErrorBody;
use super::limits::{check_name, check_optional_name};
use super::openapi::WorkspacePath;
use super::views::{AttemptView, DeliveryView, EventView, List, ReplayView};
use super::{Answer, ApiError, AppState, Id, Json, PageParams, Path, Query};
use crate::app::App;
use crate::model::{DeliveryStatus, Event, EventStatus};
use crate::ops;
use crate::ops::rerun::Rerun;
use crate::store::{DeliveryQuery, EventQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workspaces/{ws}/events", get(list_events))
        .route("/api/v1/workspaces/{ws}/events/{id}", get(show_event))
        .route("/api/v1/workspaces/{ws}/events/{id}/payload", get(payload))
        .route("/api/v1/workspaces/{ws}/events/{id}/deliveries", get(event_deliveries))
        .route("/api/v1/workspaces/{ws}/deliveries", get(list_deliveries))
        .route("/api/v1/workspaces/{ws}/deliveries/{id}", get(show_delivery))
        .route("/api/v1/workspaces/{ws}/deliveries/{id}/attempts", get(attempts))
        .route("/api/v1/workspaces/{ws}/deliveries/{id}/retry", post(retry))
        .route("/api/v1/workspaces/{ws}/deliveries/{id}/cancel", post(cancel))
        .route("/api/v1/workspaces/{ws}/deliveries/{id}/attempts/{n}/rerun", post(rerun))
        .route("/api/v1/workspaces/{ws}/replays", post(create_replay))
        .route("/api/v1/workspaces/{ws}/replays/{id}", get(show_replay))
}

/// An event with how its deliveries stand.
async fn event_view(app: &App, e: &Event) -> Result<EventView, ApiError> {
    Ok(EventView::new(e, &app.store().deliveries_of(e).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventParams {
    /// Only events of this name.
    event: Option<String>,
    /// Only events on this resource.
    resource: Option<String>,
    /// Only events on this resource id.
    resource_id: Option<String>,
    /// Only events in this status, as their deliveries stand.
    #[param(value_type = Option<EventStatus>)]
    status: Option<String>,
    #[param(ignore)]
    limit: Option<usize>,
    #[param(ignore)]
    cursor: Option<String>,
}

/// List the workspace's events, each with how its deliveries stand.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/events", tag = "events", operation_id = "list_events",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, EventParams, PageParams),
    responses(
        (status = 200, description = "A page of events.", body = List<EventView>),
        (status = 400, description = "A query parameter out of range or unknown `status`.", body = ErrorBody),
    ),
)]
async fn list_events(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Query(p): Query<EventParams>,
) -> Answer<List<EventView>> {
    let page = PageParams { limit: p.limit, cursor: p.cursor.clone() }.page()?;
    let status = match &p.status {
        Some(s) => Some(
            EventStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request("`status` must be completed, failed or processing"))?,
        ),
        None => None,
    };
    let q = EventQuery { event: p.event, resource: p.resource, resource_id: p.resource_id, status };
    let events = app.store().events(&access.workspace, &q, &page).await?;
    let last = events.last().map(|e| e.id.clone());
    let mut records = Vec::with_capacity(events.len());
    for e in &events {
        records.push(event_view(&app, e).await?);
    }
    Ok(Json(List::page(records, page.limit, last)))
}

async fn load_event(app: &App, ws: &str, id: &str) -> Result<Event, ApiError> {
    app.store().event(ws, id).await?.ok_or_else(|| ApiError::not_found("event", id))
}

/// One event, with how its deliveries stand.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/events/{id}", tag = "events", operation_id = "get_event",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The event's id (`evt_…`).")),
    responses(
        (status = 200, description = "The event.", body = EventView),
        (status = 404, description = "No such event.", body = ErrorBody),
    ),
)]
async fn show_event(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<EventView> {
    Ok(Json(event_view(&app, &load_event(&app, &access.workspace, &id).await?).await?))
}

/// An event's payload, exactly as emitted.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/events/{id}/payload", tag = "events", operation_id = "get_event_payload",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The event's id (`evt_…`).")),
    responses(
        (status = 200, description = "The payload (a JSON object).", body = Object),
        (status = 404, description = "No such event.", body = ErrorBody),
    ),
)]
async fn payload(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<Value> {
    let e = load_event(&app, &access.workspace, &id).await?;
    Ok(Json(serde_json::from_str(&e.payload).unwrap_or(Value::Null)))
}

/// An event's deliveries, one per rule it matched (not paginated).
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/events/{id}/deliveries", tag = "events",
    operation_id = "list_event_deliveries",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The event's id (`evt_…`).")),
    responses(
        (status = 200, description = "The deliveries.", body = List<DeliveryView>),
        (status = 404, description = "No such event.", body = ErrorBody),
    ),
)]
async fn event_deliveries(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Id(id): Id,
) -> Answer<List<DeliveryView>> {
    let e = load_event(&app, &access.workspace, &id).await?;
    Ok(Json(List::all(app.store().deliveries_of(&e).await?.iter().map(Into::into).collect())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryParams {
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Only this connection's deliveries.
    connection: Option<String>,
    /// Created at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Created before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    #[param(ignore)]
    limit: Option<usize>,
    #[param(ignore)]
    cursor: Option<String>,
}

fn parse_time(field: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_ref()
        .map(|t| {
            t.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|_| ApiError::bad_request(format!("`{field}` must be an RFC 3339 time")))
        })
        .transpose()
}

fn parse_status(v: &Option<String>) -> Result<Option<DeliveryStatus>, ApiError> {
    v.as_ref()
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "`status` must be pending, processing, retrying, waiting, completed, failed or canceled",
                )
            })
        })
        .transpose()
}

/// List the workspace's deliveries.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/deliveries", tag = "deliveries", operation_id = "list_deliveries",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, DeliveryParams, PageParams),
    responses(
        (status = 200, description = "A page of deliveries.", body = List<DeliveryView>),
        (status = 400, description = "A query parameter out of range, an unknown `status` or a bad time.",
            body = ErrorBody),
    ),
)]
async fn list_deliveries(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Query(p): Query<DeliveryParams>,
) -> Answer<List<DeliveryView>> {
    let page = PageParams { limit: p.limit, cursor: p.cursor.clone() }.page()?;
    let q = DeliveryQuery {
        status: parse_status(&p.status)?,
        connection: p.connection,
        rule: None,
        since: parse_time("since", &p.since)?,
        until: parse_time("until", &p.until)?,
    };
    let found = app.store().deliveries(&access.workspace, &q, &page).await?;
    let last = found.last().map(|d| d.id.clone());
    Ok(Json(List::page(found.iter().map(Into::into).collect(), page.limit, last)))
}

/// One delivery.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/deliveries/{id}", tag = "deliveries", operation_id = "get_delivery",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The delivery's id (`dlv_…`).")),
    responses(
        (status = 200, description = "The delivery.", body = DeliveryView),
        (status = 404, description = "No such delivery.", body = ErrorBody),
    ),
)]
async fn show_delivery(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<DeliveryView> {
    Ok(Json((&ops::deliveries::load(&app, &access.workspace, &id).await?).into()))
}

/// A delivery's attempts, oldest first (not paginated).
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/deliveries/{id}/attempts", tag = "deliveries",
    operation_id = "list_attempts",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The delivery's id (`dlv_…`).")),
    responses(
        (status = 200, description = "The attempts, as recorded.", body = List<AttemptView>),
        (status = 404, description = "No such delivery.", body = ErrorBody),
    ),
)]
async fn attempts(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<List<AttemptView>> {
    ops::deliveries::load(&app, &access.workspace, &id).await?;
    Ok(Json(List::all(app.store().attempts(&id).await?)))
}

/// Retry a delivery now.
///
/// The delivery is queued for an immediate attempt, whatever its status; its
/// attempt count is kept.
#[utoipa::path(
    post, path = "/api/v1/workspaces/{ws}/deliveries/{id}/retry", tag = "deliveries", operation_id = "retry_delivery",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The delivery's id (`dlv_…`).")),
    responses(
        (status = 200, description = "The delivery, `pending` or `retrying`.", body = DeliveryView),
        (status = 404, description = "No such delivery.", body = ErrorBody),
        (status = 425, description = "An attempt is in flight or due within a second.", body = ErrorBody),
    ),
)]
async fn retry(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<DeliveryView> {
    Ok(Json((&ops::deliveries::retry(&app, &access.workspace, &id).await?).into()))
}

/// Cancel a delivery that is not final.
#[utoipa::path(
    post, path = "/api/v1/workspaces/{ws}/deliveries/{id}/cancel", tag = "deliveries",
    operation_id = "cancel_delivery",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The delivery's id (`dlv_…`).")),
    responses(
        (status = 200, description = "The delivery, `canceled`.", body = DeliveryView),
        (status = 404, description = "No such delivery.", body = ErrorBody),
        (status = 409, description = "The delivery is already final.", body = ErrorBody),
    ),
)]
async fn cancel(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<DeliveryView> {
    Ok(Json((&ops::deliveries::cancel(&app, &access.workspace, &id).await?).into()))
}

/// The `{id}` and `{n}` of an attempt's routes.
#[derive(Deserialize)]
struct AttemptPath {
    id: String,
    n: u32,
}

/// The version to re-run an attempt on.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": "2.0.0"}))]
struct RerunBody {
    /// A registered version of the delivery's connector (blocked ones too),
    /// or `latest`.
    version: String,
}

/// Re-run an attempt on another connector version, against its recorded
/// responses.
///
/// The version runs on the delivery's event and fields with the
/// connection's settings and secrets, and its i-th request is answered with
/// the attempt's i-th recorded response or error (bodies as recorded: the
/// first 4 KiB, secrets scrubbed); a request past them fails as
/// interrupted. Nothing leaves the host and nothing is stored: no attempt is
/// recorded and the delivery is unchanged.
#[utoipa::path(
    post, path = "/api/v1/workspaces/{ws}/deliveries/{id}/attempts/{n}/rerun", tag = "deliveries",
    operation_id = "rerun_attempt",
    security(("admin_token" = []), ("secret_key" = [])),
    params(
        WorkspacePath,
        ("id" = String, Path, description = "The delivery's id (`dlv_…`)."),
        ("n" = u32, Path, description = "The attempt's number (1-based)."),
    ),
    request_body = RerunBody,
    responses(
        (status = 200, description = "The attempt as it would have been recorded, and how it differs.", body = Rerun),
        (status = 404, description = "No such delivery or attempt.", body = ErrorBody),
        (status = 422, description = "`version` is not a registered version of the connector, or the delivery's \
            event or connection is gone.", body = ErrorBody),
    ),
)]
async fn rerun(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Path(p): Path<AttemptPath>,
    Json(b): Json<RerunBody>,
) -> Answer<Rerun> {
    check_name("version", &b.version)?;
    Ok(Json(ops::rerun::rerun(&app, &access.workspace, &p.id, p.n, &b.version).await?))
}

/// Which deliveries a replay queues again; `{}` replays every failed one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "failed", "connection": "conn_01JQ4Z9A7K3M5P8R2T4V6X8Z0B"}))]
struct ReplayBody {
    /// `failed` (the default), `completed` or `canceled`.
    #[schema(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Only this connection's deliveries.
    connection: Option<String>,
    /// Only this rule's deliveries.
    rule: Option<String>,
    /// Created at or after this time (RFC 3339).
    #[schema(format = DateTime)]
    since: Option<String>,
    /// Created before this time (RFC 3339).
    #[schema(format = DateTime)]
    until: Option<String>,
}

/// A fault in a field of the replay body: the same words as for the query
/// parameter of that name, as a 422 naming the field.
fn in_body(field: &'static str) -> impl FnOnce(ApiError) -> ApiError {
    move |e| ApiError::unprocessable(e.message).with_error(json!({"path": field}))
}

/// Replay deliveries.
///
/// Queue again, in bulk, every delivery of the workspace that matches. The
/// replay runs before the answer.
#[utoipa::path(
    post, path = "/api/v1/workspaces/{ws}/replays", tag = "deliveries", operation_id = "create_replay",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath),
    request_body = ReplayBody,
    responses(
        (status = 201, description = "The replay job.", body = ReplayView),
        (status = 422, description = "A bad status or time, or a reference out of bounds; `details.path` names \
            the field.", body = ErrorBody),
    ),
)]
async fn create_replay(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Json(b): Json<ReplayBody>,
) -> Result<(StatusCode, Json<ReplayView>), ApiError> {
    check_optional_name("connection", b.connection.as_deref())?;
    check_optional_name("rule", b.rule.as_deref())?;
    let status = parse_status(&b.status.or(Some("failed".into()))).map_err(in_body("status"))?;
    let filter = ops::deliveries::ReplayFilter {
        status: status.unwrap_or(DeliveryStatus::Failed),
        connection: b.connection,
        rule: b.rule,
        since: parse_time("since", &b.since).map_err(in_body("since"))?,
        until: parse_time("until", &b.until).map_err(in_body("until"))?,
    };
    let job = ops::deliveries::replay(&app, &access.workspace, filter).await?;
    Ok((StatusCode::CREATED, Json((&job).into())))
}

/// One replay job.
#[utoipa::path(
    get, path = "/api/v1/workspaces/{ws}/replays/{id}", tag = "deliveries", operation_id = "get_replay",
    security(("admin_token" = []), ("secret_key" = [])),
    params(WorkspacePath, ("id" = String, Path, description = "The replay's id (`rpl_…`).")),
    responses(
        (status = 200, description = "The replay job.", body = ReplayView),
        (status = 404, description = "No such replay.", body = ErrorBody),
    ),
)]
async fn show_replay(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<ReplayView> {
    let job = app.store().replay(&access.workspace, &id).await?.ok_or_else(|| ApiError::not_found("replay", &id))?;
    Ok(Json((&job).into()))
}
