//! Per-connection limits: a token bucket (deliveries per second) and a cap
//! on attempts in flight, so one slow or noisy connection cannot take every
//! worker. Checked by the scheduler before it hands a delivery to a worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Held while an attempt runs; frees the connection's slot on drop.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<Mutex<HashMap<String, ConnState>>>,
    connection: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut all = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = all.get_mut(&self.connection) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }
}

#[derive(Debug)]
struct ConnState {
    tokens: f64,
    refilled_ms: i64,
    in_flight: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Limits {
    state: Arc<Mutex<HashMap<String, ConnState>>>,
}

impl Limits {
    /// Take a slot for `connection`, or say when to try again (ms).
    /// `rate` is deliveries per second (None = unlimited); the bucket holds
    /// one second of tokens, at least one.
    pub fn try_acquire(
        &self,
        connection: &str,
        rate: Option<f64>,
        max_in_flight: u32,
        now_ms: i64,
    ) -> Result<Slot, i64> {
        let mut all = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let capacity = rate.map_or(f64::INFINITY, |r| r.max(1.0));
        let s = all.entry(connection.to_string()).or_insert(ConnState {
            tokens: capacity.min(1e9),
            refilled_ms: now_ms,
            in_flight: 0,
        });
        if s.in_flight >= max_in_flight {
            // Saturated: come back later rather than churn the claim queue.
            return Err(now_ms + 100);
        }
        if let Some(rate) = rate {
            let elapsed = (now_ms - s.refilled_ms).max(0) as f64 / 1000.0;
            s.tokens = (s.tokens + elapsed * rate).min(capacity);
            s.refilled_ms = now_ms;
            if s.tokens < 1.0 {
                let wait_ms = ((1.0 - s.tokens) / rate * 1000.0).ceil() as i64;
                return Err(now_ms + wait_ms.max(1));
            }
            s.tokens -= 1.0;
        }
        s.in_flight += 1;
        Ok(Slot { limits: self.state.clone(), connection: connection.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_the_rate_and_says_when_to_come_back() {
        let limits = Limits::default();
        let a = limits.try_acquire("c", Some(2.0), 10, 0).unwrap();
        let b = limits.try_acquire("c", Some(2.0), 10, 0).unwrap();
        assert_eq!(limits.try_acquire("c", Some(2.0), 10, 0).unwrap_err(), 500);
        assert!(limits.try_acquire("c", Some(2.0), 10, 500).is_ok());
        assert!(limits.try_acquire("other", Some(2.0), 10, 0).is_ok(), "connections are independent");
        drop((a, b));
    }

    #[test]
    fn in_flight_is_capped_and_freed_on_drop() {
        let limits = Limits::default();
        let first = limits.try_acquire("c", None, 1, 0).unwrap();
        assert!(limits.try_acquire("c", None, 1, 0).is_err());
        drop(first);
        assert!(limits.try_acquire("c", None, 1, 0).is_ok());
    }
}
