//! Requests the host executes for a connector, the responses it returns, and
//! the standard way to classify a response into success or [`Failure`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Failure, Retry};

/// One HTTP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name, in the case it was written.
    pub name: String,
    /// The value; may hold `{{secret.NAME}}` placeholders.
    pub value: String,
}

/// The placeholder the host replaces with the connection's secret `name` when
/// it sends a request: `secret("token")` is `{{secret.token}}`.
pub fn secret(name: &str) -> String {
    format!("{{{{secret.{name}}}}}")
}

/// An outbound request, built fluently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Absolute http(s) URL; may hold `{{secret.NAME}}` placeholders.
    pub url: String,
    /// In the order they were added.
    pub headers: Vec<Header>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// Overrides the host's per-request timeout (it caps it).
    pub timeout_ms: Option<u32>,
}

impl Request {
    /// A request with no headers or body.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request { method: method.to_string(), url: url.into(), headers: Vec::new(), body: None, timeout_ms: None }
    }
    /// A `GET`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }
    /// A `POST`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }
    /// A `PUT`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }
    /// A `PATCH`.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new("PATCH", url)
    }
    /// A `DELETE`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// Add a header (kept in order; duplicates allowed).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header { name: name.into(), value: value.into() });
        self
    }

    /// `Authorization: Bearer {{secret.NAME}}`.
    pub fn bearer_secret(self, secret_name: &str) -> Self {
        let value = format!("Bearer {}", secret(secret_name));
        self.header("Authorization", value)
    }

    /// A JSON body from any serialisable value, with its content type.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        // Serialising plain data to a Vec cannot fail for serde_json::Value and
        // derive(Serialize) types without maps keyed by non-strings.
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.header("Content-Type", "application/json").body(bytes)
    }

    /// A body that is already JSON text, sent byte for byte.
    pub fn json_text(self, text: impl Into<String>) -> Self {
        self.header("Content-Type", "application/json").body(text.into().into_bytes())
    }

    /// A body as it is, without a content type.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self
    }

    /// Give up on this request after `ms` milliseconds.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// The first header with this name (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as UTF-8 text (lossy), for tests and logs.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Why [`crate::Host::send`] produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// No answer in time.
    Timeout,
    /// Nothing was sent (DNS, TCP, TLS): safe to retry.
    Connect(String),
    /// The request may have arrived; retrying can duplicate it without an idempotency key.
    Interrupted(String),
    /// The egress policy refused the destination.
    Denied(String),
    /// A sandbox limit (requests, body size) was reached.
    LimitExceeded(String),
    /// Bad method, URL or header.
    Invalid(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Timeout => write!(f, "request timed out"),
            SendError::Connect(m) => write!(f, "connection failed: {m}"),
            SendError::Interrupted(m) => write!(f, "no complete response (the request may have been received): {m}"),
            SendError::Denied(m) => write!(f, "egress denied: {m}"),
            SendError::LimitExceeded(m) => write!(f, "sandbox limit exceeded: {m}"),
            SendError::Invalid(m) => write!(f, "invalid request: {m}"),
        }
    }
}

impl std::error::Error for SendError {}

/// A network failure is transient; a policy or limit refusal is not (the host
/// records those as `egress_denied` / `connector_error` whatever we say).
impl From<SendError> for Failure {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Timeout | SendError::Connect(_) | SendError::Interrupted(_) => Failure::retryable(e.to_string()),
            SendError::Denied(_) | SendError::LimitExceeded(_) | SendError::Invalid(_) => {
                Failure::permanent(e.to_string())
            }
        }
    }
}

/// What the destination answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status; a 3xx is never followed.
    pub status: u16,
    /// As received.
    pub headers: Vec<Header>,
    /// As received, with any echo of a secret replaced by its placeholder.
    pub body: Vec<u8>,
}

impl Response {
    /// A response from its parts (the host builds them; tests use this).
    pub fn new(status: u16, headers: Vec<Header>, body: Vec<u8>) -> Self {
        Response { status, headers, body }
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body's first 200 characters, trimmed, for error messages
    /// (`(empty body)` when there is nothing).
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return "(empty body)".to_string();
        }
        let mut out: String = trimmed.chars().take(200).collect();
        if trimmed.chars().nth(200).is_some() {
            out.push('…');
        }
        out
    }

    /// The body parsed as JSON; a body that does not parse is a retryable
    /// failure (proxies and load balancers answer HTML when things break).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Failure::retryable(format!("HTTP {}: response body is not the expected JSON: {e}", self.status))
        })
    }

    /// `Retry-After` in milliseconds, as seconds or an HTTP date relative to
    /// `now` (Unix seconds).
    pub fn retry_after_ms(&self, now: u64) -> Option<u64> {
        self.header("retry-after").and_then(|v| parse_retry_after(v, now))
    }

    /// The standard classifier: 2xx ok; 429 rate-limited (honouring
    /// `Retry-After`); 401/403 auth; 408/425/5xx retryable (honouring
    /// `Retry-After`); any other status permanent. `now` is the attempt time.
    pub fn classify(&self, now: u64) -> Result<(), Failure> {
        let status = self.status;
        let what = || format!("HTTP {status}: {}", self.snippet());
        match status {
            200..=299 => Ok(()),
            429 => Err(Failure::RateLimited(Retry { message: what(), after_ms: self.retry_after_ms(now) })),
            401 | 403 => Err(Failure::auth(what())),
            408 | 425 | 500..=599 => {
                Err(Failure::Retryable(Retry { message: what(), after_ms: self.retry_after_ms(now) }))
            }
            _ => Err(Failure::permanent(what())),
        }
    }
}

fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

/// Parse a `Retry-After` value — delta seconds or an HTTP date — into
/// milliseconds from `now` (Unix seconds). A date in the past means "now" (0).
pub fn parse_retry_after(value: &str, now: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some((secs * 1000.0) as u64);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(at.saturating_sub(now).saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response {
        let headers = headers.iter().map(|(n, v)| Header { name: n.to_string(), value: v.to_string() }).collect();
        Response::new(status, headers, b"{\"error\":\"x\"}".to_vec())
    }

    #[test]
    fn classifies_statuses_as_the_sdk_documents() {
        assert_eq!(response(204, &[]).classify(0), Ok(()));
        assert!(matches!(response(401, &[]).classify(0), Err(Failure::Auth(_))));
        assert!(matches!(response(403, &[]).classify(0), Err(Failure::Auth(_))));
        assert!(matches!(response(404, &[]).classify(0), Err(Failure::Permanent(_))));
        assert!(matches!(response(302, &[]).classify(0), Err(Failure::Permanent(_))));
        for s in [408, 425, 500, 502, 503, 504] {
            assert!(matches!(response(s, &[]).classify(0), Err(Failure::Retryable(_))), "{s}");
        }
    }

    #[test]
    fn rate_limit_reads_retry_after_in_seconds_or_as_a_date() {
        let now = 1_784_000_000; // 2026-07-14T03:33:20Z
        let secs = response(429, &[("Retry-After", "30")]).classify(now);
        assert_eq!(secs, Err(Failure::rate_limited("HTTP 429: {\"error\":\"x\"}", Some(30_000))));
        let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(now + 90));
        let by_date = response(429, &[("retry-after", &date)]).classify(now);
        assert_eq!(by_date, Err(Failure::rate_limited("HTTP 429: {\"error\":\"x\"}", Some(90_000))));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(0), "past dates mean now");
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn server_errors_carry_retry_after_too() {
        let r = response(503, &[("Retry-After", "7")]).classify(0);
        assert!(matches!(r, Err(Failure::Retryable(Retry { after_ms: Some(7000), .. }))));
    }

    #[test]
    fn secret_placeholder_has_the_documented_form() {
        assert_eq!(secret("api_key"), "{{secret.api_key}}");
        let r = Request::get("https://x.test").bearer_secret("tok");
        assert_eq!(r.header_value("AUTHORIZATION"), Some("Bearer {{secret.tok}}"));
    }
}
