//! The Intercom connector (`tag_user`) in the real sandbox, against the fake
//! Intercom API (`support::fakes::intercom`): find the user by external id or
//! email, create them when missing (recovering the id from a 409), tag them;
//! Intercom's answers classified as destinations.md says; and, through the
//! real service, the rate limit held over a burst and a bad token pausing the
//! connection.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::attempt::AttemptRecord;
use switchboard::outcome::Outcome;
use switchboard::runtime::Labels;
use switchboard_tests::fakes::intercom::{self, Failure, FakeIntercom, RateLimit, TOKEN};
use switchboard_tests::host::{TestHost, Ws, seed_event};
use switchboard_tests::sandbox::{invocation, load, rejection, runtime};

const INTERCOM: &str = "switchboard-connector-intercom";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The fields the onboarding rule renders for the seed `page.completed` event.
fn onboarding_fields() -> Value {
    json!({"user_id": "usr_5012", "email": "alex@northstar.io", "tag": "onboarding-step-3"})
}

/// One `tag_user` attempt in a fresh sandbox against the fake.
async fn tag_user(fake: &FakeIntercom, fields: Value, token: &str) -> AttemptRecord {
    let rt = runtime(true);
    let connector = load(&rt, INTERCOM).await;
    let settings = json!({"base_url": fake.base_url()});
    rt.invoke(&connector, invocation("tag_user", fields, settings, &[("access_token", token)]), Labels::default()).await
}

/// `(method, path and query)` of every call the fake received.
fn calls(fake: &FakeIntercom) -> Vec<(String, String)> {
    fake.calls().iter().map(|c| (c.method.to_string(), c.path_and_query.clone())).collect()
}

fn call(method: &str, path: &str) -> (String, String) {
    (method.to_string(), path.to_string())
}

/// The calls for a user Intercom does not find by external id: find, create, tag.
fn created_then_tagged() -> [(String, String); 3] {
    [call("GET", "/contacts/find_by_external_id/usr_5012"), call("POST", "/contacts"), call("POST", "/tags")]
}

#[tokio::test]
async fn an_existing_user_is_found_by_external_id_and_tagged_in_two_calls() {
    let fake = intercom::start().await;
    let id = fake.add_user(Some("usr_5012"), Some("alex@northstar.io"));
    let record = tag_user(&fake, onboarding_fields(), TOKEN).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(record.summary.as_deref(), Some(format!("contact {id} tagged `onboarding-step-3` (tag 17)").as_str()));
    assert_eq!(calls(&fake), [call("GET", "/contacts/find_by_external_id/usr_5012"), call("POST", "/tags")]);
    let sent = fake.calls();
    for c in &sent {
        assert_eq!(
            c.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "the host substituted the token"
        );
        assert_eq!(c.header("intercom-version"), Some("2.14"));
        assert_eq!(c.header("accept"), Some("application/json"));
    }
    assert!(sent[0].body.is_empty());
    assert_eq!(sent[1].header("content-type"), Some("application/json"));
    assert_eq!(sent[1].json(), json!({"name": "onboarding-step-3", "users": [{"id": id}]}));
    assert_eq!(fake.tag_names(&id), ["onboarding-step-3"]);
    assert_eq!(fake.contacts().len(), 1, "nothing created");
    // The attempt log keeps the placeholder, never the token.
    assert_eq!(record.steps[0].request.headers["authorization"], "Bearer {{secret.access_token}}");
    assert!(!format!("{record:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_missing_user_is_created_then_tagged_and_found_next_time() {
    let fake = intercom::start().await;
    let record = tag_user(&fake, onboarding_fields(), TOKEN).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(calls(&fake), created_then_tagged());
    assert_eq!(record.steps[0].response.as_ref().unwrap().status, 404);
    let sent = fake.calls();
    assert_eq!(sent[1].json(), json!({"role": "user", "external_id": "usr_5012", "email": "alex@northstar.io"}));
    let contact = fake.contact_by_external_id("usr_5012").expect("the user was created");
    assert_eq!((contact.role.as_str(), contact.email.as_deref()), ("user", Some("alex@northstar.io")));
    assert_eq!(sent[2].json(), json!({"name": "onboarding-step-3", "users": [{"id": contact.id}]}));
    assert_eq!(record.summary, Some(format!("contact {} created and tagged `onboarding-step-3` (tag 17)", contact.id)));
    assert_eq!(fake.tag_names(&contact.id), ["onboarding-step-3"]);

    // The next delivery for the same user finds them: no second contact.
    let again = tag_user(&fake, json!({"user_id": "usr_5012", "tag": "Onboarding-Step-3"}), TOKEN).await;
    assert_eq!(again.outcome, Outcome::Delivered);
    assert_eq!(calls(&fake).len(), 5);
    assert_eq!(fake.contacts().len(), 1);
    assert_eq!(fake.tags().len(), 1, "tag names are case-insensitive");
}

#[tokio::test]
async fn without_a_user_id_the_user_is_found_by_email_search() {
    let fake = intercom::start().await;
    let id = fake.add_user(Some("usr_5012"), Some("alex@northstar.io"));
    let record = tag_user(&fake, json!({"email": "alex@northstar.io", "tag": "onboarding-step-3"}), TOKEN).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(calls(&fake), [call("POST", "/contacts/search"), call("POST", "/tags")]);
    let sent = fake.calls();
    assert_eq!(sent[0].json(), json!({"query": {"field": "email", "operator": "=", "value": "alex@northstar.io"}}));
    assert_eq!(sent[0].header("intercom-version"), Some("2.14"));
    assert_eq!(sent[1].json(), json!({"name": "onboarding-step-3", "users": [{"id": id}]}));
    assert_eq!(fake.tag_names(&id), ["onboarding-step-3"]);
}

#[tokio::test]
async fn a_409_on_create_recovers_the_id_when_search_lags_behind_a_create() {
    let fake = intercom::start().await;
    let first = tag_user(&fake, json!({"email": "alex@northstar.io", "tag": "onboarding-step-2"}), TOKEN).await;
    assert_eq!(first.outcome, Outcome::Delivered, "{first:#?}");
    let id = fake.contacts()[0].id.clone();

    // Minutes later the search index still lacks the user: the create conflicts.
    let second = tag_user(&fake, json!({"email": "alex@northstar.io", "tag": "onboarding-step-3"}), TOKEN).await;
    assert_eq!(second.outcome, Outcome::Delivered, "{second:#?}");
    assert_eq!(calls(&fake)[3..], [call("POST", "/contacts/search"), call("POST", "/contacts"), call("POST", "/tags")]);
    let conflict = second.steps[1].response.as_ref().unwrap();
    assert_eq!(conflict.status, 409);
    assert!(conflict.body.contains(&format!("already exists with id={id}")), "{}", conflict.body);
    assert_eq!(fake.calls()[5].json(), json!({"name": "onboarding-step-3", "users": [{"id": id}]}));
    assert_eq!(fake.contacts().len(), 1, "no duplicate user");
    assert_eq!(fake.tag_names(&id), ["onboarding-step-2", "onboarding-step-3"]);

    // Once the index catches up, search finds the user: two calls again.
    fake.index_search();
    assert_eq!(
        tag_user(&fake, json!({"email": "alex@northstar.io", "tag": "x"}), TOKEN).await.outcome,
        Outcome::Delivered
    );
    assert_eq!(calls(&fake)[6..], [call("POST", "/contacts/search"), call("POST", "/tags")]);
}

#[tokio::test]
async fn a_user_known_only_by_email_is_recovered_from_the_409_and_tagged() {
    let fake = intercom::start().await;
    let id = fake.add_user(None, Some("alex@northstar.io"));
    let record = tag_user(&fake, onboarding_fields(), TOKEN).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(calls(&fake), created_then_tagged());
    assert_eq!(record.steps[1].response.as_ref().unwrap().status, 409);
    assert_eq!(fake.calls()[2].json()["users"], json!([{"id": id}]));
    assert_eq!(fake.tag_names(&id), ["onboarding-step-3"]);
}

#[tokio::test]
async fn a_429_is_rate_limited_until_x_ratelimit_reset() {
    let fake = intercom::start().await;
    let reset_at = now() + 30;
    fake.fail_next(1, Failure::RateLimited { reset_at });
    let before = now();
    let record = tag_user(&fake, onboarding_fields(), TOKEN).await;
    let after = now();

    assert_eq!(record.outcome, Outcome::RateLimited, "{record:#?}");
    let waited = record.retry_after_ms.expect("a delay from X-RateLimit-Reset");
    assert!(
        ((reset_at - after) * 1000..=(reset_at - before) * 1000).contains(&waited),
        "{waited} ms is not the time from the attempt to the reset"
    );
    assert!(record.error.as_deref().unwrap().contains("rate_limit_exceeded"), "{record:#?}");
    assert_eq!(fake.calls().len(), 1, "the sequence stops at the 429");
}

#[tokio::test]
async fn a_merged_contact_is_a_permanent_failure() {
    let fake = intercom::start().await;
    let old = fake.add_user(Some("usr_5012"), Some("alex@northstar.io"));
    let canonical = fake.add_user(None, Some("alex@northstar.co"));
    fake.merge(&old, &canonical);
    let record = tag_user(&fake, onboarding_fields(), TOKEN).await;

    assert_eq!(record.outcome, Outcome::RejectedClientError, "{record:#?}");
    let error = record.error.unwrap();
    assert!(error.contains("HTTP 410 contact_merged"), "{error}");
    assert!(error.contains(&format!("/contacts/{canonical}")), "the Link to the merged-into contact: {error}");
    assert_eq!(calls(&fake).len(), 1, "no create, no tag");
    assert!(fake.tags().is_empty());
}

#[tokio::test]
async fn vendor_failures_map_to_outcomes() {
    let cases = [
        (Failure::Server(500), Outcome::RejectedServerError),
        (Failure::Server(503), Outcome::RejectedServerError),
        (Failure::Unauthorized, Outcome::AuthFailed),
        (Failure::ContactMerged, Outcome::RejectedClientError),
        (
            Failure::Rejected {
                status: 422,
                code: "unprocessable_entity",
                message: "The data was well-formed but invalid",
            },
            Outcome::RejectedClientError,
        ),
        (
            Failure::Rejected { status: 400, code: "parameter_invalid", message: "Invalid email" },
            Outcome::RejectedClientError,
        ),
        (Failure::Rejected { status: 403, code: "token_unauthorized", message: "Not allowed" }, Outcome::AuthFailed),
    ];
    for (failure, outcome) in cases {
        let fake = intercom::start().await;
        fake.fail_next(1, failure.clone());
        let record = tag_user(&fake, onboarding_fields(), TOKEN).await;
        assert_eq!(record.outcome, outcome, "{failure:?}: {record:#?}");
        assert_eq!(fake.calls().len(), 1, "{failure:?}");
        assert_eq!(record.retry_after_ms, None, "{failure:?}");
    }
}

#[tokio::test]
async fn a_wrong_token_is_refused_by_intercom_and_reported_as_auth() {
    let fake = intercom::start().await;
    fake.add_user(Some("usr_5012"), None);
    let record = tag_user(&fake, onboarding_fields(), "dG9rOndyb25n").await;
    assert_eq!(record.outcome, Outcome::AuthFailed, "{record:#?}");
    assert!(record.error.as_deref().unwrap().contains("unauthorized: Access Token Invalid"), "{record:#?}");
    assert_eq!(fake.calls()[0].header("authorization"), Some("Bearer dG9rOndyb25n"));
}

#[tokio::test]
async fn unusable_fields_are_a_mapping_error_without_any_call() {
    let fake = intercom::start().await;
    for fields in [json!({"tag": "t"}), json!({"user_id": "usr_5012"}), json!({"email": 3, "tag": "t"})] {
        let record = tag_user(&fake, fields.clone(), TOKEN).await;
        assert_eq!(record.outcome, Outcome::MappingError, "{fields}: {record:#?}");
    }
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn settings_are_validated_by_the_connector() {
    let rt = runtime(false);
    let connector = load(&rt, INTERCOM).await;
    let m = connector.manifest();
    assert_eq!(m.allowed_hosts, ["api.intercom.io", "api.eu.intercom.io", "api.au.intercom.io"]);
    assert_eq!(m.actions.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["tag_user"]);
    assert_eq!(rejection(rt.validate(&connector, r#"{"region":"eu","api_version":"2.14"}"#).await), Ok(()));
    for (settings, named) in [
        (r#"{"region":"apac"}"#, "settings.region"),
        (r#"{"api_version":"latest"}"#, "settings.api_version"),
        (r#"{"base_url":"api.intercom.io"}"#, "settings.base_url"),
        (r#"{"base_url":"https://api.intercom.io","token":"x"}"#, "settings.token"),
    ] {
        let refused = rejection(rt.validate(&connector, settings).await).unwrap_err();
        assert!(refused.contains(named), "{settings}: {refused}");
    }
}

// Through the real service.

/// An `acme` workspace whose README rule tags users in the fake through a
/// connection holding `token`, at most `rate` deliveries a second; the
/// workspace and the connection.
async fn acme(host: &TestHost, fake: &FakeIntercom, token: &str, rate: Option<f64>) -> (Ws, String) {
    let ws = host.workspace("acme").await;
    let connection = json!({"connector": "intercom", "name": "intercom", "settings": {"base_url": fake.base_url()},
                            "secrets": {"access_token": token}, "rate_limit_per_second": rate});
    let rule = json!({"event": "page.completed", "action": "tag_user", "fields": {
        "user_id": "{{ payload.user_id }}", "email": "{{ payload.email }}",
        "tag": "onboarding-step-{{ payload.sequence_step }}"}});
    let conn = host.route(&ws, connection, rule).await;
    (ws, conn)
}

#[tokio::test]
async fn a_burst_of_50_events_never_exceeds_the_limit_and_none_is_lost() {
    let fake = intercom::start().await;
    // 60 calls a second; each delivery makes 3 (find, create, tag), and the
    // connection's bucket admits at most 8 + 8 deliveries in any second.
    fake.set_rate_limit(Some(RateLimit { requests: 60, window_secs: 1 }));
    let host = TestHost::start().await;
    let (ws, _) = acme(&host, &fake, TOKEN, Some(8.0)).await;

    let mut ids = Vec::new();
    for i in 0..50 {
        let mut event = seed_event();
        event["payload"]["user_id"] = json!(format!("usr_{i}"));
        event["payload"]["email"] = json!(format!("user{i}@northstar.io"));
        ids.push(host.emit_ok(&ws, event).await);
    }
    for id in &ids {
        assert_eq!(host.settled_event(&ws, id).await["status"], "completed", "event {id}");
    }
    assert_eq!(fake.throttled(), 0, "no call was refused for the rate limit");
    assert_eq!(fake.calls().len(), 150, "three calls each, no retries");
    assert_eq!(fake.contacts().len(), 50);
    for i in 0..50 {
        let contact = fake.contact_by_external_id(&format!("usr_{i}")).expect("every user created");
        assert_eq!(fake.tag_names(&contact.id), ["onboarding-step-3"], "usr_{i}");
    }
}

#[tokio::test]
async fn after_a_429_the_next_attempt_waits_for_the_reset() {
    let fake = intercom::start().await;
    let host = TestHost::start().await;
    let (ws, _) = acme(&host, &fake, TOKEN, None).await;
    let reset_at = now() + 2;
    fake.fail_next(1, Failure::RateLimited { reset_at });
    let id = host.emit_ok(&ws, seed_event()).await;

    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    let a = host.only_delivery_attempts(&ws, &id).await;
    assert_eq!(a.iter().map(|a| a["outcome"].clone()).collect::<Vec<_>>(), [json!("rate_limited"), json!("delivered")]);
    assert!(a[0]["retry_after_ms"].as_u64().unwrap() >= 1000, "{}", a[0]);
    let second: jiff::Timestamp = a[1]["started_at"].as_str().unwrap().parse().unwrap();
    assert!(second.as_second() >= reset_at as i64, "the retry came at {second}, before the reset at {reset_at}");
    let contact = fake.contact_by_external_id("usr_5012").unwrap();
    assert_eq!(fake.tag_names(&contact.id), ["onboarding-step-3"]);
}

#[tokio::test]
async fn a_401_pauses_the_connection_until_the_token_is_fixed() {
    let fake = intercom::start().await;
    let host = TestHost::start().await;
    let (ws, conn) = acme(&host, &fake, "dG9rOnJldm9rZWQ=", None).await;
    let id = host.emit_ok(&ws, seed_event()).await;

    let conn_path = format!("/api/v1/workspaces/{}/connections/{conn}", ws.id);
    let c = host.paused_connection(&ws, &conn).await;
    assert_eq!(c["inactive_reason"], "authentication_invalid");
    assert_eq!(calls(&fake), [call("GET", "/contacts/find_by_external_id/usr_5012")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.calls().len(), 1, "a paused connection sends nothing");
    assert_eq!(host.only_delivery_attempts(&ws, &id).await[0]["outcome"], "auth_failed");

    host.admin(Method::PATCH, &conn_path, Some(json!({"secrets": {"access_token": TOKEN}})), StatusCode::OK).await;
    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    assert_eq!(host.get(&conn_path).await["active"], true);
    let contact = fake.contact_by_external_id("usr_5012").expect("created once the token works");
    assert_eq!(fake.tag_names(&contact.id), ["onboarding-step-3"]);
}
