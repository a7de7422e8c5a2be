//! Delivery: fan-out to matching rules, retries on the
//! schedule honouring Retry-After, paused connections that resume when
//! fixed, tenant isolation, replay, and state that survives a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::host::{TestHost, Ws};
use switchboard_tests::receiver::{Receiver, reply};
use switchboard_tests::standard_webhooks::verify_call;

/// A receiver that fails with `failure` for the first `n` requests, then 200.
async fn flaky(n: usize, failure: u16, headers: &'static [(&'static str, &'static str)]) -> Receiver {
    let seen = Arc::new(AtomicUsize::new(0));
    Receiver::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < n { reply(failure, headers, "not now") } else { reply(200, &[], "ok") }
    })
    .await
}

async fn setup(host: &TestHost, url: &str) -> (Ws, String) {
    let ws = host.workspace("acme").await;
    let conn = host.webhook_route(&ws, url, json!({"event": "page.completed", "action": "send_webhook"})).await;
    (ws, conn)
}

#[tokio::test]
async fn an_event_fans_out_to_every_matching_rule_signed_and_recorded() {
    let receiver = Receiver::answering(204, "").await;
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let all = json!({"event": "page.completed", "action": "send_webhook"});
    let conn = host.webhook_route(&ws, &receiver.url("/all"), all).await;
    host.rule(&ws, json!({"event": "page.completed", "connection": conn, "action": "send_webhook",
        "filter": {"payload": {"sequence_step": {"$gte": 3}}},
        "fields": {"body": {"step": "{{ payload.sequence_step }}", "who": "{{ payload.email }} on step {{ payload.sequence_step }}"}}})).await;
    host.rule(
        &ws,
        json!({"event": "page.completed", "connection": conn, "action": "send_webhook",
        "filter": {"payload": {"sequence_step": {"$gte": 5}}}}),
    )
    .await;
    host.rule(&ws, json!({"event": "signup", "connection": conn, "action": "send_webhook"})).await;

    let id = host.emit_event(&ws, "page.completed", json!({"email": "alex@northstar.io", "sequence_step": 3})).await;
    let event = host.settled_event(&ws, &id).await;
    assert_eq!(
        (event["status"].as_str(), event["total_rules"].as_u64(), event["completed_count"].as_u64()),
        (Some("completed"), Some(2), Some(2))
    );
    let sent = receiver.requests();
    assert_eq!(sent.len(), 2);
    for r in &sent {
        assert_eq!(verify_call(WEBHOOK_SECRET, r), Ok(()));
    }
    let custom: Vec<Value> = sent
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .filter(|b: &Value| b.get("step").is_some())
        .collect();
    assert_eq!(custom, [json!({"step": 3, "who": "alex@northstar.io on step 3"})], "a lone expression keeps its type");
    let d = host.get(&format!("/api/v1/workspaces/{}/deliveries", ws.id)).await;
    let first = &d["records"][0];
    assert_eq!((first["status"].as_str(), first["attempt_count"].as_u64()), (Some("completed"), Some(1)));
    assert_eq!(first["connector"], "webhook");
    let a = host.attempts(&ws, first["id"].as_str().unwrap()).await;
    assert_eq!(a[0]["outcome"], "delivered");
    assert_eq!(a[0]["steps"][0]["response"]["status"], 204);
    assert_eq!(a[0]["steps"][0]["request"]["method"], "POST");
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered() {
    let receiver = flaky(3, 503, &[]).await;
    let host = TestHost::start().await;
    let (ws, _) = setup(&host, &receiver.url("/h")).await;
    let id = host.emit_event(&ws, "page.completed", json!({"a": 1})).await;
    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    let d = host.only_delivery(&ws, &id).await;
    assert_eq!(d["attempt_count"], 4);
    let outcomes: Vec<Value> =
        host.attempts(&ws, d["id"].as_str().unwrap()).await.iter().map(|a| a["outcome"].clone()).collect();
    assert_eq!(
        outcomes,
        [
            json!("rejected_server_error"),
            json!("rejected_server_error"),
            json!("rejected_server_error"),
            json!("delivered")
        ]
    );
    let ids: Vec<_> = receiver.requests().iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one idempotency key across attempts");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let receiver = flaky(1, 429, &[("Retry-After", "2")]).await;
    let host = TestHost::start().await;
    let (ws, _) = setup(&host, &receiver.url("/h")).await;
    let id = host.emit_event(&ws, "page.completed", json!({"a": 1})).await;
    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    let d = host.only_delivery(&ws, &id).await;
    let a = host.attempts(&ws, d["id"].as_str().unwrap()).await;
    assert_eq!(a[0]["outcome"], "rate_limited");
    assert_eq!(a[0]["retry_after_ms"], 2000);
    let t = |v: &Value| v["started_at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let gap = t(&a[1]).duration_since(t(&a[0]));
    assert!(gap >= jiff::SignedDuration::from_secs(2), "second attempt came after {gap:#}, before Retry-After");
}

#[tokio::test]
async fn client_errors_fail_at_once() {
    let receiver = Receiver::answering(400, "bad").await;
    let host = TestHost::start().await;
    let (ws, _) = setup(&host, &receiver.url("/h")).await;
    let id = host.emit_event(&ws, "page.completed", json!({"a": 1})).await;
    let event = host.settled_event(&ws, &id).await;
    assert_eq!((event["status"].as_str(), event["failed_count"].as_u64()), (Some("failed"), Some(1)));
    let d = host.only_delivery(&ws, &id).await;
    assert_eq!((d["attempt_count"].as_u64(), d["last_outcome"].as_str()), (Some(1), Some("rejected_client_error")));
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn an_auth_failure_pauses_the_connection_until_its_secret_is_fixed() {
    // 401 unless signed with the right secret.
    let receiver =
        Receiver::start(|r| reply(if verify_call(WEBHOOK_SECRET, r).is_ok() { 200 } else { 401 }, &[], "")).await;
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let body = json!({"connector": "webhook", "name": "hook", "settings": {"url": receiver.url("/h")},
                      "secrets": {"signing_secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"}});
    let conn = host.connection(&ws, body).await;
    host.rule(&ws, json!({"event": "page.completed", "connection": conn, "action": "send_webhook"})).await;
    let first = host.emit_event(&ws, "page.completed", json!({"n": 1})).await;
    let conn_path = format!("/api/v1/workspaces/{}/connections/{conn}", ws.id);
    let c = host.paused_connection(&ws, &conn).await;
    assert_eq!(c["inactive_reason"], "authentication_invalid");
    assert_eq!(c["secrets"], json!(["signing_secret"]), "names only");
    assert!(!c.to_string().contains("whsec_"), "secret values are never returned");
    let second = host.emit_event(&ws, "page.completed", json!({"n": 2})).await;
    host.wait_waiting(&ws, 2).await;
    assert_eq!(receiver.requests().len(), 1, "a paused connection sends nothing");
    host.admin(Method::PATCH, &conn_path, Some(json!({"secrets": {"signing_secret": WEBHOOK_SECRET}})), StatusCode::OK)
        .await;
    for id in [&first, &second] {
        assert_eq!(host.settled_event(&ws, id).await["status"], "completed");
    }
    assert_eq!(host.get(&conn_path).await["active"], true);
}

#[tokio::test]
async fn workspaces_are_isolated() {
    let receiver_a = Receiver::answering(200, "ok").await;
    let receiver_b = Receiver::answering(200, "ok").await;
    let host = TestHost::start().await;
    let (a, conn_a) = setup(&host, &receiver_a.url("/a")).await;
    let (b, conn_b) = setup(&host, &receiver_b.url("/b")).await;
    let event_a = host.emit_event(&a, "page.completed", json!({"tenant": "a"})).await;
    let event_b = host.emit_event(&b, "page.completed", json!({"tenant": "b"})).await;
    host.settled_event(&a, &event_a).await;
    host.settled_event(&b, &event_b).await;
    assert!(receiver_a.requests().iter().all(|r| r.text().contains("\"tenant\":\"a\"")));
    assert!(receiver_b.requests().iter().all(|r| r.text().contains("\"tenant\":\"b\"")));
    let delivery_b = host.only_delivery(&b, &event_b).await["id"].as_str().unwrap().to_string();

    // A's secret key: 403 on every B resource.
    let b_paths = [
        format!("/api/v1/workspaces/{}", b.id),
        format!("/api/v1/workspaces/{}/connections", b.id),
        format!("/api/v1/workspaces/{}/connections/{conn_b}", b.id),
        format!("/api/v1/workspaces/{}/rules", b.id),
        format!("/api/v1/workspaces/{}/events", b.id),
        format!("/api/v1/workspaces/{}/events/{event_b}", b.id),
        format!("/api/v1/workspaces/{}/deliveries", b.id),
        format!("/api/v1/workspaces/{}/deliveries/{delivery_b}/attempts", b.id),
        format!("/api/v1/workspaces/{}/keys", b.id),
    ];
    for path in &b_paths {
        let (status, _) = host.raw(Method::GET, path, Some(&a.secret), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {path}");
    }
    let (status, _) = host
        .raw(Method::POST, &format!("/api/v1/workspaces/{}/deliveries/{delivery_b}/retry", b.id), Some(&a.secret), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Through A's own path, B's ids are simply not found.
    let (status, _) = host
        .raw(Method::GET, &format!("/api/v1/workspaces/{}/deliveries/{delivery_b}", a.id), Some(&a.secret), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = host
        .raw(Method::GET, &format!("/api/v1/workspaces/{}/connections/{conn_b}", a.id), Some(&a.secret), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A rule in A cannot point at B's connection.
    let (status, v) = host
        .raw(
            Method::POST,
            &format!("/api/v1/workspaces/{}/rules", a.id),
            Some(&a.secret),
            Some(json!({"event": "x", "connection": conn_b, "action": "send_webhook"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // B's own lists show only B.
    let (_, events) =
        host.raw(Method::GET, &format!("/api/v1/workspaces/{}/events", b.id), Some(&b.secret), None).await;
    assert_eq!(events["count"], 1);
    assert_eq!(events["records"][0]["id"], event_b.as_str());
    let (_, list) = host.raw(Method::GET, "/api/v1/workspaces", Some(&b.secret), None).await;
    assert_eq!(list["count"], 1);
    let (_, conns) =
        host.raw(Method::GET, &format!("/api/v1/workspaces/{}/connections", b.id), Some(&b.secret), None).await;
    assert_eq!(
        conns["records"].as_array().unwrap().iter().map(|c| c["id"].clone()).collect::<Vec<_>>(),
        [json!(conn_b)]
    );
    assert_ne!(conn_a, conn_b);
    let (status, _) = host.raw(Method::POST, "/api/v1/workspaces", Some(&a.secret), Some(json!({"name": "x"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the admin creates workspaces");
}

#[tokio::test]
async fn replay_resends_failed_deliveries_only() {
    let broken = Arc::new(AtomicUsize::new(1));
    let flag = broken.clone();
    let receiver = Receiver::start(move |r| {
        if r.text().contains("\"ok\":true") {
            reply(200, &[], "")
        } else if flag.load(Ordering::SeqCst) == 1 {
            reply(500, &[], "down")
        } else {
            reply(200, &[], "")
        }
    })
    .await;
    let host = TestHost::start().await;
    let (ws, _) = setup(&host, &receiver.url("/h")).await;
    let good = host.emit_event(&ws, "page.completed", json!({"ok": true})).await;
    let bad: Vec<String> = futures_join(&host, &ws, 3).await;
    assert_eq!(host.settled_event(&ws, &good).await["status"], "completed");
    for id in &bad {
        assert_eq!(host.settled_event(&ws, id).await["status"], "failed");
    }
    let sent_before = receiver.requests().len();
    broken.store(0, Ordering::SeqCst);
    let job = host
        .admin(
            Method::POST,
            &format!("/api/v1/workspaces/{}/replays", ws.id),
            Some(json!({"status": "failed"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(job["state"], "pending", "the job answers at once and runs in the background: {job}");
    let done = host.replay_done(&ws, job["id"].as_str().unwrap()).await;
    assert_eq!(
        (done["total"].as_u64(), done["matched"].as_u64(), done["requeued"].as_u64()),
        (Some(3), Some(3), Some(3)),
        "{done}"
    );
    for id in &bad {
        assert_eq!(host.settled_event(&ws, id).await["status"], "completed");
    }
    assert_eq!(receiver.requests().len(), sent_before + 3, "the completed delivery was not re-sent");
}

async fn futures_join(host: &TestHost, ws: &Ws, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(host.emit_event(ws, "page.completed", json!({"ok": false, "i": i})).await);
    }
    ids
}

#[tokio::test]
async fn retry_and_cancel_respect_the_delivery_state() {
    // Slow answers keep each attempt in flight long enough to poke at it.
    let receiver = Receiver::start_delayed(Duration::from_millis(400), |_| reply(400, &[], "no")).await;
    let host = TestHost::start().await;
    let (ws, _) = setup(&host, &receiver.url("/h")).await;
    let id = host.emit_event(&ws, "page.completed", json!({"a": 1})).await;
    let d = host.only_delivery(&ws, &id).await;
    let base = format!("/api/v1/workspaces/{}/deliveries/{}", ws.id, d["id"].as_str().unwrap());
    let admin = Some(switchboard_tests::host::ADMIN);
    let (status, v) = host.raw(Method::POST, &format!("{base}/retry"), admin, None).await;
    assert_eq!(status, StatusCode::TOO_EARLY, "in flight or due now: {v}");
    assert_eq!(host.settled_event(&ws, &id).await["status"], "failed");
    let retried = host.admin(Method::POST, &format!("{base}/retry"), None, StatusCode::OK).await;
    assert_eq!(retried["status"], "retrying");
    let (status, _) = host.raw(Method::POST, &format!("{base}/retry"), admin, None).await;
    assert_eq!(status, StatusCode::TOO_EARLY, "already due");
    host.wait_until("second attempt", || async { receiver.requests().len() == 2 }).await;
    assert_eq!(host.settled_event(&ws, &id).await["status"], "failed");
    let (status, _) = host.raw(Method::POST, &format!("{base}/cancel"), admin, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a failed delivery is final");

    let pending = host.emit_event(&ws, "page.completed", json!({"a": 2})).await;
    let d = host.only_delivery(&ws, &pending).await;
    let canceled = host
        .admin(
            Method::POST,
            &format!("/api/v1/workspaces/{}/deliveries/{}/cancel", ws.id, d["id"].as_str().unwrap()),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(canceled["status"], "canceled");
}

#[tokio::test]
async fn a_template_that_fails_is_a_mapping_error() {
    let receiver = Receiver::answering(200, "").await;
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let missing = json!({"event": "e", "action": "send_webhook", "fields": {"body": {"x": "{{ payload.missing }}"}}});
    let conn = host.webhook_route(&ws, &receiver.url("/h"), missing).await;
    let (status, v) = host.raw(Method::POST, &format!("/api/v1/workspaces/{}/rules", ws.id), Some(switchboard_tests::host::ADMIN),
        Some(json!({"event": "e", "connection": conn, "action": "send_webhook", "filter": {"payload": {"n": {"$gte": [1]}}}}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["message"].as_str().unwrap().contains("payload.n.$gte"), "{v}");
    let id = host.emit_event(&ws, "e", json!({"a": 1})).await;
    assert_eq!(host.settled_event(&ws, &id).await["status"], "failed");
    let d = host.only_delivery(&ws, &id).await;
    assert_eq!(d["last_outcome"], "mapping_error");
    assert!(d["last_error"].as_str().unwrap().contains("body.x"), "{d}");
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn connections_are_validated_by_their_connector() {
    let host = TestHost::start().await;
    let ws = host.workspace("acme").await;
    let path = format!("/api/v1/workspaces/{}/connections", ws.id);
    let cases = [
        (json!({"connector": "nope", "name": "x"}), "unknown connector `nope`"),
        (
            json!({"connector": "webhook", "name": "x", "settings": {"url": "ftp://x"}, "secrets": {"signing_secret": WEBHOOK_SECRET}}),
            "settings.url",
        ),
        (
            json!({"connector": "webhook", "name": "x", "settings": {"url": "https://x.io"}}),
            "secret `signing_secret` is required",
        ),
        (
            json!({"connector": "webhook", "name": "x", "settings": {"url": "https://x.io"}, "secrets": {"signing_secret": WEBHOOK_SECRET, "api_key": "k"}}),
            "no secret `api_key`",
        ),
        (
            json!({"connector": "webhook", "version": "9.9.9", "name": "x", "settings": {"url": "https://x.io"}}),
            "no version `9.9.9`",
        ),
    ];
    for (body, message) in cases {
        let v = host.admin(Method::POST, &path, Some(body), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(v["message"].as_str().unwrap().contains(message), "{v}");
    }
    let v = host.get(&path).await;
    assert_eq!(v["count"], 0, "nothing saved");
}

#[tokio::test]
async fn accepted_events_survive_a_restart() {
    let host = TestHost::start_with(|c| c.retry.schedule = vec![Duration::ZERO, Duration::from_millis(300)]).await;
    let receiver = flaky(1, 503, &[]).await;
    let (ws, _) = setup(&host, &receiver.url("/h")).await;
    let id = host.emit_event(&ws, "page.completed", json!({"a": 1})).await;
    host.wait_until("first attempt", || async { !receiver.requests().is_empty() }).await;
    let host = host.restart().await;
    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    assert_eq!(receiver.requests().len(), 2);
}

/// Emit `n` events one at a time and return each one's emit-to-receipt time.
async fn latencies(host: &TestHost, ws: &Ws, receiver: &Receiver, event: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for i in 0..n {
        let before = receiver.requests().len();
        let t = std::time::Instant::now();
        host.emit_event(ws, event, json!({"i": i})).await;
        host.wait_until("delivered", || async { receiver.requests().len() > before }).await;
        out.push(t.elapsed());
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_destination_does_not_slow_the_others() {
    let fast = Receiver::answering(204, "").await;
    let hanging = Receiver::start_delayed(Duration::from_secs(30), |_| reply(200, &[], "")).await;
    let host = TestHost::start_with(|c| c.sandbox.request_timeout = Duration::from_secs(3)).await;
    let ws = host.workspace("acme").await;
    host.webhook_route(&ws, &fast.url("/fast"), json!({"event": "to.fast", "action": "send_webhook"})).await;
    host.webhook_route(&ws, &hanging.url("/hang"), json!({"event": "to.hanging", "action": "send_webhook"})).await;

    let alone = latencies(&host, &ws, &fast, "to.fast", 15).await[7];
    for i in 0..64 {
        host.emit_event(&ws, "to.hanging", json!({"i": i})).await;
    }
    host.wait_until("the hanging receiver is busy", || async { hanging.requests().len() >= 8 }).await;
    let under_fault = latencies(&host, &ws, &fast, "to.fast", 15).await[7];
    eprintln!("fast connection p50: alone {alone:?}, next to a hanging one {under_fault:?}");
    // Within 2x, with 20 ms of slack for scheduling noise at millisecond scale.
    assert!(under_fault <= alone * 2 + Duration::from_millis(20), "alone {alone:?}, under fault {under_fault:?}");
}
