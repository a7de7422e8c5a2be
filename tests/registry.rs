//! The connector registry: uploads are validated in the
//! sandbox before anything is kept, versions only go up, a pinned version
//! cannot be deleted, and uploaded versions survive a restart without being
//! compiled again.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_tests::build::component;
use switchboard_tests::host::{ADMIN, TestHost};

async fn put(host: &TestHost, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .put(format!("{}/api/v1/connectors/{name}", host.url))
        .bearer_auth(ADMIN)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A host whose bundled connectors are only the webhook, so `hostile` can
/// be uploaded. The directory lives as long as the returned guard.
async fn host_with_webhook_only() -> (TestHost, tempfile::TempDir) {
    let bundled = tempfile::tempdir().unwrap();
    std::fs::write(bundled.path().join("webhook.wasm"), component("switchboard-connector-webhook")).unwrap();
    let dir = bundled.path().to_path_buf();
    (TestHost::start_with(|c| c.connectors_dir = Some(dir)).await, bundled)
}

#[tokio::test]
async fn bad_uploads_are_refused_naming_the_fault_and_register_nothing() {
    let (host, _bundled) = host_with_webhook_only().await;
    let before = host.get("/api/v1/connectors").await;
    let cases = [
        (
            "hostile",
            b"not a component at all".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a valid WebAssembly component",
        ),
        (
            "other",
            component("switchboard-connector-webhook"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "describes itself as `webhook`, not `other`",
        ),
        ("webhook", component("switchboard-connector-webhook"), StatusCode::CONFLICT, "already has version 0.1.0"),
        ("hostile", vec![0u8; (10 << 20) + 1], StatusCode::PAYLOAD_TOO_LARGE, "at most 10485760 bytes"),
        ("hostile", Vec::new(), StatusCode::BAD_REQUEST, "component's bytes"),
        (
            "spinner",
            component("switchboard-fixture-bad-describe"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "describe failed: exceeded the guest CPU budget",
        ),
        (
            "greeter",
            component("switchboard-fixture-other-world"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "does not implement the switchboard:connector world",
        ),
    ];
    for (name, bytes, status, message) in cases {
        let (got, body) = put(&host, name, bytes).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(body["message"].as_str().unwrap_or_default().contains(message), "{name}: {body}");
    }
    assert_eq!(host.get("/api/v1/connectors").await, before, "nothing registered");
    let (status, _) = host.raw(Method::GET, "/api/v1/connectors", Some("mesh_sec_nope"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_uploaded_version_is_live_pinned_versions_stay_and_restarts_compile_nothing() {
    let (host, _bundled) = host_with_webhook_only().await;
    let (status, body) = put(&host, "hostile", component("switchboard-fixture-hostile")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["name"].as_str(), body["version"].as_str()), (Some("hostile"), Some("0.1.0")));

    // Live at once: a connection can use it, pinned to the exact version.
    let ws = host.workspace("authors").await;
    let conn = host.connection(&ws, json!({"connector": "hostile", "version": "0.1.0", "name": "pinned"})).await;
    let enabled = host.get(&format!("/api/v1/workspaces/{}/connectors", ws.id)).await;
    assert_eq!(enabled["records"][0]["connector"], "hostile");
    assert_eq!(enabled["records"][0]["connections"][0]["resolved_version"], "0.1.0");
    assert_eq!(enabled["records"][0]["connections"][0]["active"], true);

    let (status, body) = host.raw(Method::DELETE, "/api/v1/connectors/hostile/versions/0.1.0", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "pinned: {body}");
    assert!(body["message"].as_str().unwrap().contains(&conn));

    // A restart loads the upload from the data dir, from compiled artifacts.
    let host = host.restart().await;
    let versions = host.get("/api/v1/connectors/hostile/versions").await;
    assert_eq!(versions["records"][0]["origin"], "uploaded");
    for name in ["hostile", "webhook"] {
        let v = host.get(&format!("/api/v1/connectors/{name}/versions")).await;
        assert_eq!(v["records"][0]["artifact"], "cached", "{name} was not compiled again");
    }
    host.admin(
        Method::DELETE,
        &format!("/api/v1/workspaces/{}/connections/{conn}", ws.id),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let (status, _) = host.raw(Method::DELETE, "/api/v1/connectors/hostile/versions/0.1.0", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let host = host.restart().await;
    let (status, _) = host.raw(Method::GET, "/api/v1/connectors/hostile/versions", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted version stays deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_takes_over_the_next_delivery_while_running_and_pinned_ones_stay() {
    use std::time::{Duration, Instant};
    use switchboard_tests::receiver::{Receiver, reply};

    let (host, _bundled) = host_with_webhook_only().await;
    let (status, body) = put(&host, "echo", component("switchboard-fixture-echo-v1")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let fast = Receiver::answering(204, "").await;
    let slow = Receiver::start_delayed(Duration::from_millis(1500), |_| reply(204, &[], "")).await;
    let ws = host.workspace("swap").await;
    let mut conns = Vec::new();
    for (name, version, url) in [
        ("latest", "latest", fast.url("/latest")),
        ("pinned", "1.0.0", fast.url("/pinned")),
        ("slow", "latest", slow.url("/slow")),
    ] {
        let body = json!({"connector": "echo", "version": version, "name": name, "settings": {"url": url}});
        conns.push(host.connection(&ws, body).await);
    }
    host.rule(&ws, json!({"event": "tick", "connection": conns[0], "action": "send"})).await;
    host.rule(&ws, json!({"event": "tick", "connection": conns[1], "action": "send"})).await;
    host.rule(&ws, json!({"event": "slow", "connection": conns[2], "action": "send"})).await;

    // A slow attempt is in flight on v1 when v2 arrives.
    let slow_event = host.emit_event(&ws, "slow", json!({"n": 0})).await;
    host.wait_until("the slow attempt is in flight", || async { !slow.requests().is_empty() }).await;
    let mut events = Vec::new();
    for i in 0..10 {
        events.push(host.emit_event(&ws, "tick", json!({"n": i})).await);
    }
    host.wait_until("the first ten delivered", || async {
        fast.requests().iter().filter(|r| r.path_and_query == "/latest").count() == 10
    })
    .await;
    let before_upload = Instant::now();
    let (status, body) = put(&host, "echo", component("switchboard-fixture-echo-v2")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let after_upload = Instant::now();
    for i in 10..20 {
        events.push(host.emit_event(&ws, "tick", json!({"n": i})).await);
    }
    assert!(after_upload.duration_since(before_upload) < Duration::from_secs(30));
    for id in events.iter().chain([&slow_event]) {
        assert_eq!(host.settled_event(&ws, id).await["status"], "completed");
    }

    // Exactly one delivery per event and connection: nothing lost or doubled by the swap.
    let seen = |path: &str| {
        let mut v: Vec<(String, String)> = fast
            .requests()
            .iter()
            .filter(|r| r.path_and_query == path)
            .map(|r| {
                let b: Value = serde_json::from_slice(&r.body).unwrap();
                (b["event_id"].as_str().unwrap().to_string(), b["version"].as_str().unwrap().to_string())
            })
            .collect();
        v.sort();
        v
    };
    let latest = seen("/latest");
    let pinned = seen("/pinned");
    assert_eq!(latest.len(), 20);
    assert_eq!(pinned.len(), 20);
    assert!(pinned.iter().all(|(_, v)| v == "1.0.0"), "the pinned connection stays on 1.0.0: {pinned:?}");
    // Events emitted after the upload answered are all delivered by 2.0.0;
    // the first ten had been delivered before it started, by 1.0.0.
    for (i, id) in events.iter().enumerate() {
        let version = &latest.iter().find(|(e, _)| e == id).unwrap().1;
        if i >= 10 {
            assert_eq!(version, "2.0.0", "event {i} after the upload");
        } else {
            assert_eq!(version, "1.0.0", "event {i} was delivered before the upload");
        }
    }
    let slow_body: Value = serde_json::from_slice(&slow.requests()[0].body).unwrap();
    assert_eq!(slow_body["version"], "1.0.0", "the in-flight attempt finished on the version it started");
    let d = host.deliveries(&ws, &slow_event).await;
    assert_eq!(d[0]["connector_version"], "1.0.0", "and its attempt record names 1.0.0");
}

pub(crate) async fn echo_versions(host: &TestHost) -> Vec<String> {
    let (_, v) = host.raw(Method::GET, "/api/v1/connectors/echo/versions", Some(ADMIN), None).await;
    v["records"]
        .as_array()
        .map(|r| r.iter().map(|e| e["version"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Emit one `tick` and return the version the echo connector reported.
pub(crate) async fn delivered_by(
    host: &TestHost,
    ws: &switchboard_tests::host::Ws,
    receiver: &switchboard_tests::receiver::Receiver,
) -> String {
    let before = receiver.requests().len();
    host.emit_event(ws, "tick", json!({"n": before})).await;
    host.wait_until("delivered", || async { receiver.requests().len() > before }).await;
    let body: Value = serde_json::from_slice(&receiver.requests()[before].body).unwrap();
    body["version"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_a_version_pauses_its_pinned_connections_and_latest_falls_back() {
    let (host, _bundled) = host_with_webhook_only().await;
    for v in ["switchboard-fixture-echo-v1", "switchboard-fixture-echo-v2"] {
        assert_eq!(put(&host, "echo", component(v)).await.0, StatusCode::CREATED);
    }
    let latest_rx = switchboard_tests::receiver::Receiver::answering(204, "").await;
    let pinned_rx = switchboard_tests::receiver::Receiver::answering(204, "").await;
    let ws = host.workspace("ops").await;
    let mut ids = Vec::new();
    for (version, url) in [("latest", latest_rx.url("/l")), ("2.0.0", pinned_rx.url("/p"))] {
        let body = json!({"connector": "echo", "version": version, "name": version, "settings": {"url": url}});
        let conn = host.connection(&ws, body).await;
        host.rule(&ws, json!({"event": "tick", "connection": conn, "action": "send"})).await;
        ids.push(conn);
    }
    let blocked = host.admin(Method::POST, "/api/v1/connectors/echo/versions/2.0.0/block", None, StatusCode::OK).await;
    assert_eq!(blocked["paused_connections"], json!([ids[1]]));
    let pinned = host.get(&format!("/api/v1/workspaces/{}/connections/{}", ws.id, ids[1])).await;
    assert_eq!(
        (pinned["active"].as_bool(), pinned["inactive_reason"].as_str()),
        (Some(false), Some("connector_version_blocked"))
    );

    assert_eq!(delivered_by(&host, &ws, &latest_rx).await, "1.0.0", "latest falls back past the blocked version");
    let waiting = format!("/api/v1/workspaces/{}/deliveries?status=waiting&connection={}", ws.id, ids[1]);
    host.wait_until("the pinned delivery waits", || async {
        host.raw(Method::GET, &waiting, Some(ADMIN), None).await.1["count"] == 1
    })
    .await;
    assert!(pinned_rx.requests().is_empty());

    // Blocks survive a restart.
    let host = host.restart().await;
    let versions = host.get("/api/v1/connectors/echo/versions").await;
    assert_eq!(versions["records"][1]["blocked"], true);

    let unblocked =
        host.admin(Method::POST, "/api/v1/connectors/echo/versions/2.0.0/unblock", None, StatusCode::OK).await;
    assert_eq!(unblocked["resumed_connections"], json!([ids[1]]));
    host.wait_until("the waiting delivery lands", || async { !pinned_rx.requests().is_empty() }).await;
    let body: Value = serde_json::from_slice(&pinned_rx.requests()[0].body).unwrap();
    assert_eq!(body["version"], "2.0.0");
}
