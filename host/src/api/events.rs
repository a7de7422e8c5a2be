//! Events, deliveries, attempts and replays: what happened to
//! everything a workspace emitted, and the levers to retry, cancel and replay.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::WorkspaceAccess;
use super::limits::check_optional_name;
use super::views::{AttemptView, DeliveryView, EventView, List, ReplayView};
use super::{Answer, ApiError, AppState, Id, Json, PageParams, Query};
use crate::app::App;
use crate::model::{DeliveryStatus, Event, EventStatus};
use crate::ops;
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
        .route("/api/v1/workspaces/{ws}/replays", post(create_replay))
        .route("/api/v1/workspaces/{ws}/replays/{id}", get(show_replay))
}

/// An event with how its deliveries stand.
async fn event_view(app: &App, e: &Event) -> Result<EventView, ApiError> {
    Ok(EventView::new(e, &app.store().deliveries_of(e).await?))
}

#[derive(Deserialize)]
struct EventParams {
    event: Option<String>,
    resource: Option<String>,
    resource_id: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

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

async fn show_event(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<EventView> {
    Ok(Json(event_view(&app, &load_event(&app, &access.workspace, &id).await?).await?))
}

async fn payload(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<Value> {
    let e = load_event(&app, &access.workspace, &id).await?;
    Ok(Json(serde_json::from_str(&e.payload).unwrap_or(Value::Null)))
}

async fn event_deliveries(
    State(app): State<AppState>,
    access: WorkspaceAccess,
    Id(id): Id,
) -> Answer<List<DeliveryView>> {
    let e = load_event(&app, &access.workspace, &id).await?;
    Ok(Json(List::all(app.store().deliveries_of(&e).await?.iter().map(Into::into).collect())))
}

#[derive(Deserialize)]
struct DeliveryParams {
    status: Option<String>,
    connection: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
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

async fn show_delivery(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<DeliveryView> {
    Ok(Json((&ops::deliveries::load(&app, &access.workspace, &id).await?).into()))
}

async fn attempts(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<List<AttemptView>> {
    ops::deliveries::load(&app, &access.workspace, &id).await?;
    Ok(Json(List::all(app.store().attempts(&id).await?)))
}

async fn retry(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<DeliveryView> {
    Ok(Json((&ops::deliveries::retry(&app, &access.workspace, &id).await?).into()))
}

async fn cancel(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<DeliveryView> {
    Ok(Json((&ops::deliveries::cancel(&app, &access.workspace, &id).await?).into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    status: Option<String>,
    connection: Option<String>,
    rule: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// A fault in a field of the replay body: the same words as for the query
/// parameter of that name, as a 422 naming the field.
fn in_body(field: &'static str) -> impl FnOnce(ApiError) -> ApiError {
    move |e| ApiError::unprocessable(e.message).with_error(json!({"path": field}))
}

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

async fn show_replay(State(app): State<AppState>, access: WorkspaceAccess, Id(id): Id) -> Answer<ReplayView> {
    let job = app.store().replay(&access.workspace, &id).await?.ok_or_else(|| ApiError::not_found("replay", &id))?;
    Ok(Json((&job).into()))
}
