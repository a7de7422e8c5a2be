//! The bundled connectors ship inside the binary, and `connector new` works
//! anywhere: `serve` with no configuration at all offers the five bundled
//! connectors and delivers through them, a restart compiles none of them
//! again, and a copy of the binary alone (with a Rust toolchain) scaffolds a
//! crate that tests natively and builds as a component, with no path of the
//! Switchboard checkout in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::build::{binary, workspace_root};
use switchboard_tests::process::ServerProcess;
use switchboard_tests::receiver::Receiver;
use switchboard_tests::{WEBHOOK_SECRET, standard_webhooks};

const BUNDLED: [&str; 5] = ["activecampaign", "hubspot", "intercom", "slack", "webhook"];

/// Every version of every connector the server lists: (name, origin, artifact).
async fn registered(server: &ServerProcess) -> Vec<(String, Value, Value)> {
    let listed = server.admin("/api/v1/connectors", None).await;
    let mut all = Vec::new();
    for connector in listed["records"].as_array().unwrap() {
        let name = connector["name"].as_str().unwrap();
        let versions = server.admin(&format!("/api/v1/connectors/{name}/versions"), None).await;
        for v in versions["records"].as_array().unwrap() {
            all.push((name.to_string(), v["origin"].clone(), v["artifact"].clone()));
        }
    }
    all
}

#[tokio::test]
async fn serve_with_no_configuration_offers_the_bundled_connectors_and_delivers_through_the_webhook() {
    // No config file and no connectors dir: only the admin token, the master
    // key and loopback egress (the receiver) that every process test sets.
    let server = ServerProcess::start(&[("SWITCHBOARD_CONNECTORS_DIR", "")]);
    server.wait_ready().await;

    let registered_first = registered(&server).await;
    let names: Vec<&str> = registered_first.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, BUNDLED, "one version of each, nothing else");
    for (name, origin, artifact) in &registered_first {
        assert_eq!(origin, "bundled", "{name}");
        assert_eq!(artifact, "compiled", "{name}: a fresh data dir has no artifacts yet");
    }

    let receiver = Receiver::answering(204, "").await;
    let ws = server.admin("/api/v1/workspaces", Some(json!({"name": "bundled"}))).await;
    let ws_id = ws["id"].as_str().unwrap();
    let conn = json!({"connector": "webhook", "name": "hook", "settings": {"url": receiver.url("/hooks/onboarding")},
                      "secrets": {"signing_secret": WEBHOOK_SECRET}});
    let conn = server.admin(&format!("/api/v1/workspaces/{ws_id}/connections"), Some(conn)).await;
    let rule = json!({"event": "page.completed", "connection": conn["id"], "action": "send_webhook"});
    server.admin(&format!("/api/v1/workspaces/{ws_id}/rules"), Some(rule)).await;
    let emitted = reqwest::Client::new()
        .post(format!("{}/api/v1/events", server.url()))
        .header("X-Meshes-Publishable-Key", ws["publishable_key"].as_str().unwrap())
        .json(&json!({"event": "page.completed", "payload": {"sequence_step": 3}}))
        .send()
        .await
        .unwrap();
    assert!(emitted.status().is_success(), "{}", emitted.status());

    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.requests().is_empty() {
        assert!(Instant::now() < deadline, "no webhook arrived; log:\n{}", server.log_tail(40));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = receiver.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path_and_query, "/hooks/onboarding");
    standard_webhooks::verify_call(WEBHOOK_SECRET, &calls[0]).expect("a signed Standard Webhook");
    let body: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(body["data"]["sequence_step"], 3, "{body}");

    // A restart reads every bundled connector from the artifact cache.
    server.kill9();
    server.spawn();
    server.wait_ready().await;
    for (name, origin, artifact) in registered(&server).await {
        assert_eq!((origin, artifact), ("bundled".into(), "cached".into()), "{name} was not compiled again");
    }
}

/// Shared by every run, so only the first compiles the SDK's dependencies.
/// Not the author tests' (`author.rs`): the two crates' vendored SDKs are
/// the same package at the same relative path, so in one target dir a build
/// of one would replace the SDK library the other is testing against.
fn scaffold_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("scaffold-target")
}

/// `program ARGS...` in `dir`, as a user's shell would run it (no `CARGO`
/// pointing at the toolchain of the test run).
fn run(program: &Path, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", scaffold_target_dir())
        .env_remove("CARGO")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} in {}: {}\nstdout: {}\nstderr: {}",
        program.display(),
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(files_under(&path)) } else { files.push(path) }
    }
    files
}

fn assert_no_checkout_path(krate: &Path) {
    let checkout = std::fs::canonicalize(workspace_root()).unwrap();
    for path in [workspace_root().to_path_buf(), checkout] {
        let path = path.display().to_string();
        for file in files_under(krate) {
            let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
            assert!(!text.contains(&path), "{} names the checkout ({path})", file.display());
        }
    }
}

#[test]
fn a_copied_binary_scaffolds_a_crate_that_tests_and_builds_with_no_checkout() {
    // A link is a copy that takes no room (the debug binary is large): the
    // binary runs from outside the checkout either way.
    let installed = tempfile::tempdir().unwrap();
    let switchboard = installed.path().join("switchboard");
    if std::fs::hard_link(binary(), &switchboard).is_err() {
        std::fs::copy(binary(), &switchboard).unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    assert!(!work.path().starts_with(workspace_root()), "the crate is made outside the checkout");

    run(&switchboard, &["connector", "new", "acme"], work.path());
    let krate = work.path().join("acme");
    for file in ["Cargo.toml", "Cargo.lock", "vendor/switchboard-sdk/Cargo.toml", "vendor/wit/connector.wit"] {
        assert!(krate.join(file).is_file(), "the scaffold has {file}");
    }
    assert_no_checkout_path(&krate);

    run(Path::new("cargo"), &["test", "--quiet"], &krate);
    let built = run(&switchboard, &["connector", "build"], &krate);
    let built: Value = serde_json::from_slice(&built.stdout).expect("build prints JSON");
    assert_eq!(built["manifest"]["name"], "acme");
    assert_eq!(built["manifest"]["actions"][0]["name"], "send_event");
    assert!(Path::new(built["component"].as_str().unwrap()).is_file());
    // Cargo has written the lock file again; still nothing of the checkout.
    assert_no_checkout_path(&krate);
}
