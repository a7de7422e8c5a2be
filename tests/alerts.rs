//! Operator alerts: with `[alerts] workspace` set, Switchboard emits
//! `switchboard.connection.paused` and `switchboard.connection.failing`
//! into that workspace, where ordinary rules route them; at most one per
//! connection and kind per window, even when the alert workspace's own
//! connection is the one failing.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::config::AlertsConfig;
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::host::{TestHost, Ws};
use switchboard_tests::receiver::Receiver;

const PAUSED: &str = "switchboard.connection.paused";
const FAILING: &str = "switchboard.connection.failing";

/// A host whose `[alerts]` name a workspace made on it ("operators"): its
/// id is known only once created, so the host restarts with it configured.
async fn alerting_host(adjust: impl FnOnce(&mut AlertsConfig)) -> (TestHost, Ws) {
    let mut host = TestHost::start().await;
    let operators = host.workspace("operators").await;
    host.config.alerts.workspace = Some(operators.id.clone());
    adjust(&mut host.config.alerts);
    (host.restart().await, operators)
}

/// A tenant workspace whose `page.completed` events go to `url`; the connection.
async fn tenant(host: &TestHost, url: &str) -> (Ws, String) {
    let ws = host.workspace("acme").await;
    let conn = host.webhook_route(&ws, url, json!({"event": "page.completed", "action": "send_webhook"})).await;
    (ws, conn)
}

/// The `name` events in the operators' workspace.
async fn alerts(host: &TestHost, operators: &Ws, name: &str) -> Vec<Value> {
    let v = host.get(&format!("/api/v1/workspaces/{}/events?event={name}", operators.id)).await;
    v["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_connection_paused_by_a_401_raises_one_paused_alert_routed_by_an_ordinary_rule() {
    let inbox = Receiver::answering(204, "").await;
    let endpoint = Receiver::answering(401, "bad credentials").await;
    let (host, operators) = alerting_host(|_| {}).await;
    host.webhook_route(&operators, &inbox.url("/alerts"), json!({"event": PAUSED, "action": "send_webhook"})).await;
    let (acme, conn) = tenant(&host, &endpoint.url("/h")).await;

    host.emit_event(&acme, "page.completed", json!({"email": "ada@example.com"})).await;
    assert_eq!(host.paused_connection(&acme, &conn).await["inactive_reason"], "authentication_invalid");
    host.wait_until("the alert reaches the operators' webhook", || async { !inbox.requests().is_empty() }).await;
    let sent = inbox.requests()[0].json();
    assert_eq!(sent["type"], PAUSED);
    let expected = json!({"workspace_id": acme.id, "connection_id": conn, "name": "hook", "connector": "webhook",
                          "version": "latest", "reason": "authentication_invalid"});
    assert_eq!(sent["data"], expected);
    let text = inbox.requests()[0].text();
    assert!(!text.contains(WEBHOOK_SECRET) && !text.contains("ada@example.com"), "no secrets, no tenant payloads");
    let [alert] = &alerts(&host, &operators, PAUSED).await[..] else { panic!("one paused alert") };
    assert_eq!(
        (&alert["created_by"], &alert["resource"], &alert["resource_id"]),
        (&json!("switchboard"), &json!("connection"), &json!(conn))
    );

    // Resumed with the same bad secret, another delivery meets a 401 again
    // and pauses it again, within the window: no second alert.
    host.emit_event(&acme, "page.completed", json!({"n": 2})).await;
    host.wait_waiting(&acme, 2).await;
    let conn_path = format!("/api/v1/workspaces/{}/connections/{conn}", acme.id);
    host.admin(Method::PATCH, &conn_path, Some(json!({"active": true})), StatusCode::OK).await;
    host.wait_until("a 401 after resuming", || async { endpoint.requests().len() >= 2 }).await;
    host.paused_connection(&acme, &conn).await;
    host.wait_waiting(&acme, 2).await;
    assert_eq!(alerts(&host, &operators, PAUSED).await.len(), 1, "debounced within the window");
    assert_eq!(inbox.requests().len(), 1);
}

#[tokio::test]
async fn a_connection_failing_above_the_ratio_raises_one_failing_alert() {
    let inbox = Receiver::answering(204, "").await;
    let endpoint = Receiver::answering(500, "down").await;
    let (host, operators) = alerting_host(|a| {
        a.window = Duration::from_secs(60);
        a.min_attempts = 3;
    })
    .await;
    host.webhook_route(&operators, &inbox.url("/alerts"), json!({"event": FAILING, "action": "send_webhook"})).await;
    let (acme, conn) = tenant(&host, &endpoint.url("/h")).await;

    // Five attempts, all 500: the third tips it over (3 of 3 > 0.5).
    let id = host.emit_event(&acme, "page.completed", json!({"n": 1})).await;
    assert_eq!(host.settled_event(&acme, &id).await["status"], "failed");
    assert_eq!(endpoint.requests().len(), 5);
    host.wait_until("the alert reaches the operators' webhook", || async { !inbox.requests().is_empty() }).await;
    let sent = inbox.requests()[0].json();
    assert_eq!(sent["type"], FAILING);
    let data = &sent["data"];
    assert_eq!((&data["connection_id"], &data["workspace_id"]), (&json!(conn), &json!(acme.id)));
    assert_eq!((&data["failed"], &data["attempts"], &data["ratio"]), (&json!(3), &json!(3), &json!(1.0)));
    assert_eq!((&data["window_seconds"], &data["last_outcome"]), (&json!(60), &json!("rejected_server_error")));
    assert!(data["last_error"].as_str().is_some_and(|e| e.contains("500")), "{data}");
    assert_eq!(alerts(&host, &operators, FAILING).await.len(), 1, "attempts 4 and 5 are debounced");
    assert_eq!(inbox.requests().len(), 1);
}

#[tokio::test]
async fn an_alert_workspace_whose_own_connection_fails_does_not_loop() {
    // The operators' webhook fails too: the alert about the tenant fails
    // there, which raises one alert about the operators' connection itself,
    // which fails there as well — and that is all.
    let inbox = Receiver::answering(500, "down").await;
    let endpoint = Receiver::answering(500, "down").await;
    let (host, operators) = alerting_host(|a| {
        a.window = Duration::from_secs(60);
        a.min_attempts = 3;
    })
    .await;
    let own = host
        .webhook_route(&operators, &inbox.url("/alerts"), json!({"event": FAILING, "action": "send_webhook"}))
        .await;
    let (acme, conn) = tenant(&host, &endpoint.url("/h")).await;

    let id = host.emit_event(&acme, "page.completed", json!({"n": 1})).await;
    host.settled_event(&acme, &id).await;
    host.wait_until("two alerts", || async { alerts(&host, &operators, FAILING).await.len() >= 2 }).await;
    let raised = alerts(&host, &operators, FAILING).await;
    for alert in &raised {
        assert_eq!(host.settled_event(&operators, alert["id"].as_str().unwrap()).await["status"], "failed");
    }
    let mut about: Vec<&str> = raised.iter().map(|a| a["resource_id"].as_str().unwrap()).collect();
    about.sort();
    let mut expected = vec![conn.as_str(), own.as_str()];
    expected.sort();
    assert_eq!(about, expected, "one about the tenant's connection, one about the operators' own");
    assert_eq!(alerts(&host, &operators, FAILING).await.len(), 2, "no third");
    assert_eq!(inbox.requests().len(), 10, "five attempts for each alert");
}

#[tokio::test]
async fn a_missing_alert_workspace_drops_alerts_and_the_pause_still_holds() {
    let endpoint = Receiver::answering(401, "bad credentials").await;
    let host = TestHost::start_with(|c| c.alerts.workspace = Some("ws_gone".into())).await;
    let (acme, conn) = tenant(&host, &endpoint.url("/h")).await;
    host.emit_event(&acme, "page.completed", json!({"n": 1})).await;
    assert_eq!(host.paused_connection(&acme, &conn).await["inactive_reason"], "authentication_invalid");
    host.wait_waiting(&acme, 1).await;
    let stored = host.get("/api/v1/workspaces/ws_gone/events").await;
    assert_eq!(stored["records"], json!([]), "nothing is stored for a workspace that does not exist");
}
