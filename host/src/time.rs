//! Where time lives: reading the clock and writing instants as text. Stored
//! records keep Unix milliseconds; what users read (API, attempt records,
//! `connector run`) is RFC 3339 UTC, written here so every surface agrees.
//!
//! Leaf module: it imports nothing from the crate, so anything may use it.

/// Now, in Unix milliseconds: what stored records keep.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Now, in whole Unix seconds: the `attempt-time` a connector sees, and
/// what its frozen WASI wall clock reads (see `runtime/wasi.rs`).
pub fn unix_now() -> u64 {
    // Before 1970 only on a broken clock; 0 is as wrong as any other answer
    // and keeps the guest-facing type unsigned.
    jiff::Timestamp::now().as_second().max(0) as u64
}

/// Always three fractional digits (`…:00.000Z`, never `…:00Z`), so instants
/// written here sort as text the way they sort in time: with trimmed
/// fractions `"…:00Z"` would sort after `"…:00.5Z"`.
const MILLIS: jiff::fmt::temporal::DateTimePrinter = jiff::fmt::temporal::DateTimePrinter::new().precision(Some(3));

/// RFC 3339 UTC of `ms` Unix milliseconds; empty when out of range.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| MILLIS.timestamp_to_string(&t)).unwrap_or_default()
}

/// Now, RFC 3339 UTC at millisecond precision: an attempt's `started_at`.
pub fn now_rfc3339() -> String {
    rfc3339(now_ms())
}

/// Durations as text (`"250ms"`, `"5s"`, `"2h"`), and serde for them: the
/// form every configuration file and variable takes.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn parse(text: &str) -> Result<Duration, String> {
        let signed: jiff::SignedDuration = text
            .trim()
            .parse()
            .map_err(|e| format!("`{text}` is not a duration like \"250ms\", \"5s\" or \"2h\": {e}"))?;
        Duration::try_from(signed).map_err(|_| format!("`{text}` must not be negative"))
    }

    pub fn format(d: &Duration) -> String {
        jiff::SignedDuration::try_from(*d).map(|s| format!("{s:#}")).unwrap_or_else(|_| format!("{}s", d.as_secs()))
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_500), "2023-11-14T22:13:20.500Z");
        assert!(rfc3339(1_700_000_000_000) < rfc3339(1_700_000_000_001), "text order is time order");
        assert_eq!(rfc3339(i64::MAX), "");
        let now = now_rfc3339();
        assert!(now.ends_with('Z') && now.parse::<jiff::Timestamp>().is_ok(), "{now}");
        assert!(unix_now() > 1_700_000_000 && now_ms() > 1_700_000_000_000);
    }
}
