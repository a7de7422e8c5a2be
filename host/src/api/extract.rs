//! The API's extractors and fallbacks, so that every request the API refuses
//! is answered with an `ApiError` (JSON `{"message", "error"?}`), never with
//! axum's plain-text rejections: `Json` (413, 415, 400 malformed, 422 wrong
//! shape or too deep), `Path`, `Id`, `Query`, and the 404 and 405 fallbacks.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::ApiError;
use super::limits::{MAX_BODY_BYTES, MAX_DEPTH, NAME_CHARS, check_text_depth};

/// A management request body as JSON, or a JSON response.
///
/// As an extractor: a body larger than [`MAX_BODY_BYTES`] is a 413, a
/// content type other than `application/json` a 415, text that is not JSON
/// a 400, and JSON that nests deeper than [`MAX_DEPTH`] or does not fit `T`
/// a 422 whose `error.path` names the field when it can be told.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // The content type first: a body of the wrong kind is not read at all.
        require_json(req.headers())?;
        let bytes = read(req, state).await?;
        parse(&bytes).map(Json)
    }
}

/// `Option<Json<T>>`: `None` for an empty body, which needs no content type.
impl<T, S> OptionalFromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let headers = req.headers().clone();
        let bytes = read(req, state).await?;
        if bytes.is_empty() {
            return Ok(None);
        }
        require_json(&headers)?;
        parse(&bytes).map(|v| Some(Json(v)))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Content-Type: application/json`, with or without parameters; a 415 otherwise.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    match mime.eq_ignore_ascii_case("application/json") {
        true => Ok(()),
        false => Err(ApiError::not_json(content_type)),
    }
}

async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e: BytesRejection| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(MAX_BODY_BYTES),
        status => ApiError::new(status, format!("cannot read the body: {}", e.body_text())),
    })
}

/// Parse a management body: depth before anything else (one pass, no
/// recursion), then syntax (400), then shape (422).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Err(deep) = check_text_depth(bytes, MAX_DEPTH) {
        return Err(match deep.field {
            Some(field) => ApiError::invalid(&field, format!("nests deeper than {MAX_DEPTH} levels")),
            None => ApiError::unprocessable(format!("the body nests deeper than {MAX_DEPTH} levels")),
        });
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let error = match T::deserialize(&value) {
        Ok(v) => return Ok(v),
        Err(e) => e.to_string(),
    };
    match value {
        body @ Value::Object(_) => Err(shape_error::<T>(body, &error)),
        other => Err(ApiError::unprocessable(format!("the body must be a JSON object, got {}", kind(&other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Bodies with more fields than this are not probed for the culprit: every
/// request type has fewer fields and refuses unknown ones.
const MAX_PROBED_FIELDS: usize = 16;

/// A 422 for an object `body` that does not fit `T`, naming the field at
/// fault. serde names a missing or unknown field itself; for a wrong type or
/// value, the culprit is the field whose removal makes the error go away (or
/// turn into its own absence).
fn shape_error<T: DeserializeOwned>(mut body: Value, message: &str) -> ApiError {
    let quoted = |prefix: &str| message.strip_prefix(prefix).and_then(|rest| rest.split('`').next()).map(str::to_owned);
    if let Some(field) = quoted("missing field `") {
        return ApiError::invalid(&field, "is required");
    }
    let culprit = quoted("unknown field `").or_else(|| {
        let keys: Vec<String> = body.as_object()?.keys().cloned().collect();
        if keys.len() > MAX_PROBED_FIELDS {
            return None;
        }
        keys.into_iter().find(|key| {
            let Some(value) = body.as_object_mut().and_then(|fields| fields.remove(key)) else { return false };
            let cleared = match T::deserialize(&body) {
                Ok(_) => true,
                Err(e) => e.to_string() == format!("missing field `{key}`"),
            };
            if let Some(fields) = body.as_object_mut() {
                fields.insert(key.clone(), value);
            }
            cleared
        })
    });
    match culprit {
        Some(field) => {
            let field: String = field.chars().take(*NAME_CHARS.end()).collect();
            ApiError::unprocessable(format!("invalid `{field}`: {message}")).with_error(json!({"path": field}))
        }
        None => ApiError::unprocessable(format!("invalid request body: {message}")),
    }
}

/// `axum::extract::Path` whose rejection is a JSON `ApiError` (a segment
/// that is not valid UTF-8 once percent-decoded, for one).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::new(e.status(), format!("invalid path: {}", e.body_text())))
    }
}

/// The `{id}` segment of the path: which record of the workspace a route
/// names (the workspace itself comes with `auth::WorkspaceAccess`).
#[derive(Debug)]
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        match params.into_iter().find(|(name, _)| name == "id") {
            Some((_, id)) => Ok(Id(id)),
            // A route without `{id}` using this extractor is a programming error.
            None => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "route has no id")),
        }
    }
}

/// `axum::extract::Query` whose rejection is a JSON `ApiError` naming the fault.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}

/// The path as the caller sent it, shortened: error messages echo it, and
/// never the query string, which may carry a token.
fn shown(uri: &Uri) -> String {
    uri.path().chars().take(*NAME_CHARS.end()).collect()
}

/// Every path no route matches.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route for {method} {}", shown(&uri)))
        .with_code(super::error::ErrorCode::RouteNotFound)
}

/// A route that exists but not for this method; axum adds the `Allow` header.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}; the `Allow` header lists the methods that are", shown(&uri)),
    )
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Only deserialized.
    struct Body {
        name: String,
        active: Option<bool>,
        settings: Option<Value>,
    }

    fn refusal(text: &str) -> ApiError {
        parse::<Body>(text.as_bytes()).expect_err(text)
    }

    fn path(e: &ApiError) -> Option<&str> {
        e.error.as_ref().and_then(|e| e["path"].as_str())
    }

    #[test]
    fn a_body_of_the_wrong_shape_names_the_field() {
        for (text, field) in [
            (r#"{"name": 3}"#, "name"),
            (r#"{"active": true}"#, "name"),
            (r#"{"name": "a", "active": "yes", "settings": {}}"#, "active"),
            (r#"{"name": "a", "owner": "b"}"#, "owner"),
        ] {
            let e = refusal(text);
            assert_eq!((e.status, path(&e)), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{text}: {}", e.message);
            assert!(e.message.contains(&format!("`{field}`")), "{}", e.message);
        }
        let e = refusal("[1]");
        assert_eq!(
            (e.status, e.message.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "the body must be a JSON object, got an array")
        );
    }

    #[test]
    fn syntax_is_a_400_and_depth_a_422_before_parsing() {
        assert_eq!(refusal(r#"{"name": "#).status, StatusCode::BAD_REQUEST);
        let deep =
            format!(r#"{{"name": "a", "settings": {}{}}}"#, "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = refusal(&deep);
        assert_eq!((e.status, path(&e)), (StatusCode::UNPROCESSABLE_ENTITY, Some("settings")));
        let fits = format!(r#"{{"name": "a", "settings": {}{}}}"#, "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse::<Body>(fits.as_bytes()).is_ok());
    }
}
