//! The operator's contract outside the dashboard: every error answer is
//! `{"code", "message", "details"?}` with a stable code, every answer has an
//! `X-Request-Id`, logs can be JSON (one object per line, each carrying the
//! request's id), configuration mistakes name where they came from, and a
//! replay is a background job with progress — also from the command line.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_tests::build::binary;
use switchboard_tests::host::{ADMIN, TestHost};
use switchboard_tests::process::ServerProcess;
use switchboard_tests::receiver::{Receiver, reply};

/// Send one request and return status, request id and JSON body.
async fn call(request: reqwest::RequestBuilder) -> (StatusCode, Option<String>, Value) {
    let answer = request.send().await.expect("request");
    let status = answer.status();
    let id = answer.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(String::from);
    let body = answer.json().await.unwrap_or(Value::Null);
    (status, id, body)
}

#[tokio::test]
async fn every_error_answer_names_a_stable_code() {
    let host = TestHost::start_with(|c| {
        c.ingest.max_body_bytes = 1024;
        c.ingest.rate_per_workspace = Some(1.0);
    })
    .await;
    let (a, b) = (host.workspace("a").await, host.workspace("b").await);
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", host.url);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("no credentials", http.get(url("/api/v1/workspaces")), 401, "unauthorized"),
        (
            "another workspace's key",
            http.get(url(&format!("/api/v1/workspaces/{}", b.id))).bearer_auth(&a.secret),
            403,
            "forbidden",
        ),
        (
            "a record that is not there",
            http.get(url("/api/v1/workspaces/ws_nope")).bearer_auth(ADMIN),
            404,
            "not_found",
        ),
        ("a path no route has", http.get(url("/api/v1/nothing-here")), 404, "route_not_found"),
        (
            "a method the route lacks",
            http.delete(url("/api/v1/workspaces")).bearer_auth(ADMIN),
            405,
            "method_not_allowed",
        ),
        (
            "a body over the limit",
            http.post(url("/api/v1/events"))
                .bearer_auth(&a.secret)
                .header("content-type", "application/json")
                .body(format!(r#"{{"event":"x","payload":{{"p":"{}"}}}}"#, "x".repeat(2048))),
            413,
            "payload_too_large",
        ),
        (
            "a body that is not JSON",
            http.post(url("/api/v1/workspaces")).bearer_auth(ADMIN).header("content-type", "text/plain").body("name=x"),
            415,
            "unsupported_media_type",
        ),
        (
            "a field the server refuses",
            http.post(url(&format!("/api/v1/workspaces/{}/connections", a.id)))
                .bearer_auth(ADMIN)
                .json(&json!({"connector": "webhook", "name": "", "settings": {}})),
            422,
            "unprocessable",
        ),
    ];
    for (what, request, status, code) in cases {
        let (got, id, body) = call(request).await;
        assert_eq!(got.as_u16(), status, "{what}: {body}");
        assert_eq!(body["code"], code, "{what}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
        assert!(id.is_some_and(|id| !id.is_empty()), "{what}: no X-Request-Id");
    }

    let emit =
        || http.post(url("/api/v1/events")).bearer_auth(&a.secret).json(&json!({"event": "e", "payload": {"n": 1}}));
    let mut limited = None;
    for _ in 0..5 {
        let answer = emit().send().await.unwrap();
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((answer.headers().contains_key("retry-after"), answer.json::<Value>().await.unwrap()));
            break;
        }
    }
    let (retry_after, body) = limited.expect("five events at once exceed one per second");
    assert!(retry_after, "429 says when to come back");
    assert_eq!(body["code"], "rate_limited", "{body}");
}

#[tokio::test]
async fn a_field_at_fault_is_named_in_details() {
    let host = TestHost::start().await;
    let ws = host.workspace("a").await;
    let path = format!("/api/v1/workspaces/{}/connections", ws.id);
    let (status, body) = host
        .raw(
            Method::POST,
            &path,
            Some(ADMIN),
            Some(json!({"connector": "webhook", "name": "h", "settings": [], "secrets": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "unprocessable");
    assert_eq!(body["details"]["path"], "settings", "{body}");
    assert_eq!(body["error"], body["details"], "the Meshes name for the same member");

    let unknown_secret = json!({"connector": "webhook", "name": "h", "settings": {"url": "http://127.0.0.1:9/h"}, "secrets": {"tokn": "x"}});
    let (status, body) = host.raw(Method::POST, &path, Some(ADMIN), Some(unknown_secret)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"]["path"], "secrets.tokn", "{body}");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made_and_a_bad_one_is_replaced() {
    let host = TestHost::start().await;
    let http = reqwest::Client::new();
    let healthz = format!("{}/healthz", host.url);
    let (_, id, _) = call(http.get(&healthz).header("x-request-id", "trace-42.a:b_c")).await;
    assert_eq!(id.as_deref(), Some("trace-42.a:b_c"), "a client's id is echoed");
    let (_, first, _) = call(http.get(&healthz)).await;
    let (_, second, _) = call(http.get(&healthz)).await;
    assert!(first.is_some() && first != second, "each request gets its own id");
    let (_, id, _) = call(http.get(&healthz).header("x-request-id", "x".repeat(300))).await;
    assert!(id.is_some_and(|id| id.len() < 300), "an overlong id is not repeated into every log line");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let server = ServerProcess::start(&[("SWITCHBOARD_LOG", "info"), ("SWITCHBOARD_LOG__FORMAT", "json")]);
    server.wait_ready().await;
    let http = reqwest::Client::new();
    let answer =
        http.get(format!("{}/api/v1/workspaces", server.url())).header("x-request-id", "probe-7").send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let deadline = Instant::now() + Duration::from_secs(20);
    let access = loop {
        let log = server.log_tail(10_000);
        let lines: Vec<Value> = log
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if let Some(line) =
            lines.into_iter().find(|l| l["target"] == "switchboard::access" && l["span"]["request_id"] == "probe-7")
        {
            break line;
        }
        assert!(Instant::now() < deadline, "no access-log line for the request:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(access["method"], "GET", "{access}");
    assert_eq!(access["route"], "/api/v1/workspaces", "{access}");
    assert_eq!(access["status"], 401, "{access}");
    assert!(access["duration_ms"].as_f64().is_some(), "{access}");
    assert!(!server.log_tail(10_000).contains(ADMIN), "no token in the log");
}

/// `switchboard serve` with `env`, expected to refuse to start: its stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .args(args)
        .current_dir(dir.path())
        .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
        .env_remove("SWITCHBOARD_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    assert!(!out.status.success(), "serve started with {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn configuration_mistakes_name_where_they_came_from() {
    let err = refused(&[], &[("SWITCHBOARD_DELIVERY__CONCURRENCY", "lots")]);
    assert!(err.contains("environment variable SWITCHBOARD_DELIVERY__CONCURRENCY") && err.contains("lots"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchboard.toml");
    std::fs::write(&file, "[delivery]\nconcurrency = \"x\"\n").unwrap();
    let err = refused(&["--config", file.to_str().unwrap()], &[]);
    assert!(err.contains("switchboard.toml, line 2, column 15: `delivery.concurrency`"), "{err}");

    let err = refused(&[], &[("SWITCHBOARD_LOG", "verbose")]);
    assert!(err.contains("SWITCHBOARD_LOG `verbose`: `verbose` is not a level"), "{err}");
    let err = refused(&[], &[("SWITCHBOARD_LOG__LEVEL", "chatty")]);
    assert!(err.contains("log.level `chatty`"), "{err}");
    let err = refused(&[], &[("SWITCHBOARD_LOG__FORMAT", "yaml")]);
    assert!(err.contains("SWITCHBOARD_LOG__FORMAT") && err.contains("yaml"), "{err}");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_says_so_in_words() {
    let first = ServerProcess::start(&[]);
    first.wait_ready().await;
    let data_dir = first.data_dir();
    let err = refused(
        &[],
        &[
            ("SWITCHBOARD_DATA_DIR", data_dir.to_str().unwrap()),
            ("SWITCHBOARD_ADMIN_TOKEN", "t"),
            ("SWITCHBOARD_MASTER_KEY", &switchboard::secrets::MasterKey::generate()),
        ],
    );
    assert!(err.contains("another switchboard is using the data dir"), "{err}");
    assert!(!err.contains("{ ") && !err.contains("Os {"), "no debug struct: {err}");
}

#[tokio::test]
async fn a_replay_runs_in_the_background_and_the_cli_follows_its_progress() {
    let receiver = Receiver::start(|_| reply(500, &[], "down")).await;
    let host = TestHost::start_with(|c| c.retry.schedule = vec![Duration::ZERO]).await;
    let ws = host.workspace("replays").await;
    host.webhook_route(&ws, &receiver.url("/h"), json!({"event": "order.paid", "action": "send_webhook"})).await;
    let events: Vec<Value> = (0..12).map(|i| json!({"event": "order.paid", "payload": {"i": i}})).collect();
    let ids = host.emit_bulk(&ws, &events).await;
    for id in &ids {
        assert_eq!(host.settled_event(&ws, id).await["status"], "failed");
    }

    let replays = format!("/api/v1/workspaces/{}/replays", ws.id);
    let job = host.admin(Method::POST, &replays, Some(json!({"status": "failed"})), StatusCode::CREATED).await;
    assert_eq!(job["state"], "pending", "answered before the work: {job}");
    let done = host.replay_done(&ws, job["id"].as_str().unwrap()).await;
    assert_eq!(
        (done["total"].as_u64(), done["matched"].as_u64(), done["requeued"].as_u64()),
        (Some(12), Some(12), Some(12)),
        "{done}"
    );
    assert!(done["updated_at"].as_str() >= done["created_at"].as_str());
    for id in &ids {
        assert_eq!(host.settled_event(&ws, id).await["status"], "failed", "failed again: the receiver is still down");
    }

    let out = replay_cli(&host, &ws.id, "failed").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("completed: 12 matched, 12 requeued"), "{stdout}");

    let out = replay_cli(&host, &ws.id, "lost").await;
    assert_eq!(out.status.code(), Some(1), "a refused replay exits 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 422"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `switchboard replay` against `host` (off the async runtime: the server
/// it talks to runs on this test's runtime).
async fn replay_cli(host: &TestHost, workspace: &str, status: &str) -> std::process::Output {
    let mut command = Command::new(binary());
    command.args(["replay", "--server", &host.url, "--workspace", workspace, "--status", status]);
    command.env("SWITCHBOARD_ADMIN_TOKEN", ADMIN);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}
