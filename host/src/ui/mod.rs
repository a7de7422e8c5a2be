//! The dashboard at `/ui`: static assets embedded in the binary.

use axum::Router;

use crate::api::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
