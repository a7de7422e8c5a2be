//! Connection limits: `rate_limit_per_second` in (0, 10 000] and
//! `concurrency` in 1..=256, otherwise 422 naming the field. A rate of zero
//! or less would make the scheduler spin; zero concurrency would park the
//! connection's deliveries forever.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::host::{TestHost, Ws};

fn connections(ws: &Ws) -> String {
    format!("/api/v1/workspaces/{}/connections", ws.id)
}

/// A valid webhook connection with `field` set to `value`.
fn webhook_with(field: &str, value: Value) -> Value {
    let mut body = json!({"connector": "webhook", "name": "hook", "settings": {"url": "https://hooks.example.com/in"},
                          "secrets": {"signing_secret": WEBHOOK_SECRET}});
    body[field] = value;
    body
}

/// Out of bounds, or not a number at all: JSON has no NaN or infinity, so
/// those arrive as strings.
fn refused() -> Vec<(&'static str, Value)> {
    let rate = "rate_limit_per_second";
    let concurrency = "concurrency";
    vec![
        (rate, json!(0)),
        (rate, json!(0.0)),
        (rate, json!(-5)),
        (rate, json!(10_001)),
        (rate, json!(10_000.5)),
        (rate, json!("NaN")),
        (rate, json!("Infinity")),
        (rate, json!("100")),
        (concurrency, json!(0)),
        (concurrency, json!(257)),
        (concurrency, json!(-1)),
        (concurrency, json!(1.5)),
        (concurrency, json!("8")),
    ]
}

fn assert_names(refusal: &Value, field: &str) {
    assert_eq!(refusal["error"]["path"], field, "{refusal}");
    assert!(refusal["message"].as_str().unwrap().contains(field), "{refusal}");
}

#[tokio::test]
async fn a_connection_with_limits_out_of_bounds_is_refused_naming_the_field() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    for (field, value) in refused() {
        let body = webhook_with(field, value);
        let refusal = host.admin(Method::POST, &connections(&ws), Some(body), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_names(&refusal, field);
    }
    assert_eq!(host.get(&connections(&ws)).await["count"], 0, "nothing saved");
}

#[tokio::test]
async fn the_bounds_themselves_are_accepted() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    for (rate, concurrency) in [(10_000.0, 256), (0.001, 1)] {
        let mut body = webhook_with("rate_limit_per_second", json!(rate));
        body["concurrency"] = json!(concurrency);
        let conn = host.admin(Method::POST, &connections(&ws), Some(body), StatusCode::CREATED).await;
        assert_eq!(conn["rate_limit_per_second"].as_f64(), Some(rate), "{conn}");
        assert_eq!(conn["concurrency"], concurrency, "{conn}");
    }
}

#[tokio::test]
async fn an_update_is_held_to_the_same_bounds() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let conn = host.webhook_connection(&ws, "https://hooks.example.com/in").await;
    let path = format!("{}/{conn}", connections(&ws));
    for (field, value) in refused() {
        let patch = json!({ field: value });
        let refusal = host.admin(Method::PATCH, &path, Some(patch), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_names(&refusal, field);
    }
    let unchanged = host.get(&path).await;
    assert_eq!((&unchanged["rate_limit_per_second"], &unchanged["concurrency"]), (&Value::Null, &Value::Null));

    let patch = json!({"rate_limit_per_second": 10_000, "concurrency": 256});
    let updated = host.admin(Method::PATCH, &path, Some(patch), StatusCode::OK).await;
    assert_eq!(
        (updated["rate_limit_per_second"].as_f64(), updated["concurrency"].as_u64()),
        (Some(10_000.0), Some(256))
    );
}
