//! The bounds on what a request may contain, in one place: body
//! size and nesting, names and references, event names, secret values,
//! connection settings. Each check answers a 422 naming the field; the
//! table of bounds is in docs/limits.md.

use std::ops::RangeInclusive;

use serde_json::Value;

use super::ApiError;

/// The largest management request body: axum's default, now stated. Room
/// for a filter's refusal to name the path of a 200,000-item `$in` (the
/// filter's own 64 KiB bound is checked after its structure) while keeping
/// one request's parse cheap. Connector uploads and ingest have their own
/// limits (`connectors::MAX_COMPONENT_BYTES`, `[ingest] max_body_bytes`).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// How deep any JSON value a tenant hands over may nest: each field of a
/// management body (`settings`, `filter`, `fields`) and an event's `payload`.
/// `{"a": 1}` is one level. Filters, templates, the connectors' `validate`
/// and the stored payload are all walked recursively, so this keeps every
/// walk shallow; serde_json's own limit (128) only guards the parser.
pub const MAX_DEPTH: usize = 32;

/// Names and references: workspace and connection names, and the connector,
/// version, connection, action and rule a body refers to.
pub const NAME_CHARS: RangeInclusive<usize> = 1..=200;

/// `event`, `resource`, `resource_id` and a client `id`: the ingest bound, so
/// that a rule can name anything an event may carry, and nothing it cannot.
pub const MAX_EVENT_FIELD_BYTES: usize = 256;

/// The longest secret value a connection may hold (a domain rule, kept with the operation).
pub use crate::ops::connections::MAX_SECRET_BYTES;

/// A connection's `settings`, serialized: they are handed to the connector
/// on every delivery.
pub const MAX_SETTINGS_BYTES: usize = 64 << 10;

/// A name or reference that is not blank, at most [`NAME_CHARS`] characters
/// and free of control characters (names end up in logs and UIs).
pub fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    let max = NAME_CHARS.end();
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > *max {
        return Err(ApiError::invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// [`check_name`] for an optional field.
pub fn check_optional_name(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    value.map_or(Ok(()), |v| check_name(field, v))
}

/// An event name, resource or resource id as a rule names it: held to what
/// ingest accepts (not blank, at most [`MAX_EVENT_FIELD_BYTES`] bytes).
pub fn check_event_field(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_EVENT_FIELD_BYTES {
        return Err(ApiError::invalid(field, format!("must be at most {MAX_EVENT_FIELD_BYTES} bytes")));
    }
    Ok(())
}

/// Whether `value` nests deeper than `max` levels (`{}` and `[]` are one).
/// Recursion is safe: values come from serde_json, which stops at 128.
pub fn nests_deeper(value: &Value, max: usize) -> bool {
    match value {
        Value::Array(items) => max == 0 || items.iter().any(|v| nests_deeper(v, max - 1)),
        Value::Object(map) => max == 0 || map.values().any(|v| nests_deeper(v, max - 1)),
        _ => false,
    }
}

/// The JSON text nests deeper than allowed, under this top-level key (when
/// the text is an object and the key could be read).
#[derive(Debug, PartialEq, Eq)]
pub struct TooDeep {
    pub field: Option<String>,
}

/// Checks that no value of a JSON text's top level nests deeper than `max`,
/// without parsing: one pass over the bytes, no recursion, so a body nested
/// 100,000 levels costs what its length costs. Brackets inside strings do
/// not count; malformed text is left for the parser to refuse.
pub fn check_text_depth(text: &[u8], max: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut string_start = 0;
    // The last string closed at the top level, and the key it became.
    let mut last_string = None;
    let mut key = None;
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    if depth == 1 {
                        last_string = Some(string_start..i);
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i + 1;
            }
            b':' if depth == 1 => key = last_string.clone(),
            b'{' | b'[' => {
                depth += 1;
                // The top-level container is level 0: its fields get `max` each.
                if depth > max + 1 {
                    let field =
                        key.map(|k| String::from_utf8_lossy(&text[k]).chars().take(*NAME_CHARS.end()).collect());
                    return Err(TooDeep { field });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!({"a": inner}))
    }

    #[test]
    fn nesting_counts_containers_not_scalars() {
        assert!(!nests_deeper(&json!(1), 0));
        assert!(!nests_deeper(&nested(MAX_DEPTH), MAX_DEPTH));
        assert!(nests_deeper(&nested(MAX_DEPTH + 1), MAX_DEPTH));
        assert!(nests_deeper(&json!([[[]]]), 2));
    }

    #[test]
    fn text_depth_names_the_top_level_field_and_ignores_brackets_in_strings() {
        let body = |v: Value| serde_json::to_vec(&json!({"name": "x", "settings": v})).unwrap();
        assert_eq!(check_text_depth(&body(nested(MAX_DEPTH)), MAX_DEPTH), Ok(()));
        assert_eq!(
            check_text_depth(&body(nested(MAX_DEPTH + 1)), MAX_DEPTH),
            Err(TooDeep { field: Some("settings".into()) })
        );
        let brackets = serde_json::to_vec(&json!({"k\"[": "[[[[{{{{\\\"[[["})).unwrap();
        assert_eq!(check_text_depth(&brackets, 1), Ok(()));
        assert_eq!(check_text_depth(&"[".repeat(100_000).into_bytes(), MAX_DEPTH), Err(TooDeep { field: None }));
    }

    #[test]
    fn names_are_bounded_by_characters_not_bytes() {
        assert!(check_name("name", &"é".repeat(200)).is_ok());
        assert!(check_name("name", &"é".repeat(201)).is_err());
        assert!(check_name("name", "  ").is_err());
        assert!(check_name("name", "a\nb").is_err());
        assert!(check_event_field("event", &"x".repeat(MAX_EVENT_FIELD_BYTES)).is_ok());
        assert!(check_event_field("event", &"é".repeat(MAX_EVENT_FIELD_BYTES / 2 + 1)).is_err());
    }
}
