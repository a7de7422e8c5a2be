//! The Intercom connector: `tag_user` finds (or creates) a user and applies a tag.
//!
//! One delivery is two calls, three when the contact must be created:
//!
//! 1. Find the contact: `GET /contacts/find_by_external_id/{user_id}` when the
//!    rule gives a `user_id`, else `POST /contacts/search` on the email.
//! 2. Not found: `POST /contacts {"role": "user", "external_id", "email"}`.
//!    A 409 means the contact exists after all (search lags a few minutes
//!    behind creates, or a user already holds that email): Intercom names its
//!    id in the message (`… already exists with id=…`), so we take it from there
//!    rather than searching again.
//! 3. Tag: `POST /tags {"name", "users": [{"id"}]}` creates the tag when it is
//!    new and applies it; tag names are case-insensitive on Intercom's side, so
//!    no tag lookup (and no cache) is needed. Every step is repeatable, so
//!    retrying a half-done delivery is harmless.
//!
//! Every call carries `Authorization: Bearer {{secret.access_token}}`,
//! `Accept: application/json` and a pinned `Intercom-Version` (setting
//! `api_version`, default `2.14`), so an app's default version changing under
//! us cannot change the shapes we parse. The host is the `region`'s
//! (us/eu/au), or `base_url` when set.
//!
//! Intercom sends no `Retry-After` on 429: the wait comes from
//! `X-RateLimit-Reset` (Unix seconds), measured from the attempt's own
//! `attempt_time` since a connector has no clock. 410 (`contact_merged`) is
//! permanent: the external id now belongs to a merged-away contact and only a
//! person can decide what to tag instead.

use serde::Deserialize;
use serde_json::{Map, Value};
use switchboard_sdk::prelude::*;

/// The connector. Stateless: see [`Connector`].
#[derive(Debug, Default)]
pub struct Intercom;

const ACCESS_TOKEN: &str = "access_token";
const ACTION: &str = "tag_user";
const DEFAULT_API_VERSION: &str = "2.14";
const REGIONS: [(&str, &str); 3] =
    [("us", "https://api.intercom.io"), ("eu", "https://api.eu.intercom.io"), ("au", "https://api.au.intercom.io")];
const SETTINGS: [&str; 3] = ["region", "api_version", "base_url"];

/// A contact as Intercom returns it; only what we use.
#[derive(Debug, Deserialize)]
struct Contact {
    id: String,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /contacts/search` answer: `{"type": "list", "data": [contact…], "total_count"}`.
#[derive(Debug, Deserialize)]
struct ContactList {
    data: Vec<Contact>,
}

/// `POST /tags` answer: `{"type": "tag", "id", "name"}`.
#[derive(Debug, Deserialize)]
struct Tag {
    id: String,
    name: String,
}

/// Intercom's error envelope: `{"type": "error.list", "request_id", "errors": [{"code", "message"}]}`.
#[derive(Debug, Deserialize)]
struct ErrorList {
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl Connector for Intercom {
    fn describe() -> Manifest {
        Manifest::new("intercom", env!("CARGO_PKG_VERSION"), "Intercom: find or create a user and tag them")
            .settings_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "region": {"enum": ["us", "eu", "au"], "default": "us",
                               "description": "Where the Intercom workspace is hosted: api.intercom.io, api.eu.intercom.io or api.au.intercom.io"},
                    "api_version": {"type": "string", "pattern": "^([0-9]+\\.[0-9]+|Unstable)$", "default": DEFAULT_API_VERSION,
                                    "description": "Sent as Intercom-Version on every call"},
                    "base_url": {"type": "string", "pattern": "^https?://[^/?#]+(/[^?#]*)?$",
                                 "description": "Overrides the region's host, e.g. https://api.eu.intercom.io (the origin the API paths hang off)"}
                }
            }))
            .secret(ACCESS_TOKEN, "Intercom access token (sent as Authorization: Bearer)", true)
            .action(
                ACTION,
                "Find the user by user_id (external id) or email, create them if missing, and apply the tag",
                json!({
                    "type": "object",
                    "required": ["tag"],
                    "anyOf": [{"required": ["user_id"]}, {"required": ["email"]}],
                    "properties": {
                        "user_id": {"type": ["string", "integer"], "description": "Your id for the user: Intercom's external_id"},
                        "email": {"type": "string", "format": "email"},
                        "tag": {"type": "string", "minLength": 1, "description": "Tag name; created when new (case-insensitive)"}
                    }
                }),
            )
            .allowed_hosts(REGIONS.map(|(_, url)| url.trim_start_matches("https://")))
            // 10,000 calls per minute per app, enforced in 10 s windows (1,666
            // a window); a delivery makes at most 3 calls. 50/s with a 50-token
            // bucket is at most 550 deliveries (1,650 calls) in any 10 s.
            .rate_limit(500, 10)
    }

    fn validate(settings: &Value) -> Result<(), String> {
        let settings = settings.as_object().ok_or("settings must be a JSON object")?;
        if let Some(unknown) = settings.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
            return Err(format!(
                "settings.{unknown} is not a setting of this connector (it takes: {})",
                SETTINGS.join(", ")
            ));
        }
        match settings.get("region") {
            None => {}
            Some(Value::String(r)) if REGIONS.iter().any(|(name, _)| name == r) => {}
            Some(other) => return Err(format!("settings.region must be us, eu or au, got {other}")),
        }
        match settings.get("api_version") {
            None => {}
            Some(Value::String(v)) if is_api_version(v) => {}
            Some(other) => {
                return Err(format!("settings.api_version must be an Intercom version such as 2.14, got {other}"));
            }
        }
        match settings.get("base_url") {
            None => {}
            Some(Value::String(url)) if is_origin(url) => {}
            Some(other) => {
                return Err(format!(
                    "settings.base_url must be an absolute http(s) URL without query or fragment, got {other}"
                ));
            }
        }
        Ok(())
    }

    fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure> {
        if delivery.action != ACTION {
            return Err(Failure::invalid_fields(format!(
                "unknown action `{}`; this connector has `{ACTION}`",
                delivery.action
            )));
        }
        let user_id = user_id(&delivery)?;
        let email = delivery.field_opt_str("email")?;
        let tag = delivery.field_str("tag")?;
        if user_id.is_none() && email.is_none() {
            return Err(Failure::invalid_fields("fields `user_id` and `email` are both missing: give at least one"));
        }
        let api = Api::new(&delivery)?;

        let (contact, created) = match api.find(host, user_id.as_deref(), email)? {
            Some(id) => (id, false),
            None => api.create(host, user_id.as_deref(), email)?,
        };
        let tag = api.tag(host, &contact, tag)?;
        let how = if created { "created and tagged" } else { "tagged" };
        Ok(format!("contact {contact} {how} `{}` (tag {})", tag.name, tag.id))
    }
}

/// `user_id` as Intercom's `external_id`, a string. A template that is a
/// lone expression keeps its JSON type, so numeric user ids arrive as numbers.
fn user_id(delivery: &Delivery) -> Result<Option<String>, Failure> {
    match delivery.fields.get("user_id") {
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        _ => Ok(delivery.field_opt_str("user_id")?.map(str::to_string)),
    }
}

/// The calls of one delivery: where they go and what they carry.
struct Api {
    base: String,
    version: String,
    now: u64,
}

impl Api {
    fn new(delivery: &Delivery) -> Result<Self, Failure> {
        let base = match delivery.setting_opt_str("base_url") {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let region = delivery.setting_opt_str("region").unwrap_or("us");
                let (_, url) = REGIONS.iter().find(|(name, _)| *name == region).ok_or_else(|| {
                    Failure::permanent(format!("setting `region` must be us, eu or au, got `{region}`"))
                })?;
                url.to_string()
            }
        };
        let version = delivery.setting_opt_str("api_version").unwrap_or(DEFAULT_API_VERSION).to_string();
        Ok(Api { base, version, now: delivery.event.attempt_time })
    }

    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(method, format!("{}{path}", self.base))
            .bearer_secret(ACCESS_TOKEN)
            .header("Intercom-Version", self.version.as_str())
            .header("Accept", "application/json")
    }

    /// The contact's id, or `None` when Intercom has no such contact.
    fn find(&self, host: &dyn Host, user_id: Option<&str>, email: Option<&str>) -> Result<Option<String>, Failure> {
        if let Some(user_id) = user_id {
            let request = self.request("GET", &format!("/contacts/find_by_external_id/{}", encode_segment(user_id)));
            let response = host.send(&request)?;
            if response.status == 404 {
                return Ok(None);
            }
            check(&response, self.now, "find contact by external id")?;
            return Ok(Some(response.json::<Contact>()?.id));
        }
        let email = email.unwrap_or_default();
        let query = json!({"query": {"field": "email", "operator": "=", "value": email}});
        let response = host.send(&self.request("POST", "/contacts/search").json(&query))?;
        check(&response, self.now, "search contacts by email")?;
        let list: ContactList = response.json()?;
        // An email can belong to a lead and a user; tag the user when there is one.
        let user = list.data.iter().position(|c| c.role.as_deref() == Some("user")).unwrap_or(0);
        Ok(list.data.into_iter().nth(user).map(|c| c.id))
    }

    /// Create the user; on 409 the contact already exists and Intercom names
    /// its id. Returns the id and whether we created it.
    fn create(&self, host: &dyn Host, user_id: Option<&str>, email: Option<&str>) -> Result<(String, bool), Failure> {
        let mut body = Map::new();
        body.insert("role".into(), "user".into());
        if let Some(user_id) = user_id {
            body.insert("external_id".into(), user_id.into());
        }
        if let Some(email) = email {
            body.insert("email".into(), email.into());
        }
        let response = host.send(&self.request("POST", "/contacts").json(&body))?;
        if response.status == 409
            && let Some(id) = conflicting_id(&response)
        {
            return Ok((id, false));
        }
        check(&response, self.now, "create contact")?;
        Ok((response.json::<Contact>()?.id, true))
    }

    fn tag(&self, host: &dyn Host, contact: &str, name: &str) -> Result<Tag, Failure> {
        let body = json!({"name": name, "users": [{"id": contact}]});
        let response = host.send(&self.request("POST", "/tags").json(&body))?;
        check(&response, self.now, "tag contact")?;
        response.json()
    }
}

/// Intercom's classification on top of the SDK's: 429 waits for
/// `X-RateLimit-Reset`, 410 is a merged contact; everything else as the SDK
/// does it (401/403 auth, 5xx retryable, other 4xx permanent). The message
/// names the step and Intercom's error code.
fn check(response: &Response, now: u64, step: &str) -> Result<(), Failure> {
    let what = || format!("{step}: HTTP {}{}", response.status, describe_error(response));
    match response.status {
        429 => {
            let reset = response.header("x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok());
            let after_ms = reset.map(|at| at.saturating_sub(now).saturating_mul(1000)).or(response.retry_after_ms(now));
            Err(Failure::rate_limited(what(), after_ms))
        }
        410 => Err(Failure::permanent(format!(
            "{}; the contact was merged into another one{}",
            what(),
            response.header("link").map(|l| format!(" (Link: {l})")).unwrap_or_default()
        ))),
        _ => response.classify(now).map_err(|failure| match failure {
            Failure::Retryable(r) => Failure::retry_after(what(), r.after_ms),
            Failure::RateLimited(r) => Failure::rate_limited(what(), r.after_ms),
            Failure::Permanent(_) => Failure::permanent(what()),
            Failure::Auth(_) => Failure::auth(what()),
            Failure::InvalidFields(_) => Failure::invalid_fields(what()),
        }),
    }
}

/// `: code: message` from Intercom's error envelope, else a body snippet.
fn describe_error(response: &Response) -> String {
    match serde_json::from_slice::<ErrorList>(&response.body) {
        Ok(list) if !list.errors.is_empty() => {
            let parts: Vec<String> = list.errors.iter().map(|e| format!("{}: {}", e.code, e.message)).collect();
            format!(" {}", parts.join("; "))
        }
        _ => {
            let text = response.text();
            let text = text.trim();
            if text.is_empty() { String::new() } else { format!(" {}", text.chars().take(200).collect::<String>()) }
        }
    }
}

/// The id in `A contact matching those details already exists with id=…`.
fn conflicting_id(response: &Response) -> Option<String> {
    let list: ErrorList = serde_json::from_slice(&response.body).ok()?;
    list.errors.iter().find_map(|e| {
        let (_, rest) = e.message.split_once("id=")?;
        let id: String = rest.chars().take_while(char::is_ascii_alphanumeric).collect();
        (!id.is_empty()).then_some(id)
    })
}

/// Percent-encode one path segment (RFC 3986 unreserved characters kept).
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_api_version(v: &str) -> bool {
    v == "Unstable"
        || v.split_once('.').is_some_and(|(major, minor)| {
            [major, minor].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// `http(s)://host[:port][/prefix]`, no query or fragment.
fn is_origin(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else { return false };
    let host = rest.split('/').next().unwrap_or_default();
    !host.is_empty() && !url.contains(['?', '#', ' '])
}

switchboard_sdk::export_connector!(Intercom);

#[cfg(test)]
mod tests;
