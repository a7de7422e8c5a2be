//! The API's own bounds: every refusal is JSON
//! `{"message", "error"?}` — unknown routes, wrong methods, bodies too large,
//! not JSON, malformed or of the wrong shape, bad paths and queries — and
//! every name, reference, secret, setting and nesting depth a tenant sends is
//! bounded, refused with a 422 whose message (and `error.path`) names the
//! field. The bounds live in `switchboard::api::limits`, listed in
//! docs/limits.md.

use reqwest::header::{ALLOW, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::api::limits::{MAX_DEPTH, MAX_EVENT_FIELD_BYTES, MAX_SECRET_BYTES, MAX_SETTINGS_BYTES};
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::host::{ADMIN, TestHost, Ws};

/// One answer, with the headers the tests look at.
struct Answer {
    status: StatusCode,
    allow: Option<String>,
    body: Value,
}

/// Send `body` with `content_type` as the admin, and insist the answer is JSON.
async fn send(host: &TestHost, method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Answer {
    let mut req = reqwest::Client::new().request(method.clone(), format!("{}{path}", host.url)).bearer_auth(ADMIN);
    if let Some(t) = content_type {
        req = req.header(CONTENT_TYPE, t);
    }
    let res = req.body(body).send().await.expect("request");
    let status = res.status();
    let content = res.headers().get(CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
    let allow = res.headers().get(ALLOW).map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    assert_eq!(content.as_deref(), Some("application/json"), "{method} {path} answered {status}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
    Answer { status, allow, body }
}

async fn send_json(host: &TestHost, method: Method, path: &str, body: &Value) -> Answer {
    send(host, method, path, Some("application/json"), serde_json::to_vec(body).unwrap()).await
}

/// The answer is `status` with a message containing `fragment`.
fn assert_refused(answer: &Answer, status: StatusCode, fragment: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let message = answer.body["message"].as_str().unwrap_or_else(|| panic!("no message: {}", answer.body));
    assert!(message.contains(fragment), "`{message}` should mention `{fragment}`");
}

/// A 422 whose message and `error.path` name `field`.
fn assert_names(answer: &Answer, field: &str) {
    assert_refused(answer, StatusCode::UNPROCESSABLE_ENTITY, &format!("`{field}`"));
    assert_eq!(answer.body["error"]["path"], field, "{}", answer.body);
}

fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!({"a": inner}))
}

fn connections(ws: &Ws) -> String {
    format!("/api/v1/workspaces/{}/connections", ws.id)
}

/// A workspace with a webhook connection: the workspace, the connection,
/// and the path of its rules.
async fn with_a_connection(host: &TestHost) -> (Ws, String, String) {
    let ws = host.workspace("acme").await;
    let conn = host.webhook_connection(&ws, "https://hooks.example.com/in").await;
    let rules = format!("/api/v1/workspaces/{}/rules", ws.id);
    (ws, conn, rules)
}

fn webhook() -> Value {
    json!({"connector": "webhook", "name": "hook", "settings": {"url": "https://hooks.example.com/in"},
           "secrets": {"signing_secret": WEBHOOK_SECRET}})
}

#[tokio::test]
async fn a_request_to_an_unknown_route_answers_json_404() {
    let host = TestHost::start().await;
    for path in ["/nope", "/api/v1/workspace", "/api/v1/workspaces/ws-1/nothing/here", "/api/v2/events"] {
        let answer = send(&host, Method::GET, path, None, Vec::new()).await;
        assert_refused(&answer, StatusCode::NOT_FOUND, &format!("no route for GET {path}"));
    }
    let answer = send(&host, Method::POST, "/api/v1/nope?token=hunter2", None, Vec::new()).await;
    assert_refused(&answer, StatusCode::NOT_FOUND, "/api/v1/nope");
    assert!(!answer.body.to_string().contains("hunter2"), "the query is never echoed: {}", answer.body);
}

#[tokio::test]
async fn a_wrong_method_answers_json_405_and_keeps_the_allow_header() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let cases = [
        (Method::DELETE, "/api/v1/workspaces".to_owned(), "GET,HEAD,POST"),
        (Method::PUT, format!("/api/v1/workspaces/{}/rules", ws.id), "GET,HEAD,POST"),
        (Method::GET, "/api/v1/events".to_owned(), "POST"),
        (Method::GET, "/api/v1/events/bulk".to_owned(), "POST"),
        (Method::POST, "/api/v1/connectors/webhook".to_owned(), "PUT"),
    ];
    for (method, path, allowed) in cases {
        let answer = send(&host, method.clone(), &path, None, Vec::new()).await;
        assert_refused(&answer, StatusCode::METHOD_NOT_ALLOWED, &format!("{method} is not allowed on {path}"));
        assert_eq!(answer.allow.as_deref(), Some(allowed), "{method} {path}");
    }
}

#[tokio::test]
async fn a_3_mib_management_request_is_refused_with_a_json_413() {
    let host = TestHost::start().await;
    let body = serde_json::to_vec(&json!({"name": "x".repeat(3 << 20)})).unwrap();
    let answer = send(&host, Method::POST, "/api/v1/workspaces", Some("application/json"), body).await;
    assert_refused(&answer, StatusCode::PAYLOAD_TOO_LARGE, "larger than the 2097152 byte limit");
    let list = host.get("/api/v1/workspaces").await;
    assert_eq!(list["count"], 0, "nothing created: {list}");

    // A connector upload keeps its own, larger limit: 3 MiB is read, and refused for what it is.
    let answer = send(&host, Method::PUT, "/api/v1/connectors/junk", Some("application/wasm"), vec![0; 3 << 20]).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
}

#[tokio::test]
async fn an_ingest_body_over_its_limit_is_refused_with_a_json_413() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let big = json!({"event": "x", "payload": {"blob": "x".repeat(300 << 10)}});
    let res = host.ingest(&ws, "/api/v1/events").json(&big).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("262144 byte limit"), "{body}");
}

#[tokio::test]
async fn a_management_body_that_is_not_json_is_refused_with_a_json_415() {
    let host = TestHost::start().await;
    let body = br#"{"name": "acme"}"#.to_vec();
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let answer = send(&host, Method::POST, "/api/v1/workspaces", content_type, body.clone()).await;
        assert_refused(&answer, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content type must be application/json");
    }
    let answer = send(&host, Method::POST, "/api/v1/workspaces", Some("application/json; charset=utf-8"), body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "a charset parameter is fine: {}", answer.body);
}

#[tokio::test]
async fn malformed_json_is_refused_with_a_json_400() {
    let host = TestHost::start().await;
    let bodies: [&[u8]; 4] = [b"{\"name\": ", b"", b"{name: 1}", b"{\"name\": \"\xff\"}"];
    for body in bodies {
        let answer = send(&host, Method::POST, "/api/v1/workspaces", Some("application/json"), body.to_vec()).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "malformed JSON");
    }
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_refused_with_a_422_naming_the_field() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let workspaces = "/api/v1/workspaces";
    let keys = format!("/api/v1/workspaces/{}/keys", ws.id);
    let rules = format!("/api/v1/workspaces/{}/rules", ws.id);
    let cases = [
        (workspaces, json!({"name": 3}), "name"),
        (workspaces, json!({}), "name"),
        (workspaces, json!({"name": "a", "owner": "b"}), "owner"),
        (&keys, json!({"kind": "root"}), "kind"),
        (
            &connections(&ws),
            json!({"connector": "webhook", "name": "h", "secrets": {"signing_secret": 12345678}}),
            "secrets",
        ),
        (&rules, json!({"event": "e", "connection": "c", "action": "a", "active": "yes"}), "active"),
    ];
    for (path, body, field) in cases {
        let answer = send_json(&host, Method::POST, path, &body).await;
        assert_names(&answer, field);
    }
    for body in [json!([{"name": "a"}]), json!("acme")] {
        let answer = send_json(&host, Method::POST, workspaces, &body).await;
        assert_refused(&answer, StatusCode::UNPROCESSABLE_ENTITY, "the body must be a JSON object");
    }
    // A new key takes an empty body as well as a JSON one.
    let answer = send(&host, Method::POST, &keys, None, Vec::new()).await;
    assert_eq!((answer.status, &answer.body["kind"]), (StatusCode::CREATED, &json!("secret")), "{}", answer.body);
}

#[tokio::test]
async fn a_path_or_query_that_cannot_be_read_answers_json_400_naming_it() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let answer = send(&host, Method::GET, "/api/v1/workspaces/%FF%FE", None, Vec::new()).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid path");
    let events = format!("/api/v1/workspaces/{}/events", ws.id);
    for (query, fragment) in [
        ("limit=abc", "invalid query"),
        ("limit=0", "`limit` must be between 1 and 200"),
        ("limit=201", "`limit` must be between 1 and 200"),
        ("limit=99999999999999999999999", "invalid query"),
        ("status=lost", "`status`"),
    ] {
        let answer = send(&host, Method::GET, &format!("{events}?{query}"), None, Vec::new()).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, fragment);
    }
    let cursor = "c".repeat(257);
    let answer = send(&host, Method::GET, &format!("{events}?cursor={cursor}"), None, Vec::new()).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "`cursor` must be at most 256 bytes");
}

#[tokio::test]
async fn an_over_long_workspace_name_is_refused_naming_the_field() {
    let host = TestHost::start().await;
    for name in ["é".repeat(201), "   ".to_owned(), "line\nbreak".to_owned()] {
        let answer = send_json(&host, Method::POST, "/api/v1/workspaces", &json!({"name": name})).await;
        assert_names(&answer, "name");
    }
    let answer = send_json(&host, Method::POST, "/api/v1/workspaces", &json!({"name": "é".repeat(200)})).await;
    assert_eq!(answer.status, StatusCode::CREATED, "200 characters is the bound itself: {}", answer.body);
}

#[tokio::test]
async fn over_long_connection_names_and_references_are_refused_naming_the_field() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    for field in ["name", "connector", "version"] {
        let mut body = webhook();
        body[field] = json!("v".repeat(201));
        assert_names(&send_json(&host, Method::POST, &connections(&ws), &body).await, field);
        body[field] = json!("");
        assert_names(&send_json(&host, Method::POST, &connections(&ws), &body).await, field);
    }
    let conn = host.webhook_connection(&ws, "https://hooks.example.com/in").await;
    let path = format!("{}/{conn}", connections(&ws));
    for field in ["name", "version"] {
        let answer = send_json(&host, Method::PATCH, &path, &json!({ field: "v".repeat(201) })).await;
        assert_names(&answer, field);
    }
    let answer = send_json(&host, Method::PATCH, &path, &json!({"name": "n".repeat(200)})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn an_over_long_secret_or_oversized_settings_are_refused_naming_the_field() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let mut body = webhook();
    body["secrets"]["signing_secret"] = json!("s".repeat(MAX_SECRET_BYTES + 1));
    assert_names(&send_json(&host, Method::POST, &connections(&ws), &body).await, "secrets.signing_secret");

    let mut body = webhook();
    body["settings"]["note"] = json!("n".repeat(MAX_SETTINGS_BYTES));
    assert_names(&send_json(&host, Method::POST, &connections(&ws), &body).await, "settings");
    let mut body = webhook();
    body["settings"] = json!(["https://hooks.example.com/in"]);
    assert_names(&send_json(&host, Method::POST, &connections(&ws), &body).await, "settings");

    let answer = host.get(&connections(&ws)).await;
    assert_eq!(answer["count"], 0, "nothing saved");
}

#[tokio::test]
async fn rule_names_are_held_to_what_ingest_accepts_naming_the_field() {
    let host = TestHost::start().await;
    let (ws, conn, rules) = with_a_connection(&host).await;
    let rule = json!({"event": "signup", "connection": conn, "action": "send_webhook"});
    let too_long = "e".repeat(MAX_EVENT_FIELD_BYTES + 1);
    for (field, value) in [
        ("event", json!(too_long)),
        ("event", json!(" ")),
        ("resource", json!(too_long)),
        ("resource_id", json!("")),
        ("connection", json!("c".repeat(201))),
        ("action", json!("a".repeat(201))),
    ] {
        let mut body = rule.clone();
        body[field] = value;
        assert_names(&send_json(&host, Method::POST, &rules, &body).await, field);
    }
    for field in ["event", "connection", "action"] {
        let mut body = rule.clone();
        body.as_object_mut().unwrap().remove(field);
        assert_names(&send_json(&host, Method::POST, &rules, &body).await, field);
    }
    let mut body = rule.clone();
    body["event"] = json!("e".repeat(MAX_EVENT_FIELD_BYTES));
    let id = host.rule(&ws, body).await;
    let answer = send_json(&host, Method::PATCH, &format!("{rules}/{id}"), &json!({"event": too_long})).await;
    assert_names(&answer, "event");
}

#[tokio::test]
async fn a_management_body_nested_deeper_than_32_levels_is_refused_naming_the_field() {
    let host = TestHost::start().await;
    let (ws, conn, rules) = with_a_connection(&host).await;
    let rule = |fields: Value| json!({"event": "e", "connection": conn, "action": "send_webhook", "fields": fields});

    let answer = send_json(&host, Method::POST, &rules, &rule(json!({"body": nested(MAX_DEPTH)}))).await;
    assert_names(&answer, "fields");
    assert!(answer.body["message"].as_str().unwrap().contains("deeper than 32 levels"), "{}", answer.body);
    let mut body = webhook();
    body["settings"]["extra"] = nested(MAX_DEPTH);
    assert_names(&send_json(&host, Method::POST, &connections(&ws), &body).await, "settings");

    // Far past serde_json's own limit of 128: still a 422 naming the field, found without parsing.
    let deep = format!(r#"{{"name": "x", "settings": {}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
    let answer = send(&host, Method::POST, &connections(&ws), Some("application/json"), deep.into_bytes()).await;
    assert_names(&answer, "settings");

    let answer = send_json(&host, Method::POST, &rules, &rule(json!({"body": nested(MAX_DEPTH - 1)}))).await;
    assert_eq!(answer.status, StatusCode::CREATED, "32 levels is the bound itself: {}", answer.body);
}

#[tokio::test]
async fn an_event_payload_nested_deeper_than_32_levels_is_refused_naming_the_field() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let (status, body) = host.emit(&ws, json!({"event": "e", "payload": nested(MAX_DEPTH + 1)})).await;
    assert_eq!((status, &body["error"]["path"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("payload")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("`payload` nests deeper than 32 levels"), "{body}");
    let (status, body) = host.emit(&ws, json!({"event": "e", "payload": nested(MAX_DEPTH)})).await;
    assert_eq!(status, StatusCode::CREATED, "32 levels is the bound itself: {body}");

    // In a bulk request the deep event alone is refused, in its place.
    let events = json!([{"event": "e", "payload": {"a": 1}}, {"event": "e", "payload": nested(MAX_DEPTH + 1)}]);
    let res = host.ingest(&ws, "/api/v1/events/bulk").json(&events).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::MULTI_STATUS);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["records"][1]["error"]["path"], "payload", "{body}");
}

#[tokio::test]
async fn replay_fields_are_checked_naming_the_field() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let replays = format!("/api/v1/workspaces/{}/replays", ws.id);
    for (body, field) in [
        (json!({"status": "lost"}), "status"),
        (json!({"status": "pending"}), "status"),
        (json!({"since": "yesterday"}), "since"),
        (json!({"until": 5}), "until"),
        (json!({"connection": "c".repeat(201)}), "connection"),
        (json!({"rule": ""}), "rule"),
    ] {
        assert_names(&send_json(&host, Method::POST, &replays, &body).await, field);
    }
}
