//! The ingest API, wire-compatible with the Meshes events API:
//! `POST /api/v1/events` and `/api/v1/events/bulk`. Routing happens here,
//! inside the same durable write as the event: a 201 means the event and
//! every delivery it caused are fsync'd.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use tower_http::cors::{Any, CorsLayer};

use super::auth::{hash_key, ingest_key};
use super::limits::{MAX_DEPTH, MAX_EVENT_FIELD_BYTES, nests_deeper};
use super::{ApiError, AppState};
use crate::app::App;
use crate::app::CompiledRule;
use crate::model::{ApiKey, Delivery, DeliveryStatus, Event, new_id, now_ms, rfc3339};
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

async fn emit(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = ingest_key(&app, &headers).await?;
    let value = json_body(&app, &headers, body)?;
    rate_limit(&app, &key, 1)?;
    let idempotency = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let rules = app.rules_for(&key.workspace).await?;
    let accept = plan(&rules, &key, &value, idempotency)?;
    let mut accepted = app.store().accept_all(vec![accept]).await?;
    app.wake().notify_one();
    Ok(match accepted.pop() {
        Some(Accepted::New(e)) => (StatusCode::CREATED, Json(json!({"event": record(&e)}))).into_response(),
        Some(Accepted::Duplicate(e)) => (StatusCode::OK, Json(json!({"event": record(&e)}))).into_response(),
        None => return Err(ApiError::unavailable("the store did not answer")),
    })
}

async fn emit_bulk(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = ingest_key(&app, &headers).await?;
    let value = json_body(&app, &headers, body)?;
    let Value::Array(items) = value else {
        return Err(ApiError::bad_request("bulk body must be a JSON array of events"));
    };
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(ApiError::bad_request(format!("bulk takes 1 to {MAX_BULK} events, got {}", items.len())));
    }
    rate_limit(&app, &key, items.len())?;
    let rules = app.rules_for(&key.workspace).await?;
    let planned: Vec<Result<Accept, ApiError>> = items.iter().map(|item| plan(&rules, &key, item, None)).collect();
    let accepts: Vec<Accept> = planned.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut accepted = if accepts.is_empty() { Vec::new() } else { app.store().accept_all(accepts).await? }.into_iter();
    app.wake().notify_one();
    let mut errors = 0;
    let records: Vec<Value> = planned
        .into_iter()
        .map(|p| match p {
            Ok(_) => match accepted.next() {
                Some(Accepted::New(e) | Accepted::Duplicate(e)) => record(&e),
                None => json!({"message": "not stored"}),
            },
            Err(e) => {
                errors += 1;
                e.body()
            }
        })
        .collect();
    let count = records.len() - errors;
    let (status, body) = match errors {
        0 => (StatusCode::CREATED, json!({"count": count, "records": records})),
        e if e == records.len() => {
            (StatusCode::BAD_REQUEST, json!({"count": 0, "error_count": errors, "records": records}))
        }
        _ => (StatusCode::MULTI_STATUS, json!({"count": count, "error_count": errors, "records": records})),
    };
    Ok((status, Json(body)).into_response())
}

fn rate_limit(app: &App, key: &ApiKey, events: usize) -> Result<(), ApiError> {
    app.take_ingest(&key.workspace, events, now_ms()).map_err(|retry_after| ApiError {
        retry_after: Some(retry_after),
        ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, format!("workspace `{}` is over its ingest rate", key.workspace))
    })
}

/// The body as JSON, or the error that names why not.
fn json_body(app: &App, headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(app.config().ingest.max_body_bytes),
        _ => ApiError::bad_request(format!("cannot read the body: {e}")),
    })?;
    super::extract::require_json(headers)?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
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

    let now = now_ms();
    let event_id = new_id("evt_");
    let payload_value = Value::Object(payload.clone());
    let doc = json!({"event": name, "resource": resource, "resource_id": resource_id, "payload": payload_value});
    let deliveries: Vec<Delivery> = rules
        .iter()
        .filter(|c| {
            let r = &c.rule;
            r.event == name
                && r.resource.as_ref().is_none_or(|x| *x == resource)
                && r.resource_id.as_ref().is_none_or(|x| Some(x) == resource_id.as_ref())
                && c.filter.as_ref().is_none_or(|f| f.matches(&doc))
        })
        .map(|c| Delivery {
            id: new_id("dlv_"),
            workspace: key.workspace.clone(),
            event_id: event_id.clone(),
            rule: c.rule.id.clone(),
            connection: c.rule.connection.clone(),
            connector: c.connector.clone(),
            action: c.rule.action.clone(),
            fields: c.rule.fields.clone(),
            status: DeliveryStatus::Pending,
            attempt_count: 0,
            due_at: Some(now),
            lease: None,
            connector_version: None,
            last_error: None,
            last_outcome: None,
            interruptions: 0,
            created_at: now,
            updated_at: now,
        })
        .collect();
    let event = Event {
        id: event_id,
        workspace: key.workspace.clone(),
        event: name.to_string(),
        resource,
        resource_id,
        payload: payload_value.to_string(),
        created_by: key.id.clone(),
        created_at: now,
        delivery_ids: deliveries.iter().map(|d| d.id.clone()).collect(),
    };
    Ok(Accept { event, deliveries, idempotency })
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

/// The Meshes event record.
pub fn record(e: &Event) -> Value {
    json!({
        "id": e.id,
        "type": "event",
        "event": e.event,
        "workspace": e.workspace,
        "created_by": e.created_by,
        "created_at": rfc3339(e.created_at),
        "resource": e.resource,
        "resource_id": e.resource_id,
    })
}
