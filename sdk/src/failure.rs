//! [`Failure`]: why a delivery did not succeed, in the words the host acts on.

use std::fmt;

/// How long to wait before the next attempt, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Why, for the attempt log.
    pub message: String,
    /// Replaces the next scheduled delay (the host bounds it to 1 s .. 24 h).
    pub after_ms: Option<u64>,
}

/// Why a delivery failed. The host combines it with the HTTP steps it recorded
/// to choose the attempt's outcome code and whether to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Transient: retry on the schedule (or after `after_ms`).
    Retryable(Retry),
    /// The destination asked us to slow down.
    RateLimited(Retry),
    /// Refused for good; not retried.
    Permanent(String),
    /// Credentials bad or missing a scope: the connection is paused.
    Auth(String),
    /// The rule's fields are unusable; not retried.
    InvalidFields(String),
}

impl Failure {
    /// Transient: retry on the schedule.
    pub fn retryable(message: impl Into<String>) -> Self {
        Failure::Retryable(Retry { message: message.into(), after_ms: None })
    }
    /// Transient: retry after `after_ms` (e.g. from `Retry-After`), or on the schedule.
    pub fn retry_after(message: impl Into<String>, after_ms: Option<u64>) -> Self {
        Failure::Retryable(Retry { message: message.into(), after_ms })
    }
    /// The destination asked us to slow down: retry after `after_ms`, or on the schedule.
    pub fn rate_limited(message: impl Into<String>, after_ms: Option<u64>) -> Self {
        Failure::RateLimited(Retry { message: message.into(), after_ms })
    }
    /// Refused for good; not retried.
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure::Permanent(message.into())
    }
    /// Credentials bad or missing a scope: the connection is paused.
    pub fn auth(message: impl Into<String>) -> Self {
        Failure::Auth(message.into())
    }
    /// The rule's fields are unusable; not retried.
    pub fn invalid_fields(message: impl Into<String>) -> Self {
        Failure::InvalidFields(message.into())
    }

    /// The human-readable reason.
    pub fn message(&self) -> &str {
        match self {
            Failure::Retryable(r) | Failure::RateLimited(r) => &r.message,
            Failure::Permanent(m) | Failure::Auth(m) | Failure::InvalidFields(m) => m,
        }
    }

    /// The same failure (kind and delay) with its message rewritten, e.g. to
    /// name the step: `failure.map_message(|m| format!("contact sync: {m}"))`.
    pub fn map_message(self, rewrite: impl FnOnce(String) -> String) -> Self {
        match self {
            Failure::Retryable(r) => Failure::Retryable(Retry { message: rewrite(r.message), ..r }),
            Failure::RateLimited(r) => Failure::RateLimited(Retry { message: rewrite(r.message), ..r }),
            Failure::Permanent(m) => Failure::Permanent(rewrite(m)),
            Failure::Auth(m) => Failure::Auth(rewrite(m)),
            Failure::InvalidFields(m) => Failure::InvalidFields(rewrite(m)),
        }
    }

    /// Whether the host will try again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Failure::Retryable(_) | Failure::RateLimited(_))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Failure::Retryable(_) => "retryable",
            Failure::RateLimited(_) => "rate limited",
            Failure::Permanent(_) => "permanent",
            Failure::Auth(_) => "auth",
            Failure::InvalidFields(_) => "invalid fields",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for Failure {}
