//! [`DatabaseUrl`]: the PostgreSQL URL from `[store] url`, which may hold a
//! password. Only the connection code reads it whole ([`DatabaseUrl::expose`]);
//! everything that could show it — `Debug`, `Display`, `Serialize`, config
//! errors — writes the redacted form, password replaced by `***`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What stands for a password in the redacted form.
const HIDDEN: &str = "***";

#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// A `postgres://` or `postgresql://` URL; the refusal never quotes it.
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let url = url::Url::parse(text).map_err(|e| format!("store.url is not a URL ({e})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err("store.url must start with postgres:// or postgresql://".into());
        }
        Ok(DatabaseUrl(text.to_string()))
    }

    /// The whole URL, password included: for connecting, nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (in the user info or a `password` query
    /// parameter) replaced by `***`.
    pub fn redacted(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.0) else { return "<unreadable URL>".into() };
        if url.password().is_some() && url.set_password(Some(HIDDEN)).is_err() {
            return "<unreadable URL>".into();
        }
        let has_password_param = url.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password"));
        if has_password_param {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") { HIDDEN.to_string() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Written redacted: a configuration written out never carries the password.
impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DatabaseUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let url = DatabaseUrl::parse("postgres://sb:s3cr%40t-pw@db.internal:5432/switchboard?sslmode=require").unwrap();
        assert_eq!(url.expose(), "postgres://sb:s3cr%40t-pw@db.internal:5432/switchboard?sslmode=require");
        for shown in [format!("{url}"), format!("{url:?}"), serde_json::to_string(&url).unwrap()] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("postgres://sb:***@db.internal:5432/switchboard?sslmode=require"), "{shown}");
        }
        let url = DatabaseUrl::parse("postgresql://db/sb?user=sb&password=hunter2-pw").unwrap();
        assert_eq!(url.redacted(), "postgresql://db/sb?user=sb&password=***");
        assert_eq!(DatabaseUrl::parse("postgres://db/sb").unwrap().redacted(), "postgres://db/sb");
    }

    #[test]
    fn a_refused_url_is_not_quoted() {
        for bad in ["mysql://root:hunter2-pw@db/x", "hunter2-pw"] {
            let err = DatabaseUrl::parse(bad).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
