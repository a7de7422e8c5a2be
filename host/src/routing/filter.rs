//! The JSON event filter of a routing rule (SPEC §5): Hookdeck's filter syntax, also used by
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

use std::cmp::Ordering;

use serde_json::Value;

const MAX_DEPTH: usize = 32;

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
    List(Vec<Value>),
    Contains(String),
}

impl Filter {
    /// Validate and parse; errors name the JSON path of the fault, e.g. `payload.sequence_step.$gte`.
    pub fn parse(filter: &Value) -> Result<Filter, FilterError> {
        if !filter.is_object() {
            return Err(fail("", "a filter must be a JSON object"));
        }
        Ok(Filter { root: parse_node(filter, "", 1)? })
    }

    /// Evaluate against the document `{"event", "resource", "resource_id", "payload"}`.
    pub fn matches(&self, doc: &Value) -> bool {
        self.root.eval(Some(doc))
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
    let in_set = || match literal()? {
        Value::Array(items) => Ok(InSet::List(items)),
        Value::String(s) => Ok(InSet::Contains(s)),
        _ => Err(fail(path, format!("{key} takes an array or a string"))),
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
    fn eval(&self, value: Option<&Value>) -> bool {
        match self {
            Node::All(conds) if conds.is_empty() => value.is_some(),
            Node::All(conds) => conds.iter().all(|cond| cond.eval(value)),
            Node::Literal(expected) => value.is_some_and(|v| json_eq(v, expected)),
            Node::Contains(wanted) => match value {
                Some(Value::Array(items)) => wanted.iter().all(|w| items.iter().any(|item| w.eval(Some(item)))),
                _ => false,
            },
        }
    }
}

impl Cond {
    fn eval(&self, value: Option<&Value>) -> bool {
        let text = || value.and_then(Value::as_str);
        match self {
            Cond::Field(key, node) => node.eval(value.and_then(|v| v.get(key))),
            Cond::Eq(expected) => value.is_some_and(|v| json_eq(v, expected)),
            Cond::Cmp(test, bound) => value.and_then(|v| compare(v, bound)).is_some_and(test),
            Cond::In(set) => value.is_some_and(|v| set.holds(v)),
            Cond::StartsWith(prefix) => text().is_some_and(|s| s.starts_with(prefix.as_str())),
            Cond::EndsWith(suffix) => text().is_some_and(|s| s.ends_with(suffix.as_str())),
            Cond::Exist(wanted) => value.is_some() == *wanted,
            Cond::And(nodes) => nodes.iter().all(|n| n.eval(value)),
            Cond::Or(nodes) => nodes.iter().any(|n| n.eval(value)),
            Cond::Not(node) => !node.eval(value),
        }
    }
}

impl InSet {
    fn holds(&self, value: &Value) -> bool {
        match (self, value) {
            (InSet::List(list), Value::Array(items)) => items.iter().any(|i| list.iter().any(|l| json_eq(i, l))),
            (InSet::List(list), v) => list.iter().any(|l| json_eq(v, l)),
            (InSet::Contains(s), Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(s)),
            (InSet::Contains(s), Value::String(v)) => v.contains(s.as_str()),
            (InSet::Contains(_), _) => false,
        }
    }
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
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(payload: Value) -> Value {
        json!({"event": "user.signed_up", "resource": "user", "resource_id": "u_1", "payload": payload})
    }

    fn check(filter: Value, payload: Value) -> bool {
        Filter::parse(&filter).expect("valid filter").matches(&doc(payload))
    }

    fn rejected_at(filter: Value) -> String {
        Filter::parse(&filter).expect_err("filter must be rejected").path
    }

    #[test]
    fn spec_example_gte_on_sequence_step() {
        let filter = json!({"payload": {"sequence_step": {"$gte": 3}}});
        assert!(check(filter.clone(), json!({"sequence_step": 3})));
        assert!(check(filter.clone(), json!({"sequence_step": 4.5})));
        assert!(!check(filter.clone(), json!({"sequence_step": 2})));
        assert!(!check(filter, json!({})));
    }

    #[test]
    fn nested_objects_match_by_structure() {
        let filter = json!({"event": "user.signed_up", "payload": {"plan": {"tier": "pro"}}});
        assert!(check(filter.clone(), json!({"plan": {"tier": "pro", "seats": 3}, "x": 1})));
        assert!(!check(filter.clone(), json!({"plan": {"tier": "free"}})));
        assert!(!check(filter.clone(), json!({"plan": "pro"})));
        assert!(!check(json!({"event": "user.deleted"}), json!({})));
        assert!(check(json!({}), json!(null)));
    }

    #[test]
    fn primitives_mean_equality_and_numbers_compare_as_f64() {
        assert!(check(json!({"payload": {"n": 3}}), json!({"n": 3.0})));
        assert!(check(json!({"payload": {"ok": true, "v": null}}), json!({"ok": true, "v": null})));
        assert!(!check(json!({"payload": {"v": null}}), json!({})));
        assert!(!check(json!({"payload": {"n": "3"}}), json!({"n": 3})));
    }

    #[test]
    fn filter_array_requires_document_array_to_contain_every_item() {
        let filter = json!({"payload": {"tags": ["vip", {"$startsWith": "eu-"}]}});
        assert!(check(filter.clone(), json!({"tags": ["eu-west", "x", "vip"]})));
        assert!(!check(filter.clone(), json!({"tags": ["vip"]})));
        assert!(!check(filter, json!({"tags": "vip"})));
    }

    #[test]
    fn eq_and_neq_compare_deeply() {
        assert!(check(json!({"payload": {"a": {"$eq": {"b": [1, 2]}}}}), json!({"a": {"b": [1.0, 2]}})));
        assert!(!check(json!({"payload": {"a": {"$eq": [1, 2]}}}), json!({"a": [2, 1]})));
        assert!(check(json!({"payload": {"s": {"$neq": "cancelled"}}}), json!({"s": "active"})));
        assert!(!check(json!({"payload": {"s": {"$neq": "cancelled"}}}), json!({"s": "cancelled"})));
        assert!(check(json!({"payload": {"s": {"$neq": "cancelled"}}}), json!({})));
    }

    #[test]
    fn gt_gte_lt_lte_compare_numbers() {
        let p = json!({"n": 5});
        assert!(check(json!({"payload": {"n": {"$gt": 4}}}), p.clone()));
        assert!(!check(json!({"payload": {"n": {"$gt": 5}}}), p.clone()));
        assert!(check(json!({"payload": {"n": {"$gte": 5.0}}}), p.clone()));
        assert!(check(json!({"payload": {"n": {"$lt": 6}}}), p.clone()));
        assert!(!check(json!({"payload": {"n": {"$lt": 5}}}), p.clone()));
        assert!(check(json!({"payload": {"n": {"$lte": 5}}}), p));
    }

    #[test]
    fn ordering_compares_strings_lexicographically_and_never_across_types() {
        let filter = json!({"payload": {"at": {"$gte": "2024-01-01T00:00:00Z", "$lt": "2025-01-01T00:00:00Z"}}});
        assert!(check(filter.clone(), json!({"at": "2024-06-30T12:00:00Z"})));
        assert!(!check(filter, json!({"at": "2025-02-01T00:00:00Z"})));
        assert!(!check(json!({"payload": {"n": {"$gt": 1}}}), json!({"n": "9"})));
        assert!(!check(json!({"payload": {"n": {"$lt": "z"}}}), json!({"n": 1})));
    }

    #[test]
    fn in_and_nin_test_membership() {
        let filter = json!({"payload": {"plan": {"$in": ["pro", "team"]}}});
        assert!(check(filter.clone(), json!({"plan": "team"})));
        assert!(!check(filter, json!({"plan": "free"})));
        assert!(check(json!({"payload": {"n": {"$in": [1, 2]}}}), json!({"n": 2.0})));
        assert!(check(json!({"payload": {"tags": {"$in": ["a", "b"]}}}), json!({"tags": ["z", "b"]})));
        assert!(check(json!({"payload": {"plan": {"$nin": ["pro"]}}}), json!({"plan": "free"})));
        assert!(!check(json!({"payload": {"plan": {"$nin": ["pro"]}}}), json!({"plan": "pro"})));
        assert!(check(json!({"payload": {"plan": {"$nin": ["pro"]}}}), json!({})));
    }

    #[test]
    fn in_with_a_string_means_contains() {
        let filter = json!({"payload": {"tags": {"$in": "vip"}}});
        assert!(check(filter.clone(), json!({"tags": ["new", "vip"]})));
        assert!(!check(filter, json!({"tags": ["new"]})));
        assert!(check(json!({"payload": {"email": {"$in": "@acme."}}}), json!({"email": "jo@acme.io"})));
        assert!(check(json!({"payload": {"tags": {"$nin": "spam"}}}), json!({"tags": ["ok"]})));
    }

    #[test]
    fn starts_with_and_ends_with_match_strings_only() {
        assert!(check(json!({"payload": {"e": {"$startsWith": "alex@"}}}), json!({"e": "alex@northstar.io"})));
        assert!(check(json!({"payload": {"e": {"$endsWith": ".io"}}}), json!({"e": "alex@northstar.io"})));
        assert!(!check(json!({"payload": {"e": {"$endsWith": ".com"}}}), json!({"e": "alex@northstar.io"})));
        assert!(!check(json!({"payload": {"e": {"$startsWith": "1"}}}), json!({"e": 12})));
    }

    #[test]
    fn exist_tests_presence_and_null_counts_as_present() {
        assert!(check(json!({"payload": {"e": {"$exist": true}}}), json!({"e": null})));
        assert!(!check(json!({"payload": {"e": {"$exist": true}}}), json!({})));
        assert!(check(json!({"payload": {"e": {"$exist": false}}}), json!({})));
        assert!(!check(json!({"payload": {"e": {"$exist": false}}}), json!({"e": 1})));
    }

    #[test]
    fn several_operators_in_one_object_must_all_hold() {
        let filter = json!({"payload": {"n": {"$gt": 1, "$lt": 3}}});
        assert!(check(filter.clone(), json!({"n": 2})));
        assert!(!check(filter, json!({"n": 3})));
    }

    #[test]
    fn and_or_not_combine_filters_at_the_same_level() {
        let filter = json!({"payload": {"$or": [{"plan": "pro"}, {"seats": {"$gte": 10}}], "$not": {"region": "eu"}}});
        assert!(check(filter.clone(), json!({"plan": "pro", "region": "us"})));
        assert!(check(filter.clone(), json!({"plan": "free", "seats": 12})));
        assert!(!check(filter.clone(), json!({"plan": "free", "seats": 2})));
        assert!(!check(filter, json!({"plan": "pro", "region": "eu"})));
        let both = json!({"$and": [{"payload": {"a": 1}}, {"payload": {"b": 2}}]});
        assert!(check(both.clone(), json!({"a": 1, "b": 2})));
        assert!(!check(both, json!({"a": 1})));
    }

    #[test]
    fn rejects_non_object_filters() {
        assert_eq!(rejected_at(json!([{"event": "x"}])), "");
        assert_eq!(rejected_at(json!("x")), "");
    }

    #[test]
    fn rejects_unknown_operators_with_their_path() {
        let err = Filter::parse(&json!({"payload": {"n": {"$gtt": 1}}})).unwrap_err();
        assert_eq!(err.path, "payload.n.$gtt");
        assert_eq!(err.to_string(), "invalid filter at `payload.n.$gtt`: unknown operator `$gtt`");
    }

    #[test]
    fn rejects_wrong_operand_types_with_their_path() {
        assert_eq!(rejected_at(json!({"payload": {"sequence_step": {"$gte": true}}})), "payload.sequence_step.$gte");
        assert_eq!(rejected_at(json!({"payload": {"n": {"$in": 3}}})), "payload.n.$in");
        assert_eq!(rejected_at(json!({"payload": {"n": {"$nin": {}}}})), "payload.n.$nin");
        assert_eq!(rejected_at(json!({"payload": {"e": {"$exist": "yes"}}})), "payload.e.$exist");
        assert_eq!(rejected_at(json!({"payload": {"e": {"$startsWith": 1}}})), "payload.e.$startsWith");
        assert_eq!(rejected_at(json!({"payload": {"e": {"$endsWith": null}}})), "payload.e.$endsWith");
        assert_eq!(rejected_at(json!({"$not": "x"})), "$not");
        assert_eq!(rejected_at(json!({"$and": {"a": 1}})), "$and");
        assert_eq!(rejected_at(json!({"$or": [{"a": 1}, 2]})), "$or[1]");
        assert_eq!(rejected_at(json!({"tags": [1, {"$bad": 1}]})), "tags[1].$bad");
    }

    #[test]
    fn rejects_empty_and_or() {
        assert_eq!(rejected_at(json!({"payload": {"$and": []}})), "payload.$and");
        assert_eq!(rejected_at(json!({"$or": []})), "$or");
    }

    #[test]
    fn rejects_nesting_deeper_than_32() {
        let nest = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!({"a": inner}));
        assert!(Filter::parse(&nest(32)).is_ok());
        let err = Filter::parse(&nest(33)).unwrap_err();
        assert!(err.message.contains("deeper than 32"), "{err}");
        let deep_operand = json!({"a": {"$eq": nest(40)}});
        assert_eq!(rejected_at(deep_operand), "a.$eq");
    }

    #[test]
    fn never_panics_on_odd_documents() {
        let filter = Filter::parse(&json!({"payload": {"a": {"b": {"$gt": 1}}, "t": ["x"]}})).unwrap();
        let docs =
            [json!(null), json!(3), json!([1, 2]), json!({"payload": "s"}), json!({"payload": {"a": [{"b": 2}]}})];
        assert!(docs.iter().all(|d| !filter.matches(d)));
    }
}
