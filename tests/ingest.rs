//! The ingest API: Meshes-compatible bodies, keys, bulk
//! semantics, idempotency, and a clear error for every bad input with
//! nothing stored.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_tests::host::{ADMIN, TestHost, seed_event};
use switchboard_tests::receiver::Receiver;

async fn events_of(host: &TestHost, ws: &str) -> Vec<Value> {
    let v = host.get(&format!("/api/v1/workspaces/{ws}/events?limit=200")).await;
    v["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn accepts_the_seed_event_with_the_meshes_record() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme-prod").await;
    let (status, body) = host.emit(&ws, seed_event()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let e = &body["event"];
    assert!(e["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(e["type"], "event");
    assert_eq!(e["event"], "page.completed");
    assert_eq!(e["workspace"], ws.id.as_str());
    assert_eq!(e["resource"], "onboarding_sequence");
    assert_eq!(e["resource_id"], "workspace-setup");
    assert!(e["created_by"].as_str().unwrap().starts_with("key-"), "names the key, never the key itself");
    assert!(!body.to_string().contains(&ws.publishable));
    assert!(e["created_at"].as_str().unwrap().ends_with('Z'));
    let payload = host.get(&format!("/api/v1/workspaces/{}/events/{}/payload", ws.id, e["id"].as_str().unwrap())).await;
    assert_eq!(payload, seed_event()["payload"]);
}

#[tokio::test]
async fn rejects_bad_input_with_a_clear_error_and_stores_nothing() {
    let host = TestHost::start_with(|c| c.ingest.max_body_bytes = 32 << 10).await;
    let ws = host.workspace("a").await;
    let other = host.workspace("b").await;
    let revoked = host.workspace("c").await;
    let keys = host.get(&format!("/api/v1/workspaces/{}/keys", revoked.id)).await;
    for k in keys["records"].as_array().unwrap() {
        host.admin(
            Method::DELETE,
            &format!("/api/v1/workspaces/{}/keys/{}", revoked.id, k["id"].as_str().unwrap()),
            None,
            StatusCode::OK,
        )
        .await;
    }
    let forged = ws.publishable.replacen(&ws.id, &other.id, 1);
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let big = format!(r#"{{"event":"x","payload":{{"blob":"{}"}}}}"#, "x".repeat(40_000));
    let ok = r#"{"event":"x","payload":{"a":1}}"#;
    let pk = ws.publishable.as_str();
    // (what, key, content type, body, expected status, message fragment)
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            Some(pk),
            "application/json",
            b"{\"event\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            "wrong content type",
            Some(pk),
            "text/plain",
            ok.as_bytes().to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        (
            "body over the limit",
            Some(pk),
            "application/json",
            big.into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "32768 byte limit",
        ),
        (
            "invalid UTF-8",
            Some(pk),
            "application/json",
            b"{\"event\":\"\xff\xfe\",\"payload\":{\"a\":1}}".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            "nested 10,000 deep",
            Some(pk),
            "application/json",
            deep.into_bytes(),
            StatusCode::BAD_REQUEST,
            "recursion limit",
        ),
        (
            "empty payload",
            Some(pk),
            "application/json",
            br#"{"event":"x","payload":{}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`payload` is empty",
        ),
        (
            "payload not an object",
            Some(pk),
            "application/json",
            br#"{"event":"x","payload":[1]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "`payload` must be a JSON object",
        ),
        (
            "missing event name",
            Some(pk),
            "application/json",
            br#"{"payload":{"a":1}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "`event` is required",
        ),
        (
            "event name not a string",
            Some(pk),
            "application/json",
            br#"{"event":3,"payload":{"a":1}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "`event` must be a string",
        ),
        (
            "wrong type",
            Some(pk),
            "application/json",
            br#"{"type":"page","event":"x","payload":{"a":1}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "`type`",
        ),
        ("no key", None, "application/json", ok.as_bytes().to_vec(), StatusCode::UNAUTHORIZED, "missing key"),
        (
            "unknown key",
            Some("mesh_pub_ws-x_key-y_zzz"),
            "application/json",
            ok.as_bytes().to_vec(),
            StatusCode::UNAUTHORIZED,
            "unknown key",
        ),
        (
            "malformed key",
            Some("mesh_pub_nope"),
            "application/json",
            ok.as_bytes().to_vec(),
            StatusCode::UNAUTHORIZED,
            "malformed publishable key",
        ),
        (
            "revoked key",
            Some(revoked.publishable.as_str()),
            "application/json",
            ok.as_bytes().to_vec(),
            StatusCode::FORBIDDEN,
            "revoked",
        ),
        (
            "a key forged for another workspace",
            Some(forged.as_str()),
            "application/json",
            ok.as_bytes().to_vec(),
            StatusCode::UNAUTHORIZED,
            "unknown key",
        ),
    ];
    let client = reqwest::Client::new();
    for (what, key, content_type, body, status, message) in cases {
        let mut req =
            client.post(format!("{}/api/v1/events", host.url)).header("content-type", content_type).body(body);
        if let Some(k) = key {
            req = req.header("X-Meshes-Publishable-Key", k);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{what}");
        let body: Value = res.json().await.unwrap_or_else(|e| panic!("{what}: error body is not JSON: {e}"));
        let text = body["message"].as_str().unwrap_or_else(|| panic!("{what}: no message in {body}"));
        assert!(text.contains(message), "{what}: `{text}` should mention `{message}`");
    }
    for w in [&ws, &other, &revoked] {
        assert!(events_of(&host, &w.id).await.is_empty(), "nothing stored for rejected input");
    }
    let (status, _) = host.emit(&ws, json!({"event": "x", "payload": {"a": 1}})).await;
    assert_eq!(status, StatusCode::CREATED, "the server is fine afterwards");
}

#[tokio::test]
async fn a_secret_key_emits_too_and_revocation_works_at_once() {
    let host = TestHost::start().await;
    let ws = host.workspace("a").await;
    // As a backend would: the secret key as a bearer token.
    let host = &host;
    let emit = |key: String| async move {
        host.raw(Method::POST, "/api/v1/events", Some(&key), Some(json!({"event": "x", "payload": {"a": 1}}))).await.0
    };
    assert_eq!(emit(ws.secret.clone()).await, StatusCode::CREATED);
    let keys = host.get(&format!("/api/v1/workspaces/{}/keys", ws.id)).await;
    let secret_id = keys["records"].as_array().unwrap().iter().find(|k| k["kind"] == "secret").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    host.admin(Method::DELETE, &format!("/api/v1/workspaces/{}/keys/{secret_id}", ws.id), None, StatusCode::OK).await;
    assert_eq!(emit(ws.secret.clone()).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bulk_answers_in_input_order_with_201_207_and_400() {
    let host = TestHost::start().await;
    let ws = host.workspace("a").await;
    let bulk = |body: Value| {
        let req = host.ingest(&ws, "/api/v1/events/bulk").json(&body);
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    };
    let good = json!({"event": "a", "payload": {"n": 1}});
    let bad = json!({"event": "", "payload": {"n": 1}});
    let (s, v) = bulk(json!([good, good])).await;
    assert_eq!((s, v["count"].as_u64()), (StatusCode::CREATED, Some(2)), "{v}");
    let (s, v) = bulk(json!([good, bad, good])).await;
    assert_eq!(s, StatusCode::MULTI_STATUS, "{v}");
    assert_eq!((v["count"].as_u64(), v["error_count"].as_u64()), (Some(2), Some(1)));
    assert_eq!(v["records"][0]["type"], "event");
    assert_eq!(v["records"][1]["message"], "`event` is empty");
    assert_eq!(v["records"][2]["type"], "event");
    let (s, v) = bulk(json!([bad, bad])).await;
    assert_eq!((s, v["error_count"].as_u64()), (StatusCode::BAD_REQUEST, Some(2)));
    let (s, v) = bulk(json!([])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("got 0"));
    let (s, v) = bulk(Value::Array(vec![good.clone(); 101])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("got 101"));
    assert_eq!(events_of(&host, &ws.id).await.len(), 4, "2 + 2 accepted, nothing else");
}

#[tokio::test]
async fn idempotency_keys_return_the_original_and_create_nothing() {
    let receiver = Receiver::answering(200, "ok").await;
    let host = TestHost::start().await;
    let ws = host.workspace("a").await;
    host.webhook_route(&ws, &receiver.url("/h"), json!({"event": "signup", "action": "send_webhook"})).await;
    let body = json!({"event": "signup", "payload": {"user": "u1"}, "id": "client-42"});
    let (s1, first) = host.emit(&ws, body.clone()).await;
    let (s2, second) = host.emit(&ws, body).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(first["event"]["id"], second["event"]["id"]);
    let with_header = |n: u32| {
        let event = json!({"event": "signup", "payload": {"n": n}});
        host.ingest(&ws, "/api/v1/events").header("Idempotency-Key", "order-7").json(&event).send()
    };
    assert_eq!(with_header(1).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(with_header(2).await.unwrap().status(), StatusCode::OK);
    assert_eq!(events_of(&host, &ws.id).await.len(), 2);
    host.wait_until("two deliveries", || async { receiver.requests().len() >= 2 }).await;
    let deliveries = host.get(&format!("/api/v1/workspaces/{}/deliveries", ws.id)).await;
    assert_eq!(deliveries["count"], 2, "no new deliveries for repeats");
}

#[tokio::test]
async fn ingest_answers_cors_preflight_for_any_origin() {
    let host = TestHost::start().await;
    let res = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}/api/v1/events", host.url))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-meshes-publishable-key,content-type")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let (status, _) = host.raw(Method::GET, "/healthz", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_workspace_over_its_ingest_rate_gets_429_with_retry_after() {
    let host = TestHost::start_with(|c| c.ingest.rate_per_workspace = Some(2.0)).await;
    let ws = host.workspace("a").await;
    let other = host.workspace("b").await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(host.emit(&ws, json!({"event": "x", "payload": {"i": i}})).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 2, "{statuses:?}");
    let res =
        host.ingest(&ws, "/api/v1/events").json(&json!({"event": "x", "payload": {"i": 99}})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let (status, _) = host.emit(&other, json!({"event": "x", "payload": {"i": 0}})).await;
    assert_eq!(status, StatusCode::CREATED, "another workspace has its own budget");
    assert_eq!(events_of(&host, &ws.id).await.len(), 2, "nothing stored for rejected requests");
}
