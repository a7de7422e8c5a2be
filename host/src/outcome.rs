//! Outcome codes: how one attempt ended, as stored, retried on and shown.
//! Which code an attempt gets is decided in one place, the sandbox's
//! verdict (`runtime/verdict.rs`, [`decide`]).
//!
//! Leaf module: it imports nothing from the crate, so the attempt record,
//! the store, the retry policy and the API can all name a code.
//!
//! [`decide`]: crate::runtime::decide

use serde::{Deserialize, Serialize};

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Delivered,
    RejectedClientError,
    RejectedServerError,
    RateLimited,
    AuthFailed,
    Timeout,
    NetworkError,
    MappingError,
    ConnectorError,
    EgressDenied,
    InternalError,
    /// The process running the attempt stopped before it finished.
    Interrupted,
}

impl Outcome {
    /// Whether the delivery is tried again on the schedule.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Outcome::RejectedServerError
                | Outcome::RateLimited
                | Outcome::Timeout
                | Outcome::NetworkError
                | Outcome::InternalError
                | Outcome::Interrupted
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::RejectedClientError => "rejected_client_error",
            Outcome::RejectedServerError => "rejected_server_error",
            Outcome::RateLimited => "rate_limited",
            Outcome::AuthFailed => "auth_failed",
            Outcome::Timeout => "timeout",
            Outcome::NetworkError => "network_error",
            Outcome::MappingError => "mapping_error",
            Outcome::ConnectorError => "connector_error",
            Outcome::EgressDenied => "egress_denied",
            Outcome::InternalError => "internal_error",
            Outcome::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
