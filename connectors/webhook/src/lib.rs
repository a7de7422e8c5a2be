//! The Standard Webhooks connector: signs and POSTs each event to a URL.
//!
//! Follows Standard Webhooks 1.0: `webhook-id` is the delivery id (stable
//! across retries, so receivers can deduplicate), `webhook-timestamp` is the
//! attempt time, `webhook-signature` is `v1,` + base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}` keyed by the `signing_secret`, computed by the
//! host so the secret never enters the sandbox.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use switchboard_sdk::prelude::*;

/// The connector. Stateless: see [`Connector`].
#[derive(Debug, Default)]
pub struct Webhook;

const SIGNING_SECRET: &str = "signing_secret";
const BEARER_TOKEN: &str = "bearer_token";
const RESERVED_HEADERS: [&str; 4] = ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"];

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
            .secret(SIGNING_SECRET, "Standard Webhooks signing secret, whsec_ followed by base64", true)
            .secret(BEARER_TOKEN, "Sent as Authorization: Bearer when present", false)
            .action(
                "send_webhook",
                "POST the event (or `body`) to the endpoint, signed",
                json!({
                    "type": "object",
                    "properties": {"body": {"description": "Body to send instead of the default {type, timestamp, data} envelope"}}
                }),
            )
            .allowed_hosts(["*"])
    }

    fn validate(settings: &Value) -> Result<(), String> {
        let url = settings.get("url").and_then(Value::as_str).ok_or("settings.url is required and must be a string")?;
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < "http://x".len() {
            return Err(format!("settings.url must be an absolute http(s) URL, got `{url}`"));
        }
        match settings.get("method") {
            None => {}
            Some(Value::String(m)) if ["POST", "PUT", "PATCH"].contains(&m.as_str()) => {}
            Some(other) => return Err(format!("settings.method must be POST, PUT or PATCH, got {other}")),
        }
        if let Some(headers) = settings.get("headers") {
            let headers = headers.as_object().ok_or("settings.headers must be an object of strings")?;
            for (name, value) in headers {
                if !value.is_string() {
                    return Err(format!("settings.headers.{name} must be a string"));
                }
                if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                    return Err(format!("settings.headers.{name} is set by the connector and cannot be overridden"));
                }
            }
        }
        Ok(())
    }

    fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure> {
        if delivery.action != "send_webhook" {
            return Err(Failure::invalid_fields(format!(
                "unknown action `{}`; this connector has `send_webhook`",
                delivery.action
            )));
        }
        let url = delivery.setting_str("url")?;
        let method = delivery.setting_opt_str("method").unwrap_or("POST");
        let event = &delivery.event;
        let body = match delivery.fields.get("body") {
            Some(body) if !body.is_null() => body.to_string(),
            _ => envelope(event),
        };

        let id = &event.delivery_id;
        let timestamp = event.attempt_time.to_string();
        let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body.as_bytes()].concat();
        let mac = host
            .hmac_sha256(SIGNING_SECRET, KeyEncoding::StandardWebhooks, &signed)
            .map_err(|e| Failure::permanent(format!("cannot sign: {e}")))?;

        let mut request = Request::new(method, url);
        if let Some(Value::Object(extra)) = delivery.settings.get("headers") {
            for (name, value) in extra {
                request = request.header(name.as_str(), value.as_str().unwrap_or_default());
            }
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
