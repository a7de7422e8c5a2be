//! No crash loops: a delivery whose attempt takes the whole process
//! down (a test-only fault hook aborts on its event) is retried after each
//! restart, recorded as `interrupted` each time, and failed with outcome
//! `interrupted` at the third interruption in a row — while the service
//! keeps delivering everything else.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::process::{ADMIN, ServerProcess};
use switchboard_tests::receiver::{Receiver, reply};

async fn api(client: &reqwest::Client, url: &str, path: &str, body: Option<Value>) -> Value {
    let req = match body {
        Some(b) => client.post(format!("{url}{path}")).json(&b),
        None => client.get(format!("{url}{path}")),
    };
    let res = req.bearer_auth(ADMIN).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// Ready, or exited again (the poison delivery may be claimed at once).
async fn ready_or_dead(server: &ServerProcess, client: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.is_alive() && Instant::now() < deadline {
        let ready = client.get(format!("{}/readyz", server.url())).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_kills_the_process_fails_as_interrupted_after_three_restarts() {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = received.clone();
    let receiver = Receiver::start(move |r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        seen.lock().unwrap().push(body["data"]["n"].to_string());
        reply(204, &[], "")
    })
    .await;
    let server = ServerProcess::start(&[
        ("SB_TEST_ABORT_ON_EVENT", "poison"),
        ("SWITCHBOARD_DELIVERY__LEASE", "2s"),
        ("SWITCHBOARD_SANDBOX__WALL", "1s"),
        ("SWITCHBOARD_SANDBOX__REQUEST_TIMEOUT", "1s"),
    ]);
    server.wait_ready().await;
    let (client, url) = (reqwest::Client::new(), server.url());
    let ws = api(&client, &url, "/api/v1/workspaces", Some(json!({"name": "poisoned"}))).await;
    let ws_id = ws["id"].as_str().unwrap().to_string();
    let conn = api(
        &client,
        &url,
        &format!("/api/v1/workspaces/{ws_id}/connections"),
        Some(json!({"connector": "webhook", "name": "r", "settings": {"url": receiver.url("/in")},
                    "secrets": {"signing_secret": WEBHOOK_SECRET}})),
    )
    .await;
    for event in ["poison", "ok"] {
        let rule = json!({"event": event, "connection": conn["id"], "action": "send_webhook"});
        api(&client, &url, &format!("/api/v1/workspaces/{ws_id}/rules"), Some(rule)).await;
    }
    let emit = |event: &'static str, n: u32| {
        let (client, url, key) = (client.clone(), url.clone(), ws["publishable_key"].as_str().unwrap().to_string());
        async move {
            let res = client
                .post(format!("{url}/api/v1/events"))
                .header("X-Meshes-Publishable-Key", key)
                .json(&json!({"event": event, "payload": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            res.json::<Value>().await.unwrap()["event"]["id"].as_str().unwrap().to_string()
        }
    };

    let poison = emit("poison", 0).await;
    // Each time the process dies, start it again, as a supervisor would.
    let mut restarts = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let delivery = loop {
        assert!(Instant::now() < deadline, "the poison delivery never settled; {restarts} restarts");
        if !server.is_alive() {
            restarts += 1;
            assert!(restarts <= 3, "a fourth abort: the service is crash-looping");
            server.kill9();
            server.spawn();
            ready_or_dead(&server, &client).await;
            continue;
        }
        let path = format!("/api/v1/workspaces/{ws_id}/events/{poison}/deliveries");
        if let Ok(res) = client.get(format!("{url}{path}")).bearer_auth(ADMIN).send().await
            && let Ok(v) = res.json::<Value>().await
            && v["records"][0]["status"] == "failed"
        {
            break v["records"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(restarts, 3, "aborted on the first attempt and after two interruptions");
    assert_eq!(delivery["last_outcome"], "interrupted");
    let attempts = api(
        &client,
        &url,
        &format!("/api/v1/workspaces/{ws_id}/deliveries/{}/attempts", delivery["id"].as_str().unwrap()),
        None,
    )
    .await;
    let outcomes: Vec<&str> =
        attempts["records"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["interrupted", "interrupted", "interrupted"]);

    // The service lives on and delivers everything else.
    for n in 1..=5 {
        emit("ok", n).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "other deliveries did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.is_alive());
    assert!(!received.lock().unwrap().contains(&"0".to_string()), "the poison never reached the destination");
}
