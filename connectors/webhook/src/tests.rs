//! The webhook connector's logic, natively, against a scripted host.

use serde::Deserialize;
use switchboard_sdk::testing::{MockHost, event, secrets};

use super::*;

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
    negative: Negative,
}

#[derive(Deserialize)]
struct Vector {
    secret: String,
    id: String,
    timestamp: u64,
    body: String,
    signature: String,
}

#[derive(Deserialize)]
struct Negative {
    signature: String,
}

fn vectors() -> Vectors {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/standard-webhooks.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).expect("vectors parse")
}

/// Deliver `body` as the webhook body with the vector's id and timestamp and
/// return the request the connector sent.
fn send_signed(v: &Vector) -> Request {
    let host = MockHost::new().secret(SIGNING_SECRET, &v.secret).respond(200, "");
    let mut ev = event("test", json!({}));
    ev.delivery_id = v.id.clone();
    ev.attempt_time = v.timestamp;
    let body: Value = serde_json::from_str(&v.body).unwrap();
    let delivery = Delivery::new(ev, "send_webhook", json!({"body": body}), json!({"url": "https://example.com/hook"}));
    Webhook::deliver(&host, delivery).expect("delivered");
    host.requests().remove(0)
}

#[test]
fn reproduces_every_standard_webhooks_vector() {
    let all = vectors();
    assert_eq!(all.vectors.len(), 3);
    let mut end_to_end = 0;
    for v in &all.vectors {
        let sent = send_signed(v);
        // serde_json re-serialises compactly; a vector whose body is not
        // compact is checked through the raw-body path below.
        if sent.body_text() == v.body {
            assert_eq!(sent.header_value("webhook-signature"), Some(v.signature.as_str()), "vector {}", v.id);
            end_to_end += 1;
        }
        assert_eq!(sent.header_value("webhook-id"), Some(v.id.as_str()));
        assert_eq!(sent.header_value("webhook-timestamp"), Some(v.timestamp.to_string().as_str()));
    }
    // Vector 2 survives re-serialisation; vector 3 is the default envelope and
    // goes through deliver() byte for byte in its own test below.
    assert_eq!(end_to_end, 1, "vector 2 goes through deliver() end to end");
    // Every vector, byte-exact body, through the same signing function.
    for v in &all.vectors {
        let host = MockHost::new().secret(SIGNING_SECRET, &v.secret);
        let signed = format!("{}.{}.{}", v.id, v.timestamp, v.body);
        let mac = host.hmac_sha256(SIGNING_SECRET, KeyEncoding::StandardWebhooks, signed.as_bytes()).unwrap();
        assert_eq!(format!("v1,{}", BASE64.encode(mac)), v.signature, "vector {}", v.id);
    }
    let first = &all.vectors[0];
    let host = MockHost::new().secret(SIGNING_SECRET, &first.secret);
    let mac = host
        .hmac_sha256(
            SIGNING_SECRET,
            KeyEncoding::StandardWebhooks,
            format!("{}.{}.{}", first.id, first.timestamp, first.body).as_bytes(),
        )
        .unwrap();
    assert_ne!(format!("v1,{}", BASE64.encode(mac)), all.negative.signature);
}

#[test]
fn default_envelope_matches_the_page_completed_vector_byte_for_byte() {
    let all = vectors();
    let v = &all.vectors[2];
    let data: Value = serde_json::from_str(&v.body).unwrap();
    let host = MockHost::new().secret(SIGNING_SECRET, &v.secret).respond(204, "");
    let mut ev = event("page.completed", json!({}));
    // The payload exactly as stored (key order preserved).
    let raw = &v.body[v.body.find("\"data\":").unwrap() + 7..v.body.len() - 1];
    ev.payload = raw.to_string();
    ev.created_at = data["timestamp"].as_str().unwrap().to_string();
    ev.delivery_id = v.id.clone();
    ev.attempt_time = v.timestamp;
    let delivery = Delivery::new(ev, "send_webhook", json!({}), json!({"url": "https://example.com/hook"}));
    assert_eq!(Webhook::deliver(&host, delivery), Ok("HTTP 204".to_string()));
    let sent = host.requests().remove(0);
    assert_eq!(sent.body_text(), v.body);
    assert_eq!(sent.header_value("webhook-signature"), Some(v.signature.as_str()));
    assert_eq!(sent.header_value("content-type"), Some("application/json"));
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.url, "https://example.com/hook");
}

fn deliver_against(host: &MockHost, settings: Value) -> Result<String, Failure> {
    let delivery = Delivery::new(event("page.completed", json!({"step": 3})), "send_webhook", json!({}), settings);
    Webhook::deliver(host, delivery)
}

fn secret_host() -> MockHost {
    MockHost::new().secret(SIGNING_SECRET, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
}

#[test]
fn bearer_token_is_sent_as_a_placeholder_only_when_the_connection_has_one() {
    let url = json!({"url": "https://example.com/hook"});
    let without = secret_host().respond(200, "");
    deliver_against(&without, url.clone()).unwrap();
    assert_eq!(without.requests()[0].header_value("authorization"), None);

    let with = secret_host().secret(BEARER_TOKEN, "tok-123").respond(200, "");
    deliver_against(&with, url).unwrap();
    assert_eq!(with.requests()[0].header_value("authorization"), Some("Bearer {{secret.bearer_token}}"));
    assert!(!with.requests()[0].body_text().contains("tok-123"));
}

#[test]
fn custom_method_and_headers_are_sent() {
    let host = secret_host().respond(200, "");
    deliver_against(&host, json!({"url": "https://example.com/h", "method": "PUT", "headers": {"X-Team": "growth"}}))
        .unwrap();
    let sent = &host.requests()[0];
    assert_eq!(sent.method, "PUT");
    assert_eq!(sent.header_value("x-team"), Some("growth"));
}

#[test]
fn classifies_receiver_answers_as_standard_webhooks_says() {
    let url = json!({"url": "https://example.com/hook"});
    type Case = (u16, Vec<(&'static str, &'static str)>, fn(&Failure) -> bool);
    let cases: Vec<Case> = vec![
        (410, vec![], |f| matches!(f, Failure::Permanent(m) if m.contains("410"))),
        (400, vec![], |f| matches!(f, Failure::Permanent(_))),
        (
            301,
            vec![("Location", "http://169.254.169.254/")],
            |f| matches!(f, Failure::Permanent(m) if m.contains("redirect")),
        ),
        (429, vec![("Retry-After", "2")], |f| matches!(f, Failure::RateLimited(r) if r.after_ms == Some(2000))),
        (502, vec![], |f| matches!(f, Failure::Retryable(_))),
        (503, vec![("Retry-After", "5")], |f| matches!(f, Failure::Retryable(r) if r.after_ms == Some(5000))),
        (504, vec![], |f| matches!(f, Failure::Retryable(_))),
        (401, vec![], |f| matches!(f, Failure::Auth(_))),
    ];
    for (status, headers, expected) in cases {
        let host = secret_host().respond_with(status, &headers, "nope");
        let failure = deliver_against(&host, url.clone()).expect_err("must fail");
        assert!(expected(&failure), "HTTP {status} gave {failure:?}");
    }
    let timeout = secret_host().fail(SendError::Timeout);
    assert!(matches!(deliver_against(&timeout, url), Err(Failure::Retryable(_))));
}

#[test]
fn a_missing_signing_secret_is_a_clear_permanent_failure() {
    let host = MockHost::new();
    let failure = deliver_against(&host, json!({"url": "https://example.com/hook"})).unwrap_err();
    assert_eq!(failure, Failure::permanent("cannot sign: no secret named `signing_secret`"));
    assert!(host.requests().is_empty());
}

#[test]
fn validate_names_the_faulty_setting() {
    assert_eq!(Webhook::validate(&json!({"url": "https://ok.example"})), Ok(()));
    let err = |s: Value| Webhook::validate(&s).unwrap_err();
    assert!(err(json!({})).contains("settings.url"));
    assert!(err(json!({"url": "ftp://x"})).contains("settings.url"));
    assert!(err(json!({"url": "https://x.io", "method": "GET"})).contains("settings.method"));
    assert!(
        err(json!({"url": "https://x.io", "headers": {"webhook-id": "x"}})).contains("settings.headers.webhook-id")
    );
    assert!(err(json!({"url": "https://x.io", "headers": {"a": 1}})).contains("settings.headers.a"));
}

#[test]
fn describes_itself_per_spec() {
    let m = Webhook::describe();
    assert_eq!(m.name, "webhook");
    assert_eq!(m.actions[0].name, "send_webhook");
    assert_eq!(secrets(&m), [(SIGNING_SECRET, true), (BEARER_TOKEN, false)]);
    assert_eq!(m.allowed_hosts, ["*"]);
}
