//! A fake of the two Slack endpoints the connector calls, faithful to
//! destinations.md (read from Slack's docs), on 127.0.0.1:0.
//!
//! - Web API `POST /api/chat.postMessage`: checks `Authorization: Bearer`
//!   against the workspace's bot token and answers like Slack — **HTTP 200
//!   even for failures**, with `{"ok": false, "error": code}`: `not_authed`
//!   (no token), `invalid_auth` (wrong token), `invalid_post_type` (not JSON),
//!   `invalid_json`, `json_not_object`, `channel_not_found`, `is_archived`,
//!   `not_in_channel`, `no_text`, `msg_too_long` (over 40,000 characters),
//!   `invalid_blocks_format`, `invalid_blocks`. Success is
//!   `{"ok": true, "channel", "ts", "message"}`; a JSON content type without
//!   `charset=utf-8` adds Slack's `missing_charset` warning.
//! - Incoming webhooks `POST /services/T…/B…/secret`: success is HTTP 200 with
//!   the text `ok`; failures are real statuses with a text code: 404
//!   `no_service` (unknown URL), 400 `invalid_payload`, 400 `no_text` (and
//!   the same content codes as the Web API), 404
//!   `channel_not_found` (the hook's channel is gone), 410
//!   `channel_is_archived`. Any `channel` in the body is ignored, as app
//!   webhooks do: a hook posts to its own channel.
//!
//! State (channels, hooks, posted messages) is the [`Workspace`]; every call
//! is recorded by the shared [`FakeServer`].
//! The workspace starts with [`ONBOARDING`] (#onboarding, the bot is a member),
//! [`ARCHIVED`] (#old-launch, archived) and [`PRIVATE`] (#leadership, the bot
//! is not a member), and one incoming webhook into #onboarding.
//!
//! [`FakeSlack::set_rate_limit`] enforces Slack's "about N messages per second
//! per channel, short bursts allowed" as a per-channel token bucket holding one
//! second of messages; over it, HTTP 429 with `Retry-After` (whole seconds) and
//! `{"ok":false,"error":"ratelimited"}` (webhooks: the text `rate_limited`,
//! which the docs do not spell out). [`FakeSlack::fail_next`] makes the next N
//! calls answer one of Slack's real failure shapes instead ([`Failure`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Response};
use serde_json::{Value, json};

use super::server::{self, Answer, Call, Fake, FakeServer};

/// The bot token the fake workspace accepts.
pub const BOT_TOKEN: &str = "xoxb-1111111111-2222222222-fakeBotTokenForTests";
pub const TEAM: &str = "T0SWITCH";
/// #onboarding: the bot is a member.
pub const ONBOARDING: &str = "C0ONBOARD";
/// #old-launch: archived.
pub const ARCHIVED: &str = "C0ARCHIVE";
/// #leadership: private, the bot was never invited.
pub const PRIVATE: &str = "C0PRIVATE";
/// Longer text is refused with `msg_too_long`.
pub const MAX_TEXT_CHARS: usize = 40_000;
const MAX_BLOCKS: usize = 50;

/// How a message reached the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bot,
    Webhook,
}

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub channel: String,
    pub text: String,
    pub blocks: Option<Value>,
    pub ts: String,
    pub via: Via,
}

/// A failure shape the next calls answer with, whatever they ask.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// HTTP 429 with `Retry-After: secs`; Web API body
    /// `{"ok":false,"error":"ratelimited"}`, webhook text `rate_limited`.
    RateLimited { retry_after_secs: u64 },
    /// A 5xx from Slack's edge with an HTML page, in either endpoint.
    ServerError(u16),
    /// HTTP 401; Web API body `{"ok":false,"error":"invalid_auth"}`, webhook
    /// text `invalid_token`.
    Unauthorized,
    /// Web API only: HTTP **200** `{"ok":false,"error":code}` (e.g.
    /// `internal_error`, `missing_scope`, `fatal_error`). A webhook call gets
    /// HTTP 500 with the code as text.
    ApiError(&'static str),
    /// Webhook only: this status and text code (403 `action_prohibited`,
    /// 500 `rollup_error`, 400 `invalid_payload`, …). A Web API call gets the
    /// same status with `{"ok":false,"error":code}`.
    WebhookError(u16, &'static str),
    /// Process the call normally (the message **is** posted), then answer
    /// only after this delay: a timeout that happens after Slack posted.
    SlowAnswer(Duration),
}

#[derive(Debug, Clone)]
struct Channel {
    name: String,
    archived: bool,
    bot_is_member: bool,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The fake's state: one Slack workspace.
#[derive(Debug, Default)]
pub struct Workspace {
    channels: HashMap<String, Channel>,
    /// Webhook path → channel id.
    hooks: HashMap<String, String>,
    messages: Vec<Message>,
    failures: Vec<Failure>,
    rate_limit: Option<u32>,
    buckets: HashMap<String, Bucket>,
    throttled: usize,
    next_hook: u32,
}

/// The running fake. Dropping it stops the server.
pub type FakeSlack = FakeServer<Workspace>;

/// Start a fake Slack workspace.
pub async fn start() -> FakeSlack {
    let mut state = Workspace::default();
    for (id, name, archived, bot_is_member) in [
        (ONBOARDING, "onboarding", false, true),
        (ARCHIVED, "old-launch", true, true),
        (PRIVATE, "leadership", false, false),
    ] {
        state.channels.insert(id.into(), Channel { name: name.into(), archived, bot_is_member });
    }
    let fake = FakeServer::serve(state).await;
    fake.add_webhook(ONBOARDING);
    fake
}

impl FakeSlack {
    /// The incoming-webhook URL created at start, posting into #onboarding.
    pub fn webhook_url(&self) -> String {
        let state = self.lock();
        let path = state.hooks.iter().find(|(_, c)| *c == ONBOARDING).map(|(p, _)| p.clone()).unwrap();
        format!("{}{path}", self.base_url())
    }

    /// Create an incoming webhook into `channel` (which need not exist: a
    /// hook whose channel was deleted answers 404 `channel_not_found`).
    pub fn add_webhook(&self, channel: &str) -> String {
        let mut state = self.lock();
        state.next_hook += 1;
        let path = format!("/services/{TEAM}/B0HOOK{:04}/x7Kq{:020}", state.next_hook, state.next_hook * 7919);
        state.hooks.insert(path.clone(), channel.to_string());
        format!("{}{path}", self.base_url())
    }

    /// Every message posted, in order.
    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    /// How many calls the enforced rate limit answered with 429.
    pub fn throttled(&self) -> usize {
        self.lock().throttled
    }

    /// The next `n` calls answer `failure` instead of being processed.
    pub fn fail_next(&self, n: usize, failure: Failure) {
        let mut state = self.lock();
        state.failures.extend(std::iter::repeat_n(failure, n));
    }

    /// Enforce at most `per_second` messages per second per channel (with a
    /// burst of one second's worth), or lift the limit with `None`.
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        let mut state = self.lock();
        state.rate_limit = per_second;
        state.buckets.clear();
    }
}

/// Which endpoint a call reached, for shaping failures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Api,
    Webhook,
}

impl Fake for Workspace {
    fn answer(&mut self, call: &Call) -> Answer {
        let endpoint = match (call.method == Method::POST, call.path()) {
            (true, "/api/chat.postMessage") => Endpoint::Api,
            (true, path) if path.starts_with("/services/") => Endpoint::Webhook,
            _ => return reply(404, "text/plain", "Not Found".into()).into(),
        };
        let failure = if self.failures.is_empty() { None } else { Some(self.failures.remove(0)) };
        match failure {
            Some(Failure::SlowAnswer(delay)) => Answer::from(self.process(endpoint, call)).after(delay),
            Some(f) => injected(endpoint, &f).into(),
            None => self.process(endpoint, call).into(),
        }
    }
}

impl Workspace {
    fn process(&mut self, endpoint: Endpoint, call: &Call) -> Response<Body> {
        match endpoint {
            Endpoint::Api => self.post_message(call),
            Endpoint::Webhook => self.webhook(call),
        }
    }

    /// `chat.postMessage`, checked in the order Slack does: token, body,
    /// channel, content, rate.
    fn post_message(&mut self, call: &Call) -> Response<Body> {
        match call.header("authorization").map(|v| v.strip_prefix("Bearer ").unwrap_or("")) {
            None => return api_error("not_authed"),
            Some(token) if token != BOT_TOKEN => return api_error("invalid_auth"),
            Some(_) => {}
        }
        let content_type = call.header("content-type").unwrap_or_default().to_ascii_lowercase();
        if !content_type.starts_with("application/json") {
            return api_error("invalid_post_type");
        }
        let warning = !content_type.replace(' ', "").contains("charset=utf-8");
        let Ok(body) = serde_json::from_slice::<Value>(&call.body) else { return api_error("invalid_json") };
        let Some(args) = body.as_object() else { return api_error("json_not_object") };
        let asked = args.get("channel").and_then(Value::as_str).unwrap_or_default();
        let Some((id, channel)) = self.find_channel(asked) else { return api_error("channel_not_found") };
        if channel.archived {
            return api_error("is_archived");
        }
        if !channel.bot_is_member {
            return api_error("not_in_channel");
        }
        let (text, blocks) = match content(args) {
            Ok(c) => c,
            Err(code) => return api_error(code),
        };
        if let Err(retry_after) = self.take_token(&id) {
            return reply_with(
                429,
                &[("retry-after", &retry_after.to_string())],
                "application/json; charset=utf-8",
                json!({"ok": false, "error": "ratelimited"}).to_string(),
            );
        }
        let ts = self.post(&id, text.clone(), blocks.clone(), Via::Bot);
        let mut message = json!({"type": "message", "subtype": "bot_message", "text": text, "ts": ts,
                                 "user": "U0SWBOT", "bot_id": "B0SWBOT", "team": TEAM});
        if let Some(blocks) = blocks {
            message["blocks"] = blocks;
        }
        let mut answer = json!({"ok": true, "channel": id, "ts": ts, "message": message});
        if warning {
            answer["warning"] = json!("missing_charset");
            answer["response_metadata"] = json!({"warnings": ["missing_charset"]});
        }
        reply(200, "application/json; charset=utf-8", answer.to_string())
    }

    /// An incoming webhook: the URL is the credential and names the channel.
    fn webhook(&mut self, call: &Call) -> Response<Body> {
        let Some(id) = self.hooks.get(call.path()).cloned() else { return text_reply(404, "no_service") };
        let Ok(Value::Object(args)) = serde_json::from_slice::<Value>(&call.body) else {
            return text_reply(400, "invalid_payload");
        };
        let (text, blocks) = match content(&args) {
            Ok(c) => c,
            Err(code) => return text_reply(400, code),
        };
        match self.channels.get(&id) {
            None => return text_reply(404, "channel_not_found"),
            Some(c) if c.archived => return text_reply(410, "channel_is_archived"),
            Some(_) => {}
        }
        if let Err(retry_after) = self.take_token(&id) {
            return reply_with(429, &[("retry-after", &retry_after.to_string())], "text/plain", "rate_limited".into());
        }
        self.post(&id, text, blocks, Via::Webhook);
        text_reply(200, "ok")
    }

    /// By id (`C…`), or by name with or without `#`.
    fn find_channel(&self, asked: &str) -> Option<(String, Channel)> {
        let name = asked.strip_prefix('#').unwrap_or(asked);
        self.channels
            .iter()
            .find(|(id, c)| *id == asked || (!name.is_empty() && c.name == name))
            .map(|(id, c)| (id.clone(), c.clone()))
    }

    /// One token from the channel's bucket, or the whole seconds to wait.
    fn take_token(&mut self, channel: &str) -> Result<(), u64> {
        let Some(rate) = self.rate_limit.map(f64::from) else { return Ok(()) };
        let now = Instant::now();
        let bucket = self.buckets.entry(channel.to_string()).or_insert(Bucket { tokens: rate, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        self.throttled += 1;
        Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
    }

    fn post(&mut self, channel: &str, text: String, blocks: Option<Value>, via: Via) -> String {
        let ts = format!("1768471200.{:06}", self.messages.len() + 1);
        self.messages.push(Message { channel: channel.to_string(), text, blocks, ts: ts.clone(), via });
        ts
    }
}

/// The message content: text (required unless blocks are given, at most
/// 40,000 characters) and Block Kit blocks (an array of at most 50 objects
/// with a `type`).
fn content(args: &serde_json::Map<String, Value>) -> Result<(String, Option<Value>), &'static str> {
    let text = args.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
    let blocks = match args.get("blocks") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let valid = items.len() <= MAX_BLOCKS
                && items.iter().all(|b| b.get("type").and_then(Value::as_str).is_some_and(|t| !t.is_empty()));
            if !valid {
                return Err("invalid_blocks");
            }
            Some(Value::Array(items.clone()))
        }
        Some(_) => return Err("invalid_blocks_format"),
    };
    if text.is_empty() && blocks.is_none() {
        return Err("no_text");
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err("msg_too_long");
    }
    Ok((text, blocks))
}

fn injected(endpoint: Endpoint, failure: &Failure) -> Response<Body> {
    let api = |status: u16, code: &str| {
        reply(status, "application/json; charset=utf-8", json!({"ok": false, "error": code}).to_string())
    };
    match (failure, endpoint) {
        (Failure::RateLimited { retry_after_secs }, Endpoint::Api) => reply_with(
            429,
            &[("retry-after", &retry_after_secs.to_string())],
            "application/json; charset=utf-8",
            json!({"ok": false, "error": "ratelimited"}).to_string(),
        ),
        (Failure::RateLimited { retry_after_secs }, Endpoint::Webhook) => {
            reply_with(429, &[("retry-after", &retry_after_secs.to_string())], "text/plain", "rate_limited".into())
        }
        (Failure::ServerError(status), _) => reply(
            *status,
            "text/html",
            format!("<html><body><h1>{status}</h1>Slack is having trouble. Please try again.</body></html>"),
        ),
        (Failure::Unauthorized, Endpoint::Api) => api(401, "invalid_auth"),
        (Failure::Unauthorized, Endpoint::Webhook) => text_reply(401, "invalid_token"),
        (Failure::ApiError(code), Endpoint::Api) => api(200, code),
        (Failure::ApiError(code), Endpoint::Webhook) => text_reply(500, code),
        (Failure::WebhookError(status, code), Endpoint::Api) => api(*status, code),
        (Failure::WebhookError(status, code), Endpoint::Webhook) => text_reply(*status, code),
        (Failure::SlowAnswer(_), _) => unreachable!("a slow answer is processed normally"),
    }
}

fn api_error(code: &str) -> Response<Body> {
    reply(200, "application/json; charset=utf-8", json!({"ok": false, "error": code}).to_string())
}

/// Incoming webhooks answer with a bare text code.
fn text_reply(status: u16, code: &str) -> Response<Body> {
    reply(status, "text/html", code.to_string())
}

fn reply(status: u16, content_type: &str, body: String) -> Response<Body> {
    reply_with(status, &[], content_type, body)
}

fn reply_with(status: u16, headers: &[(&str, &str)], content_type: &str, body: String) -> Response<Body> {
    let mut all = vec![("content-type", content_type)];
    all.extend_from_slice(headers);
    server::reply(status, &all, body)
}
