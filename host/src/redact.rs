//! Finding secret values in text in the forms they take on the way out, so
//! [`crate::secrets::SecretSet::scrub`] can replace each with its placeholder.
//!
//! A value rarely comes back byte for byte: URL parsers percent-encode it and
//! lower-case host names, form encoders use `+`, JSON escapes it, HTTP auth
//! schemes base64 it. For every value of at least
//! [`MIN_SECRET_BYTES`] the redactor
//! derives, once per secret set:
//!
//! - the raw value, matched ignoring ASCII case (a host name comes back
//!   lower-cased, a percent escape in either hex case);
//! - its `application/x-www-form-urlencoded` and RFC 3986 (everything but
//!   unreserved characters escaped) encodings;
//! - the encodings the `url` crate gives it as a query, path, path segment,
//!   fragment, user name and password, and, when the value is itself an
//!   absolute URL (a webhook URL), that URL as the parser normalises it;
//! - its JSON string escapes: as `serde_json` writes them, with `\/`, and
//!   ASCII-only (`\u00fc`);
//! - its standard and URL-safe base64, at each of the three byte alignments,
//!   so `base64(secret)` is found alone (padded or not) and also inside a
//!   longer encoding such as `Basic base64(user:secret)`. Only the characters
//!   that encode the secret are replaced, plus the one partial character at
//!   each edge; the characters of the surrounding data stay.
//!
//! Limitations, by design of substring matching: a value split across URL
//! components (part in the path, part in the query), encoded twice, hashed,
//! hex-encoded, IDNA-encoded as a host name, or case-changed outside ASCII is
//! not found; nor is a fragment of a value (the host part of a secret webhook
//! URL). Values shorter than `MIN_SECRET_BYTES` (which the API refuses, but a
//! store may still hold, and `connector test --secret` accepts) are replaced
//! in their exact raw form only: their derived forms would match unrelated
//! text.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// The shortest secret value the API accepts: a shorter one could not be
/// scrubbed without rewriting unrelated text that happens to contain it.
pub const MIN_SECRET_BYTES: usize = 8;

/// The precomputed forms of a set of secret values.
#[derive(Clone, Default)]
pub struct Redactor {
    placeholders: Vec<String>,
    /// Longest first, so the fullest form of an occurrence wins.
    patterns: Vec<Pattern>,
    /// Pattern indexes by the byte they start with (both cases when folded):
    /// most input bytes start no pattern and cost one lookup.
    by_first: Vec<Vec<usize>>,
}

#[derive(Clone)]
struct Pattern {
    needle: Vec<u8>,
    fold_case: bool,
    secret: usize,
    /// A base64 core: the encoding's characters that mix secret bits with
    /// neighbouring bits are not fixed, so the match takes the one before
    /// and/or after whatever it is.
    edges: Option<Edges>,
}

#[derive(Clone, Copy)]
struct Edges {
    before: bool,
    after: bool,
}

impl Redactor {
    /// Forms of each `(name, value)`; each occurrence becomes `{{secret.NAME}}`.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut placeholders = Vec::new();
        let mut patterns: Vec<Pattern> = Vec::new();
        for (secret, (name, value)) in secrets.into_iter().enumerate() {
            placeholders.push(format!("{{{{secret.{name}}}}}"));
            for mut pattern in forms(value) {
                pattern.secret = secret;
                if !patterns.iter().any(|p| p.same_as(&pattern)) {
                    patterns.push(pattern);
                }
            }
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(p.needle.len()));
        let mut by_first = vec![Vec::new(); 256];
        for (i, p) in patterns.iter().enumerate() {
            let first = p.needle[0];
            let (a, b) =
                if p.fold_case { (first.to_ascii_lowercase(), first.to_ascii_uppercase()) } else { (first, first) };
            by_first[usize::from(a)].push(i);
            if b != a {
                by_first[usize::from(b)].push(i);
            }
        }
        Redactor { placeholders, patterns, by_first }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `input` with every form of every secret replaced by its placeholder.
    pub fn redact<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        if self.patterns.is_empty() {
            return Cow::Borrowed(input);
        }
        let mut out = Vec::new();
        // `input[..copied]` is already in `out` (or replaced).
        let mut copied = 0;
        let mut i = 0;
        while i < input.len() {
            let Some(p) =
                self.by_first[usize::from(input[i])].iter().map(|&p| &self.patterns[p]).find(|p| p.at(input, i))
            else {
                i += 1;
                continue;
            };
            let (mut start, mut end) = (i, i + p.needle.len());
            if let Some(edges) = p.edges {
                // Either alphabet: the standard and URL-safe cores of a value
                // without `+/` are one pattern.
                let alphabet = |b: u8| b.is_ascii_alphanumeric() || b"+/-_".contains(&b);
                if edges.before && start > copied && alphabet(input[start - 1]) {
                    start -= 1;
                }
                if edges.after && end < input.len() && alphabet(input[end]) {
                    end += 1;
                    // Padding, when the value ends the encoding.
                    let padding = input[end..].iter().take(2).take_while(|&&b| b == b'=').count();
                    end += padding;
                }
            }
            out.extend_from_slice(&input[copied..start]);
            out.extend_from_slice(self.placeholders[p.secret].as_bytes());
            copied = end;
            i = end;
        }
        if copied == 0 {
            return Cow::Borrowed(input);
        }
        out.extend_from_slice(&input[copied..]);
        Cow::Owned(out)
    }
}

impl Pattern {
    fn new(needle: impl Into<Vec<u8>>, fold_case: bool) -> Self {
        Pattern { needle: needle.into(), fold_case, secret: 0, edges: None }
    }

    fn same_as(&self, other: &Pattern) -> bool {
        self.fold_case == other.fold_case
            && if self.fold_case {
                self.needle.eq_ignore_ascii_case(&other.needle)
            } else {
                self.needle == other.needle
            }
    }

    fn at(&self, input: &[u8], i: usize) -> bool {
        let Some(candidate) = input.get(i..i + self.needle.len()) else { return false };
        if self.fold_case { candidate.eq_ignore_ascii_case(&self.needle) } else { candidate == self.needle }
    }
}

/// Every form of one value worth looking for.
fn forms(value: &str) -> Vec<Pattern> {
    if value.len() < MIN_SECRET_BYTES {
        return if value.is_empty() { Vec::new() } else { vec![Pattern::new(value, false)] };
    }
    let json = json_escaped(value, false);
    let mut texts = vec![
        value.to_string(),
        url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        rfc3986(value),
        json.replace('/', "\\/"),
        json,
        json_escaped(value, true),
    ];
    texts.extend(url_forms(value));
    let mut patterns: Vec<Pattern> = texts
        .into_iter()
        // A URL parser may drop parts (dot segments): a short remainder would
        // match unrelated text.
        .filter(|t| t.len() >= MIN_SECRET_BYTES)
        .map(|t| Pattern::new(t, true))
        .collect();
    for url_safe in [false, true] {
        for align in 0..3 {
            patterns.push(base64_core(value.as_bytes(), align, url_safe));
        }
    }
    patterns
}

/// Percent-encode all but RFC 3986 unreserved characters.
fn rfc3986(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The inside of a JSON string holding `value`.
fn json_escaped(value: &str, ascii_only: bool) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    let inner = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default();
    if !ascii_only {
        return inner.to_string();
    }
    let mut out = String::with_capacity(inner.len());
    let mut units = [0u16; 2];
    for c in inner.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// The value as the `url` crate serialises it in each component of a URL.
fn url_forms(value: &str) -> Vec<String> {
    fn component(change: impl Fn(&mut url::Url), read: impl Fn(&url::Url) -> Option<String>) -> Option<String> {
        let mut u = url::Url::parse("http://h/").ok()?;
        change(&mut u);
        read(&u)
    }
    let path = |u: &url::Url| Some(u.path().trim_start_matches('/').to_string());
    let mut forms = vec![
        component(|u| u.set_query(Some(value)), |u| u.query().map(str::to_string)),
        component(|u| u.set_fragment(Some(value)), |u| u.fragment().map(str::to_string)),
        component(|u| u.set_path(value), path),
        component(
            |u| {
                if let Ok(mut segments) = u.path_segments_mut() {
                    segments.clear().push(value);
                }
            },
            path,
        ),
        component(|u| _ = u.set_username(value), |u| Some(u.username().to_string())),
        component(|u| _ = u.set_password(Some(value)), |u| u.password().map(str::to_string)),
    ];
    // A secret that is a whole URL (an incoming-webhook URL) comes back
    // normalised: scheme and host lower-cased, default port dropped, escapes added.
    if let Ok(u) = url::Url::parse(value) {
        forms.push(Some(u.as_str().to_string()));
    }
    forms.into_iter().flatten().collect()
}

/// The base64 characters that encode only bits of `value` when it starts
/// `align` bytes into a 3-byte group: the same in every encoding that
/// contains the value at that alignment.
fn base64_core(value: &[u8], align: usize, url_safe: bool) -> Pattern {
    let engine = if url_safe { &URL_SAFE_NO_PAD } else { &STANDARD_NO_PAD };
    let mut bytes = vec![0u8; align];
    bytes.extend_from_slice(value);
    let encoded = engine.encode(&bytes);
    let (start_bit, end_bit) = (8 * align, 8 * (align + value.len()));
    let core = &encoded.as_bytes()[start_bit.div_ceil(6)..end_bit / 6];
    let edges = Edges { before: start_bit % 6 != 0, after: end_bit % 6 != 0 };
    Pattern { needle: core.to_vec(), fold_case: false, secret: 0, edges: Some(edges) }
}
