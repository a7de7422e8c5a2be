//! A faithful fake of the ActiveCampaign API v3 (destinations.md): one
//! account on 127.0.0.1:0 whose [`FakeActiveCampaign::base_url`] is the
//! account URL a customer would copy (`https://<account>.api-us1.com`); the
//! API hangs off `/api/3`.
//!
//! It behaves like the vendor, not like our connector:
//! - every request needs `Api-Token: <key>`; a missing or wrong key is
//!   `401 {"message":"You are not authorized to access this resource"}`;
//! - `POST /api/3/contact/sync` upserts by email (case-insensitive): 201 and
//!   `{"contact": {"id": "…", …}, "fieldValues": []}` when it creates, 200
//!   when it updates; a missing email is 422 `Missing attribute`, a malformed
//!   one 422 `email_invalid`;
//! - `GET /api/3/tags` filters with `filters[search][eq]=<name>` (equality,
//!   case-insensitive like the vendor's database collation) or `search=`
//!   (substring), paginated by `limit` (default 20) and `offset`;
//! - `POST /api/3/tags` creates a tag **even when one of that name exists**
//!   (the API does not stop duplicates: clients must search first); commas
//!   are refused (422);
//! - `POST /api/3/contactTags` applies a tag; an unknown contact or tag is 404
//!   in the documented envelope; applying it again answers 201 with the
//!   existing association;
//! - with [`FakeActiveCampaign::set_rate_limit`], at most N requests per
//!   rolling second are served per account, the rest get 429 with
//!   `Retry-After` (whole seconds until a slot frees), `RateLimit-Limit` and
//!   `RateLimit-Remaining`; refused requests do not use up the budget;
//! - [`FakeActiveCampaign::fail_next`] answers the next calls with one of the
//!   vendor's failure shapes ([`Failure`]) before anything else is checked.
//!
//! Every call is recorded ([`Call`]), with the status it got.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Query;
use axum::http::{Response, Uri};
use serde_json::{Value, json};

use super::server::{self, Answer, Call, Fake, FakeServer};

/// The account's API key: what connections must hold as `api_key`.
pub const API_KEY: &str = "ac-test-3f9a1c77e2d4b5a6c8e0f1a2b3c4d5e6f7a8b9c0";

const UNAUTHORIZED: &str = r#"{"message":"You are not authorized to access this resource"}"#;
const UNAVAILABLE_HTML: &str =
    "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub id: String,
    pub name: String,
    pub tag_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactTag {
    pub id: String,
    pub contact: String,
    pub tag: String,
}

/// The vendor's failure shapes, for [`FakeActiveCampaign::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 429 with `Retry-After: <secs>`, `RateLimit-Limit: 5`, `RateLimit-Remaining: 0`.
    RateLimited { retry_after_secs: u64 },
    /// 503 as some accounts answer at the limit: the edge's HTML page, no JSON, no `Retry-After`.
    Unavailable,
    /// 500 in the error envelope.
    ServerError,
    /// 401, the wrong-key answer.
    Unauthorized,
    /// 403, same body (a key without the permission).
    Forbidden,
    /// 404 `{"errors":[{"status":404,"title":"Not Found","detail":"Contact not found"}]}`.
    NotFound,
    /// 422 `{"errors":[{"status":422,"title":"Missing attribute",…}]}`.
    Unprocessable,
}

/// The fake's state: one ActiveCampaign account.
#[derive(Debug, Default)]
pub struct Account {
    contacts: Vec<Contact>,
    tags: Vec<Tag>,
    contact_tags: Vec<ContactTag>,
    next_id: u64,
    /// Scripted answers for the next calls: a failure, or `None` to pass one through.
    script: VecDeque<Option<Failure>>,
    rate_limit: Option<u32>,
    /// When each request served in the last second arrived.
    window: VecDeque<Instant>,
}

impl Account {
    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }
}

/// The running fake; stops when dropped.
pub type FakeActiveCampaign = FakeServer<Account>;

/// Start an empty account with no rate limit.
pub async fn start() -> FakeActiveCampaign {
    FakeServer::serve(Account::default()).await
}

impl FakeActiveCampaign {
    pub fn contacts(&self) -> Vec<Contact> {
        self.lock().contacts.clone()
    }

    pub fn contact(&self, email: &str) -> Option<Contact> {
        self.lock().contacts.iter().find(|c| c.email.eq_ignore_ascii_case(email)).cloned()
    }

    pub fn tags(&self) -> Vec<Tag> {
        self.lock().tags.clone()
    }

    pub fn contact_tags(&self) -> Vec<ContactTag> {
        self.lock().contact_tags.clone()
    }

    /// The names of the tags applied to the contact with this email.
    pub fn tags_of(&self, email: &str) -> Vec<String> {
        let a = self.lock();
        let Some(contact) = a.contacts.iter().find(|c| c.email.eq_ignore_ascii_case(email)) else { return Vec::new() };
        a.contact_tags
            .iter()
            .filter(|ct| ct.contact == contact.id)
            .filter_map(|ct| a.tags.iter().find(|t| t.id == ct.tag).map(|t| t.name.clone()))
            .collect()
    }

    /// A contact tag that already exists in the account; its id.
    pub fn seed_tag(&self, name: &str) -> String {
        let mut a = self.lock();
        let id = a.id();
        a.tags.push(Tag { id: id.clone(), name: name.into(), tag_type: "contact".into() });
        id
    }

    /// Delete a tag as a user would in the app (its associations go too).
    pub fn delete_tag(&self, id: &str) {
        let mut a = self.lock();
        a.tags.retain(|t| t.id != id);
        a.contact_tags.retain(|ct| ct.tag != id);
    }

    /// Answer the next `n` requests with `failure`, whatever they are
    /// (after any already scripted with `fail_next`/`pass_next`).
    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.lock().script.extend(std::iter::repeat_n(Some(failure), n));
    }

    /// Let the next `n` requests through normally before the failures
    /// scripted after this call: `pass_next(1); fail_next(1, …)` fails the
    /// second call from now.
    pub fn pass_next(&self, n: usize) {
        self.lock().script.extend(std::iter::repeat_n(None, n));
    }

    /// Serve at most `per_second` requests in any rolling second (the
    /// vendor's limit is 5), or no limit with `None`.
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        let mut a = self.lock();
        a.rate_limit = per_second;
        a.window.clear();
    }
}

impl Fake for Account {
    fn answer(&mut self, call: &Call) -> Answer {
        answer(self, call).into()
    }
}

fn answer(a: &mut Account, call: &Call) -> Response<Body> {
    let now = call.at;
    if let Some(Some(failure)) = a.script.pop_front() {
        return failure_response(failure);
    }
    let mut limit_headers = Vec::new();
    if let Some(limit) = a.rate_limit {
        while a.window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            a.window.pop_front();
        }
        if a.window.len() >= limit as usize {
            let frees_in = Duration::from_secs(1).saturating_sub(now.duration_since(a.window[0]));
            let secs = frees_in.as_secs() + u64::from(frees_in.subsec_nanos() > 0);
            return reply(
                429,
                &[
                    ("Retry-After", secs.max(1).to_string()),
                    ("RateLimit-Limit", limit.to_string()),
                    ("RateLimit-Remaining", "0".into()),
                ],
                json!({"message": "Too Many Requests"}),
            );
        }
        a.window.push_back(now);
        limit_headers = vec![
            ("RateLimit-Limit", limit.to_string()),
            ("RateLimit-Remaining", (limit as usize - a.window.len()).to_string()),
        ];
    }
    if call.header("api-token") != Some(API_KEY) {
        return raw(401, &[("Content-Type", "application/json".into())], UNAUTHORIZED.into());
    }
    let mut response = route(a, call);
    for (name, value) in limit_headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

fn route(a: &mut Account, call: &Call) -> Response<Body> {
    let json_body = || serde_json::from_slice::<Value>(&call.body).ok().filter(Value::is_object);
    match (call.method.as_str(), call.path()) {
        ("POST", "/api/3/contact/sync") => match json_body() {
            Some(b) => sync(a, &b["contact"]),
            None => malformed(),
        },
        ("GET", "/api/3/tags") => {
            let uri: Uri = call.path_and_query.parse().unwrap_or_default();
            let query: Vec<(String, String)> = Query::try_from_uri(&uri).map(|Query(q)| q).unwrap_or_default();
            list_tags(a, &query)
        }
        ("POST", "/api/3/tags") => match json_body() {
            Some(b) => create_tag(a, &b["tag"]),
            None => malformed(),
        },
        ("POST", "/api/3/contactTags") => match json_body() {
            Some(b) => add_contact_tag(a, &b["contactTag"]),
            None => malformed(),
        },
        _ => reply(404, &[], json!({"message": "No Result found for route"})),
    }
}

fn sync(a: &mut Account, contact: &Value) -> Response<Body> {
    let Some(email) = contact["email"].as_str().filter(|e| !e.is_empty()) else {
        return missing_attribute("email");
    };
    if !valid_email(email) {
        return reply(
            422,
            &[],
            json!({"errors": [{"status": 422, "title": "Contact Email Address is not valid.", "detail": "",
                "code": "email_invalid", "source": {"pointer": "/data/attributes/email"}}]}),
        );
    }
    let first = contact["firstName"].as_str();
    let last = contact["lastName"].as_str();
    let (status, index) = match a.contacts.iter().position(|c| c.email.eq_ignore_ascii_case(email)) {
        Some(i) => (200, i),
        None => {
            let id = a.id();
            a.contacts.push(Contact { id, email: email.into(), first_name: String::new(), last_name: String::new() });
            (201, a.contacts.len() - 1)
        }
    };
    let c = &mut a.contacts[index];
    if let Some(first) = first {
        c.first_name = first.into();
    }
    if let Some(last) = last {
        c.last_name = last.into();
    }
    let c = c.clone();
    reply(
        status,
        &[],
        json!({"fieldValues": [], "contact": {"email": c.email, "firstName": c.first_name, "lastName": c.last_name,
            "cdate": "2026-03-21T10:06:00-05:00", "udate": "2026-03-21T10:06:00-05:00",
            "links": {"contactTags": format!("/api/3/contacts/{}/contactTags", c.id)}, "id": c.id}}),
    )
}

fn list_tags(a: &Account, query: &[(String, String)]) -> Response<Body> {
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.to_lowercase());
    let eq = param("filters[search][eq]");
    let contains = param("search");
    let matching: Vec<&Tag> = a
        .tags
        .iter()
        .filter(|t| eq.as_ref().is_none_or(|e| t.name.to_lowercase() == *e))
        .filter(|t| contains.as_ref().is_none_or(|s| t.name.to_lowercase().contains(s.as_str())))
        .collect();
    let limit = param("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
    let offset = param("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).map(|t| tag_json(t)).collect();
    reply(200, &[], json!({"tags": page, "meta": {"total": matching.len().to_string()}}))
}

fn create_tag(a: &mut Account, tag: &Value) -> Response<Body> {
    let Some(name) = tag["tag"].as_str().filter(|n| !n.trim().is_empty()) else {
        return missing_attribute("tag");
    };
    if name.contains(',') {
        return reply(
            422,
            &[],
            json!({"errors": [{"status": 422, "title": "Tag names cannot contain commas", "detail": "",
                "source": {"pointer": "/data/attributes/tag"}}]}),
        );
    }
    let tag_type = tag["tagType"].as_str().unwrap_or("contact");
    if !["contact", "template"].contains(&tag_type) {
        return reply(
            422,
            &[],
            json!({"errors": [{"status": 422, "title": "Invalid tag type", "detail": "tagType must be contact or template",
                "source": {"pointer": "/data/attributes/tagType"}}]}),
        );
    }
    let id = a.id();
    let t = Tag { id, name: name.into(), tag_type: tag_type.into() };
    a.tags.push(t.clone());
    reply(201, &[], json!({"tag": tag_json(&t)}))
}

fn add_contact_tag(a: &mut Account, body: &Value) -> Response<Body> {
    let id_field = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let Some(contact) = id_field(&body["contact"]) else { return missing_attribute("contact") };
    let Some(tag) = id_field(&body["tag"]) else { return missing_attribute("tag") };
    if !a.contacts.iter().any(|c| c.id == contact) {
        return not_found("Contact not found");
    }
    if !a.tags.iter().any(|t| t.id == tag) {
        return not_found("Tag not found");
    }
    let existing = a.contact_tags.iter().find(|ct| ct.contact == contact && ct.tag == tag).cloned();
    let ct = match existing {
        Some(ct) => ct,
        None => {
            let id = a.id();
            let ct = ContactTag { id, contact, tag };
            a.contact_tags.push(ct.clone());
            ct
        }
    };
    reply(
        201,
        &[],
        json!({"contactTag": {"contact": ct.contact, "tag": ct.tag, "cdate": "2026-03-21T10:06:01-05:00",
            "links": {"contact": format!("/api/3/contactTags/{}/contact", ct.id)}, "id": ct.id}}),
    )
}

fn tag_json(t: &Tag) -> Value {
    json!({"tagType": t.tag_type, "tag": t.name, "description": "", "cdate": "2026-01-02T09:00:00-05:00",
        "links": {"contactGoalTags": format!("/api/3/tags/{}/contactGoalTags", t.id)}, "id": t.id})
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|part| !part.is_empty())
        && !email.contains(char::is_whitespace)
}

fn missing_attribute(attribute: &str) -> Response<Body> {
    reply(
        422,
        &[],
        json!({"errors": [{"status": 422, "title": "Missing attribute", "detail": format!("The {attribute} attribute is required"),
            "source": {"pointer": format!("/data/attributes/{attribute}")}}]}),
    )
}

fn not_found(detail: &str) -> Response<Body> {
    reply(404, &[], json!({"errors": [{"status": 404, "title": "Not Found", "detail": detail}]}))
}

fn malformed() -> Response<Body> {
    reply(
        400,
        &[],
        json!({"errors": [{"status": 400, "title": "Bad Request", "detail": "The request body is not a JSON object"}]}),
    )
}

fn failure_response(failure: Failure) -> Response<Body> {
    match failure {
        Failure::RateLimited { retry_after_secs } => reply(
            429,
            &[
                ("Retry-After", retry_after_secs.to_string()),
                ("RateLimit-Limit", "5".into()),
                ("RateLimit-Remaining", "0".into()),
            ],
            json!({"message": "Too Many Requests"}),
        ),
        Failure::Unavailable => raw(503, &[("Content-Type", "text/html".into())], UNAVAILABLE_HTML.into()),
        Failure::ServerError => {
            reply(500, &[], json!({"errors": [{"status": 500, "title": "Internal Server Error", "detail": ""}]}))
        }
        Failure::Unauthorized => raw(401, &[("Content-Type", "application/json".into())], UNAUTHORIZED.into()),
        Failure::Forbidden => raw(403, &[("Content-Type", "application/json".into())], UNAUTHORIZED.into()),
        Failure::NotFound => not_found("Contact not found"),
        Failure::Unprocessable => missing_attribute("email"),
    }
}

fn reply(status: u16, headers: &[(&str, String)], body: Value) -> Response<Body> {
    let mut all = vec![("Content-Type", "application/json".to_string())];
    all.extend(headers.iter().map(|(n, v)| (*n, v.clone())));
    raw(status, &all, body.to_string())
}

fn raw(status: u16, headers: &[(&str, String)], body: String) -> Response<Body> {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    server::reply(status, &headers, body)
}
