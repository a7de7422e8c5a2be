//! The ActiveCampaign connector: `tag_contact` makes sure a contact exists
//! (keyed on email) and carries a tag, creating the tag the first time.
//!
//! Calls go to `{api_url}/api/3/…` with the `Api-Token` header (a
//! placeholder for the `api_key` secret, filled in by the host):
//!
//! 1. `POST contact/sync` — create-or-update by email; gives the contact id.
//! 2. The tag id: from the connection's cache, else
//!    `GET tags?filters[search][eq]=<name>`, else `POST tags`. Names are
//!    compared case-insensitively here (the vendor treats tags that way, and
//!    its plain `search=` is a substring match); if an account already has
//!    duplicates the lowest id wins, so every delivery picks the same one. A
//!    tag is never created without searching first.
//! 3. `POST contactTags` — apply the tag.
//!
//! A warm delivery is therefore 2 calls, a cold one 3–4. Tag ids are cached
//! for a day rather than forever: a tag renamed in the app would otherwise
//! keep being applied under its old name. A cached id that the vendor refuses
//! (404/422, the tag was deleted) is looked up again once, in the same
//! delivery, instead of failing every delivery until the entry expires.
//!
//! Answers are classified by the SDK's standard rules, which are the
//! vendor's: 429 rate-limited with its `Retry-After`, 401/403 auth, 5xx
//! (including the 503 some accounts answer at the limit) retryable, other
//! 4xx (404, 422) permanent. No request carries an idempotency key (the API
//! has none); every step is safe to repeat: sync keys on email, the search
//! precedes any create, and re-applying a tag changes nothing.

use serde::Deserialize;
use serde_json::Value;
use switchboard_sdk::prelude::*;

/// The connector. Stateless: see [`Connector`].
#[derive(Debug, Default)]
pub struct ActiveCampaign;

const ACTION: &str = "tag_contact";
const API_KEY: &str = "api_key";
/// One day: see the module documentation.
const TAG_TTL_SECONDS: u32 = 24 * 3600;

/// The connection's settings. Keys it does not know are ignored rather than
/// refused: connections saved with one have always delivered.
#[derive(Debug, Deserialize)]
struct Settings {
    /// Kept as `{api_url}/api/3`.
    api_url: Checked<AccountUrl>,
}

/// The account's API URL as the customer copies it.
struct AccountUrl;

impl Check for AccountUrl {
    const EXPECTED: &'static str = "an absolute http(s) URL such as https://youraccount.api-us1.com";

    fn check(text: &str) -> Option<String> {
        api_base(text)
    }
}

/// The rule's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    email: NonEmpty,
    tag: NonEmpty,
    /// Absent, `null` or blank all leave the name as it is.
    first_name: Option<String>,
    last_name: Option<String>,
}

impl Connector for ActiveCampaign {
    fn describe() -> Manifest {
        Manifest::new(
            "activecampaign",
            env!("CARGO_PKG_VERSION"),
            "ActiveCampaign: create or update a contact by email and apply a tag",
        )
        .settings_schema(json!({
            "type": "object",
            "required": ["api_url"],
            "additionalProperties": false,
            "properties": {
                "api_url": {
                    "type": "string",
                    "pattern": "^https?://",
                    "description": "Your account's API URL from Settings → Developer, e.g. https://youraccount.api-us1.com (a trailing /api/3 is fine)"
                }
            }
        }))
        .required_secret(API_KEY, "API key from Settings → Developer, sent as the Api-Token header")
        .action(
            ACTION,
            "Create or update the contact by email, then apply the tag (created if the account has none by that name)",
            json!({
                "type": "object",
                "required": ["email", "tag"],
                "additionalProperties": false,
                "properties": {
                    "email": {"type": "string", "format": "email", "description": "The contact's email: the key of the sync"},
                    "tag": {"type": "string", "minLength": 1, "pattern": "^[^,]*$",
                            "description": "Tag name, matched case-insensitively; created when absent. No commas."},
                    "first_name": {"type": ["string", "null"], "description": "Sets the contact's first name when non-empty"},
                    "last_name": {"type": ["string", "null"], "description": "Sets the contact's last name when non-empty"}
                }
            }),
        )
        .allowed_hosts(["*.api-us1.com", "*.api-us2.com", "*.activehosted.com"])
        // The vendor allows 5 requests per second per account.
        .rate_limit(5, 1)
    }

    fn validate(settings: &Value) -> Result<(), String> {
        settings_as::<Settings>(settings).map(drop)
    }

    fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure> {
        delivery.expect_action(&[ACTION])?;
        let settings: Settings = delivery.settings_as()?;
        let fields: Fields = delivery.fields_as()?;
        let email = fields.email.trim();
        if !email.contains('@') {
            return Err(Failure::invalid_fields(format!("field `email` must be an email address, got `{email}`")));
        }
        let tag = fields.tag.trim();
        if tag.is_empty() {
            return Err(Failure::invalid_fields("field `tag` is blank"));
        }
        if tag.contains(',') {
            return Err(Failure::invalid_fields(format!(
                "field `tag` must not contain a comma (ActiveCampaign forbids them in tag names), got `{tag}`"
            )));
        }
        let api = Api { host, base: settings.api_url.into_string(), now: delivery.event.attempt_time };

        let contact = api.sync_contact(email, name(fields.first_name.as_deref()), name(fields.last_name.as_deref()))?;
        let key = format!("tag:{}", tag.to_lowercase());
        let cached = host.cache_get(&key).filter(|id| !id.is_empty());
        let mut tag_id = match &cached {
            Some(id) => id.clone(),
            None => api.resolve_tag(tag, &key)?,
        };
        let mut response = api.add_tag(&contact, &tag_id)?;
        if cached.is_some() && matches!(response.status, 404 | 422) {
            host.log(Level::Info, &format!("cached id {tag_id} of tag `{tag}` was refused; looking the tag up again"));
            tag_id = api.resolve_tag(tag, &key)?;
            response = api.add_tag(&contact, &tag_id)?;
        }
        api.check("contactTags", &response)?;
        Ok(format!("contact {contact} tagged `{tag}` (tag {tag_id})"))
    }
}

/// An optional name: absent, null or blank all mean "leave it as it is".
fn name(given: Option<&str>) -> Option<&str> {
    given.map(str::trim).filter(|name| !name.is_empty())
}

/// `{api_url}/api/3` from the account URL as the customer copies it:
/// surrounding blanks, trailing slashes and a typed `/api/3` are tolerated.
fn api_base(api_url: &str) -> Option<String> {
    let base = BaseUrl::parse(api_url.trim())?;
    let url = base.as_str();
    let url = url.strip_suffix("/api/3").map_or(url, |u| u.trim_end_matches('/'));
    Some(format!("{url}/api/3"))
}

/// The account's API for one delivery.
struct Api<'a> {
    host: &'a dyn Host,
    /// `…/api/3`, no trailing slash.
    base: String,
    /// The attempt time, for `Retry-After` dates.
    now: u64,
}

impl Api<'_> {
    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(method, format!("{}/{path}", self.base))
            .header("Api-Token", secret(API_KEY))
            .header("Accept", "application/json")
    }

    /// The SDK's classifier, with the step named in the message.
    fn check(&self, step: &str, response: &Response) -> Result<(), Failure> {
        response.classify(self.now).map_err(|failure| failure.map_message(|m| format!("{step}: {m}")))
    }

    /// Send, classify, parse.
    fn call(&self, step: &str, request: Request) -> Result<Value, Failure> {
        let response = self.host.send(&request)?;
        self.check(step, &response)?;
        response.json()
    }

    /// `POST contact/sync`; the contact's id.
    fn sync_contact(&self, email: &str, first_name: Option<&str>, last_name: Option<&str>) -> Result<String, Failure> {
        let mut contact = json!({"email": email});
        if let Some(first) = first_name {
            contact["firstName"] = json!(first);
        }
        if let Some(last) = last_name {
            contact["lastName"] = json!(last);
        }
        let request = self.request("POST", "contact/sync").json(&json!({"contact": contact}));
        id_of(&self.call("contact sync", request)?["contact"], "contact sync")
    }

    /// Search the tag by exact name, create it when absent, cache its id.
    fn resolve_tag(&self, name: &str, cache_key: &str) -> Result<String, Failure> {
        let search = self.request("GET", &format!("tags?filters[search][eq]={}", percent_encode(name)));
        let found = self.call("tag search", search)?;
        let wanted = name.to_lowercase();
        let existing = found["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["tag"].as_str().is_some_and(|n| n.trim().to_lowercase() == wanted))
            .filter(|t| t["tagType"].as_str().is_none_or(|kind| kind == "contact"))
            .filter_map(|t| id_of(t, "tag search").ok())
            // Decimal ids: shorter is smaller.
            .min_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        let id = match existing {
            Some(id) => id,
            None => {
                let create = self.request("POST", "tags").json(&json!({"tag": {"tag": name, "tagType": "contact"}}));
                id_of(&self.call("tag create", create)?["tag"], "tag create")?
            }
        };
        self.host.cache_set(cache_key, &id, TAG_TTL_SECONDS);
        Ok(id)
    }

    /// `POST contactTags`, unclassified: the caller decides about a stale tag id.
    fn add_tag(&self, contact: &str, tag: &str) -> Result<Response, Failure> {
        let request =
            self.request("POST", "contactTags").json(&json!({"contactTag": {"contact": contact, "tag": tag}}));
        Ok(self.host.send(&request)?)
    }
}

/// A record's `id`: a string in this API (a number is accepted too).
fn id_of(record: &Value, step: &str) -> Result<String, Failure> {
    match &record["id"] {
        Value::String(id) if !id.is_empty() => Ok(id.clone()),
        Value::Number(id) => Ok(id.to_string()),
        _ => Err(Failure::retryable(format!("{step}: the answer has no id: {record}"))),
    }
}

switchboard_sdk::export_connector!(ActiveCampaign);

#[cfg(test)]
mod tests;
