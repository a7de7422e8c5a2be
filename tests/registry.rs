//! The connector registry (SPEC §4, issue #5): uploads are validated in the
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
    let before = host.admin(Method::GET, "/api/v1/connectors", None, StatusCode::OK).await;
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
    ];
    for (name, bytes, status, message) in cases {
        let (got, body) = put(&host, name, bytes).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(body["message"].as_str().unwrap_or_default().contains(message), "{name}: {body}");
    }
    assert_eq!(host.admin(Method::GET, "/api/v1/connectors", None, StatusCode::OK).await, before, "nothing registered");
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
    let conn = host
        .admin(
            Method::POST,
            &format!("/api/v1/workspaces/{}/connections", ws.id),
            Some(json!({"connector": "hostile", "version": "0.1.0", "name": "pinned"})),
            StatusCode::CREATED,
        )
        .await;
    let enabled =
        host.admin(Method::GET, &format!("/api/v1/workspaces/{}/connectors", ws.id), None, StatusCode::OK).await;
    assert_eq!(enabled["records"][0]["connector"], "hostile");
    assert_eq!(enabled["records"][0]["connections"][0]["resolved_version"], "0.1.0");
    assert_eq!(enabled["records"][0]["connections"][0]["active"], true);

    let (status, body) = host.raw(Method::DELETE, "/api/v1/connectors/hostile/versions/0.1.0", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "pinned: {body}");
    assert!(body["message"].as_str().unwrap().contains(conn["id"].as_str().unwrap()));

    // A restart loads the upload from the data dir, from compiled artifacts.
    let host = host.restart().await;
    let versions = host.admin(Method::GET, "/api/v1/connectors/hostile/versions", None, StatusCode::OK).await;
    assert_eq!(versions["records"][0]["origin"], "uploaded");
    for name in ["hostile", "webhook"] {
        let v = host.admin(Method::GET, &format!("/api/v1/connectors/{name}/versions"), None, StatusCode::OK).await;
        assert_eq!(v["records"][0]["artifact"], "cached", "{name} was not compiled again");
    }
    host.admin(
        Method::DELETE,
        &format!("/api/v1/workspaces/{}/connections/{}", ws.id, conn["id"].as_str().unwrap()),
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
