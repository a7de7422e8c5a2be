//! Property-based fuzzing of what tenants control (issue #9): ingest bodies ([`ingest`]), rule
//! filters ([`filters`]) and field templates ([`templates`]), each run through the code paths the
//! service itself uses, built on hostile JSON ([`json`]).
//!
//! This module owns the harness the three share: [`run`] drives proptest for a number of cases
//! from a fixed seed, times every case, turns a panic, an error or a case slower than the hang
//! bound into a failure, and reports the minimal failing input proptest shrinks it to.
//! [`Isolated`] runs a synchronous check on a worker thread, so a case that never returns is
//! reported as a hang instead of stopping the run; [`run_isolated`] puts the two together.

pub mod filters;
pub mod ingest;
pub mod json;
pub mod templates;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};

/// A case slower than this is a hang (issue #9).
pub const HANG: Duration = Duration::from_secs(2);
/// The seed when `FUZZ_SEED` is not set, so a run is reproducible by default.
pub const DEFAULT_SEED: u64 = 0x5b_f022;

/// How many cases, from which seed, and what counts as a hang.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cases: u32,
    pub seed: u64,
    pub hang: Duration,
}

impl Settings {
    /// `cases` cases from `FUZZ_SEED` (or the default seed), with the 2 s hang bound.
    pub fn new(cases: u32) -> Settings {
        let seed = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
        Settings { cases, seed, hang: HANG }
    }

    pub fn with_seed(self, seed: u64) -> Settings {
        Settings { seed, ..self }
    }
}

/// A passed case names its outcome (`"refused"`, `"201 created"`, ...), so a report shows what the
/// inputs reached; a failed one says what went wrong.
pub type Verdict = Result<&'static str, String>;

/// What one target's run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    /// Cases checked, including the ones run while shrinking a failure.
    pub cases: u64,
    pub elapsed: Duration,
    pub slowest: Duration,
    pub slowest_input: String,
    /// How many passed cases ended in each outcome.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// The reason and the minimal failing input, if any case failed.
    pub failure: Option<String>,
}

impl Report {
    pub fn cases_per_second(&self) -> f64 {
        self.cases as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Fails the calling test with the whole report, minimal input included.
    pub fn assert_clean(&self) {
        assert!(self.failure.is_none(), "{self}");
    }

    /// One report for runs of the same target made side by side: cases and outcomes added up,
    /// the longest elapsed time, the slowest case, every failure.
    pub fn combine(reports: Vec<Report>) -> Option<Report> {
        reports.into_iter().reduce(|mut all, one| {
            all.cases += one.cases;
            all.elapsed = all.elapsed.max(one.elapsed);
            if one.slowest > all.slowest {
                (all.slowest, all.slowest_input) = (one.slowest, one.slowest_input);
            }
            for (outcome, n) in one.outcomes {
                *all.outcomes.entry(outcome).or_insert(0) += n;
            }
            all.failure = match (all.failure.take(), one.failure) {
                (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
                (a, b) => a.or(b),
            };
            all
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} cases in {:.1} s ({:.0} cases/s), slowest case {:.1} ms",
            self.target,
            self.cases,
            self.elapsed.as_secs_f64(),
            self.cases_per_second(),
            self.slowest.as_secs_f64() * 1e3,
        )?;
        match &self.failure {
            None => write!(f, ", 0 failures")?,
            Some(failure) => write!(f, ", FAILED\n{failure}")?,
        }
        let outcomes: Vec<String> = self.outcomes.iter().map(|(name, n)| format!("{name} {n}")).collect();
        write!(f, "\n  outcomes: {}\n  slowest input: {}", outcomes.join(", "), self.slowest_input)
    }
}

/// Runs `check` on `settings.cases` inputs drawn from `strategy`. A case fails when `check`
/// returns `Err`, panics or takes longer than `settings.hang`; proptest then shrinks it and the
/// report carries the reason and the smallest input that still fails.
pub fn run<S>(target: &'static str, settings: &Settings, strategy: S, check: impl Fn(&S::Value) -> Verdict) -> Report
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let config = Config {
        cases: settings.cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(settings.seed),
        // A hang costs the bound per shrinking step: keep shrinking to about a minute.
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let tally = Mutex::new(Report {
        target,
        cases: 0,
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        slowest_input: String::new(),
        outcomes: BTreeMap::new(),
        failure: None,
    });
    let started = Instant::now();
    let result = TestRunner::new(config).run(&strategy, |input| {
        let began = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(&input)))
            .unwrap_or_else(|panic| Err(format!("the check panicked: {}", message(&*panic))));
        let took = began.elapsed();
        let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
        tally.cases += 1;
        if took > tally.slowest {
            tally.slowest = took;
            tally.slowest_input = json::excerpt(&format!("{input:?}"), 300);
        }
        let outcome = outcome.map_err(TestCaseError::fail)?;
        if took > settings.hang {
            return Err(TestCaseError::fail(format!("took {took:.1?}, past the {:?} hang bound", settings.hang)));
        }
        *tally.outcomes.entry(outcome).or_insert(0) += 1;
        Ok(())
    });
    let mut report = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    report.elapsed = started.elapsed();
    report.failure = result.err().map(|error| match error {
        TestError::Fail(reason, minimal) => format!("{reason}\nminimal failing input: {minimal:#?}"),
        TestError::Abort(reason) => format!("aborted: {reason}"),
    });
    report
}

/// [`run`] for a synchronous `check`, each case on an [`Isolated`] worker thread so a hang is
/// reported, not waited on.
pub fn run_isolated<S, V>(target: &'static str, settings: &Settings, strategy: S, check: fn(&V) -> Verdict) -> Report
where
    S: Strategy<Value = V>,
    V: fmt::Debug + Clone + Send + 'static,
{
    let isolated = Isolated::new(settings.hang);
    run(target, settings, strategy, |case| {
        let case = case.clone();
        isolated.run(move || check(&case))
    })
}

type Job = Box<dyn FnOnce() -> Verdict + Send>;

/// A worker thread for synchronous checks. A job that panics is reported with the panic's
/// location; one that does not answer within the bound is reported as a hang and its thread
/// abandoned (it cannot be stopped from outside), the next job getting a fresh one.
pub struct Isolated {
    hang: Duration,
    worker: Mutex<Option<(mpsc::Sender<Job>, mpsc::Receiver<Verdict>)>>,
}

impl Isolated {
    pub fn new(hang: Duration) -> Isolated {
        Isolated { hang, worker: Mutex::new(None) }
    }

    pub fn run(&self, job: impl FnOnce() -> Verdict + Send + 'static) -> Verdict {
        let mut slot = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        let (jobs, answers) = slot.get_or_insert_with(spawn_worker);
        if jobs.send(Box::new(job)).is_err() {
            *slot = None;
            return Err("the worker thread is gone".into());
        }
        match answers.recv_timeout(self.hang) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => {
                *slot = None;
                Err(format!("no answer within {:?}: a hang", self.hang))
            }
            Err(RecvTimeoutError::Disconnected) => {
                *slot = None;
                Err("the worker thread died".into())
            }
        }
    }
}

const WORKER: &str = "fuzz-worker";

thread_local! {
    /// Where and why the last panic on this worker thread happened, recorded by the hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn spawn_worker() -> (mpsc::Sender<Job>, mpsc::Receiver<Verdict>) {
    quiet_worker_panics();
    let (jobs, inbox) = mpsc::channel::<Job>();
    let (outbox, answers) = mpsc::channel();
    std::thread::Builder::new()
        .name(WORKER.into())
        .spawn(move || {
            for job in inbox {
                let answer = panic::catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|panic| {
                    let at = LAST_PANIC.take().unwrap_or_default();
                    Err(format!("panicked at {at}: {}", message(&*panic)))
                });
                if outbox.send(answer).is_err() {
                    return;
                }
            }
        })
        .expect("spawn a fuzz worker");
    (jobs, answers)
}

/// On worker threads a panic is an expected finding, reported with its input: record where it
/// happened instead of printing it (a shrinking run would print it hundreds of times). Other
/// threads keep the hook they had, so the rest of the suite reports panics as before.
fn quiet_worker_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(WORKER) {
                let at = info.location().map(ToString::to_string).unwrap_or_default();
                LAST_PANIC.set(Some(at));
            } else {
                previous(info);
            }
        }));
    });
}

fn message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "<a panic without a message>".to_owned(),
    }
}
