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
use super::{ApiError, AppState, Json, PageParams, Path, Query, list};
use crate::app::App;
use crate::model::{Delivery, DeliveryStatus, Event, EventStatus, ReplayJob, rfc3339};
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

/// An event's deliveries and its derived status.
async fn event_view(app: &App, e: &Event) -> Result<Value, ApiError> {
    let deliveries = app.store().deliveries_of(e).await?;
    let completed = deliveries.iter().filter(|d| d.status == DeliveryStatus::Completed).count();
    let failed = deliveries.iter().filter(|d| d.status == DeliveryStatus::Failed).count();
    let status = EventStatus::of(deliveries.iter().map(|d| &d.status));
    let mut v = super::ingest::record(e);
    v["total_rules"] = json!(deliveries.len());
    v["completed_count"] = json!(completed);
    v["failed_count"] = json!(failed);
    v["status"] = json!(status);
    Ok(v)
}

pub fn delivery_view(d: &Delivery) -> Value {
    json!({
        "id": d.id, "event_id": d.event_id, "rule": d.rule, "connection": d.connection, "connector": d.connector,
        "connector_version": d.connector_version, "status": d.status, "attempt_count": d.attempt_count,
        "next_attempt_at": d.due_at.filter(|_| d.lease.is_none()).map(rfc3339),
        "last_error": d.last_error, "last_outcome": d.last_outcome,
        "created_at": rfc3339(d.created_at), "updated_at": rfc3339(d.updated_at),
    })
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
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
    Query(p): Query<EventParams>,
) -> Result<Json<Value>, ApiError> {
    let page = PageParams { limit: p.limit, cursor: p.cursor.clone() }.page()?;
    let status = match &p.status {
        Some(s) => Some(
            EventStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request("`status` must be completed, failed or processing"))?,
        ),
        None => None,
    };
    let q = EventQuery { event: p.event, resource: p.resource, resource_id: p.resource_id, status };
    let events = app.store().events(&ws, &q, &page).await?;
    let last = events.last().map(|e| e.id.clone());
    let mut records = Vec::with_capacity(events.len());
    for e in &events {
        records.push(event_view(&app, e).await?);
    }
    Ok(Json(list(records, page.limit, last)))
}

async fn load_event(app: &App, ws: &str, id: &str) -> Result<Event, ApiError> {
    app.store().event(ws, id).await?.ok_or_else(|| ApiError::not_found("event", id))
}

async fn show_event(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(event_view(&app, &load_event(&app, &ws, &id).await?).await?))
}

async fn payload(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let e = load_event(&app, &ws, &id).await?;
    Ok(Json(serde_json::from_str(&e.payload).unwrap_or(Value::Null)))
}

async fn event_deliveries(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let e = load_event(&app, &ws, &id).await?;
    let records: Vec<Value> = app.store().deliveries_of(&e).await?.iter().map(delivery_view).collect();
    Ok(Json(super::list_all(records)))
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
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
    Query(p): Query<DeliveryParams>,
) -> Result<Json<Value>, ApiError> {
    let page = PageParams { limit: p.limit, cursor: p.cursor.clone() }.page()?;
    let q = DeliveryQuery {
        status: parse_status(&p.status)?,
        connection: p.connection,
        rule: None,
        since: parse_time("since", &p.since)?,
        until: parse_time("until", &p.until)?,
    };
    let found = app.store().deliveries(&ws, &q, &page).await?;
    let last = found.last().map(|d| d.id.clone());
    Ok(Json(list(found.iter().map(delivery_view).collect(), page.limit, last)))
}

async fn load_delivery(app: &App, ws: &str, id: &str) -> Result<Delivery, ApiError> {
    Ok(ops::deliveries::load(app, ws, id).await?)
}

async fn show_delivery(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(delivery_view(&load_delivery(&app, &ws, &id).await?)))
}

async fn attempts(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    load_delivery(&app, &ws, &id).await?;
    let records: Vec<Value> =
        app.store().attempts(&id).await?.iter().map(|a| serde_json::to_value(a).unwrap_or(Value::Null)).collect();
    Ok(Json(super::list_all(records)))
}

async fn retry(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(delivery_view(&ops::deliveries::retry(&app, &ws, &id).await?)))
}

async fn cancel(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(delivery_view(&ops::deliveries::cancel(&app, &ws, &id).await?)))
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

fn replay_view(j: &ReplayJob) -> Value {
    json!({"id": j.id, "status": j.status, "connection": j.connection, "rule": j.rule, "since": j.since.map(rfc3339),
           "until": j.until.map(rfc3339), "matched": j.matched, "requeued": j.requeued, "state": j.state,
           "created_at": rfc3339(j.created_at)})
}

/// A fault in a field of the replay body: the same words as for the query
/// parameter of that name, as a 422 naming the field.
fn in_body(field: &'static str) -> impl FnOnce(ApiError) -> ApiError {
    move |e| ApiError::unprocessable(e.message).with_error(json!({"path": field}))
}

async fn create_replay(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path(ws): Path<String>,
    Json(b): Json<ReplayBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let job = ops::deliveries::replay(&app, &ws, filter).await?;
    Ok((StatusCode::CREATED, Json(replay_view(&job))))
}

async fn show_replay(
    State(app): State<AppState>,
    _access: WorkspaceAccess,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let job = app.store().replay(&ws, &id).await?.ok_or_else(|| ApiError::not_found("replay", &id))?;
    Ok(Json(replay_view(&job)))
}
