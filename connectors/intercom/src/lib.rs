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

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Map, Value};
use switchboard_sdk::prelude::*;

/// The connector. Stateless: see [`Connector`].
#[derive(Debug, Default)]
pub struct Intercom;

const ACCESS_TOKEN: &str = "access_token";
const ACTION: &str = "tag_user";
const DEFAULT_API_VERSION: &str = "2.14";

/// The connection's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    region: Region,
    api_version: Option<Checked<ApiVersion>>,
    /// Overrides the region's origin.
    base_url: Option<BaseUrl>,
}

/// Where the workspace is hosted.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Region {
    #[default]
    Us,
    Eu,
    Au,
}

impl Region {
    const ALL: [Region; 3] = [Region::Us, Region::Eu, Region::Au];

    fn host(self) -> &'static str {
        match self {
            Region::Us => "api.intercom.io",
            Region::Eu => "api.eu.intercom.io",
            Region::Au => "api.au.intercom.io",
        }
    }
}

/// `Intercom-Version`: `MAJOR.MINOR` or `Unstable`.
struct ApiVersion;

impl Check for ApiVersion {
    const EXPECTED: &'static str = "an Intercom version such as 2.14";

    fn check(text: &str) -> Option<String> {
        let numbered = |(major, minor): (&str, &str)| {
            [major, minor].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        (text == "Unstable" || text.split_once('.').is_some_and(numbered)).then(|| text.to_string())
    }
}

/// The rule's fields. Others are ignored, as they always have been.
#[derive(Debug, Deserialize)]
struct Fields {
    user_id: Option<ExternalId>,
    email: Option<NonEmpty>,
    tag: NonEmpty,
}

/// `user_id` as Intercom's `external_id`, a string. A template that is a
/// lone expression keeps its JSON type, so numeric user ids arrive as numbers.
#[derive(Debug)]
struct ExternalId(String);

impl<'de> Deserialize<'de> for ExternalId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = ExternalId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ExternalId, E> {
                if text.is_empty() { Err(E::custom("is empty")) } else { Ok(ExternalId(text.to_string())) }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ExternalId, E> {
                Ok(ExternalId(n.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ExternalId, E> {
                Ok(ExternalId(n.to_string()))
            }
        }
        deserializer.deserialize_any(Text)
    }
}

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
            .required_secret(ACCESS_TOKEN, "Intercom access token (sent as Authorization: Bearer)")
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
            .allowed_hosts(Region::ALL.map(Region::host))
            // 10,000 calls per minute per app, enforced in 10 s windows (1,666
            // a window); a delivery makes at most 3 calls. 50/s with a 50-token
            // bucket is at most 550 deliveries (1,650 calls) in any 10 s.
            .rate_limit(500, 10)
    }

    fn validate(settings: &Value) -> Result<(), String> {
        settings_as::<Settings>(settings).map(drop)
    }

    fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure> {
        delivery.expect_action(&[ACTION])?;
        let settings: Settings = delivery.settings_as()?;
        let fields: Fields = delivery.fields_as()?;
        let user_id = fields.user_id.as_ref().map(|id| id.0.as_str());
        let email = fields.email.as_deref();
        if user_id.is_none() && email.is_none() {
            return Err(Failure::invalid_fields("fields `user_id` and `email` are both missing: give at least one"));
        }
        let api = Api::new(&settings, delivery.event.attempt_time);

        let (contact, created) = match api.find(host, user_id, email)? {
            Some(id) => (id, false),
            None => api.create(host, user_id, email)?,
        };
        let tag = api.tag(host, &contact, &fields.tag)?;
        let how = if created { "created and tagged" } else { "tagged" };
        Ok(format!("contact {contact} {how} `{}` (tag {})", tag.name, tag.id))
    }
}

/// The calls of one delivery: where they go and what they carry.
struct Api {
    base: String,
    version: String,
    now: u64,
}

impl Api {
    fn new(settings: &Settings, now: u64) -> Self {
        let base = match &settings.base_url {
            Some(url) => url.to_string(),
            None => format!("https://{}", settings.region.host()),
        };
        let version = settings.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION).to_string();
        Api { base, version, now }
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
            let request = self.request("GET", &format!("/contacts/find_by_external_id/{}", percent_encode(user_id)));
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
        _ => response.classify(now).map_err(|failure| failure.map_message(|_| what())),
    }
}

/// `: code: message` from Intercom's error envelope, else a body snippet.
fn describe_error(response: &Response) -> String {
    match serde_json::from_slice::<ErrorList>(&response.body) {
        Ok(list) if !list.errors.is_empty() => {
            let parts: Vec<String> = list.errors.iter().map(|e| format!("{}: {}", e.code, e.message)).collect();
            format!(" {}", parts.join("; "))
        }
        _ => format!(" {}", response.snippet()),
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

switchboard_sdk::export_connector!(Intercom);

#[cfg(test)]
mod tests;
