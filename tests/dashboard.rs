//! The operator's dashboard at `/ui`, in a real (headless) Chromium: it is
//! served from the binary under a strict Content-Security-Policy; an
//! operator signs in with the admin token or a workspace secret key, finds
//! an event, reads each attempt as recorded, retries a delivery and watches
//! it land, and replays failed deliveries with live progress. The
//! credential never leaves the tab's session storage: not into a URL, a
//! cookie or localStorage. Tenant data is shown as text, never run.
//!
//! Screenshots of each screen go to `target/test-output/dashboard/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};
use switchboard_tests::browser::Browser;
use switchboard_tests::host::{ADMIN, TestHost, seed_event};
use switchboard_tests::receiver::{Receiver, reply};

/// A retry schedule of `delays` (the first attempt, then one per retry).
fn schedule(delays: &[&str]) -> Vec<std::time::Duration> {
    delays.iter().map(|d| switchboard::config::duration::parse(d).unwrap()).collect()
}

/// Open the dashboard and sign in with `token`.
async fn sign_in(browser: &Browser, host: &TestHost, token: &str) {
    browser.goto(&format!("{}/ui", host.url)).await;
    browser.type_into("#token", token).await;
    browser.click("#signin").await;
    browser.find("#signout").await;
}

/// The credentials appear nowhere but the tab's session storage: not in the
/// address, not in a cookie, not in localStorage.
async fn assert_tokens_kept_in_session(browser: &Browser, tokens: &[&str]) {
    let url = browser.current_url().await;
    let stored = browser.js("return JSON.stringify([document.cookie, Object.entries(localStorage)])").await;
    let stored = stored.as_str().unwrap();
    for token in tokens {
        assert!(!url.contains(token), "a token is in the URL: {url}");
        assert!(!stored.contains(token), "a token is in a cookie or localStorage");
    }
}

#[tokio::test]
async fn the_dashboard_is_embedded_and_served_with_a_strict_content_security_policy() {
    let host = TestHost::start().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let root = http.get(format!("{}/", host.url)).send().await.unwrap();
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()[LOCATION], "/ui");

    let page = http.get(format!("{}/ui", host.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[CACHE_CONTROL], "no-cache");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in
        ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/ui/app.js">"#), "{html}");

    let script = http.get(format!("{}/ui/app.js", host.url)).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
    let etag = script.headers()["etag"].clone();
    let again = http.get(format!("{}/ui/app.js", host.url)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let missing = http.get(format!("{}/ui/nope.js", host.url)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.json::<Value>().await.unwrap()["message"].is_string());
}

#[tokio::test]
async fn an_operator_sees_a_failed_attempt_and_retries_it_until_delivered() {
    // One attempt at once, and the next only in an hour: any second attempt
    // within the test is the one the operator asked for.
    let host = TestHost::start_with(|c| c.retry.schedule = schedule(&["0s", "1h"])).await;
    let healthy = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::start({
        let healthy = healthy.clone();
        move |_| match healthy.load(Ordering::SeqCst) {
            true => reply(200, &[("content-type", "application/json")], r#"{"received":true}"#),
            false => reply(503, &[("content-type", "application/json")], r#"{"error":"warming up"}"#),
        }
    })
    .await;
    let ws = host.workspace("Northstar prod").await;
    let rule = json!({"event": "page.completed", "action": "send_webhook"});
    host.webhook_route(&ws, &receiver.url("/hooks/switchboard"), rule).await;
    let event = host.emit_ok(&ws, seed_event()).await;
    host.wait_until("the first attempt", || async { host.only_delivery_attempts(&ws, &event).await.len() == 1 }).await;
    let tokens = [ADMIN, ws.secret.as_str()];

    let browser = Browser::start().await;
    sign_in(&browser, &host, ADMIN).await;
    assert_tokens_kept_in_session(&browser, &tokens).await;

    browser.click(&format!("tr.workspace-row[data-id='{}'] a", ws.id)).await;
    let row = format!("tr.event-row[data-id='{event}']");
    browser.find(&row).await;
    assert_eq!(browser.text(&format!("{row} .pill")).await, "processing");
    browser.screenshot("events").await;
    assert_tokens_kept_in_session(&browser, &tokens).await;

    browser.click(&format!("{row} a.event-link")).await;
    browser.find(".attempt[data-n='1'][data-response-status='503']").await;
    assert!(browser.text(".payload").await.contains("alex@northstar.io"));
    let first = browser.text(".attempt[data-n='1'] .attempt-body").await;
    assert!(first.contains("POST") && first.contains("/hooks/switchboard"), "the request is shown: {first}");
    assert!(first.contains("warming up"), "the response body is shown: {first}");
    assert!(browser.current_url().await.ends_with(&format!("#/ws/{}/events/{event}", ws.id)));
    browser.screenshot("event").await;
    browser.scroll_to("#deliveries").await;
    browser.screenshot("event-failed-attempt").await;
    assert_tokens_kept_in_session(&browser, &tokens).await;

    healthy.store(true, Ordering::SeqCst);
    browser.click("button.retry").await;
    browser.find(".attempt[data-n='2'][data-response-status='200'][data-outcome='delivered']").await;
    browser.find("article.delivery[data-status='completed']").await;
    let statuses =
        browser.js("return [...document.querySelectorAll('.attempt')].map(a => a.dataset.responseStatus)").await;
    assert_eq!(statuses, json!(["503", "200"]), "both attempts, oldest first");
    browser
        .wait_until("the event shows completed", || async { browser.text("#event-status").await == "completed" })
        .await;
    browser.scroll_to("#deliveries").await;
    browser.screenshot("event-retried").await;
    assert_tokens_kept_in_session(&browser, &tokens).await;
    assert_eq!(receiver.requests().len(), 2);

    browser.click("#nav-connections").await;
    browser.find("tr.connection-row [data-failures='0']").await;
    assert_eq!(browser.text("tr.connection-row .pill").await, "active");
    assert_tokens_kept_in_session(&browser, &tokens).await;
    browser.close().await;
}

#[tokio::test]
async fn the_admin_sees_every_workspace_and_the_registry_and_a_workspace_key_only_its_own() {
    let host = TestHost::start().await;
    let ws = host.workspace("Northstar prod").await;
    let other = host.workspace("Someone else").await;
    let tokens = [ADMIN, ws.secret.as_str(), other.secret.as_str()];
    let browser = Browser::start().await;

    browser.goto(&format!("{}/ui", host.url)).await;
    browser.find("#token").await;
    browser.screenshot("sign-in").await;
    sign_in(&browser, &host, ADMIN).await;
    browser
        .wait_until("both workspaces listed", || async { browser.find_all("tr.workspace-row").await.len() == 2 })
        .await;
    browser.screenshot("workspaces").await;

    // The registry: blocking a version and lifting the block.
    browser.click("#nav-connectors").await;
    let version = "tr.version-row[data-version='0.1.0']";
    browser.find(&format!(".connector[data-name='webhook'] {version}[data-blocked='false']")).await;
    browser.click(&format!(".connector[data-name='webhook'] {version} button")).await;
    browser.find(&format!(".connector[data-name='webhook'] {version}[data-blocked='true']")).await;
    assert!(browser.text("#connectors-notice").await.contains("webhook@0.1.0 blocked"));
    browser.scroll_to(".connector[data-name='webhook']").await;
    browser.screenshot("connectors").await;
    browser.click(&format!(".connector[data-name='webhook'] {version} button")).await;
    browser.find(&format!(".connector[data-name='webhook'] {version}[data-blocked='false']")).await;
    assert_tokens_kept_in_session(&browser, &tokens).await;

    browser.click("#signout").await;
    browser.find("#token").await;
    assert_eq!(browser.js("return sessionStorage.length").await, json!(0), "signing out forgets the token");

    sign_in(&browser, &host, &ws.secret).await;
    // A workspace key lands in its workspace; the list holds only that one.
    browser.find(&format!("#nav-events[href='#/ws/{}/events']", ws.id)).await;
    browser.click("#nav-workspaces").await;
    browser.find(&format!("tr.workspace-row[data-id='{}']", ws.id)).await;
    let listed = browser.js("return [...document.querySelectorAll('tr.workspace-row')].map(r => r.dataset.id)").await;
    assert_eq!(listed, json!([ws.id]));
    assert!(browser.find_all("#nav-connectors").await.is_empty(), "the registry is the admin's");
    assert_tokens_kept_in_session(&browser, &tokens).await;

    // Asked for anyway, the registry shows the API's refusal, as does another workspace.
    browser.goto(&format!("{}/ui#/connectors", host.url)).await;
    let refusal = browser.text(".main .alert").await;
    assert!(refusal.contains("403") && refusal.contains("this endpoint needs the admin token"), "{refusal}");
    browser.goto(&format!("{}/ui#/ws/{}/events", host.url, other.id)).await;
    let refusal = browser.text(".main .alert").await;
    assert!(refusal.contains("403") && refusal.contains(&other.id), "{refusal}");
    assert_tokens_kept_in_session(&browser, &tokens).await;
    browser.close().await;
}

#[tokio::test]
async fn tenant_data_is_shown_as_text_and_never_run() {
    let host = TestHost::start().await;
    let ws = host.workspace("Northstar prod").await;
    let hostile = r#"<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>"#;
    let event = host
        .emit_ok(
            &ws,
            json!({"event": hostile, "resource_id": hostile, "payload": {"note": hostile, hostile: [hostile]}}),
        )
        .await;

    let browser = Browser::start().await;
    sign_in(&browser, &host, ADMIN).await;
    browser.goto(&format!("{}/ui#/ws/{}/events", host.url, ws.id)).await;
    browser.find(&format!("tr.event-row[data-id='{event}']")).await;
    browser.click(&format!("tr.event-row[data-id='{event}'] a.event-link")).await;
    let payload = browser.text(".payload").await;
    // As JSON shows it: the quotes escaped, the markup as characters.
    let as_json = serde_json::to_string(hostile).unwrap();
    assert!(payload.contains(&as_json), "the payload reads as it was sent: {payload}");
    assert!(browser.text("h1").await.contains(hostile));
    let injected = browser.js("return document.querySelectorAll('.main img, .main script').length").await;
    assert_eq!(injected, json!(0), "no element was made from tenant data");
    assert_eq!(browser.js("return window.pwned === undefined").await, json!(true));
    browser.close().await;
}

#[tokio::test]
async fn a_replay_started_from_the_dashboard_shows_its_progress_until_completed() {
    // One attempt only: a 503 fails the delivery at once.
    let host = TestHost::start_with(|c| c.retry.schedule = schedule(&["0s"])).await;
    let receiver = Receiver::answering(503, "down for maintenance").await;
    let ws = host.workspace("Northstar prod").await;
    let rule = json!({"event": "page.completed", "action": "send_webhook"});
    let connection = host.webhook_route(&ws, &receiver.url("/hooks/switchboard"), rule).await;
    for _ in 0..3 {
        host.emit_ok(&ws, seed_event()).await;
    }
    let failed = format!("/api/v1/workspaces/{}/deliveries?status=failed", ws.id);
    host.wait_until("three failed deliveries", || async { host.get(&failed).await["count"] == 3 }).await;

    let browser = Browser::start().await;
    sign_in(&browser, &host, ADMIN).await;
    browser.goto(&format!("{}/ui#/ws/{}/connections", host.url, ws.id)).await;
    browser.find(&format!("tr.connection-row[data-id='{connection}'] [data-failures='3']")).await;
    browser.screenshot("connections").await;

    browser.click("#nav-replay").await;
    browser.find(&format!("#replay-connection option[value='{connection}']")).await;
    browser.screenshot("replay-form").await;
    browser.find("#replay-status").await.select_by_value("failed").await.unwrap();
    browser.find("#replay-connection").await.select_by_value(&connection).await.unwrap();
    browser.click("#replay-start").await;
    browser.find("#replay-progress[data-replay-state='completed']").await;
    assert_eq!(browser.text("#replay-matched").await, "3");
    assert_eq!(browser.text("#replay-requeued").await, "3");
    assert!(browser.current_url().await.contains(&format!("#/ws/{}/replays/rpl_", ws.id)));
    browser.screenshot("replay").await;
    assert_tokens_kept_in_session(&browser, &[ADMIN, ws.secret.as_str()]).await;

    // The replay really queued them: each is attempted once more.
    host.wait_until("three more requests", || async { receiver.requests().len() == 6 }).await;
    browser.close().await;
}
