//! The verdict on one attempt: how the guest's call ended ([`GuestResult`]),
//! any sandbox rule it broke ([`Violation`]), and [`decide`], the one place
//! that turns those and the HTTP steps into an [`Outcome`] code.
//!
//! It lives in the sandbox, not next to the codes in `outcome.rs`, because
//! everything it reads is the sandbox's (guest answers, violations, steps):
//! `outcome` stays a leaf that the attempt record, the store and the API can
//! name freely. It is pure (no store, no engine) so it is tested on its own.

use super::bindings::types;
use crate::attempt::{Step, StepError};
use crate::outcome::Outcome;

/// What the connector said about a failed delivery (the WIT `failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestFailure {
    Retryable { message: String, after_ms: Option<u64> },
    RateLimited { message: String, after_ms: Option<u64> },
    Permanent(String),
    Auth(String),
    InvalidFields(String),
}

impl From<types::Failure> for GuestFailure {
    fn from(f: types::Failure) -> Self {
        match f {
            types::Failure::Retryable(r) => GuestFailure::Retryable { message: r.message, after_ms: r.after_ms },
            types::Failure::RateLimited(r) => GuestFailure::RateLimited { message: r.message, after_ms: r.after_ms },
            types::Failure::Permanent(m) => GuestFailure::Permanent(m),
            types::Failure::Auth(m) => GuestFailure::Auth(m),
            types::Failure::InvalidFields(m) => GuestFailure::InvalidFields(m),
        }
    }
}

/// A rule of the sandbox the guest broke; it overrides whatever the guest
/// returned, because a guest that broke policy cannot be trusted to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("egress denied: {0}")]
    Egress(String),
    #[error("sandbox limit exceeded: {0}")]
    Limit(String),
}

/// How the guest invocation itself ended, before policy is applied.
#[derive(Debug)]
pub enum GuestResult {
    Ok(String),
    Failed(GuestFailure),
    /// Trap, resource limit, budget, or a malformed component: the text says which.
    Crashed(String),
    /// Host-side fault unrelated to the guest.
    Internal(String),
}

/// The decided outcome of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub retry_after_ms: Option<u64>,
}

/// Decide the outcome code. Violations win; then crashes; then the guest's
/// own answer, refined by the last HTTP step (a retryable failure after a
/// timeout is `timeout`, after a refused connection `network_error`).
pub fn decide(result: GuestResult, violation: Option<&Violation>, steps: &[Step]) -> Decision {
    let fail = |outcome, error: String, retry_after_ms| Decision {
        outcome,
        error: Some(error),
        summary: None,
        retry_after_ms,
    };
    if let Some(v) = violation {
        let outcome = match v {
            Violation::Egress(_) => Outcome::EgressDenied,
            Violation::Limit(_) => Outcome::ConnectorError,
        };
        return fail(outcome, v.to_string(), None);
    }
    match result {
        GuestResult::Ok(summary) => {
            Decision { outcome: Outcome::Delivered, error: None, summary: Some(summary), retry_after_ms: None }
        }
        GuestResult::Crashed(e) => fail(Outcome::ConnectorError, e, None),
        GuestResult::Internal(e) => fail(Outcome::InternalError, e, None),
        GuestResult::Failed(GuestFailure::RateLimited { message, after_ms }) => {
            fail(Outcome::RateLimited, message, after_ms)
        }
        GuestResult::Failed(GuestFailure::Auth(m)) => fail(Outcome::AuthFailed, m, None),
        GuestResult::Failed(GuestFailure::InvalidFields(m)) => fail(Outcome::MappingError, m, None),
        GuestResult::Failed(GuestFailure::Permanent(m)) => fail(Outcome::RejectedClientError, m, None),
        GuestResult::Failed(GuestFailure::Retryable { message, after_ms }) => {
            let outcome = match steps.last().and_then(|s| s.error.as_ref()) {
                Some(StepError::Timeout) => Outcome::Timeout,
                Some(StepError::Connect(_) | StepError::Interrupted(_)) => Outcome::NetworkError,
                _ => Outcome::RejectedServerError,
            };
            fail(outcome, message, after_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::StepRequest;

    fn step(error: Option<StepError>) -> Step {
        Step { request: StepRequest::default(), response: None, error, duration_ms: 1.0 }
    }

    fn retryable() -> GuestResult {
        GuestResult::Failed(GuestFailure::Retryable { message: "x".into(), after_ms: Some(5) })
    }

    #[test]
    fn violations_override_the_guest_answer() {
        let v = Violation::Egress("host `evil.io` is not allowed".into());
        let d = decide(GuestResult::Ok("fine".into()), Some(&v), &[]);
        assert_eq!(d.outcome, Outcome::EgressDenied);
        assert_eq!(d.error.as_deref(), Some("egress denied: host `evil.io` is not allowed"));
        let d = decide(GuestResult::Ok("fine".into()), Some(&Violation::Limit("11 requests".into())), &[]);
        assert_eq!(d.outcome, Outcome::ConnectorError);
    }

    #[test]
    fn retryable_failures_are_refined_by_the_last_step() {
        assert_eq!(decide(retryable(), None, &[step(Some(StepError::Timeout))]).outcome, Outcome::Timeout);
        assert_eq!(
            decide(retryable(), None, &[step(Some(StepError::Connect("refused".into())))]).outcome,
            Outcome::NetworkError
        );
        let d = decide(retryable(), None, &[step(None)]);
        assert_eq!((d.outcome, d.retry_after_ms), (Outcome::RejectedServerError, Some(5)));
    }

    #[test]
    fn every_guest_failure_has_its_code() {
        let code = |f| decide(GuestResult::Failed(f), None, &[]).outcome;
        assert_eq!(code(GuestFailure::Auth("a".into())), Outcome::AuthFailed);
        assert_eq!(code(GuestFailure::Permanent("p".into())), Outcome::RejectedClientError);
        assert_eq!(code(GuestFailure::InvalidFields("f".into())), Outcome::MappingError);
        assert_eq!(code(GuestFailure::RateLimited { message: "r".into(), after_ms: None }), Outcome::RateLimited);
        assert_eq!(decide(GuestResult::Crashed("trap".into()), None, &[]).outcome, Outcome::ConnectorError);
        assert!(Outcome::RateLimited.is_retryable() && !Outcome::AuthFailed.is_retryable());
    }
}
