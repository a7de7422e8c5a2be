//! What alerts remember, in memory on this node: each connection's recent
//! attempts (a ring of buckets covering `[alerts] window`), when each kind of
//! alert last went out about it, and nothing else. Bounded: past
//! [`MAX_SUBJECTS`] the least recently seen are forgotten, so a tenant with
//! very many connections cannot grow it without limit. Time is passed in
//! (Unix milliseconds), so the arithmetic is tested without a clock.

use std::collections::HashMap;

use super::Kind;
use crate::config::AlertsConfig;

/// Connections (and later connectors) remembered at most.
pub const MAX_SUBJECTS: usize = 10_000;

/// Buckets per window: the window slides in steps of `window / BUCKETS`.
const BUCKETS: usize = 15;

/// The thresholds of `[alerts]`, in the units the arithmetic uses.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub window_ms: i64,
    pub failure_ratio: f64,
    pub min_attempts: u32,
}

impl From<&AlertsConfig> for Thresholds {
    fn from(c: &AlertsConfig) -> Self {
        // A zero window would divide by zero below; a millisecond is as good as none.
        let window_ms = i64::try_from(c.window.as_millis()).unwrap_or(i64::MAX).max(1);
        Thresholds { window_ms, failure_ratio: c.failure_ratio, min_attempts: c.min_attempts }
    }
}

/// Finished attempts and the failed among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub attempts: u32,
    pub failed: u32,
}

impl Counts {
    pub fn ratio(&self) -> f64 {
        if self.attempts == 0 { 0.0 } else { f64::from(self.failed) / f64::from(self.attempts) }
    }
}

/// One connection's attempts over the last window, bucketed.
#[derive(Debug, Clone, Default)]
struct Window {
    /// Bucket `i` holds the counts of step `index` where `index % BUCKETS == i`.
    buckets: [(i64, Counts); BUCKETS],
}

impl Window {
    fn step(window_ms: i64) -> i64 {
        (window_ms / BUCKETS as i64).max(1)
    }

    fn record(&mut self, failed: bool, now: i64, window_ms: i64) {
        let index = now.div_euclid(Self::step(window_ms));
        let (at, counts) = &mut self.buckets[index.rem_euclid(BUCKETS as i64) as usize];
        if *at != index {
            (*at, *counts) = (index, Counts::default());
        }
        counts.attempts = counts.attempts.saturating_add(1);
        counts.failed = counts.failed.saturating_add(u32::from(failed));
    }

    /// The counts of the buckets within the window that ends at `now`.
    fn totals(&self, now: i64, window_ms: i64) -> Counts {
        let index = now.div_euclid(Self::step(window_ms));
        let live = (index - BUCKETS as i64 + 1)..=index;
        self.buckets.iter().filter(|(at, _)| live.contains(at)).fold(Counts::default(), |sum, (_, c)| Counts {
            attempts: sum.attempts.saturating_add(c.attempts),
            failed: sum.failed.saturating_add(c.failed),
        })
    }
}

/// What is remembered about one connection.
#[derive(Debug, Clone, Default)]
struct Subject {
    seen: i64,
    window: Window,
    /// When each [`Kind`] last went out about it.
    sent: [Option<i64>; Kind::ALL.len()],
}

/// Every subject's window and debounce, and the one warning about a
/// missing alert workspace.
#[derive(Debug)]
pub struct Tracker {
    subjects: HashMap<String, Subject>,
    cap: usize,
    missing_workspace_warned: Option<i64>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::with_cap(MAX_SUBJECTS)
    }
}

impl Tracker {
    pub fn with_cap(cap: usize) -> Tracker {
        Tracker { subjects: HashMap::new(), cap: cap.max(1), missing_workspace_warned: None }
    }

    /// Count one finished attempt; the counts when it tips the connection
    /// over the thresholds and no `failing` went out within the window (the
    /// alert is then taken as sent).
    pub fn attempt(&mut self, connection: &str, failed: bool, now: i64, t: &Thresholds) -> Option<Counts> {
        let subject = self.subject(connection, now);
        subject.window.record(failed, now, t.window_ms);
        if !failed {
            return None;
        }
        let counts = subject.window.totals(now, t.window_ms);
        // Not `>=`: at ratio 1.0 the threshold can never be "above".
        let over = counts.attempts >= t.min_attempts && counts.ratio() > t.failure_ratio;
        (over && claim(subject, Kind::Failing, now, t.window_ms)).then_some(counts)
    }

    /// Whether an alert of `kind` about `subject` may go out now (it is then
    /// taken as sent): none went out within the window.
    pub fn claim(&mut self, subject: &str, kind: Kind, now: i64, window_ms: i64) -> bool {
        claim(self.subject(subject, now), kind, now, window_ms)
    }

    /// Whether to log that the alert workspace is missing: once per window.
    pub fn warn_missing_workspace(&mut self, now: i64, window_ms: i64) -> bool {
        let due = self.missing_workspace_warned.is_none_or(|at| now - at >= window_ms);
        if due {
            self.missing_workspace_warned = Some(now);
        }
        due
    }

    /// The subject's record, seen now; a new one may push the least
    /// recently seen out.
    fn subject(&mut self, id: &str, now: i64) -> &mut Subject {
        if !self.subjects.contains_key(id) && self.subjects.len() >= self.cap {
            self.forget_oldest();
        }
        let subject = self.subjects.entry(id.to_string()).or_default();
        subject.seen = subject.seen.max(now);
        subject
    }

    /// Forget the least recently seen eighth at once, so the sort is paid
    /// once per many new subjects rather than on each.
    fn forget_oldest(&mut self) {
        let n = (self.cap / 8).max(1).min(self.subjects.len());
        let mut by_age: Vec<(i64, &String)> = self.subjects.iter().map(|(id, s)| (s.seen, id)).collect();
        by_age.select_nth_unstable(n - 1);
        let old: Vec<String> = by_age[..n].iter().map(|(_, id)| (*id).clone()).collect();
        for id in old {
            self.subjects.remove(&id);
        }
    }
}

fn claim(subject: &mut Subject, kind: Kind, now: i64, window_ms: i64) -> bool {
    let last = &mut subject.sent[kind as usize];
    if last.is_some_and(|at| now - at < window_ms) {
        return false;
    }
    *last = Some(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_700_000_000_000;

    fn thresholds() -> Thresholds {
        Thresholds { window_ms: 15 * MIN, failure_ratio: 0.5, min_attempts: 10 }
    }

    #[test]
    fn failing_needs_min_attempts_and_a_ratio_above_the_threshold() {
        let mut t = Tracker::default();
        for i in 0..9 {
            assert_eq!(t.attempt("c", true, T0 + i, &thresholds()), None, "only {} attempts", i + 1);
        }
        let counts = t.attempt("c", true, T0 + 9, &thresholds()).expect("10 of 10 failed");
        assert_eq!(counts, Counts { attempts: 10, failed: 10 });
        assert_eq!(counts.ratio(), 1.0);

        // Exactly half is not above a threshold of one half.
        let mut t = Tracker::default();
        for i in 0..10 {
            t.attempt("c", false, T0 + i, &thresholds());
        }
        for i in 0..9 {
            assert_eq!(t.attempt("c", true, T0 + 10 + i, &thresholds()), None);
        }
        assert_eq!(t.attempt("c", true, T0 + 19, &thresholds()), None, "10 of 20 is not above 0.5");
        let counts = t.attempt("c", true, T0 + 20, &thresholds()).expect("11 of 21");
        assert_eq!(counts, Counts { attempts: 21, failed: 11 });
    }

    #[test]
    fn a_delivered_attempt_never_raises_failing() {
        let mut t = Tracker::default();
        let low = Thresholds { min_attempts: 1, failure_ratio: 0.0, ..thresholds() };
        assert_eq!(t.attempt("c", false, T0, &low), None);
        assert!(t.attempt("c", true, T0 + 1, &low).is_some());
    }

    #[test]
    fn attempts_older_than_the_window_no_longer_count() {
        let mut t = Tracker::default();
        let th = Thresholds { min_attempts: 3, ..thresholds() };
        t.attempt("c", true, T0, &th);
        t.attempt("c", true, T0 + MIN, &th);
        // Fifteen minutes on, the first minute's bucket has slid out.
        assert_eq!(t.attempt("c", true, T0 + 15 * MIN, &th), None, "2 in the window");
        let counts = t.attempt("c", true, T0 + 15 * MIN + 1, &th).expect("3 in the window");
        assert_eq!(counts, Counts { attempts: 3, failed: 3 });
        // A bucket reused after a full turn of the ring starts from zero.
        let later = T0 + 60 * MIN;
        let mut fresh = Tracker::default();
        fresh.attempt("c", true, T0, &th);
        assert_eq!(fresh.attempt("c", true, later, &th), None);
        assert_eq!(fresh.subjects["c"].window.totals(later, th.window_ms), Counts { attempts: 1, failed: 1 });
    }

    #[test]
    fn failing_goes_out_once_per_window_while_it_lasts() {
        let mut t = Tracker::default();
        let th = Thresholds { min_attempts: 2, ..thresholds() };
        t.attempt("c", true, T0, &th);
        assert!(t.attempt("c", true, T0 + 1, &th).is_some());
        for i in 2..100 {
            assert_eq!(t.attempt("c", true, T0 + i * 1000, &th), None, "debounced");
        }
        assert!(t.attempt("c", true, T0 + 1 + 15 * MIN, &th).is_some(), "a window later, again");
        // Another connection has its own debounce.
        t.attempt("d", true, T0, &th);
        assert!(t.attempt("d", true, T0 + 1, &th).is_some());
    }

    #[test]
    fn each_kind_is_debounced_on_its_own() {
        let mut t = Tracker::default();
        let w = 15 * MIN;
        assert!(t.claim("c", Kind::Paused, T0, w));
        assert!(!t.claim("c", Kind::Paused, T0 + w - 1, w));
        assert!(t.claim("c", Kind::Failing, T0 + 1, w), "another kind");
        assert!(t.claim("other", Kind::Paused, T0 + 1, w), "another connection");
        assert!(t.claim("c", Kind::Paused, T0 + w, w));
    }

    #[test]
    fn the_missing_workspace_warning_comes_once_per_window() {
        let mut t = Tracker::default();
        assert!(t.warn_missing_workspace(T0, MIN));
        assert!(!t.warn_missing_workspace(T0 + MIN - 1, MIN));
        assert!(t.warn_missing_workspace(T0 + MIN, MIN));
    }

    #[test]
    fn memory_is_capped_by_forgetting_the_least_recently_seen() {
        let mut t = Tracker::with_cap(100);
        t.attempt("busy", true, T0, &thresholds());
        for i in 0..10_000 {
            // "busy" stays recent; the others are each seen once.
            t.attempt(&format!("conn_{i}"), true, T0 + i, &thresholds());
            t.attempt("busy", false, T0 + i, &thresholds());
            assert!(t.subjects.len() <= 100, "{} remembered", t.subjects.len());
        }
        assert!(t.subjects.contains_key("busy"));
        assert!(t.subjects.contains_key("conn_9999"));
        assert!(!t.subjects.contains_key("conn_0"));
        assert_eq!(t.subjects["busy"].window.totals(T0 + 9_999, thresholds().window_ms).attempts, 10_001);
    }

    #[test]
    fn a_zero_window_is_taken_as_a_millisecond() {
        let config = AlertsConfig { window: std::time::Duration::ZERO, ..AlertsConfig::default() };
        let th = Thresholds { min_attempts: 1, ..Thresholds::from(&config) };
        assert_eq!(th.window_ms, 1);
        let mut t = Tracker::default();
        assert!(t.attempt("c", true, T0, &th).is_some());
        assert!(t.attempt("c", true, T0 + 1, &th).is_some());
    }
}
