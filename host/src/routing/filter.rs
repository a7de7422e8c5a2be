//! The JSON event filter of a routing rule: Hookdeck's filter syntax, also used by
//! Outpost, parsed and validated once when the rule is saved and then evaluated against
//! `{event, resource, resource_id, payload}` for every ingested event.
//!
//! Semantics, where the syntax leaves room for choice:
//! - an object matches by structure: every field key must match the document's value at that
//!   key, every `$operator` key must hold for the value itself; `{}` matches any present value;
//! - a primitive matches by equality (numbers as f64, so `3 == 3.0`);
//! - an array matches a document array that, for each filter element, has an element matching
//!   it (a scalar document never matches an array);
//! - only `$exist: false`, `$neq`, `$nin` and `$not` can match a missing field, since they are
//!   negations of something a missing field cannot satisfy;
//! - `$in`/`$nin` take either a list (the value is one of its items; a document array matches
//!   when any of its elements is) or a string (a document array contains it, a document string
//!   contains it as a substring).
//!
//! Every filter is bounded ([`limits`]): at most 64 KiB serialized, 32 levels deep and
//! 1,000 items per `$in`/`$nin` list, checked at parse, so a rule that breaks a limit is refused at
//! save with the path of the fault; and each evaluation has a step budget, past which the filter
//! does not match.

mod limits;

use std::cmp::Ordering;

use serde_json::Value;

use limits::{Eval, ListIndex, Meter};
pub use limits::{Exhausted, MAX_DEPTH, MAX_FILTER_BYTES, MAX_LIST_ITEMS, MAX_STEPS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at `{path}`: {message}")]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

/// A validated filter; building one is the only way to get one, so evaluation never meets a
/// malformed operator.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    All(Vec<Cond>),
    Literal(Value),
    Contains(Vec<Node>),
}

#[derive(Debug, Clone)]
enum Cond {
    Field(String, Node),
    Eq(Value),
    Cmp(fn(Ordering) -> bool, Value),
    In(InSet),
    StartsWith(String),
    EndsWith(String),
    Exist(bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

#[derive(Debug, Clone)]
enum InSet {
    List(ListIndex),
    Contains(String),
}

impl Filter {
    /// Validate and parse; errors name the JSON path of the fault, e.g. `payload.sequence_step.$gte`.
    pub fn parse(filter: &Value) -> Result<Filter, FilterError> {
        if !filter.is_object() {
            return Err(fail("", "a filter must be a JSON object"));
        }
        // Structure first, so a fault with a path (a 200,000-item `$in`) is reported at that path
        // rather than as mere size; the request body limit bounds this walk.
        let root = parse_node(filter, "", 1)?;
        if !super::fits_serialized(filter, MAX_FILTER_BYTES) {
            return Err(fail("", format!("filter is larger than {MAX_FILTER_BYTES} bytes serialized")));
        }
        Ok(Filter { root })
    }

    /// Evaluate against the document `{"event", "resource", "resource_id", "payload"}`. A filter
    /// that exhausts its step budget does not match; the breach is logged.
    pub fn matches(&self, doc: &Value) -> bool {
        self.evaluate(doc, MAX_STEPS).unwrap_or_else(|Exhausted| {
            tracing::warn!(budget = MAX_STEPS, "filter evaluation ran out of budget; treated as not matching");
            false
        })
    }

    /// Evaluate with a budget of `steps` work units; `Err` when it runs out before an answer.
    pub fn evaluate(&self, doc: &Value, steps: u64) -> Result<bool, Exhausted> {
        self.root.eval(Some(doc), &mut Meter::new(steps))
    }
}

fn fail(path: &str, message: impl Into<String>) -> FilterError {
    FilterError { path: path.to_owned(), message: message.into() }
}

fn too_deep(path: &str) -> FilterError {
    fail(path, format!("filter nests deeper than {MAX_DEPTH} levels"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn parse_node(filter: &Value, path: &str, depth: usize) -> Result<Node, FilterError> {
    if depth > MAX_DEPTH && (filter.is_object() || filter.is_array()) {
        return Err(too_deep(path));
    }
    match filter {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| parse_cond(key, value, &join(path, key), depth))
            .collect::<Result<_, _>>()
            .map(Node::All),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_node(item, &format!("{path}[{i}]"), depth + 1))
            .collect::<Result<_, _>>()
            .map(Node::Contains),
        scalar => Ok(Node::Literal(scalar.clone())),
    }
}

fn parse_cond(key: &str, operand: &Value, path: &str, depth: usize) -> Result<Cond, FilterError> {
    // Literal operands are compared recursively too, so they share the nesting budget.
    let literal = || match nests_deeper(operand, MAX_DEPTH - depth) {
        true => Err(too_deep(path)),
        false => Ok(operand.clone()),
    };
    let filters = |what: &str| -> Result<Vec<Node>, FilterError> {
        match operand {
            Value::Array(items) if items.is_empty() => Err(fail(path, format!("{what} needs at least one filter"))),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_filter(item, &format!("{path}[{i}]"), depth + 1))
                .collect(),
            _ => Err(fail(path, format!("{what} takes an array of filters"))),
        }
    };
    let string = || operand.as_str().map(str::to_owned).ok_or_else(|| fail(path, format!("{key} takes a string")));
    let in_set = || match operand {
        Value::Array(items) if items.len() > MAX_LIST_ITEMS => {
            Err(fail(path, format!("{key} lists at most {MAX_LIST_ITEMS} items, got {}", items.len())))
        }
        _ => in_operand(key, literal()?, path),
    };
    let ordered = |test: fn(Ordering) -> bool| match operand {
        Value::Number(_) | Value::String(_) => Ok(Cond::Cmp(test, operand.clone())),
        _ => Err(fail(path, format!("{key} takes a number or a string"))),
    };
    // `$neq`/`$nin` are negations, so like `$not` they hold for a missing field.
    let not = |cond: Cond| Cond::Not(Box::new(Node::All(vec![cond])));
    Ok(match key {
        "$eq" => Cond::Eq(literal()?),
        "$neq" => not(Cond::Eq(literal()?)),
        "$gt" => ordered(Ordering::is_gt)?,
        "$gte" => ordered(Ordering::is_ge)?,
        "$lt" => ordered(Ordering::is_lt)?,
        "$lte" => ordered(Ordering::is_le)?,
        "$in" => Cond::In(in_set()?),
        "$nin" => not(Cond::In(in_set()?)),
        "$startsWith" => Cond::StartsWith(string()?),
        "$endsWith" => Cond::EndsWith(string()?),
        "$exist" => Cond::Exist(operand.as_bool().ok_or_else(|| fail(path, "$exist takes true or false"))?),
        "$and" => Cond::And(filters("$and")?),
        "$or" => Cond::Or(filters("$or")?),
        "$not" => Cond::Not(Box::new(parse_filter(operand, path, depth + 1)?)),
        op if op.starts_with('$') => return Err(fail(path, format!("unknown operator `{op}`"))),
        field => Cond::Field(field.to_owned(), parse_node(operand, path, depth + 1)?),
    })
}

fn in_operand(key: &str, operand: Value, path: &str) -> Result<InSet, FilterError> {
    match operand {
        Value::Array(items) => Ok(InSet::List(ListIndex::new(items))),
        Value::String(s) => Ok(InSet::Contains(s)),
        _ => Err(fail(path, format!("{key} takes an array or a string"))),
    }
}

/// Combinator operands must be whole filters (objects), not bare values.
fn parse_filter(filter: &Value, path: &str, depth: usize) -> Result<Node, FilterError> {
    if !filter.is_object() {
        return Err(fail(path, "expected a filter object"));
    }
    parse_node(filter, path, depth)
}

fn nests_deeper(value: &Value, budget: usize) -> bool {
    match value {
        Value::Array(items) => budget == 0 || items.iter().any(|v| nests_deeper(v, budget - 1)),
        Value::Object(map) => budget == 0 || map.values().any(|v| nests_deeper(v, budget - 1)),
        _ => false,
    }
}

impl Node {
    /// `value` is `None` when the field is missing from the document.
    fn eval(&self, value: Option<&Value>, meter: &mut Meter) -> Eval {
        meter.charge(1)?;
        match self {
            Node::All(conds) if conds.is_empty() => Ok(value.is_some()),
            Node::All(conds) => all(conds, |cond| cond.eval(value, meter)),
            Node::Literal(expected) => value.map_or(Ok(false), |v| json_eq(v, expected, meter)),
            Node::Contains(wanted) => match value {
                Some(Value::Array(items)) => all(wanted, |w| any(items, |item| w.eval(Some(item), meter))),
                _ => Ok(false),
            },
        }
    }
}

impl Cond {
    fn eval(&self, value: Option<&Value>, meter: &mut Meter) -> Eval {
        meter.charge(1)?;
        let text = value.and_then(Value::as_str);
        match self {
            Cond::Field(key, node) => node.eval(value.and_then(|v| v.get(key)), meter),
            Cond::Eq(expected) => value.map_or(Ok(false), |v| json_eq(v, expected, meter)),
            Cond::Cmp(test, bound) => {
                meter.charge_text(text.map_or(0, str::len))?;
                Ok(value.and_then(|v| compare(v, bound)).is_some_and(test))
            }
            Cond::In(set) => value.map_or(Ok(false), |v| set.holds(v, meter)),
            Cond::StartsWith(prefix) => {
                meter.charge_text(prefix.len())?;
                Ok(text.is_some_and(|s| s.starts_with(prefix.as_str())))
            }
            Cond::EndsWith(suffix) => {
                meter.charge_text(suffix.len())?;
                Ok(text.is_some_and(|s| s.ends_with(suffix.as_str())))
            }
            Cond::Exist(wanted) => Ok(value.is_some() == *wanted),
            Cond::And(nodes) => all(nodes, |n| n.eval(value, meter)),
            Cond::Or(nodes) => any(nodes, |n| n.eval(value, meter)),
            Cond::Not(node) => Ok(!node.eval(value, meter)?),
        }
    }
}

impl InSet {
    fn holds(&self, value: &Value, meter: &mut Meter) -> Eval {
        match (self, value) {
            (InSet::List(list), Value::Array(items)) => any(items, |i| list.contains(i, meter, json_eq)),
            (InSet::List(list), v) => list.contains(v, meter, json_eq),
            (InSet::Contains(s), Value::Array(items)) => any(items, |i| {
                meter.charge_text(s.len())?;
                Ok(i.as_str() == Some(s))
            }),
            (InSet::Contains(s), Value::String(v)) => {
                meter.charge_text(v.len() + s.len())?;
                Ok(v.contains(s.as_str()))
            }
            (InSet::Contains(_), _) => Ok(false),
        }
    }
}

/// Short-circuiting `all`/`any` whose test can run out of budget.
fn all<T>(items: &[T], mut test: impl FnMut(&T) -> Eval) -> Eval {
    for item in items {
        if !test(item)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn any<T>(items: &[T], mut test: impl FnMut(&T) -> Eval) -> Eval {
    for item in items {
        if test(item)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Ordering only between like types: mixing numbers and strings would make `"10" > 9` depend on
/// a coercion rule nobody wrote down.
fn compare(value: &Value, bound: &Value) -> Option<Ordering> {
    match (value, bound) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Deep equality in which numbers compare as f64, since JSON does not distinguish `3` and `3.0`.
fn json_eq(a: &Value, b: &Value, meter: &mut Meter) -> Eval {
    meter.charge(1)?;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Ok(x.as_f64() == y.as_f64()),
        (Value::String(x), Value::String(y)) => {
            meter.charge_text(x.len().min(y.len()))?;
            Ok(x == y)
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (x, y) in x.iter().zip(y) {
                if !json_eq(x, y, meter)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) if json_eq(v, w, meter)? => {}
                    _ => return Ok(false),
                }
            }
            Ok(true)
        }
        (Value::Array(_), _) | (Value::Object(_), _) => Ok(false),
        _ => Ok(a == b),
    }
}

#[cfg(test)]
mod tests;
