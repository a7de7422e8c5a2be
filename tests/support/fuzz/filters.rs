//! Fuzzing rule filters: documents built from every operator of the filter language, nested at
//! random and past the depth limit, with `$in` lists around the 1,000-item limit and operands of
//! wrong types, evaluated against hostile events.
//!
//! Each case goes through what the service does with a filter: [`Filter::parse`] (the rules API's
//! validation at save and the router's compile) and [`Filter::matches`] (ingest's routing).
//! Besides not panicking or hanging, an accepted filter must respect the documented limits, and
//! its answers must hang together: the step budget never changes an answer it gives, and
//! `$not`, `$and` and `$or` around it mean what they say.

use std::fmt;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};
use switchboard::routing::filter::{Filter, MAX_DEPTH, MAX_FILTER_BYTES, MAX_STEPS};

use super::{Verdict, json};

#[derive(Clone)]
pub struct FilterCase {
    pub filter: Value,
    /// A second filter, for the `$or` check.
    pub other: Value,
    /// The `{event, resource, resource_id, payload}` document ingest evaluates filters against.
    pub doc: Value,
    /// A smaller step budget to evaluate with, besides the real one.
    pub budget: u64,
}

impl fmt::Debug for FilterCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Value| json::excerpt(&v.to_string(), 4_000);
        write!(
            f,
            "filter: {}\nother: {}\ndoc: {}\nbudget: {}",
            show(&self.filter),
            show(&self.other),
            show(&self.doc),
            self.budget
        )
    }
}

pub fn case() -> BoxedStrategy<FilterCase> {
    (filter(), filter(), document(), 0u64..5_000)
        .prop_map(|(filter, other, doc, budget)| FilterCase { filter, other, doc, budget })
        .boxed()
}

/// Mostly well-formed filters; also chains past the depth limit, lists past the item limit, and
/// JSON that is no filter at all.
pub fn filter() -> BoxedStrategy<Value> {
    prop_oneof![
        10 => node().prop_map(|n| if n.is_object() { n } else { json!({"payload": n}) }),
        1 => chain(),
        1 => (field(), list_operator()).prop_map(|(k, op)| json!({"payload": {k: op}})),
        1 => json::tree(),
    ]
    .boxed()
}

/// The document as ingest builds it.
pub fn document() -> BoxedStrategy<Value> {
    (json::name(40), json::name(40), proptest::option::of(json::name(40)), json::payload())
        .prop_map(|(event, resource, resource_id, payload)| {
            json!({"event": event, "resource": resource, "resource_id": resource_id, "payload": payload})
        })
        .boxed()
}

fn field() -> BoxedStrategy<String> {
    prop_oneof![
        1 => select(&["event", "resource", "resource_id", "payload"][..]).prop_map(str::to_owned),
        4 => json::key(),
    ]
    .boxed()
}

/// A literal operand: mostly small, sometimes a whole hostile value.
fn literal() -> BoxedStrategy<Value> {
    prop_oneof![6 => json::scalar(), 2 => json::tree(), 1 => json::value()].boxed()
}

/// A leaf condition, with operands of the right type most of the time.
fn leaf() -> BoxedStrategy<Value> {
    let ordered = select(&["$gt", "$gte", "$lt", "$lte"][..]);
    let text_op = select(&["$startsWith", "$endsWith"][..]);
    prop_oneof![
        3 => literal(),
        1 => Just(json!({})),
        2 => (select(&["$eq", "$neq"][..]), literal()).prop_map(|(op, v)| json!({op: v})),
        2 => (ordered, prop_oneof![3 => json::number(), 3 => json::text().prop_map(Value::String), 1 => literal()])
            .prop_map(|(op, v)| json!({op: v})),
        2 => list_operator(),
        2 => (text_op, prop_oneof![4 => json::text().prop_map(Value::String), 1 => literal()])
            .prop_map(|(op, v)| json!({op: v})),
        1 => prop_oneof![3 => any::<bool>().prop_map(Value::Bool), 1 => literal()].prop_map(|v| json!({"$exist": v})),
        1 => (json::text(), literal()).prop_map(|(op, v)| json!({format!("${op}"): v})),
    ]
    .boxed()
}

/// `$in`/`$nin` with a list (up to past the 1,000-item limit), a string, or a wrong type.
fn list_operator() -> BoxedStrategy<Value> {
    let op = select(&["$in", "$nin"][..]);
    let list = prop_oneof![
        4 => vec(json::scalar(), 0..20).prop_map(Value::Array),
        1 => (900usize..1_100, "[a-z]{0,8}").prop_map(|(n, s)| (0..n).map(|i| json!(format!("{s}{i}"))).collect()),
        1 => (900usize..1_100).prop_map(|n| (0..n).map(|i| json!(i)).collect()),
        1 => vec(json::tree(), 0..6).prop_map(Value::Array),
        2 => json::text().prop_map(Value::String),
        1 => literal(),
    ];
    (op, list).prop_map(|(op, list)| json!({op: list})).boxed()
}

/// Random nesting of fields, arrays and the combinators.
fn node() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(6, 40, 5, |inner| {
            prop_oneof![
                4 => btree_map(field(), inner.clone(), 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
                2 => (select(&["$and", "$or"][..]), vec(inner.clone(), 0..5))
                    .prop_map(|(op, items)| json!({op: items})),
                1 => inner.clone().prop_map(|n| json!({"$not": n})),
                1 => vec(inner, 0..4).prop_map(Value::Array),
            ]
        })
        .boxed()
}

/// Around the depth limit of 32: a leaf wrapped in up to 40 fields, `$not`s, `$and`s and arrays.
fn chain() -> BoxedStrategy<Value> {
    (vec(0u8..4, 20..40), leaf())
        .prop_map(|(wrappers, leaf)| {
            wrappers.into_iter().fold(leaf, |inner, wrapper| match wrapper {
                0 => json!({"a": inner}),
                1 => json!({"$not": inner}),
                2 => json!({"$and": [inner]}),
                _ => json!([inner]),
            })
        })
        .boxed()
}

/// Parse and evaluate as the service does, and check what an accepted filter promises.
pub fn check(case: &FilterCase) -> Verdict {
    let Ok(filter) = Filter::parse(&case.filter) else {
        return Ok("refused"); // Refused at save with a message: the defined outcome.
    };
    let size = serde_json::to_vec(&case.filter).map_or(0, |b| b.len());
    if size > MAX_FILTER_BYTES {
        return Err(format!("accepted a filter of {size} bytes, over the {MAX_FILTER_BYTES} byte limit"));
    }
    // Two JSON levels per filter level at most (a combinator's array and its items).
    let depth = json::depth(&case.filter);
    if depth > 2 * MAX_DEPTH + 2 {
        return Err(format!("accepted a filter {depth} levels deep, past the {MAX_DEPTH}-level limit"));
    }
    let matched = filter.matches(&case.doc);
    let metered = filter.evaluate(&case.doc, MAX_STEPS);
    if metered.is_ok_and(|m| m != matched) || (metered.is_err() && matched) {
        return Err(format!("matches() said {matched} but evaluate() with the same budget said {metered:?}"));
    }
    if let (Ok(small), Ok(full)) = (filter.evaluate(&case.doc, case.budget), metered)
        && small != full
    {
        return Err(format!("with {} steps the answer was {small}, with the full budget {full}", case.budget));
    }
    let Ok(full) = metered else { return Ok("out of budget") };
    let agree = |wrapped: Value, want: bool, what: &str| -> Result<(), String> {
        match Filter::parse(&wrapped).map(|w| w.evaluate(&case.doc, MAX_STEPS)) {
            Ok(Ok(got)) if got != want => Err(format!("{what} gave {got}, expected {want}")),
            _ => Ok(()), // Refused (one level deeper) or out of budget: nothing to compare.
        }
    };
    agree(json!({"$not": case.filter}), !full, "{\"$not\": filter}")?;
    agree(json!({"$and": [case.filter]}), full, "{\"$and\": [filter]}")?;
    if let Ok(Ok(other)) = Filter::parse(&case.other).map(|o| o.evaluate(&case.doc, MAX_STEPS)) {
        agree(json!({"$or": [case.filter, case.other]}), full || other, "{\"$or\": [filter, other]}")?;
        agree(json!({"$and": [case.filter, case.other]}), full && other, "{\"$and\": [filter, other]}")?;
    }
    Ok(if full { "matched" } else { "not matched" })
}
