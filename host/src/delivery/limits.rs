//! Per-connection limits: a token bucket (deliveries per second) and a cap
//! on attempts in flight, so one slow or noisy connection cannot take every
//! worker. The scheduler asks for each known connection's room before it
//! claims, so a connection at its limits is skipped in the queue instead of
//! being claimed and handed back.

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
    rate: Option<f64>,
    max_in_flight: u32,
    tokens: f64,
    refilled_ms: i64,
    in_flight: u32,
}

impl ConnState {
    fn refill(&mut self, now_ms: i64) {
        if let Some(rate) = self.rate {
            let elapsed = (now_ms - self.refilled_ms).max(0) as f64 / 1000.0;
            self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
        }
        self.refilled_ms = now_ms;
    }

    fn room(&self) -> usize {
        let by_cap = self.max_in_flight.saturating_sub(self.in_flight) as usize;
        match self.rate {
            Some(_) => by_cap.min(self.tokens.max(0.0).floor() as usize),
            None => by_cap,
        }
    }
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
        let s = all.entry(connection.to_string()).or_insert(ConnState {
            rate,
            max_in_flight,
            tokens: rate.map_or(0.0, |r| r.max(1.0)),
            refilled_ms: now_ms,
            in_flight: 0,
        });
        if s.rate != rate {
            // The connection's limit changed: start a full bucket at the new rate.
            s.rate = rate;
            s.tokens = rate.map_or(0.0, |r| r.max(1.0));
        }
        s.max_in_flight = max_in_flight;
        s.refill(now_ms);
        if s.in_flight >= max_in_flight {
            // Saturated: a slot frees when an attempt ends (the scheduler is woken then).
            return Err(now_ms + 100);
        }
        if let Some(rate) = rate {
            if s.tokens < 1.0 {
                let wait_ms = ((1.0 - s.tokens) / rate * 1000.0).ceil() as i64;
                return Err(now_ms + wait_ms.max(1));
            }
            s.tokens -= 1.0;
        }
        s.in_flight += 1;
        Ok(Slot { limits: self.state.clone(), connection: connection.to_string() })
    }

    /// How many more deliveries each connection seen so far may start now.
    pub fn rooms(&self, now_ms: i64) -> HashMap<String, usize> {
        let mut all = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Forget idle connections with full buckets: their state is the default.
        all.retain(|_, s| s.in_flight > 0 || s.rate.is_some_and(|r| s.tokens < r.max(1.0)));
        all.iter_mut()
            .map(|(c, s)| {
                s.refill(now_ms);
                (c.clone(), s.room())
            })
            .collect()
    }

    /// When the first rate-limited connection gets its next token, if any
    /// is waiting for one.
    pub fn next_token_at(&self) -> Option<i64> {
        let all = self.state.lock().unwrap_or_else(|p| p.into_inner());
        all.values()
            .filter_map(|s| {
                let rate = s.rate?;
                (s.tokens < 1.0).then(|| s.refilled_ms + ((1.0 - s.tokens) / rate * 1000.0).ceil() as i64)
            })
            .min()
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
        assert_eq!(limits.next_token_at(), Some(500));
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

    #[test]
    fn room_is_what_the_cap_and_the_bucket_both_allow() {
        let limits = Limits::default();
        let _a = limits.try_acquire("capped", None, 3, 0).unwrap();
        let _b = limits.try_acquire("slow", Some(2.0), 10, 0).unwrap();
        let rooms = limits.rooms(0);
        assert_eq!(rooms["capped"], 2, "3 in flight at most, 1 running");
        assert_eq!(rooms["slow"], 1, "one token left in a bucket of two");
        assert_eq!(limits.rooms(1000)["slow"], 2, "refilled after a second, capped at the bucket size");
    }
}
