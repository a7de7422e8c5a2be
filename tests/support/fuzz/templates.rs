//! Fuzzing rule field templates: random minijinja built from its syntax (expressions with
//! arithmetic, comparisons, string operations, filters, tests and attribute access into the
//! event; `if` and `for` blocks, nested loops, the statements the policy refuses), mangled
//! templates, and strings that look like one `{{ … }}` but are not, rendered against hostile
//! events.
//!
//! Each case goes through what the service does with `fields`: [`FieldTemplates::compile`] and
//! [`FieldTemplates::dry_run`] on a sample event, as the rules API validates them at save; then,
//! for templates a rule could have saved, [`FieldTemplates::compile`] and
//! [`FieldTemplates::render`] on the event's context, as the delivery worker does. Besides not
//! panicking or hanging, errors must be of the kinds each step documents, and the output must
//! stay within its bound.

use std::fmt;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};
use switchboard::routing::fields::{FieldErrorKind, FieldTemplates, MAX_FIELDS_BYTES, MAX_OUTPUT};

use super::{Verdict, json};

#[derive(Clone)]
pub struct TemplateCase {
    pub fields: Value,
    /// The event the fields are rendered for, as stored.
    pub event: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub payload: Map<String, Value>,
}

impl fmt::Debug for TemplateCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let payload = json::excerpt(&Value::Object(self.payload.clone()).to_string(), 2_000);
        let fields = json::excerpt(&self.fields.to_string(), 4_000);
        write!(
            f,
            "fields: {fields}\nevent: {:?} resource: {:?} resource_id: {:?}\npayload: {payload}",
            self.event, self.resource, self.resource_id
        )
    }
}

impl TemplateCase {
    /// The context the rules API dry-renders with at save: the rule's event and an empty payload.
    pub fn sample(&self) -> Value {
        json!({"event": self.event, "resource": self.resource, "resource_id": self.resource_id,
               "workspace": "ws_fuzz", "id": "evt_sample", "created_at": "2026-01-01T00:00:00Z", "payload": {}})
    }

    /// The context the delivery worker renders with.
    pub fn context(&self) -> Value {
        json!({"event": self.event, "payload": self.payload, "resource": self.resource, "resource_id": self.resource_id,
               "workspace": "ws_fuzz", "id": "evt_01fuzz", "created_at": "2026-01-01T00:00:00Z"})
    }
}

pub fn case() -> BoxedStrategy<TemplateCase> {
    (fields(), json::name(40), json::name(40), proptest::option::of(json::name(40)), json::payload())
        .prop_map(|(fields, event, resource, resource_id, payload)| TemplateCase {
            fields,
            event,
            resource,
            resource_id,
            payload,
        })
        .boxed()
}

/// `fields`: usually an object of templates, sometimes one template, or templates nested in
/// objects and arrays beside values that are not strings.
pub fn fields() -> BoxedStrategy<Value> {
    let string = || template().prop_map(Value::String);
    prop_oneof![
        6 => btree_map("[a-z_]{1,8}", string(), 1..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => string(),
        1 => (string(), string(), json::scalar())
            .prop_map(|(a, b, c)| json!({"properties": {"step": a}, "list": [b, c, null, 1]})),
    ]
    .boxed()
}

/// One template string: generated, mangled, a near-miss of a lone `{{ … }}`, or any text.
pub fn template() -> BoxedStrategy<String> {
    prop_oneof![
        16 => body(),
        1 => (select(REFUSED), expression(), body()).prop_map(|(s, e, a)| s.replace("§E", &e).replace("§A", &a)),
        1 => (expression(), select(REFUSED_OPERATORS), expression(), body())
            .prop_map(|(a, op, b, rest)| format!("{rest}{{{{ {a} {op} {b} }}}}")),
        1 => (body(), any::<prop::sample::Index>()).prop_map(|(t, at)| {
            let cut = at.index(t.chars().count() + 1);
            t.chars().take(cut).collect()
        }),
        1 => vec(select(NEAR_MISS), 0..12).prop_map(|parts| format!("{{{{{}}}}}", parts.concat())),
        1 => any::<String>(),
    ]
    .boxed()
}

/// Pieces of a lone expression that make `}}` close early or not at all: the case where
/// minijinja's expression parser panics unless the host recognises it first.
const NEAR_MISS: &[&str] = &[
    "}}", "{{", "}", "{", ")", "(", "]", "[", "'", "\"", "\\", " ", "-", "+", "|", ".", "a", "1", "payload", "%}", "{%",
];

fn body() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        3 => prop_oneof![
            4 => "[a-z ,:.-]{0,12}",
            1 => json::text().prop_map(|t| json::excerpt(&t, 64)),
            1 => select(&["{", "}", "%", "#"][..]).prop_map(str::to_owned),
        ],
        6 => (expression(), select(&[("{{ ", " }}"), ("{{- ", " -}}"), ("{{", "}}"), ("{{+ ", " +}}")][..]))
            .prop_map(|(e, (open, close))| format!("{open}{e}{close}")),
        1 => "[a-z {}%]{0,10}".prop_map(|c| format!("{{# {c} #}}")),
    ];
    piece
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                3 => vec(inner.clone(), 1..4).prop_map(|parts| parts.concat()),
                2 => (expression(), inner.clone(), proptest::option::of(inner.clone())).prop_map(|(c, a, b)| match b {
                    Some(b) => format!("{{% if {c} %}}{a}{{% elif not {c} %}}{b}{{% else %}}{a}{{% endif %}}"),
                    None => format!("{{% if {c} %}}{a}{{% endif %}}"),
                }),
                2 => (select(&["x", "k, v", "item"][..]), iterable(), inner.clone()).prop_map(|(var, seq, a)| {
                    format!("{{% for {var} in {seq} %}}{a}{{{{ loop.index }}}}{{% endfor %}}")
                }),
                1 => (iterable(), iterable(), inner.clone()).prop_map(|(a, b, t)| {
                    format!("{{% for x in {a} %}}{{% for y in {b} %}}{t}{{% endfor %}}{{% endfor %}}")
                }),
            ]
        })
        .boxed()
}

/// Statements the policy refuses, with `§E` an expression and `§A` a template to substitute.
const REFUSED: &[&str] = &[
    "{% set x = §E %}§A{{ x }}",
    "{% macro m(a) %}§A{% endmacro %}{{ m(1) }}",
    "{% with x = §E %}§A{% endwith %}",
    "{% filter upper %}§A{% endfilter %}",
    "{% raw %}§A{% endraw %}",
    "{% include 'x' %}",
    "{% extends 'x' %}",
    "{% block b %}§A{% endblock %}",
    "{% call m() %}§A{% endcall %}",
    "{% autoescape true %}§A{% endautoescape %}",
    "{% do §E %}",
];

/// What a `for` loop runs over: the event, large ranges and literal sequences.
fn iterable() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(PATHS).prop_map(str::to_owned),
        1 => select(&["payload | items", "payload | dictsort", "range(100000)", "range(0, 100000, 3)", "range(-5)",
                      "[1, 2, 3]", "'text'", "payload.items | reverse", "payload | list | sort"][..])
            .prop_map(str::to_owned),
        1 => expression(),
    ]
    .boxed()
}

/// Names and paths into the context, including ones that do not exist.
const PATHS: &[&str] = &[
    "payload",
    "payload.a",
    "payload.b",
    "payload.kind",
    "payload.items",
    "payload.email",
    "payload.n",
    "payload['kind']",
    "payload.a.a.a",
    "payload.items[0]",
    "payload.items[-1]",
    "payload.a[1:3]",
    "payload['']",
    "payload['$in']",
    "event",
    "resource",
    "resource_id",
    "workspace",
    "id",
    "created_at",
    "nope",
    "x",
    "k",
    "v",
    "item",
    "loop.index",
    "loop",
    "secret.NAME",
    "self",
    "range",
    "namespace",
    "debug",
];

const OPERATORS: &[&str] =
    &["+", "-", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "and", "or", "in", "not in"];
/// Operators the policy refuses: they repeat or format values without bound.
const REFUSED_OPERATORS: &[&str] = &["*", "~"];

const FILTERS: &[&str] = &[
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "length",
    "count",
    "first",
    "last",
    "reverse",
    "sort",
    "sort(reverse=true)",
    "unique",
    "list",
    "items",
    "dictsort",
    "sum",
    "min",
    "max",
    "abs",
    "int",
    "float",
    "round(2)",
    "bool",
    "string",
    "tojson",
    "tojson(indent=2)",
    "join",
    "join(', ')",
    "replace('a', 'bbbb')",
    "replace('', '-')",
    "split",
    "split(',')",
    "lines",
    "urlencode",
    "map('upper')",
    "map(attribute='a')",
    "select('odd')",
    "reject('none')",
    "selectattr('a')",
    "rejectattr('a')",
    "groupby('a')",
    "chain([1])",
    "zip([1, 2])",
    "attr('a')",
    "default('x')",
    "d(1)",
    "escape",
    "safe",
    "e",
    "batch(2)",
    "slice(3)",
    "indent(4)",
    "pprint",
    "format(1)",
    "nope",
    "length(1)",
];

const TESTS: &[&str] = &[
    "defined",
    "undefined",
    "none",
    "number",
    "string",
    "sequence",
    "mapping",
    "odd",
    "even",
    "divisibleby(3)",
    "in([1])",
    "eq(1)",
    "startingwith('a')",
    "true",
];

/// A random expression, up to four levels of operators, filters, calls and lookups deep.
pub fn expression() -> BoxedStrategy<String> {
    let atom = prop_oneof![
        6 => select(PATHS).prop_map(str::to_owned),
        2 => prop_oneof![
            (-1000i64..1000).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[0-9]{20,40}",
            select(&["1.5", "1e308", "-0.0", "0", "1e-320"][..]).prop_map(str::to_owned),
        ],
        2 => prop_oneof![
            "[a-z ,]{0,10}".prop_map(|s| format!("'{s}'")),
            json::text().prop_map(|s| serde_json::to_string(&json::excerpt(&s, 40)).unwrap_or_default()),
            "[a-z'\"\\\\]{0,6}".prop_map(|s| format!("\"{s}\"")),
        ],
        1 => select(&["none", "true", "false", "[]", "[1, 'a', none]", "{'a': 1, 'b': [2]}", "range(10)",
                      "range(100000)", "dict(a=1)", "lipsum()", "cycler(1, 2)", "joiner()", "namespace()", "debug()",
                      "range(1, 10) | list"][..])
            .prop_map(str::to_owned),
    ];
    atom.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            4 => (inner.clone(), select(OPERATORS), inner.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            4 => (inner.clone(), select(FILTERS)).prop_map(|(a, f)| format!("{a} | {f}")),
            2 => (inner.clone(), select(tails())).prop_map(|(a, tail)| format!("({a}){tail}")),
            1 => inner.clone().prop_map(|a| format!("({a})")),
            1 => (select(&["not ", "-"][..]), inner.clone()).prop_map(|(op, a)| format!("{op}{a}")),
            1 => (inner.clone(), inner.clone(), inner.clone()).prop_map(|(a, b, c)| format!("{a} if {b} else {c}")),
            1 => (inner.clone(), select(TESTS)).prop_map(|(a, t)| format!("{a} is {t}")),
            1 => vec(inner, 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
        ]
    })
    .boxed()
}

/// Lookups, slices and method calls after a value.
const TAILS: &[&str] = &[
    ".a",
    ".items",
    "[0]",
    "['kind']",
    "[1:]",
    "[-2:]",
    "[::2]",
    ".upper()",
    ".items()",
    ".split(',')",
    ".replace('a', 'b')",
    ".startswith('a')",
    "()",
];

/// Tails that reached a panic in minijinja 2.24 (a negative-step slice of an empty sequence
/// or string, `{{ [][::-1] }}`), which the renderer now contains (issue #9).
pub const PANIC_TAILS: &[&str] = &["[::-1]", "[3::-2]"];

fn tails() -> Vec<&'static str> {
    TAILS.iter().chain(PANIC_TAILS).copied().collect()
}

/// Compile and dry-render as the rules API does at save, then, if a rule could have been saved,
/// compile and render as the delivery worker does. `Err` says which promise broke.
pub fn check(case: &TemplateCase) -> Verdict {
    let compiled = match FieldTemplates::compile(&case.fields) {
        Ok(compiled) => compiled,
        Err(e) if e.kind == FieldErrorKind::Syntax => return Ok("syntax error"),
        Err(e) if e.kind == FieldErrorKind::Refused => return Ok("refused by policy"),
        Err(e) => return Err(format!("compiling reported a {:?} error, which only rendering can: {e}", e.kind)),
    };
    match compiled.dry_run(&case.sample()) {
        Ok(()) => {}
        Err(e) if e.kind == FieldErrorKind::Limit => return Ok("over a bound at save"),
        Err(e) => return Err(format!("the dry run at save failed with a {:?} error, not a bound: {e}", e.kind)),
    }
    // The worker compiles the saved fields again before each attempt.
    let templates =
        FieldTemplates::compile(&case.fields).map_err(|e| format!("saved fields no longer compile: {e}"))?;
    match templates.render(&case.context()) {
        Ok(rendered) => {
            let text = string_bytes(&rendered);
            let allowed = MAX_OUTPUT + MAX_FIELDS_BYTES;
            if text > allowed {
                return Err(format!("rendered {text} bytes of text, past the {MAX_OUTPUT} byte output bound"));
            }
            Ok("rendered")
        }
        Err(e) if e.kind == FieldErrorKind::Limit => Ok("over a bound at delivery"),
        Err(e) if e.kind == FieldErrorKind::Render => Ok("render error"),
        Err(e) => Err(format!("rendering saved fields failed with a {:?} error: {e}", e.kind)),
    }
}

/// Bytes of every string in `value`, keys included.
fn string_bytes(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(string_bytes).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + string_bytes(v)).sum(),
        _ => 0,
    }
}
