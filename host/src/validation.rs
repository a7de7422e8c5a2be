//! Connection settings and rule fields checked against the JSON Schemas a
//! connector declares (with the `jsonschema` crate), so a bad setting or a
//! missing required field is refused when it is saved — naming its JSON
//! path — instead of failing later, as deliveries. The same checks decide
//! whether a new version accepts what existing connections and rules hold
//! (the upload's compatibility report, and which version `latest` picks).
//!
//! Rule fields are templates until an event renders them: a value with a
//! template in it cannot be judged by type, pattern or range before then,
//! so those checks are left to delivery; what the object holds — required
//! and unknown properties — is checked at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::Value;

use crate::runtime::LoadedConnector;

/// At most this many faults are reported for one value.
const MAX_ERRORS: usize = 20;
/// A fault's message quotes the value at fault; long values are cut.
const MAX_MESSAGE_CHARS: usize = 300;

/// One place a value breaks a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SchemaError {
    /// JSON path of the fault, from the top of the request: `settings.url`,
    /// `fields.email`, `fields.tags[2]`.
    pub path: String,
    pub message: String,
}

/// What rule fields hold when they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    /// Templates, as saved: only the object's shape is judged.
    Templates,
    /// Values an event rendered: judged in full.
    Rendered,
}

/// Where `settings` breaks the connector's settings schema.
pub fn settings(connector: &LoadedConnector, settings: &Value) -> Vec<SchemaError> {
    match compiled(connector).settings.as_ref() {
        Some(schema) => check(schema, settings, "settings", Fields::Rendered),
        None => Vec::new(),
    }
}

/// Where `fields` break the fields schema of `action`; nothing when the
/// connector has no such action (that is reported on its own).
pub fn fields(connector: &LoadedConnector, action: &str, fields: &Value, form: Fields) -> Vec<SchemaError> {
    match compiled(connector).actions.get(action).and_then(Option::as_ref) {
        Some(schema) => check(schema, fields, "fields", form),
        None => Vec::new(),
    }
}

/// Everything `connector` refuses of a connection: settings against its
/// schema, secrets it does not take, required secrets missing.
pub fn connection(connector: &LoadedConnector, settings: &Value, secret_names: &[String]) -> Vec<SchemaError> {
    let m = connector.manifest();
    let mut out = self::settings(connector, settings);
    for name in secret_names.iter().filter(|n| !m.secrets.iter().any(|s| s.name == **n)) {
        out.push(SchemaError {
            path: format!("secrets.{name}"),
            message: "is not a secret this connector takes".into(),
        });
    }
    for spec in m.secrets.iter().filter(|s| s.required && !secret_names.contains(&s.name)) {
        out.push(SchemaError { path: format!("secrets.{}", spec.name), message: "is required".into() });
    }
    out
}

/// Everything `connector` refuses of a rule: an action it does not have,
/// fields (as templates) against that action's schema.
pub fn rule(connector: &LoadedConnector, action: &str, fields: &Value) -> Vec<SchemaError> {
    if !connector.manifest().actions.iter().any(|a| a.name == action) {
        return vec![SchemaError {
            path: "action".into(),
            message: format!("`{action}` is not an action of this version"),
        }];
    }
    self::fields(connector, action, fields, Fields::Templates)
}

/// A connector's schemas, compiled once per component.
#[derive(Default)]
struct Compiled {
    /// `None` when the schema does not compile: the manifest check
    /// (`runtime/schema.rs`) let it through, and a schema that cannot be
    /// compiled cannot refuse anything either.
    settings: Option<jsonschema::Validator>,
    actions: HashMap<String, Option<jsonschema::Validator>>,
}

fn compiled(connector: &LoadedConnector) -> Arc<Compiled> {
    // Keyed by the component's hash: a version rebuilt in development mode
    // is a different component with perhaps different schemas. Versions are
    // few (a registry's worth), so the map is never pruned.
    static CACHE: Mutex<Option<HashMap<String, Arc<Compiled>>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(c) = cache.get(connector.sha256()) {
        return c.clone();
    }
    let m = connector.manifest();
    let build = |schema: &Value| {
        jsonschema::options()
            .build(schema)
            .inspect_err(
                |e| tracing::warn!(connector = %m.name, version = %m.version, error = %e, "schema does not compile"),
            )
            .ok()
    };
    let c = Arc::new(Compiled {
        settings: build(&m.settings_schema),
        actions: m.actions.iter().map(|a| (a.name.clone(), build(&a.fields_schema))).collect(),
    });
    cache.insert(connector.sha256().to_string(), c.clone());
    c
}

fn check(schema: &jsonschema::Validator, value: &Value, root: &str, form: Fields) -> Vec<SchemaError> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let mut out = Vec::new();
    for e in schema.iter_errors(value) {
        let at = path(root, &e.instance_path);
        let error = match &e.kind {
            Kind::Required { property } => {
                let name = property.as_str().map_or_else(|| property.to_string(), str::to_string);
                SchemaError { path: format!("{at}.{name}"), message: format!("is required ({})", e) }
            }
            Kind::AdditionalProperties { unexpected } => {
                let first = unexpected.first().cloned().unwrap_or_default();
                SchemaError { path: format!("{at}.{first}"), message: "is not a known property".into() }
            }
            // An unrendered template says nothing yet about the value it becomes.
            _ if form == Fields::Templates && holds_template(&e.instance) => continue,
            _ => SchemaError { path: at, message: cut(e.to_string()) },
        };
        out.push(error);
        if out.len() == MAX_ERRORS {
            break;
        }
    }
    out
}

/// `settings` + `/a/0/b` → `settings.a[0].b`.
fn path(root: &str, pointer: &jsonschema::paths::Location) -> String {
    let mut out = root.to_string();
    for segment in pointer {
        match segment {
            jsonschema::paths::LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
            jsonschema::paths::LocationSegment::Property(p) => {
                out.push('.');
                out.push_str(&p);
            }
        }
    }
    out
}

fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(map) => map.values().any(holds_template),
        _ => false,
    }
}

fn cut(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &message[..i]),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(schema: Value, value: Value, form: Fields) -> Vec<SchemaError> {
        check(&jsonschema::validator_for(&schema).unwrap(), &value, "fields", form)
    }

    #[test]
    fn faults_are_named_by_their_json_path() {
        let schema = json!({
            "type": "object", "required": ["email"], "additionalProperties": false,
            "properties": {"email": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}
        });
        let e = errors(schema.clone(), json!({"tags": ["a", 3], "colour": "red"}), Fields::Rendered);
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"fields.email"), "{e:?}");
        assert!(paths.contains(&"fields.colour"), "{e:?}");
        assert!(paths.contains(&"fields.tags[1]"), "{e:?}");
        assert!(errors(schema, json!({"email": "a@b.c"}), Fields::Rendered).is_empty());
    }

    #[test]
    fn templates_are_judged_by_shape_until_rendered() {
        let schema = json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}});
        assert!(errors(schema.clone(), json!({"n": "{{ payload.n }}"}), Fields::Templates).is_empty());
        assert_eq!(errors(schema.clone(), json!({"n": "{{ payload.n }}"}), Fields::Rendered).len(), 1);
        assert_eq!(errors(schema.clone(), json!({"n": "seven"}), Fields::Templates)[0].path, "fields.n");
        assert_eq!(errors(schema, json!({}), Fields::Templates)[0].path, "fields.n");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let e = errors(json!({"type": "integer"}), json!("x".repeat(5000)), Fields::Rendered);
        assert!(e[0].message.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }
}
