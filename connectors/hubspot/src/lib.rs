//! The HubSpot connector: `upsert_contact` creates or updates a CRM contact
//! keyed by email.
//!
//! HubSpot has no single-contact upsert, so one delivery is one to three
//! calls, all under the dated path
//! `{base_url}/crm/objects/{api_version}/contacts`:
//!
//! 1. `PATCH …/contacts/{email}?idProperty=email` with the properties. A
//!    known contact, the common case in an onboarding sequence, costs one call.
//! 2. On 404, `POST …/contacts` with the email added to the properties.
//! 3. On 409 from that create, another writer created the contact between our
//!    two calls: HubSpot names it only in prose (`Contact already exists.
//!    Existing ID: 1948209`), so the id is read from the message and the
//!    contact is patched by id. A conflict that remains after that is final.
//!
//! Every call is naturally repeatable (HubSpot takes no idempotency key), so a
//! retried delivery simply runs the sequence again from the top.
//!
//! Property values go out as strings, the way HubSpot stores them: numbers and
//! booleans in their JSON spelling, `null` as `""` (which clears a property),
//! and a list as its items joined with `;` (HubSpot's multi-select format).
//!
//! Failures: HubSpot's 429 has no `Retry-After`. For the `DAILY` policy the
//! wait is until the next UTC midnight after the attempt time (connectors have
//! no clock); otherwise it is `X-HubSpot-RateLimit-Interval-Milliseconds`, the
//! rolling window (ten seconds) that must pass. 423 waits at least 2 s, 477
//! honours its `Retry-After`, 5xx are retried; 401 and 403 (a missing scope)
//! pause the connection; a 400 names the properties HubSpot refused.

use serde::Deserialize;
use serde_json::{Map, Value};
use switchboard_sdk::prelude::*;

/// The connector. Stateless: see [`Connector`].
#[derive(Debug, Default)]
pub struct HubSpot;

const ACTION: &str = "upsert_contact";
const ACCESS_TOKEN: &str = "access_token";
const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
const DEFAULT_API_VERSION: &str = "2026-09";
/// HubSpot's burst window, for a 429 that does not state its interval.
const BURST_WINDOW_MS: u64 = 10_000;
/// HubSpot asks clients to wait at least this long after a 423 Locked.
const LOCKED_MIN_WAIT_MS: u64 = 2_000;

/// The connection's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    api_version: Option<Checked<DatedVersion>>,
    base_url: Option<BaseUrl>,
}

impl Settings {
    /// `{base_url}/crm/objects/{api_version}/contacts`.
    fn contacts_url(&self) -> String {
        let base = self.base_url.as_ref().map_or(DEFAULT_BASE_URL, BaseUrl::as_str);
        let version = self.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        format!("{base}/crm/objects/{version}/contacts")
    }
}

/// HubSpot's dated API versions, `YYYY-MM`.
struct DatedVersion;

impl Check for DatedVersion {
    const EXPECTED: &'static str = "a dated HubSpot API version such as `2026-09`";

    fn check(text: &str) -> Option<String> {
        let b = text.as_bytes();
        let dated = b.len() == 7
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && matches!((b[5], b[6]), (b'0', b'1'..=b'9') | (b'1', b'0'..=b'2'));
        dated.then(|| text.to_string())
    }
}

/// The rule's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    email: NonEmpty,
    /// Checked one by one: see [`contact_fields`].
    properties: Map<String, Value>,
}

impl Connector for HubSpot {
    fn describe() -> Manifest {
        Manifest::new("hubspot", env!("CARGO_PKG_VERSION"), "HubSpot CRM: create or update a contact by email")
            .settings_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "api_version": {
                        "type": "string",
                        "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$",
                        "default": DEFAULT_API_VERSION,
                        "description": "HubSpot's dated API version, the {version} in /crm/objects/{version}/contacts"
                    },
                    "base_url": {
                        "type": "string",
                        "pattern": "^https?://[^?#\\s]+$",
                        "default": DEFAULT_BASE_URL,
                        "description": "Origin the API paths hang off; change it only for a proxy or a test fake"
                    }
                }
            }))
            .required_secret(
                ACCESS_TOKEN,
                "HubSpot private-app, OAuth or service-key token with the crm.objects.contacts.write scope",
            )
            .action(
                ACTION,
                "Update the contact with this email, creating it if HubSpot has none",
                json!({
                    "type": "object",
                    "required": ["email", "properties"],
                    "additionalProperties": false,
                    "properties": {
                        "email": {"type": "string", "format": "email", "description": "Identifies the contact"},
                        "properties": {
                            "type": "object",
                            "minProperties": 1,
                            "description": "Contact properties by HubSpot internal name. Values are sent as strings: numbers and booleans as written, null as \"\" (clears the property), lists joined with \";\" (multi-select)",
                            "additionalProperties": {
                                "type": ["string", "number", "boolean", "null", "array"],
                                "items": {"type": ["string", "number", "boolean"]}
                            }
                        }
                    }
                }),
            )
            .allowed_hosts(["api.hubapi.com"])
            // HubSpot allows 100 requests per 10 s per app on its lowest tier. A
            // delivery to a new contact makes two calls and the host's bucket
            // lets one second's worth through at once, so 40 per 10 s
            // (4 + 40 deliveries, 88 calls in any 10 s) stays under it.
            .rate_limit(40, 10)
    }

    fn validate(settings: &Value) -> Result<(), String> {
        settings_as::<Settings>(settings).map(drop)
    }

    fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure> {
        delivery.expect_action(&[ACTION])?;
        let settings: Settings = delivery.settings_as()?;
        let (email, properties) = contact_fields(delivery.fields_as()?)?;
        let contacts = settings.contacts_url();
        let now = delivery.event.attempt_time;
        let update = json!({ "properties": properties });

        // 1. Update by email.
        let by_email = format!("{contacts}/{}?idProperty=email", percent_encode(&email));
        let patched = send(host, Request::patch(by_email), &update)?;
        if patched.status != 404 {
            check(&patched, now)?;
            return Ok(format!("updated contact {}", record_id(&patched)));
        }

        // 2. No such contact: create it.
        let mut with_email = properties;
        with_email.insert("email".into(), Value::String(email));
        let created = send(host, Request::post(contacts.clone()), &json!({ "properties": with_email }))?;
        match created.status {
            409 => {}
            404 => {
                return Err(Failure::permanent(format!(
                    "HubSpot answered 404 to creating a contact at {contacts}: check settings.api_version and settings.base_url ({})",
                    hubspot_error(&created)
                )));
            }
            _ => {
                check(&created, now)?;
                return Ok(format!("created contact {}", record_id(&created)));
            }
        }

        // 3. Someone created it in between: update the contact HubSpot names.
        let id = existing_id(&created).ok_or_else(|| {
            Failure::permanent(format!(
                "the create conflicted but names no existing contact: {}",
                hubspot_error(&created)
            ))
        })?;
        let repatched = send(host, Request::patch(format!("{contacts}/{id}")), &update)?;
        check(&repatched, now)?;
        Ok(format!("updated contact {id} (created concurrently by another writer)"))
    }
}

/// The contact's email and its properties as HubSpot strings, or an
/// `invalid-fields` failure naming the field.
fn contact_fields(fields: Fields) -> Result<(String, Map<String, Value>), Failure> {
    let email = fields.email.trim();
    if !is_email(email) {
        return Err(Failure::invalid_fields(format!("field `email` must be an email address, got `{email}`")));
    }
    let mut properties = Map::new();
    for (name, value) in fields.properties {
        let text = hubspot_string(&value).ok_or_else(|| {
            Failure::invalid_fields(format!(
                "field `properties.{name}` must be a string, number, boolean, null or a list of those"
            ))
        })?;
        if name == "email" {
            // The contact is identified by `email`; a different value here
            // would silently change which contact the rule writes to.
            if !text.eq_ignore_ascii_case(email) {
                return Err(Failure::invalid_fields(format!(
                    "field `properties.email` (`{text}`) differs from field `email` (`{email}`); set the address in `email` only"
                )));
            }
            continue;
        }
        properties.insert(name, Value::String(text));
    }
    if properties.is_empty() {
        return Err(Failure::invalid_fields(
            "field `properties` must set at least one contact property besides email (HubSpot refuses an empty update)",
        ));
    }
    Ok((email.to_string(), properties))
}

/// A property value the way HubSpot stores it, or `None` for nested values.
fn hubspot_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| if item.is_array() || item.is_null() { None } else { hubspot_string(item) })
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join(";")),
        Value::Object(_) => None,
    }
}

fn send(host: &dyn Host, request: Request, body: &Value) -> Result<Response, Failure> {
    Ok(host.send(&request.bearer_secret(ACCESS_TOKEN).json(body))?)
}

/// HubSpot's answer as success or failure, in HubSpot's own words where it has a JSON envelope; the SDK's classifier covers the
/// statuses HubSpot treats as everyone does (5xx retryable honouring
/// `Retry-After`, other 4xx permanent).
fn check(response: &Response, now: u64) -> Result<(), Failure> {
    let what = || hubspot_error(response);
    match response.status {
        429 => Err(Failure::rate_limited(what(), rate_limit_delay(response, now))),
        423 => {
            Err(Failure::retry_after(what(), Some(response.retry_after_ms(now).unwrap_or(0).max(LOCKED_MIN_WAIT_MS))))
        }
        477 => Err(Failure::retry_after(what(), response.retry_after_ms(now))),
        400 => Err(Failure::permanent(refused_properties(response).unwrap_or_else(what))),
        401 => Err(Failure::auth(what())),
        409 => Err(Failure::permanent(what())),
        403 => Err(Failure::auth(format!("{} (the token needs the crm.objects.contacts.write scope)", what()))),
        _ => response.classify(now),
    }
}

/// How long a 429 asks us to wait. HubSpot sends no `Retry-After`: the
/// `DAILY` policy resets at midnight, the rolling window after its interval.
fn rate_limit_delay(response: &Response, now: u64) -> Option<u64> {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let daily = match body["policyName"].as_str() {
        Some(policy) => policy == "DAILY",
        None => response.header("x-hubspot-ratelimit-daily-remaining").is_some_and(|r| r.trim() == "0"),
    };
    if daily {
        const DAY: u64 = 86_400;
        return Some((DAY - now % DAY) * 1000);
    }
    let interval = response.header("x-hubspot-ratelimit-interval-milliseconds").and_then(|v| v.trim().parse().ok());
    interval.or_else(|| response.retry_after_ms(now)).or(Some(BURST_WINDOW_MS))
}

/// A 400's per-property verdicts, which HubSpot embeds as JSON text in its
/// message: `Property values were not valid: [{"isValid":false,
/// "error":"PROPERTY_DOESNT_EXIST","name":"favorite_color",…}]`.
fn refused_properties(response: &Response) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    let message = body["message"].as_str()?;
    let verdicts: Vec<Value> = serde_json::from_str(&message[message.find('[')?..]).ok()?;
    let reasons: Vec<String> = verdicts
        .iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap_or("?");
            match v["error"].as_str().unwrap_or("INVALID") {
                "PROPERTY_DOESNT_EXIST" => format!(
                    "property `{name}` does not exist in HubSpot (PROPERTY_DOESNT_EXIST): create it there or remove it from the rule's properties"
                ),
                code => format!("property `{name}`: {} ({code})", v["message"].as_str().unwrap_or("invalid value")),
            }
        })
        .collect();
    (!reasons.is_empty()).then(|| format!("HubSpot refused the contact: {}", reasons.join("; ")))
}

/// `HTTP 409 CONFLICT: Contact already exists. Existing ID: 1948209`, or the
/// status and the start of the body when it is not HubSpot's JSON envelope.
fn hubspot_error(response: &Response) -> String {
    let status = response.status;
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let kind = body["category"].as_str().or(body["errorType"].as_str());
    match (kind, body["message"].as_str()) {
        (Some(kind), Some(message)) => format!("HTTP {status} {kind}: {message}"),
        (None, Some(message)) => format!("HTTP {status}: {message}"),
        _ => format!("HTTP {status}: {}", response.snippet()),
    }
}

/// The id in HubSpot's conflict message `Contact already exists. Existing ID: 1948209`.
fn existing_id(response: &Response) -> Option<String> {
    const MARK: &str = "Existing ID:";
    let text = response.text();
    let rest = &text[text.find(MARK)? + MARK.len()..];
    let id: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    (!id.is_empty()).then_some(id)
}

/// The contact id of a success body, for the attempt log.
fn record_id(response: &Response) -> String {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    body["id"].as_str().unwrap_or("(no id in the answer)").to_string()
}

fn is_email(text: &str) -> bool {
    matches!(text.split_once('@'), Some((user, domain))
        if !user.is_empty() && !domain.is_empty() && !domain.contains('@') && !text.contains(char::is_whitespace))
}

switchboard_sdk::export_connector!(HubSpot);

#[cfg(test)]
mod tests;
