//! The Standard Webhooks connector: signs and POSTs each event to a URL.
//!
//! Follows Standard Webhooks 1.0: `webhook-id` is the delivery id (stable
//! across retries, so receivers can deduplicate), `webhook-timestamp` is the
//! attempt time, `webhook-signature` is `v1,` + base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}` keyed by the `signing_secret`, computed by the
//! host so the secret never enters the sandbox.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::Value;
use switchboard_sdk::prelude::*;

/// The connector. Stateless: see [`Connector`].
#[derive(Debug, Default)]
pub struct Webhook;

const ACTION: &str = "send_webhook";
const SIGNING_SECRET: &str = "signing_secret";
const BEARER_TOKEN: &str = "bearer_token";
const RESERVED_HEADERS: [&str; 4] = ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"];

/// The connection's settings. Keys it does not know are ignored rather than
/// refused: connections saved with one have always delivered.
#[derive(Debug, Deserialize)]
struct Settings {
    /// The endpoint; any http(s) URL, query included (checked by `validate`).
    url: String,
    #[serde(default)]
    method: Method,
    /// Extra headers, sent before the connector's own.
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    #[default]
    Post,
    Put,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

/// The rule's fields. Others are ignored, as they always have been.
#[derive(Debug, Deserialize)]
struct Fields {
    /// Sent instead of the default envelope; `null` means the envelope.
    body: Option<Value>,
}

impl Connector for Webhook {
    fn describe() -> Manifest {
        Manifest::new("webhook", env!("CARGO_PKG_VERSION"), "Standard Webhooks: signed JSON POSTs to any HTTPS endpoint")
            .settings_schema(json!({
                "type": "object",
                "required": ["url"],
                "additionalProperties": false,
                "properties": {
                    "url": {"type": "string", "pattern": "^https?://", "description": "Endpoint that receives the webhooks"},
                    "method": {"enum": ["POST", "PUT", "PATCH"], "default": "POST"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"},
                                "description": "Extra headers sent with every request"}
                }
            }))
            .required_secret(SIGNING_SECRET, "Standard Webhooks signing secret, whsec_ followed by base64")
            .optional_secret(BEARER_TOKEN, "Sent as Authorization: Bearer when present")
            .action(
                ACTION,
                "POST the event (or `body`) to the endpoint, signed",
                json!({
                    "type": "object",
                    "properties": {"body": {"description": "Body to send instead of the default {type, timestamp, data} envelope"}}
                }),
            )
            .allowed_hosts(["*"])
    }

    fn validate(settings: &Value) -> Result<(), String> {
        let settings: Settings = settings_as(settings)?;
        let url = &settings.url;
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < "http://x".len() {
            return Err(format!("settings.url must be an absolute http(s) URL, got `{url}`"));
        }
        if let Some(name) = settings.headers.keys().find(|n| RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(n)))
        {
            return Err(format!("settings.headers.{name} is set by the connector and cannot be overridden"));
        }
        Ok(())
    }

    fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure> {
        delivery.expect_action(&[ACTION])?;
        let settings: Settings = delivery.settings_as()?;
        let fields: Fields = delivery.fields_as()?;
        let event = &delivery.event;
        let body = match fields.body {
            Some(body) => body.to_string(),
            None => envelope(event),
        };

        let id = &event.delivery_id;
        let timestamp = event.attempt_time.to_string();
        let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body.as_bytes()].concat();
        let mac = host
            .hmac_sha256(SIGNING_SECRET, KeyEncoding::StandardWebhooks, &signed)
            .map_err(|e| Failure::permanent(format!("cannot sign: {e}")))?;

        let mut request = Request::new(settings.method.as_str(), settings.url);
        for (name, value) in settings.headers {
            request = request.header(name, value);
        }
        if host.has_secret(BEARER_TOKEN) {
            request = request.bearer_secret(BEARER_TOKEN);
        }
        let request = request
            .header("webhook-id", id.as_str())
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", format!("v1,{}", BASE64.encode(mac)))
            .json_text(body);

        let response = host.send(&request)?;
        classify(&response, event.attempt_time)?;
        Ok(format!("HTTP {}", response.status))
    }
}

/// The default body: `{"type", "timestamp", "data"}` with the payload verbatim.
fn envelope(event: &Event) -> String {
    format!(
        r#"{{"type":{},"timestamp":{},"data":{}}}"#,
        Value::String(event.name.clone()),
        Value::String(event.created_at.clone()),
        event.payload
    )
}

/// Standard Webhooks semantics on top of the SDK's classifier: a redirect is
/// a failure (never followed) and 410 means the endpoint is gone for good.
fn classify(response: &Response, now: u64) -> Result<(), Failure> {
    match response.status {
        300..=399 => Err(Failure::permanent(format!(
            "HTTP {}: redirects are not followed (Location: {})",
            response.status,
            response.header("location").unwrap_or("none")
        ))),
        410 => Err(Failure::permanent("HTTP 410: the endpoint is gone; disable this connection or change its URL")),
        _ => response.classify(now),
    }
}

switchboard_sdk::export_connector!(Webhook);

#[cfg(test)]
mod tests;
