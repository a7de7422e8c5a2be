//! Secrets in the sandbox's path: `{{secret.NAME}}` substitution at send
//! time, and scrubbing of values from anything recorded or shown to a guest.
//!
//! Guests only ever handle placeholders. The host substitutes values into the
//! outgoing request and nowhere else; attempt records keep the guest's
//! placeholder form, and any echo of a value in a response is replaced by its
//! placeholder before the guest or the record sees it — in the encoded and
//! case-folded forms too (see [`crate::redact`] for which, and its limits).

use std::collections::BTreeMap;
use std::fmt;

use crate::redact::Redactor;

pub use crate::redact::MIN_SECRET_BYTES;

/// A connection's secrets, by name. `Debug` never prints values.
#[derive(Clone, Default)]
pub struct SecretSet {
    values: BTreeMap<String, String>,
    /// The forms to scrub, derived once: a set scrubs many texts.
    redactor: Redactor,
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

/// A placeholder named a secret the connection does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request uses `{{{{secret.{0}}}}}` but the connection has no secret named `{0}`")]
pub struct UnknownSecret(pub String);

const OPEN: &[u8] = b"{{secret.";
const CLOSE: &[u8] = b"}}";

impl SecretSet {
    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Self {
        let values: BTreeMap<String, String> = values.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let redactor = Redactor::new(values.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        SecretSet { values, redactor }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Replace every `{{secret.NAME}}` in `input` with the value.
    pub fn substitute(&self, input: &[u8]) -> Result<Vec<u8>, UnknownSecret> {
        let mut out = Vec::with_capacity(input.len());
        let mut rest = input;
        while let Some(start) = find(rest, OPEN) {
            let after = &rest[start + OPEN.len()..];
            let Some(end) = find(after, CLOSE) else { break };
            let name = String::from_utf8_lossy(&after[..end]);
            let name = name.trim();
            let value = self.get(name).ok_or_else(|| UnknownSecret(name.to_string()))?;
            out.extend_from_slice(&rest[..start]);
            out.extend_from_slice(value.as_bytes());
            rest = &after[end + CLOSE.len()..];
        }
        out.extend_from_slice(rest);
        Ok(out)
    }

    /// `substitute` for text.
    pub fn substitute_str(&self, input: &str) -> Result<String, UnknownSecret> {
        if !input.contains("{{") {
            return Ok(input.to_string());
        }
        // Substituting UTF-8 values into UTF-8 text stays UTF-8.
        self.substitute(input.as_bytes()).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Replace every occurrence of a secret value, in any form the
    /// redactor knows, with its placeholder.
    pub fn scrub(&self, input: &[u8]) -> Vec<u8> {
        self.redactor.redact(input).into_owned()
    }

    /// `scrub` for text.
    pub fn scrub_str(&self, input: &str) -> String {
        if self.redactor.is_empty() {
            return input.to_string();
        }
        // Matches are whole UTF-8 values or ASCII, replaced by ASCII: the
        // result stays UTF-8 and nothing is lost here.
        String::from_utf8_lossy(&self.redactor.redact(input.as_bytes())).into_owned()
    }
}

/// Defuse placeholders in data that reaches a guest from outside (event
/// payloads, rendered fields, settings, destination responses): `{{secret.`
/// becomes `{{ secret.`, which the host never substitutes. Without this,
/// anyone who can emit an event (publishable keys are browser-safe) could
/// write `{{secret.api_key}}` into a payload that a connector copies into a
/// request body, and the host would send the value. The space survives any
/// JSON re-serialisation inside the guest, so the defusing cannot be undone.
pub fn neutralize(input: &str) -> std::borrow::Cow<'_, str> {
    if input.contains("{{secret.") {
        std::borrow::Cow::Owned(input.replace("{{secret.", "{{ secret."))
    } else {
        std::borrow::Cow::Borrowed(input)
    }
}

/// `neutralize` for bytes.
pub fn neutralize_bytes(input: Vec<u8>) -> Vec<u8> {
    if find(&input, OPEN).is_none() {
        return input;
    }
    let mut out = Vec::with_capacity(input.len() + 8);
    let mut rest = input.as_slice();
    while let Some(i) = find(rest, OPEN) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(b"{{ secret.");
        rest = &rest[i + OPEN.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Headers whose values are credentials even when the guest wrote them out.
pub fn is_sensitive_header(name: &str) -> bool {
    const NAMES: [&str; 8] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-token",
        "api-key",
        "x-auth-token",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// A header value as the attempt record shows it: placeholders kept, a
/// sensitive header without one replaced entirely.
pub fn redact_header(name: &str, value: &str) -> String {
    if is_sensitive_header(name) && !value.contains("{{secret.") { "[redacted]".to_string() } else { value.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> SecretSet {
        SecretSet::new([("token".to_string(), "s3cr3t".to_string()), ("key".to_string(), "k-1".to_string())])
    }

    #[test]
    fn substitutes_every_placeholder() {
        let out = set().substitute_str("Bearer {{secret.token}} and {{ secret.key }}? no: {{secret.key}}").unwrap();
        assert_eq!(out, "Bearer s3cr3t and {{ secret.key }}? no: k-1");
    }

    #[test]
    fn unknown_secret_is_named() {
        let err = set().substitute_str("{{secret.nope}}").unwrap_err();
        assert_eq!(err.to_string(), "the request uses `{{secret.nope}}` but the connection has no secret named `nope`");
    }

    #[test]
    fn scrub_replaces_values_with_placeholders() {
        assert_eq!(
            set().scrub_str("echo: s3cr3t/k-1/s3cr3t"),
            "echo: {{secret.token}}/{{secret.key}}/{{secret.token}}"
        );
    }

    #[test]
    fn neutralized_placeholders_are_never_substituted() {
        let hostile = r#"{"name":"{{secret.token}}"}"#;
        let defused = neutralize(hostile);
        assert_eq!(defused, r#"{"name":"{{ secret.token}}"}"#);
        assert_eq!(set().substitute_str(&defused).unwrap(), defused, "nothing to substitute");
        assert_eq!(neutralize_bytes(hostile.as_bytes().to_vec()), defused.as_bytes());
        assert_eq!(neutralize("plain"), "plain");
    }

    #[test]
    fn debug_never_prints_values() {
        let shown = format!("{:?}", set());
        assert!(!shown.contains("s3cr3t") && shown.contains("token"), "{shown}");
    }

    #[test]
    fn sensitive_headers_are_redacted_unless_placeholders() {
        assert_eq!(redact_header("Authorization", "Bearer {{secret.token}}"), "Bearer {{secret.token}}");
        assert_eq!(redact_header("Authorization", "Bearer literal"), "[redacted]");
        assert_eq!(redact_header("X-Team", "growth"), "growth");
    }
}

/// Each form a value takes on the way out is scrubbed; text that only looks
/// like part of a value is not.
#[cfg(test)]
mod redaction_tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    use super::*;

    /// The issue #9 probes: a value for a query string, one for a host name.
    const QUERY: &str = "RT Secret:ü/x?&=";
    const HOST: &str = "MiXeDCaseSecretXyz";
    const QUOTED: &str = r#"say "hi" \ to/me"#;

    fn set() -> SecretSet {
        SecretSet::new([("key", QUERY), ("tenant", HOST), ("quoted", QUOTED)].map(|(n, v)| (n.into(), v.into())))
    }

    #[test]
    fn a_value_in_a_query_string_is_scrubbed_as_the_url_parser_encodes_it() {
        let url = url::Url::parse(&format!("https://api.example.com/v1?key={QUERY}")).unwrap();
        assert_eq!(url.as_str(), "https://api.example.com/v1?key=RT%20Secret:%C3%BC/x?&=", "the probe's form");
        assert_eq!(set().scrub_str(url.as_str()), "https://api.example.com/v1?key={{secret.key}}");
    }

    #[test]
    fn percent_encodings_are_scrubbed_in_either_hex_case() {
        let form = url::form_urlencoded::Serializer::new(String::new()).append_pair("key", QUERY).finish();
        assert_eq!(set().scrub_str(&form), "key={{secret.key}}");
        assert_eq!(set().scrub_str("key=rt+secret%3a%c3%bc%2fx%3f%26%3d"), "key={{secret.key}}");
        // RFC 3986 with only unreserved characters kept (encodeURIComponent).
        assert_eq!(set().scrub_str("/k/RT%20Secret%3A%C3%BC%2Fx%3F%26%3D/"), "/k/{{secret.key}}/");
        let mut segment = url::Url::parse("https://api.example.com/").unwrap();
        segment.path_segments_mut().unwrap().push(QUERY).push("v1");
        assert_eq!(set().scrub_str(segment.path()), "/{{secret.key}}/v1");
    }

    #[test]
    fn a_value_in_a_host_name_is_scrubbed_after_the_parser_lower_cases_it() {
        let url = url::Url::parse(&format!("https://{HOST}.example.com/hook")).unwrap();
        assert_eq!(url.host_str(), Some("mixedcasesecretxyz.example.com"));
        assert_eq!(set().scrub_str(url.as_str()), "https://{{secret.tenant}}.example.com/hook");
        assert_eq!(set().scrub_str("MIXEDCASESECRETXYZ"), "{{secret.tenant}}");
    }

    #[test]
    fn base64_of_a_value_is_scrubbed_in_both_alphabets_padded_or_not() {
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            for (name, value) in [("key", QUERY), ("tenant", HOST), ("quoted", QUOTED)] {
                let encoded = engine.encode(value);
                assert_eq!(set().scrub_str(&format!("<{encoded}>")), format!("<{{{{secret.{name}}}}}>"), "{encoded}");
            }
        }
    }

    #[test]
    fn base64_of_a_value_inside_a_longer_encoding_loses_every_character_that_encodes_it() {
        // "user:" is 5 bytes: its first 6 characters encode nothing of the value.
        let basic = STANDARD.encode(format!("user:{HOST}"));
        assert_eq!(set().scrub_str(&format!("Basic {basic}")), format!("Basic {}{{{{secret.tenant}}}}", &basic[..6]));
        let middle = URL_SAFE_NO_PAD.encode(format!("ab{QUERY}cdef"));
        let scrubbed = set().scrub_str(&middle);
        assert!(scrubbed.starts_with(&middle[..2]) && scrubbed.contains("{{secret.key}}"), "{scrubbed}");
        assert!(scrubbed.len() < middle.len(), "{scrubbed}");
    }

    #[test]
    fn json_escaped_values_are_scrubbed_however_the_encoder_escapes() {
        let json = format!(r#"{{"q":{}}}"#, serde_json::to_string(QUOTED).unwrap());
        assert_eq!(set().scrub_str(&json), r#"{"q":"{{secret.quoted}}"}"#);
        assert_eq!(
            set().scrub_str(r#"{"q":"say \"hi\" \\ to\/me"}"#),
            r#"{"q":"{{secret.quoted}}"}"#,
            "PHP escapes slashes"
        );
        assert_eq!(set().scrub_str(r#""RT Secret:\u00FC/x?&=""#), r#""{{secret.key}}""#, "ensure_ascii");
    }

    #[test]
    fn a_secret_that_is_a_whole_url_is_scrubbed_as_the_parser_normalises_it() {
        let hook = "HTTPS://Hooks.Example.com:443/services/T0/B1/xyz secret";
        let set = SecretSet::new([("webhook_url".to_string(), hook.to_string())]);
        let error = format!("error sending request for url ({})", url::Url::parse(hook).unwrap());
        assert_eq!(set.scrub_str(&error), "error sending request for url ({{secret.webhook_url}})");
    }

    #[test]
    fn text_that_only_resembles_a_value_is_left_alone() {
        let text = "MiXeDCaseSecret is not it, nor mixedcase-secretxyz; RT Secret:u/x?&= differs; \
                    Basic dXNlcjpvdGhlci1wYXNzd29yZA== and plain words stay";
        assert_eq!(set().scrub_str(text), text);
        assert_eq!(set().scrub(text.as_bytes()), text.as_bytes());
    }

    #[test]
    fn a_value_inside_another_is_scrubbed_as_the_longer_one() {
        let set =
            SecretSet::new([("short", "abcdefgh12"), ("long", "abcdefgh12345")].map(|(n, v)| (n.into(), v.into())));
        assert_eq!(set.scrub_str("abcdefgh12345 abcdefgh12"), "{{secret.long}} {{secret.short}}");
    }
}

/// The master key that seals connection secrets at rest
/// (XChaCha20-Poly1305, a random nonce per seal, the connection id as
/// associated data so a sealed blob cannot be moved to another connection).
#[derive(Clone)]
pub struct MasterKey(chacha20poly1305::Key);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the master key must be base64 of 32 bytes")]
    BadKey,
    #[error("sealed secrets cannot be opened (wrong master key or corrupt data)")]
    Open,
}

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| SealError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(MasterKey(key.into()))
    }

    /// A fresh random key, base64.
    pub fn generate() -> String {
        use base64::Engine as _;
        let key: [u8; 32] = rand::random();
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    pub fn seal(&self, secrets: &BTreeMap<String, String>, context: &str) -> Vec<u8> {
        use chacha20poly1305::aead::{Aead, Payload};
        use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
        let nonce: [u8; 24] = rand::random();
        let plain = serde_json::to_vec(secrets).expect("a string map serialises");
        let cipher = XChaCha20Poly1305::new(&self.0)
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: context.as_bytes() })
            .expect("encryption of a small buffer cannot fail");
        [nonce.as_slice(), &cipher].concat()
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<BTreeMap<String, String>, SealError> {
        use chacha20poly1305::aead::{Aead, Payload};
        use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
        if sealed.is_empty() {
            return Ok(BTreeMap::new());
        }
        if sealed.len() < 24 {
            return Err(SealError::Open);
        }
        let (nonce, cipher) = sealed.split_at(24);
        let plain = XChaCha20Poly1305::new(&self.0)
            .decrypt(XNonce::from_slice(nonce), Payload { msg: cipher, aad: context.as_bytes() })
            .map_err(|_| SealError::Open)?;
        serde_json::from_slice(&plain).map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod sealing_tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_the_connection() {
        let key = MasterKey::from_base64(&MasterKey::generate()).unwrap();
        let secrets = BTreeMap::from([("api_key".to_string(), "k-123".to_string())]);
        let sealed = key.seal(&secrets, "conn_a");
        assert!(!String::from_utf8_lossy(&sealed).contains("k-123"), "ciphertext does not hold the value");
        assert_eq!(key.open(&sealed, "conn_a"), Ok(secrets));
        assert_eq!(key.open(&sealed, "conn_b"), Err(SealError::Open), "bound to its connection");
        let other = MasterKey::from_base64(&MasterKey::generate()).unwrap();
        assert_eq!(other.open(&sealed, "conn_a"), Err(SealError::Open));
        assert_eq!(MasterKey::from_base64("c2hvcnQ=").unwrap_err(), SealError::BadKey);
    }
}
