//! The probes: `/healthz` (the process answers) and `/readyz` (it can do
//! its work: the store is not stuck on one operation and the delivery
//! workers run). Neither waits on the store, so a stuck store is reported,
//! not joined.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;

/// `/readyz` answers 503 while one store operation has run longer than this.
const STORE_STUCK_AFTER: Duration = Duration::from_secs(5);

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// `/healthz`'s answer.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"status": "ok"}))]
#[allow(dead_code)] // Described only: the handler answers `json!`.
struct Health {
    /// Always `ok`.
    status: String,
}

/// `/readyz`'s answer.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"store": {"ok": false, "stuck_for_ms": 7250}, "workers": true}))]
#[allow(dead_code)] // Described only: the handler answers `json!`.
struct Readiness {
    store: StoreReadiness,
    /// The delivery workers run.
    workers: bool,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Described only.
struct StoreReadiness {
    /// No store operation has run longer than 5 s.
    ok: bool,
    /// How long the stuck operation has run; only when `ok` is false.
    stuck_for_ms: Option<u64>,
}

/// Liveness: the process serves HTTP.
///
/// Never touches the store.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "The process answers.", body = Health)),
)]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the delivery workers run and no store operation is stuck.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready: a store operation is stuck or the workers are down.",
            body = Readiness),
    ),
)]
async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let stuck = app.store().busy_for().filter(|d| *d > STORE_STUCK_AFTER);
    let workers = app.workers_up();
    let status = if stuck.is_none() && workers { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let store = match stuck {
        Some(d) => json!({"ok": false, "stuck_for_ms": d.as_millis() as u64}),
        None => json!({"ok": true}),
    };
    (status, Json(json!({"store": store, "workers": workers})))
}
