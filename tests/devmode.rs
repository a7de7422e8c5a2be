//! Development mode: with `serve --dev` (`[registry] watch = true`) a changed
//! `.wasm` in the connectors directory is reloaded, and the next delivery
//! runs the new build; without it the directory is read once, at start. A
//! reload never lifts a block, and every attempt names the exact build that
//! ran it by its SHA-256.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_tests::build::component;
use switchboard_tests::host::{ADMIN, TestHost, Ws};
use switchboard_tests::receiver::Receiver;

use crate::registry::{delivered_by, echo_versions};

/// A connectors directory with the webhook and echo 1.0.0, and a host
/// serving it, watching it when `watch`.
async fn host_on_dir(watch: bool) -> (TestHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("webhook.wasm"), component("switchboard-connector-webhook")).unwrap();
    std::fs::write(dir.path().join("echo.wasm"), component("switchboard-fixture-echo-v1")).unwrap();
    let path = dir.path().to_path_buf();
    let host = TestHost::start_with(|c| {
        c.connectors_dir = Some(path);
        c.registry.watch = watch;
    })
    .await;
    (host, dir)
}

/// A workspace whose `tick` events go to an echo connection on `version`
/// that reports to `receiver`; returns it and the connection.
async fn echo_route(host: &TestHost, receiver: &Receiver, version: &str) -> (Ws, String) {
    let ws = host.workspace("dev").await;
    let body =
        json!({"connector": "echo", "version": version, "name": "dev", "settings": {"url": receiver.url("/dev")}});
    let conn = host.connection(&ws, body).await;
    host.rule(&ws, json!({"event": "tick", "connection": conn, "action": "send"})).await;
    (ws, conn)
}

/// Write a marker connector and wait until it is registered: the watcher
/// handles changes in order, so everything written before has been dealt with.
async fn settle(host: &TestHost, dir: &tempfile::TempDir) {
    std::fs::write(dir.path().join("zz-marker.wasm"), component("switchboard-fixture-hostile")).unwrap();
    host.wait_until("marker loaded", || async {
        host.raw(Method::GET, "/api/v1/connectors/hostile/versions", Some(ADMIN), None).await.0 == StatusCode::OK
    })
    .await;
}

fn sha256_of(package: &str) -> String {
    Sha256::digest(component(package)).iter().map(|b| format!("{b:02x}")).collect()
}

/// The `component_sha256` of the newest delivery's first attempt.
async fn last_attempt_sha(host: &TestHost, ws: &Ws) -> Value {
    let list = host.get(&format!("/api/v1/workspaces/{}/deliveries", ws.id)).await;
    let newest =
        list["records"].as_array().unwrap().iter().max_by_key(|d| d["id"].as_str().unwrap().to_string()).unwrap();
    host.attempts(ws, newest["id"].as_str().unwrap()).await[0]["component_sha256"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_reloads_a_changed_connector_and_keeps_the_old_one_when_the_new_is_broken() {
    let (host, dir) = host_on_dir(true).await;
    let receiver = Receiver::answering(204, "").await;
    let (ws, _) = echo_route(&host, &receiver, "latest").await;
    assert_eq!(delivered_by(&host, &ws, &receiver).await, "1.0.0");
    assert_eq!(last_attempt_sha(&host, &ws).await, sha256_of("switchboard-fixture-echo-v1"));

    std::fs::write(dir.path().join("echo.wasm"), component("switchboard-fixture-echo-v2")).unwrap();
    host.wait_until("2.0.0 reloaded", || async { echo_versions(&host).await.contains(&"2.0.0".to_string()) }).await;
    assert_eq!(delivered_by(&host, &ws, &receiver).await, "2.0.0", "the next delivery uses the new build");
    assert_eq!(last_attempt_sha(&host, &ws).await, sha256_of("switchboard-fixture-echo-v2"), "and names it");

    std::fs::write(dir.path().join("echo.wasm"), b"\0asm broken build").unwrap();
    settle(&host, &dir).await;
    assert_eq!(echo_versions(&host).await, ["1.0.0", "2.0.0"]);
    assert_eq!(delivered_by(&host, &ws, &receiver).await, "2.0.0", "the previous version keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_never_lifts_a_block() {
    let (host, dir) = host_on_dir(true).await;
    let receiver = Receiver::answering(204, "").await;
    let (ws, conn) = echo_route(&host, &receiver, "1.0.0").await;
    host.admin(Method::POST, "/api/v1/connectors/echo/versions/1.0.0/block", None, StatusCode::OK).await;

    // The same name and version dropped in again: it replaces the build, not the block.
    std::fs::write(dir.path().join("echo.wasm"), component("switchboard-fixture-echo-v1")).unwrap();
    settle(&host, &dir).await;
    let versions = host.get("/api/v1/connectors/echo/versions").await;
    assert_eq!(versions["records"][0]["blocked"], true, "{versions:#}");
    host.emit_event(&ws, "tick", json!({"n": 1})).await;
    let path = format!("/api/v1/workspaces/{}/connections/{conn}", ws.id);
    let connection = host.get(&path).await;
    assert_eq!(connection["active"], false, "its connection stays paused: {connection:#}");
    assert!(receiver.requests().is_empty(), "nothing ran the blocked version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dev_mode_the_directory_is_read_once() {
    let (host, dir) = host_on_dir(false).await;
    std::fs::write(dir.path().join("echo.wasm"), component("switchboard-fixture-echo-v2")).unwrap();
    // Proving an absence takes a wait: a watching host reloads within about
    // a second (150 ms debounce, then a compile); give it three.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(echo_versions(&host).await, ["1.0.0"], "the changed file was not loaded");
}
