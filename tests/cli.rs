//! `switchboard connector run`: one invocation in the real sandbox, the
//! attempt record on stdout, exit 0 only when delivered.

use std::process::{Command, Output};

use switchboard_tests::WEBHOOK_SECRET as SECRET;
use switchboard_tests::build::{binary, component_path, workspace_root};
use switchboard_tests::receiver::{Receiver, reply};

async fn connector_run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(binary()).args(["connector", "run"]).args(args).output().expect("run switchboard")
    })
    .await
    .unwrap()
}

fn seed_event() -> String {
    workspace_root().join("tests/vectors/page_completed.json").display().to_string()
}

fn args(url: &str) -> Vec<String> {
    let webhook = component_path("switchboard-connector-webhook").display().to_string();
    [
        webhook.as_str(),
        "--action",
        "send_webhook",
        "--event",
        &seed_event(),
        "--settings",
        &format!(r#"{{"url":"{url}"}}"#),
        "--secret",
        &format!("signing_secret={SECRET}"),
        "--allow-private-networks",
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test]
async fn delivers_the_seed_event_and_prints_the_attempt_record() {
    let receiver = Receiver::answering(200, "thanks").await;
    let out = connector_run(args(&receiver.url("/hook"))).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let record: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is the attempt record");
    assert_eq!(record["outcome"], "delivered");
    assert_eq!(record["connector"], "webhook");
    assert_eq!(record["steps"][0]["response"]["status"], 200);
    assert!(!stdout.contains(SECRET) && !String::from_utf8_lossy(&out.stderr).contains(SECRET));
    let body: serde_json::Value = serde_json::from_slice(&receiver.requests()[0].body).unwrap();
    assert_eq!(body["data"]["page_title"], "Connect your CRM");
}

#[tokio::test]
async fn exits_1_when_not_delivered() {
    let receiver = Receiver::start(|_| reply(500, &[], "boom")).await;
    let out = connector_run(args(&receiver.url("/hook"))).await;
    assert_eq!(out.status.code(), Some(1));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["outcome"], "rejected_server_error");
}

#[tokio::test]
async fn exits_2_on_usage_errors_naming_the_fault() {
    let mut bad_settings = args("http://127.0.0.1:9/h");
    let i = bad_settings.iter().position(|a| a == "--settings").unwrap();
    bad_settings[i + 1] = "{not json".into();
    let out = connector_run(bad_settings).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--settings is not valid JSON"));

    let mut bad_action = args("http://127.0.0.1:9/h");
    bad_action[2] = "nope".into();
    let out = connector_run(bad_action).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no action `nope`"));

    let mut refused = args("http://127.0.0.1:9/h");
    refused[i + 1] = r#"{"url":"ftp://x"}"#.into();
    let out = connector_run(refused).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("settings.url"));

    let out = connector_run(vec!["missing.wasm".into()]).await;
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}
