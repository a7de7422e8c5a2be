//! The HTTP API: one `router()` per resource, merged here. Handlers return
//! `Result<_, ApiError>`; auth is checked in each handler through `Caller`.

pub mod auth;
pub mod connections;
pub mod connectors;
pub mod error;
pub mod events;
pub mod ingest;
pub mod rules;
pub mod workspaces;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
pub use error::ApiError;

pub type AppState = Arc<App>;

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .merge(ingest::router(&app))
        .merge(workspaces::router())
        .merge(connections::router())
        .merge(connectors::router())
        .merge(rules::router())
        .merge(events::router())
        .with_state(app)
}

/// `axum::extract::Query` whose rejection is a JSON `ApiError` naming the fault.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}

/// `?limit=&cursor=` as SPEC §4 defines them.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn page(&self) -> Result<crate::store::Page, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::bad_request("limit must be between 1 and 200"));
        }
        Ok(crate::store::Page { cursor: self.cursor.clone(), limit })
    }
}

/// The list envelope: `{"count", "limit", "next_cursor", "records"}`.
pub fn list(records: Vec<Value>, limit: usize, last_id: Option<String>) -> Value {
    let next_cursor = if records.len() == limit { last_id } else { None };
    json!({"count": records.len(), "limit": limit, "next_cursor": next_cursor, "records": records})
}

/// The list envelope for a complete, unpaginated list (the `limit` is the
/// count, so no `next_cursor`).
pub fn list_all(records: Vec<Value>) -> Value {
    let n = records.len();
    json!({"count": n, "limit": n, "next_cursor": null, "records": records})
}

/// Parse a JSON body with a message naming what is wrong.
pub fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}
