//! HubSpot's refusals: the rate limit (a rolling window and a daily quota,
//! the `X-HubSpot-RateLimit-*` headers, the 429 naming its policy), the
//! failure shapes a test can inject, and the 401 for a bad token.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Response, StatusCode};
use serde_json::json;

use super::{Portal, reply};
use crate::fakes::server;

/// Response headers, some of them computed.
pub(super) type Headers = Vec<(&'static str, String)>;

/// HubSpot's two rate-limit policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    TenSecondlyRolling,
    Daily,
}

/// At most `max` requests in any rolling `interval`, and `daily` a day.
/// HubSpot's lowest tier is [`RateLimit::HUBSPOT_STARTER`]; tests compress
/// the window with [`RateLimit::per`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub interval: Duration,
    pub daily: u32,
}

impl RateLimit {
    pub const HUBSPOT_STARTER: RateLimit = RateLimit { max: 100, interval: Duration::from_secs(10), daily: 250_000 };

    pub fn per(max: u32, interval: Duration) -> RateLimit {
        RateLimit { max, interval, ..Self::HUBSPOT_STARTER }
    }
}

/// A vendor failure shape to answer with instead of serving the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 429 `RATE_LIMIT` with the policy's name and the limit headers.
    RateLimited(Policy),
    /// 500, 502, 503, 504 or 521–524.
    Status(u16),
    /// 401 `INVALID_AUTHENTICATION`, as for a wrong token.
    Unauthorized,
    /// 403 `MISSING_SCOPES` (no `crm.objects.contacts.write`).
    MissingScopes,
    /// 423 Locked: retry after at least 2 s.
    Locked,
    /// 477 Migration in progress, with `Retry-After` in seconds.
    MigrationInProgress { retry_after_secs: u32 },
}

impl Portal {
    /// Take a slot under the rate limit (and the headers that report it), or
    /// say which policy refuses the call.
    pub(super) fn admit(&mut self) -> Result<Headers, Policy> {
        let Some(limit) = self.rate_limit else { return Ok(Vec::new()) };
        let now = Instant::now();
        while self.window.front().is_some_and(|t| now.duration_since(*t) >= limit.interval) {
            self.window.pop_front();
        }
        let policy = if self.today >= limit.daily {
            Some(Policy::Daily)
        } else if self.window.len() as u32 >= limit.max {
            Some(Policy::TenSecondlyRolling)
        } else {
            None
        };
        if let Some(policy) = policy {
            self.throttled += 1;
            return Err(policy);
        }
        self.window.push_back(now);
        self.today += 1;
        Ok(self.limit_headers(limit))
    }

    fn limit_headers(&self, limit: RateLimit) -> Headers {
        vec![
            ("X-HubSpot-RateLimit-Max", limit.max.to_string()),
            ("X-HubSpot-RateLimit-Remaining", limit.max.saturating_sub(self.window.len() as u32).to_string()),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", limit.interval.as_millis().to_string()),
            ("X-HubSpot-RateLimit-Daily", limit.daily.to_string()),
            ("X-HubSpot-RateLimit-Daily-Remaining", limit.daily.saturating_sub(self.today).to_string()),
        ]
    }

    pub(super) fn too_many(&mut self, policy: Policy) -> Response<Body> {
        let limit = self.rate_limit.unwrap_or(RateLimit::HUBSPOT_STARTER);
        let mut headers = self.limit_headers(limit);
        let (name, message) = match policy {
            Policy::TenSecondlyRolling => {
                headers[1].1 = "0".into();
                ("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
            }
            Policy::Daily => {
                headers[4].1 = "0".into();
                ("DAILY", "You have reached your daily limit.")
            }
        };
        let correlation = self.correlation_id();
        let body = json!({"status": "error", "message": message, "errorType": "RATE_LIMIT",
                          "correlationId": correlation, "policyName": name, "requestId": self.correlation_id()});
        reply(429, &headers, body)
    }

    pub(super) fn injected(&mut self, failure: Failure) -> Response<Body> {
        match failure {
            Failure::RateLimited(policy) => self.too_many(policy),
            Failure::Status(500) => {
                let body = self.error("internal error", Some("INTERNAL_ERROR"));
                reply(500, &[], body)
            }
            Failure::Status(status @ 521..=524) => server::reply(status, &[], format!("error code: {status}")),
            Failure::Status(status) => {
                let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
                server::reply(status, &[], format!("<html><body><h1>{status} {reason}</h1></body></html>"))
            }
            Failure::Unauthorized => self.unauthorized(),
            Failure::MissingScopes => {
                let mut body = self.error(
                    "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
                    Some("MISSING_SCOPES"),
                );
                body["errors"] = json!([{"message": "One or more of the following scopes are required.",
                                         "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]}}]);
                reply(403, &[], body)
            }
            Failure::Locked => {
                let body = self.error("This record is locked, please try again in a few seconds", Some("LOCKED"));
                reply(423, &[], body)
            }
            Failure::MigrationInProgress { retry_after_secs } => {
                let body = self.error("Migration in progress", Some("MIGRATION_IN_PROGRESS"));
                reply(477, &[("Retry-After", retry_after_secs.to_string())], body)
            }
        }
    }

    pub(super) fn unauthorized(&mut self) -> Response<Body> {
        let body = self.error(
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            Some("INVALID_AUTHENTICATION"),
        );
        reply(401, &[], body)
    }
}
