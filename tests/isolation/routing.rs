//! Routing limits: a rule's filter and templates are tenant code
//! run inside the host. A filter past its size, depth or list-length limit,
//! or a template that can build values without bound, is refused at save
//! with a 422 naming the path; a template that breaks a render bound only on
//! some events fails those deliveries as `mapping_error`. Either way the
//! process stays up and other workspaces' events keep flowing.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_tests::host::{ADMIN, TestHost, Ws};
use switchboard_tests::receiver::Receiver;

async fn save_rule(host: &TestHost, ws: &Ws, body: Value) -> (StatusCode, Value) {
    host.raw(Method::POST, &format!("/api/v1/workspaces/{}/rules", ws.id), Some(ADMIN), Some(body)).await
}

/// Saving `rule` must fail with 422 whose message and `error.path` name `path`.
async fn refused_at(host: &TestHost, ws: &Ws, rule: Value, path: &str) -> String {
    let (status, body) = save_rule(host, ws, rule).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["path"], path, "{body}");
    let message = body["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&format!("`{path}`")), "{message}");
    message
}

#[tokio::test]
async fn templates_that_can_build_values_without_bound_are_refused_at_save() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let conn = host.webhook_connection(&ws, "https://hooks.example.com/in").await;
    let rule =
        |body: &str| json!({"event": "e", "connection": conn, "action": "send_webhook", "fields": {"body": body}});

    // The probes: each once aborted the process on its first matching event.
    let message = refused_at(&host, &ws, rule("{{ [1] * 1000000000000000 }}"), "body").await;
    assert!(message.contains("`*` is not allowed"), "{message}");
    refused_at(&host, &ws, rule("{% set s = 'x' %}{% set s = s + s %}{{ s }}"), "body").await;
    refused_at(&host, &ws, rule("{{ (('x' ~ 'x') ~ ('x' ~ 'x')) ~ 'x' }}"), "body").await;

    // Refused by the dry render: it runs out of fuel on any event at all.
    let burn = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
    let message = refused_at(&host, &ws, rule(burn), "body").await;
    assert!(message.contains("fuel"), "{message}");

    // Updates are checked like creations.
    let id = host.rule(&ws, rule("{{ payload.email }}")).await;
    let path = format!("/api/v1/workspaces/{}/rules/{id}", ws.id);
    let (status, body) =
        host.raw(Method::PATCH, &path, Some(ADMIN), Some(json!({"fields": {"body": "{{ 'x' * 100000000 }}"}}))).await;
    assert_eq!((status, &body["error"]["path"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("body")), "{body}");

    // Ordinary templates pass the dry render although the sample payload is empty.
    host.rule(&ws, rule("onboarding-step-{{ payload.sequence_step + 1 }}")).await;
}

#[tokio::test]
async fn a_render_bound_broken_by_one_event_fails_only_that_delivery() {
    let receiver = Receiver::answering(200, "").await;
    let host = TestHost::start().await;
    let noisy = host.workspace("noisy").await;
    let quiet = host.workspace("quiet").await;
    let noisy_conn = host.webhook_connection(&noisy, &receiver.url("/noisy")).await;
    let quiet_conn = host.webhook_connection(&quiet, &receiver.url("/quiet")).await;
    // Harmless on the sample event, so saved; each breaks a bound on a large enough payload.
    let fields = json!({"body": {
        "big": "{% for i in range(2000) %}{{ payload.s }}{% endfor %}",
        "slow": "{% for x in payload.a %}{% if payload.a == payload.b %}{% endif %}{% endfor %}",
    }});
    host.rule(
        &noisy,
        json!({"event": "big", "connection": noisy_conn, "action": "send_webhook",
        "fields": {"body": fields["body"]["big"]}}),
    )
    .await;
    host.rule(
        &noisy,
        json!({"event": "slow", "connection": noisy_conn, "action": "send_webhook",
        "fields": {"body": fields["body"]["slow"]}}),
    )
    .await;
    host.rule(
        &quiet,
        json!({"event": "hello", "connection": quiet_conn, "action": "send_webhook",
        "fields": {"body": {"who": "{{ payload.who }}"}}}),
    )
    .await;

    let big = host.emit_event(&noisy, "big", json!({"s": "x".repeat(1000)})).await;
    let a: Vec<u32> = (0..18_000).collect();
    let mut b = a.clone();
    b[17_999] = 0;
    let slow = host.emit_event(&noisy, "slow", json!({"a": a, "b": b})).await;
    let hello = host.emit_event(&quiet, "hello", json!({"who": "quiet"})).await;

    for (event, why) in [(&big, "larger than 1048576 bytes"), (&slow, "took longer than 250 ms")] {
        assert_eq!(host.settled_event(&noisy, event).await["status"], "failed");
        let d = host.only_delivery(&noisy, event).await;
        assert_eq!(d["last_outcome"], "mapping_error", "{d}");
        assert!(d["last_error"].as_str().unwrap().contains(why), "{d}");
    }
    assert_eq!(host.settled_event(&quiet, &hello).await["status"], "completed");
    let paths: Vec<String> = receiver.requests().iter().map(|r| r.path_and_query.clone()).collect();
    assert_eq!(paths, ["/quiet"], "only the quiet workspace's event is delivered");
}

#[tokio::test]
async fn filters_past_their_limits_are_refused_at_save_naming_the_path() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let conn = host.webhook_connection(&ws, "https://hooks.example.com/in").await;
    let rule = |filter: Value| json!({"event": "e", "connection": conn, "action": "send_webhook", "filter": filter});

    let huge_in: Vec<u32> = (0..200_000).collect();
    let message = refused_at(&host, &ws, rule(json!({"payload": {"sku": {"$in": huge_in}}})), "payload.sku.$in").await;
    assert!(message.contains("at most 1000 items"), "{message}");
    let nin: Vec<u32> = (0..1001).collect();
    refused_at(&host, &ws, rule(json!({"payload": {"sku": {"$nin": nin}}})), "payload.sku.$nin").await;

    let deep = (0..40).fold(json!(1), |inner, _| json!({"a": inner}));
    let (status, body) = save_rule(&host, &ws, rule(json!({"payload": deep}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("deeper than 32"), "{body}");

    let (status, body) = save_rule(&host, &ws, rule(json!({"payload": {"note": "x".repeat(70_000)}}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("larger than 65536 bytes"), "{body}");
}

#[tokio::test]
async fn a_full_size_in_filter_against_a_large_payload_array_does_not_stall_ingest() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let conn = host.webhook_connection(&ws, "https://hooks.example.com/in").await;
    let skus: Vec<i64> = (1..=1000).map(|i| -i).collect();
    host.rule(
        &ws,
        json!({"event": "order", "connection": conn, "action": "send_webhook",
        "filter": {"payload": {"items": {"$in": skus}}}}),
    )
    .await;
    // About 240 KB, within the 256 KiB ingest limit: 40,000 items, none of them listed.
    let items: Vec<u32> = (0..40_000).collect();
    for _ in 0..3 {
        let started = Instant::now();
        host.emit_event(&ws, "order", json!({"items": items})).await;
        assert!(started.elapsed() < Duration::from_secs(2), "an emit took {:?}", started.elapsed());
    }
}
