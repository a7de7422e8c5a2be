//! Configuration shared by the commands. Durations are written the friendly
//! way (`"100ms"`, `"30s"`, `"5m"`) in files and env vars.

/// Serde for `std::time::Duration` as friendly text such as `"250ms"`.
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

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let signed = jiff::SignedDuration::try_from(*d).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&format!("{signed:#}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_friendly_durations() {
            assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
            assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
            assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
            assert!(parse("soon").unwrap_err().contains("soon"));
        }
    }
}
