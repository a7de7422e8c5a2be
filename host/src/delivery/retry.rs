//! The retry policy, pure: given an attempt's outcome, decide the
//! delivery's next state and, for a retry, when.

use std::time::Duration;

use crate::outcome::Outcome;
use crate::store::Next;

const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// `schedule[n]` is the delay before attempt `n + 1`; its length is the
    /// number of attempts.
    pub schedule: Vec<Duration>,
    pub jitter: f64,
}

impl RetryPolicy {
    /// `n` is the attempt just made (1-based); `unit` is a random number in
    /// [0, 1) so tests can pin the jitter.
    pub fn next(&self, outcome: Outcome, n: u32, retry_after_ms: Option<u64>, now_ms: i64, unit: f64) -> Next {
        match outcome {
            Outcome::Delivered => return Next::Completed,
            Outcome::AuthFailed => return Next::Wait,
            o if !o.is_retryable() => return Next::Failed,
            _ => {}
        }
        let Some(base) = self.schedule.get(n as usize) else { return Next::Failed };
        let delay = match retry_after_ms {
            // The destination said when: honour it exactly, within bounds.
            Some(ms) => Duration::from_millis(ms).clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER),
            None => base.mul_f64(1.0 + self.jitter * (2.0 * unit - 1.0)),
        };
        Next::Retry { at: now_ms + delay.as_millis() as i64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { schedule: [0, 5, 300].map(Duration::from_secs).to_vec(), jitter: 0.2 }
    }

    #[test]
    fn success_completes_and_permanent_failures_fail_at_once() {
        assert_eq!(policy().next(Outcome::Delivered, 1, None, 0, 0.5), Next::Completed);
        for o in [Outcome::RejectedClientError, Outcome::MappingError, Outcome::ConnectorError, Outcome::EgressDenied] {
            assert_eq!(policy().next(o, 1, None, 0, 0.5), Next::Failed, "{o}");
        }
        assert_eq!(policy().next(Outcome::AuthFailed, 1, None, 0, 0.5), Next::Wait);
    }

    #[test]
    fn retryable_outcomes_follow_the_schedule_with_jitter() {
        assert_eq!(policy().next(Outcome::RejectedServerError, 1, None, 1000, 0.5), Next::Retry { at: 6000 });
        assert_eq!(policy().next(Outcome::Timeout, 1, None, 0, 0.0), Next::Retry { at: 4000 }, "-20 %");
        assert_eq!(policy().next(Outcome::NetworkError, 2, None, 0, 1.0), Next::Retry { at: 360_000 }, "+20 %");
        assert_eq!(policy().next(Outcome::RateLimited, 3, None, 0, 0.5), Next::Failed, "schedule exhausted");
    }

    #[test]
    fn retry_after_replaces_the_delay_within_bounds() {
        assert_eq!(policy().next(Outcome::RateLimited, 1, Some(2000), 0, 0.9), Next::Retry { at: 2000 });
        assert_eq!(policy().next(Outcome::RateLimited, 1, Some(10), 0, 0.9), Next::Retry { at: 1000 });
        assert_eq!(
            policy().next(Outcome::RejectedServerError, 1, Some(u64::MAX / 4), 0, 0.9),
            Next::Retry { at: 86_400_000 }
        );
    }
}
