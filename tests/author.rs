//! Connector-author tooling (issue #5), run as the real `switchboard` binary
//! from a temporary directory: `connector new` scaffolds a crate that builds
//! as generated, `connector build` makes and loads the component, `connector
//! test` replays a responses fixture in the real sandbox and names the step
//! that went wrong, and `connector publish` makes the version live on a
//! running host.
//!
//! The scaffold's wasm build uses its own target dir, `target/author-tests`:
//! isolated from the workspace's builds (no contention for the main target
//! lock, no artifacts mixed in), yet kept between runs so only the first run
//! compiles the SDK and wit-bindgen from scratch (about 30 s).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use switchboard_tests::build::{binary, workspace_root};
use switchboard_tests::host::{ADMIN, TestHost};

fn author_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("author-tests")
}

/// `switchboard connector ARGS...` in `dir`, with extra environment.
async fn connector(dir: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, std::ffi::OsString)> = env.iter().map(|(k, v)| (k.to_string(), v.to_os_string())).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(binary())
            .arg("connector")
            .args(&args)
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", author_target_dir())
            .envs(env)
            .output()
            .expect("run switchboard")
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_exit(out: &Output, code: i32, what: &str) -> (String, String) {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(code), "{what}\nstdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

/// `connector test` of the scaffold's component with its own fixtures,
/// `settings` and `responses` varying.
async fn fixture_test(dir: &Path, component: &str, settings: &str, responses: &str) -> Output {
    let args = [
        "test",
        component,
        "--event",
        "fixtures/event.json",
        "--action",
        "send_event",
        "--fields",
        r#"{"message": "hello"}"#,
        "--settings",
        settings,
        "--secret",
        "api_key=key_live_SECRET",
        "--responses",
        responses,
    ];
    connector(dir, &args, &[]).await
}

#[tokio::test]
async fn a_scaffold_builds_passes_its_fixture_test_and_publishes_live() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("acme");

    // new: the crate, its README, native tests and fixtures.
    let out = connector(tmp.path(), &["new", "acme", "--dir", dir.to_str().unwrap()], &[]).await;
    assert_exit(&out, 0, "connector new");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "src/lib.rs",
        "src/tests.rs",
        "fixtures/event.json",
        "fixtures/responses.json",
    ] {
        assert!(dir.join(file).is_file(), "scaffold has {file}");
    }
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains("[workspace]"), "standalone workspace: {cargo_toml}");
    assert!(cargo_toml.contains("path = \"vendor/switchboard-sdk\""), "the vendored SDK by path: {cargo_toml}");

    // The generated native unit tests pass as generated.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let native = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(cargo)
                .args(["test", "--quiet"])
                .current_dir(&dir)
                .env("CARGO_TARGET_DIR", author_target_dir())
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert_exit(&native, 0, "cargo test in the scaffold");

    // build: the component, loaded in the sandbox; manifest and path printed.
    let out = connector(&dir, &["build"], &[]).await;
    let (stdout, _) = assert_exit(&out, 0, "connector build");
    let built: Value = serde_json::from_str(&stdout).expect("build prints JSON");
    assert_eq!(built["manifest"]["name"], "acme");
    assert_eq!(built["manifest"]["version"], "0.1.0");
    assert_eq!(built["manifest"]["actions"][0]["name"], "send_event");
    let component = built["component"].as_str().unwrap().to_string();
    assert!(component.ends_with("wasm32-wasip2/release/switchboard_connector_acme.wasm"), "{component}");
    assert!(Path::new(&component).is_file());

    // test, happy path: the request the fixture expects, answered; delivered.
    let settings = r#"{"account": "acme"}"#;
    let out = fixture_test(&dir, &component, settings, "fixtures/responses.json").await;
    let (stdout, stderr) = assert_exit(&out, 0, "connector test, happy path");
    assert!(stdout.contains("step 1: POST https://api.example.com/v1/accounts/acme/events -> 202"), "{stdout}");
    assert!(stdout.contains("outcome: delivered"), "{stdout}");
    assert!(!stdout.contains("key_live_SECRET") && !stderr.contains("key_live_SECRET"));

    // An unexpected request: the connector gets an error, the test names the step.
    let out = fixture_test(&dir, &component, r#"{"account": "other"}"#, "fixtures/responses.json").await;
    let (stdout, stderr) = assert_exit(&out, 1, "connector test, unexpected request");
    assert!(
        stderr.contains("step 1: unexpected request POST https://api.example.com/v1/accounts/other/events"),
        "{stderr}"
    );
    assert!(stdout.contains("outcome: network_error"), "the connector got an error: {stdout}");

    // An unused expectation (with a secret placeholder in its URL).
    let two = tmp.path().join("two.json");
    std::fs::write(
        &two,
        r#"[{"method": "POST", "url": "https://api.example.com/v1/accounts/acme/events", "response": {"status": 200}},
            {"method": "GET", "url": "https://api.example.com/v1/keys/{{secret.api_key}}", "response": {"status": 200, "body": "ok"}}]"#,
    )
    .unwrap();
    let out = fixture_test(&dir, &component, settings, two.to_str().unwrap()).await;
    let (stdout, stderr) = assert_exit(&out, 1, "connector test, unused expectation");
    assert!(stdout.contains("outcome: delivered"), "{stdout}");
    assert!(
        stderr.contains(
            "step 2: expected GET https://api.example.com/v1/keys/{{secret.api_key}} but it was never requested"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("key_live_SECRET"));

    // A failure path, asserted: 503 must end `rejected_server_error`.
    let unavailable = tmp.path().join("unavailable.json");
    std::fs::write(
        &unavailable,
        r#"[{"method": "POST", "url": "https://api.example.com/v1/accounts/acme/events", "response": {"status": 503, "body": "down"}}]"#,
    )
    .unwrap();
    let out = fixture_test(&dir, &component, settings, unavailable.to_str().unwrap()).await;
    let (_, stderr) = assert_exit(&out, 1, "connector test, 503 expecting delivered");
    assert!(stderr.contains("outcome: expected delivered, got rejected_server_error"), "{stderr}");
    let mut args = vec!["test", component.as_str(), "--event", "fixtures/event.json", "--action", "send_event"];
    args.extend(["--settings", settings, "--secret", "api_key=k", "--responses", unavailable.to_str().unwrap()]);
    args.extend(["--expect-outcome", "rejected_server_error"]);
    let out = connector(&dir, &args, &[]).await;
    let (stdout, _) = assert_exit(&out, 0, "connector test, 503 expecting rejected_server_error");
    assert!(stdout.contains("step 1: POST https://api.example.com/v1/accounts/acme/events -> 503"), "{stdout}");

    // A fixture that is not one is a usage error naming the file's fault.
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"[{"method": "POST"}]"#).unwrap();
    let out = fixture_test(&dir, &component, settings, bad.to_str().unwrap()).await;
    let (_, stderr) = assert_exit(&out, 2, "connector test, bad fixture");
    assert!(stderr.contains("responses file"), "{stderr}");

    // publish: live on a running host, listed by the registry.
    let host = TestHost::start().await;
    let publish = ["publish", component.as_str(), "--server", host.url.as_str(), "--token", ADMIN];
    let out = connector(&dir, &publish, &[]).await;
    let (stdout, _) = assert_exit(&out, 0, "connector publish");
    assert!(stdout.contains("published acme 0.1.0"), "{stdout}");
    let listed = host.get("/api/v1/connectors").await;
    let acme = listed["records"].as_array().unwrap().iter().find(|r| r["name"] == "acme").expect("acme is listed");
    assert_eq!(acme["versions"], serde_json::json!(["0.1.0"]), "{acme}");

    // The same version again: the server's refusal, exit 1.
    let out = connector(&dir, &publish, &[]).await;
    let (_, stderr) = assert_exit(&out, 1, "connector publish, same version again");
    assert!(stderr.contains("HTTP 409") && stderr.contains("already has version 0.1.0"), "{stderr}");

    // A wrong token: the server's message, exit 1.
    let wrong = ["publish", component.as_str(), "--server", host.url.as_str(), "--token", "nope"];
    let out = connector(&dir, &wrong, &[]).await;
    let (_, stderr) = assert_exit(&out, 1, "connector publish, wrong token");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
}

#[tokio::test]
async fn usage_errors_exit_2_naming_the_fault() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["Acme", "1crm", "crm.io", "_x"] {
        let out = connector(tmp.path(), &["new", bad], &[]).await;
        let (_, stderr) = assert_exit(&out, 2, bad);
        assert!(stderr.contains(&format!("invalid connector name `{bad}`")), "{stderr}");
    }
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none(), "nothing created");

    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/keep.txt"), "mine").unwrap();
    let out = connector(tmp.path(), &["new", "taken"], &[]).await;
    let (_, stderr) = assert_exit(&out, 2, "existing dir");
    assert!(stderr.contains("taken already exists; refusing to overwrite it"), "{stderr}");
    let out = connector(tmp.path(), &["new", "other", "--dir", "taken"], &[]).await;
    assert_exit(&out, 2, "existing --dir");
    assert_eq!(std::fs::read_dir(tmp.path().join("taken")).unwrap().count(), 1, "left alone");

    let out = connector(tmp.path(), &["build", "taken"], &[]).await;
    let (_, stderr) = assert_exit(&out, 2, "build without Cargo.toml");
    assert!(stderr.contains("has no Cargo.toml"), "{stderr}");

    let out =
        connector(tmp.path(), &["publish", "missing.wasm", "--server", "http://127.0.0.1:9", "--token", "t"], &[])
            .await;
    let (_, stderr) = assert_exit(&out, 2, "publish a missing file");
    assert!(stderr.contains("cannot read component missing.wasm"), "{stderr}");
}

/// A `rustup` that lists no wasm target, first on PATH: nothing is
/// uninstalled, and nothing is built or installed either.
#[tokio::test]
async fn build_without_the_wasm_target_says_how_to_add_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = connector(tmp.path(), &["new", "notarget"], &[]).await;
    assert_exit(&out, 0, "connector new");

    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let rustup = bin.join("rustup");
    std::fs::write(&rustup, "#!/bin/sh\necho x86_64-unknown-linux-gnu\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rustup, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();

    let out = connector(&tmp.path().join("notarget"), &["build"], &[("PATH", path.as_os_str())]).await;
    let (stdout, stderr) = assert_exit(&out, 1, "build without the target");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("wasm32-wasip2") && stderr.contains("run `rustup target add wasm32-wasip2`"), "{stderr}");
    assert!(!tmp.path().join("notarget/target").exists());
}

/// `serve --connectors-dir DIR` registers DIR's components, over the
/// environment's `SWITCHBOARD_CONNECTORS_DIR`.
#[tokio::test]
async fn serve_takes_the_connectors_dir_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let (flag_dir, env_dir) = (tmp.path().join("flag"), tmp.path().join("env"));
    std::fs::create_dir(&flag_dir).unwrap();
    std::fs::create_dir(&env_dir).unwrap();
    let echo = switchboard_tests::build::component("switchboard-fixture-echo-v1");
    std::fs::write(flag_dir.join("echo.wasm"), echo).unwrap();
    let hostile = switchboard_tests::build::component("switchboard-fixture-hostile");
    std::fs::write(env_dir.join("hostile.wasm"), hostile).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(binary())
        .args(["serve", "--connectors-dir", flag_dir.to_str().unwrap()])
        .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SWITCHBOARD_DATA_DIR", tmp.path().join("data"))
        .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN)
        .env("SWITCHBOARD_CONNECTORS_DIR", &env_dir)
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _serve = KillOnDrop(child);
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/connectors");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let listed = loop {
        if let Ok(res) = client.get(&url).bearer_auth(ADMIN).send().await
            && res.status().is_success()
        {
            break res.json::<Value>().await.unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "serve never answered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let names: Vec<&str> = listed["records"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    // The bundled connectors, and the flag's directory rather than the environment's.
    assert_eq!(names, ["activecampaign", "echo", "hubspot", "intercom", "slack", "webhook"], "{listed}");
}

/// Stops the process it holds, however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
