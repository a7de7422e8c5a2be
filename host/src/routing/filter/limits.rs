//! The bounds that make a filter cheap whatever a workspace writes: at save, a size,
//! a depth and a list-length limit; at evaluation, a step budget.
//!
//! Parse-time limits alone do not bound evaluation: a 1,000-item `$in` tested against an
//! 85,000-item payload array is 85M comparisons done naively. So `$in`/`$nin` lists are indexed
//! ([`ListIndex`]: scalar items in a hash set, one lookup per document value) and every unit of
//! work is charged to a [`Meter`]. A filter that spends its budget does not match: the event is
//! still accepted, without that rule's delivery, and a warning is logged.

use std::collections::HashSet;

use serde_json::Value;

/// Serialized size limit of a filter, in bytes.
pub const MAX_FILTER_BYTES: usize = 64 * 1024;
/// Nesting limit: objects and arrays, counting operands compared as literals.
pub const MAX_DEPTH: usize = 32;
/// Items an `$in`/`$nin` list may hold.
pub const MAX_LIST_ITEMS: usize = 1_000;
/// Work units one evaluation may spend. A unit is one node visited, one item compared or one
/// 64-byte stretch of a string compared; a payload within the 256 KiB ingest limit holds about
/// 130,000 values, so a filter that looks at each of them a few times fits, and the worst case
/// stays in the low milliseconds.
pub const MAX_STEPS: u64 = 1_000_000;

/// The evaluation ran out of budget; the filter is treated as not matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("filter evaluation exceeded {MAX_STEPS} steps")]
pub struct Exhausted;

pub type Eval = Result<bool, Exhausted>;

/// Work left for one evaluation.
#[derive(Debug)]
pub struct Meter {
    left: u64,
}

impl Meter {
    pub fn new(budget: u64) -> Meter {
        Meter { left: budget }
    }

    pub fn charge(&mut self, units: u64) -> Result<(), Exhausted> {
        self.left = self.left.checked_sub(units).ok_or(Exhausted)?;
        Ok(())
    }

    /// Comparing strings costs by their length, so a long string is not one cheap step.
    pub fn charge_text(&mut self, len: usize) -> Result<(), Exhausted> {
        self.charge(1 + len as u64 / 64)
    }
}

/// An `$in`/`$nin` list: scalars hashed, so membership of a scalar is one lookup; arrays and
/// objects (rare in such lists) compared one by one.
#[derive(Debug, Clone)]
pub struct ListIndex {
    scalars: HashSet<Scalar>,
    others: Vec<Value>,
}

/// A scalar as the filter compares it: numbers by their f64 value, as in `json_eq`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scalar {
    Null,
    Bool(bool),
    Number(u64),
    Text(String),
}

impl Scalar {
    fn of(value: &Value) -> Option<Scalar> {
        Some(match value {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            // `+ 0.0` folds -0.0 into 0.0, which compare equal as f64.
            Value::Number(n) => Scalar::Number((n.as_f64()? + 0.0).to_bits()),
            Value::String(s) => Scalar::Text(s.clone()),
            Value::Array(_) | Value::Object(_) => return None,
        })
    }
}

impl ListIndex {
    pub fn new(items: Vec<Value>) -> ListIndex {
        let (scalars, others): (Vec<Value>, Vec<Value>) =
            items.into_iter().partition(|v| !matches!(v, Value::Array(_) | Value::Object(_)));
        ListIndex { scalars: scalars.iter().filter_map(Scalar::of).collect(), others }
    }

    /// Whether `value` equals an item, deep equality given by `eq`.
    pub fn contains(&self, value: &Value, meter: &mut Meter, eq: impl Fn(&Value, &Value, &mut Meter) -> Eval) -> Eval {
        if let Some(key) = Scalar::of(value) {
            meter.charge_text(value.as_str().map_or(0, str::len))?;
            return Ok(self.scalars.contains(&key));
        }
        for other in &self.others {
            if eq(value, other, meter)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
