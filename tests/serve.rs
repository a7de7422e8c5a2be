//! `switchboard serve` as a process: credentials generated on first start
//! (0600, printed once), unknown config keys refused by name, and a clean
//! exit on SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_tests::build::binary;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn ready(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Start `serve` on a fresh port with `dir` as data dir, wait until ready,
/// SIGTERM it and return (exit success, stderr).
async fn serve_once(dir: &std::path::Path) -> (bool, String) {
    let port = free_port();
    let child = Command::new(binary())
        .arg("serve")
        .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SWITCHBOARD_DATA_DIR", dir)
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ready(port).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn first_start_generates_credentials_once_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = serve_once(dir.path()).await;
    assert!(ok, "SIGTERM exits 0: {stderr}");
    let token = std::fs::read_to_string(dir.path().join("admin_token")).unwrap();
    assert!(
        stderr.contains(&format!("admin token (stored in {}/admin_token, shown once): {token}", dir.path().display())),
        "{stderr}"
    );
    for file in ["admin_token", "master_key"] {
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let (ok, stderr) = serve_once(dir.path()).await;
    assert!(ok);
    assert!(!stderr.contains(&token), "printed once only: {stderr}");
    assert_eq!(std::fs::read_to_string(dir.path().join("admin_token")).unwrap(), token, "kept across restarts");
}

#[test]
fn unknown_config_keys_are_refused_by_name() {
    let out = Command::new(binary()).arg("serve").env("SWITCHBOARD_EGRESS__ALLOW_EVERYTHING", "true").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("allow_everything"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
