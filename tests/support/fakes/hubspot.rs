//! A fake of HubSpot's CRM contacts API, faithful to destinations.md
//! (§ HubSpot): an axum server on 127.0.0.1:0 that behaves like the vendor,
//! not like our connector.
//!
//! - Routes: `PATCH /crm/objects/{version}/contacts/{id}` (with
//!   `?idProperty=email` the id is a percent-encoded email) and
//!   `POST /crm/objects/{version}/contacts`, for the dated versions it knows
//!   ([`API_VERSION`] unless told more with [`FakeHubSpot::add_api_version`]).
//!   Anything else is HubSpot's 404.
//! - Auth: `Authorization: Bearer {TOKEN}` or a 401 `INVALID_AUTHENTICATION`.
//! - Bodies are read the way HubSpot's Jackson does: invalid JSON or a
//!   nested property value is a 400 `Invalid input JSON …`; numbers and
//!   booleans are coerced to strings; `null` clears. Then HubSpot's
//!   validation: unknown properties (`PROPERTY_DOESNT_EXIST`), read-only ones,
//!   malformed emails (`INVALID_EMAIL`) are a 400 `VALIDATION_ERROR` whose
//!   message embeds the per-property verdicts as JSON text; a PATCH without
//!   properties is HubSpot's "No properties found to update".
//! - State: contacts (emails unique and lower-cased, ids counting up from
//!   801), the portal's property definitions (HubSpot's defaults plus
//!   [`FakeHubSpot::define_properties`]). Not found is
//!   `{"status":"error","message":"resource not found",…}`; a create (or an
//!   email change) that collides is a 409 `Contact already exists. Existing
//!   ID: n` (`CONFLICT`).
//! - The create race: [`FakeHubSpot::race_on_create`] makes "another writer"
//!   create the contact just before our next create for that email lands, so
//!   the 409 comes from the state, as it would at HubSpot.
//! - Rate limit ([`FakeHubSpot::set_rate_limit`], off by default): a rolling
//!   window and a daily quota; over either, HubSpot's 429 (`RATE_LIMIT`,
//!   `policyName`, no `Retry-After`) with the `X-HubSpot-RateLimit-*`
//!   headers, which accepted answers carry too. Requests it refuses do not
//!   count, and [`FakeHubSpot::throttled`] says how many it refused.
//! - Injected failures ([`FakeHubSpot::fail_next`]) answer the next calls
//!   before auth, with HubSpot's shapes: 429 of either policy, 5xx (JSON for
//!   500, gateway pages for the rest, Cloudflare's 52x), 401, 403
//!   `MISSING_SCOPES`, 423 Locked, 477 with `Retry-After`.
//! - Every call (method, path and query, headers, body) is recorded first.

mod failures;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use axum::body::Body;
use axum::http::{Method, Response};
use serde_json::{Value, json};

use super::server::{self, Answer, Call, Fake, FakeServer, percent_decode};
pub use failures::{Failure, Policy, RateLimit};

/// The private-app token the fake accepts.
pub const TOKEN: &str = "pat-na1-5b1f2d3e-7a8c-4e2b-9f10-6c2d8e4a1b3f";
/// The dated API version the fake serves from the start.
pub const API_VERSION: &str = "2026-09";
/// Contact properties every HubSpot portal has (a subset), writable.
const DEFAULT_PROPERTIES: [&str; 12] = [
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "website",
    "jobtitle",
    "city",
    "country",
    "lifecyclestage",
    "hs_lead_status",
    "hubspot_owner_id",
];
/// Properties HubSpot maintains itself: writing them is a validation error.
const READ_ONLY: [&str; 3] = ["hs_object_id", "createdate", "lastmodifieddate"];
const PORTAL_ID: u64 = 46_123;
const FIRST_ID: u64 = 801;

/// A contact in the fake portal. `properties` are the ones clients set
/// (HubSpot's own `hs_object_id`, `createdate`, `lastmodifieddate` are only
/// in the API answers).
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: String,
    pub properties: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Contact {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    fn to_json(&self) -> Value {
        let mut properties = serde_json::Map::new();
        for (k, v) in &self.properties {
            properties.insert(k.clone(), json!(v));
        }
        properties.insert("hs_object_id".into(), json!(self.id));
        properties.insert("createdate".into(), json!(self.created_at));
        properties.insert("lastmodifieddate".into(), json!(self.updated_at));
        json!({"id": self.id, "properties": properties, "createdAt": self.created_at,
               "updatedAt": self.updated_at, "archived": false})
    }
}

/// The fake's state: one HubSpot portal.
pub struct Portal {
    contacts: Vec<Contact>,
    next_id: u64,
    properties: BTreeSet<String>,
    versions: BTreeSet<String>,
    failures: VecDeque<Failure>,
    rate_limit: Option<RateLimit>,
    window: VecDeque<Instant>,
    today: u32,
    throttled: usize,
    /// Emails another writer will create just before our next create.
    races: BTreeMap<String, BTreeMap<String, String>>,
    correlation: u64,
}

/// The running fake; stops when dropped.
pub type FakeHubSpot = FakeServer<Portal>;

impl FakeHubSpot {
    pub async fn start() -> FakeHubSpot {
        FakeServer::serve(Portal {
            contacts: Vec::new(),
            next_id: FIRST_ID,
            properties: DEFAULT_PROPERTIES.iter().map(|p| p.to_string()).collect(),
            versions: BTreeSet::from([API_VERSION.to_string()]),
            failures: VecDeque::new(),
            rate_limit: None,
            window: VecDeque::new(),
            today: 0,
            throttled: 0,
            races: BTreeMap::new(),
            correlation: 0,
        })
        .await
    }

    pub fn contacts(&self) -> Vec<Contact> {
        self.lock().contacts.clone()
    }

    /// The contact with this email (case-insensitive, as HubSpot matches).
    pub fn contact(&self, email: &str) -> Option<Contact> {
        let email = email.to_lowercase();
        self.lock().contacts.iter().find(|c| c.get("email") == Some(&email)).cloned()
    }

    /// Create custom contact properties in the portal.
    pub fn define_properties(&self, names: &[&str]) {
        self.lock().properties.extend(names.iter().map(|n| n.to_string()));
    }

    /// Serve another dated API version too.
    pub fn add_api_version(&self, version: &str) {
        self.lock().versions.insert(version.to_string());
    }

    /// A contact that already exists; returns its id.
    pub fn seed_contact(&self, email: &str, properties: &[(&str, &str)]) -> String {
        let mut portal = self.lock();
        portal.insert(email, properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// Another writer creates the contact with `email` (and `properties`)
    /// just before our next create for that email arrives.
    pub fn race_on_create(&self, email: &str, properties: &[(&str, &str)]) {
        let properties = properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.lock().races.insert(email.to_lowercase(), properties);
    }

    /// Answer the next `n` calls with `failure` (before auth and limits).
    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.lock().failures.extend(std::iter::repeat_n(failure, n));
    }

    /// Enforce a rate limit (None: unlimited, the default).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut portal = self.lock();
        portal.rate_limit = limit;
        portal.window.clear();
        portal.today = 0;
    }

    /// How many calls the rate limit refused with a 429.
    pub fn throttled(&self) -> usize {
        self.lock().throttled
    }
}

impl Fake for Portal {
    fn answer(&mut self, call: &Call) -> Answer {
        if let Some(failure) = self.failures.pop_front() {
            return self.injected(failure).into();
        }
        if call.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return self.unauthorized().into();
        }
        let limit_headers = match self.admit() {
            Ok(headers) => headers,
            Err(policy) => return self.too_many(policy).into(),
        };
        let (status, body) = self.route(call);
        reply(status, &limit_headers, body).into()
    }
}

impl Portal {
    fn route(&mut self, call: &Call) -> (u16, Value) {
        let (path, query) = call.path_and_query.split_once('?').unwrap_or((&call.path_and_query, ""));
        let Some((version, rest)) = path.strip_prefix("/crm/objects/").and_then(|p| p.split_once('/')) else {
            return (404, self.not_found());
        };
        if !self.versions.contains(version) {
            return (404, self.not_found());
        }
        let by_email = query.split('&').any(|p| p == "idProperty=email");
        match (&call.method, rest.strip_prefix("contacts")) {
            (&Method::POST, Some("")) => self.create(&call.body),
            (&Method::PATCH, Some(id)) if id.len() > 1 && id.starts_with('/') => {
                self.update(&percent_decode(&id[1..]), by_email, &call.body)
            }
            (_, Some(_)) => (405, self.error("Method not allowed", None)),
            _ => (404, self.not_found()),
        }
    }

    fn create(&mut self, body: &[u8]) -> (u16, Value) {
        let properties = match self.read_properties(body) {
            Ok(p) => p,
            Err(e) => return e,
        };
        if let Err(e) = self.validate(&properties) {
            return e;
        }
        let email = properties.get("email").map(|e| e.to_lowercase());
        if let Some(email) = &email
            && let Some(theirs) = self.races.remove(email)
            && self.find_email(email).is_none()
        {
            self.insert(email, theirs);
        }
        if let Some(existing) = email.as_deref().and_then(|e| self.find_email(e)) {
            let id = self.contacts[existing].id.clone();
            return (409, self.conflict(&id));
        }
        let id = self.insert(email.as_deref().unwrap_or_default(), properties);
        (201, self.contacts.iter().find(|c| c.id == id).expect("just inserted").to_json())
    }

    fn update(&mut self, id: &str, by_email: bool, body: &[u8]) -> (u16, Value) {
        let properties = match self.read_properties(body) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let found = if by_email { self.find_email(&id.to_lowercase()) } else { self.find_id(id) };
        let Some(index) = found else { return (404, self.not_found()) };
        if properties.is_empty() {
            let message = "No properties found to update, please provide at least one.";
            return (400, self.error(message, Some("VALIDATION_ERROR")));
        }
        if let Err(e) = self.validate(&properties) {
            return e;
        }
        if let Some(email) = properties.get("email").map(|e| e.to_lowercase())
            && let Some(other) = self.find_email(&email).filter(|&other| other != index)
        {
            let id = self.contacts[other].id.clone();
            return (409, self.conflict(&id));
        }
        let now = now();
        let contact = &mut self.contacts[index];
        for (k, v) in properties {
            let v = if k == "email" { v.to_lowercase() } else { v };
            contact.properties.insert(k, v);
        }
        contact.updated_at = now;
        (200, contact.to_json())
    }

    /// `{"properties": {name: value}}` as HubSpot's JSON binding reads it.
    fn read_properties(&mut self, body: &[u8]) -> Result<BTreeMap<String, String>, (u16, Value)> {
        let invalid = |this: &mut Self, why: &str| {
            let message = format!("Invalid input JSON on line 1, column 1: {why}");
            (400, this.error(&message, Some("VALIDATION_ERROR")))
        };
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return Err(invalid(self, &e.to_string())),
        };
        let Some(object) = value.as_object() else {
            return Err(invalid(self, "Cannot deserialize value of type `SimplePublicObjectInput` from non-object"));
        };
        let mut properties = BTreeMap::new();
        match object.get("properties") {
            None | Some(Value::Null) => {}
            Some(Value::Object(given)) => {
                for (name, value) in given {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => String::new(),
                        _ => {
                            return Err(invalid(
                                self,
                                "Cannot deserialize value of type `java.lang.String` from Array or Object value",
                            ));
                        }
                    };
                    properties.insert(name.clone(), text);
                }
            }
            Some(_) => {
                return Err(invalid(
                    self,
                    "Cannot deserialize value of type `java.util.LinkedHashMap` from non-object",
                ));
            }
        }
        Ok(properties)
    }

    /// HubSpot's property validation: every verdict in one 400.
    fn validate(&mut self, properties: &BTreeMap<String, String>) -> Result<(), (u16, Value)> {
        let mut verdicts = Vec::new();
        for (name, value) in properties {
            let refusal = if READ_ONLY.contains(&name.as_str()) {
                Some(("READ_ONLY_VALUE", format!("{name} is a read only property; its value cannot be set.")))
            } else if !self.properties.contains(name) {
                Some(("PROPERTY_DOESNT_EXIST", format!("Property \"{name}\" does not exist")))
            } else if name == "email" && !plausible_email(value) {
                Some(("INVALID_EMAIL", format!("Email address {value} is invalid")))
            } else {
                None
            };
            if let Some((code, message)) = refusal {
                verdicts.push(json!({"isValid": false, "message": message, "error": code, "name": name,
                                     "localizedErrorMessage": message, "portalId": PORTAL_ID}));
            }
        }
        if verdicts.is_empty() {
            return Ok(());
        }
        let message = format!("Property values were not valid: {}", Value::Array(verdicts));
        Err((400, self.error(&message, Some("VALIDATION_ERROR"))))
    }

    fn not_found(&mut self) -> Value {
        self.error("resource not found", None)
    }

    fn conflict(&mut self, id: &str) -> Value {
        self.error(&format!("Contact already exists. Existing ID: {id}"), Some("CONFLICT"))
    }

    /// HubSpot's error envelope.
    fn error(&mut self, message: &str, category: Option<&str>) -> Value {
        let mut body = json!({"status": "error", "message": message, "correlationId": self.correlation_id()});
        if let Some(category) = category {
            body["category"] = json!(category);
        }
        body
    }

    fn correlation_id(&mut self) -> String {
        self.correlation += 1;
        format!("{:08x}-5b1f-4e2b-9f10-{:012x}", self.correlation, self.correlation)
    }

    fn find_email(&self, email: &str) -> Option<usize> {
        self.contacts.iter().position(|c| c.get("email") == Some(email))
    }

    fn find_id(&self, id: &str) -> Option<usize> {
        self.contacts.iter().position(|c| c.id == id)
    }

    fn insert(&mut self, email: &str, mut properties: BTreeMap<String, String>) -> String {
        let id = self.next_id.to_string();
        self.next_id += 1;
        if !email.is_empty() {
            properties.insert("email".into(), email.to_lowercase());
        }
        let now = now();
        self.contacts.push(Contact { id: id.clone(), properties, created_at: now.clone(), updated_at: now });
        id
    }
}

/// HubSpot's JSON answers.
fn reply(status: u16, headers: &[(&str, String)], body: Value) -> Response<Body> {
    let mut headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    headers.push(("Content-Type", "application/json;charset=utf-8"));
    server::reply(status, &headers, body.to_string())
}

fn now() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Millisecond).unwrap_or(now).to_string()
}

fn plausible_email(text: &str) -> bool {
    matches!(text.split_once('@'), Some((user, domain)) if !user.is_empty() && domain.contains('.') && !domain.ends_with('.'))
}
