//! The run-time half of the template bounds: the environments templates run in and the checks
//! that stop a render which grows too large or runs too long.
//!
//! minijinja's fuel counts instructions, but one instruction can do unbounded work: a filter
//! over a large value, a comparison of two large sequences, a loop over a long list. So every
//! place where such work passes through code of ours checks a per-render deadline ([`tick`]):
//! each step into the event data (the context is a [`JsonView`], not a copy), each item of a
//! `range`, each filter call and each write of output. Values are bounded where they can grow:
//! every filter's inputs and output are measured ([`measure`]) against [`MAX_VALUE`], and the
//! output goes to a [`CappedOutput`]. The filters that grow a value by a caller-chosen factor
//! (`batch`, `slice`, `indent`, `pprint`, `format`, `tojson`'s indent) are removed; `join` and
//! `replace` are reimplemented to stop at the limit, sharing one allowance per filter call since
//! `map` may call them once per item.
//!
//! A breach is recorded in a thread-local (a render runs on one thread from start to end) so the
//! caller can tell it from an ordinary template error even when minijinja reports it as
//! something else, such as an undefined value or a failed write.

use std::cell::Cell;
use std::io;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use minijinja::value::{Enumerator, Object, ObjectRepr, Rest, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior, Value};

/// Instructions one template may execute: enough for any realistic field.
pub const FUEL: u64 = 50_000;
/// Output of one delivery's fields, all together, in bytes.
pub const MAX_OUTPUT: usize = 1 << 20;
/// Largest value a filter may take or return, or a lone expression may produce, in bytes.
pub const MAX_VALUE: usize = 1 << 20;
/// Wall-clock time to render one delivery's fields.
pub const TIME_LIMIT: Duration = Duration::from_millis(250);

/// Filters, minus the ones that grow a value by a factor the template picks.
const FILTERS: &str = "abs attr bool capitalize chain count d default dictsort e escape first float groupby int \
    items join last length lines list lower map max min reject rejectattr replace reverse round safe select \
    selectattr sort split string sum title tojson trim unique upper urlencode zip";
const REMOVED_FILTERS: &[&str] = &["batch", "slice", "indent", "pprint", "format"];

/// Why a render was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    Output,
    Value,
    Time,
}

impl Breach {
    pub fn message(self) -> String {
        match self {
            Breach::Output => format!("rendered output is larger than {MAX_OUTPUT} bytes"),
            Breach::Value => format!("a value is larger than {MAX_VALUE} bytes"),
            Breach::Time => format!("rendering took longer than {} ms", TIME_LIMIT.as_millis()),
        }
    }

    fn error(self) -> Error {
        BREACH.set(Some(self));
        Error::new(ErrorKind::InvalidOperation, self.message())
    }
}

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static BREACH: Cell<Option<Breach>> = const { Cell::new(None) };
    static TICKS: Cell<u32> = const { Cell::new(0) };
    static ALLOWANCE: Cell<usize> = const { Cell::new(MAX_VALUE) };
}

/// Run `render` under a fresh deadline and with no breach recorded. Outside such a run nothing
/// is timed, so compiling needs no setup.
pub fn run<T>(render: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            DEADLINE.set(None);
            BREACH.set(None);
        }
    }
    let _reset = Reset;
    DEADLINE.set(Some(Instant::now() + TIME_LIMIT));
    BREACH.set(None);
    render()
}

/// The breach that stopped the current run, if any; once recorded it stays until the run ends.
pub fn breach() -> Option<Breach> {
    BREACH.get()
}

/// One unit of work: every 256th checks the clock, which is cheap next to the work between.
pub fn tick() -> Result<(), Error> {
    if let Some(breach) = BREACH.get() {
        return Err(breach.error());
    }
    let n = TICKS.get().wrapping_add(1);
    TICKS.set(n);
    match DEADLINE.get() {
        Some(deadline) if (n & 0xff) == 0 && Instant::now() > deadline => Err(Breach::Time.error()),
        _ => Ok(()),
    }
}

/// Takes `bytes` from what the current filter call may still build. `join` and `replace` can
/// each build up to the limit, and `map` calls them once per item, so they share one allowance.
fn spend(bytes: usize) -> Result<(), Error> {
    let left = ALLOWANCE.get().checked_sub(bytes).ok_or_else(|| Breach::Value.error())?;
    ALLOWANCE.set(left);
    Ok(())
}

/// The size of `value`, roughly as JSON (strings' lengths plus 2 bytes per item, so never more
/// than the JSON an event arrived as), or a `Breach::Value` once that passes `limit`. The walk
/// stops there, so measuring costs at most `limit / 2` steps.
pub fn measure(value: &Value, limit: usize) -> Result<usize, Error> {
    fn walk(value: &Value, left: &mut usize) -> Result<(), Error> {
        tick()?;
        let own = match value.kind() {
            ValueKind::String => value.as_str().map_or(0, str::len),
            ValueKind::Bytes => value.as_bytes().map_or(0, <[u8]>::len),
            _ => 0,
        };
        *left = left.checked_sub(2 + own).ok_or_else(|| Breach::Value.error())?;
        let is_map = value.kind() == ValueKind::Map;
        if matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable | ValueKind::Map)
            && let Ok(items) = value.try_iter()
        {
            for item in items {
                walk(&item, left)?;
                if is_map && let Ok(entry) = value.get_item(&item) {
                    walk(&entry, left)?;
                }
            }
        }
        Ok(())
    }
    let mut left = limit;
    walk(value, &mut left)?;
    Ok(limit - left)
}

/// Output that refuses to grow past a limit, checking the deadline as it goes.
pub struct CappedOutput {
    pub bytes: Vec<u8>,
    limit: usize,
}

impl CappedOutput {
    pub fn new(limit: usize) -> CappedOutput {
        CappedOutput { bytes: Vec::new(), limit }
    }
}

impl io::Write for CappedOutput {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + data.len() > self.limit {
            return Err(io::Error::other(Breach::Output.error()));
        }
        tick().map_err(io::Error::other)?;
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where rendering happens: undefined values are errors.
pub static STRICT: LazyLock<Environment<'static>> = LazyLock::new(|| guarded(UndefinedBehavior::Strict));
/// Where the dry render at save happens: the sample event has no payload fields, and the dry
/// render should reach as much of the template as it can rather than stop at the first one.
pub static LENIENT: LazyLock<Environment<'static>> = LazyLock::new(|| guarded(UndefinedBehavior::Chainable));

/// What guarded filters delegate to: builtins minus the amplifiers, with capped `join`,
/// `replace` and `tojson`. `map`, `select` and friends call filters by name here, so this
/// environment must be safe on its own too.
static INNER: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    for name in REMOVED_FILTERS {
        env.remove_filter(name);
    }
    env.add_filter("join", join);
    env.add_filter("replace", replace);
    env.add_filter("tojson", tojson);
    env
});

fn guarded(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    for name in REMOVED_FILTERS {
        env.remove_filter(name);
    }
    for name in FILTERS.split_whitespace() {
        env.add_filter(name, move |args: Rest<Value>| -> Result<Value, Error> {
            for arg in args.iter() {
                measure(arg, MAX_VALUE)?;
            }
            ALLOWANCE.set(MAX_VALUE);
            let out = INNER.empty_state().apply_filter(name, &args)?;
            measure(&out, MAX_VALUE)?;
            Ok(out)
        });
    }
    env.remove_global("debug");
    env.remove_global("namespace");
    env.add_function("range", range);
    env
}

/// minijinja's `range` (at most 100,000 items), iterated with a deadline check per item.
fn range(lower: isize, upper: Option<isize>, step: Option<isize>) -> Result<Value, Error> {
    let items = minijinja::functions::range(lower, upper, step)?;
    Ok(Value::make_object_iterable(items, |items| {
        Box::new(items.try_iter().into_iter().flatten().map_while(|item| tick().ok().map(|()| item)))
    }))
}

/// `join` that stops once its result passes the allowance.
fn join(value: &Value, separator: Option<&str>) -> Result<String, Error> {
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(separator.unwrap_or(""));
        }
        match item.as_str() {
            Some(s) => out.push_str(s),
            None => out.push_str(&item.to_string()),
        }
        if out.len() > ALLOWANCE.get() {
            return Err(Breach::Value.error());
        }
    }
    spend(out.len())?;
    Ok(out)
}

/// `replace` that computes its result's size before building it: replacing `""` inserts `to`
/// between every two characters, so the result can be far larger than its inputs.
fn replace(value: &str, from: &str, to: &str) -> Result<String, Error> {
    let count = if from.is_empty() { value.chars().count() + 1 } else { value.matches(from).count() };
    spend((value.len() - count * from.len()).saturating_add(count.saturating_mul(to.len())))?;
    Ok(value.replace(from, to))
}

/// `tojson` without `indent`, which multiplies the size by nesting depth times a chosen width.
fn tojson(value: &Value) -> Result<Value, Error> {
    serde_json::to_string(value)
        .map(Value::from_safe_string)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("cannot serialize to JSON: {e}")))
}

/// The template context: a view into the event JSON rather than a converted copy, so every step
/// into the data, including the iterations and comparisons the engine does natively, passes a
/// [`tick`]. Scalars are handed out as plain values; arrays and objects as views.
#[derive(Debug)]
pub struct JsonView {
    root: Arc<serde_json::Value>,
    path: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

impl JsonView {
    pub fn context(context: &serde_json::Value) -> Value {
        Value::from_object(JsonView { root: Arc::new(context.clone()), path: Vec::new() })
    }

    fn node(&self) -> &serde_json::Value {
        self.path.iter().fold(self.root.as_ref(), |node, step| match step {
            Step::Key(key) => &node[key.as_str()],
            Step::Index(i) => &node[*i],
        })
    }

    fn child(&self, step: Step, node: &serde_json::Value) -> Value {
        match node {
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                let mut path = self.path.clone();
                path.push(step);
                Value::from_object(JsonView { root: self.root.clone(), path })
            }
            scalar => Value::from_serialize(scalar),
        }
    }
}

impl Object for JsonView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        if self.node().is_array() { ObjectRepr::Seq } else { ObjectRepr::Map }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        // A missed deadline reads as a missing value; the recorded breach is what gets reported.
        tick().ok()?;
        match self.node() {
            serde_json::Value::Object(map) => {
                let key = key.as_str()?;
                Some(self.child(Step::Key(key.to_owned()), map.get(key)?))
            }
            serde_json::Value::Array(items) => {
                let i = key.as_usize()?;
                Some(self.child(Step::Index(i), items.get(i)?))
            }
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.node() {
            serde_json::Value::Object(map) => Enumerator::Values(map.keys().map(|k| Value::from(k.as_str())).collect()),
            serde_json::Value::Array(items) => Enumerator::Seq(items.len()),
            _ => Enumerator::Empty,
        }
    }
}
