//! Typed settings and fields: [`settings_as`], [`crate::Delivery::settings_as`]
//! and [`crate::Delivery::fields_as`] turn the JSON a connector receives into
//! its own `#[derive(Deserialize)]` structs, and say what is wrong in words a
//! user can act on, naming the offending key.
//!
//! serde_json's own errors do not say where a wrong type was found
//! (``invalid type: integer `3`, expected a string``), so the JSON is walked here
//! by a small deserializer that knows the path to every value and keeps the
//! kinds of problem serde reports (missing, unknown, wrong type, wrong value)
//! apart until they are put into words (see [`settings_as`]).

use std::fmt::{self, Display};
use std::iter::Enumerate;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, Expected, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Deserialize a connection's settings into `T`, typically a struct with
/// `#[serde(deny_unknown_fields)]`; the error names the offending setting.
/// For [`crate::Connector::validate`]; in `deliver`, use
/// [`crate::Delivery::settings_as`] (and [`crate::Delivery::fields_as`] for
/// the fields, in the same words):
///
/// | problem | settings | fields |
/// |---|---|---|
/// | not an object | `settings must be a JSON object` | `fields must be a JSON object` |
/// | missing | `settings.mode is required` | ``field `text` is required`` |
/// | unknown (`deny_unknown_fields`) | `settings.regoin is not a setting of this connector (it takes: region, base_url)` | ``field `icon` is not a field of send_message (it takes: channel, text)`` |
/// | wrong type | `settings.base_url must be a string, got a number` | ``field `blocks[0]` must be an object, got a number`` |
/// | wrong value (an enum) | ``settings.mode must be `bot` or `webhook`, got "rtm"`` | |
/// | a connector's own [`Check`] | `settings.api_version must be a dated version such as 2026-09, got "v3"` | |
/// | any other refusal by a type | the type's message follows the name | ``field `tag` is empty`` |
///
/// A connector's own checks live in its types: [`Checked`] with a [`Check`]
/// for strings, or a `Deserialize` (or `#[serde(try_from = …)]`) whose error
/// text is a predicate, such as `is empty`, which is appended to the name.
pub fn settings_as<'a, T: Deserialize<'a>>(settings: &'a Value) -> Result<T, String> {
    parse(settings, Scope::Settings)
}

/// What the JSON being read is, for the words of the messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// A connection's settings: `settings.NAME`.
    Settings,
    /// A rule's rendered fields for `action`: ``field `NAME` ``.
    Fields { action: &'a str },
}

impl Scope<'_> {
    fn root(self) -> &'static str {
        match self {
            Scope::Settings => "settings",
            Scope::Fields { .. } => "fields",
        }
    }

    fn name(self, path: &str) -> String {
        match self {
            Scope::Settings => format!("settings.{path}"),
            Scope::Fields { .. } => format!("field `{path}`"),
        }
    }
}

/// Deserialize `value`, which must be a JSON object, into `T`.
pub(crate) fn parse<'a, T: Deserialize<'a>>(value: &'a Value, scope: Scope<'_>) -> Result<T, String> {
    if !value.is_object() {
        return Err(format!("{} must be a JSON object", scope.root()));
    }
    T::deserialize(Json(value)).map_err(|e| e.describe(scope))
}

/// A string that is not empty. As a field or setting type, `""` is refused
/// with ``field `NAME` is empty`` and a non-string with
/// ``field `NAME` must be a string, got …``, the same words as
/// [`crate::Delivery::field_str`]. Serialized, it is the plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct NonEmpty(String);

impl NonEmpty {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for NonEmpty {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.is_empty() { Err("is empty") } else { Ok(NonEmpty(text)) }
    }
}

impl Deref for NonEmpty {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Display for NonEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A connector's rule for a string setting or field, applied by [`Checked`].
pub trait Check {
    /// What a good value is, completing `must be …`, e.g.
    /// ``a dated API version such as `2026-09` ``.
    const EXPECTED: &'static str;

    /// The value to keep (the text, or a normalised form of it), or `None`
    /// to refuse it.
    fn check(text: &str) -> Option<String>;
}

/// A string that passed the connector's [`Check`] `C`. As a setting or field
/// type it refuses anything else as `settings.NAME must be {EXPECTED}, got
/// "…"` (a non-string: `…, got a number`), like every other refusal.
pub struct Checked<C>(String, PhantomData<C>);

impl<C> Checked<C> {
    /// The value `C::check` kept.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de, C: Check> Deserialize<'de> for Checked<C> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match C::check(&text) {
            Some(kept) => Ok(Checked(kept, PhantomData)),
            None => Err(de::Error::invalid_value(Unexpected::Str(&text), &C::EXPECTED)),
        }
    }
}

impl<C> Deref for Checked<C> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

// By hand: derived impls would ask the same of the rule type `C`.
impl<C> fmt::Debug for Checked<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Checked").field(&self.0).finish()
    }
}

impl<C> Clone for Checked<C> {
    fn clone(&self) -> Self {
        Checked(self.0.clone(), PhantomData)
    }
}

impl<C> Display for Checked<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One step of the path to a value.
#[derive(Debug)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
enum Problem {
    /// The last step names a required key that is absent.
    Missing,
    /// The last step names a key the struct does not take; these are the ones it does.
    Unknown(&'static [&'static str]),
    /// A value of the wrong type, or a value outside the allowed ones.
    Mismatch { expected: String, got: String },
    /// Any other refusal (serde's `custom`, e.g. `NonEmpty`'s): a predicate
    /// that follows the name.
    Other(String),
}

/// A deserialization error with the path to the value it is about.
#[derive(Debug)]
struct Error {
    /// From the top-level object inwards.
    path: Vec<Step>,
    problem: Problem,
}

impl Error {
    fn new(problem: Problem) -> Self {
        Error { path: Vec::new(), problem }
    }

    fn at(key: &str, problem: Problem) -> Self {
        Error { path: vec![Step::Key(key.to_string())], problem }
    }

    fn mismatch(expected: impl Into<String>, got: impl Into<String>) -> Self {
        Error::new(Problem::Mismatch { expected: expected.into(), got: got.into() })
    }

    /// The same error, one level further out.
    fn within(mut self, step: Step) -> Self {
        self.path.insert(0, step);
        self
    }

    fn describe(&self, scope: Scope<'_>) -> String {
        let mut path = String::new();
        for step in &self.path {
            match step {
                Step::Key(key) if path.is_empty() => path.push_str(key),
                Step::Key(key) => {
                    path.push('.');
                    path.push_str(key);
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        let name = if path.is_empty() { scope.root().to_string() } else { scope.name(&path) };
        match &self.problem {
            Problem::Missing => format!("{name} is required"),
            Problem::Unknown(allowed) => {
                let takes = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
                match scope {
                    _ if self.path.len() > 1 => format!("{name} is not allowed here (allowed: {takes})"),
                    Scope::Settings => format!("{name} is not a setting of this connector (it takes: {takes})"),
                    Scope::Fields { action } => format!("{name} is not a field of {action} (it takes: {takes})"),
                }
            }
            Problem::Mismatch { expected, got } => format!("{name} must be {expected}, got {got}"),
            Problem::Other(message) => format!("{name} {message}"),
        }
    }
}

// serde requires it; messages are made by `describe`, which knows the scope.
impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(Scope::Settings))
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: Display>(message: T) -> Self {
        Error::new(Problem::Other(message.to_string()))
    }

    fn invalid_type(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        Error::mismatch(json_words(&expected.to_string()), kind(&unexpected))
    }

    fn invalid_value(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        Error::mismatch(json_words(&expected.to_string()), shown(&unexpected))
    }

    fn invalid_length(len: usize, expected: &dyn Expected) -> Self {
        Error::mismatch(json_words(&expected.to_string()), format!("{len} items"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error::mismatch(one_of(expected), quoted(variant))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Error::at(field, Problem::Unknown(expected))
    }

    fn missing_field(field: &'static str) -> Self {
        Error::at(field, Problem::Missing)
    }
}

/// serde's names for what a type expects, in JSON's words.
fn json_words(expected: &str) -> String {
    let words = match expected {
        "a sequence" => "an array",
        "a map" => "an object",
        "a borrowed string" => "a string",
        "unit" => "null",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        other if other.starts_with("struct ") => "an object",
        other => other,
    };
    words.to_string()
}

/// The kind of a value that has the wrong type: `a number`, `an array`, ….
fn kind(unexpected: &Unexpected) -> String {
    let kind = match unexpected {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Unit | Unexpected::Option => "null",
        Unexpected::Seq => "an array",
        Unexpected::Map | Unexpected::NewtypeStruct | Unexpected::StructVariant => "an object",
        other => return other.to_string(),
    };
    kind.to_string()
}

/// A value outside the allowed ones, as JSON.
fn shown(unexpected: &Unexpected) -> String {
    match unexpected {
        Unexpected::Str(text) => quoted(text),
        Unexpected::Char(c) => quoted(&c.to_string()),
        Unexpected::Bool(b) => b.to_string(),
        Unexpected::Unsigned(n) => n.to_string(),
        Unexpected::Signed(n) => n.to_string(),
        Unexpected::Float(n) => n.to_string(),
        other => kind(other),
    }
}

fn quoted(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// `` `a` ``, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
fn one_of(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The kind of a JSON value, in the same words as [`kind`].
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value as a serde [`Deserializer`] whose errors carry their path.
#[derive(Clone, Copy)]
struct Json<'a>(&'a Value);

impl<'de> Deserializer<'de> for Json<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                (None, None) => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Items(items.iter().enumerate())),
            Value::Object(map) => visitor.visit_map(Entries { iter: map.iter(), value: None }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// Only unit variants, written as strings: what settings such as `mode` are.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            other => Err(Error::mismatch(one_of(variants), json_kind(other))),
        }
    }

    /// Only from an object: serde would also build a struct from an array.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.0.is_object() {
            self.deserialize_any(visitor)
        } else {
            Err(Error::mismatch("an object", json_kind(self.0)))
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct map identifier
    }
}

/// An array's items, each error marked with its index.
struct Items<'a>(Enumerate<std::slice::Iter<'a, Value>>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        match self.0.next() {
            None => Ok(None),
            Some((i, item)) => seed.deserialize(Json(item)).map(Some).map_err(|e| e.within(Step::Index(i))),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// An object's entries, each error marked with its key.
struct Entries<'a> {
    iter: serde_json::map::Iter<'a>,
    /// The entry whose key was just read.
    value: Option<(&'a str, &'a Value)>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.iter.next() else { return Ok(None) };
        self.value = Some((key, value));
        // An unknown field names itself; any other refusal of a key is about that key.
        let key_error = |e: Error| if e.path.is_empty() { e.within(Step::Key(key.clone())) } else { e };
        seed.deserialize(BorrowedStrDeserializer::new(key)).map(Some).map_err(key_error)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (key, value) = self.value.take().ok_or_else(|| de::Error::custom("has a value without a key"))?;
        seed.deserialize(Json(value)).map_err(|e| e.within(Step::Key(key.to_string())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Bot,
        Webhook,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        mode: Mode,
        base_url: Option<String>,
        headers: Option<BTreeMap<String, String>>,
        retries: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Fields<'a> {
        text: NonEmpty,
        channel: Option<&'a str>,
        blocks: Option<Vec<serde_json::Map<String, Value>>>,
    }

    fn settings(value: Value) -> String {
        settings_as::<Settings>(&value).unwrap_err()
    }

    fn fields(value: Value) -> String {
        parse::<Fields>(&value, Scope::Fields { action: "send_message" }).unwrap_err()
    }

    #[test]
    fn settings_errors_name_the_setting() {
        let ok: Settings = settings_as(&json!({"mode": "bot", "headers": {"x": "1"}, "retries": null})).unwrap();
        assert_eq!(ok.mode, Mode::Bot);
        assert_eq!(settings(json!([])), "settings must be a JSON object");
        assert_eq!(settings(json!({})), "settings.mode is required");
        assert_eq!(settings(json!({"mode": "rtm"})), "settings.mode must be `bot` or `webhook`, got \"rtm\"");
        assert_eq!(settings(json!({"mode": 1})), "settings.mode must be `bot` or `webhook`, got a number");
        assert_eq!(settings(json!({"mode": "bot", "base_url": 5})), "settings.base_url must be a string, got a number");
        assert_eq!(
            settings(json!({"mode": "bot", "headers": {"a": 1}})),
            "settings.headers.a must be a string, got a number"
        );
        assert_eq!(
            settings(json!({"mode": "bot", "retries": -1})),
            "settings.retries must be a non-negative integer, got -1"
        );
        assert_eq!(
            settings(json!({"mode": "bot", "regoin": "eu"})),
            "settings.regoin is not a setting of this connector (it takes: mode, base_url, headers, retries)"
        );
    }

    #[test]
    fn field_errors_name_the_field_and_the_action() {
        let value = json!({"text": "hi", "channel": "C0", "blocks": [{"type": "divider"}]});
        let ok: Fields = parse(&value, Scope::Fields { action: "send_message" }).unwrap();
        assert_eq!((ok.text.as_str(), ok.channel), ("hi", Some("C0")));
        assert_eq!(fields(json!("hi")), "fields must be a JSON object");
        assert_eq!(fields(json!({})), "field `text` is required");
        assert_eq!(fields(json!({"text": ""})), "field `text` is empty");
        assert_eq!(fields(json!({"text": null})), "field `text` must be a string, got null");
        assert_eq!(fields(json!({"text": "hi", "blocks": "x"})), "field `blocks` must be an array, got a string");
        assert_eq!(
            fields(json!({"text": "hi", "blocks": [{}, 1]})),
            "field `blocks[1]` must be an object, got a number"
        );
        assert_eq!(
            fields(json!({"text": "hi", "icon": ":x:"})),
            "field `icon` is not a field of send_message (it takes: text, channel, blocks)"
        );
    }

    struct Dated;

    impl Check for Dated {
        const EXPECTED: &'static str = "a date such as `2026-09`";

        fn check(text: &str) -> Option<String> {
            (text.len() == 7 && text.as_bytes()[4] == b'-').then(|| text.to_string())
        }
    }

    #[test]
    fn a_checked_string_is_refused_in_the_same_words() {
        #[derive(Debug, Deserialize)]
        struct Versioned {
            version: Checked<Dated>,
        }
        let ok: Versioned = settings_as(&json!({"version": "2026-09"})).unwrap();
        assert_eq!(ok.version.as_str(), "2026-09");
        let refused = |v: Value| settings_as::<Versioned>(&json!({"version": v})).unwrap_err();
        assert_eq!(refused(json!("v3")), "settings.version must be a date such as `2026-09`, got \"v3\"");
        assert_eq!(refused(json!(202609)), "settings.version must be a string, got a number");
    }

    #[test]
    fn a_non_empty_string_refuses_only_the_empty_one() {
        assert_eq!(NonEmpty::try_from(" ".to_string()).map(NonEmpty::into_string), Ok(" ".to_string()));
        assert_eq!(NonEmpty::try_from(String::new()), Err("is empty"));
    }
}
