//! The ActiveCampaign connector's logic, natively, against a scripted host
//! answering with the vendor's documented shapes.

use switchboard_sdk::Retry;
use switchboard_sdk::testing::{MockHost, action_names, event, secrets};

use super::*;

const ACCOUNT: &str = "https://acme.api-us1.com";
const TAG: &str = "Onboarding: Connect your CRM";
const TAG_KEY: &str = "tag:onboarding: connect your crm";

const SYNCED: &str = r#"{"fieldValues":[],"contact":{"email":"alex@northstar.io","cdate":"2026-03-21T10:06:00-05:00","udate":"2026-03-21T10:06:00-05:00","links":{},"id":"10"}}"#;
const NO_TAGS: &str = r#"{"tags":[],"meta":{"total":"0"}}"#;
const FOUND_16: &str = r#"{"tags":[{"tagType":"contact","tag":"Onboarding: Connect your CRM","description":"","cdate":"2026-01-02T09:00:00-05:00","links":{},"id":"16"}],"meta":{"total":"1"}}"#;
const CREATED_16: &str = r#"{"tag":{"tag":"Onboarding: Connect your CRM","tagType":"contact","cdate":"2026-03-21T10:06:00-05:00","links":{},"id":"16"}}"#;
const TAGGED: &str =
    r#"{"contactTag":{"contact":"10","tag":"16","cdate":"2026-03-21T10:06:01-05:00","links":{},"id":"7"}}"#;
const CONTACT_NOT_FOUND: &str = r#"{"errors":[{"status":404,"title":"Not Found","detail":"Contact not found"}]}"#;
const TAG_NOT_FOUND: &str = r#"{"errors":[{"status":404,"title":"Not Found","detail":"Tag not found"}]}"#;
const MISSING_ATTRIBUTE: &str = r#"{"errors":[{"status":422,"title":"Missing attribute","detail":"tag.tag is required","source":{"pointer":"/data/attributes/tag"}}]}"#;
const EMAIL_INVALID: &str = r#"{"errors":[{"status":422,"title":"Contact Email Address is not valid.","detail":"","code":"email_invalid","source":{"pointer":"/data/attributes/email"}}]}"#;
const RATE_LIMITED: &str = r#"{"message":"Too Many Requests"}"#;
const UNAUTHORIZED: &str = r#"{"message":"You are not authorized to access this resource"}"#;
const UNAVAILABLE_HTML: &str =
    "<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>";

fn fields() -> Value {
    json!({"email": "alex@northstar.io", "tag": TAG})
}

fn deliver_with(host: &MockHost, fields: Value, api_url: &str) -> Result<String, Failure> {
    let payload = json!({"user_id": "usr_5012", "email": "alex@northstar.io", "sequence_step": 3});
    let delivery = Delivery::new(event("page.completed", payload), "tag_contact", fields, json!({"api_url": api_url}));
    ActiveCampaign::deliver(host, delivery)
}

fn deliver(host: &MockHost, fields: Value) -> Result<String, Failure> {
    deliver_with(host, fields, ACCOUNT)
}

/// One call as the vendor must receive it: method, URL, the key placeholder,
/// and the JSON body (compared as JSON) or none.
fn assert_call(request: &Request, method: &str, url: &str, body: Option<Value>) {
    assert_eq!((request.method.as_str(), request.url.as_str()), (method, url));
    assert_eq!(request.header_value("api-token"), Some("{{secret.api_key}}"), "{url}");
    assert_eq!(request.header_value("accept"), Some("application/json"));
    assert_eq!(request.header_value("authorization"), None, "the key travels in Api-Token only");
    match body {
        Some(expected) => {
            assert_eq!(request.header_value("content-type"), Some("application/json"));
            let sent: Value = serde_json::from_str(&request.body_text()).expect("JSON body");
            assert_eq!(sent, expected, "{method} {url}");
        }
        None => assert_eq!(request.body, None, "{method} {url} has no body"),
    }
}

const SEARCH_URL: &str = "https://acme.api-us1.com/api/3/tags?filters[search][eq]=Onboarding%3A%20Connect%20your%20CRM";

#[test]
fn a_cold_delivery_syncs_searches_creates_the_tag_and_applies_it() {
    let host = MockHost::new().respond(201, SYNCED).respond(200, NO_TAGS).respond(201, CREATED_16).respond(201, TAGGED);
    let fields = json!({"email": "alex@northstar.io", "tag": TAG, "first_name": "Alex", "last_name": "Rivera"});
    assert_eq!(deliver(&host, fields), Ok("contact 10 tagged `Onboarding: Connect your CRM` (tag 16)".to_string()));

    let sent = host.requests();
    assert_eq!(sent.len(), 4);
    assert_call(
        &sent[0],
        "POST",
        "https://acme.api-us1.com/api/3/contact/sync",
        Some(json!({"contact": {"email": "alex@northstar.io", "firstName": "Alex", "lastName": "Rivera"}})),
    );
    assert_call(&sent[1], "GET", SEARCH_URL, None);
    assert_call(
        &sent[2],
        "POST",
        "https://acme.api-us1.com/api/3/tags",
        Some(json!({"tag": {"tag": TAG, "tagType": "contact"}})),
    );
    assert_call(
        &sent[3],
        "POST",
        "https://acme.api-us1.com/api/3/contactTags",
        Some(json!({"contactTag": {"contact": "10", "tag": "16"}})),
    );
    assert_eq!(host.cached(TAG_KEY).as_deref(), Some("16"), "the new tag's id is cached");
}

#[test]
fn an_existing_tag_is_matched_case_insensitively_and_never_recreated() {
    // What a looser search would also return: a longer name, a template tag
    // of the same name, and the contact tag in another case.
    let search = r#"{"tags":[
        {"tagType":"contact","tag":"Onboarding: Connect your CRM (old)","id":"21"},
        {"tagType":"template","tag":"onboarding: connect your crm","id":"9"},
        {"tagType":"contact","tag":"ONBOARDING: connect your CRM","id":"16"}],"meta":{"total":"3"}}"#;
    let host = MockHost::new().respond(201, SYNCED).respond(200, search).respond(201, TAGGED);
    deliver(&host, fields()).expect("delivered");
    let sent = host.requests();
    assert_eq!(sent.len(), 3, "sync, search, contactTags: no create");
    assert_call(&sent[1], "GET", SEARCH_URL, None);
    assert_call(
        &sent[2],
        "POST",
        "https://acme.api-us1.com/api/3/contactTags",
        Some(json!({"contactTag": {"contact": "10", "tag": "16"}})),
    );
    assert_eq!(host.cached(TAG_KEY).as_deref(), Some("16"));
}

#[test]
fn duplicates_already_in_the_account_resolve_to_the_lowest_id() {
    let search = r#"{"tags":[{"tagType":"contact","tag":"Onboarding: Connect your CRM","id":"104"},
        {"tagType":"contact","tag":"onboarding: connect your crm","id":"31"}],"meta":{"total":"2"}}"#;
    let host = MockHost::new().respond(201, SYNCED).respond(200, search).respond(201, TAGGED);
    assert_eq!(deliver(&host, fields()), Ok("contact 10 tagged `Onboarding: Connect your CRM` (tag 31)".into()));
    assert_eq!(host.requests()[2].body_text(), r#"{"contactTag":{"contact":"10","tag":"31"}}"#);
}

#[test]
fn a_warm_delivery_is_two_calls_whatever_the_tag_case() {
    let host = MockHost::new()
        .respond(201, SYNCED)
        .respond(200, FOUND_16)
        .respond(201, TAGGED)
        .respond(200, SYNCED)
        .respond(201, TAGGED);
    deliver(&host, fields()).expect("cold delivery");
    let warm = json!({"email": "alex@northstar.io", "tag": "onboarding: CONNECT your crm"});
    assert_eq!(deliver(&host, warm), Ok("contact 10 tagged `onboarding: CONNECT your crm` (tag 16)".into()));
    let sent = host.requests();
    assert_eq!(sent.len(), 5, "3 calls cold, 2 warm");
    assert_call(
        &sent[3],
        "POST",
        "https://acme.api-us1.com/api/3/contact/sync",
        Some(json!({"contact": {"email": "alex@northstar.io"}})),
    );
    assert_call(
        &sent[4],
        "POST",
        "https://acme.api-us1.com/api/3/contactTags",
        Some(json!({"contactTag": {"contact": "10", "tag": "16"}})),
    );
}

#[test]
fn a_stale_cached_tag_id_is_looked_up_again_once() {
    let host = MockHost::new()
        .respond(201, SYNCED)
        .respond(404, TAG_NOT_FOUND)
        .respond(200, NO_TAGS)
        .respond(201, &CREATED_16.replace("\"16\"", "\"17\""))
        .respond(201, TAGGED);
    host.cache_set(TAG_KEY, "99", 0);
    assert_eq!(deliver(&host, fields()), Ok("contact 10 tagged `Onboarding: Connect your CRM` (tag 17)".into()));
    let sent = host.requests();
    let calls: Vec<_> = sent.iter().map(|r| (r.method.as_str(), r.url.as_str())).collect();
    assert_eq!(
        calls,
        [
            ("POST", "https://acme.api-us1.com/api/3/contact/sync"),
            ("POST", "https://acme.api-us1.com/api/3/contactTags"),
            ("GET", SEARCH_URL),
            ("POST", "https://acme.api-us1.com/api/3/tags"),
            ("POST", "https://acme.api-us1.com/api/3/contactTags"),
        ]
    );
    assert_eq!(sent[1].body_text(), r#"{"contactTag":{"contact":"10","tag":"99"}}"#);
    assert_eq!(sent[4].body_text(), r#"{"contactTag":{"contact":"10","tag":"17"}}"#);
    assert_eq!(host.cached(TAG_KEY).as_deref(), Some("17"));
}

#[test]
fn a_refusal_of_a_freshly_found_tag_is_permanent_not_a_loop() {
    let host = MockHost::new().respond(201, SYNCED).respond(200, FOUND_16).respond(404, CONTACT_NOT_FOUND);
    let failure = deliver(&host, fields()).unwrap_err();
    assert!(
        matches!(&failure, Failure::Permanent(m) if m.starts_with("contactTags: HTTP 404") && m.contains("Contact not found")),
        "{failure:?}"
    );
    assert_eq!(host.requests().len(), 3);
}

#[test]
fn names_are_sent_only_when_given() {
    let cases = [
        (json!({"first_name": "Alex"}), json!({"email": "alex@northstar.io", "firstName": "Alex"})),
        (json!({"last_name": " Rivera "}), json!({"email": "alex@northstar.io", "lastName": "Rivera"})),
        (json!({"first_name": null, "last_name": ""}), json!({"email": "alex@northstar.io"})),
        (json!({"first_name": "  "}), json!({"email": "alex@northstar.io"})),
    ];
    for (names, contact) in cases {
        let host = MockHost::new().respond(201, SYNCED).respond(201, TAGGED);
        host.cache_set(TAG_KEY, "16", 0);
        let mut f = fields();
        f.as_object_mut().unwrap().extend(names.as_object().unwrap().clone());
        f["email"] = json!("  alex@northstar.io ");
        deliver(&host, f).expect("delivered");
        let body: Value = serde_json::from_str(&host.requests()[0].body_text()).unwrap();
        assert_eq!(body, json!({"contact": contact}), "{names}");
    }
}

#[test]
fn the_account_url_is_taken_as_the_customer_copies_it() {
    let cases = [
        ("https://acme.api-us1.com", "https://acme.api-us1.com/api/3"),
        ("https://acme.api-us1.com/", "https://acme.api-us1.com/api/3"),
        ("https://acme.api-us1.com/api/3", "https://acme.api-us1.com/api/3"),
        ("https://acme.api-us1.com/api/3/", "https://acme.api-us1.com/api/3"),
        ("  https://acme.activehosted.com/api/3// ", "https://acme.activehosted.com/api/3"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123/api/3"),
        ("http://127.0.0.1:8123/proxy/ac/", "http://127.0.0.1:8123/proxy/ac/api/3"),
    ];
    for (api_url, base) in cases {
        assert_eq!(api_base(api_url).as_deref(), Some(base), "{api_url}");
    }
    let host = MockHost::new().respond(201, SYNCED).respond(201, TAGGED);
    host.cache_set(TAG_KEY, "16", 0);
    deliver_with(&host, fields(), "https://acme.api-us1.com/api/3/").expect("delivered");
    assert_eq!(host.requests()[0].url, "https://acme.api-us1.com/api/3/contact/sync");
    assert_eq!(host.requests()[1].url, "https://acme.api-us1.com/api/3/contactTags");
}

#[test]
fn the_tag_name_is_percent_encoded_in_the_search() {
    let host = MockHost::new().respond(201, SYNCED).respond(200, NO_TAGS).respond(201, CREATED_16).respond(201, TAGGED);
    deliver(&host, json!({"email": "alex@northstar.io", "tag": "Q&A #1 / café + more=yes"})).expect("delivered");
    assert_eq!(
        host.requests()[1].url,
        "https://acme.api-us1.com/api/3/tags?filters[search][eq]=Q%26A%20%231%20%2F%20caf%C3%A9%20%2B%20more%3Dyes"
    );
    let created: Value = serde_json::from_str(&host.requests()[2].body_text()).unwrap();
    assert_eq!(created["tag"]["tag"], "Q&A #1 / café + more=yes", "the body carries the name verbatim");
}

type Check = fn(&Failure) -> bool;
/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, &'static str);

#[test]
fn every_vendor_answer_is_classified_as_documented() {
    // The test event's attempt time is 2026-01-15T10:00:00Z.
    assert_eq!(event("x", json!({})).attempt_time, 1_768_471_200);
    let in_90s = "Thu, 15 Jan 2026 10:01:30 GMT".to_string();
    // (answers before the failing one, the failing answer, expected failure, calls made)
    let cases: Vec<(&str, Vec<Answer>, Check, usize)> = vec![
        (
            "429 on sync, Retry-After in seconds",
            vec![(
                429,
                vec![
                    ("Retry-After", "30".into()),
                    ("RateLimit-Limit", "5".into()),
                    ("RateLimit-Remaining", "0".into()),
                ],
                RATE_LIMITED,
            )],
            |f| matches!(f, Failure::RateLimited(Retry { after_ms: Some(30_000), message }) if message.starts_with("contact sync: HTTP 429")),
            1,
        ),
        (
            "429 on the search stops before any create",
            vec![(201, vec![], SYNCED), (429, vec![("Retry-After", "1".into())], RATE_LIMITED)],
            |f| matches!(f, Failure::RateLimited(Retry { after_ms: Some(1000), message }) if message.starts_with("tag search")),
            2,
        ),
        (
            "429 on contactTags, Retry-After as an HTTP date",
            vec![(201, vec![], SYNCED), (200, vec![], FOUND_16), (429, vec![("Retry-After", in_90s)], RATE_LIMITED)],
            |f| matches!(f, Failure::RateLimited(Retry { after_ms: Some(90_000), .. })),
            3,
        ),
        (
            "503 at the limit with an HTML page",
            vec![(503, vec![("Content-Type", "text/html".into())], UNAVAILABLE_HTML)],
            |f| matches!(f, Failure::Retryable(Retry { after_ms: None, message }) if message.contains("503")),
            1,
        ),
        (
            "503 with Retry-After",
            vec![(201, vec![], SYNCED), (503, vec![("Retry-After", "5".into())], UNAVAILABLE_HTML)],
            |f| matches!(f, Failure::Retryable(Retry { after_ms: Some(5000), .. })),
            2,
        ),
        (
            "500",
            vec![(500, vec![], r#"{"errors":[{"status":500,"title":"Internal Server Error"}]}"#)],
            |f| matches!(f, Failure::Retryable(_)),
            1,
        ),
        (
            "401 wrong key",
            vec![(401, vec![], UNAUTHORIZED)],
            |f| matches!(f, Failure::Auth(m) if m.contains("not authorized")),
            1,
        ),
        (
            "403 on the create",
            vec![(201, vec![], SYNCED), (200, vec![], NO_TAGS), (403, vec![], UNAUTHORIZED)],
            |f| matches!(f, Failure::Auth(m) if m.starts_with("tag create")),
            3,
        ),
        (
            "422 invalid email on sync",
            vec![(422, vec![], EMAIL_INVALID)],
            |f| matches!(f, Failure::Permanent(m) if m.starts_with("contact sync: HTTP 422") && m.contains("email_invalid")),
            1,
        ),
        (
            "422 on the create",
            vec![(201, vec![], SYNCED), (200, vec![], NO_TAGS), (422, vec![], MISSING_ATTRIBUTE)],
            |f| matches!(f, Failure::Permanent(m) if m.contains("Missing attribute")),
            3,
        ),
        ("404 on sync", vec![(404, vec![], CONTACT_NOT_FOUND)], |f| matches!(f, Failure::Permanent(_)), 1),
        (
            "2xx that is not JSON",
            vec![(200, vec![], "<html>maintenance</html>")],
            |f| matches!(f, Failure::Retryable(_)),
            1,
        ),
        (
            "sync answer without a contact id",
            vec![(201, vec![], r#"{"contact":{"email":"alex@northstar.io"}}"#)],
            |f| matches!(f, Failure::Retryable(r) if r.message.contains("no id")),
            1,
        ),
        (
            "created tag without an id",
            vec![(201, vec![], SYNCED), (200, vec![], NO_TAGS), (201, vec![], r#"{"tag":{}}"#)],
            |f| matches!(f, Failure::Retryable(r) if r.message.starts_with("tag create")),
            3,
        ),
        (
            "a redirect is not followed",
            vec![(301, vec![("Location", "https://elsewhere.example".into())], "")],
            |f| matches!(f, Failure::Permanent(_)),
            1,
        ),
    ];
    for (what, answers, expected, calls) in cases {
        let mut host = MockHost::new();
        for (status, headers, body) in &answers {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            host = host.respond_with(*status, &headers, body);
        }
        let failure = deliver(&host, fields()).expect_err(what);
        assert!(expected(&failure), "{what}: got {failure:?}");
        assert_eq!(host.requests().len(), calls, "{what}");
        // Only a tag that was found is cached, whatever fails afterwards.
        let found = answers.iter().any(|(status, _, body)| *status == 200 && *body == FOUND_16);
        assert_eq!(host.cached(TAG_KEY).is_some(), found, "{what}");
    }
}

#[test]
fn transport_failures_are_retryable() {
    for error in [SendError::Timeout, SendError::Connect("connection refused".into())] {
        let host = MockHost::new().fail(error.clone());
        assert!(matches!(deliver(&host, fields()), Err(Failure::Retryable(_))), "{error}");
    }
    let host = MockHost::new().respond(201, SYNCED).fail(SendError::Timeout);
    assert!(matches!(deliver(&host, fields()), Err(Failure::Retryable(_))));
    assert_eq!(host.requests().len(), 2);
}

#[test]
fn unusable_fields_are_refused_before_any_call_naming_the_field() {
    let cases = [
        (json!({"tag": TAG}), "field `email` is required"),
        (json!({"email": 42, "tag": TAG}), "field `email` must be a string"),
        (json!({"email": "alex.northstar.io", "tag": TAG}), "field `email` must be an email address"),
        (json!({"email": "alex@northstar.io"}), "field `tag` is required"),
        (json!({"email": "alex@northstar.io", "tag": ""}), "field `tag` is empty"),
        (json!({"email": "alex@northstar.io", "tag": "   "}), "field `tag` is blank"),
        (json!({"email": "alex@northstar.io", "tag": "crm,step-3"}), "field `tag` must not contain a comma"),
        (json!({"email": "alex@northstar.io", "tag": TAG, "first_name": 7}), "field `first_name` must be a string"),
        (json!({"email": "alex@northstar.io", "tag": TAG, "last_name": ["R"]}), "field `last_name` must be a string"),
        (json!({"email": "alex@northstar.io", "tag": TAG, "firstname": "Alex"}), "field `firstname` is not a field"),
    ];
    for (fields, message) in cases {
        let host = MockHost::new(); // any request would panic: the script is empty
        match deliver(&host, fields.clone()) {
            Err(Failure::InvalidFields(m)) => assert!(m.starts_with(message), "{fields}: {m}"),
            other => panic!("{fields}: {other:?}"),
        }
    }
    let delivery = Delivery::new(event("e", json!({})), "send_webhook", fields(), json!({"api_url": ACCOUNT}));
    assert!(
        matches!(ActiveCampaign::deliver(&MockHost::new(), delivery), Err(Failure::InvalidFields(m)) if m.contains("tag_contact"))
    );
}

#[test]
fn a_broken_setting_at_delivery_time_is_permanent() {
    let missing = Delivery::new(event("e", json!({})), "tag_contact", fields(), json!({}));
    assert_eq!(
        ActiveCampaign::deliver(&MockHost::new(), missing),
        Err(Failure::permanent("settings.api_url is required"))
    );
    assert!(
        matches!(deliver_with(&MockHost::new(), fields(), "acme.api-us1.com"), Err(Failure::Permanent(m)) if m.contains("settings.api_url"))
    );
}

#[test]
fn validate_names_the_faulty_setting() {
    for good in ["https://acme.api-us1.com", "https://acme.api-us1.com/api/3/", "http://127.0.0.1:9000"] {
        assert_eq!(ActiveCampaign::validate(&json!({"api_url": good})), Ok(()), "{good}");
    }
    let bad = [
        json!({}),
        json!({"api_url": 3}),
        json!({"api_url": ""}),
        json!({"api_url": "acme.api-us1.com"}),
        json!({"api_url": "ftp://acme.api-us1.com"}),
        json!({"api_url": "https://"}),
        json!({"api_url": "https:///api/3"}),
        json!({"api_url": "https://acme.api-us1.com/?x=1"}),
        json!({"api_url": "https://user:pw@acme.api-us1.com"}),
        json!({"api_url": "https://acme .api-us1.com"}),
    ];
    for settings in bad {
        let err = ActiveCampaign::validate(&settings).unwrap_err();
        assert!(err.starts_with("settings.api_url "), "{settings}: {err}");
    }
}

#[test]
fn describes_itself_per_spec() {
    let m = ActiveCampaign::describe();
    assert_eq!((m.name.as_str(), m.version.as_str()), ("activecampaign", env!("CARGO_PKG_VERSION")));
    assert_eq!(action_names(&m), ["tag_contact"]);
    assert_eq!(m.actions[0].fields_schema["required"], json!(["email", "tag"]));
    let mut properties: Vec<_> =
        m.actions[0].fields_schema["properties"].as_object().unwrap().keys().cloned().collect();
    properties.sort();
    assert_eq!(properties, ["email", "first_name", "last_name", "tag"]);
    assert_eq!(m.settings_schema["required"], json!(["api_url"]));
    assert_eq!(secrets(&m), [("api_key", true)]);
    assert_eq!(m.allowed_hosts, ["*.api-us1.com", "*.api-us2.com", "*.activehosted.com"]);
    assert_eq!(m.default_rate_limit, Some(switchboard_sdk::RateLimit { requests: 5, per_seconds: 1 }));
}
