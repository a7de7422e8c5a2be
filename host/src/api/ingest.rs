//! The ingest API, wire-compatible with the Meshes events API:
//! `POST /api/v1/events` and `/api/v1/events/bulk`. Routing happens here,
//! inside the same durable write as the event: a 201 means the event and
//! every delivery it caused are fsync'd.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tower_http::cors::{Any, CorsLayer};

use super::auth::ingest_key;
use super::error::ErrorBody;
use super::limits::{MAX_DEPTH, MAX_EVENT_FIELD_BYTES, nests_deeper};
use super::views::EventRecord;
use super::{ApiError, AppState};
use crate::app::App;
use crate::app::CompiledRule;
use crate::keys::hash_key;
use crate::model::{ApiKey, now_ms};
use crate::routing::plan::NewEvent;
use crate::store::{Accept, Accepted};

const MAX_BULK: usize = 100;

pub fn router(app: &App) -> Router<AppState> {
    // Publishable keys are browser-safe: answer CORS for any origin.
    let cors = CorsLayer::new().allow_origin(Any).allow_methods([Method::POST, Method::OPTIONS]).allow_headers(Any);
    Router::new()
        .route("/api/v1/events", post(emit))
        .route("/api/v1/events/bulk", post(emit_bulk))
        // Here rather than with the others in `api::router`: set before the
        // layers, the 405 answer passes through CORS (and so does a preflight).
        .method_not_allowed_fallback(super::extract::method_not_allowed)
        .layer(DefaultBodyLimit::max(app.config().ingest.max_body_bytes))
        .layer(cors)
}

/// An ingest request: the workspace key that sent it (checked before the
/// body is read), its JSON body, and its `Idempotency-Key` header.
struct Ingest {
    key: ApiKey,
    body: Value,
    idempotency_key: Option<String>,
}

impl FromRequest<AppState> for Ingest {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, ApiError> {
        let key = ingest_key(app, req.headers()).await?;
        let idempotency_key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
        // Checked now, answered after the body: an oversized body is a 413 whatever its type.
        let content_type = super::extract::require_json(req.headers());
        let bytes = Bytes::from_request(req, app).await.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(app.config().ingest.max_body_bytes),
            _ => ApiError::bad_request(format!("cannot read the body: {e}")),
        })?;
        content_type?;
        let body = serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
        Ok(Ingest { key, body, idempotency_key })
    }
}

/// One event to emit; fields it does not know are ignored, as Meshes does.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({
    "event": "page.completed", "resource": "onboarding_sequence", "resource_id": "workspace-setup",
    "payload": {"email": "alex@northstar.io", "sequence_step": 3}
}))]
#[allow(dead_code)] // Described only: `plan` reads the body field by field.
struct EventBody {
    /// The event name, 1 to 256 bytes, not blank.
    event: String,
    /// A non-empty object, at most 32 levels deep.
    payload: Map<String, Value>,
    /// 1 to 256 bytes; `global` when absent.
    resource: Option<String>,
    /// 1 to 256 bytes.
    resource_id: Option<String>,
    /// Your own idempotency key (1 to 256 bytes); not the event's id. The
    /// `Idempotency-Key` header wins over it.
    id: Option<String>,
    /// `event` if present.
    #[schema(rename = "type")]
    kind: Option<String>,
}

/// One item of a bulk answer, in the body's order: the event, or why it was refused.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Described only: `emit_bulk` builds the items as JSON.
#[serde(untagged)]
enum BulkItem {
    Event(EventRecord),
    Refused(ErrorBody),
}

/// A bulk body refused whole (`ErrorBody`), or one whose every item was
/// refused (`BulkIngested`).
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Described only.
#[serde(untagged)]
enum BulkRefusal {
    Whole(ErrorBody),
    Items(BulkIngested),
}

/// Emit one event.
///
/// A 201 means the event, and one delivery for every rule it matched, are on
/// disk.
#[utoipa::path(
    post, path = "/api/v1/events", tag = "ingest", operation_id = "emit_event",
    security(("publishable_key" = []), ("secret_key" = [])),
    params((
        "Idempotency-Key" = Option<String>, Header,
        description = "A repeat within 24 hours answers the first event and creates nothing.",
    )),
    request_body = EventBody,
    responses(
        (status = 201, description = "The event, accepted.", body = Ingested),
        (status = 200, description = "The idempotency key was seen: the original event.", body = Ingested),
        (status = 400, description = "The body is not JSON or does not describe an event.", body = ErrorBody),
        (status = 422, description = "`payload` is empty or nests deeper than 32 levels.", body = ErrorBody),
        (status = 429, description = "The workspace is over its ingest rate.", body = ErrorBody),
    ),
)]
async fn emit(
    State(app): State<AppState>,
    Ingest { key, body, idempotency_key }: Ingest,
) -> Result<Response, ApiError> {
    rate_limit(&app, &key, 1)?;
    let rules = app.rules_for(&key.workspace).await?;
    let accept = plan(&rules, &key, &body, idempotency_key)?;
    let mut accepted = app.store().accept_all(vec![accept]).await?;
    crate::metrics::events_accepted(&accepted);
    app.wake().notify_one();
    Ok(match accepted.pop() {
        Some(Accepted::New(e)) => (StatusCode::CREATED, Json(Ingested { event: (&e).into() })).into_response(),
        Some(Accepted::Duplicate(e)) => (StatusCode::OK, Json(Ingested { event: (&e).into() })).into_response(),
        None => return Err(ApiError::unavailable("the store did not answer")),
    })
}

/// Emit 1 to 100 events, each accepted or refused on its own.
#[utoipa::path(
    post, path = "/api/v1/events/bulk", tag = "ingest", operation_id = "emit_events_bulk",
    security(("publishable_key" = []), ("secret_key" = [])),
    request_body(content = Vec<EventBody>, description = "1 to 100 events; each item's `id` is its idempotency key."),
    responses(
        (status = 201, description = "Every item was accepted.", body = BulkIngested),
        (status = 207, description = "Some items were accepted; `error_count` says how many were not.",
            body = BulkIngested),
        (status = 400, description = "The body is not a JSON array of 1 to 100 items, or no item was accepted.",
            body = inline(BulkRefusal)),
        (status = 429, description = "The workspace is over its ingest rate.", body = ErrorBody),
    ),
)]
async fn emit_bulk(State(app): State<AppState>, Ingest { key, body, .. }: Ingest) -> Result<Response, ApiError> {
    let Value::Array(items) = body else {
        return Err(ApiError::bad_request("bulk body must be a JSON array of events"));
    };
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(ApiError::bad_request(format!("bulk takes 1 to {MAX_BULK} events, got {}", items.len())));
    }
    rate_limit(&app, &key, items.len())?;
    let rules = app.rules_for(&key.workspace).await?;
    let planned: Vec<Result<Accept, ApiError>> = items.iter().map(|item| plan(&rules, &key, item, None)).collect();
    let accepts: Vec<Accept> = planned.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let accepted = if accepts.is_empty() { Vec::new() } else { app.store().accept_all(accepts).await? };
    crate::metrics::events_accepted(&accepted);
    let mut accepted = accepted.into_iter();
    app.wake().notify_one();
    let mut errors = 0;
    let records: Vec<Value> = planned
        .into_iter()
        .map(|p| match p {
            Ok(_) => match accepted.next() {
                Some(Accepted::New(e) | Accepted::Duplicate(e)) => json!(EventRecord::from(&e)),
                None => json!(ApiError::unavailable("not stored").body()),
            },
            Err(e) => {
                errors += 1;
                json!(e.body())
            }
        })
        .collect();
    let status = match errors {
        0 => StatusCode::CREATED,
        e if e == records.len() => StatusCode::BAD_REQUEST,
        _ => StatusCode::MULTI_STATUS,
    };
    let answer = BulkIngested { count: records.len() - errors, error_count: (errors > 0).then_some(errors), records };
    Ok((status, Json(answer)).into_response())
}

fn rate_limit(app: &App, key: &ApiKey, events: usize) -> Result<(), ApiError> {
    app.take_ingest(&key.workspace, events, now_ms()).map_err(|retry_after| ApiError {
        retry_after: Some(retry_after),
        ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, format!("workspace `{}` is over its ingest rate", key.workspace))
    })
}

/// Validate one event body and plan its deliveries.
fn plan(
    rules: &[CompiledRule],
    key: &ApiKey,
    body: &Value,
    idempotency_header: Option<String>,
) -> Result<Accept, ApiError> {
    let Value::Object(obj) = body else { return Err(ApiError::bad_request("each event must be a JSON object")) };
    let name = required_str(obj, "event")?;
    let payload = match obj.get("payload") {
        Some(Value::Object(p)) if p.is_empty() => return Err(ApiError::unprocessable("`payload` is empty")),
        // Parsed, so within serde_json's 128 levels; the payload is walked by
        // filters and templates on every delivery, so it is held to less.
        Some(p @ Value::Object(_)) if nests_deeper(p, MAX_DEPTH) => {
            return Err(ApiError::invalid("payload", format!("nests deeper than {MAX_DEPTH} levels")));
        }
        Some(Value::Object(p)) => p,
        Some(_) => return Err(ApiError::bad_request("`payload` must be a JSON object")),
        None => return Err(ApiError::bad_request("`payload` is required")),
    };
    let resource = optional_str(obj, "resource")?.unwrap_or("global").to_string();
    let resource_id = optional_str(obj, "resource_id")?.map(str::to_string);
    if let Some(t) = optional_str(obj, "type")?
        && t != "event"
    {
        return Err(ApiError::bad_request(format!("`type` must be \"event\", got \"{t}\"")));
    }
    let client_id = optional_str(obj, "id")?;
    let idempotency = idempotency_header.or(client_id.map(str::to_string)).map(|k| hash_key(&k));
    let new = NewEvent {
        workspace: key.workspace.clone(),
        event: name.to_string(),
        resource,
        resource_id,
        payload: payload.clone(),
        created_by: key.id.clone(),
        idempotency,
    };
    Ok(crate::routing::plan::plan(rules, new, now_ms()))
}

fn required_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match obj.get(field) {
        Some(Value::String(s)) if s.trim().is_empty() => Err(ApiError::bad_request(format!("`{field}` is empty"))),
        Some(Value::String(s)) if s.len() > MAX_EVENT_FIELD_BYTES => {
            Err(ApiError::bad_request(format!("`{field}` is longer than {MAX_EVENT_FIELD_BYTES} bytes")))
        }
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad_request(format!("`{field}` must be a string"))),
        None => Err(ApiError::bad_request(format!("`{field}` is required"))),
    }
}

fn optional_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => required_str(obj, field).map(Some),
    }
}

/// Ingest's answer for one event: `{"event": record}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"event": {
    "id": "evt_01JQ4ZB6D1X3Z5B7D9F1H3K5M7", "type": "event", "event": "page.completed",
    "workspace": "ws-01JQ4Z8X2M7R5T9V3B6N1C0D8E", "created_by": "key-01JQ4Z8X3A1B2C3D4E5F6G7H8J",
    "created_at": "2026-03-21T15:10:00.120Z", "resource": "onboarding_sequence", "resource_id": "workspace-setup"
}}))]
struct Ingested {
    event: EventRecord,
}

/// The bulk answer: a record or an error per item, in the body's order.
#[derive(Serialize, utoipa::ToSchema)]
struct BulkIngested {
    /// Items accepted.
    count: usize,
    /// Items refused; absent when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_count: Option<usize>,
    #[schema(value_type = Vec<BulkItem>)]
    records: Vec<Value>,
}
