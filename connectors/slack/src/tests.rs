//! The Slack connector's logic, natively, against a scripted host.

use switchboard_sdk::testing::{MockHost, action_names, event, secrets};

use super::*;

const POSTED: &str = r#"{"ok":true,"channel":"C0ONBOARD","ts":"1768471200.000100","message":{"type":"message","text":"hi","ts":"1768471200.000100"}}"#;

fn bot() -> Value {
    json!({"mode": "bot"})
}

fn webhook() -> Value {
    json!({"mode": "webhook"})
}

fn message() -> Value {
    json!({"channel": "C0ONBOARD", "text": "alex@northstar.io finished *Connect your CRM* (step 3)"})
}

fn bot_host() -> MockHost {
    MockHost::new().secret(BOT_TOKEN, "xoxb-test")
}

fn webhook_host() -> MockHost {
    MockHost::new().secret(WEBHOOK_URL, "https://hooks.slack.com/services/T0/B0/x")
}

/// A status, its headers, and what the failure must look like.
type Headers = &'static [(&'static str, &'static str)];
type Expect = fn(&Failure) -> bool;

fn deliver(host: &MockHost, fields: Value, settings: Value) -> Result<String, Failure> {
    Slack::deliver(host, Delivery::new(event("page.completed", json!({"sequence_step": 3})), ACTION, fields, settings))
}

/// The one request a delivery sent.
fn only_request(host: &MockHost) -> Request {
    let sent = host.requests();
    assert_eq!(sent.len(), 1, "exactly one call: {sent:?}");
    sent.into_iter().next().unwrap()
}

#[test]
fn bot_mode_posts_the_message_to_chat_post_message() {
    let host = bot_host().respond(200, POSTED);
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*Step 3* done"}}]);
    let fields = json!({"channel": "C0ONBOARD", "text": "Step 3 done", "blocks": blocks});
    assert_eq!(deliver(&host, fields.clone(), bot()), Ok("posted to C0ONBOARD at ts 1768471200.000100".to_string()));

    let sent = only_request(&host);
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.url, "https://slack.com/api/chat.postMessage");
    assert_eq!(sent.header_value("authorization"), Some("Bearer {{secret.bot_token}}"));
    assert_eq!(sent.header_value("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(sent.headers.len(), 2, "no other headers: {:?}", sent.headers);
    // Keys in Slack's documented order; the blocks as the rule rendered them.
    let body = sent.body_text();
    assert!(body.starts_with(r#"{"channel":"C0ONBOARD","text":"Step 3 done","blocks":[{"#), "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), fields);
    assert!(!sent.body_text().contains("xoxb-test"), "the token never enters the sandbox");
}

#[test]
fn bot_mode_without_blocks_sends_channel_and_text_only() {
    let host = bot_host().respond(200, POSTED);
    deliver(&host, message(), bot()).unwrap();
    assert_eq!(
        only_request(&host).body_text(),
        r#"{"channel":"C0ONBOARD","text":"alex@northstar.io finished *Connect your CRM* (step 3)"}"#
    );
}

#[test]
fn base_url_replaces_the_origin_and_keeps_its_path_prefix() {
    for (base, url) in [
        ("http://127.0.0.1:4010", "http://127.0.0.1:4010/api/chat.postMessage"),
        ("https://proxy.example.com/slack/", "https://proxy.example.com/slack/api/chat.postMessage"),
    ] {
        let host = bot_host().respond(200, POSTED);
        deliver(&host, message(), json!({"mode": "bot", "base_url": base})).unwrap();
        assert_eq!(only_request(&host).url, url);
    }
}

#[test]
fn ok_false_codes_are_classified_as_slack_documents_them() {
    let auth = ["invalid_auth", "not_authed", "token_revoked", "account_inactive", "missing_scope", "token_expired"];
    let permanent = [
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_arguments",
        "some_future_code",
    ];
    let retryable = ["internal_error", "fatal_error", "service_unavailable", "request_timeout"];
    let classify = |code: &str| {
        let host = bot_host().respond(200, &json!({"ok": false, "error": code}).to_string());
        let failure = deliver(&host, message(), bot()).expect_err("ok:false is a failure even with HTTP 200");
        assert!(failure.message().contains(code), "{code}: {failure}");
        failure
    };
    for code in auth {
        assert!(matches!(classify(code), Failure::Auth(_)), "{code}");
    }
    for code in permanent {
        assert!(matches!(classify(code), Failure::Permanent(_)), "{code}");
    }
    for code in retryable {
        assert_eq!(classify(code), Failure::retryable(format!("Slack answered ok:false, error `{code}`")), "{code}");
    }
}

#[test]
fn missing_scope_names_the_scope_slack_needs() {
    let body = r#"{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"channels:read"}"#;
    let host = bot_host().respond(200, body);
    assert_eq!(
        deliver(&host, message(), bot()),
        Err(Failure::auth("Slack answered ok:false, error `missing_scope` (the token needs the `chat:write` scope)"))
    );
}

#[test]
fn http_429_waits_for_retry_after() {
    let host = bot_host().respond_with(429, &[("Retry-After", "30")], r#"{"ok":false,"error":"ratelimited"}"#);
    assert_eq!(
        deliver(&host, message(), bot()),
        Err(Failure::rate_limited(r#"HTTP 429: {"ok":false,"error":"ratelimited"}"#, Some(30_000)))
    );
}

#[test]
fn ratelimited_in_an_ok_false_body_is_a_rate_limit_too() {
    let host = bot_host().respond_with(200, &[("Retry-After", "3")], r#"{"ok":false,"error":"ratelimited"}"#);
    assert_eq!(
        deliver(&host, message(), bot()),
        Err(Failure::rate_limited("Slack answered ok:false, error `ratelimited`", Some(3_000)))
    );
}

#[test]
fn http_statuses_in_bot_mode() {
    let cases: [(u16, Headers, Expect); 6] = [
        (500, &[], |f| matches!(f, Failure::Retryable(r) if r.after_ms.is_none())),
        (503, &[("Retry-After", "7")], |f| matches!(f, Failure::Retryable(r) if r.after_ms == Some(7_000))),
        (502, &[], |f| matches!(f, Failure::Retryable(_))),
        (401, &[], |f| matches!(f, Failure::Auth(_))),
        (400, &[], |f| matches!(f, Failure::Permanent(_))),
        (404, &[], |f| matches!(f, Failure::Permanent(_))),
    ];
    for (status, headers, expected) in cases {
        let host = bot_host().respond_with(status, headers, "<html>upstream</html>");
        let failure = deliver(&host, message(), bot()).expect_err("must fail");
        assert!(expected(&failure), "HTTP {status} gave {failure:?}");
    }
}

#[test]
fn a_2xx_that_is_not_the_web_api_json_is_not_retried() {
    let host = bot_host().respond(200, "<html>maintenance</html>");
    let failure = deliver(&host, message(), bot()).unwrap_err();
    assert!(matches!(&failure, Failure::Permanent(m) if m.contains("unknown")), "{failure:?}");
}

#[test]
fn a_timeout_is_permanent_because_a_retry_could_post_twice() {
    let cases = [(bot_host(), message(), bot()), (webhook_host(), json!({"text": "hi"}), webhook())];
    for (host, fields, settings) in cases {
        let host = host.fail(SendError::Timeout);
        let failure = deliver(&host, fields, settings.clone()).unwrap_err();
        assert!(matches!(&failure, Failure::Permanent(m) if m.contains("twice")), "{settings}: {failure:?}");
    }
}

#[test]
fn a_connection_broken_after_sending_is_not_retried() {
    let host = bot_host().fail(SendError::Interrupted("connection reset by peer".into()));
    let failure = deliver(&host, message(), bot()).unwrap_err();
    assert!(matches!(&failure, Failure::Permanent(m) if m.contains("may already be posted")), "{failure:?}");
}

#[test]
fn a_connection_failure_is_retried() {
    let host = bot_host().fail(SendError::Connect("connection refused".into()));
    assert_eq!(deliver(&host, message(), bot()), Err(Failure::retryable("connection failed: connection refused")));
}

#[test]
fn webhook_mode_posts_to_the_secret_url_without_channel() {
    let host = webhook_host().respond(200, "ok");
    let fields = json!({"text": "Step 3 done", "blocks": [{"type": "divider"}]});
    assert_eq!(deliver(&host, fields, webhook()), Ok("posted through the incoming webhook".to_string()));
    let sent = only_request(&host);
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.url, "{{secret.webhook_url}}", "the URL is the secret, substituted by the host");
    assert_eq!(sent.header_value("authorization"), None);
    assert_eq!(sent.header_value("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(sent.body_text(), r#"{"text":"Step 3 done","blocks":[{"type":"divider"}]}"#);
}

#[test]
fn webhook_mode_classifies_each_text_answer() {
    let cases: [(u16, Headers, &str, Expect); 10] = [
        (400, &[], "invalid_payload", |f| matches!(f, Failure::Permanent(_))),
        (403, &[], "action_prohibited", |f| matches!(f, Failure::Permanent(_))),
        (404, &[], "channel_not_found", |f| matches!(f, Failure::Permanent(_))),
        (410, &[], "channel_is_archived", |f| matches!(f, Failure::Permanent(_))),
        (500, &[], "rollup_error", |f| matches!(f, Failure::Retryable(_))),
        (404, &[], "no_service", |f| matches!(f, Failure::Auth(_))),
        (403, &[], "invalid_token", |f| matches!(f, Failure::Auth(_))),
        (401, &[], "", |f| matches!(f, Failure::Auth(_))),
        (
            429,
            &[("Retry-After", "2")],
            "rate_limited",
            |f| matches!(f, Failure::RateLimited(r) if r.after_ms == Some(2_000)),
        ),
        (200, &[], "not ok", |f| matches!(f, Failure::Permanent(m) if m.contains("unknown"))),
    ];
    for (status, headers, body, expected) in cases {
        let host = webhook_host().respond_with(status, headers, body);
        let failure = deliver(&host, json!({"text": "hi"}), webhook()).expect_err("must fail");
        assert!(expected(&failure), "HTTP {status} {body} gave {failure:?}");
        assert!(failure.message().contains(body), "the message names Slack's code: {failure}");
    }
}

#[test]
fn unusable_fields_are_named_and_nothing_is_sent() {
    let cases = [
        (json!({"text": "hi"}), bot(), "field `channel` is required"),
        (json!({"channel": "C0", "text": ""}), bot(), "field `text` is empty"),
        (json!({"channel": "C0"}), bot(), "field `text` is required"),
        (json!({"channel": "C0", "text": 3}), bot(), "field `text` must be a string, got a number"),
        (json!({"channel": "C0", "text": "hi", "blocks": "x"}), bot(), "field `blocks`"),
        (json!({"channel": "C0", "text": "hi", "blocks": [1]}), bot(), "field `blocks[0]` must be an object"),
        (json!({"channel": "C0", "text": "hi", "icon": ":x:"}), bot(), "field `icon`"),
        (json!({"channel": "C0", "text": "hi"}), webhook(), "field `channel` cannot be used in webhook mode"),
        (json!(["hi"]), bot(), "fields must be a JSON object"),
    ];
    for (fields, settings, expected) in cases {
        let host = bot_host().secret(WEBHOOK_URL, "https://hooks.slack.com/services/T0/B0/x");
        let failure = deliver(&host, fields.clone(), settings).unwrap_err();
        assert!(matches!(&failure, Failure::InvalidFields(m) if m.contains(expected)), "{fields}: {failure:?}");
        assert!(host.requests().is_empty());
    }
}

#[test]
fn the_secret_the_mode_needs_must_be_present() {
    let host = webhook_host();
    assert_eq!(
        deliver(&host, message(), bot()),
        Err(Failure::auth("the connection has no `bot_token` secret, which this mode needs"))
    );
    let host = bot_host();
    assert_eq!(
        deliver(&host, json!({"text": "hi"}), webhook()),
        Err(Failure::auth("the connection has no `webhook_url` secret, which this mode needs"))
    );
    assert!(host.requests().is_empty());
}

#[test]
fn event_text_cannot_smuggle_a_secret_placeholder_into_the_body() {
    let host = bot_host().respond(200, POSTED);
    let fields = json!({"channel": "C0", "text": "leak {{secret.bot_token}} {{ secret.bot_token }}",
                        "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "{{secret.bot_token}}"}}]});
    deliver(&host, fields.clone(), bot()).unwrap();
    let body = only_request(&host).body_text();
    assert!(!body.contains("{{"), "{body}");
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["text"], fields["text"], "Slack still reads the text as written");
    assert_eq!(parsed["blocks"], fields["blocks"]);
}

#[test]
fn an_unknown_action_or_mode_fails_without_sending() {
    let host = bot_host();
    let d = Delivery::new(event("x", json!({})), "send_webhook", message(), bot());
    assert!(matches!(Slack::deliver(&host, d), Err(Failure::InvalidFields(m)) if m.contains("send_message")));
    let failure = deliver(&host, message(), json!({"mode": "rtm"})).unwrap_err();
    assert!(matches!(&failure, Failure::Permanent(m) if m.contains("settings.mode")), "{failure:?}");
    assert!(host.requests().is_empty());
}

#[test]
fn validate_names_the_faulty_setting() {
    for ok in [
        json!({"mode": "bot"}),
        json!({"mode": "webhook"}),
        json!({"mode": "bot", "base_url": "https://slack.com"}),
        json!({"mode": "bot", "base_url": "http://127.0.0.1:8080/prefix/"}),
    ] {
        assert_eq!(Slack::validate(&ok), Ok(()), "{ok}");
    }
    let cases = [
        (json!({}), "settings.mode is required"),
        (json!({"mode": "rtm"}), "settings.mode must be `bot` or `webhook`"),
        (json!({"mode": 1}), "settings.mode must be"),
        (json!({"mode": "webhook", "base_url": "https://slack.com"}), "settings.base_url applies to bot mode only"),
        (json!({"mode": "bot", "base_url": "slack.com"}), "settings.base_url must be an absolute http(s) URL"),
        (json!({"mode": "bot", "base_url": "https://"}), "settings.base_url must be an absolute http(s) URL"),
        (json!({"mode": "bot", "base_url": "https://slack.com?x=1"}), "settings.base_url must be an absolute"),
        (json!({"mode": "bot", "base_url": 5}), "settings.base_url must be a string"),
        (json!({"mode": "bot", "channel": "C0"}), "settings.channel is not a setting of this connector"),
        (json!("bot"), "settings must be a JSON object"),
    ];
    for (settings, expected) in cases {
        let err = Slack::validate(&settings).unwrap_err();
        assert!(err.contains(expected), "{settings}: {err}");
    }
}

#[test]
fn describes_itself_per_spec() {
    let m = Slack::describe();
    assert_eq!(m.name, "slack");
    assert_eq!(action_names(&m), ["send_message"]);
    assert_eq!(m.actions[0].fields_schema["required"], json!(["text"]));
    assert_eq!(
        secrets(&m),
        [(BOT_TOKEN, false), (WEBHOOK_URL, false)],
        "each mode needs one of the two, so neither is required by the host"
    );
    assert_eq!(m.allowed_hosts, ["slack.com", "hooks.slack.com"]);
    assert_eq!(m.default_rate_limit, Some(switchboard_sdk::RateLimit { requests: 1, per_seconds: 1 }));
    assert_eq!(m.settings_schema["required"], json!(["mode"]));
    assert_eq!(m.settings_schema["properties"]["mode"]["enum"], json!(["bot", "webhook"]));
}
