//! The `fields` of a routing rule: a JSON value whose strings are Jinja templates,
//! rendered with minijinja over `{event, payload, resource, resource_id, workspace, id,
//! created_at}` to build what a matched rule hands its connector. The typing rule: a string
//! that is exactly one `{{ expression }}` keeps the JSON type of its value, any other string
//! renders to a string. Undefined values are errors and nothing is auto-escaped.
//!
//! Templates are written by tenants, so no template may exhaust memory or time: a
//! delivery's rendered output is at most [`MAX_OUTPUT`] bytes, no value larger than
//! [`MAX_VALUE`], and rendering stops after [`TIME_LIMIT`] or [`FUEL`] instructions; a breach is
//! an error of kind [`FieldErrorKind::Limit`], which the delivery records as `mapping_error`.
//! minijinja cannot bound the size of what one operator builds, so the bounds come in two parts:
//! - at compile ([`policy`]): the operators and statements that build values without bound
//!   (`*`, `~`, `set`, ...) are refused, and `fields` is at most [`MAX_FIELDS_BYTES`];
//! - at render ([`sandbox`]): filters restricted and size-checked, output capped, and a deadline
//!   checked wherever work passes through the host's code, including every step into the event.
//!
//! A rule's templates are compiled and dry-rendered against a sample event when it is saved
//! ([`FieldTemplates::dry_run`]), so a template that breaks a bound on its own is refused then.

mod policy;
mod sandbox;

use minijinja::{Environment, ErrorKind, Expression, Template, value::ValueKind};
use serde_json::{Map, Value};

pub use policy::MAX_PLUS;
use sandbox::{Breach, CappedOutput, JsonView, LENIENT, STRICT};
pub use sandbox::{FUEL, MAX_OUTPUT, MAX_VALUE, TIME_LIMIT};

/// Serialized size limit of a rule's `fields`, in bytes.
pub const MAX_FIELDS_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{path}`: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
    pub kind: FieldErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// Not a template minijinja can parse.
    Syntax,
    /// Uses a construct field templates may not use, or `fields` is too large.
    Refused,
    /// The render went past a bound: output, value size, time or fuel.
    Limit,
    /// The render failed on this event's data: an undefined value, a type error.
    Render,
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

type Failure = (FieldErrorKind, String);

impl FieldTemplates {
    /// Compile every string in `fields` (any JSON value: object, array, string, ...) as a template
    /// and check it against the policy. Errors carry the path of the string, e.g.
    /// `properties.onboarding_step`.
    pub fn compile(fields: &Value) -> Result<FieldTemplates, FieldError> {
        if !super::fits_serialized(fields, MAX_FIELDS_BYTES) {
            let message = format!("fields are larger than {MAX_FIELDS_BYTES} bytes serialized");
            return Err(FieldError { path: String::new(), message, kind: FieldErrorKind::Refused });
        }
        // The policy first: a construct it refuses may also be one this build of minijinja does
        // not parse (macros), and "not allowed" is the more useful answer.
        walk(fields, "", &mut |source, path| {
            policy::check(source).map_err(|message| field_error(path, (FieldErrorKind::Refused, message)))?;
            parse(&STRICT, source).map_err(|e| field_error(path, (FieldErrorKind::Syntax, describe(&e))))?;
            Ok(Value::Null)
        })?;
        Ok(FieldTemplates { fields: fields.clone() })
    }

    /// Render against the context (a JSON object with keys event, payload, resource, resource_id,
    /// workspace, id, created_at). Undefined variables are errors naming the field path.
    pub fn render(&self, context: &Value) -> Result<Value, FieldError> {
        self.render_in(&STRICT, context, false)
    }

    /// Render against a sample event, as at save: fails only on a breached bound, since a sample
    /// lacks the payload fields real events carry. Undefined values render as empty so the dry
    /// run reaches as much of each template as it can.
    pub fn dry_run(&self, sample: &Value) -> Result<(), FieldError> {
        self.render_in(&LENIENT, sample, true).map(drop)
    }

    fn render_in(&self, env: &'static Environment<'static>, context: &Value, dry: bool) -> Result<Value, FieldError> {
        let context = JsonView::context(context);
        sandbox::run(|| {
            let mut output_left = MAX_OUTPUT;
            walk(&self.fields, "", &mut |source, path| match guarded(|| {
                render_one(env, source, &context, &mut output_left)
            }) {
                Err((FieldErrorKind::Render, _)) if dry => Ok(Value::Null),
                result => result.map_err(|failure| field_error(path, failure)),
            })
        })
    }
}

/// A panic inside the template engine (minijinja 2.24 has some, e.g. a
/// negative-step slice of an empty list) fails this field's render like
/// any other render error, instead of taking the caller's thread down.
fn guarded(render: impl FnOnce() -> Result<Value, Failure>) -> Result<Value, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(render))
        .unwrap_or_else(|_| Err((FieldErrorKind::Render, "the template engine failed on this value".to_owned())))
}

fn field_error(path: &str, (kind, message): Failure) -> FieldError {
    FieldError { path: path.to_owned(), message, kind }
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

fn parse<'a>(env: &'a Environment<'static>, source: &'a str) -> Result<Piece<'a>, minijinja::Error> {
    let env: &'a Environment<'a> = env;
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

/// Renders one template string, using up to `output_left` bytes of the delivery's output.
fn render_one(
    env: &'static Environment<'static>,
    source: &str,
    context: &minijinja::Value,
    output_left: &mut usize,
) -> Result<Value, Failure> {
    let value = match parse(env, source).map_err(|e| (FieldErrorKind::Syntax, describe(&e)))? {
        Piece::Text(template) => {
            let mut out = CappedOutput::new(*output_left);
            template.render_captured_to(context, &mut out).map_err(|e| failure(&e))?;
            no_breach()?;
            *output_left -= out.bytes.len();
            let text = String::from_utf8(out.bytes).map_err(|e| (FieldErrorKind::Render, e.to_string()))?;
            return Ok(Value::String(text));
        }
        Piece::Expr(expr) => expr.eval(context).map_err(|e| failure(&e))?,
    };
    // Measured before anything walks it whole: a lone value may be a view of a large payload.
    let size = sandbox::measure(&value, *output_left).map_err(|_| match sandbox::breach() {
        Some(Breach::Time) => (FieldErrorKind::Limit, Breach::Time.message()),
        _ => (FieldErrorKind::Limit, Breach::Output.message()),
    })?;
    // Strict mode only trips when an undefined is used, and a lone expression's value is never
    // used by the engine: without this, `{{ payload.typo }}` would become `null`.
    if has_undefined(&value) {
        return Err((FieldErrorKind::Render, "undefined value".to_owned()));
    }
    let json = serde_json::to_value(&value)
        .map_err(|e| (FieldErrorKind::Render, format!("cannot be represented as JSON: {e}")))?;
    no_breach()?;
    *output_left -= size;
    Ok(json)
}

/// A breach shows through minijinja as whatever it broke (a failed write, an undefined value),
/// so the recorded breach, if any, is the real reason.
fn failure(error: &minijinja::Error) -> Failure {
    match sandbox::breach() {
        Some(breach) => (FieldErrorKind::Limit, breach.message()),
        None if error.kind() == ErrorKind::OutOfFuel => (FieldErrorKind::Limit, describe(error)),
        None => (FieldErrorKind::Render, describe(error)),
    }
}

/// A deadline can also end an iteration early without an error; the result is then incomplete.
fn no_breach() -> Result<(), Failure> {
    sandbox::breach().map_or(Ok(()), |breach| Err((FieldErrorKind::Limit, breach.message())))
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
mod tests;
