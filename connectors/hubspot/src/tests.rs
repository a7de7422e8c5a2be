//! The HubSpot connector's logic, natively, against a scripted host that
//! answers with HubSpot's documented bodies and headers.

use switchboard_sdk::testing::{MockHost, action_names, event, secrets};

use super::*;

const CONTACTS: &str = "https://api.hubapi.com/crm/objects/2026-09/contacts";
const BY_EMAIL: &str = "https://api.hubapi.com/crm/objects/2026-09/contacts/alex%40northstar.io?idProperty=email";
const NOT_FOUND: &str =
    r#"{"status":"error","message":"resource not found","correlationId":"3f1c0c7e-8d5a-4b7e-9f0e-2a6b1c9d4e21"}"#;
const CONFLICT: &str = r#"{"status":"error","message":"Contact already exists. Existing ID: 1948209","correlationId":"5d2e8f1a-0b3c-4d5e-8f9a-1b2c3d4e5f60","category":"CONFLICT"}"#;
const UNKNOWN_PROPERTY: &str = r#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"favorite_color\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"favorite_color\",\"localizedErrorMessage\":\"Property \\\"favorite_color\\\" does not exist\",\"portalId\":46123}]","correlationId":"8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d","category":"VALIDATION_ERROR"}"#;
const INVALID_EMAIL: &str = r#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Email address alex@northstar is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]","correlationId":"c8617a85-58a6-4a95-b619-e7d3594c170c","category":"VALIDATION_ERROR"}"#;
const TEN_SECONDLY: &str = r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c033cdaa-2c40-4a64-ae48-b4cec88dad24","policyName":"TEN_SECONDLY_ROLLING","requestId":"3d3e35b7-0dae-4b9f-a6e3-9c230cbcf8dd"}"#;
const DAILY: &str = r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"7b1e2f3a-4c5d-4e6f-8a9b-0c1d2e3f4a5b","policyName":"DAILY","requestId":"9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b"}"#;
const UNAUTHORIZED: &str = r#"{"status":"error","message":"Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview","correlationId":"a1b2c3d4-e5f6-7890-abcd-ef1234567890","category":"INVALID_AUTHENTICATION"}"#;
const MISSING_SCOPES: &str = r#"{"status":"error","message":"This app hasn't been granted all required scopes to make this call.","correlationId":"b2c3d4e5-f6a7-4890-bcde-f12345678901","category":"MISSING_SCOPES","errors":[{"message":"One or more of the following scopes are required.","context":{"requiredGranularScopes":["crm.objects.contacts.write"]}}]}"#;

fn contact(id: &str) -> String {
    json!({"id": id, "properties": {"email": "alex@northstar.io", "onboarding_step": "3"},
           "createdAt": "2026-03-21T15:06:00.000Z", "updatedAt": "2026-03-21T15:06:01.000Z", "archived": false})
    .to_string()
}

fn fields() -> Value {
    json!({"email": "alex@northstar.io", "properties": {"onboarding_step": 3, "last_completed_page": "Connect your CRM"}})
}

fn run(host: &MockHost, fields: Value, settings: Value) -> Result<String, Failure> {
    HubSpot::deliver(host, Delivery::new(event("page.completed", json!({})), ACTION, fields, settings))
}

fn deliver(host: &MockHost) -> Result<String, Failure> {
    run(host, fields(), json!({}))
}

/// One request as (method, url, parsed body), with the auth and content
/// type every call must carry checked on the way.
fn sent(host: &MockHost) -> Vec<(String, String, Value)> {
    host.requests()
        .into_iter()
        .map(|r| {
            assert_eq!(r.header_value("authorization"), Some("Bearer {{secret.access_token}}"), "{}", r.url);
            assert_eq!(r.header_value("content-type"), Some("application/json"), "{}", r.url);
            assert_eq!(r.headers.len(), 2, "only auth and content type: {:?}", r.headers);
            let body = serde_json::from_slice(r.body.as_deref().unwrap_or_default()).expect("a JSON body");
            (r.method, r.url, body)
        })
        .collect()
}

fn call(method: &str, url: &str, body: Value) -> (String, String, Value) {
    (method.to_string(), url.to_string(), body)
}

fn update_body() -> Value {
    json!({"properties": {"onboarding_step": "3", "last_completed_page": "Connect your CRM"}})
}

#[test]
fn a_known_contact_is_updated_with_one_patch_by_email() {
    let host = MockHost::new().respond(200, &contact("801"));
    assert_eq!(deliver(&host), Ok("updated contact 801".to_string()));
    assert_eq!(sent(&host), [call("PATCH", BY_EMAIL, update_body())]);
}

#[test]
fn a_missing_contact_is_created_with_its_email() {
    let host = MockHost::new().respond(404, NOT_FOUND).respond(201, &contact("802"));
    assert_eq!(deliver(&host), Ok("created contact 802".to_string()));
    let create = json!({"properties": {"email": "alex@northstar.io", "onboarding_step": "3",
                                       "last_completed_page": "Connect your CRM"}});
    assert_eq!(sent(&host), [call("PATCH", BY_EMAIL, update_body()), call("POST", CONTACTS, create)]);
}

#[test]
fn a_create_race_is_recovered_by_patching_the_id_hubspot_names() {
    let host = MockHost::new().respond(404, NOT_FOUND).respond(409, CONFLICT).respond(200, &contact("1948209"));
    assert_eq!(deliver(&host), Ok("updated contact 1948209 (created concurrently by another writer)".to_string()));
    let calls = sent(&host);
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1].0, "POST");
    assert_eq!(calls[2], call("PATCH", &format!("{CONTACTS}/1948209"), update_body()));
}

#[test]
fn a_conflict_that_remains_or_names_no_contact_is_permanent() {
    let host = MockHost::new().respond(404, NOT_FOUND).respond(409, CONFLICT).respond(409, CONFLICT);
    let failure = deliver(&host).unwrap_err();
    assert!(matches!(&failure, Failure::Permanent(m) if m.contains("409")), "{failure:?}");
    assert_eq!(host.requests().len(), 3, "no fourth call");

    let vague = r#"{"status":"error","message":"Conflict","category":"CONFLICT"}"#;
    let host = MockHost::new().respond(404, NOT_FOUND).respond(409, vague);
    assert_eq!(
        deliver(&host),
        Err(Failure::permanent("the create conflicted but names no existing contact: HTTP 409 CONFLICT: Conflict"))
    );
}

#[test]
fn values_are_sent_as_the_strings_hubspot_stores() {
    let host = MockHost::new().respond(200, &contact("801"));
    let fields = json!({"email": "alex@northstar.io", "properties": {
        "onboarding_step": 3, "time_on_page": 52.5, "is_admin": true, "nickname": null,
        "interests": ["crm", "email", 7], "firstname": "Alex", "email": "Alex@Northstar.io"}});
    run(&host, fields, json!({})).unwrap();
    let expected = json!({"properties": {"onboarding_step": "3", "time_on_page": "52.5", "is_admin": "true",
        "nickname": "", "interests": "crm;email;7", "firstname": "Alex"}});
    assert_eq!(sent(&host)[0].2, expected, "properties.email equal to `email` is dropped");
}

#[test]
fn the_email_is_percent_encoded_into_one_path_segment() {
    let host = MockHost::new().respond(200, &contact("801"));
    let fields = json!({"email": " o'neil+trial@northstar.io ", "properties": {"firstname": "Pat"}});
    run(&host, fields, json!({})).unwrap();
    assert_eq!(host.requests()[0].url, format!("{CONTACTS}/o%27neil%2Btrial%40northstar.io?idProperty=email"));
}

#[test]
fn settings_choose_the_origin_and_the_dated_version() {
    let host = MockHost::new().respond(404, NOT_FOUND).respond(201, &contact("9"));
    run(&host, fields(), json!({"base_url": "http://127.0.0.1:4010/hubspot/", "api_version": "2027-03"})).unwrap();
    let urls: Vec<String> = host.requests().into_iter().map(|r| r.url).collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:4010/hubspot/crm/objects/2027-03/contacts/alex%40northstar.io?idProperty=email",
            "http://127.0.0.1:4010/hubspot/crm/objects/2027-03/contacts",
        ]
    );
}

#[test]
fn a_404_to_the_create_points_at_the_version_setting() {
    let host = MockHost::new().respond(404, NOT_FOUND).respond(404, NOT_FOUND);
    let failure = deliver(&host).unwrap_err();
    assert!(matches!(&failure, Failure::Permanent(m) if m.contains("settings.api_version")), "{failure:?}");
}

#[test]
fn an_unknown_property_is_permanent_and_named() {
    let host = MockHost::new().respond(400, UNKNOWN_PROPERTY);
    let failure = deliver(&host).unwrap_err();
    assert_eq!(
        failure,
        Failure::permanent(
            "HubSpot refused the contact: property `favorite_color` does not exist in HubSpot (PROPERTY_DOESNT_EXIST): create it there or remove it from the rule's properties"
        )
    );
    assert_eq!(host.requests().len(), 1, "a refused update is not retried as a create");
}

#[test]
fn other_validation_errors_name_the_property_and_the_code() {
    let host = MockHost::new().respond(404, NOT_FOUND).respond(400, INVALID_EMAIL);
    let failure = deliver(&host).unwrap_err();
    assert_eq!(
        failure,
        Failure::permanent(
            "HubSpot refused the contact: property `email`: Email address alex@northstar is invalid (INVALID_EMAIL)"
        )
    );
    let plain = r#"{"status":"error","message":"No properties found to update, please provide at least one.","correlationId":"x","category":"VALIDATION_ERROR"}"#;
    let host = MockHost::new().respond(400, plain);
    assert_eq!(
        deliver(&host),
        Err(Failure::permanent(
            "HTTP 400 VALIDATION_ERROR: No properties found to update, please provide at least one."
        ))
    );
}

#[test]
fn the_rolling_limit_waits_out_the_interval_header() {
    let headers = [
        ("X-HubSpot-RateLimit-Max", "100"),
        ("X-HubSpot-RateLimit-Remaining", "0"),
        ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
        ("X-HubSpot-RateLimit-Daily", "250000"),
        ("X-HubSpot-RateLimit-Daily-Remaining", "249873"),
    ];
    let host = MockHost::new().respond_with(429, &headers, TEN_SECONDLY);
    assert_eq!(
        deliver(&host),
        Err(Failure::rate_limited(
            "HTTP 429 RATE_LIMIT: You have reached your ten_secondly_rolling limit.",
            Some(10_000)
        ))
    );
    // The same on the create and on the race's second patch.
    let host = MockHost::new().respond(404, NOT_FOUND).respond_with(429, &headers, TEN_SECONDLY);
    assert!(matches!(deliver(&host), Err(Failure::RateLimited(r)) if r.after_ms == Some(10_000)));
    let host = MockHost::new().respond(404, NOT_FOUND).respond(409, CONFLICT).respond_with(429, &headers, TEN_SECONDLY);
    assert!(matches!(deliver(&host), Err(Failure::RateLimited(r)) if r.after_ms == Some(10_000)));
}

#[test]
fn the_daily_limit_waits_until_the_next_utc_midnight() {
    let headers = [("X-HubSpot-RateLimit-Daily", "250000"), ("X-HubSpot-RateLimit-Daily-Remaining", "0")];
    // The test event's attempt time is 2026-01-15T10:00:00Z: 14 h to midnight.
    let host = MockHost::new().respond_with(429, &headers, DAILY);
    assert!(matches!(deliver(&host), Err(Failure::RateLimited(r)) if r.after_ms == Some(14 * 3600 * 1000)));

    let mut late = event("page.completed", json!({}));
    late.attempt_time = 1_768_521_599; // 2026-01-15T23:59:59Z
    let host = MockHost::new().respond_with(429, &headers, DAILY);
    let result = HubSpot::deliver(&host, Delivery::new(late, ACTION, fields(), json!({})));
    assert!(matches!(result, Err(Failure::RateLimited(r)) if r.after_ms == Some(1000)));

    // No body to name the policy: the exhausted daily counter says it.
    let host = MockHost::new().respond_with(429, &headers, "");
    assert!(matches!(deliver(&host), Err(Failure::RateLimited(r)) if r.after_ms == Some(14 * 3600 * 1000)));
}

#[test]
fn a_429_without_hubspot_headers_falls_back_to_retry_after_then_the_burst_window() {
    let host = MockHost::new().respond_with(429, &[("Retry-After", "3")], TEN_SECONDLY);
    assert!(matches!(deliver(&host), Err(Failure::RateLimited(r)) if r.after_ms == Some(3000)));
    let host = MockHost::new().respond(429, "Too Many Requests");
    assert_eq!(deliver(&host), Err(Failure::rate_limited("HTTP 429: Too Many Requests", Some(10_000))));
}

#[test]
fn locked_and_migrating_contacts_are_retried_after_the_documented_wait() {
    let locked = r#"{"status":"error","message":"The contact is locked","category":"LOCKED"}"#;
    let host = MockHost::new().respond(423, locked);
    assert_eq!(deliver(&host), Err(Failure::retry_after("HTTP 423 LOCKED: The contact is locked", Some(2000))));
    let host = MockHost::new().respond_with(423, &[("Retry-After", "5")], locked);
    assert!(matches!(deliver(&host), Err(Failure::Retryable(r)) if r.after_ms == Some(5000)));
    let host = MockHost::new().respond_with(423, &[("Retry-After", "1")], locked);
    assert!(matches!(deliver(&host), Err(Failure::Retryable(r)) if r.after_ms == Some(2000)), "at least 2 s");

    let host = MockHost::new().respond_with(477, &[("Retry-After", "30")], "Migration in progress");
    assert_eq!(deliver(&host), Err(Failure::retry_after("HTTP 477: Migration in progress", Some(30_000))));
}

#[test]
fn server_errors_and_timeouts_are_retryable() {
    for status in [500, 502, 503, 504, 521, 522, 523, 524] {
        let host = MockHost::new().respond(status, "<html>upstream error</html>");
        assert!(matches!(deliver(&host), Err(Failure::Retryable(r)) if r.after_ms.is_none()), "HTTP {status}");
    }
    let host = MockHost::new().respond_with(503, &[("Retry-After", "7")], "");
    assert!(matches!(deliver(&host), Err(Failure::Retryable(r)) if r.after_ms == Some(7000)));
    let host = MockHost::new().respond(404, NOT_FOUND).fail(SendError::Timeout);
    assert!(matches!(deliver(&host), Err(Failure::Retryable(_))));
    let host = MockHost::new().fail(SendError::Connect("connection refused".into()));
    assert!(matches!(deliver(&host), Err(Failure::Retryable(_))));
}

#[test]
fn bad_or_unscoped_tokens_are_auth_failures() {
    let host = MockHost::new().respond(401, UNAUTHORIZED);
    assert!(matches!(deliver(&host), Err(Failure::Auth(m)) if m.contains("INVALID_AUTHENTICATION")));
    let host = MockHost::new().respond(403, MISSING_SCOPES);
    let failure = deliver(&host).unwrap_err();
    assert!(
        matches!(&failure, Failure::Auth(m) if m.contains("MISSING_SCOPES") && m.contains("crm.objects.contacts.write")),
        "{failure:?}"
    );
    assert_eq!(host.requests().len(), 1);
}

#[test]
fn other_client_errors_are_permanent() {
    let host = MockHost::new().respond(405, "");
    assert_eq!(deliver(&host), Err(Failure::permanent("HTTP 405: (empty body)")));
    let host = MockHost::new().respond(301, "");
    assert!(matches!(deliver(&host), Err(Failure::Permanent(_))));
}

#[test]
fn unusable_fields_are_named_before_any_call() {
    let cases = [
        (json!({"properties": {"a": "1"}}), "field `email` is required"),
        (json!({"email": 7, "properties": {"a": "1"}}), "field `email` must be a string, got a number"),
        (json!({"email": "alex", "properties": {"a": "1"}}), "field `email` must be an email address, got `alex`"),
        (json!({"email": "a@b.io"}), "field `properties` is required"),
        (json!({"email": "a@b.io", "properties": "onboarding_step=3"}), "field `properties` must be an object"),
        (json!({"email": "a@b.io", "properties": {}}), "field `properties` must set at least one contact property"),
        (json!({"email": "a@b.io", "properties": {"email": "a@b.io"}}), "field `properties` must set at least one"),
        (json!({"email": "a@b.io", "properties": {"page": {"id": 1}}}), "field `properties.page` must be a string"),
        (json!({"email": "a@b.io", "properties": {"tags": [["x"]]}}), "field `properties.tags` must be a string"),
        (json!({"email": "a@b.io", "properties": {"email": "b@b.io"}}), "field `properties.email` (`b@b.io`) differs"),
        (json!({"email": "a@b.io", "property": {"a": "1"}}), "field `property` is not a field of upsert_contact"),
    ];
    for (fields, expected) in cases {
        let host = MockHost::new();
        let failure = run(&host, fields.clone(), json!({})).unwrap_err();
        assert!(matches!(&failure, Failure::InvalidFields(m) if m.starts_with(expected)), "{fields}: {failure:?}");
        assert!(host.requests().is_empty());
    }
    let host = MockHost::new();
    let wrong = HubSpot::deliver(&host, Delivery::new(event("x", json!({})), "tag_user", fields(), json!({})));
    assert!(matches!(wrong, Err(Failure::InvalidFields(m)) if m.contains("upsert_contact")));
}

#[test]
fn bad_settings_at_delivery_are_permanent() {
    let host = MockHost::new();
    let failure = run(&host, fields(), json!({"api_version": "v3"})).unwrap_err();
    assert!(matches!(&failure, Failure::Permanent(m) if m.starts_with("settings.api_version")), "{failure:?}");
    assert!(host.requests().is_empty());
}

#[test]
fn validate_names_the_faulty_setting() {
    assert_eq!(HubSpot::validate(&json!({})), Ok(()));
    assert_eq!(HubSpot::validate(&json!({"api_version": "2026-09", "base_url": "https://api.hubapi.com"})), Ok(()));
    assert_eq!(HubSpot::validate(&json!({"base_url": "http://127.0.0.1:4010/prefix/"})), Ok(()));
    let err = |s: Value| HubSpot::validate(&s).unwrap_err();
    for bad in ["v3", "2026-13", "2026-00", "2026-9", "20260-09", ""] {
        assert!(err(json!({"api_version": bad})).starts_with("settings.api_version must be"), "{bad}");
    }
    assert!(err(json!({"api_version": 202609})).starts_with("settings.api_version"));
    for bad in
        ["api.hubapi.com", "ftp://api.hubapi.com", "https://", "https:///x", "https://x.io?a=1", "https://x.io#f"]
    {
        assert!(
            err(json!({"base_url": bad})).starts_with("settings.base_url must be an absolute http(s) URL"),
            "{bad}"
        );
    }
    assert!(err(json!({"region": "eu"})).starts_with("settings.region is not a setting of this connector"));
    assert_eq!(err(json!([])), "settings must be a JSON object");
}

#[test]
fn describes_itself_per_spec() {
    let m = HubSpot::describe();
    assert_eq!((m.name.as_str(), m.version.as_str()), ("hubspot", env!("CARGO_PKG_VERSION")));
    assert_eq!(action_names(&m), [ACTION]);
    assert_eq!(m.actions[0].fields_schema["required"], json!(["email", "properties"]));
    assert_eq!(secrets(&m), [(ACCESS_TOKEN, true)]);
    assert_eq!(m.allowed_hosts, ["api.hubapi.com"]);
    assert_eq!(m.default_rate_limit, Some(switchboard_sdk::RateLimit { requests: 40, per_seconds: 10 }));
    let props = &m.settings_schema["properties"];
    assert_eq!(
        (props["api_version"]["default"].as_str(), props["base_url"]["default"].as_str()),
        (Some(DEFAULT_API_VERSION), Some(DEFAULT_BASE_URL))
    );
    assert_eq!(m.settings_schema["additionalProperties"], false);
}
