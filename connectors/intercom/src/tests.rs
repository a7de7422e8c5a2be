//! The Intercom connector's logic, natively, against a scripted host.

use switchboard_sdk::testing::{MockHost, action_names, event, secrets};

use super::*;

const CONTACT: &str = r#"{"type":"contact","id":"6762f0df1bb69f9b2193bc3a","external_id":"usr_5012","email":"alex@northstar.io","role":"user"}"#;
const TAG: &str = r#"{"type":"tag","id":"17","name":"onboarding-step-3"}"#;
/// The attempt time of `testing::event`.
const NOW: u64 = 1_768_471_200;

fn error(code: &str, message: &str) -> String {
    json!({"type": "error.list", "request_id": "req_0001", "errors": [{"code": code, "message": message}]}).to_string()
}

fn fields() -> Value {
    json!({"user_id": "usr_5012", "email": "alex@northstar.io", "tag": "onboarding-step-3"})
}

fn deliver(host: &MockHost, fields: Value, settings: Value) -> Result<String, Failure> {
    let delivery = Delivery::new(event("page.completed", json!({"sequence_step": 3})), ACTION, fields, settings);
    Intercom::deliver(host, delivery)
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(request.body.as_deref().expect("a body")).expect("a JSON body")
}

fn assert_intercom_headers(request: &Request, version: &str) {
    assert_eq!(request.header_value("authorization"), Some("Bearer {{secret.access_token}}"), "{}", request.url);
    assert_eq!(request.header_value("intercom-version"), Some(version), "{}", request.url);
    assert_eq!(request.header_value("accept"), Some("application/json"), "{}", request.url);
}

#[test]
fn an_existing_user_is_found_by_external_id_and_tagged_in_two_calls() {
    let host = MockHost::new().respond(200, CONTACT).respond(200, TAG);
    let summary = deliver(&host, fields(), json!({})).unwrap();
    assert_eq!(summary, "contact 6762f0df1bb69f9b2193bc3a tagged `onboarding-step-3` (tag 17)");

    let sent = host.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[0].method.as_str(), sent[0].url.as_str()),
        ("GET", "https://api.intercom.io/contacts/find_by_external_id/usr_5012")
    );
    assert_eq!(sent[0].body, None);
    assert_eq!((sent[1].method.as_str(), sent[1].url.as_str()), ("POST", "https://api.intercom.io/tags"));
    assert_eq!(sent[1].header_value("content-type"), Some("application/json"));
    assert_eq!(body(&sent[1]), json!({"name": "onboarding-step-3", "users": [{"id": "6762f0df1bb69f9b2193bc3a"}]}));
    for request in &sent {
        assert_intercom_headers(request, "2.14");
    }
}

#[test]
fn a_missing_user_is_created_with_role_external_id_and_email() {
    let host =
        MockHost::new().respond(404, &error("not_found", "User Not Found")).respond(200, CONTACT).respond(200, TAG);
    let summary = deliver(&host, fields(), json!({})).unwrap();
    assert_eq!(summary, "contact 6762f0df1bb69f9b2193bc3a created and tagged `onboarding-step-3` (tag 17)");
    let sent = host.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!((sent[1].method.as_str(), sent[1].url.as_str()), ("POST", "https://api.intercom.io/contacts"));
    assert_eq!(body(&sent[1]), json!({"role": "user", "external_id": "usr_5012", "email": "alex@northstar.io"}));
    assert_intercom_headers(&sent[1], "2.14");
    assert_eq!(body(&sent[2])["users"], json!([{"id": "6762f0df1bb69f9b2193bc3a"}]));
}

#[test]
fn a_409_on_create_recovers_the_existing_contact_id_from_the_message() {
    let conflict =
        error("conflict", "A contact matching those details already exists with id=5f7b1c2d3e4f5a6b7c8d9e0f");
    let host =
        MockHost::new().respond(404, &error("not_found", "User Not Found")).respond(409, &conflict).respond(200, TAG);
    let summary = deliver(&host, fields(), json!({})).unwrap();
    assert_eq!(summary, "contact 5f7b1c2d3e4f5a6b7c8d9e0f tagged `onboarding-step-3` (tag 17)");
    assert_eq!(body(&host.requests()[2])["users"], json!([{"id": "5f7b1c2d3e4f5a6b7c8d9e0f"}]));
}

#[test]
fn a_409_without_an_id_is_permanent() {
    let host = MockHost::new()
        .respond(404, &error("not_found", "User Not Found"))
        .respond(409, &error("conflict", "Conflict with another request"));
    let failure = deliver(&host, fields(), json!({})).unwrap_err();
    assert_eq!(failure, Failure::permanent("create contact: HTTP 409 conflict: Conflict with another request"));
    assert_eq!(host.requests().len(), 2, "nothing is tagged");
}

#[test]
fn without_a_user_id_the_contact_is_searched_by_email() {
    let list = json!({"type": "list", "total_count": 2, "data": [
        {"type": "contact", "id": "lead1", "role": "lead", "email": "alex@northstar.io"},
        {"type": "contact", "id": "user1", "role": "user", "email": "alex@northstar.io"}
    ]});
    let host = MockHost::new().respond(200, &list.to_string()).respond(200, TAG);
    let summary = deliver(&host, json!({"email": "alex@northstar.io", "tag": "vip"}), json!({})).unwrap();
    assert_eq!(summary, "contact user1 tagged `onboarding-step-3` (tag 17)", "the user wins over the lead");
    let sent = host.requests();
    assert_eq!((sent[0].method.as_str(), sent[0].url.as_str()), ("POST", "https://api.intercom.io/contacts/search"));
    assert_eq!(body(&sent[0]), json!({"query": {"field": "email", "operator": "=", "value": "alex@northstar.io"}}));
    assert_intercom_headers(&sent[0], "2.14");
    assert_eq!(body(&sent[1]), json!({"name": "vip", "users": [{"id": "user1"}]}));
}

#[test]
fn an_empty_search_creates_the_contact_with_email_only() {
    let empty = json!({"type": "list", "total_count": 0, "data": []}).to_string();
    let host = MockHost::new().respond(200, &empty).respond(200, CONTACT).respond(200, TAG);
    deliver(&host, json!({"email": "alex@northstar.io", "tag": "vip"}), json!({})).unwrap();
    assert_eq!(body(&host.requests()[1]), json!({"role": "user", "email": "alex@northstar.io"}));
}

#[test]
fn a_numeric_user_id_is_sent_as_a_string_and_path_segments_are_encoded() {
    let host = MockHost::new().respond(200, CONTACT).respond(200, TAG);
    deliver(&host, json!({"user_id": 5012, "tag": "t"}), json!({})).unwrap();
    assert_eq!(host.requests()[0].url, "https://api.intercom.io/contacts/find_by_external_id/5012");

    let host =
        MockHost::new().respond(404, &error("not_found", "User Not Found")).respond(200, CONTACT).respond(200, TAG);
    deliver(&host, json!({"user_id": "a/b c@d", "tag": "t"}), json!({})).unwrap();
    assert_eq!(host.requests()[0].url, "https://api.intercom.io/contacts/find_by_external_id/a%2Fb%20c%40d");
    assert_eq!(body(&host.requests()[1]), json!({"role": "user", "external_id": "a/b c@d"}));
}

#[test]
fn region_api_version_and_base_url_choose_where_and_how_calls_go() {
    let cases = [
        (json!({"region": "us"}), "https://api.intercom.io", "2.14"),
        (json!({"region": "eu"}), "https://api.eu.intercom.io", "2.14"),
        (json!({"region": "au", "api_version": "2.11"}), "https://api.au.intercom.io", "2.11"),
        (
            json!({"region": "eu", "base_url": "http://127.0.0.1:9999/intercom/"}),
            "http://127.0.0.1:9999/intercom",
            "2.14",
        ),
    ];
    for (settings, base, version) in cases {
        let host = MockHost::new().respond(200, CONTACT).respond(200, TAG);
        deliver(&host, fields(), settings.clone()).unwrap();
        let sent = host.requests();
        assert_eq!(sent[0].url, format!("{base}/contacts/find_by_external_id/usr_5012"), "{settings}");
        assert_eq!(sent[1].url, format!("{base}/tags"), "{settings}");
        assert_intercom_headers(&sent[0], version);
    }
}

#[test]
fn a_429_waits_until_x_ratelimit_reset_relative_to_the_attempt_time() {
    assert_eq!(event("e", json!({})).attempt_time, NOW, "the delays below are measured from it");
    let limited = error("rate_limit_exceeded", "Exceeded rate limit of 1666 in 10_seconds");
    let reset = (NOW + 7).to_string();
    let headers =
        [("X-RateLimit-Limit", "1666"), ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", reset.as_str())];
    let host = MockHost::new().respond_with(429, &headers, &limited);
    let failure = deliver(&host, fields(), json!({})).unwrap_err();
    assert_eq!(
        failure,
        Failure::rate_limited(
            "find contact by external id: HTTP 429 rate_limit_exceeded: Exceeded rate limit of 1666 in 10_seconds",
            Some(7_000)
        )
    );

    // A reset already past means "now" (the host bounds it to 1 s); a 429
    // on a later step is classified the same way.
    let host = MockHost::new().respond(200, CONTACT).respond_with(
        429,
        &[("X-RateLimit-Reset", &(NOW - 100).to_string())],
        &limited,
    );
    assert!(matches!(deliver(&host, fields(), json!({})), Err(Failure::RateLimited(r)) if r.after_ms == Some(0)));
    // Without the header (a proxy's 429), Retry-After if any, else the schedule.
    let host = MockHost::new().respond_with(429, &[("Retry-After", "3")], "slow down");
    assert!(matches!(deliver(&host, fields(), json!({})), Err(Failure::RateLimited(r)) if r.after_ms == Some(3000)));
    let host = MockHost::new().respond(429, "slow down");
    assert!(matches!(deliver(&host, fields(), json!({})), Err(Failure::RateLimited(r)) if r.after_ms.is_none()));
}

#[test]
fn a_merged_contact_is_permanent_and_stops_the_sequence() {
    let merged = error("contact_merged", "Contact was merged into another contact");
    let host = MockHost::new().respond_with(
        410,
        &[("Link", "<https://api.intercom.io/contacts/abc>; rel=\"canonical\"")],
        &merged,
    );
    let failure = deliver(&host, fields(), json!({})).unwrap_err();
    let Failure::Permanent(message) = failure else { panic!("410 must be permanent: {failure:?}") };
    assert!(message.starts_with("find contact by external id: HTTP 410 contact_merged"), "{message}");
    assert!(message.contains("merged into another one (Link: <https://api.intercom.io/contacts/abc>"), "{message}");
    assert_eq!(host.requests().len(), 1, "no create, no tag");
}

#[test]
fn every_other_vendor_answer_is_classified_per_the_docs() {
    type Case = (u16, &'static str, fn(&Failure) -> bool);
    let cases: [Case; 8] = [
        (
            401,
            "unauthorized",
            |f| matches!(f, Failure::Auth(m) if m.contains("HTTP 401 unauthorized: Access Token Invalid")),
        ),
        (403, "token_unauthorized", |f| matches!(f, Failure::Auth(_))),
        (400, "parameter_invalid", |f| matches!(f, Failure::Permanent(m) if m.contains("parameter_invalid"))),
        (422, "unprocessable_entity", |f| matches!(f, Failure::Permanent(_))),
        (500, "server_error", |f| matches!(f, Failure::Retryable(_))),
        (502, "server_error", |f| matches!(f, Failure::Retryable(_))),
        (503, "service_unavailable", |f| matches!(f, Failure::Retryable(r) if r.after_ms.is_none())),
        (504, "request_timeout", |f| matches!(f, Failure::Retryable(_))),
    ];
    for (status, code, expected) in cases {
        // The same answer at each of the three steps.
        for at in 0..3 {
            let mut host = MockHost::new();
            if at >= 1 {
                host = host.respond(404, &error("not_found", "User Not Found"));
            }
            if at >= 2 {
                host = host.respond(200, CONTACT);
            }
            let message = if status == 401 { "Access Token Invalid" } else { "nope" };
            let host = host.respond(status, &error(code, message));
            let failure = deliver(&host, fields(), json!({})).unwrap_err();
            assert!(expected(&failure), "HTTP {status} at step {at} gave {failure:?}");
            let step = ["find contact by external id", "create contact", "tag contact"][at];
            assert!(failure.message().starts_with(step), "{failure:?}");
        }
    }
    let host = MockHost::new().respond_with(503, &[("Retry-After", "4")], "<html>Service Unavailable</html>");
    assert_eq!(
        deliver(&host, fields(), json!({})),
        Err(Failure::retry_after("find contact by external id: HTTP 503 <html>Service Unavailable</html>", Some(4000)))
    );
    // A 404 from the tag call (the contact vanished) is permanent, not "create".
    let host = MockHost::new().respond(200, CONTACT).respond(404, &error("not_found", "User Not Found"));
    assert!(matches!(deliver(&host, fields(), json!({})), Err(Failure::Permanent(m)) if m.starts_with("tag contact")));
}

#[test]
fn transport_failures_and_garbled_answers_are_retryable() {
    let host = MockHost::new().fail(SendError::Timeout);
    assert!(matches!(deliver(&host, fields(), json!({})), Err(Failure::Retryable(_))));
    let host = MockHost::new().respond(200, CONTACT).fail(SendError::Connect("reset".into()));
    assert!(matches!(deliver(&host, fields(), json!({})), Err(Failure::Retryable(_))));
    let host = MockHost::new().respond(200, "<html>hello</html>");
    assert!(matches!(deliver(&host, fields(), json!({})), Err(Failure::Retryable(_))));
}

#[test]
fn unusable_fields_fail_before_any_call_and_name_the_field() {
    let cases = [
        (json!({"tag": "t"}), "`user_id` and `email`"),
        (json!({"user_id": null, "email": null, "tag": "t"}), "`user_id` and `email`"),
        (json!({"user_id": "u"}), "`tag`"),
        (json!({"user_id": "u", "tag": ""}), "`tag`"),
        (json!({"user_id": "u", "tag": 3}), "`tag`"),
        (json!({"user_id": true, "tag": "t"}), "`user_id`"),
        (json!({"user_id": 1.5, "tag": "t"}), "`user_id`"),
        (json!({"user_id": "", "tag": "t"}), "`user_id`"),
        (json!({"email": ["a@b.c"], "tag": "t"}), "`email`"),
    ];
    for (fields, name) in cases {
        let host = MockHost::new();
        let failure = deliver(&host, fields.clone(), json!({})).unwrap_err();
        assert!(matches!(&failure, Failure::InvalidFields(m) if m.contains(name)), "{fields}: {failure:?}");
        assert!(host.requests().is_empty(), "{fields}");
    }
    let host = MockHost::new();
    let other = Delivery::new(event("e", json!({})), "send_message", fields(), json!({}));
    assert!(matches!(Intercom::deliver(&host, other), Err(Failure::InvalidFields(m)) if m.contains("tag_user")));
}

#[test]
fn validate_names_the_faulty_setting() {
    for ok in [
        json!({}),
        json!({"region": "eu"}),
        json!({"region": "au", "api_version": "2.11", "base_url": "https://api.au.intercom.io"}),
        json!({"api_version": "Unstable"}),
        json!({"base_url": "http://127.0.0.1:8080/prefix"}),
    ] {
        assert_eq!(Intercom::validate(&ok), Ok(()), "{ok}");
    }
    let err = |s: Value| Intercom::validate(&s).unwrap_err();
    assert!(err(json!({"region": "apac"})).contains("settings.region"));
    assert!(err(json!({"region": 1})).contains("settings.region"));
    assert!(err(json!({"api_version": "latest"})).contains("settings.api_version"));
    assert!(err(json!({"api_version": 2.14})).contains("settings.api_version"));
    assert!(err(json!({"api_version": "2."})).contains("settings.api_version"));
    assert_eq!(
        err(json!({"base_url": "api.intercom.io"})),
        "settings.base_url must be an absolute http(s) URL without query or fragment, got \"api.intercom.io\""
    );
    assert!(err(json!({"base_url": "https://"})).contains("settings.base_url"));
    assert!(err(json!({"base_url": "https://x.io/?a=1"})).contains("settings.base_url"));
    assert!(err(json!({"regoin": "eu"})).starts_with("settings.regoin is not a setting"));
    assert!(err(json!([])).contains("settings must be a JSON object"));
}

#[test]
fn describes_itself_per_spec() {
    let m = Intercom::describe();
    assert_eq!(m.name, "intercom");
    assert_eq!(action_names(&m), ["tag_user"]);
    assert_eq!(m.actions[0].fields_schema["required"], json!(["tag"]));
    assert_eq!(secrets(&m), [("access_token", true)]);
    assert_eq!(m.allowed_hosts, ["api.intercom.io", "api.eu.intercom.io", "api.au.intercom.io"]);
    assert_eq!(m.default_rate_limit, Some(switchboard_sdk::RateLimit { requests: 500, per_seconds: 10 }));
    let props = m.settings_schema["properties"].as_object().unwrap();
    assert_eq!(props.keys().map(String::as_str).collect::<Vec<_>>(), ["api_version", "base_url", "region"]);
    assert_eq!(m.settings_schema["properties"]["api_version"]["default"], "2.14");
}
