//! Request ids and the access log. Every answer carries `X-Request-Id` —
//! the client's own when it sent a usable one, else a new ULID — every log
//! line written while serving a request runs in a span carrying that id,
//! and each request ends with one access-log line (target
//! `switchboard::access`: method, route, status, duration, request id).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's id longer than this, or with other characters than
/// `[A-Za-z0-9._:-]`, is replaced: it lands in every log line.
const MAX_ID_BYTES: usize = 128;

pub async fn layer(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| usable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    // The route's template, not the path: ids stay out of the access log
    // and its values stay few.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(target: "switchboard::access", %method, %route, status, duration_ms, "request");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

fn usable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::usable;

    #[test]
    fn client_ids_are_kept_only_when_plain_and_short() {
        assert!(usable("req-01J9Z.abc:1_2"));
        assert!(!usable(""));
        assert!(!usable("has space"));
        assert!(!usable("line\nbreak"));
        assert!(!usable(&"a".repeat(129)));
    }
}
