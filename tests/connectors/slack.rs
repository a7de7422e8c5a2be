//! The Slack connector in the real sandbox, against a fake Slack that
//! answers like the real one (`support::fakes::slack`): bot mode with its
//! HTTP 200 `ok:false` failures, incoming-webhook mode with its text answers,
//! rate limits, a timeout that must not post twice, and a bad token pausing
//! the connection.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::attempt::AttemptRecord;
use switchboard::outcome::Outcome;
use switchboard::runtime::{Labels, LoadedConnector, Runtime};
use switchboard_tests::fakes::slack::{self, ARCHIVED, BOT_TOKEN, Failure, FakeSlack, ONBOARDING, PRIVATE, Via};
use switchboard_tests::host::{TestHost, Ws, seed_event};
use switchboard_tests::sandbox::{invocation, load, rejection, runtime};

const SLACK: &str = "switchboard-connector-slack";

fn bot(fake: &FakeSlack) -> Value {
    json!({"mode": "bot", "base_url": fake.base_url()})
}

fn webhook() -> Value {
    json!({"mode": "webhook"})
}

struct Sandbox {
    rt: Runtime,
    slack: LoadedConnector,
}

impl Sandbox {
    async fn new() -> Sandbox {
        let rt = runtime(true);
        let slack = load(&rt, SLACK).await;
        Sandbox { rt, slack }
    }

    async fn send(&self, fields: Value, settings: Value, secrets: &[(&str, &str)]) -> AttemptRecord {
        self.rt.invoke(&self.slack, invocation("send_message", fields, settings, secrets), Labels::default()).await
    }
}

/// A fake Slack workspace, and the connector in a sandbox to post to it.
async fn workspace() -> (FakeSlack, Sandbox) {
    (slack::start().await, Sandbox::new().await)
}

/// The one response the attempt got: (status, body).
fn answer(record: &AttemptRecord) -> (u16, String) {
    assert_eq!(record.steps.len(), 1, "one call per delivery: {record:#?}");
    let response = record.steps[0].response.as_ref().expect("a response");
    (response.status, response.body.clone())
}

#[tokio::test]
async fn bot_mode_posts_one_message_with_the_exact_call() {
    let (fake, sandbox) = workspace().await;
    let blocks =
        json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*alex@northstar.io* finished step 3"}}]);
    let fields = json!({"channel": ONBOARDING, "text": "alex@northstar.io finished step 3", "blocks": blocks});

    let record = sandbox.send(fields.clone(), bot(&fake), &[("bot_token", BOT_TOKEN)]).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(record.summary.as_deref(), Some("posted to C0ONBOARD at ts 1768471200.000001"));
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!((call.method.as_str(), call.path_and_query.as_str()), ("POST", "/api/chat.postMessage"));
    assert_eq!(call.header("authorization"), Some(format!("Bearer {BOT_TOKEN}").as_str()));
    assert_eq!(call.header("content-type"), Some("application/json; charset=utf-8"));
    assert!(call.text().starts_with(r#"{"channel":"C0ONBOARD","text":"alex@northstar.io finished step 3","blocks":["#));
    assert_eq!(call.json(), fields);
    let posted = fake.messages();
    assert_eq!(posted.len(), 1);
    assert_eq!(
        (posted[0].channel.as_str(), posted[0].text.as_str(), posted[0].blocks.as_ref(), posted[0].via),
        (ONBOARDING, "alex@northstar.io finished step 3", Some(&fields["blocks"]), Via::Bot)
    );
    let (status, body) = answer(&record);
    assert_eq!(status, 200);
    assert!(!body.contains("missing_charset"), "the charset Slack asks for is sent: {body}");
    assert_eq!(record.steps[0].request.headers["authorization"], "Bearer {{secret.bot_token}}");
    assert!(!serde_json::to_string(&record).unwrap().contains(BOT_TOKEN), "the token stays out of the record");
}

#[tokio::test]
async fn ok_false_answers_with_http_200_are_classified_by_their_code() {
    let (fake, sandbox) = workspace().await;
    let text = |t: &str| json!({"channel": ONBOARDING, "text": t});
    let cases = [
        // Found in the fake workspace's state.
        (json!({"channel": "C0NOPE", "text": "hi"}), None, Outcome::RejectedClientError, "channel_not_found"),
        (json!({"channel": ARCHIVED, "text": "hi"}), None, Outcome::RejectedClientError, "is_archived"),
        (json!({"channel": PRIVATE, "text": "hi"}), None, Outcome::RejectedClientError, "not_in_channel"),
        (text(&"x".repeat(slack::MAX_TEXT_CHARS + 1)), None, Outcome::RejectedClientError, "msg_too_long"),
        // Slack's transient codes and a scope problem, injected.
        (text("hi"), Some("internal_error"), Outcome::RejectedServerError, "internal_error"),
        (text("hi"), Some("fatal_error"), Outcome::RejectedServerError, "fatal_error"),
        (text("hi"), Some("service_unavailable"), Outcome::RejectedServerError, "service_unavailable"),
        (text("hi"), Some("request_timeout"), Outcome::RejectedServerError, "request_timeout"),
        (text("hi"), Some("missing_scope"), Outcome::AuthFailed, "missing_scope"),
    ];
    for (fields, injected, outcome, code) in cases {
        if let Some(code) = injected {
            fake.fail_next(1, Failure::ApiError(code));
        }
        let record = sandbox.send(fields, bot(&fake), &[("bot_token", BOT_TOKEN)]).await;
        assert_eq!(record.outcome, outcome, "{code}: {record:#?}");
        assert!(record.error.as_deref().unwrap_or_default().contains(code), "{code}: {:?}", record.error);
        let (status, body) = answer(&record);
        assert_eq!(status, 200, "{code}: Slack fails with HTTP 200");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"ok": false, "error": code}));
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn http_429_waits_for_retry_after() {
    let (fake, sandbox) = workspace().await;
    let fields = json!({"channel": ONBOARDING, "text": "hi"});
    let secrets = [("bot_token", BOT_TOKEN)];

    fake.fail_next(1, Failure::RateLimited { retry_after_secs: 7 });
    let record = sandbox.send(fields.clone(), bot(&fake), &secrets).await;
    assert_eq!((record.outcome, record.retry_after_ms), (Outcome::RateLimited, Some(7_000)), "{record:#?}");
    assert_eq!(answer(&record).0, 429);
    assert_eq!(record.steps[0].response.as_ref().unwrap().headers["retry-after"], "7");

    // The fake's own per-channel limit: the second message within the second waits.
    fake.set_rate_limit(Some(1));
    assert_eq!(sandbox.send(fields.clone(), bot(&fake), &secrets).await.outcome, Outcome::Delivered);
    let record = sandbox.send(fields, bot(&fake), &secrets).await;
    assert_eq!((record.outcome, record.retry_after_ms), (Outcome::RateLimited, Some(1_000)), "{record:#?}");
    let (status, body) = answer(&record);
    assert_eq!(status, 429);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"ok": false, "error": "ratelimited"}));
    assert_eq!((fake.throttled(), fake.messages().len()), (1, 1));
}

#[tokio::test]
async fn server_errors_and_refused_connections_are_retried() {
    let (fake, sandbox) = workspace().await;
    let fields = json!({"channel": ONBOARDING, "text": "hi"});
    fake.fail_next(1, Failure::ServerError(503));
    let record = sandbox.send(fields.clone(), bot(&fake), &[("bot_token", BOT_TOKEN)]).await;
    assert_eq!(record.outcome, Outcome::RejectedServerError, "{record:#?}");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let settings = json!({"mode": "bot", "base_url": format!("http://127.0.0.1:{closed}")});
    let record = sandbox.send(fields, settings, &[("bot_token", BOT_TOKEN)]).await;
    assert_eq!(record.outcome, Outcome::NetworkError, "{record:#?}");
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn a_bad_or_missing_token_is_an_auth_failure() {
    let (fake, sandbox) = workspace().await;
    let fields = json!({"channel": ONBOARDING, "text": "hi"});

    let record = sandbox.send(fields.clone(), bot(&fake), &[("bot_token", "xoxb-revoked")]).await;
    assert_eq!(record.outcome, Outcome::AuthFailed, "{record:#?}");
    assert_eq!(answer(&record), (200, json!({"ok": false, "error": "invalid_auth"}).to_string()));

    fake.fail_next(1, Failure::Unauthorized);
    let record = sandbox.send(fields.clone(), bot(&fake), &[("bot_token", BOT_TOKEN)]).await;
    assert_eq!((record.outcome, answer(&record).0), (Outcome::AuthFailed, 401));

    let calls_before = fake.calls().len();
    let record = sandbox.send(fields, bot(&fake), &[("webhook_url", "https://hooks.slack.com/services/T/B/x")]).await;
    assert_eq!(record.outcome, Outcome::AuthFailed, "{record:#?}");
    assert!(record.error.as_deref().unwrap().contains("bot_token"));
    assert_eq!(fake.calls().len(), calls_before, "nothing is sent without the token");
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn webhook_mode_posts_to_the_url_held_in_the_secret() {
    let (fake, sandbox) = workspace().await;
    let url = fake.webhook_url();
    let fields = json!({"text": "alex@northstar.io finished step 3", "blocks": [{"type": "divider"}]});

    let record = sandbox.send(fields.clone(), webhook(), &[("webhook_url", &url)]).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(format!("{}{}", fake.base_url(), calls[0].path_and_query), url);
    assert_eq!(calls[0].method, Method::POST);
    assert_eq!(calls[0].header("authorization"), None, "the URL is the credential");
    assert_eq!(calls[0].header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(calls[0].json(), fields, "no channel: the hook posts to its own");
    assert_eq!(answer(&record), (200, "ok".to_string()));
    let posted = fake.messages();
    assert_eq!((posted.len(), posted[0].channel.as_str(), posted[0].via), (1, ONBOARDING, Via::Webhook));
    assert_eq!(record.steps[0].request.url, "{{secret.webhook_url}}", "the record keeps the placeholder");
    assert!(!serde_json::to_string(&record).unwrap().contains(&url));
}

#[tokio::test]
async fn webhook_mode_failures_are_real_statuses_with_text_codes() {
    let (fake, sandbox) = workspace().await;
    let good = fake.webhook_url();
    let cases = [
        // From the fake workspace's state.
        (fake.add_webhook(ARCHIVED), None, Outcome::RejectedClientError, 410, "channel_is_archived"),
        (fake.add_webhook("C0DELETED"), None, Outcome::RejectedClientError, 404, "channel_not_found"),
        (format!("{}/services/T0SWITCH/B0GONE/revoked", fake.base_url()), None, Outcome::AuthFailed, 404, "no_service"),
        // Injected.
        (
            good.clone(),
            Some(Failure::WebhookError(400, "invalid_payload")),
            Outcome::RejectedClientError,
            400,
            "invalid_payload",
        ),
        (
            good.clone(),
            Some(Failure::WebhookError(403, "action_prohibited")),
            Outcome::RejectedClientError,
            403,
            "action_prohibited",
        ),
        (
            good.clone(),
            Some(Failure::WebhookError(500, "rollup_error")),
            Outcome::RejectedServerError,
            500,
            "rollup_error",
        ),
        (good.clone(), Some(Failure::RateLimited { retry_after_secs: 2 }), Outcome::RateLimited, 429, "rate_limited"),
    ];
    for (url, injected, outcome, status, code) in cases {
        if let Some(failure) = injected {
            fake.fail_next(1, failure);
        }
        let record = sandbox.send(json!({"text": "hi"}), webhook(), &[("webhook_url", &url)]).await;
        assert_eq!(record.outcome, outcome, "{code}: {record:#?}");
        assert_eq!(answer(&record), (status, code.to_string()));
        assert!(record.error.as_deref().unwrap_or_default().contains(code), "{code}: {:?}", record.error);
        if status == 429 {
            assert_eq!(record.retry_after_ms, Some(2_000));
        }
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn settings_are_validated_by_the_connector() {
    let sandbox = Sandbox::new().await;
    let sb = &sandbox;
    let validate = move |s: Value| async move { rejection(sb.rt.validate(&sb.slack, &s.to_string()).await) };
    assert_eq!(validate(json!({"mode": "bot"})).await, Ok(()));
    assert_eq!(validate(json!({"mode": "webhook"})).await, Ok(()));
    let refused = validate(json!({"mode": "webhook", "base_url": "https://slack.com"})).await.unwrap_err();
    assert!(refused.contains("settings.base_url"), "{refused}");
    let refused = validate(json!({"mode": "bot", "base_url": "slack.com"})).await.unwrap_err();
    assert!(refused.contains("settings.base_url"), "{refused}");
    let refused = validate(json!({})).await.unwrap_err();
    assert!(refused.contains("settings.mode"), "{refused}");
    let m = sandbox.slack.manifest();
    assert_eq!(m.allowed_hosts, ["slack.com", "hooks.slack.com"]);
    assert_eq!(m.default_rate_limit.map(|r| (r.requests, r.per_seconds)), Some((1, 1)));
}

// ---------------------------------------------------------------------------
// Through the whole service (`TestHost`).

/// A bot-mode Slack connection to the fake.
async fn connection(host: &TestHost, ws: &Ws, fake: &FakeSlack, token: &str, rate: Option<f64>) -> String {
    let mut body = json!({"connector": "slack", "name": "team slack", "settings": bot(fake),
                          "secrets": {"bot_token": token}});
    if let Some(rate) = rate {
        body["rate_limit_per_second"] = json!(rate);
    }
    host.connection(ws, body).await
}

/// A `northstar` workspace with a bot-mode Slack connection to the fake
/// and a `page.completed` rule posting into #onboarding; the workspace and
/// the connection.
async fn northstar(host: &TestHost, fake: &FakeSlack, token: &str, rate: Option<f64>) -> (Ws, String) {
    let ws = host.workspace("northstar").await;
    let conn = connection(host, &ws, fake, token, rate).await;
    host.rule(
        &ws,
        json!({"event": "page.completed", "connection": conn, "action": "send_message",
               "fields": {"channel": "#onboarding",
                          "text": "{{ payload.email }} finished *{{ payload.page_title }}* (step {{ payload.sequence_step }})"}}),
    )
    .await;
    (ws, conn)
}

/// A fake Slack allowing 20 messages a second per channel, after a burst
/// of `n` events (one bulk request) through a connection limited to `rate`
/// has settled.
async fn after_a_burst(n: usize, rate: f64) -> FakeSlack {
    let fake = slack::start().await;
    fake.set_rate_limit(Some(20));
    let host = TestHost::start().await;
    let (ws, _) = northstar(&host, &fake, BOT_TOKEN, Some(rate)).await;
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"event": "page.completed", "payload": {"email": format!("user{i}@northstar.io"),
                   "page_title": "Connect your CRM", "sequence_step": i}})
        })
        .collect();
    for id in host.emit_bulk(&ws, &events).await {
        assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    }
    fake
}

fn expected_texts(n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("user{i}@northstar.io finished *Connect your CRM* (step {i})")).collect()
}

#[tokio::test]
async fn the_onboarding_rule_posts_the_page_completed_event() {
    let fake = slack::start().await;
    let host = TestHost::start().await;
    let ws = host.workspace("northstar").await;
    let conn = connection(&host, &ws, &fake, BOT_TOKEN, None).await;
    // The rule of the README, verbatim.
    host.rule(
        &ws,
        json!({"event": "page.completed",
               "filter": {"payload": {"sequence_step": {"$gte": 3}}},
               "connection": conn,
               "action": "send_message",
               "fields": {
                 "channel": "#onboarding",
                 "text": "{{ payload.email }} finished *{{ payload.page_title }}* (step {{ payload.sequence_step }})",
                 "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                   "text": "*{{ payload.email }}* finished *{{ payload.page_title }}* (step {{ payload.sequence_step }}) in {{ payload.time_on_page_seconds }} s"}}]
               }}),
    )
    .await;
    let id = host.emit_ok(&ws, seed_event()).await;
    let event = host.settled_event(&ws, &id).await;
    assert_eq!(event["status"], "completed", "{event}");
    let posted = fake.messages();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].channel, ONBOARDING, "#onboarding resolves to its id");
    assert_eq!(posted[0].text, "alex@northstar.io finished *Connect your CRM* (step 3)");
    assert_eq!(
        posted[0].blocks,
        Some(json!([{"type": "section", "text": {"type": "mrkdwn",
            "text": "*alex@northstar.io* finished *Connect your CRM* (step 3) in 522 s"}}]))
    );
}

/// The manifest's 1/s would make 50 messages take ~50 s, so the test runs
/// twenty times faster: the fake allows 20/s per channel and the connection
/// is set to 16/s. The headroom is for latency jitter, which the speed-up
/// magnifies: the host's bucket and Slack's run on clocks a variable network
/// delay apart, and at 20/s one message is 50 ms, so a request that arrives
/// 50 ms "early" relative to the first looks like one too many (at the real
/// 1/s the same jitter is a twentieth of a message).
#[tokio::test]
async fn a_burst_of_50_never_exceeds_the_channel_limit_and_none_is_lost() {
    let fake = after_a_burst(50, 16.0).await;
    assert_eq!(fake.throttled(), 0, "the fake never had to answer 429");
    assert_eq!(fake.calls().len(), 50, "one call per event, no retries");
    let texts: BTreeSet<String> = fake.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(texts, expected_texts(50), "every event posted exactly once");
}

/// When the connection is set faster than Slack allows, Slack's 429s are
/// waited out (Retry-After) and still nothing is lost or posted twice.
#[tokio::test]
async fn over_the_vendor_limit_429s_are_waited_out_and_none_is_lost() {
    let fake = after_a_burst(50, 1000.0).await;
    assert!(fake.throttled() > 0, "the burst did hit Slack's limit");
    assert_eq!(fake.calls().len(), 50 + fake.throttled());
    let posted = fake.messages();
    assert_eq!(posted.len(), 50, "no duplicates");
    assert_eq!(posted.into_iter().map(|m| m.text).collect::<BTreeSet<_>>(), expected_texts(50));
}

#[tokio::test]
async fn invalid_auth_pauses_the_connection_until_the_token_is_fixed() {
    let fake = slack::start().await;
    let host = TestHost::start().await;
    let (ws, conn) = northstar(&host, &fake, "xoxb-revoked-token", None).await;
    let conn_path = format!("/api/v1/workspaces/{}/connections/{conn}", ws.id);
    let payload =
        |n: u32| json!({"email": format!("u{n}@northstar.io"), "page_title": "Invite your team", "sequence_step": n});

    let first = host.emit_event(&ws, "page.completed", payload(1)).await;
    let c = host.paused_connection(&ws, &conn).await;
    assert_eq!((c["active"].as_bool(), c["inactive_reason"].as_str()), (Some(false), Some("authentication_invalid")));
    let second = host.emit_event(&ws, "page.completed", payload(2)).await;
    host.wait_waiting(&ws, 2).await;
    assert_eq!(fake.calls().len(), 1, "a paused connection sends nothing");
    assert!(fake.messages().is_empty());

    host.admin(Method::PATCH, &conn_path, Some(json!({"secrets": {"bot_token": BOT_TOKEN}})), StatusCode::OK).await;
    for id in [&first, &second] {
        assert_eq!(host.settled_event(&ws, id).await["status"], "completed");
    }
    assert_eq!(host.get(&conn_path).await["active"], true);
    let texts: BTreeSet<String> = fake.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        BTreeSet::from([1, 2].map(|n| format!("u{n}@northstar.io finished *Invite your team* (step {n})")))
    );
}

/// Slack posted, but its answer came after the request timeout: retrying
/// could post a second copy, so the delivery fails after one attempt.
#[tokio::test]
async fn a_timeout_after_sending_is_not_retried() {
    let fake = slack::start().await;
    fake.fail_next(1, Failure::SlowAnswer(Duration::from_millis(1500)));
    let host = TestHost::start_with(|c| c.sandbox.request_timeout = Duration::from_millis(300)).await;
    let (ws, _) = northstar(&host, &fake, BOT_TOKEN, None).await;

    let id = host
        .emit_event(
            &ws,
            "page.completed",
            json!({"email": "alex@northstar.io", "page_title": "Connect your CRM", "sequence_step": 3}),
        )
        .await;
    let event = host.settled_event(&ws, &id).await;

    assert_eq!(event["status"], "failed", "{event}");
    let deliveries = host.deliveries(&ws, &id).await;
    let d = &deliveries[0];
    assert_eq!((d["attempt_count"].as_u64(), d["last_outcome"].as_str()), (Some(1), Some("rejected_client_error")));
    assert!(d["last_error"].as_str().unwrap().contains("twice"), "{d}");
    assert_eq!(fake.calls().len(), 1, "not retried");
    assert_eq!(fake.messages().len(), 1, "Slack did post it: a retry would have posted a duplicate");
}
