//! Secrets: redacted from everything stored or returned, also in
//! percent-encoded, case-folded, base64 and JSON-escaped forms; a secret
//! shorter than 8 bytes is refused on save.
//!
//! No connector can build a URL around a `{{secret.NAME}}` placeholder except
//! Slack in webhook mode, whose whole URL is the `webhook_url` secret, so the
//! through-the-service tests use it: a query string holding the probe value
//! `RT Secret:ü/x?&=`. The host-name probe (`MiXeDCaseSecretXyz`, which a URL
//! parser lower-cases) needs a connector that puts a placeholder in a host,
//! which none does; it is checked on the host's own refusal text instead.

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use switchboard::egress::EgressPolicy;
use switchboard::secrets::SecretSet;
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::host::{TestHost, Ws};
use switchboard_tests::receiver::{Receiver, reply};

/// Where the probe value sits in the webhook URL: a query string.
const PATH_AND_QUERY: &str = "/hooks?sig=RT Secret:ü/x?&=";

/// Every text the API shows about one settled event (the event, its
/// deliveries and their attempts, and the connection), and the attempts.
async fn everything_shown(host: &TestHost, ws: &Ws, event: &str, connection: &str) -> (String, Vec<Value>) {
    let base = format!("/api/v1/workspaces/{}", ws.id);
    let mut shown =
        vec![host.settled_event(ws, event).await, host.get(&format!("{base}/connections/{connection}")).await];
    let deliveries = host.get(&format!("{base}/events/{event}/deliveries")).await;
    let mut attempts = Vec::new();
    for d in deliveries["records"].as_array().unwrap() {
        let path = format!("{base}/deliveries/{}/attempts", d["id"].as_str().unwrap());
        let answer = host.get(&path).await;
        attempts.extend(answer["records"].as_array().unwrap().iter().cloned());
        shown.push(answer);
    }
    shown.push(deliveries);
    (serde_json::to_string(&shown).unwrap(), attempts)
}

/// The forms a webhook URL holding the probe takes on the way back, none of
/// which may be shown; compared ignoring case.
fn forms_of(secret: &str) -> Vec<String> {
    let mut form = Url::parse("http://x/").unwrap();
    form.query_pairs_mut().append_pair("u", secret);
    vec![
        secret.to_string(),
        Url::parse(secret).unwrap().to_string(),
        form.query().unwrap().trim_start_matches("u=").to_string(),
        // Any piece of the probe value, however encoded.
        "RT Secret".into(),
        "RT%20Secret".into(),
        "RT+Secret".into(),
    ]
}

fn assert_no_form(shown: &str, secret: &str) {
    let shown = shown.to_lowercase();
    for form in forms_of(secret) {
        assert!(!shown.contains(&form.to_lowercase()), "`{form}` is shown: {shown}");
    }
}

/// A Slack webhook-mode connection whose `webhook_url` secret is `url`, and
/// a rule sending every `page.completed` through it.
async fn slack_webhook(host: &TestHost, ws: &Ws, url: &str) -> String {
    let body = json!({"connector": "slack", "name": "hook", "settings": {"mode": "webhook"},
                      "secrets": {"webhook_url": url}, "rate_limit_per_second": 10_000});
    let conn = host.connection(ws, body).await;
    let rule = json!({"event": "page.completed", "connection": conn, "action": "send_message",
                      "fields": {"text": "hello"}});
    host.rule(ws, rule).await;
    conn
}

#[tokio::test]
async fn a_destination_echoing_the_secret_encoded_or_case_folded_shows_only_placeholders() {
    // A hostile destination answers with the URL it was called on, as it
    // arrived (percent-encoded), lower-cased, upper-cased, form-encoded and
    // in base64.
    let receiver = Receiver::start(|r| {
        use base64::Engine as _;
        let host = r.header("host").unwrap_or_default();
        let secret = format!("http://{host}{PATH_AND_QUERY}");
        let wire = format!("http://{host}{}", r.path_and_query);
        let mut form = Url::parse("http://x/").unwrap();
        form.query_pairs_mut().append_pair("u", &secret);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
        let echo = [wire.clone(), wire.to_lowercase(), wire.to_uppercase(), form.query().unwrap().to_string(), b64];
        reply(200, &[("X-Called", wire.as_str())], echo.join("\n"))
    })
    .await;
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let secret = receiver.url(PATH_AND_QUERY);
    let conn = slack_webhook(&host, &ws, &secret).await;
    let event = host.emit_event(&ws, "page.completed", json!({"step": 3})).await;

    let (shown, _) = everything_shown(&host, &ws, &event, &conn).await;
    let sent = &receiver.requests()[0];
    assert_eq!(sent.path_and_query, "/hooks?sig=RT%20Secret:%C3%BC/x?&=", "the real value went out, percent-encoded");
    assert!(shown.matches("secret.webhook_url}}").count() >= 5, "each echo became a placeholder: {shown}");
    assert_no_form(&shown, &secret);
}

#[tokio::test]
async fn a_failure_to_connect_never_quotes_the_url_that_holds_the_secret() {
    // A port nothing listens on: every attempt fails to connect, and the
    // transport error reaches the guest (which copies it into its failure)
    // and the attempt record.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let secret = format!("http://{closed}{PATH_AND_QUERY}");
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let conn = slack_webhook(&host, &ws, &secret).await;
    let event = host.emit_event(&ws, "page.completed", json!({"step": 3})).await;

    let (shown, attempts) = everything_shown(&host, &ws, &event, &conn).await;
    assert!(!attempts.is_empty(), "{shown}");
    for attempt in &attempts {
        let error = &attempt["steps"][0]["error"];
        assert_eq!(error["kind"], "connect", "{attempt}");
        let message = error["message"].as_str().unwrap();
        assert!(message.starts_with("error sending request"), "reqwest's own words, less the URL: {message}");
    }
    assert_no_form(&shown, &secret);
}

#[test]
fn a_secret_in_a_host_name_is_scrubbed_from_a_refusal_in_its_lower_cased_form() {
    let secrets = SecretSet::new([("tenant".to_string(), "MiXeDCaseSecretXyz".to_string())]);
    let url = Url::parse("https://MiXeDCaseSecretXyz.example.com/v1").unwrap();
    let refused = EgressPolicy::default().check_url(&url, &[]).unwrap_err().0;
    assert!(refused.contains("mixedcasesecretxyz.example.com"), "the parser lower-cased the host: {refused}");

    let shown = secrets.scrub_str(&refused);
    assert!(shown.contains("{{secret.tenant}}.example.com"), "{shown}");
    assert!(!shown.to_lowercase().contains("mixedcasesecretxyz"), "{shown}");
}

#[tokio::test]
async fn a_secret_shorter_than_8_bytes_is_refused_naming_it() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let path = format!("/api/v1/workspaces/{}/connections", ws.id);
    let webhook = |bearer: &str| {
        json!({"connector": "webhook", "name": "hook", "settings": {"url": "https://hooks.example.com/in"},
               "secrets": {"signing_secret": WEBHOOK_SECRET, "bearer_token": bearer}})
    };

    let refused = host.admin(Method::POST, &path, Some(webhook("7-bytes")), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(refused["error"]["path"], "secrets.bearer_token", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("secrets.bearer_token") && message.contains('8'), "{message}");
    assert!(!message.contains("7-bytes"), "the value is not echoed: {message}");
    assert_eq!(host.get(&path).await["count"], 0, "nothing saved");

    let conn = host.connection(&ws, webhook("8-bytes!")).await;
    let conn_path = format!("{path}/{conn}");
    let patch = json!({"secrets": {"bearer_token": "short"}});
    let refused = host.admin(Method::PATCH, &conn_path, Some(patch), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(refused["error"]["path"], "secrets.bearer_token", "{refused}");
    let removal = json!({"secrets": {"bearer_token": null}});
    let removed = host.admin(Method::PATCH, &conn_path, Some(removal), StatusCode::OK).await;
    assert_eq!(removed["secrets"], json!(["signing_secret"]), "removing a secret needs no value");
}
