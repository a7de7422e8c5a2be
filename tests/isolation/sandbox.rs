//! What one invocation may do with host calls and WASI. A send
//! past `max_requests` or a `log` call past 1,000 ends the invocation at once
//! as `connector_error`, naming the cap; cache writes past 100 are ignored
//! and a loop of them ends at the CPU budget. WASI's clocks are frozen at the
//! attempt's start, so a guest cannot time anything; WASI random is the
//! host's, unpredictable.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::attempt::{AttemptRecord, StepError};
use switchboard::outcome::Outcome;
use switchboard::runtime::{Labels, LoadedConnector, Runtime};
use switchboard_tests::receiver::Receiver;
use switchboard_tests::sandbox::{invocation, load, runtime};

const HOSTILE: &str = "switchboard-fixture-hostile";

/// Far below the 30 s wall budget: the loop was stopped by a cap, not waited out.
const PROMPTLY: Duration = Duration::from_secs(5);

async fn run(rt: &Runtime, hostile: &LoadedConnector, action: &str, url: &str) -> (AttemptRecord, Duration) {
    let started = Instant::now();
    let record = rt.invoke(hostile, invocation(action, json!({"url": url}), json!({}), &[]), Labels::default()).await;
    (record, started.elapsed())
}

/// Run one of the hostile loops, which must be ended well within `PROMPTLY`.
async fn ended_promptly(rt: &Runtime, action: &str, url: &str) -> AttemptRecord {
    let (record, took) = run(rt, &load(rt, HOSTILE).await, action, url).await;
    assert!(took < PROMPTLY, "ran {took:?}");
    record
}

#[tokio::test]
async fn a_send_past_the_request_cap_ends_the_invocation_and_never_leaves_the_host() {
    let receiver = Receiver::answering(200, "ok").await;
    let rt = runtime(true);
    let max = rt.limits().max_requests as usize;
    let record = ended_promptly(&rt, "send_loop", &receiver.url("/loop")).await;

    assert_eq!(record.outcome, Outcome::ConnectorError, "{record:#?}");
    let error = record.error.as_deref().unwrap_or_default();
    assert!(error.contains(&format!("tried to send more than {max} HTTP requests")), "{error}");
    assert!(!error.contains("CPU budget"), "it ended at the cap, not at the budget: {error}");
    assert_eq!(receiver.requests().len(), max, "exactly the allowed requests reached the receiver");
    assert_eq!(record.steps.len(), max + 1, "the allowed requests and the refused one are recorded");
    assert!(matches!(record.steps[max].error, Some(StepError::LimitExceeded(_))), "{:?}", record.steps[max]);
}

#[tokio::test]
async fn refused_sends_count_towards_the_request_cap() {
    let rt = runtime(true);
    let max = rt.limits().max_requests as usize;
    let record = ended_promptly(&rt, "send_loop", "https://not-allowed.example/x").await;

    // The first broken rule explains the attempt; the cap is what ended it.
    assert_eq!(record.outcome, Outcome::EgressDenied, "{record:#?}");
    assert_eq!(record.steps.len(), max + 1, "{:#?}", record.steps);
    assert!(record.steps[..max].iter().all(|s| matches!(s.error, Some(StepError::Denied(_)))));
    assert!(matches!(record.steps[max].error, Some(StepError::LimitExceeded(_))), "{:?}", record.steps[max]);
}

#[tokio::test]
async fn a_log_call_past_a_thousand_ends_the_invocation_and_the_record_keeps_a_hundred_lines() {
    let rt = runtime(false);
    let record = ended_promptly(&rt, "log_loop", "").await;

    assert_eq!(record.outcome, Outcome::ConnectorError, "{record:#?}");
    let error = record.error.as_deref().unwrap_or_default();
    assert!(error.contains("logged more than 1000 lines in one invocation"), "{error}");
    assert_eq!(record.logs.len(), 100, "99 lines and a note");
    for (i, line) in record.logs[..99].iter().enumerate() {
        assert_eq!(line.message, format!("line {i}"));
    }
    let note = &record.logs[99];
    assert_eq!(note.level, "warn");
    assert_eq!(note.message, "901 more log lines not recorded (an attempt keeps the first 99)");
}

#[tokio::test]
async fn a_loop_of_cache_writes_ends_and_only_the_first_hundred_count() {
    let rt = runtime(true);
    let record = ended_promptly(&rt, "cache_loop", "").await;
    assert_eq!(record.outcome, Outcome::ConnectorError, "{record:#?}");
    assert!(record.error.as_deref().unwrap_or_default().contains("CPU budget"), "{record:#?}");
    assert!(
        record.logs.iter().any(|l| l.message.contains("more than 100 writes")),
        "the cap is reported once in the attempt's log: {:?}",
        record.logs
    );
}

/// What the `clock_and_random` probe observed, from its summary.
async fn probe(rt: &Runtime, hostile: &LoadedConnector) -> Value {
    let (record, _) = run(rt, hostile, "clock_and_random", "").await;
    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    serde_json::from_str(record.summary.as_deref().unwrap_or_default()).expect("the probe reports JSON")
}

#[tokio::test]
async fn wasi_clocks_read_the_attempt_time_and_never_move() {
    let rt = runtime(false);
    let seen = probe(&rt, &load(&rt, HOSTILE).await).await;

    let attempt_time = seen["attempt_time"].as_i64().expect("attempt_time");
    let now = jiff::Timestamp::now().as_second();
    assert!((now - 5..=now).contains(&attempt_time), "attempt-time is the real start of the attempt: {seen}");
    assert_eq!(seen["wall_before"], json!([attempt_time, 0]), "the wall clock is the attempt-time: {seen}");
    assert_eq!(seen["wall_after"], seen["wall_before"], "the wall clock does not move: {seen}");
    assert_eq!(seen["monotonic_elapsed_ns"], 0, "the monotonic clock does not move: {seen}");
}

#[tokio::test]
async fn wasi_random_is_unpredictable() {
    let rt = runtime(false);
    let hostile = load(&rt, HOSTILE).await;
    let (first, second) = (probe(&rt, &hostile).await, probe(&rt, &hostile).await);

    let random = |seen: &Value| -> Vec<u64> {
        seen["random"].as_array().expect("random").iter().map(|v| v.as_u64().expect("u64")).collect()
    };
    let (a, b) = (random(&first), random(&second));
    assert_ne!(a[0], a[1], "two draws in one invocation differ: {first}");
    assert!(!a.contains(&b[0]) && !a.contains(&b[1]), "another invocation draws other numbers: {a:?} {b:?}");
    assert_ne!(first["hash"], second["hash"], "std's HashMap seed differs between invocations too");
}
