//! A fake of the Intercom REST API (the part `tag_user` uses), faithful to
//! Intercom's API documentation: an axum server on 127.0.0.1:0 that behaves like
//! the vendor, not like our connector.
//!
//! - Auth: `Authorization: Bearer <TOKEN>`, else 401 with Intercom's
//!   `error.list` envelope (`unauthorized` / `Access Token Invalid`).
//! - `GET /contacts/find_by_external_id/{id}` → the contact, 404 `not_found`,
//!   or 410 `contact_merged` (with a `Link` to the merged-into contact) when
//!   that contact was merged away ([`FakeIntercom::merge`]).
//! - `POST /contacts/search` with `{"query": {"field", "operator", "value"}}`
//!   (or `AND`/`OR` of such) → `{"type": "list", "data", "total_count"}`. Like
//!   the real index it lags: contacts created through the API are invisible
//!   to search until [`FakeIntercom::index_search`] (seeded ones are indexed).
//! - `POST /contacts` `{"role", "external_id", "email"}` → 200 contact, or 409
//!   `conflict` "A contact matching those details already exists with id=…"
//!   when a user already has that external id or email; 400 on a bad body.
//! - `POST /tags` `{"name", "users": [{"id"}]}` → creates the tag if new (names
//!   compared case-insensitively), applies it, 200 `{"type": "tag", "id", "name"}`;
//!   404 `not_found` for an unknown contact id, 400 without a name.
//! - Rate limit ([`FakeIntercom::set_rate_limit`]): fixed windows aligned to
//!   whole seconds, every answer carries `X-RateLimit-Limit`, `-Remaining` and
//!   `-Reset` (Unix seconds), over the limit → 429 `rate_limit_exceeded` with
//!   no `Retry-After`, as Intercom does.
//! - [`FakeIntercom::fail_next`] scripts the vendor's failure shapes for the
//!   next calls (checked before auth, as if the platform answered).
//!
//! Every call is recorded (method, path and query, headers, body).

use std::collections::VecDeque;

use axum::body::Bytes;
use axum::http::Method;
use serde_json::{Value, json};

use super::server::{Answer, Call, Fake, FakeServer, percent_decode, reply};

/// The access token the fake accepts.
pub const TOKEN: &str = "dG9rOmZha2VfaW50ZXJjb21fYXBwOjE6MA==";

/// A contact as the fake stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: String,
    pub role: String,
    pub external_id: Option<String>,
    pub email: Option<String>,
    /// Ids of the tags applied, in order.
    pub tags: Vec<String>,
    /// Set when merged into another contact.
    pub merged_into: Option<String>,
    /// Visible to `/contacts/search` (the search index lags behind creates).
    pub indexed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub id: String,
    pub name: String,
}

/// At most `requests` calls per `window_secs`-second window (Intercom: 1,666 per 10 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window_secs: u64,
}

/// A failure shape Intercom really answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 429 `rate_limit_exceeded`, `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset: reset_at`; no Retry-After.
    RateLimited { reset_at: u64 },
    /// 5xx with `server_error` / `service_unavailable`.
    Server(u16),
    /// 401 `unauthorized` / `Access Token Invalid`.
    Unauthorized,
    /// 410 `contact_merged`.
    ContactMerged,
    /// Any other error envelope, e.g. 422 `unprocessable_entity` or 400 `parameter_invalid`.
    Rejected { status: u16, code: &'static str, message: &'static str },
}

/// The fake's state: one Intercom workspace.
#[derive(Debug, Default)]
pub struct Workspace {
    contacts: Vec<Contact>,
    tags: Vec<Tag>,
    scripted: VecDeque<Failure>,
    rate_limit: Option<RateLimit>,
    /// (window start, calls admitted in it).
    window: (u64, u32),
    throttled: usize,
    serial: u64,
}

/// The running fake; stops when dropped.
pub type FakeIntercom = FakeServer<Workspace>;

/// Start a fake with no contacts, no tags and no rate limit.
pub async fn start() -> FakeIntercom {
    FakeServer::serve(Workspace::default()).await
}

impl FakeIntercom {
    pub fn contacts(&self) -> Vec<Contact> {
        self.lock().contacts.clone()
    }

    pub fn contact_by_external_id(&self, external_id: &str) -> Option<Contact> {
        self.lock().contacts.iter().find(|c| c.external_id.as_deref() == Some(external_id)).cloned()
    }

    pub fn tags(&self) -> Vec<Tag> {
        self.lock().tags.clone()
    }

    /// The names of the tags applied to a contact.
    pub fn tag_names(&self, contact_id: &str) -> Vec<String> {
        let ws = self.lock();
        let Some(contact) = ws.contacts.iter().find(|c| c.id == contact_id) else { return Vec::new() };
        contact.tags.iter().filter_map(|t| ws.tags.iter().find(|x| x.id == *t)).map(|t| t.name.clone()).collect()
    }

    /// Seed a user (already in the search index); returns its id.
    pub fn add_user(&self, external_id: Option<&str>, email: Option<&str>) -> String {
        let mut ws = self.lock();
        insert_contact(&mut ws, "user", external_id, email, true)
    }

    /// Merge contact `from` into `into`: `from`'s external id now answers 410.
    pub fn merge(&self, from: &str, into: &str) {
        let mut ws = self.lock();
        let contact = ws.contacts.iter_mut().find(|c| c.id == from).expect("a contact to merge");
        contact.merged_into = Some(into.to_string());
    }

    /// Let the search index catch up with every create.
    pub fn index_search(&self) {
        self.lock().contacts.iter_mut().for_each(|c| c.indexed = true);
    }

    /// Answer the next `n` calls with `failure`.
    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.lock().scripted.extend(std::iter::repeat_n(failure, n));
    }

    /// Enforce a rate limit (None: unlimited, no rate headers).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut ws = self.lock();
        ws.rate_limit = limit;
        ws.window = (0, 0);
    }

    /// Calls answered 429 by the rate limiter (not scripted ones).
    pub fn throttled(&self) -> usize {
        self.lock().throttled
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn insert_contact(
    ws: &mut Workspace,
    role: &str,
    external_id: Option<&str>,
    email: Option<&str>,
    indexed: bool,
) -> String {
    ws.serial += 1;
    let id = format!("6762f0df{:016x}", ws.serial);
    ws.contacts.push(Contact {
        id: id.clone(),
        role: role.to_string(),
        external_id: external_id.map(str::to_string),
        email: email.map(str::to_string),
        tags: Vec::new(),
        merged_into: None,
        indexed,
    });
    id
}

fn contact_json(c: &Contact) -> Value {
    json!({
        "type": "contact",
        "id": c.id,
        "workspace_id": "ecahpwf5",
        "external_id": c.external_id,
        "role": c.role,
        "email": c.email,
        "name": null,
        "created_at": 1_734_537_439,
        "updated_at": 1_734_537_439,
        "tags": {
            "type": "list",
            "data": c.tags.iter().map(|t| json!({"type": "tag", "id": t, "url": format!("/tags/{t}")})).collect::<Vec<_>>(),
            "url": format!("/contacts/{}/tags", c.id),
            "total_count": c.tags.len(),
            "has_more": false
        }
    })
}

/// Status, headers and JSON body.
type Reply = (u16, Vec<(String, String)>, Value);

fn error(status: u16, code: &str, message: &str) -> Reply {
    let body = json!({"type": "error.list", "request_id": format!("req{:012x}", now_secs()), "errors": [{"code": code, "message": message}]});
    (status, Vec::new(), body)
}

fn scripted(failure: Failure) -> Reply {
    match failure {
        Failure::RateLimited { reset_at } => {
            let (status, _, body) = error(429, "rate_limit_exceeded", "Exceeded rate limit of 1666 in 10_seconds");
            let headers = vec![
                ("X-RateLimit-Limit".into(), "1666".into()),
                ("X-RateLimit-Remaining".into(), "0".into()),
                ("X-RateLimit-Reset".into(), reset_at.to_string()),
            ];
            (status, headers, body)
        }
        Failure::Server(status) => {
            let code = if status == 503 { "service_unavailable" } else { "server_error" };
            error(status, code, "Something went wrong on our end")
        }
        Failure::Unauthorized => error(401, "unauthorized", "Access Token Invalid"),
        Failure::ContactMerged => error(410, "contact_merged", "Contact has been merged into another contact"),
        Failure::Rejected { status, code, message } => error(status, code, message),
    }
}

impl Fake for Workspace {
    fn answer(&mut self, call: &Call) -> Answer {
        let (status, headers, body) = respond(self, call);
        let mut headers: Vec<(&str, &str)> =
            headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        headers.push(("content-type", "application/json"));
        reply(status, &headers, body.to_string()).into()
    }
}

fn respond(ws: &mut Workspace, call: &Call) -> Reply {
    if let Some(failure) = ws.scripted.pop_front() {
        return scripted(failure);
    }
    if call.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
        return error(401, "unauthorized", "Access Token Invalid");
    }
    let mut rate_headers = Vec::new();
    if let Some(limit) = ws.rate_limit {
        let now = now_secs();
        let start = now - now % limit.window_secs;
        if ws.window.0 != start {
            ws.window = (start, 0);
        }
        let reset = (start + limit.window_secs).to_string();
        if ws.window.1 >= limit.requests {
            ws.throttled += 1;
            let (status, _, body) = error(
                429,
                "rate_limit_exceeded",
                &format!("Exceeded rate limit of {} in {}_seconds", limit.requests, limit.window_secs),
            );
            let headers = vec![
                ("X-RateLimit-Limit".into(), limit.requests.to_string()),
                ("X-RateLimit-Remaining".into(), "0".into()),
                ("X-RateLimit-Reset".into(), reset),
            ];
            return (status, headers, body);
        }
        ws.window.1 += 1;
        rate_headers = vec![
            ("X-RateLimit-Limit".into(), limit.requests.to_string()),
            ("X-RateLimit-Remaining".into(), (limit.requests - ws.window.1).to_string()),
            ("X-RateLimit-Reset".into(), reset),
        ];
    }
    let (status, mut headers, body) = match (&call.method, call.path()) {
        (&Method::GET, p) if p.starts_with("/contacts/find_by_external_id/") => {
            find_by_external_id(ws, &percent_decode(&p["/contacts/find_by_external_id/".len()..]))
        }
        (&Method::POST, "/contacts/search") => search(ws, &call.body),
        (&Method::POST, "/contacts") => create_contact(ws, &call.body),
        (&Method::POST, "/tags") => tag(ws, &call.body),
        _ => error(404, "not_found", "Resource Not Found"),
    };
    headers.extend(rate_headers);
    (status, headers, body)
}

fn find_by_external_id(ws: &Workspace, external_id: &str) -> Reply {
    let Some(contact) = ws.contacts.iter().find(|c| c.role == "user" && c.external_id.as_deref() == Some(external_id))
    else {
        return error(404, "not_found", "User Not Found");
    };
    if let Some(into) = &contact.merged_into {
        let (status, _, body) = error(410, "contact_merged", "Contact has been merged into another contact");
        let link = format!("<https://api.intercom.io/contacts/{into}>; rel=\"canonical\"");
        return (status, vec![("Link".into(), link)], body);
    }
    (200, Vec::new(), contact_json(contact))
}

/// The JSON object of a request body, or Intercom's 400.
fn object(body: &Bytes) -> Result<serde_json::Map<String, Value>, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(error(400, "bad_request", "The request body is not a valid JSON object")),
    }
}

/// An optional string parameter, or Intercom's 400.
fn opt_str<'a>(map: &'a serde_json::Map<String, Value>, name: &str) -> Result<Option<&'a str>, Reply> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(error(400, "parameter_invalid", &format!("{name} must be a string"))),
    }
}

fn search(ws: &Workspace, body: &Bytes) -> Reply {
    let query = match object(body) {
        Ok(map) => match map.get("query") {
            Some(q @ Value::Object(_)) => q.clone(),
            _ => return error(400, "parameter_not_found", "query is required"),
        },
        Err(e) => return e,
    };
    let mut data = Vec::new();
    for c in ws.contacts.iter().filter(|c| c.indexed && c.merged_into.is_none()) {
        match matches(&query, c) {
            Ok(true) => data.push(contact_json(c)),
            Ok(false) => {}
            Err(message) => return error(400, "parameter_invalid", &message),
        }
    }
    let total = data.len();
    (
        200,
        Vec::new(),
        json!({"type": "list", "data": data, "total_count": total,
        "pages": {"type": "pages", "page": 1, "per_page": 50, "total_pages": 1}}),
    )
}

/// Intercom's search query language, the part a fake needs: `=` and `!=` on
/// id, email (case-insensitive), external_id and role, combined by AND / OR.
fn matches(query: &Value, c: &Contact) -> Result<bool, String> {
    let operator = query["operator"].as_str().ok_or("operator is required")?;
    if let ("AND" | "OR", Some(parts)) = (operator, query["value"].as_array()) {
        let results = parts.iter().map(|p| matches(p, c)).collect::<Result<Vec<_>, _>>()?;
        return Ok(if operator == "AND" { results.iter().all(|r| *r) } else { results.iter().any(|r| *r) });
    }
    let field = query["field"].as_str().ok_or("field is required")?;
    let value = query["value"].as_str().ok_or("value must be a string")?;
    let actual = match field {
        "id" => Some(c.id.as_str()),
        "email" => c.email.as_deref(),
        "external_id" => c.external_id.as_deref(),
        "role" => Some(c.role.as_str()),
        other => return Err(format!("{other} is not a searchable field in this fake")),
    };
    let equal = actual.is_some_and(|a| if field == "email" { a.eq_ignore_ascii_case(value) } else { a == value });
    match operator {
        "=" => Ok(equal),
        "!=" => Ok(!equal),
        other => Err(format!("operator {other} is not supported by this fake")),
    }
}

fn create_contact(ws: &mut Workspace, body: &Bytes) -> Reply {
    let map = match object(body) {
        Ok(map) => map,
        Err(e) => return e,
    };
    let fields = (opt_str(&map, "role"), opt_str(&map, "external_id"), opt_str(&map, "email"));
    let (role, external_id, email) = match fields {
        (Ok(r), Ok(x), Ok(e)) => (r.unwrap_or("user"), x, e),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    if !["user", "lead"].contains(&role) {
        return error(400, "parameter_invalid", "role must be one of user, lead");
    }
    if role == "user" && external_id.is_none() && email.is_none() {
        return error(400, "parameter_invalid", "A user requires an email or external_id");
    }
    if email.is_some_and(|e| !e.contains('@')) {
        return error(400, "parameter_invalid", "Email address is invalid");
    }
    let existing = ws.contacts.iter().find(|c| {
        c.role == "user"
            && c.merged_into.is_none()
            && ((external_id.is_some() && c.external_id.as_deref() == external_id)
                || email.is_some_and(|e| c.email.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(e))))
    });
    if let Some(existing) = existing {
        let message = format!("A contact matching those details already exists with id={}", existing.id);
        return error(409, "conflict", &message);
    }
    let id = insert_contact(ws, role, external_id, email, false);
    let contact = ws.contacts.iter().find(|c| c.id == id).unwrap();
    (200, Vec::new(), contact_json(contact))
}

fn tag(ws: &mut Workspace, body: &Bytes) -> Reply {
    let map = match object(body) {
        Ok(map) => map,
        Err(e) => return e,
    };
    let name = match opt_str(&map, "name") {
        Ok(Some(name)) if !name.trim().is_empty() => name.to_string(),
        Ok(_) => return error(400, "parameter_not_found", "Name is required"),
        Err(e) => return e,
    };
    let mut ids = Vec::new();
    match map.get("users") {
        None => {}
        Some(Value::Array(users)) => {
            for user in users {
                let Some(id) = user["id"].as_str() else {
                    return error(400, "parameter_invalid", "users must be a list of {\"id\": contact id}");
                };
                if !ws.contacts.iter().any(|c| c.id == id && c.merged_into.is_none()) {
                    return error(404, "not_found", "User Not Found");
                }
                ids.push(id.to_string());
            }
        }
        Some(_) => return error(400, "parameter_invalid", "users must be a list"),
    }
    let tag = match ws.tags.iter().find(|t| t.name.eq_ignore_ascii_case(&name)) {
        Some(t) => t.clone(),
        None => {
            let t = Tag { id: (17 + ws.tags.len()).to_string(), name };
            ws.tags.push(t.clone());
            t
        }
    };
    for c in ws.contacts.iter_mut().filter(|c| ids.contains(&c.id)) {
        if !c.tags.contains(&tag.id) {
            c.tags.push(tag.id.clone());
        }
    }
    (200, Vec::new(), json!({"type": "tag", "id": tag.id, "name": tag.name}))
}
