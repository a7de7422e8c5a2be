//! URL pieces every API connector needs: [`BaseUrl`], the origin (and
//! optional path prefix) a vendor's API paths hang off, as a setting, and
//! [`percent_encode`] for the values put into paths and queries.

use std::fmt::{self, Display, Write as _};

use serde::Deserialize;

/// An absolute `http(s)://` URL that API paths are appended to: a host, an
/// optional port and path prefix, and no query, fragment, user-info or
/// blanks. Trailing slashes are dropped, so `format!("{base}/api/…")` is
/// right whatever the user typed.
///
/// As a setting type (`base_url: Option<BaseUrl>`) it refuses anything else
/// with `settings.base_url must be an absolute http(s) URL without query or
/// fragment, got "…"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BaseUrl(String);

impl BaseUrl {
    /// `text` as a base URL, or `None` when it is not one.
    pub fn parse(text: &str) -> Option<BaseUrl> {
        let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let refused = |c: char| c.is_whitespace() || matches!(c, '?' | '#');
        // `@` in the authority is user-info: credentials belong in secrets.
        let usable = !authority.is_empty() && !authority.contains('@') && !text.contains(refused);
        usable.then(|| BaseUrl(text.trim_end_matches('/').to_string()))
    }

    /// The URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BaseUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        BaseUrl::parse(&text).ok_or_else(|| {
            format!(
                "must be an absolute http(s) URL without query or fragment, got {}",
                serde_json::Value::String(text)
            )
        })
    }
}

impl Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`), so any text is one path segment or one query
/// value: `o'neil+trial@northstar.io` becomes `o%27neil%2Btrial%40northstar.io`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_absolute_http_without_query_fragment_or_credentials() {
        for (text, base) in [
            ("https://slack.com", "https://slack.com"),
            ("http://127.0.0.1:4010/hubspot/", "http://127.0.0.1:4010/hubspot"),
            ("https://api.eu.intercom.io//", "https://api.eu.intercom.io"),
        ] {
            assert_eq!(BaseUrl::parse(text).as_ref().map(BaseUrl::as_str), Some(base), "{text}");
        }
        for bad in [
            "slack.com",
            "ftp://x.io",
            "https://",
            "https:///x",
            "https://x.io?a=1",
            "https://x.io/#f",
            "https://user:pw@x.io",
            "https://x .io",
            " https://x.io",
        ] {
            assert_eq!(BaseUrl::parse(bad), None, "{bad}");
        }
        assert_eq!(
            BaseUrl::try_from("api.intercom.io".to_string()),
            Err("must be an absolute http(s) URL without query or fragment, got \"api.intercom.io\"".to_string())
        );
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("o'neil+trial@northstar.io"), "o%27neil%2Btrial%40northstar.io");
        assert_eq!(percent_encode("Q&A #1 / café"), "Q%26A%20%231%20%2F%20caf%C3%A9");
        assert_eq!(percent_encode("a-b.c_d~e"), "a-b.c_d~e");
    }
}
