//! The long fuzz run (issue #9): at least 100,000 cases over ingest bodies, filters and field
//! templates, each through the service's own code paths, with zero panics, hangs (a case over
//! 2 s), 5xx answers or wrong answers allowed. Prints each target's cases, time, cases/s, its
//! slowest case and what the cases reached, then either "0 failures" or the minimal failing
//! input; exits 1 on a failure.
//!
//! Run: `scripts/bench.sh fuzz`. `FUZZ_CASES` (default 100,000) is split evenly over the three
//! targets; `FUZZ_SEED` picks the seed, so a failure is reproduced by running it again.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use switchboard_tests::fuzz::{self, Report, Settings, filters, ingest, templates};

/// Concurrent ingest clients: each waits on the server's group-committed fsync, so several
/// keep the server busy where one would mostly wait.
const INGEST_CLIENTS: u32 = 4;

fn main() -> ExitCode {
    let total = std::env::var("FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000u32);
    let per_target = total.div_ceil(3);
    let settings = Settings::new(per_target);
    println!("fuzz: {total} cases from seed {} (FUZZ_SEED), {per_target} per target", settings.seed);
    let started = Instant::now();
    let target = ingest::IngestTarget::start(settings.hang);
    let (ingest, filters, templates) = std::thread::scope(|scope| {
        // Ingest waits on the server and the disk, the others on the CPU: run them side by side.
        let ingest = scope.spawn(|| ingest_run(&target, &settings));
        let filters = scope.spawn(|| fuzz::run_isolated("filters", &settings, filters::case(), filters::check));
        let templates = fuzz::run_isolated("templates", &settings, templates::case(), templates::check);
        (ingest.join().expect("ingest run"), filters.join().expect("filters run"), templates)
    });
    let mut failed = false;
    for report in [&ingest, &filters, &templates] {
        println!("{report}");
        failed |= report.failure.is_some();
    }
    match target.healthy().and_then(|()| target.settle(Duration::from_secs(300))) {
        Ok(delivered) => {
            println!("after the run: /healthz answers 200; all {delivered} deliveries of fuzzed events finished")
        }
        Err(e) => {
            println!("after the run: {e}");
            failed = true;
        }
    }
    target.stop();
    let cases = ingest.cases + filters.cases + templates.cases;
    let failures = [&ingest, &filters, &templates].iter().filter(|r| r.failure.is_some()).count();
    println!("total: {cases} cases in {:.1} s, {failures} failures", started.elapsed().as_secs_f64());
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The ingest cases, split over [`INGEST_CLIENTS`] runners with seeds of their own.
fn ingest_run(target: &ingest::IngestTarget, settings: &Settings) -> Report {
    let cases = settings.cases.div_ceil(INGEST_CLIENTS);
    let reports = std::thread::scope(|scope| {
        let runners: Vec<_> = (0..u64::from(INGEST_CLIENTS))
            .map(|i| {
                let settings = Settings { cases, ..settings.clone() }.with_seed(settings.seed.wrapping_add(i));
                scope.spawn(move || fuzz::run("ingest", &settings, ingest::case(), |case| target.check(case)))
            })
            .collect();
        runners.into_iter().map(|r| r.join().expect("ingest runner")).collect()
    });
    Report::combine(reports).expect("at least one runner")
}
