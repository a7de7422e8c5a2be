//! Connector versions over their life: settings and fields are checked
//! against the schemas a connector declares when saved; an upload says what
//! it would refuse and cannot break connections following `latest`; a
//! version asking for more waits for an admin; staged rollout serves a
//! stable share and rolls a failing version back on its own; a connector
//! cannot carry a secret to a host its connection does not allow.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_tests::build::component;
use switchboard_tests::host::{TestHost, Ws};
use switchboard_tests::receiver::{Receiver, reply};

const V1: &str = "switchboard-fixture-echo-v1";
const SECRET: &str = "tok_live_8d3f0a9b7c6e5d4f3a2b1c0d";

/// An echo connection on `version` posting to `url`, and a rule sending
/// `order.paid` to it; the connection's id.
async fn echo_route(host: &TestHost, ws: &Ws, url: &str, version: &str, extra: Value) -> String {
    let mut settings = json!({"url": url});
    settings.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    host.route(
        ws,
        json!({"connector": "echo", "name": "echo", "version": version, "settings": settings}),
        json!({"event": "order.paid", "action": "send"}),
    )
    .await
}

/// The version that delivered each request the receiver saw.
fn versions(receiver: &Receiver) -> Vec<String> {
    receiver.requests().iter().map(|c| c.json()["version"].as_str().unwrap_or_default().to_string()).collect()
}

/// Emit `order.paid` and wait until all its deliveries settled; the event.
async fn emit_and_settle(host: &TestHost, ws: &Ws) -> Value {
    let id = host.emit_event(ws, "order.paid", json!({"n": 1})).await;
    host.settled_event(ws, &id).await
}

/// The attempts of the only delivery of `event`.
async fn attempts_of(host: &TestHost, ws: &Ws, event: &Value) -> Vec<Value> {
    host.only_delivery_attempts(ws, event["id"].as_str().unwrap()).await
}

#[tokio::test]
async fn settings_and_fields_are_checked_against_the_declared_schemas_naming_the_path() {
    let host = TestHost::start().await;
    let ws = host.workspace("schemas").await;
    let path = format!("/api/v1/workspaces/{}/connections", ws.id);
    let (status, body) = host
        .raw(
            Method::POST,
            &path,
            Some(&ws.secret),
            Some(
                json!({"connector": "webhook", "name": "w", "settings": {"url": "http://127.0.0.1:9/", "colour": "red"},
                        "secrets": {"signing_secret": switchboard_tests::WEBHOOK_SECRET}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"]["path"], "settings.colour", "{body}");

    let (status, body) = host
        .raw(
            Method::POST,
            &path,
            Some(&ws.secret),
            Some(json!({"connector": "echo", "version": "1.0.0", "name": "e", "settings": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"]["path"], "settings.url", "{body}");

    let crm = host
        .connection(
            &ws,
            json!({"connector": "hubspot", "name": "crm", "settings": {}, "secrets": {"access_token": SECRET}}),
        )
        .await;
    let rules = format!("/api/v1/workspaces/{}/rules", ws.id);
    let rule = |fields: Value| json!({"event": "user.signed_up", "connection": crm, "action": "upsert_contact", "fields": fields});
    let (status, body) =
        host.raw(Method::POST, &rules, Some(&ws.secret), Some(rule(json!({"email": "{{ payload.email }}"})))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a required field is missing: {body}");
    assert_eq!(body["details"]["path"], "fields.properties", "{body}");
    // Templates are judged by shape until an event renders them.
    let ok = rule(json!({"email": "{{ payload.email }}", "properties": {"plan": "{{ payload.plan }}"}}));
    let (status, body) = host.raw(Method::POST, &rules, Some(&ws.secret), Some(ok)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn connections_pin_latest_an_exact_version_or_a_semver_requirement() {
    let receiver = Receiver::answering(204, "").await;
    let host = TestHost::start_with_connectors(&[V1], |_| {}).await;
    let ws = host.workspace("pins").await;
    let (status, _) = host.upload("echo", "", component("switchboard-fixture-echo-v2")).await;
    assert_eq!(status, StatusCode::CREATED);
    echo_route(&host, &ws, &receiver.url("/req"), "^1", json!({})).await;
    echo_route(&host, &ws, &receiver.url("/latest"), "latest", json!({})).await;
    emit_and_settle(&host, &ws).await;
    let mut seen: Vec<(String, String)> = receiver
        .requests()
        .iter()
        .map(|c| (c.path().to_string(), c.json()["version"].as_str().unwrap().into()))
        .collect();
    seen.sort();
    assert_eq!(seen, [("/latest".into(), "2.0.0".into()), ("/req".into(), "1.0.0".into())]);

    let path = format!("/api/v1/workspaces/{}/connections", ws.id);
    let bad = json!({"connector": "echo", "name": "e", "version": "newest", "settings": {"url": receiver.url("/")}});
    let (status, body) = host.raw(Method::POST, &path, Some(&ws.secret), Some(bad)).await;
    assert_eq!(
        (status, body["details"]["path"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("version")),
        "{body}"
    );
}

#[tokio::test]
async fn an_upload_that_would_break_a_latest_connection_leaves_it_on_its_version_and_says_so() {
    let receiver = Receiver::answering(204, "").await;
    let host = TestHost::start_with_connectors(&[V1], |_| {}).await;
    let ws = host.workspace("upgrades").await;
    let old = echo_route(&host, &ws, &receiver.url("/old"), "latest", json!({})).await;
    let ready = echo_route(&host, &ws, &receiver.url("/ready"), "latest", json!({"channel": "ops"})).await;

    // v3 makes `channel` a required setting.
    let (status, body) = host.upload("echo", "", component("switchboard-fixture-echo-v3")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], "3.0.0");
    assert_eq!(body["state"], "live");
    let report = &body["compatibility"];
    assert_eq!(report["held_back"], json!([old]), "{report}");
    let [refused] = &report["refused_connections"].as_array().unwrap()[..] else { panic!("one refused: {report}") };
    assert_eq!(refused["connection"], old.as_str());
    assert_eq!(refused["errors"][0]["path"], "settings.channel", "{refused}");
    assert!(!report.to_string().contains(&ready), "the fitting connection is not mentioned: {report}");

    emit_and_settle(&host, &ws).await;
    let mut seen: Vec<(String, String)> = receiver
        .requests()
        .iter()
        .map(|c| (c.path().to_string(), c.json()["version"].as_str().unwrap().into()))
        .collect();
    seen.sort();
    assert_eq!(seen, [("/old".into(), "1.0.0".into()), ("/ready".into(), "3.0.0".into())], "held back, and moved on");
    let enabled = host.get(&format!("/api/v1/workspaces/{}/connectors", ws.id)).await;
    let listed = enabled["records"][0]["connections"].as_array().unwrap().clone();
    let held = listed.iter().find(|c| c["connection"] == old.as_str()).unwrap();
    assert_eq!(
        (held["resolved_version"].as_str(), held["held_back_from"].as_str()),
        (Some("1.0.0"), Some("3.0.0")),
        "{held}"
    );
}

#[tokio::test]
async fn a_connector_cannot_carry_a_secret_to_a_host_its_connection_does_not_allow() {
    let own = Receiver::answering(204, "").await;
    let thief = Receiver::answering(204, "").await;
    let host = TestHost::start_with_connectors(&[V1, "switchboard-fixture-echo-v4"], |_| {}).await;
    let ws = host.workspace("exfil").await;
    // v4 declares any host and sends its `token` secret wherever the `to` field says.
    let conn = host
        .connection(
            &ws,
            json!({"connector": "echo", "name": "wide", "version": "4.0.0", "settings": {"url": own.url("/in")},
                   "secrets": {"token": SECRET}}),
        )
        .await;
    // The thief listens on the same machine under another name: `localhost`, not the connection's `127.0.0.1`.
    let elsewhere = thief.url("/steal").replace("127.0.0.1", "localhost");
    host.rule(&ws, json!({"event": "order.paid", "connection": conn, "action": "send", "fields": {"to": elsewhere}}))
        .await;
    let event = emit_and_settle(&host, &ws).await;
    assert_eq!(event["status"], "failed", "{event}");
    let attempts = attempts_of(&host, &ws, &event).await;
    let record = attempts.last().unwrap();
    assert!(
        record["error"].as_str().unwrap_or_default().contains("a secret may not be sent to host `localhost`"),
        "{record}"
    );
    assert!(thief.requests().is_empty(), "nothing reached the other host");
    assert!(!record.to_string().contains(SECRET));

    // To the connection's own host, the same request carries the secret.
    let ws2 = host.workspace("own").await;
    let conn = host
        .connection(
            &ws2,
            json!({"connector": "echo", "name": "wide", "version": "4.0.0", "settings": {"url": own.url("/in")},
                   "secrets": {"token": SECRET}}),
        )
        .await;
    host.rule(
        &ws2,
        json!({"event": "order.paid", "connection": conn, "action": "send", "fields": {"to": own.url("/token")}}),
    )
    .await;
    assert_eq!(emit_and_settle(&host, &ws2).await["status"], "completed");
    let sent = &own.requests()[0];
    assert_eq!(sent.header("x-token"), Some(SECRET));
}

#[tokio::test]
async fn a_version_asking_for_more_hosts_and_secrets_waits_for_approval_then_serves() {
    let receiver = Receiver::answering(204, "").await;
    let host = TestHost::start_with_connectors(&[V1], |_| {}).await;
    let ws = host.workspace("approval").await;
    echo_route(&host, &ws, &receiver.url("/in"), "latest", json!({})).await;

    let (status, body) = host.upload("echo", "", component("switchboard-fixture-echo-v4")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["state"], "pending_approval", "{body}");
    assert_eq!(body["widened"], json!({"hosts": ["*"], "secrets": ["token"]}), "{body}");
    emit_and_settle(&host, &ws).await;
    assert_eq!(versions(&receiver), ["1.0.0"], "still on the approved version");

    let approved =
        host.admin(Method::POST, "/api/v1/connectors/echo/versions/4.0.0/approve", None, StatusCode::OK).await;
    assert_eq!((approved["state"].as_str(), approved["approved"].as_bool()), (Some("live"), Some(true)), "{approved}");
    emit_and_settle(&host, &ws).await;
    assert_eq!(versions(&receiver), ["1.0.0", "4.0.0"]);
    let listed = host.get("/api/v1/connectors/echo/versions").await;
    assert_eq!(listed["records"][1]["state"], "live", "{listed}");

    // The decision outlives a restart.
    let host = host.restart().await;
    assert_eq!(host.get("/api/v1/connectors/echo/versions").await["records"][1]["approved"], true);
}

/// Where a connection falls in every rollout: as the server computes it.
fn bucket(connection: &str) -> u8 {
    let digest = Sha256::digest(connection.as_bytes());
    (u64::from_be_bytes(digest[..8].try_into().unwrap()) % 100) as u8
}

#[tokio::test]
async fn a_rollout_at_half_moves_the_stable_half_of_twenty_latest_connections() {
    let receiver = Receiver::answering(204, "").await;
    let host = TestHost::start_with_connectors(&[V1], |_| {}).await;
    let ws = host.workspace("rollout").await;
    let mut connections = Vec::new();
    for i in 0..20 {
        connections.push(echo_route(&host, &ws, &receiver.url(&format!("/c{i}")), "latest", json!({})).await);
    }
    let (status, body) = host.upload("echo", "?rollout=0", component("switchboard-fixture-echo-v2")).await;
    assert_eq!((status, body["state"].as_str()), (StatusCode::CREATED, Some("rolling_out")), "{body}");
    emit_and_settle(&host, &ws).await;
    assert!(versions(&receiver).iter().all(|v| v == "1.0.0"), "0 %: nobody moves");

    let status = host
        .admin(
            Method::POST,
            "/api/v1/connectors/echo/versions/2.0.0/rollout",
            Some(json!({"percent": 50})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(status["rollout_percent"], 50);
    let before = receiver.requests().len();
    emit_and_settle(&host, &ws).await;
    let calls = receiver.requests();
    let moved: Vec<String> =
        calls[before..].iter().filter(|c| c.json()["version"] == "2.0.0").map(|c| c.path().to_string()).collect();
    let expected: Vec<String> = (0..20).filter(|i| bucket(&connections[*i]) < 50).map(|i| format!("/c{i}")).collect();
    let mut moved_sorted = moved.clone();
    moved_sorted.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(moved_sorted, expected_sorted, "exactly the connections whose bucket is under 50");
    assert!((4..=16).contains(&moved.len()), "about half of 20: {}", moved.len());
}

#[tokio::test]
async fn a_version_failing_more_than_its_predecessor_is_rolled_back_with_an_alert() {
    // The destination refuses whatever 2.0.0 sends.
    let receiver =
        Receiver::start(
            |call| if call.json()["version"] == "2.0.0" { reply(400, &[], "bad") } else { reply(204, &[], "") },
        )
        .await;
    let inbox = Receiver::answering(204, "").await;
    let mut host = TestHost::start_with_connectors(&[V1], |c| c.registry.rollback_min_attempts = 5).await;
    let operators = host.workspace("operators").await;
    host.config.alerts.workspace = Some(operators.id.clone());
    let host = host.restart().await;
    host.webhook_route(
        &operators,
        &inbox.url("/alerts"),
        json!({"event": "switchboard.connector.rolled_back", "action": "send_webhook"}),
    )
    .await;
    let ws = host.workspace("tenant").await;
    for i in 0..4 {
        echo_route(&host, &ws, &receiver.url(&format!("/c{i}")), "latest", json!({})).await;
    }
    host.upload("echo", "?rollout=100", component("switchboard-fixture-echo-v2")).await;
    for _ in 0..3 {
        emit_and_settle(&host, &ws).await;
    }
    host.wait_until("2.0.0 is rolled back", || async {
        host.get("/api/v1/connectors/echo/versions").await["records"][1]["state"] == "rolled_back"
    })
    .await;
    let before = receiver.requests().len();
    emit_and_settle(&host, &ws).await;
    assert!(receiver.requests()[before..].iter().all(|c| c.json()["version"] == "1.0.0"), "back on 1.0.0");

    host.wait_until("the alert is delivered", || async { !inbox.requests().is_empty() }).await;
    let alert = inbox.requests()[0].json();
    assert_eq!(alert["type"], "switchboard.connector.rolled_back", "{alert}");
    assert_eq!(alert["data"]["version"], "2.0.0", "{alert}");
    assert_eq!(alert["data"]["previous_version"], "1.0.0", "{alert}");
}

#[tokio::test]
async fn every_attempt_names_the_bytes_that_ran() {
    let receiver = Receiver::answering(204, "").await;
    let host = TestHost::start_with_connectors(&[V1], |_| {}).await;
    let ws = host.workspace("sha").await;
    echo_route(&host, &ws, &receiver.url("/in"), "latest", json!({})).await;
    let event = emit_and_settle(&host, &ws).await;
    let attempts = attempts_of(&host, &ws, &event).await;
    let listed = host.get("/api/v1/connectors/echo/versions").await;
    let sha = listed["records"][0]["component_sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    assert_eq!(attempts[0]["component_sha256"], sha.as_str());
    assert_eq!(attempts[0]["connector_version"], "1.0.0");
}
