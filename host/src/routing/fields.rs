//! The `fields` of a routing rule (SPEC §5): a JSON value whose strings are Jinja templates,
//! rendered with minijinja over `{event, payload, resource, resource_id, workspace, id,
//! created_at}` to build what a matched rule hands its connector. Owns the template
//! environment (strict undefined, no auto-escaping, fuel-limited) and the typing rule: a string
//! that is exactly one `{{ expression }}` keeps the JSON type of its value, any other string
//! renders to a string.

use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment, Expression, Template, UndefinedBehavior, value::ValueKind};
use serde_json::{Map, Value};

/// Enough for any realistic field, far too little for a template written to burn CPU.
const FUEL: u64 = 50_000;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{path}`: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// Validated field templates. minijinja's compiled forms borrow their source, so this keeps the
/// (already checked) sources and re-parses each at render; parsing is cheap next to a delivery.
#[derive(Debug, Clone)]
pub struct FieldTemplates {
    fields: Value,
}

/// One template string, parsed.
enum Piece<'a> {
    Expr(Expression<'a, 'a>),
    Text(Template<'a, 'a>),
}

impl FieldTemplates {
    /// Compile every string in `fields` (any JSON value: object, array, string, ...) as a template.
    /// Syntax errors are reported with the path of the string, e.g. `properties.onboarding_step`.
    pub fn compile(fields: &Value) -> Result<FieldTemplates, FieldError> {
        walk(fields, "", &mut |source, path| {
            parse(source).map_err(|e| field_error(path, describe(&e)))?;
            Ok(Value::Null)
        })?;
        Ok(FieldTemplates { fields: fields.clone() })
    }

    /// Render against the context (a JSON object with keys event, payload, resource, resource_id,
    /// workspace, id, created_at). Undefined variables are errors naming the field path.
    pub fn render(&self, context: &Value) -> Result<Value, FieldError> {
        walk(&self.fields, "", &mut |source, path| {
            render_one(source, context).map_err(|message| field_error(path, message))
        })
    }
}

fn field_error(path: &str, message: String) -> FieldError {
    FieldError { path: path.to_owned(), message }
}

/// Rebuilds `value`, replacing each string by `f(string, path)`.
fn walk(
    value: &Value,
    path: &str,
    f: &mut impl FnMut(&str, &str) -> Result<Value, FieldError>,
) -> Result<Value, FieldError> {
    Ok(match value {
        Value::String(source) => f(source, path)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| walk(item, &format!("{path}[{i}]"), f))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    Ok((key.clone(), walk(item, &child, f)?))
                })
                .collect::<Result<Map<_, _>, _>>()?,
        ),
        other => other.clone(),
    })
}

/// The inside of a string that is one `{{ ... }}` and nothing else but whitespace, with any
/// whitespace-control marker (`{{-`, `-}}`) dropped: it is meaningless for a lone value.
fn lone_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    Some(inner.strip_suffix(['-', '+']).unwrap_or(inner))
}

fn parse(source: &str) -> Result<Piece<'_>, minijinja::Error> {
    let env: &Environment<'_> = &ENV;
    let expr = lone_expression(source).filter(|inner| !closes_early(inner));
    // A lone `{{ ... }}` that is not one valid expression is parsed as a text template, which
    // either renders to a string or reports the syntax error with the template's own wording.
    if let Some(expr) = expr.and_then(|inner| env.compile_expression(inner).ok()) {
        return Ok(Piece::Expr(expr));
    }
    env.template_from_str(source).map(Piece::Text)
}

/// Whether `}}` ends the expression before its end, as in `{{ a }} and {{ b }}`. Such strings
/// are text templates, and minijinja's expression parser panics ("empty lexer stack") on them,
/// so this mirrors its lexer: `}}` closes only outside string literals and brackets.
fn closes_early(expr: &str) -> bool {
    let bytes = expr.as_bytes();
    let (mut depth, mut quote, mut escaped) = (0isize, None, false);
    for (i, &byte) in bytes.iter().enumerate() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if byte == b'\\' => escaped = true,
            Some(q) if byte == q => quote = None,
            Some(_) => {}
            None => match byte {
                b'\'' | b'"' => quote = Some(byte),
                b'(' | b'[' | b'{' => depth += 1,
                b'}' if depth == 0 && bytes.get(i + 1) == Some(&b'}') => return true,
                b')' | b']' | b'}' => depth -= 1,
                _ => {}
            },
        }
    }
    false
}

fn render_one(source: &str, context: &Value) -> Result<Value, String> {
    match parse(source).map_err(|e| describe(&e))? {
        Piece::Text(template) => template.render(context).map(Value::String).map_err(|e| describe(&e)),
        Piece::Expr(expr) => {
            let value = expr.eval(context).map_err(|e| describe(&e))?;
            // Strict mode only trips when an undefined is used, and a lone expression's value is
            // never used by the engine: without this, `{{ payload.typo }}` would become `null`.
            if has_undefined(&value) {
                return Err("undefined value".to_owned());
            }
            serde_json::to_value(&value).map_err(|e| format!("cannot be represented as JSON: {e}"))
        }
    }
}

fn has_undefined(value: &minijinja::Value) -> bool {
    let children = || value.try_iter().into_iter().flatten();
    match value.kind() {
        ValueKind::Undefined => true,
        ValueKind::Seq => children().any(|item| has_undefined(&item)),
        ValueKind::Map => children().any(|key| value.get_item(&key).is_ok_and(|item| has_undefined(&item))),
        _ => false,
    }
}

/// minijinja's own message without its `(in <string>:1)` suffix: the field path says where.
fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(payload: Value) -> Value {
        json!({
            "event": "user.signed_up", "resource": "user", "resource_id": "u_1",
            "workspace": "northstar", "id": "evt_01", "created_at": "2025-01-02T03:04:05Z",
            "payload": payload,
        })
    }

    fn render(fields: Value, payload: Value) -> Result<Value, FieldError> {
        FieldTemplates::compile(&fields).expect("fields compile").render(&context(payload))
    }

    #[test]
    fn renders_the_onboarding_example() {
        let fields = json!({
            "email": "{{ payload.email }}",
            "properties": {"onboarding_step": "{{ payload.sequence_step }}", "label": "step {{ payload.sequence_step }} of 5"},
            "tag": "onboarding-step-{{ payload.sequence_step + 1 }}",
            "n": 7,
        });
        let rendered = render(fields, json!({"email": "alex@northstar.io", "sequence_step": 3})).unwrap();
        assert_eq!(
            rendered,
            json!({
                "email": "alex@northstar.io",
                "properties": {"onboarding_step": 3, "label": "step 3 of 5"},
                "tag": "onboarding-step-4",
                "n": 7,
            })
        );
    }

    #[test]
    fn lone_expression_keeps_the_json_type_of_its_value() {
        let payload = json!({"n": 2.5, "ok": false, "obj": {"a": [1, "b"]}, "list": [1, 2], "none": null});
        let fields = json!([
            "{{ payload.n }}",
            "{{ payload.ok }}",
            "{{ payload.obj }}",
            "{{ payload.list }}",
            "{{ payload.none }}",
            "{{ payload.list | length }}",
            "{{ {'k': payload.n > 2} }}"
        ]);
        let rendered = render(fields, payload).unwrap();
        assert_eq!(rendered, json!([2.5, false, {"a": [1, "b"]}, [1, 2], null, 2, {"k": true}]));
    }

    #[test]
    fn lone_expression_allows_surrounding_whitespace_and_whitespace_control() {
        let fields = json!({"a": "  {{ payload.n }}\n", "b": "{{- payload.n -}}", "c": "{{ {'k': {'v': payload.n}} }}",
            "d": "{{ '}}' ~ \"\\\"}}\" }}"});
        let rendered = render(fields, json!({"n": 4})).unwrap();
        assert_eq!(rendered, json!({"a": 4, "b": 4, "c": {"k": {"v": 4}}, "d": "}}\"}}"}));
    }

    #[test]
    fn any_other_string_renders_to_a_string() {
        let fields = json!({"two": "{{ payload.n }}{{ payload.n }}", "pair": "{{ payload.n }} and {{ payload.n }}",
            "plain": "hello", "block": "{% if payload.n > 1 %}big{% endif %}", "nested": "{{ [payload.n] }}}}",
            "ends": "{{ payload.n }} {{ payload.n }}}}"});
        let rendered = render(fields, json!({"n": 4})).unwrap();
        let expected = json!({"two": "44", "pair": "4 and 4", "plain": "hello", "block": "big", "nested": "[4]}}",
            "ends": "4 4}}"});
        assert_eq!(rendered, expected);
    }

    #[test]
    fn non_string_values_pass_through_unchanged() {
        let fields = json!({"n": 1.5, "b": true, "z": null, "list": [1, {"x": false}]});
        assert_eq!(render(fields.clone(), json!({})).unwrap(), fields);
    }

    #[test]
    fn whole_context_is_available() {
        let fields = json!("{{ event }}|{{ resource }}/{{ resource_id }}|{{ workspace }}|{{ id }}|{{ created_at }}");
        let rendered = render(fields, json!({})).unwrap();
        assert_eq!(rendered, json!("user.signed_up|user/u_1|northstar|evt_01|2025-01-02T03:04:05Z"));
    }

    #[test]
    fn output_is_not_html_escaped() {
        let rendered = render(json!("x {{ payload.s }}"), json!({"s": "<b>Tom & \"Jerry\"</b>"})).unwrap();
        assert_eq!(rendered, json!("x <b>Tom & \"Jerry\"</b>"));
    }

    #[test]
    fn undefined_variables_fail_naming_the_field() {
        let fields = json!({"properties": {"ok": "{{ payload.n }}", "x": "{{ payload.nope }}"}});
        let err = render(fields, json!({"n": 1})).unwrap_err();
        assert_eq!(err.path, "properties.x");
        assert!(err.message.contains("undefined"), "{err}");

        let err = render(json!({"blocks": [{"text": "hi {{ nobody }}"}]}), json!({})).unwrap_err();
        assert_eq!(err.path, "blocks[0].text");
        assert!(err.message.contains("undefined"), "{err}");

        let err = render(json!({"deep": "{{ payload.nope.deeper }}"}), json!({})).unwrap_err();
        assert_eq!(err.path, "deep");

        let err = render(json!({"list": ["{{ [1, {'k': payload.nope}] }}"]}), json!({})).unwrap_err();
        assert_eq!((err.path.as_str(), err.message.as_str()), ("list[0]", "undefined value"));
        assert_eq!(render(json!("{{ payload.nope | default(3) }}"), json!({})).unwrap(), json!(3));
    }

    #[test]
    fn unknown_filters_fail() {
        let err = FieldTemplates::compile(&json!({"e": "{{ payload.email | shout }}"}))
            .and_then(|t| t.render(&context(json!({"email": "a@b.c"}))))
            .unwrap_err();
        assert_eq!(err.path, "e");
        assert!(err.message.contains("shout"), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported_at_compile_with_the_path() {
        let err = FieldTemplates::compile(&json!({"properties": {"onboarding_step": "{{ payload.step "}})).unwrap_err();
        assert_eq!(err.path, "properties.onboarding_step");
        assert!(err.message.starts_with("syntax error"), "{err}");

        let err = FieldTemplates::compile(&json!({"blocks": [{"text": "ok"}, {"text": "{% if %}"}]})).unwrap_err();
        assert_eq!(err.path, "blocks[1].text");
        assert_eq!(err.to_string(), format!("field `blocks[1].text`: {}", err.message));

        let err = FieldTemplates::compile(&json!(["{{ a b }}"])).unwrap_err();
        assert_eq!(err.path, "[0]");
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let burn = "{% for i in range(1000) %}{% for j in range(1000) %}{{ j }}{% endfor %}{% endfor %}";
        let err = render(json!({"loop": burn}), json!({})).unwrap_err();
        assert_eq!(err.path, "loop");
        assert!(err.message.contains("fuel"), "{err}");
    }
}
