//! The HTTP API: one `router()` per resource, merged here. Handlers are
//! extract → call → view: access comes in as an extractor (`auth`), the
//! state change is an `ops` call, the answer a `views` type; every refusal
//! is an `ApiError`, and JSON: the extractors in `extract` and the 404/405
//! fallbacks set here stand in for axum's plain-text answers.

pub mod access;
pub mod auth;
pub mod connections;
pub mod connector_views;
pub mod connectors;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod ingest;
pub mod limits;
pub mod openapi;
pub mod rules;
pub mod views;
pub mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use serde::Deserialize;

use crate::app::App;
pub use error::ApiError;
pub use extract::{Id, Json, Path, Query};

pub type AppState = Arc<App>;

/// What a handler answers: a JSON view, or a refusal.
pub type Answer<T> = Result<Json<T>, ApiError>;

pub fn router(app: AppState) -> Router {
    let management = Router::new()
        .merge(workspaces::router())
        .merge(connections::router())
        .merge(connectors::router())
        .merge(rules::router())
        .merge(events::router())
        // A route with a limit of its own (connector uploads) keeps it: that layer is inner.
        .layer(DefaultBodyLimit::max(limits::MAX_BODY_BYTES));
    Router::new()
        .merge(health::router())
        .merge(ingest::router(&app).layer(axum::middleware::from_fn(crate::metrics::track_ingest)))
        .merge(management)
        .merge(openapi::router())
        .merge(crate::metrics::router())
        .merge(crate::ui::router())
        // Last: it applies to the routes present when it is called.
        .method_not_allowed_fallback(extract::method_not_allowed)
        .fallback(extract::not_found)
        // Outermost: every answer, the fallbacks' too, gets its request id.
        .layer(axum::middleware::from_fn(access::layer))
        .with_state(app)
}

/// How many records one page may hold.
pub const PAGE_LIMIT: std::ops::RangeInclusive<usize> = 1..=200;
/// A cursor is a record id; anything much longer is not one.
pub const MAX_CURSOR_BYTES: usize = 256;

/// `?limit=&cursor=` as the management API defines them. Like every query fault, one
/// out of range is a 400: the query is part of the request target, and
/// `limit=0` should not answer differently from `limit=zero`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Records per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor` (at most 256 bytes).
    #[param(max_length = 256)]
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn page(&self) -> Result<crate::store::Page, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !PAGE_LIMIT.contains(&limit) {
            let (min, max) = (PAGE_LIMIT.start(), PAGE_LIMIT.end());
            return Err(ApiError::bad_request(format!("`limit` must be between {min} and {max}")));
        }
        if self.cursor.as_ref().is_some_and(|c| c.len() > MAX_CURSOR_BYTES) {
            return Err(ApiError::bad_request(format!("`cursor` must be at most {MAX_CURSOR_BYTES} bytes")));
        }
        Ok(crate::store::Page { cursor: self.cursor.clone(), limit })
    }
}
