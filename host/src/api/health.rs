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

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

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
