//! The HubSpot connector (`upsert_contact`), in the real sandbox and through
//! the real service, against the fake of HubSpot's contacts API
//! (`support::fakes::hubspot`, faithful to destinations.md § HubSpot).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::attempt::AttemptRecord;
use switchboard::outcome::Outcome;
use switchboard::runtime::{Labels, LoadedConnector, Runtime};
use switchboard_tests::fakes::Call;
use switchboard_tests::fakes::hubspot::{Failure, FakeHubSpot, Policy, RateLimit, TOKEN};
use switchboard_tests::host::{TestHost, Ws, seed_event};
use switchboard_tests::sandbox::{invocation, load, rejection, runtime};

const HUBSPOT: &str = "switchboard-connector-hubspot";
const ALEX_BY_EMAIL: &str = "/crm/objects/2026-09/contacts/alex%40northstar.io?idProperty=email";
const CONTACTS: &str = "/crm/objects/2026-09/contacts";

/// The rendered fields of the onboarding rule for the seed event.
fn onboarding_fields() -> Value {
    json!({"email": "alex@northstar.io",
           "properties": {"onboarding_step": 3, "last_completed_page": "Connect your CRM"}})
}

/// What HubSpot must receive for those fields: every value a string.
fn onboarding_update() -> Value {
    json!({"properties": {"onboarding_step": "3", "last_completed_page": "Connect your CRM"}})
}

async fn start_fake() -> FakeHubSpot {
    let fake = FakeHubSpot::start().await;
    fake.define_properties(&["onboarding_step", "last_completed_page", "onboarding_completed_at"]);
    fake
}

async fn connector() -> (Runtime, LoadedConnector) {
    let rt = runtime(true);
    let hubspot = load(&rt, HUBSPOT).await;
    (rt, hubspot)
}

async fn upsert_with(
    rt: &Runtime,
    hubspot: &LoadedConnector,
    fields: Value,
    settings: Value,
    token: &str,
) -> AttemptRecord {
    let inv = invocation("upsert_contact", fields, settings, &[("access_token", token)]);
    rt.invoke(hubspot, inv, Labels::default()).await
}

async fn upsert(rt: &Runtime, hubspot: &LoadedConnector, fake: &FakeHubSpot, fields: Value) -> AttemptRecord {
    upsert_with(rt, hubspot, fields, json!({"base_url": fake.base_url()}), TOKEN).await
}

fn request_line(call: &Call) -> (String, String) {
    line(call.method.as_str(), &call.path_and_query)
}

fn line(method: &str, path_and_query: &str) -> (String, String) {
    (method.to_string(), path_and_query.to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn until_utc_midnight_ms(unix: u64) -> u64 {
    (86_400 - unix % 86_400) * 1000
}

#[tokio::test]
async fn a_known_contact_is_updated_with_one_patch_by_email() {
    let fake = start_fake().await;
    let id = fake.seed_contact("alex@northstar.io", &[("firstname", "Alex")]);
    let (rt, hubspot) = connector().await;

    let record = upsert(&rt, &hubspot, &fake, onboarding_fields()).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    assert_eq!(record.summary, Some(format!("updated contact {id}")));
    let calls = fake.calls();
    assert_eq!(calls.iter().map(request_line).collect::<Vec<_>>(), [line("PATCH", ALEX_BY_EMAIL)]);
    assert_eq!(calls[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(calls[0].header("content-type"), Some("application/json"));
    assert_eq!(calls[0].json(), onboarding_update());
    let alex = fake.contact("alex@northstar.io").unwrap();
    assert_eq!(
        (alex.get("firstname"), alex.get("onboarding_step"), alex.get("last_completed_page")),
        (Some("Alex"), Some("3"), Some("Connect your CRM"))
    );
    let step = &record.steps[0];
    assert_eq!(
        step.request.headers["authorization"], "Bearer {{secret.access_token}}",
        "the log keeps the placeholder"
    );
    assert!(!format!("{record:?}").contains(TOKEN), "the token never reaches the attempt record");
}

#[tokio::test]
async fn hubspot_404_makes_it_create_the_contact_with_its_email() {
    let fake = start_fake().await;
    let (rt, hubspot) = connector().await;

    let record = upsert(&rt, &hubspot, &fake, onboarding_fields()).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    let calls = fake.calls();
    assert_eq!(
        calls.iter().map(request_line).collect::<Vec<_>>(),
        [line("PATCH", ALEX_BY_EMAIL), line("POST", CONTACTS)]
    );
    let not_found = record.steps[0].response.as_ref().unwrap();
    assert_eq!(not_found.status, 404);
    assert_eq!(serde_json::from_str::<Value>(&not_found.body).unwrap()["message"], "resource not found");
    assert_eq!(
        calls[1].json(),
        json!({"properties": {"email": "alex@northstar.io", "onboarding_step": "3",
                              "last_completed_page": "Connect your CRM"}})
    );
    assert_eq!(record.steps[1].response.as_ref().unwrap().status, 201);
    let contacts = fake.contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(record.summary, Some(format!("created contact {}", contacts[0].id)));
    assert_eq!(contacts[0].get("onboarding_step"), Some("3"));
}

#[tokio::test]
async fn a_contact_created_between_the_patch_and_the_post_is_patched_by_the_id_in_hubspots_409() {
    let fake = start_fake().await;
    // Another integration creates Alex after our PATCH missed and before our POST.
    fake.race_on_create("alex@northstar.io", &[("firstname", "Alex"), ("lifecyclestage", "lead")]);
    let (rt, hubspot) = connector().await;

    let record = upsert(&rt, &hubspot, &fake, onboarding_fields()).await;

    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    let contacts = fake.contacts();
    assert_eq!(contacts.len(), 1, "no duplicate contact");
    let id = &contacts[0].id;
    let calls = fake.calls();
    assert_eq!(
        calls.iter().map(request_line).collect::<Vec<_>>(),
        [line("PATCH", ALEX_BY_EMAIL), line("POST", CONTACTS), line("PATCH", &format!("{CONTACTS}/{id}")),]
    );
    let conflict = record.steps[1].response.as_ref().unwrap();
    assert_eq!(conflict.status, 409);
    let conflict: Value = serde_json::from_str(&conflict.body).unwrap();
    assert_eq!(
        (conflict["message"].as_str(), conflict["category"].as_str()),
        (Some(format!("Contact already exists. Existing ID: {id}").as_str()), Some("CONFLICT"))
    );
    assert_eq!(calls[2].json(), onboarding_update());
    assert_eq!(record.summary, Some(format!("updated contact {id} (created concurrently by another writer)")));
    let alex = &contacts[0];
    assert_eq!(
        (alex.get("firstname"), alex.get("lifecyclestage"), alex.get("onboarding_step")),
        (Some("Alex"), Some("lead"), Some("3")),
        "both writers' properties"
    );
}

#[tokio::test]
async fn an_unknown_property_is_a_permanent_error_that_names_it() {
    let fake = start_fake().await;
    fake.seed_contact("alex@northstar.io", &[("firstname", "Alex")]);
    let (rt, hubspot) = connector().await;
    let fields = json!({"email": "alex@northstar.io", "properties": {"onboarding_step": 3, "favorite_color": "teal"}});

    let record = upsert(&rt, &hubspot, &fake, fields.clone()).await;

    assert_eq!(record.outcome, Outcome::RejectedClientError, "{record:#?}");
    let error = record.error.unwrap();
    assert!(error.contains("`favorite_color`") && error.contains("PROPERTY_DOESNT_EXIST"), "{error}");
    assert_eq!(fake.calls().len(), 1, "no create after a refused update");
    let refusal: Value = serde_json::from_str(&record.steps[0].response.as_ref().unwrap().body).unwrap();
    assert_eq!(refusal["category"], "VALIDATION_ERROR");
    assert_eq!(fake.contact("alex@northstar.io").unwrap().get("onboarding_step"), None, "nothing was written");

    // The same for a contact that does not exist yet: the create is refused.
    let fields = json!({"email": "sam@northstar.io", "properties": {"favorite_color": "teal"}});
    let record = upsert(&rt, &hubspot, &fake, fields).await;
    assert_eq!(record.outcome, Outcome::RejectedClientError);
    assert!(record.error.unwrap().contains("`favorite_color`"));
    assert_eq!(record.steps.iter().map(|s| s.response.as_ref().unwrap().status).collect::<Vec<_>>(), [404, 400]);
    assert!(fake.contact("sam@northstar.io").is_none());
}

#[tokio::test]
async fn hubspot_rate_limits_become_rate_limited_with_the_interval_or_until_midnight() {
    let (rt, hubspot) = connector().await;

    // The rolling window, enforced by the fake: two calls a second.
    let fake = start_fake().await;
    fake.seed_contact("alex@northstar.io", &[]);
    fake.set_rate_limit(Some(RateLimit::per(2, Duration::from_secs(1))));
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let record = upsert(&rt, &hubspot, &fake, onboarding_fields()).await;
        outcomes.push((record.outcome, record.retry_after_ms));
        if record.outcome == Outcome::RateLimited {
            let refusal = record.steps[0].response.as_ref().unwrap();
            assert_eq!(refusal.headers.get("retry-after"), None, "HubSpot sends no Retry-After");
            assert_eq!(refusal.headers["x-hubspot-ratelimit-interval-milliseconds"], "1000");
            assert!(refusal.body.contains("TEN_SECONDLY_ROLLING"), "{}", refusal.body);
        }
    }
    assert_eq!(outcomes, [(Outcome::Delivered, None), (Outcome::Delivered, None), (Outcome::RateLimited, Some(1000))]);
    assert_eq!(fake.throttled(), 1);

    // HubSpot's own ten-second window, when the limit is hit elsewhere.
    let fake = start_fake().await;
    fake.fail_next(1, Failure::RateLimited(Policy::TenSecondlyRolling));
    let record = upsert(&rt, &hubspot, &fake, onboarding_fields()).await;
    assert_eq!((record.outcome, record.retry_after_ms), (Outcome::RateLimited, Some(10_000)));

    // The daily quota: wait until the next UTC midnight.
    fake.fail_next(1, Failure::RateLimited(Policy::Daily));
    let before = now();
    let record = upsert(&rt, &hubspot, &fake, onboarding_fields()).await;
    let after = now();
    assert_eq!(record.outcome, Outcome::RateLimited);
    let waited = record.retry_after_ms.unwrap();
    assert!((before..=after).any(|t| until_utc_midnight_ms(t) == waited), "{waited} ms is not until midnight");
    assert!(record.error.unwrap().contains("daily limit"));
}

#[tokio::test]
async fn vendor_failures_are_classified_as_destinations_md_says() {
    let (rt, hubspot) = connector().await;
    let cases = [
        (Failure::Status(500), Outcome::RejectedServerError, None),
        (Failure::Status(502), Outcome::RejectedServerError, None),
        (Failure::Status(503), Outcome::RejectedServerError, None),
        (Failure::Status(504), Outcome::RejectedServerError, None),
        (Failure::Status(521), Outcome::RejectedServerError, None),
        (Failure::Status(524), Outcome::RejectedServerError, None),
        (Failure::Locked, Outcome::RejectedServerError, Some(2000)),
        (Failure::MigrationInProgress { retry_after_secs: 30 }, Outcome::RejectedServerError, Some(30_000)),
        (Failure::Unauthorized, Outcome::AuthFailed, None),
        (Failure::MissingScopes, Outcome::AuthFailed, None),
    ];
    for (failure, outcome, after_ms) in cases {
        let fake = start_fake().await;
        fake.fail_next(1, failure.clone());
        let record = upsert(&rt, &hubspot, &fake, onboarding_fields()).await;
        assert_eq!((record.outcome, record.retry_after_ms), (outcome, after_ms), "{failure:?}: {record:#?}");
        assert_eq!(fake.calls().len(), 1, "{failure:?}: one call, then the host decides");
        if failure == Failure::MissingScopes {
            assert!(record.error.as_deref().unwrap().contains("crm.objects.contacts.write"));
        }
    }

    // A token HubSpot does not know: its real 401.
    let fake = start_fake().await;
    let record =
        upsert_with(&rt, &hubspot, onboarding_fields(), json!({"base_url": fake.base_url()}), "pat-na1-revoked").await;
    assert_eq!(record.outcome, Outcome::AuthFailed);
    assert!(record.error.unwrap().contains("INVALID_AUTHENTICATION"));
    assert_eq!(fake.calls()[0].header("authorization"), Some("Bearer pat-na1-revoked"));
}

#[tokio::test]
async fn the_dated_api_version_is_a_setting() {
    let fake = start_fake().await;
    fake.add_api_version("2027-03");
    fake.seed_contact("alex@northstar.io", &[]);
    let (rt, hubspot) = connector().await;

    let settings = json!({"base_url": fake.base_url(), "api_version": "2027-03"});
    let record = upsert_with(&rt, &hubspot, onboarding_fields(), settings, TOKEN).await;
    assert_eq!(record.outcome, Outcome::Delivered);
    assert_eq!(fake.calls()[0].path_and_query, "/crm/objects/2027-03/contacts/alex%40northstar.io?idProperty=email");

    // A version HubSpot does not serve: both calls 404, a permanent error that says where to look.
    let settings = json!({"base_url": fake.base_url(), "api_version": "2025-01"});
    let record = upsert_with(&rt, &hubspot, onboarding_fields(), settings, TOKEN).await;
    assert_eq!(record.outcome, Outcome::RejectedClientError);
    assert!(record.error.unwrap().contains("settings.api_version"));
    assert_eq!(record.steps.len(), 2);
}

#[tokio::test]
async fn settings_are_validated_by_the_connector() {
    let (rt, hubspot) = connector().await;
    assert_eq!(hubspot.manifest().allowed_hosts, ["api.hubapi.com"]);
    assert_eq!(rejection(rt.validate(&hubspot, "{}").await), Ok(()));
    assert_eq!(
        rejection(rt.validate(&hubspot, r#"{"api_version":"2026-09","base_url":"https://api.hubapi.com"}"#).await),
        Ok(())
    );
    for (settings, names) in [
        (r#"{"api_version":"v3"}"#, "settings.api_version"),
        (r#"{"base_url":"api.hubapi.com"}"#, "settings.base_url"),
        (r#"{"portal_id":"46123"}"#, "settings.portal_id"),
    ] {
        let refused = rejection(rt.validate(&hubspot, settings).await).unwrap_err();
        assert!(refused.contains(names), "{settings}: {refused}");
    }
}

// Through the real service.

/// A workspace named `name` whose README rule upserts into the fake with
/// `token`, at most `rate` deliveries a second (the manifest's default when
/// `None`); the workspace and the connection.
async fn onboarding_workspace(
    host: &TestHost,
    name: &str,
    fake: &FakeHubSpot,
    token: &str,
    rate: Option<f64>,
) -> (Ws, String) {
    let ws = host.workspace(name).await;
    let mut connection = json!({"connector": "hubspot", "name": "crm", "settings": {"base_url": fake.base_url()},
                                "secrets": {"access_token": token}});
    if let Some(rate) = rate {
        connection["rate_limit_per_second"] = json!(rate);
    }
    // The rule of connectors/hubspot/README.md.
    let rule = json!({
        "event": "page.completed",
        "resource": "onboarding_sequence",
        "action": "upsert_contact",
        "fields": {
            "email": "{{ payload.email }}",
            "properties": {
                "onboarding_step": "{{ payload.sequence_step }}",
                "last_completed_page": "{{ payload.page_title }}",
                "onboarding_completed_at": "{{ payload.completed_at }}"
            }
        }
    });
    let conn = host.route(&ws, connection, rule).await;
    (ws, conn)
}

#[tokio::test]
async fn the_readme_rule_upserts_the_contact_from_the_seed_page_completed_event() {
    let fake = start_fake().await;
    let host = TestHost::start().await;
    let (ws, _) = onboarding_workspace(&host, "northstar", &fake, TOKEN, None).await;

    let id = host.emit_ok(&ws, seed_event()).await;

    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    let alex = fake.contact("alex@northstar.io").expect("created");
    assert_eq!(
        (alex.get("onboarding_step"), alex.get("last_completed_page"), alex.get("onboarding_completed_at")),
        (Some("3"), Some("Connect your CRM"), Some("2026-03-21T15:06:00Z"))
    );
    let attempts = host.only_delivery_attempts(&ws, &id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["summary"], format!("created contact {}", alex.id));
    let statuses: Vec<&Value> =
        attempts[0]["steps"].as_array().unwrap().iter().map(|s| &s["response"]["status"]).collect();
    assert_eq!(statuses, [&json!(404), &json!(201)]);
}

#[tokio::test]
async fn a_burst_of_fifty_events_stays_under_hubspots_limit_and_none_is_lost() {
    // The fake's window compressed to one second: 20 calls per rolling second.
    let limit = RateLimit::per(20, Duration::from_secs(1));
    let host = TestHost::start().await;
    let people: Vec<String> = (0..50).map(|i| format!("user{i}@northstar.io")).collect();
    let burst: Vec<Value> = people
        .iter()
        .enumerate()
        .map(|(i, email)| {
            json!({"event": "page.completed", "resource": "onboarding_sequence",
                   "payload": {"email": email, "sequence_step": i, "page_title": format!("Page {i}"),
                               "completed_at": "2026-03-21T15:06:00Z"}})
        })
        .collect();
    // A HubSpot that knows everyone, so each delivery is one PATCH.
    let limited_portal = || async {
        let fake = start_fake().await;
        fake.set_rate_limit(Some(limit));
        for person in &people {
            fake.seed_contact(person, &[]);
        }
        fake
    };

    // Control: with no connection limit the same burst overruns HubSpot's window.
    let unlimited = limited_portal().await;
    let (control, _) = onboarding_workspace(&host, "control", &unlimited, TOKEN, Some(1000.0)).await;
    host.emit_bulk(&control, &burst).await;
    host.wait_until("the unlimited burst reached HubSpot", || async { unlimited.calls().len() >= 50 }).await;
    assert!(unlimited.throttled() > 0, "an unthrottled burst of 50 must exceed 20 calls a second");

    // At 8 deliveries a second (a bucket of 8, so at most 16 in any second),
    // every event lands with one PATCH and HubSpot never answers 429.
    let fake = limited_portal().await;
    let (ws, _) = onboarding_workspace(&host, "northstar", &fake, TOKEN, Some(8.0)).await;
    let ids = host.emit_bulk(&ws, &burst).await;
    for id in &ids {
        let settled = host.settled_event(&ws, id).await;
        assert_eq!(settled["status"], "completed", "{settled}");
    }
    assert_eq!(fake.throttled(), 0, "the fake's limit was never exceeded");
    assert_eq!(fake.calls().len(), 50, "one PATCH per event, no retries");
    for (i, person) in people.iter().enumerate() {
        let contact = fake.contact(person).unwrap();
        assert_eq!(contact.get("onboarding_step"), Some(i.to_string().as_str()), "{person}");
    }
}

#[tokio::test]
async fn a_rate_limited_delivery_waits_out_hubspots_interval_and_lands() {
    let fake = start_fake().await;
    fake.set_rate_limit(Some(RateLimit::per(100, Duration::from_secs(1))));
    fake.fail_next(1, Failure::RateLimited(Policy::TenSecondlyRolling));
    let host = TestHost::start().await;
    let (ws, _) = onboarding_workspace(&host, "northstar", &fake, TOKEN, None).await;

    let id = host.emit_ok(&ws, seed_event()).await;

    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    let attempts = host.only_delivery_attempts(&ws, &id).await;
    let outcomes: Vec<&Value> = attempts.iter().map(|a| &a["outcome"]).collect();
    assert_eq!(outcomes, [&json!("rate_limited"), &json!("delivered")]);
    assert_eq!(attempts[0]["retry_after_ms"], 1000, "X-HubSpot-RateLimit-Interval-Milliseconds");
    let t = |v: &Value| v["started_at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let gap = t(&attempts[1]).duration_since(t(&attempts[0]));
    assert!(gap >= jiff::SignedDuration::from_secs(1), "retried after {gap:#}, inside HubSpot's window");
}

#[tokio::test]
async fn a_rejected_token_pauses_the_connection_until_it_is_replaced() {
    let fake = start_fake().await;
    let host = TestHost::start().await;
    let (ws, conn) = onboarding_workspace(&host, "northstar", &fake, "pat-na1-revoked", None).await;

    let id = host.emit_ok(&ws, seed_event()).await;

    let conn_path = format!("/api/v1/workspaces/{}/connections/{conn}", ws.id);
    let connection = host.paused_connection(&ws, &conn).await;
    assert_eq!(connection["inactive_reason"], "authentication_invalid");
    let attempts = host.only_delivery_attempts(&ws, &id).await;
    assert_eq!(attempts[0]["outcome"], "auth_failed");
    assert_eq!(attempts[0]["steps"][0]["response"]["status"], 401);
    let event_path = format!("/api/v1/workspaces/{}/events/{id}", ws.id);
    assert_eq!(host.get(&event_path).await["status"], "processing", "waiting, not failed");
    assert_eq!(fake.calls().len(), 1, "a paused connection sends nothing more");

    host.admin(Method::PATCH, &conn_path, Some(json!({"secrets": {"access_token": TOKEN}})), StatusCode::OK).await;

    assert_eq!(host.settled_event(&ws, &id).await["status"], "completed");
    assert_eq!(fake.contact("alex@northstar.io").unwrap().get("onboarding_step"), Some("3"));
    assert_eq!(host.get(&conn_path).await["active"], true);
}
