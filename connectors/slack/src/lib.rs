//! The Slack connector: posts one message per delivery (`send_message`).
//!
//! Two modes, chosen by the `mode` setting:
//!
//! - `bot`: `POST {base_url}/api/chat.postMessage` with the `bot_token` secret
//!   as a Bearer token and `{"channel", "text", "blocks"?}`. The Web API
//!   reports most failures as **HTTP 200** with `{"ok": false, "error": code}`,
//!   so the body, not the status, decides the outcome (see [`bot_answer`]).
//! - `webhook`: `POST` the same JSON without `channel` to the incoming-webhook
//!   URL, which is itself the `webhook_url` secret: the request URL is the
//!   placeholder `{{secret.webhook_url}}` and the host checks the substituted
//!   URL against the allowed hosts. Success is HTTP 200 with the text `ok`;
//!   failures are real statuses with a text code (see [`webhook_answer`]).
//!
//! Slack has no idempotency key, so a retry after Slack may already have
//! posted would post twice. Retries therefore happen only where Slack says no
//! message was posted: 429, 5xx (and the Web API's transient codes) and
//! connection failures. A timeout after the request went out is permanent.
//!
//! Both secrets are optional in the manifest because each mode needs only
//! one; the one the mode needs is checked with `secrets.has` before sending.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchboard_sdk::prelude::*;

/// The connector. Stateless: see [`Connector`].
#[derive(Debug, Default)]
pub struct Slack;

const ACTION: &str = "send_message";
const BOT_TOKEN: &str = "bot_token";
const WEBHOOK_URL: &str = "webhook_url";
const DEFAULT_BASE_URL: &str = "https://slack.com";
/// Slack asks for the charset; without it the Web API answers with a
/// `missing_charset` warning.
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// `ok: false` codes that mean the token is wrong, gone or lacks a scope: the
/// connection is paused until its secret is fixed. `token_expired` is the
/// same problem for rotating tokens.
const AUTH_CODES: [&str; 6] =
    ["invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "missing_scope"];
/// `ok: false` codes Slack documents as transient (`ratelimited` is handled on
/// its own, as a rate limit). Every other code is permanent.
const RETRYABLE_CODES: [&str; 4] = ["internal_error", "fatal_error", "service_unavailable", "request_timeout"];

/// The connection's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: Mode,
    /// Bot mode only (checked by `validate`).
    base_url: Option<BaseUrl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Bot,
    Webhook,
}

impl Mode {
    fn secret(self) -> &'static str {
        match self {
            Mode::Bot => BOT_TOKEN,
            Mode::Webhook => WEBHOOK_URL,
        }
    }
}

/// The rule's fields, which are also the JSON body both modes send, in
/// Slack's documented key order.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Message {
    /// Bot mode only (checked by [`message_body`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<NonEmpty>,
    text: NonEmpty,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocks: Option<Vec<Map<String, Value>>>,
}

/// What `chat.postMessage` answers, success or not.
#[derive(Debug, Deserialize)]
struct ApiAnswer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    /// Set with `missing_scope`: the scope the method needs.
    #[serde(default)]
    needed: Option<String>,
}

impl Connector for Slack {
    fn describe() -> Manifest {
        Manifest::new("slack", env!("CARGO_PKG_VERSION"), "Slack: post a message with a bot token or an incoming webhook")
            .settings_schema(json!({
                "type": "object",
                "required": ["mode"],
                "additionalProperties": false,
                "properties": {
                    "mode": {
                        "enum": ["bot", "webhook"],
                        "description": "`bot`: chat.postMessage with the bot_token secret; `webhook`: POST to the incoming-webhook URL held in the webhook_url secret"
                    },
                    "base_url": {
                        "type": "string",
                        "pattern": "^https?://",
                        "default": DEFAULT_BASE_URL,
                        "description": "Bot mode only: origin the Web API paths hang off (tests, proxies)"
                    }
                },
                "if": {"properties": {"mode": {"const": "webhook"}}},
                "then": {"not": {"required": ["base_url"]}}
            }))
            .optional_secret(BOT_TOKEN, "Bot mode: the bot user OAuth token (xoxb-…) with the chat:write scope")
            .optional_secret(WEBHOOK_URL, "Webhook mode: the incoming-webhook URL (https://hooks.slack.com/services/…)")
            .action(
                ACTION,
                "Post a message to a channel",
                json!({
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": false,
                    "properties": {
                        "channel": {"type": "string", "minLength": 1,
                                    "description": "Bot mode (required): channel id (C…) or #name. Not allowed in webhook mode: the webhook posts to its own channel"},
                        "text": {"type": "string", "minLength": 1,
                                 "description": "The message, in Slack mrkdwn; the notification fallback when blocks are given"},
                        "blocks": {"type": "array", "items": {"type": "object"},
                                   "description": "Block Kit blocks"}
                    }
                }),
            )
            .allowed_hosts(["slack.com", "hooks.slack.com"])
            // Slack allows about one message per second per channel.
            .rate_limit(1, 1)
    }

    fn validate(settings: &Value) -> Result<(), String> {
        let settings: Settings = settings_as(settings)?;
        if settings.mode == Mode::Webhook && settings.base_url.is_some() {
            return Err(
                "settings.base_url applies to bot mode only: in webhook mode the URL is the webhook_url secret".into(),
            );
        }
        Ok(())
    }

    fn deliver(host: &dyn Host, delivery: Delivery) -> Result<String, Failure> {
        delivery.expect_action(&[ACTION])?;
        let settings: Settings = delivery.settings_as()?;
        let mode = settings.mode;
        let body = message_body(delivery.fields_as()?, mode)?;
        if !host.has_secret(mode.secret()) {
            return Err(Failure::auth(format!(
                "the connection has no `{}` secret, which this mode needs",
                mode.secret()
            )));
        }
        let request = match mode {
            Mode::Bot => {
                let base = settings.base_url.as_ref().map_or(DEFAULT_BASE_URL, BaseUrl::as_str);
                Request::post(format!("{base}/api/chat.postMessage")).bearer_secret(BOT_TOKEN)
            }
            Mode::Webhook => Request::post(secret(WEBHOOK_URL)),
        };
        let request = request.header("Content-Type", CONTENT_TYPE).body(body);
        let response = host.send(&request).map_err(send_failure)?;
        let now = delivery.event.attempt_time;
        match mode {
            Mode::Bot => bot_answer(&response, now),
            Mode::Webhook => webhook_answer(&response, now),
        }
    }
}

/// The request body from the rule's fields, or `invalid-fields` naming the
/// faulty one.
///
/// Every `{{` in the JSON text is written `{\u007b` (the same string once
/// parsed): the host substitutes `{{secret.NAME}}` anywhere in a body, and the
/// text comes from event payloads, so an event must not be able to make us
/// post the bot token into a channel. `{{` only occurs inside JSON strings.
fn message_body(message: Message, mode: Mode) -> Result<Vec<u8>, Failure> {
    match (mode, &message.channel) {
        (Mode::Bot, None) => return Err(Failure::invalid_fields("field `channel` is required")),
        (Mode::Webhook, Some(_)) => {
            return Err(Failure::invalid_fields(
                "field `channel` cannot be used in webhook mode: an incoming webhook always posts to the channel it was created for",
            ));
        }
        _ => {}
    }
    let json = serde_json::to_string(&message)
        .map_err(|e| Failure::invalid_fields(format!("fields cannot be encoded as JSON: {e}")))?;
    Ok(json.replace("{{", "{\\u007b").into_bytes())
}

/// A timeout may come after Slack posted the message, so it is not retried;
/// everything else keeps the SDK's meaning (a connection failure is retried).
fn send_failure(error: SendError) -> Failure {
    match error {
        SendError::Interrupted(why) => Failure::permanent(format!(
            "the connection to Slack broke before its answer arrived ({why}); the message may already be posted and \
             Slack has no idempotency key, so it is not retried. Check the channel and replay the delivery if it is missing"
        )),
        SendError::Timeout => Failure::permanent(
            "Slack did not answer in time; the message may already be posted and Slack has no idempotency key, \
             so it is not retried (a retry could post it twice). Check the channel and replay the delivery if it is missing",
        ),
        other => other.into(),
    }
}

/// `chat.postMessage`: statuses first (429 with `Retry-After`, 401/403, 5xx,
/// other 4xx, by the SDK's classifier), then the `ok` flag of a 2xx body.
fn bot_answer(response: &Response, now: u64) -> Result<String, Failure> {
    response.classify(now)?;
    // Not the SDK's `json()`: that calls a bad body retryable, but a 2xx may
    // mean the message was posted, so retrying could post it twice.
    let answer: ApiAnswer = serde_json::from_slice(&response.body).map_err(|_| {
        Failure::permanent(format!(
            "HTTP {}: Slack's answer is not the Web API's JSON, so whether the message was posted is unknown; not retried",
            response.status
        ))
    })?;
    if answer.ok {
        return Ok(format!(
            "posted to {} at ts {}",
            answer.channel.as_deref().unwrap_or("?"),
            answer.ts.as_deref().unwrap_or("?")
        ));
    }
    let code = answer.error.as_deref().unwrap_or("unknown_error");
    let what = format!("Slack answered ok:false, error `{code}`");
    if code == "ratelimited" {
        Err(Failure::rate_limited(what, response.retry_after_ms(now)))
    } else if AUTH_CODES.contains(&code) {
        Err(Failure::auth(match &answer.needed {
            Some(scope) => format!("{what} (the token needs the `{scope}` scope)"),
            None => what,
        }))
    } else if RETRYABLE_CODES.contains(&code) {
        Err(Failure::retry_after(what, response.retry_after_ms(now)))
    } else {
        Err(Failure::permanent(what))
    }
}

/// An incoming webhook: 200 `ok` is success; the text body names the failure.
/// A URL Slack no longer knows (`no_service`, `no_team`, `team_disabled`,
/// `invalid_token`) is a bad credential, since the URL is the secret; a 403
/// `action_prohibited` is a channel restriction, not a credential problem.
fn webhook_answer(response: &Response, now: u64) -> Result<String, Failure> {
    let text = response.text();
    let code = text.trim();
    let what = || format!("incoming webhook answered HTTP {}: {code}", response.status);
    match (response.status, code) {
        (200, "ok") => Ok("posted through the incoming webhook".to_string()),
        (200..=299, _) => Err(Failure::permanent(format!(
            "{}; expected `ok`, so whether the message was posted is unknown; not retried",
            what()
        ))),
        (401, _) | (403, "invalid_token") | (404, "no_service" | "no_team" | "team_disabled") => {
            Err(Failure::auth(format!("{}: the webhook_url secret is not a working incoming webhook", what())))
        }
        (403, _) => Err(Failure::permanent(what())),
        // 400 invalid_payload, 404 channel_not_found, 410 channel_is_archived:
        // permanent; 429 (Retry-After) and 5xx such as 500 rollup_error: retried.
        _ => Err(response.classify(now).expect_err("2xx is handled above")),
    }
}

switchboard_sdk::export_connector!(Slack);

#[cfg(test)]
mod tests;
