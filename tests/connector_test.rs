//! `switchboard connector test` (issue #13): a fixture holds the connector
//! to the headers and body it sends, not only the method and URL, and names
//! the step and the difference; `--record` with `--map-host` turns an
//! exchange with a local fake into a fixture that holds no secret and passes
//! as written; and a server's `[egress] map_hosts` sends a vendor's fixed
//! host to a local fake, private networks refused or not.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::build::{binary, component_path, workspace_root};
use switchboard_tests::host::{TestHost, seed_event};
use switchboard_tests::receiver::{Receiver, reply};

const TOKEN: &str = "pat-na1-record-5b1f2d3e7a8c4e2b";
/// HubSpot's first call for the seed event: update the contact by email.
const PATCH_URL: &str = "https://api.hubapi.com/crm/objects/2026-09/contacts/alex%40northstar.io?idProperty=email";
const PATCH_PATH: &str = "/crm/objects/2026-09/contacts/alex%40northstar.io?idProperty=email";

async fn connector_test(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(binary()).args(["connector", "test"]).args(args).output().expect("run switchboard")
    })
    .await
    .unwrap()
}

/// stdout and stderr, after asserting the exit code.
fn exited(out: &Output, code: i32) -> (String, String) {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "stdout: {stdout}\nstderr: {stderr}");
    (stdout.into_owned(), stderr.into_owned())
}

fn seed_event_file() -> String {
    workspace_root().join("tests/vectors/page_completed.json").display().to_string()
}

/// The hubspot connector on the seed event, then `extra`.
fn hubspot(extra: &[&str]) -> Vec<String> {
    let component = component_path("switchboard-connector-hubspot").display().to_string();
    let fields = r#"{"email": "alex@northstar.io", "properties": {"onboarding_step": 3, "last_completed_page": "Connect your CRM"}}"#;
    let secret = format!("access_token={TOKEN}");
    let args = [component.as_str(), "--event", &seed_event_file(), "--action", "upsert_contact", "--fields", fields];
    args.iter().chain(["--secret", secret.as_str()].iter()).chain(extra).map(|a| a.to_string()).collect()
}

/// The fixture HubSpot's update passes: its headers and body, answered 200.
fn hubspot_fixture() -> Value {
    json!([{
        "method": "PATCH",
        "url": PATCH_URL,
        "headers": {"Authorization": "Bearer {{secret.access_token}}", "content-type": "application/json"},
        "body": {"properties": {"last_completed_page": "Connect your CRM", "onboarding_step": "3"}},
        "response": {"status": 200, "body": {"id": "1948209"}}
    }])
}

fn write(dir: &Path, name: &str, fixture: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(fixture).unwrap()).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_fixture_matching_headers_and_body_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = write(tmp.path(), "ok.json", &hubspot_fixture());
    let out = connector_test(hubspot(&["--responses", &fixture])).await;
    let (stdout, _) = exited(&out, 0);
    assert!(stdout.contains("ok: 1 request(s) as the fixture expects, outcome delivered"), "{stdout}");
}

#[tokio::test]
async fn a_header_or_body_that_differs_fails_naming_the_step_and_the_difference_never_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fixture = hubspot_fixture();
    fixture[0]["headers"]["content-type"] = json!("text/plain");
    fixture[0]["headers"]["Authorization"] = json!("Bearer {{secret.access_token}}-rotated");
    fixture[0]["body"]["properties"]["onboarding_step"] = json!("4");
    let fixture = write(tmp.path(), "differs.json", &fixture);
    let out = connector_test(hubspot(&["--responses", &fixture])).await;
    let (stdout, stderr) = exited(&out, 1);
    for says in [
        r#"error: step 1: header authorization: expected "Bearer {{secret.access_token}}-rotated", got "Bearer {{secret.access_token}}""#,
        r#"error: step 1: header content-type: expected "text/plain", got "application/json""#,
        r#"error: step 1: body at /properties/onboarding_step: expected "4", got "3""#,
    ] {
        assert!(stderr.contains(says), "{says}\nin: {stderr}");
    }
    // Answered all the same: the difference is the report, not what followed.
    assert!(stdout.contains("outcome: delivered") && stdout.contains("FAILED: 3 problem(s)"), "{stdout}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));

    let mut text_body = hubspot_fixture();
    let body = text_body[0].as_object_mut().unwrap();
    body.remove("body");
    body.insert("body_contains".into(), json!("Connect your ERP"));
    let fixture = write(tmp.path(), "contains.json", &text_body);
    let (_, stderr) = exited(&connector_test(hubspot(&["--responses", &fixture])).await, 1);
    assert!(stderr.contains(r#"error: step 1: body: expected it to contain "Connect your ERP", got "{"#), "{stderr}");
}

#[tokio::test]
async fn record_against_a_mapped_fake_writes_a_fixture_without_secrets_that_then_passes() {
    let tmp = tempfile::tempdir().unwrap();
    // The fake echoes the token: the fixture must hold it as a placeholder.
    let fake = Receiver::start(|_| {
        reply(200, &[("content-type", "application/json")], format!(r#"{{"id":"1948209","echo":"{TOKEN}"}}"#))
    })
    .await;
    let recorded = tmp.path().join("recorded.json").display().to_string();
    let map = format!("api.hubapi.com={}", fake.addr);
    // No --allow-private-networks: the mapped address is the author's choice.
    let out = connector_test(hubspot(&["--record", &recorded, "--map-host", &map])).await;
    let (stdout, stderr) = exited(&out, 0);
    assert!(stdout.contains(&format!("recorded 1 request(s) to {recorded}")), "{stdout}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));

    let calls = fake.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].method.as_str(), calls[0].path_and_query.as_str()), ("PATCH", PATCH_PATH));
    assert_eq!(calls[0].header("host"), Some("api.hubapi.com"), "the fake sees the vendor's host");
    assert_eq!(calls[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));

    let text = std::fs::read_to_string(&recorded).unwrap();
    assert!(!text.contains(TOKEN), "{text}");
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let entry = &fixture[0];
    assert_eq!((entry["method"].as_str(), entry["url"].as_str()), (Some("PATCH"), Some(PATCH_URL)));
    assert_eq!(
        entry["headers"],
        json!({"authorization": "Bearer {{secret.access_token}}", "content-type": "application/json"})
    );
    assert_eq!(entry["body"], hubspot_fixture()[0]["body"]);
    assert_eq!(entry["response"]["status"], 200);
    assert_eq!(entry["response"]["body"], json!({"id": "1948209", "echo": "{{secret.access_token}}"}));
    assert_eq!(entry["response"]["headers"]["content-type"], "application/json");

    let out = connector_test(hubspot(&["--responses", &recorded])).await;
    let (stdout, _) = exited(&out, 0);
    assert!(stdout.contains("ok: 1 request(s) as the fixture expects, outcome delivered"), "{stdout}");
    assert_eq!(fake.requests().len(), 1, "the replay never touched the network");

    // A request that gets no answer cannot be a fixture: nothing is written.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let unanswered = tmp.path().join("unanswered.json");
    let map = format!("api.hubapi.com={closed}");
    let out = connector_test(hubspot(&["--record", unanswered.to_str().unwrap(), "--map-host", &map])).await;
    let (_, stderr) = exited(&out, 1);
    assert!(stderr.contains(&format!("error: step 1: PATCH {PATCH_URL} got no response (")), "{stderr}");
    assert!(!unanswered.exists());
}

/// The webhook connector signs each request with the attempt time and sends
/// the event's creation time: what the recording leaves out or fixes keeps
/// the replay passing.
#[tokio::test]
async fn a_recorded_signed_webhook_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::answering(204, "").await;
    let webhook = component_path("switchboard-connector-webhook").display().to_string();
    let settings = json!({"url": receiver.url("/hooks/onboarding")}).to_string();
    let secret = format!("signing_secret={WEBHOOK_SECRET}");
    let args = |mode: &str, file: &str| -> Vec<String> {
        [webhook.as_str(), "--event", &seed_event_file(), "--action", "send_webhook", "--settings", &settings]
            .into_iter()
            .chain(["--secret", secret.as_str(), "--allow-private-networks", mode, file])
            .map(String::from)
            .collect()
    };
    let recorded = tmp.path().join("webhook.json").display().to_string();
    exited(&connector_test(args("--record", &recorded)).await, 0);
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&recorded).unwrap()).unwrap();
    assert_eq!(fixture[0]["body"]["timestamp"], "2026-01-01T00:00:00.000Z", "{fixture}");
    assert!(fixture[0]["headers"].get("webhook-signature").is_none(), "{fixture}");
    let (stdout, _) = exited(&connector_test(args("--responses", &recorded)).await, 0);
    assert!(stdout.contains("ok: 1 request(s)"), "{stdout}");
}

#[tokio::test]
async fn record_refuses_bad_map_hosts_and_secrets_too_short_to_redact() {
    let tmp = tempfile::tempdir().unwrap();
    let out_file = tmp.path().join("never.json").display().to_string();
    let out = connector_test(hubspot(&["--record", &out_file, "--map-host", "api.hubapi.com=fake:8081"])).await;
    let (_, stderr) = exited(&out, 2);
    assert!(stderr.contains("--map-host `api.hubapi.com`: `fake:8081` is not an IP address and port"), "{stderr}");

    let fixture = write(tmp.path(), "ok.json", &hubspot_fixture());
    let out = connector_test(hubspot(&["--responses", &fixture, "--map-host", "api.hubapi.com=127.0.0.1:9"])).await;
    let (_, stderr) = exited(&out, 2);
    assert!(stderr.contains("--map-host applies only with --record"), "{stderr}");

    let mut short = hubspot(&["--record", &out_file]);
    let i = short.iter().position(|a| a.starts_with("access_token=")).unwrap();
    short[i] = "access_token=short".into();
    let (_, stderr) = exited(&connector_test(short).await, 2);
    assert!(stderr.contains("--secret access_token is shorter than 8 bytes"), "{stderr}");
    assert!(!Path::new(&out_file).exists());
}

#[tokio::test]
async fn a_server_with_map_hosts_delivers_a_vendor_host_to_the_mapped_address() {
    let fake = Receiver::start(|_| reply(200, &[("content-type", "application/json")], r#"{"id":"1948209"}"#)).await;
    let to = fake.addr.to_string();
    let host = TestHost::start_with(|c| {
        // The mapped address is loopback, allowed although private networks are not.
        c.egress.allow_private_networks = false;
        c.egress.allow_hosts.clear();
        c.egress.map_hosts.insert("api.hubapi.com".into(), to);
    })
    .await;
    let ws = host.workspace("staging").await;
    let connection = json!({"connector": "hubspot", "name": "crm", "settings": {}, "secrets": {"access_token": TOKEN}});
    let rule = json!({"event": "page.completed", "action": "upsert_contact",
                      "fields": {"email": "{{ payload.email }}", "properties": {"onboarding_step": "{{ payload.sequence_step }}"}}});
    host.route(&ws, connection, rule).await;
    let event = host.emit_ok(&ws, seed_event()).await;
    assert_eq!(host.settled_event(&ws, &event).await["status"], "completed");
    let attempts = host.only_delivery_attempts(&ws, &event).await;
    assert_eq!(attempts[0]["outcome"], "delivered", "{attempts:?}");
    assert_eq!(attempts[0]["steps"][0]["request"]["url"], PATCH_URL, "the record keeps the vendor's URL");

    let calls = fake.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path_and_query, PATCH_PATH);
    assert_eq!(calls[0].header("host"), Some("api.hubapi.com"));
    assert_eq!(calls[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(calls[0].json(), json!({"properties": {"onboarding_step": "3"}}));
}

#[tokio::test]
async fn a_bad_map_hosts_address_stops_the_server_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = switchboard_tests::host::test_config(dir.path());
    config.egress.map_hosts.insert("api.hubapi.com".into(), "hubspot-fake:8081".into());
    let Err(err) = switchboard::server::build(config).await else {
        panic!("a bad map_hosts address must stop the start")
    };
    assert!(format!("{err:#}").contains("egress.map_hosts: `api.hubapi.com`: `hubspot-fake:8081` is not"), "{err:#}");
}
