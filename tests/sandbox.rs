//! The sandbox contains hostile connectors: every broken rule ends as a
//! defined outcome with a clear error, the host survives, and a normal
//! invocation right after succeeds.

use serde_json::json;
use switchboard::attempt::AttemptRecord;
use switchboard::outcome::Outcome;
use switchboard::runtime::{Labels, LoadedConnector, Runtime};
use switchboard_tests::receiver::{Receiver, reply};
use switchboard_tests::sandbox::{invocation, load, runtime};

const HOSTILE: &str = "switchboard-fixture-hostile";

async fn run(rt: &Runtime, c: &LoadedConnector, action: &str, url: &str) -> AttemptRecord {
    rt.invoke(c, invocation(action, json!({"url": url}), json!({}), &[]), Labels::default()).await
}

/// Run a hostile action, check its outcome and error, then prove the host is
/// healthy by delivering normally with the same runtime.
async fn contained(private: bool, action: &str, url: &str, outcome: Outcome, error_contains: &str) -> AttemptRecord {
    let rt = runtime(private);
    let hostile = load(&rt, HOSTILE).await;
    let record = run(&rt, &hostile, action, url).await;
    assert_eq!(record.outcome, outcome, "{action}: {record:#?}");
    let error = record.error.clone().unwrap_or_default();
    assert!(error.contains(error_contains), "{action}: error `{error}` should mention `{error_contains}`");

    let ok_receiver = Receiver::answering(200, "ok").await;
    let healthy = runtime(true);
    let after = run(&healthy, &load(&healthy, HOSTILE).await, "ok", &ok_receiver.url("/after")).await;
    assert_eq!(after.outcome, Outcome::Delivered, "a normal invocation after `{action}`: {after:#?}");
    let again = run(&rt, &hostile, if private { "ok" } else { "panic" }, &ok_receiver.url("/same-runtime")).await;
    assert!(private || again.outcome == Outcome::ConnectorError, "the same runtime keeps working after `{action}`");
    record
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_cpu_budget() {
    contained(false, "spin", "", Outcome::ConnectorError, "CPU budget of 100ms").await;
}

#[tokio::test]
async fn a_1_gib_allocation_hits_the_memory_limit() {
    contained(false, "alloc", "", Outcome::ConnectorError, "memory limit of 32 MiB").await;
}

#[tokio::test]
async fn unbounded_recursion_is_a_stack_overflow() {
    contained(false, "recurse", "", Outcome::ConnectorError, "stack overflow").await;
}

#[tokio::test]
async fn a_panic_is_a_connector_error() {
    contained(false, "panic", "", Outcome::ConnectorError, "panicked or aborted").await;
}

#[tokio::test]
async fn more_than_ten_requests_are_refused() {
    let receiver = Receiver::answering(200, "ok").await;
    let record =
        contained(true, "send_many", &receiver.url("/many"), Outcome::ConnectorError, "more than 10 HTTP requests")
            .await;
    assert_eq!(receiver.requests().len(), 10, "the 11th request never left the host");
    assert_eq!(record.steps.len(), 11, "ten sent plus the refused one are recorded");
}

#[tokio::test]
async fn an_oversized_request_body_is_never_sent() {
    let receiver = Receiver::answering(200, "ok").await;
    contained(true, "big_body", &receiver.url("/big"), Outcome::ConnectorError, "exceeds the 1048576 byte limit").await;
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn loopback_is_refused_when_private_networks_are_not_allowed() {
    let receiver = Receiver::answering(200, "ok").await;
    contained(false, "send_to", &receiver.url("/private"), Outcome::EgressDenied, "127.0.0.1 is a loopback address")
        .await;
    assert!(receiver.requests().is_empty(), "nothing reached the loopback receiver");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_too() {
    let receiver = Receiver::answering(200, "ok").await;
    let url = format!("http://localhost:{}/dns", receiver.addr.port());
    contained(false, "send_to", &url, Outcome::EgressDenied, "resolves to a refused address").await;
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn the_cloud_metadata_address_is_refused() {
    contained(false, "send_to", "http://169.254.169.254/latest/meta-data/", Outcome::EgressDenied, "metadata").await;
}

#[tokio::test]
async fn hosts_outside_the_allowed_list_are_refused() {
    contained(
        true,
        "send_to",
        "https://not-allowed.example/x",
        Outcome::EgressDenied,
        "not in the connector's allowed hosts",
    )
    .await;
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_not_followed_and_is_recorded() {
    let receiver =
        Receiver::start(|_| reply(302, &[("Location", "http://169.254.169.254/latest/meta-data/")], "")).await;
    let record = contained(
        true,
        "send_to",
        &receiver.url("/redirect"),
        Outcome::EgressDenied,
        "redirect to http://169.254.169.254",
    )
    .await;
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(record.steps.len(), 1, "the redirect was not followed");
    assert_eq!(record.steps[0].response.as_ref().map(|r| r.status), Some(302));
}

fn observed(record: &AttemptRecord) -> String {
    record
        .logs
        .iter()
        .map(|l| l.message.as_str())
        .find(|m| m.starts_with("observed:"))
        .expect("the probe logged")
        .to_string()
}

#[tokio::test]
async fn wasi_gives_no_files() {
    let record = contained(false, "wasi_file", "", Outcome::ConnectorError, "panicked").await;
    let seen = observed(&record);
    assert!(!seen.contains("DATA") && seen.matches("Err(").count() == 3, "{seen}");
}

#[tokio::test]
async fn wasi_gives_no_environment_or_arguments() {
    let record = contained(false, "wasi_env", "", Outcome::ConnectorError, "panicked").await;
    assert!(observed(&record).contains("env vars: 0; args: 0"), "{}", observed(&record));
}

#[tokio::test]
async fn wasi_sockets_are_refused() {
    let record = contained(true, "wasi_socket", "", Outcome::ConnectorError, "panicked").await;
    let seen = observed(&record);
    assert!(!seen.contains("DATA") && seen.matches("PermissionDenied").count() == 2, "{seen}");
}

#[tokio::test]
async fn connector_logs_are_bounded() {
    let rt = runtime(false);
    let record = run(&rt, &load(&rt, HOSTILE).await, "log_flood", "").await;
    assert_eq!(record.logs.len(), 100);
    assert!(record.logs.iter().all(|l| l.message.len() <= 2048 + '…'.len_utf8()));
}

#[tokio::test]
async fn a_non_component_is_refused_with_a_clear_error() {
    let rt = runtime(false);
    let err = rt.load(b"\0asm\x01\0\0\0").await.unwrap_err().to_string();
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
    let err = rt.load(b"hello").await.unwrap_err().to_string();
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
}

#[tokio::test]
async fn hostile_invocations_run_concurrently_without_disturbing_a_normal_one() {
    let rt = runtime(true);
    let hostile = load(&rt, HOSTILE).await;
    let receiver = Receiver::answering(200, "ok").await;
    let bad = ["spin", "alloc", "recurse", "panic"].map(|a| {
        let (rt, c) = (rt.clone(), hostile.clone());
        tokio::spawn(async move { run(&rt, &c, a, "").await.outcome })
    });
    let good = run(&rt, &hostile, "ok", &receiver.url("/ok")).await;
    assert_eq!(good.outcome, Outcome::Delivered);
    for b in bad {
        assert_eq!(b.await.unwrap(), Outcome::ConnectorError);
    }
}
