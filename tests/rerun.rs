//! Re-running an attempt on another version against its recorded responses
//! ("would 2.0.0 have delivered this?"), and previewing a rule against an
//! event. Neither sends a request anywhere nor stores anything.
//!
//! The echo fixture's 2.0.0 is 1.0.0 fixed: it sends an `Idempotency-Key`
//! and takes a 409 (the receiver already has the event) as delivered, where
//! 1.0.0 fails the delivery.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_tests::host::{ADMIN, TestHost, Ws, seed_event};
use switchboard_tests::receiver::{Receiver, reply};

/// An attempt records the first 4 KiB of a response body.
const RECORDED_BODY_BYTES: usize = 4096;

async fn rerun(host: &TestHost, ws: &Ws, delivery: &str, n: u32, body: Value) -> (StatusCode, Value) {
    let path = format!("/api/v1/workspaces/{}/deliveries/{delivery}/attempts/{n}/rerun", ws.id);
    host.raw(Method::POST, &path, Some(ADMIN), Some(body)).await
}

/// A workspace whose `tick` events go to echo 1.0.0 posting to `receiver`,
/// and the one delivery of a `tick` emitted, once it has settled.
async fn settled_on_v1(host: &TestHost, receiver: &Receiver) -> (Ws, String, String) {
    let versions = host.get("/api/v1/connectors/echo/versions").await.to_string();
    assert!(versions.contains("\"1.0.0\"") && versions.contains("\"2.0.0\""), "{versions}");
    let ws = host.workspace("rerun").await;
    let echo =
        json!({"connector": "echo", "version": "1.0.0", "name": "echo", "settings": {"url": receiver.url("/in")}});
    host.route(&ws, echo, json!({"event": "tick", "action": "send"})).await;
    let event = host.emit_event(&ws, "tick", json!({"n": 1})).await;
    host.settled_event(&ws, &event).await;
    let delivery = host.only_delivery(&ws, &event).await["id"].as_str().unwrap().to_string();
    (ws, delivery, event)
}

#[tokio::test]
async fn a_failed_attempt_rerun_on_the_fixed_version_is_delivered_with_no_request_and_nothing_stored() {
    // The receiver already has every event, and says so at length (more than an attempt records).
    let long = "already received; ".repeat(300);
    assert!(long.len() > RECORDED_BODY_BYTES);
    let receiver = Receiver::start(move |_| reply(409, &[("content-type", "text/plain")], long.clone())).await;
    let host = TestHost::start().await;
    let (ws, id, event) = settled_on_v1(&host, &receiver).await;
    let delivery = host.only_delivery(&ws, &event).await;
    assert_eq!(delivery["status"], "failed", "{delivery}");
    let attempts = host.attempts(&ws, &id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["outcome"], "rejected_client_error");
    let hits = receiver.requests().len();
    assert_eq!(hits, 1);

    let (status, answer) = rerun(&host, &ws, &id, 1, json!({"version": "2.0.0"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let attempt = &answer["attempt"];
    assert_eq!(attempt["outcome"], "delivered", "{answer}");
    assert_eq!((&attempt["connector_version"], &attempt["n"]), (&json!("2.0.0"), &json!(1)));
    assert_eq!(attempt["summary"], "echo 2.0.0: already delivered");
    assert_eq!(answer["original"], json!({"n": 1, "outcome": "rejected_client_error", "connector_version": "1.0.0"}));
    // 2.0.0 asked for the same request, with an idempotency key added.
    assert_eq!(
        answer["differences"],
        json!([{"step": 1, "field": "header", "name": "idempotency-key", "original": null, "rerun": event}])
    );
    // It was answered with the recorded response: the first 4 KiB of the body, as the answer says.
    let (replayed, recorded) = (&attempt["steps"][0]["response"], &attempts[0]["steps"][0]["response"]);
    assert_eq!((&replayed["status"], &replayed["body"]), (&recorded["status"], &recorded["body"]));
    assert_eq!(recorded["body_truncated"], true);
    assert_eq!(answer["truncated_bodies"], json!([1]));

    assert_eq!(receiver.requests().len(), hits, "no request left the host");
    assert_eq!(host.attempts(&ws, &id).await, attempts, "no attempt was recorded");
    assert_eq!(host.only_delivery(&ws, &event).await, delivery, "the delivery is as it was");

    // The same version against the same responses comes to the same end, asking for the same.
    let (status, again) = rerun(&host, &ws, &id, 1, json!({"version": "1.0.0"})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["attempt"]["outcome"], "rejected_client_error");
    assert_eq!(again["differences"], json!([]));

    // A blocked version runs too: blocking a broken version and trying its fix is the point.
    host.admin(Method::POST, "/api/v1/connectors/echo/versions/2.0.0/block", None, StatusCode::OK).await;
    let (status, blocked) = rerun(&host, &ws, &id, 1, json!({"version": "2.0.0"})).await;
    assert_eq!((status, &blocked["attempt"]["outcome"]), (StatusCode::OK, &json!("delivered")), "{blocked}");
    assert_eq!(receiver.requests().len(), hits, "still no request");
    assert_eq!(host.attempts(&ws, &id).await.len(), 1, "still one attempt");
}

#[tokio::test]
async fn a_rerun_of_an_unknown_attempt_or_on_an_unknown_version_is_refused() {
    let receiver = Receiver::answering(204, "").await;
    let host = TestHost::start().await;
    let (ws, id, _) = settled_on_v1(&host, &receiver).await;
    let hits = receiver.requests().len();

    for version in ["9.9.9", "not-a-version"] {
        let (status, body) = rerun(&host, &ws, &id, 1, json!({"version": version})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["details"]["path"], "version", "{body}");
    }
    let (status, body) = rerun(&host, &ws, &id, 1, json!({})).await;
    assert_eq!((status, &body["details"]["path"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("version")), "{body}");
    for (delivery, n) in [(id.as_str(), 2), (id.as_str(), 0), ("dlv_nope", 1)] {
        let (status, body) = rerun(&host, &ws, delivery, n, json!({"version": "2.0.0"})).await;
        assert_eq!((status, &body["code"]), (StatusCode::NOT_FOUND, &json!("not_found")), "{delivery}/{n}: {body}");
    }
    // Another workspace's delivery is not there for this one.
    let other = host.workspace("other").await;
    let (status, _) = rerun(&host, &other, &id, 1, json!({"version": "2.0.0"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(receiver.requests().len(), hits);
}

async fn preview(host: &TestHost, ws: &Ws, body: Value) -> (StatusCode, Value) {
    host.raw(Method::POST, &format!("/api/v1/workspaces/{}/rules/preview", ws.id), Some(ADMIN), Some(body)).await
}

/// A preview that must answer 200.
async fn previewed(host: &TestHost, ws: &Ws, body: Value) -> Value {
    let (status, answer) = preview(host, ws, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

#[tokio::test]
async fn a_rule_previewed_against_the_seed_event_matches_and_renders_its_fields_saving_nothing() {
    let host = TestHost::start().await;
    let ws = host.workspace("preview").await;
    let conn = host.webhook_connection(&ws, "https://hooks.example.com/in").await;
    let existing = host.rule(&ws, json!({"event": "other", "connection": conn, "action": "send_webhook"})).await;
    let rules = format!("/api/v1/workspaces/{}/rules", ws.id);
    let events = format!("/api/v1/workspaces/{}/events", ws.id);
    let (rules_before, events_before) = (host.get(&rules).await, host.get(&events).await);
    let rule = |from_step: u32| {
        json!({
            "event": "page.completed", "resource": "onboarding_sequence",
            "filter": {"payload": {"sequence_step": {"$gte": from_step}}},
            "connection": conn, "action": "send_webhook",
            "fields": {"body": {"email": "{{ payload.email }}", "step": "{{ payload.sequence_step }}",
                                "title": "Done: {{ payload.page_title }}"}}
        })
    };
    let rendered = json!({"body": {"email": "alex@northstar.io", "step": 3, "title": "Done: Connect your CRM"}});

    let answer = previewed(&host, &ws, json!({"rule": rule(3), "event": seed_event()})).await;
    assert_eq!(answer, json!({"matches": true, "fields": rendered, "errors": []}));
    // A filter the event does not pass: no match, and the fields still show.
    let answer = previewed(&host, &ws, json!({"rule": rule(4), "event": seed_event()})).await;
    assert_eq!(answer, json!({"matches": false, "fields": rendered, "errors": []}));
    let mut elsewhere = seed_event();
    elsewhere["resource"] = json!("billing");
    assert_eq!(previewed(&host, &ws, json!({"rule": rule(3), "event": elsewhere})).await["matches"], false);

    assert_eq!(host.get(&rules).await, rules_before, "no rule was saved");
    assert_eq!(host.get(&events).await, events_before, "no event was stored");

    // One of the workspace's events, by id; its id and time are in the context.
    let event_id = host.emit_ok(&ws, seed_event()).await;
    let mut by_id = rule(3);
    by_id["fields"]["body"]["id"] = json!("{{ id }}");
    let answer = previewed(&host, &ws, json!({"rule": by_id, "event_id": event_id})).await;
    assert_eq!(answer["matches"], true, "{answer}");
    assert_eq!(answer["fields"]["body"]["id"], event_id);
    assert_eq!(answer["fields"]["body"]["email"], "alex@northstar.io");
    assert_eq!(host.get(&rules).await, rules_before, "still no rule saved");

    // `/rules/preview` is its own route; `/rules/{id}` still answers for ids.
    assert_eq!(host.get(&format!("{rules}/{existing}")).await["id"], existing);
}

#[tokio::test]
async fn a_previewed_rule_reports_every_fault_at_its_path() {
    let host = TestHost::start().await;
    let ws = host.workspace("faults").await;
    let slack = json!({"connector": "slack", "name": "hook", "settings": {"mode": "webhook"},
                       "secrets": {"webhook_url": "https://hooks.slack.com/services/T0/B0/x"}});
    let conn = host.connection(&ws, slack).await;
    let rules = format!("/api/v1/workspaces/{}/rules", ws.id);
    let rules_before = host.get(&rules).await;
    let rule = |fields: Value| json!({"event": "page.completed", "connection": conn, "action": "send_message", "fields": fields});
    let try_rule = |rule: Value| previewed(&host, &ws, json!({"rule": rule, "event": seed_event()}));
    let paths = |answer: &Value| -> Vec<String> {
        answer["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_string()).collect()
    };

    let good = try_rule(rule(json!({"text": "{{ payload.email }} is at step {{ payload.sequence_step }}"}))).await;
    assert_eq!(good["errors"], json!([]), "{good}");
    assert_eq!(good["fields"], json!({"text": "alex@northstar.io is at step 3"}));

    // A required field missing: the action's fields schema.
    let answer = try_rule(rule(json!({}))).await;
    assert_eq!(paths(&answer), ["fields.text"], "{answer}");
    assert!(answer["errors"][0]["message"].as_str().unwrap().contains("required"), "{answer}");
    assert_eq!(answer["matches"], true, "a faulty rule still says whether it matches");
    // A template that renders, on this event, a number where the schema wants a string:
    // saving cannot see this, the rendered fields show it.
    let answer = try_rule(rule(json!({"text": "{{ payload.sequence_step }}"}))).await;
    assert_eq!((paths(&answer), &answer["fields"]), (vec!["fields.text".to_string()], &json!({"text": 3})));
    // Bad templates: one that does not parse, one naming what the event lacks.
    for text in ["{{ payload.email ", "{{ payload.no_such_field }}"] {
        let answer = try_rule(rule(json!({"text": text}))).await;
        assert_eq!((paths(&answer), &answer["fields"]), (vec!["fields.text".to_string()], &Value::Null), "{text}");
    }
    // A filter that does not parse matches nothing.
    let mut bad_filter = rule(json!({"text": "hi"}));
    bad_filter["filter"] = json!({"payload": {"sequence_step": {"$bogus": 3}}});
    let answer = try_rule(bad_filter).await;
    assert!(paths(&answer).iter().all(|p| p.starts_with("filter.payload.sequence_step")), "{answer}");
    assert_eq!((paths(&answer).len(), &answer["matches"]), (1, &json!(false)), "{answer}");
    // What the rule refers to, and what it lacks.
    let mut elsewhere = rule(json!({"text": "hi"}));
    elsewhere["connection"] = json!("conn_nope");
    assert_eq!(paths(&try_rule(elsewhere).await), ["connection"]);
    let mut no_such_action = rule(json!({"text": "hi"}));
    no_such_action["action"] = json!("post_everywhere");
    let answer = try_rule(no_such_action).await;
    assert_eq!(paths(&answer), ["action"]);
    assert!(answer["errors"][0]["message"].as_str().unwrap().contains("has no action"), "{answer}");
    let answer = try_rule(json!({"event": "page.completed", "connection": conn, "fields": {"text": "hi"}})).await;
    assert_eq!(answer["errors"], json!([{"path": "action", "message": "is required"}]));

    assert_eq!(host.get(&rules).await, rules_before, "no rule was saved");
}

#[tokio::test]
async fn a_preview_needs_exactly_one_event_and_an_existing_one() {
    let host = TestHost::start().await;
    let ws = host.workspace("events").await;
    let conn = host.webhook_connection(&ws, "https://hooks.example.com/in").await;
    let rule = json!({"event": "page.completed", "connection": conn, "action": "send_webhook"});
    for (body, path) in [
        (json!({"rule": rule}), "event"),
        (json!({"rule": rule, "event": seed_event(), "event_id": "evt_x"}), "event_id"),
        (json!({"rule": rule, "event": {"event": " ", "payload": {}}}), "event.event"),
    ] {
        let (status, answer) = preview(&host, &ws, body).await;
        assert_eq!((status, &answer["details"]["path"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!(path)), "{answer}");
    }
    let (status, answer) = preview(&host, &ws, json!({"rule": rule, "event_id": "evt_nope"})).await;
    assert_eq!((status, &answer["code"]), (StatusCode::NOT_FOUND, &json!("not_found")), "{answer}");
    // Another workspace's event is not this workspace's.
    let other = host.workspace("other").await;
    let theirs = host.emit_ok(&other, seed_event()).await;
    let (status, _) = preview(&host, &ws, json!({"rule": rule, "event_id": theirs})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
