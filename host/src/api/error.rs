//! `ApiError`: every failure the API reports, as JSON
//! `{"code", "message", "details"?}` with the right status. The one place
//! statuses and codes are chosen for errors.
//!
//! `details` is repeated as `error`: the Meshes events API, which ingest is
//! wire-compatible with, names that member `error`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::store::StoreError;

/// A stable, machine-readable reason. Clients match on these; the message is
/// for people and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed (query, path, JSON or body shape).
    BadRequest,
    /// 401: no credentials, or ones nobody issued.
    Unauthorized,
    /// 403: the credentials are valid but not for this resource.
    Forbidden,
    /// 404: the record is not there.
    NotFound,
    /// 404: no route has this path.
    RouteNotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: the change conflicts with the current state.
    Conflict,
    /// 413: the body is over its limit.
    PayloadTooLarge,
    /// 415: the body is not of the type the route takes.
    UnsupportedMediaType,
    /// 422: the request is well-formed but refused; `details.path` names the field when there is one.
    Unprocessable,
    /// 425: the delivery has an attempt in flight or due within a second.
    TooEarly,
    /// 429: over a rate; see `Retry-After`.
    RateLimited,
    /// 500: a fault of the server's own.
    Internal,
    /// 503: the store cannot take writes now; see `Retry-After`.
    Unavailable,
}

impl ErrorCode {
    /// The code a status gets unless a more precise one is given.
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::Unprocessable,
            425 => Self::TooEarly,
            429 => Self::RateLimited,
            503 => Self::Unavailable,
            400..=499 => Self::BadRequest,
            _ => Self::Internal,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"code": "not_found", "message": "connection `con_01J…` not found"}))]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// What the code alone does not say: `path` (the JSON path of the field at fault), and the like.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The same as `details`, under the name the Meshes events API uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub error: Option<Value>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: ErrorCode::for_status(status),
            message: message.into(),
            error: None,
            retry_after: None,
        }
    }
    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = code;
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} `{id}` not found"))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
    pub fn too_early(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_EARLY, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }
    /// A 422 for one field of the request body, named as a JSON path
    /// (`secrets.api_key`) in the message and in `error.path`.
    pub fn invalid(path: &str, why: impl std::fmt::Display) -> Self {
        Self::unprocessable(format!("`{path}` {why}")).with_error(json!({"path": path}))
    }
    /// A 413 naming the limit the body broke.
    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body is larger than the {limit} byte limit"))
    }
    /// A 415 naming the content type the request sent.
    pub fn not_json(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type must be application/json, got `{content_type}`"),
        )
    }
    pub fn with_error(mut self, error: Value) -> Self {
        self.error = Some(error);
        self
    }

    /// The error body, also used per item in bulk answers.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
            details: self.error.clone(),
            error: self.error.clone(),
        }
    }
}

/// The one place an operation's refusal becomes a status.
impl From<crate::ops::OpError> for ApiError {
    fn from(e: crate::ops::OpError) -> Self {
        use crate::ops::OpError;
        match e {
            OpError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            OpError::Invalid { field, message } => Self::invalid(&field, message),
            OpError::Refused(m) => Self::unprocessable(m),
            OpError::RefusedAt { path, message } => Self::unprocessable(message).with_error(json!({"path": path})),
            OpError::Conflict(m) => Self::conflict(m),
            OpError::TooEarly(m) => Self::too_early(m),
            OpError::Store(e) => e.into(),
            OpError::Sealed(_) => {
                tracing::error!(error = %e, "operation");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            OpError::Disk { .. } => {
                tracing::error!(error = %e, "operation");
                Self::unavailable(e.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store");
        ApiError::unavailable("the store is not available; try again")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // A body over the limit is refused before it is read, and the
            // server will not read the rest: say that the connection ends,
            // so a client does not send its next request on it.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
