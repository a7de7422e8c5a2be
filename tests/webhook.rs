//! The webhook connector, in the real sandbox, against a receiver that
//! verifies signatures the way the Standard Webhooks reference verifier does.

use std::sync::{Arc, Mutex};

use serde_json::json;
use switchboard::outcome::Outcome;
use switchboard::runtime::{Labels, LoadedConnector, Runtime};
use switchboard_tests::WEBHOOK_SECRET as SECRET;
use switchboard_tests::receiver::{Receiver, reply};
use switchboard_tests::sandbox::{invocation, load, rejection, runtime};
use switchboard_tests::standard_webhooks::{VerifyError, verify, verify_call};

const WEBHOOK: &str = "switchboard-connector-webhook";

type Verdicts = Arc<Mutex<Vec<Result<(), VerifyError>>>>;

/// A receiver that answers 204 to a valid signature and 401 otherwise, and
/// the verdicts it reached.
async fn verifying_receiver() -> (Receiver, Verdicts) {
    let verdicts = Verdicts::default();
    let seen = verdicts.clone();
    let receiver = Receiver::start(move |r| {
        let verdict = verify_call(SECRET, r);
        let status = if verdict.is_ok() { 204 } else { 401 };
        seen.lock().unwrap().push(verdict);
        reply(status, &[], "")
    })
    .await;
    (receiver, verdicts)
}

/// The webhook connector in a sandbox that may reach loopback receivers.
async fn sandbox() -> (Runtime, LoadedConnector) {
    let rt = runtime(true);
    let webhook = load(&rt, WEBHOOK).await;
    (rt, webhook)
}

#[test]
fn the_reference_verifier_accepts_the_vectors_and_rejects_the_negative() {
    let text = std::fs::read_to_string(
        switchboard_tests::build::workspace_root().join("tests/vectors/standard-webhooks.json"),
    )
    .unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    for v in vectors["vectors"].as_array().unwrap() {
        let ts = v["timestamp"].as_i64().unwrap();
        let ok = verify(
            v["secret"].as_str().unwrap(),
            v["id"].as_str(),
            Some(&ts.to_string()),
            v["signature"].as_str(),
            v["body"].as_str().unwrap().as_bytes(),
            ts,
        );
        assert_eq!(ok, Ok(()), "{v}");
    }
    let first = &vectors["vectors"][0];
    let ts = first["timestamp"].as_i64().unwrap();
    let bad = verify(
        SECRET,
        first["id"].as_str(),
        Some(&ts.to_string()),
        vectors["negative"]["signature"].as_str(),
        first["body"].as_str().unwrap().as_bytes(),
        ts,
    );
    assert_eq!(bad, Err(VerifyError::NoMatchingSignature));
    let stale = verify(
        SECRET,
        first["id"].as_str(),
        Some(&ts.to_string()),
        first["signature"].as_str(),
        first["body"].as_str().unwrap().as_bytes(),
        ts + 301,
    );
    assert_eq!(stale, Err(VerifyError::TimestampOutOfTolerance));
}

#[tokio::test]
async fn delivers_a_signed_envelope_the_reference_verifier_accepts() {
    let (receiver, verdicts) = verifying_receiver().await;
    let (rt, webhook) = sandbox().await;
    assert_eq!(webhook.manifest().name, "webhook");
    let settings = json!({"url": receiver.url("/hooks/switchboard"), "headers": {"X-Team": "growth"}});
    let record = rt
        .invoke(
            &webhook,
            invocation("send_webhook", json!({}), settings, &[("signing_secret", SECRET)]),
            Labels::default(),
        )
        .await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(verdicts.lock().unwrap().as_slice(), [Ok(())]);
    let sent = &receiver.requests()[0];
    assert_eq!(sent.path_and_query, "/hooks/switchboard");
    assert_eq!(sent.header("webhook-id"), Some("dlv_01JTEST"), "webhook-id is the delivery id");
    assert_eq!(sent.header("x-team"), Some("growth"));
    assert_eq!(sent.header("authorization"), None, "no bearer token configured");
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["type"], "page.completed");
    assert_eq!(body["timestamp"], "2026-03-21T15:06:00Z");
    assert_eq!(body["data"]["sequence_step"], 3);
    let step = &record.steps[0];
    assert_eq!(step.request.method, "POST");
    assert_eq!(step.response.as_ref().unwrap().status, 204);
}

#[tokio::test]
async fn the_signature_is_stable_in_id_and_fresh_in_time_across_attempts() {
    let (receiver, verdicts) = verifying_receiver().await;
    let (rt, webhook) = sandbox().await;
    for attempt in 1..=2 {
        let mut inv = invocation(
            "send_webhook",
            json!({"body": {"custom": true}}),
            json!({"url": receiver.url("/h")}),
            &[("signing_secret", SECRET), ("bearer_token", "tok_live_1")],
        );
        inv.attempt = attempt;
        assert_eq!(rt.invoke(&webhook, inv, Labels::default()).await.outcome, Outcome::Delivered);
    }
    let sent = receiver.requests();
    assert_eq!(sent[0].header("webhook-id"), sent[1].header("webhook-id"));
    assert_eq!(sent[0].text(), r#"{"custom":true}"#);
    assert_eq!(sent[1].header("authorization"), Some("Bearer tok_live_1"));
    assert_eq!(verdicts.lock().unwrap().as_slice(), [Ok(()), Ok(())]);
}

#[tokio::test]
async fn a_wrong_secret_fails_verification_and_is_reported_as_auth() {
    let (receiver, verdicts) = verifying_receiver().await;
    let (rt, webhook) = sandbox().await;
    let inv = invocation(
        "send_webhook",
        json!({}),
        json!({"url": receiver.url("/h")}),
        &[("signing_secret", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")],
    );
    let record = rt.invoke(&webhook, inv, Labels::default()).await;
    assert_eq!(record.outcome, Outcome::AuthFailed);
    assert_eq!(verdicts.lock().unwrap().as_slice(), [Err(VerifyError::NoMatchingSignature)]);
}

#[tokio::test]
async fn receiver_failures_map_to_outcomes_with_retry_after() {
    let (rt, webhook) = sandbox().await;
    let cases = [
        (503, Some("7"), Outcome::RejectedServerError, Some(7000)),
        (429, Some("2"), Outcome::RateLimited, Some(2000)),
        (410, None, Outcome::RejectedClientError, None),
        (400, None, Outcome::RejectedClientError, None),
        (302, None, Outcome::RejectedClientError, None),
    ];
    for (status, retry_after, outcome, after_ms) in cases {
        let receiver = Receiver::start(move |_| match retry_after {
            Some(s) => reply(status, &[("Retry-After", s), ("Location", "/elsewhere")], "no"),
            None => reply(status, &[("Location", "/elsewhere")], "no"),
        })
        .await;
        let inv =
            invocation("send_webhook", json!({}), json!({"url": receiver.url("/h")}), &[("signing_secret", SECRET)]);
        let record = rt.invoke(&webhook, inv, Labels::default()).await;
        assert_eq!((record.outcome, record.retry_after_ms), (outcome, after_ms), "HTTP {status}: {record:#?}");
        assert_eq!(receiver.requests().len(), 1, "HTTP {status}: redirects are not followed");
    }
}

#[tokio::test]
async fn an_unreachable_receiver_is_a_network_error() {
    let (rt, webhook) = sandbox().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connection refused
    let inv = invocation(
        "send_webhook",
        json!({}),
        json!({"url": format!("http://127.0.0.1:{port}/h")}),
        &[("signing_secret", SECRET)],
    );
    let record = rt.invoke(&webhook, inv, Labels::default()).await;
    assert_eq!(record.outcome, Outcome::NetworkError, "{record:#?}");
}

#[tokio::test]
async fn settings_are_validated_by_the_connector() {
    let rt = runtime(false);
    let webhook = load(&rt, WEBHOOK).await;
    assert_eq!(rejection(rt.validate(&webhook, r#"{"url":"https://hooks.example.com/x"}"#).await), Ok(()));
    let refused = rejection(rt.validate(&webhook, r#"{"url":"https://x.io","method":"GET"}"#).await).unwrap_err();
    assert!(refused.contains("settings.method"), "{refused}");
}
