//! The ActiveCampaign connector (`tag_contact`): in the real sandbox and
//! through the real service, against a faithful fake of the vendor's API v3
//! (`support::fakes::activecampaign`, destinations.md). It syncs the contact
//! by email, finds the tag by exact name (creating it only when absent),
//! applies it, and caches the tag id per connection so a warm delivery is
//! two calls; it honours the vendor's rate limit and pauses the connection
//! on a bad key.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::attempt::AttemptRecord;
use switchboard::outcome::Outcome;
use switchboard::runtime::{Labels, LoadedConnector, Runtime};
use switchboard_tests::fakes::Call;
use switchboard_tests::fakes::activecampaign::{self as fake, API_KEY, Failure, FakeActiveCampaign};
use switchboard_tests::host::{ADMIN, TestHost, Ws, seed_event};
use switchboard_tests::sandbox::{invocation, load, rejection, runtime};

const CONNECTOR: &str = "switchboard-connector-activecampaign";
const TAG: &str = "Onboarding: Connect your CRM";
const SYNC: &str = "POST /api/3/contact/sync";
const SEARCH: &str = "GET /api/3/tags?filters[search][eq]=Onboarding%3A%20Connect%20your%20CRM";
const CREATE: &str = "POST /api/3/tags";
const APPLY: &str = "POST /api/3/contactTags";

async fn sandbox() -> (Runtime, LoadedConnector) {
    let rt = runtime(true);
    let connector = load(&rt, CONNECTOR).await;
    (rt, connector)
}

/// An empty fake account, and the connector in a sandbox to deliver to it.
async fn account() -> (FakeActiveCampaign, Runtime, LoadedConnector) {
    let (rt, connector) = sandbox().await;
    (fake::start().await, rt, connector)
}

/// One delivery in the sandbox, as connection `conn_test` (so consecutive
/// runs on one runtime share the tag cache, like one connection does).
async fn run(rt: &Runtime, connector: &LoadedConnector, api_url: &str, key: &str, fields: Value) -> AttemptRecord {
    let inv = invocation("tag_contact", fields, json!({"api_url": api_url}), &[("api_key", key)]);
    rt.invoke(connector, inv, Labels::default()).await
}

fn tagging(email: &str) -> Value {
    json!({"email": email, "tag": TAG})
}

/// The calls the fake saw from index `from` on, as `METHOD /path?query`.
fn lines(fake: &FakeActiveCampaign, from: usize) -> Vec<String> {
    fake.calls()[from..].iter().map(Call::line).collect()
}

fn statuses(fake: &FakeActiveCampaign, from: usize) -> Vec<u16> {
    fake.calls()[from..].iter().map(|c| c.status).collect()
}

#[tokio::test]
async fn a_new_contact_and_a_new_tag_take_four_exact_calls() {
    let (fake, rt, ac) = account().await;
    let fields = json!({"email": "alex@northstar.io", "tag": TAG, "first_name": "Alex", "last_name": "Rivera"});
    let record = run(&rt, &ac, &fake.base_url(), API_KEY, fields).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(lines(&fake, 0), [SYNC, SEARCH, CREATE, APPLY]);
    assert_eq!(statuses(&fake, 0), [201, 200, 201, 201]);
    let contact = fake.contact("alex@northstar.io").expect("contact created");
    assert_eq!((contact.first_name.as_str(), contact.last_name.as_str()), ("Alex", "Rivera"));
    let tags = fake.tags();
    assert_eq!((tags.len(), tags[0].name.as_str(), tags[0].tag_type.as_str()), (1, TAG, "contact"));
    assert_eq!(fake.tags_of("alex@northstar.io"), [TAG]);
    assert_eq!(record.summary, Some(format!("contact {} tagged `{TAG}` (tag {})", contact.id, tags[0].id)));

    let calls = fake.calls();
    assert_eq!(
        calls[0].json(),
        json!({"contact": {"email": "alex@northstar.io", "firstName": "Alex", "lastName": "Rivera"}})
    );
    assert!(calls[1].body.is_empty());
    assert_eq!(calls[2].json(), json!({"tag": {"tag": TAG, "tagType": "contact"}}));
    assert_eq!(calls[3].json(), json!({"contactTag": {"contact": contact.id, "tag": tags[0].id}}));
    for call in &calls {
        assert_eq!(call.header("api-token"), Some(API_KEY), "the host filled in the key: {}", call.line());
        assert_eq!(call.header("accept"), Some("application/json"));
        if call.method == Method::POST {
            assert_eq!(call.header("content-type"), Some("application/json"));
        }
    }
    // The attempt log keeps the placeholder, never the key.
    assert_eq!(record.steps.len(), 4);
    assert_eq!(record.steps[0].request.headers.get("api-token").map(String::as_str), Some("{{secret.api_key}}"));
    assert_eq!(record.steps[0].request.url, format!("{}/api/3/contact/sync", fake.base_url()));
    assert!(!serde_json::to_string(&record).unwrap().contains(API_KEY));
}

#[tokio::test]
async fn an_existing_tag_is_found_by_exact_name_whatever_its_case_and_never_recreated() {
    let (fake, rt, ac) = account().await;
    let existing = fake.seed_tag("ONBOARDING: connect your crm");
    fake.seed_tag("Onboarding: Connect your CRM (2025 cohort)");
    let record = run(&rt, &ac, &fake.base_url(), API_KEY, tagging("alex@northstar.io")).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(lines(&fake, 0), [SYNC, SEARCH, APPLY], "no create when the tag exists");
    assert_eq!(fake.tags().len(), 2);
    assert_eq!(fake.contact_tags()[0].tag, existing);
}

#[tokio::test]
async fn the_tag_id_is_cached_per_connection_so_a_warm_delivery_is_two_calls() {
    let (fake, rt, ac) = account().await;
    let cold = run(&rt, &ac, &fake.base_url(), API_KEY, tagging("alex@northstar.io")).await;
    assert_eq!(cold.outcome, Outcome::Delivered, "{cold:#?}");
    assert_eq!(lines(&fake, 0), [SYNC, SEARCH, CREATE, APPLY]);

    // Same connection, another contact, the tag typed in another case.
    let warm = json!({"email": "sam@northstar.io", "tag": "onboarding: connect your CRM"});
    let record = run(&rt, &ac, &fake.base_url(), API_KEY, warm).await;
    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(lines(&fake, 4), [SYNC, APPLY]);
    assert_eq!(fake.tags().len(), 1);
    assert_eq!(fake.tags_of("sam@northstar.io"), [TAG]);

    // Another connection has its own cache: it searches (and finds).
    let mut other = invocation(
        "tag_contact",
        tagging("kim@northstar.io"),
        json!({"api_url": fake.base_url()}),
        &[("api_key", API_KEY)],
    );
    other.cache_scope = "conn_other".into();
    assert_eq!(rt.invoke(&ac, other, Labels::default()).await.outcome, Outcome::Delivered);
    assert_eq!(lines(&fake, 6), [SYNC, SEARCH, APPLY]);
}

#[tokio::test]
async fn a_cached_tag_deleted_in_the_app_is_looked_up_again() {
    let (fake, rt, ac) = account().await;
    assert_eq!(
        run(&rt, &ac, &fake.base_url(), API_KEY, tagging("alex@northstar.io")).await.outcome,
        Outcome::Delivered
    );
    let old = fake.tags()[0].id.clone();
    fake.delete_tag(&old);

    let record = run(&rt, &ac, &fake.base_url(), API_KEY, tagging("sam@northstar.io")).await;
    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(lines(&fake, 4), [SYNC, APPLY, SEARCH, CREATE, APPLY]);
    assert_eq!(statuses(&fake, 4), [201, 404, 200, 201, 201]);
    let new = fake.tags()[0].id.clone();
    assert_ne!(new, old);
    assert_eq!(fake.tags_of("sam@northstar.io"), [TAG]);
    // And the fresh id is what the cache holds now.
    assert_eq!(run(&rt, &ac, &fake.base_url(), API_KEY, tagging("kim@northstar.io")).await.outcome, Outcome::Delivered);
    assert_eq!(lines(&fake, 9), [SYNC, APPLY]);
}

#[tokio::test]
async fn an_account_url_ending_in_api_3_is_tolerated() {
    let (fake, rt, ac) = account().await;
    let record = run(&rt, &ac, &format!("{}/api/3/", fake.base_url()), API_KEY, tagging("alex@northstar.io")).await;
    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(lines(&fake, 0), [SYNC, SEARCH, CREATE, APPLY]);
}

#[tokio::test]
async fn every_vendor_failure_shape_has_its_outcome() {
    let (fake, rt, ac) = account().await;
    let cases = [
        (Failure::RateLimited { retry_after_secs: 30 }, Outcome::RateLimited, Some(30_000)),
        (Failure::Unavailable, Outcome::RejectedServerError, None),
        (Failure::ServerError, Outcome::RejectedServerError, None),
        (Failure::Unauthorized, Outcome::AuthFailed, None),
        (Failure::Forbidden, Outcome::AuthFailed, None),
        (Failure::NotFound, Outcome::RejectedClientError, None),
        (Failure::Unprocessable, Outcome::RejectedClientError, None),
    ];
    for (failure, outcome, retry_after_ms) in cases {
        let before = fake.calls().len();
        fake.fail_next(1, failure);
        let record = run(&rt, &ac, &fake.base_url(), API_KEY, tagging("alex@northstar.io")).await;
        assert_eq!((record.outcome, record.retry_after_ms), (outcome, retry_after_ms), "{failure:?}: {record:#?}");
        assert_eq!(lines(&fake, before), [SYNC], "{failure:?}: nothing after a failed sync");
    }
    // Later in the sequence: a 429 on the search stops before any create,
    // and the next attempt goes through.
    let before = fake.calls().len();
    fake.pass_next(1);
    fake.fail_next(1, Failure::RateLimited { retry_after_secs: 1 });
    let record = run(&rt, &ac, &fake.base_url(), API_KEY, tagging("alex@northstar.io")).await;
    assert_eq!((record.outcome, record.retry_after_ms), (Outcome::RateLimited, Some(1000)), "{record:#?}");
    assert_eq!(lines(&fake, before), [SYNC, SEARCH]);
    let record = run(&rt, &ac, &fake.base_url(), API_KEY, tagging("alex@northstar.io")).await;
    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(lines(&fake, before + 2), [SYNC, SEARCH, CREATE, APPLY]);
    assert_eq!(fake.tags_of("alex@northstar.io"), [TAG]);
}

#[tokio::test]
async fn the_vendor_refusing_the_data_is_permanent_and_bad_fields_never_leave_the_sandbox() {
    let (fake, rt, ac) = account().await;
    // The vendor's own email check (the connector only insists on an `@`).
    let record = run(&rt, &ac, &fake.base_url(), API_KEY, tagging("alex@northstar")).await;
    assert_eq!(record.outcome, Outcome::RejectedClientError, "{record:#?}");
    assert!(record.error.as_deref().unwrap().contains("email_invalid"), "{:?}", record.error);
    assert_eq!(statuses(&fake, 0), [422]);

    let before = fake.calls().len();
    for fields in [json!({"email": "alex@northstar.io"}), json!({"email": "alex@northstar.io", "tag": "crm,step-3"})] {
        let record = run(&rt, &ac, &fake.base_url(), API_KEY, fields.clone()).await;
        assert_eq!(record.outcome, Outcome::MappingError, "{fields}");
        assert!(record.error.as_deref().unwrap().contains("field `tag`"), "{:?}", record.error);
    }
    assert_eq!(fake.calls().len(), before, "no call for unusable fields");
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_the_vendor_and_reported_as_auth() {
    let (fake, rt, ac) = account().await;
    let record = run(&rt, &ac, &fake.base_url(), "ac-revoked-key", tagging("alex@northstar.io")).await;
    assert_eq!(record.outcome, Outcome::AuthFailed, "{record:#?}");
    assert_eq!(statuses(&fake, 0), [401]);
    assert!(fake.contacts().is_empty());
}

#[tokio::test]
async fn settings_and_manifest_are_what_the_spec_says() {
    let (rt, ac) = sandbox().await;
    let m = ac.manifest();
    assert_eq!(m.name, "activecampaign");
    assert_eq!(m.actions.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["tag_contact"]);
    assert_eq!(m.secrets.iter().map(|s| (s.name.as_str(), s.required)).collect::<Vec<_>>(), [("api_key", true)]);
    assert!(m.allowed_hosts.contains(&"*.api-us1.com".to_string()), "{:?}", m.allowed_hosts);
    assert!(m.allowed_hosts.contains(&"*.activehosted.com".to_string()));
    assert_eq!(m.default_rate_limit.map(|r| (r.requests, r.per_seconds)), Some((5, 1)));
    assert_eq!(rejection(rt.validate(&ac, r#"{"api_url":"https://acme.api-us1.com/api/3"}"#).await), Ok(()));
    let refused = rejection(rt.validate(&ac, r#"{"api_url":"acme.api-us1.com"}"#).await).unwrap_err();
    assert!(refused.starts_with("settings.api_url"), "{refused}");
    let missing = rejection(rt.validate(&ac, r#"{}"#).await).unwrap_err();
    assert!(missing.contains("settings.api_url"), "{missing}");
}

// Through the real service: rules, the store-backed cache, retries, pauses
// and the per-connection rate limit.

/// A `northstar` workspace whose README rule tags contacts in the fake
/// account through a connection holding `key`; the workspace and the
/// connection.
async fn northstar(host: &TestHost, fake: &FakeActiveCampaign, key: &str) -> (Ws, String) {
    let ws = host.workspace("northstar").await;
    let connection = json!({"connector": "activecampaign", "name": "ActiveCampaign",
                            "settings": {"api_url": fake.base_url()}, "secrets": {"api_key": key}});
    let rule = json!({"event": "page.completed", "action": "tag_contact",
                      "filter": {"payload": {"sequence_step": {"$gte": 3}}},
                      "fields": {"email": "{{ payload.email }}", "tag": "Onboarding: {{ payload.page_title }}"}});
    let conn = host.route(&ws, connection, rule).await;
    (ws, conn)
}

fn onboarding_event(email: &str) -> Value {
    let mut event = seed_event();
    event["payload"]["email"] = json!(email);
    event
}

fn outcomes(attempts: &[Value]) -> Vec<&str> {
    attempts.iter().map(|a| a["outcome"].as_str().unwrap()).collect()
}

fn started(attempt: &Value) -> jiff::Timestamp {
    attempt["started_at"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_onboarding_rule_tags_the_contact_and_the_next_event_reuses_the_cached_tag() {
    let fake = fake::start().await;
    let host = TestHost::start().await;
    let (ws, _) = northstar(&host, &fake, API_KEY).await;

    let first = host.emit_ok(&ws, onboarding_event("alex@northstar.io")).await;
    assert_eq!(host.settled_event(&ws, &first).await["status"], "completed");
    assert_eq!(lines(&fake, 0), [SYNC, SEARCH, CREATE, APPLY]);
    assert_eq!(fake.tags_of("alex@northstar.io"), [TAG], "the tag rendered from the payload's page_title");

    let second = host.emit_ok(&ws, onboarding_event("sam@northstar.io")).await;
    assert_eq!(host.settled_event(&ws, &second).await["status"], "completed");
    assert_eq!(lines(&fake, 4), [SYNC, APPLY], "warm: the tag id came from the connection's cache");
    assert_eq!(fake.tags().len(), 1);
    assert_eq!(fake.tags_of("sam@northstar.io"), [TAG]);

    let a = host.only_delivery_attempts(&ws, &second).await;
    assert_eq!(outcomes(&a), ["delivered"]);
    let steps = a[0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["request"]["headers"]["api-token"], "{{secret.api_key}}");
    assert_eq!(steps[1]["response"]["status"], 201);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_and_a_503_at_the_limit_is_retried() {
    let fake = fake::start().await;
    let host = TestHost::start().await;
    let (ws, _) = northstar(&host, &fake, API_KEY).await;

    fake.fail_next(1, Failure::RateLimited { retry_after_secs: 2 });
    let limited = host.emit_ok(&ws, onboarding_event("alex@northstar.io")).await;
    assert_eq!(host.settled_event(&ws, &limited).await["status"], "completed");
    let a = host.only_delivery_attempts(&ws, &limited).await;
    assert_eq!(outcomes(&a), ["rate_limited", "delivered"]);
    assert_eq!(a[0]["retry_after_ms"], 2000);
    let gap = started(&a[1]).duration_since(started(&a[0]));
    assert!(gap >= jiff::SignedDuration::from_secs(2), "retried after {gap:#}, before Retry-After");

    fake.fail_next(2, Failure::Unavailable);
    let unavailable = host.emit_ok(&ws, onboarding_event("sam@northstar.io")).await;
    assert_eq!(host.settled_event(&ws, &unavailable).await["status"], "completed");
    assert_eq!(
        outcomes(&host.only_delivery_attempts(&ws, &unavailable).await),
        ["rejected_server_error", "rejected_server_error", "delivered"]
    );
    assert_eq!(fake.tags_of("sam@northstar.io"), [TAG]);
}

#[tokio::test]
async fn a_bad_api_key_pauses_the_connection_until_it_is_fixed() {
    let fake = fake::start().await;
    let host = TestHost::start().await;
    let (ws, conn) = northstar(&host, &fake, "ac-revoked-key").await;
    let first = host.emit_ok(&ws, onboarding_event("alex@northstar.io")).await;

    let conn_path = format!("/api/v1/workspaces/{}/connections/{conn}", ws.id);
    let c = host.paused_connection(&ws, &conn).await;
    assert_eq!(c["inactive_reason"], "authentication_invalid");
    assert_eq!(statuses(&fake, 0), [401], "one refused sync, nothing after");
    assert_eq!(outcomes(&host.only_delivery_attempts(&ws, &first).await), ["auth_failed"]);

    let second = host.emit_ok(&ws, onboarding_event("sam@northstar.io")).await;
    host.wait_waiting(&ws, 2).await;
    assert_eq!(fake.calls().len(), 1, "a paused connection sends nothing");

    host.admin(Method::PATCH, &conn_path, Some(json!({"secrets": {"api_key": API_KEY}})), StatusCode::OK).await;
    for id in [&first, &second] {
        assert_eq!(host.settled_event(&ws, id).await["status"], "completed");
    }
    assert_eq!(host.get(&conn_path).await["active"], true);
    assert_eq!(fake.tags_of("alex@northstar.io"), [TAG]);
    assert_eq!(fake.tags_of("sam@northstar.io"), [TAG]);
}

#[tokio::test]
async fn a_burst_of_fifty_events_keeps_to_the_account_limit_and_loses_none() {
    const EVENTS: usize = 50;
    let fake = fake::start().await;
    fake.set_rate_limit(Some(5));
    // The tag exists already, so concurrent first deliveries cannot race to create it.
    let tag = fake.seed_tag(TAG);
    // Plenty of attempts: every 429 costs one, and each waits out its Retry-After.
    let host = TestHost::start_with(|c| {
        c.retry.schedule =
            std::iter::once(Duration::ZERO).chain(std::iter::repeat_n(Duration::from_millis(100), 99)).collect()
    })
    .await;
    // No rate_limit_per_second: the manifest's default (5 deliveries/s) applies.
    let (ws, _) = northstar(&host, &fake, API_KEY).await;

    let mut events = Vec::new();
    for i in 0..EVENTS {
        events.push(host.emit_ok(&ws, onboarding_event(&format!("user{i:02}@northstar.io"))).await);
    }
    let processing = format!("/api/v1/workspaces/{}/events?status=processing&limit=200", ws.id);
    let deadline = Instant::now() + Duration::from_secs(180);
    while host.raw(Method::GET, &processing, Some(ADMIN), None).await.1["count"] != 0 {
        assert!(Instant::now() < deadline, "the burst did not settle in 3 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // None lost: every event completed and every contact carries the tag, once.
    let completed = host.get(&format!("/api/v1/workspaces/{}/events?status=completed&limit=200", ws.id)).await;
    assert_eq!(completed["count"], EVENTS);
    assert_eq!(fake.contacts().len(), EVENTS);
    for i in 0..EVENTS {
        assert_eq!(fake.tags_of(&format!("user{i:02}@northstar.io")), [TAG], "user{i:02}");
    }
    assert_eq!(fake.contact_tags().len(), EVENTS);
    assert_eq!(fake.tags().iter().map(|t| t.id.clone()).collect::<Vec<_>>(), [tag], "never a duplicate tag");

    // The account limit held: no rolling second served more than 5 requests.
    let calls = fake.calls();
    let served: Vec<Instant> = calls.iter().filter(|c| c.status != 429).map(|c| c.at).collect();
    for (i, t) in served.iter().enumerate() {
        let in_window = served[i..].iter().take_while(|u| u.duration_since(*t) < Duration::from_secs(1)).count();
        assert!(in_window <= 5, "{in_window} requests served within a second of call {i}");
    }
    // The burst did hit the limit, and every 429 was waited out as told.
    let refused = calls.iter().filter(|c| c.status == 429).count();
    assert!(refused > 0, "50 events at 5 deliveries/s exceed 5 requests/s: the fake must have refused some");
    let mut limited_attempts = 0;
    for event in &events {
        let a = host.only_delivery_attempts(&ws, event).await;
        assert_eq!(a.last().unwrap()["outcome"], "delivered");
        for pair in a.windows(2) {
            assert_eq!(pair[0]["outcome"], "rate_limited", "only the limit fails attempts here: {}", pair[0]);
            limited_attempts += 1;
            let wait = pair[0]["retry_after_ms"].as_i64().expect("a 429 carries Retry-After");
            assert!(wait >= 1000, "{}", pair[0]);
            let gap = started(&pair[1]).duration_since(started(&pair[0]));
            assert!(gap.as_millis() + 1 >= i128::from(wait), "retried after {gap:#}, Retry-After was {wait} ms");
        }
    }
    assert!(
        limited_attempts > 0 && limited_attempts <= refused,
        "{limited_attempts} rate-limited attempts, {refused} 429s"
    );
}
