//! Hostile JSON, shared by every fuzz target: the strings, numbers and shapes a tenant's product
//! can put in an event payload (odd unicode, extreme numbers, long strings, huge arrays, deep
//! nesting), and a few measures of a value the checks compare against the documented bounds.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Number, Value};

/// Strings that have broken parsers, renderers and comparisons elsewhere: control and format
/// characters, combining marks, astral-plane and ZWJ sequences, template and operator syntax.
pub const ODD: &[&str] = &[
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "\u{202e}txt.exe",
    "e\u{301}\u{301}\u{301}",
    "👩\u{200d}👩\u{200d}👧\u{200d}👦",
    "\u{10ffff}",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "ﷺ",
    "\r\n\t",
    "\\",
    "\"",
    "'",
    "{{ payload }}",
    "{% for x in payload %}",
    "}}{{",
    "$in",
    "$or",
    "__proto__",
    "constructor",
    "NaN",
    "-0",
    "1e999",
    "</script>",
];

/// A string: mostly short words, sometimes arbitrary unicode, an odd string, or an odd string
/// repeated up to hundreds of kilobytes (past the ingest body limit on purpose).
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        12 => "[a-z_.]{0,12}",
        6 => any::<String>(),
        4 => select(ODD).prop_map(str::to_owned),
        1 => (select(ODD), 1usize..12_000).prop_map(|(s, n)| s.repeat(n)),
    ]
    .boxed()
}

/// A non-blank name of at most `max` bytes (cut at a character boundary).
pub fn name(max: usize) -> BoxedStrategy<String> {
    (prop_oneof![3 => "[a-z]{1,10}\\.[a-z_]{1,12}", 1 => any::<String>(), 1 => select(ODD).prop_map(str::to_owned)])
        .prop_map(move |s| {
            let mut s = format!("n{s}");
            while s.len() > max {
                s.pop();
            }
            s
        })
        .boxed()
}

/// Floats at the edges: signed zero, the extremes, the smallest subnormal, past 2^53.
const EXTREMES: &[f64] =
    &[0.0, -0.0, 0.5, f64::MAX, f64::MIN, f64::MIN_POSITIVE, 5e-324, 1e308, 9_007_199_254_740_993.0];

pub fn number() -> BoxedStrategy<Value> {
    let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
    prop_oneof![
        3 => (-1000i64..1000).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(float),
        1 => select(EXTREMES).prop_map(float),
    ]
    .boxed()
}

pub fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        5 => text().prop_map(Value::String),
    ]
    .boxed()
}

/// A key: the names templates and filters look up, so lookups hit, plus odd ones.
pub fn key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(&["a", "b", "kind", "items", "email", "n", "user", "step", "$in", ""][..]).prop_map(str::to_owned),
        2 => "[a-z_]{1,8}",
        1 => any::<String>(),
    ]
    .boxed()
}

/// Any JSON value: ordinary trees, and now and then a huge array or a deep nesting.
pub fn value() -> BoxedStrategy<Value> {
    prop_oneof![
        12 => tree(),
        1 => huge_array(),
        1 => deep(),
    ]
    .boxed()
}

/// Trees up to 5 levels deep and around 48 nodes.
pub fn tree() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(5, 48, 8, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..8).prop_map(Value::Array),
                btree_map(key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// Up to 90,000 copies of one short scalar: the largest arrays a 256 KiB body can carry.
pub fn huge_array() -> BoxedStrategy<Value> {
    let item = prop_oneof![number(), "[a-z]{0,3}".prop_map(Value::String), Just(Value::Null)];
    (0usize..90_000, item).prop_map(|(n, item)| Value::Array(vec![item; n])).boxed()
}

/// Arrays and objects nested up to 140 deep, past serde_json's parse limit of 128.
pub fn deep() -> BoxedStrategy<Value> {
    (1usize..140, scalar(), any::<u64>()).prop_map(|(depth, leaf, shape)| nest(depth, leaf, shape)).boxed()
}

/// `leaf` inside `depth` containers; bit `i % 64` of `shape` picks array or object at level `i`.
pub fn nest(depth: usize, leaf: Value, shape: u64) -> Value {
    (0..depth).fold(leaf, |inner, i| match shape >> (i % 64) & 1 {
        0 => Value::Array(vec![inner]),
        _ => Value::Object(Map::from_iter([("a".to_owned(), inner)])),
    })
}

/// A payload: an object with at least one member, as ingest requires.
pub fn payload() -> BoxedStrategy<Map<String, Value>> {
    (key(), value(), btree_map(key(), value(), 0..6))
        .prop_map(|(k, v, rest)| {
            let mut map: Map<String, Value> = rest.into_iter().collect();
            map.insert(k, v);
            map
        })
        .boxed()
}

/// Nesting depth: a scalar is 0, `[]` is 1. Iterative, so even a pathological value is safe.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((value, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// `text` cut to at most `max` characters, for reports.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}
