//! Prometheus metrics: what is recorded where, and `GET /metrics`.

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::api::AppState;
use crate::attempt::AttemptRecord;
use crate::store::Accepted;
use crate::store::Next as NextAttempt;

/// Count the events an ingest stored (not the repeats it recognised).
pub fn events_accepted(accepted: &[Accepted]) {
    let _ = accepted;
}

/// An attempt was recorded: by outcome and connector, and its duration.
pub fn attempt_finished(connector: &str, record: &AttemptRecord, next: &NextAttempt) {
    let _ = (connector, record, next);
}

/// Middleware on the ingest routes: requests by status, and their duration.
pub async fn track_ingest(request: Request, next: Next) -> Response {
    next.run(request).await
}

pub fn router() -> Router<AppState> {
    Router::new()
}
