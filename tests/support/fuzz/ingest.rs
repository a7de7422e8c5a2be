//! Fuzzing the ingest API through the real server on loopback: Meshes-shaped events with hostile
//! payloads, events broken one field at a time, batches, and bytes that are not JSON at all, sent
//! with good and bad keys and content types.
//!
//! Each answer is checked against the status the API defines for that input (auth, then size,
//! then content type, then JSON, then the event's shape), so a wrong answer fails as surely as a
//! 5xx, a dropped connection or a hang. The workspace has rules, so every accepted event is also
//! matched against costly filters, and events named [`DELIVERED`] are delivered with templates
//! that walk the whole payload; [`IngestTarget::settle`] then checks those deliveries finish.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value, json};

use switchboard::api::limits::{MAX_DEPTH, MAX_EVENT_FIELD_BYTES};

use super::{Verdict, json};
use crate::host::{ADMIN, TestHost, Ws};
use crate::receiver::Receiver;

/// Events of this name match a rule that delivers them, rendering templates over the payload.
pub const DELIVERED: &str = "fuzz.deliver";
/// Events of this name are matched against costly filters that never match.
pub const FILTERED: &str = "page.completed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Single,
    Bulk,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Publishable,
    Secret,
    Missing,
    /// The workspace's publishable key with its last character changed: well-formed, unknown.
    Unknown,
    /// Header bytes that are not a key at all, non-ASCII included.
    Garbage(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Json,
    JsonCharset,
    JsonUppercase,
    Missing,
    TextPlain,
}

/// A body as generated: events keep whether they are valid, so the expected status is known.
#[derive(Debug, Clone)]
pub enum Body {
    Event(Value, bool),
    Batch(Vec<(Value, bool)>),
    Raw(Vec<u8>),
}

#[derive(Clone)]
pub struct IngestCase {
    pub route: Route,
    pub auth: Auth,
    pub content_type: ContentType,
    pub body: Body,
}

impl IngestCase {
    pub fn bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::Event(event, _) => serde_json::to_vec(event).expect("serialize"),
            Body::Batch(items) => {
                serde_json::to_vec(&items.iter().map(|(e, _)| e).collect::<Vec<_>>()).expect("serialize")
            }
            Body::Raw(bytes) => bytes.clone(),
        }
    }
}

impl fmt::Debug for IngestCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = json::excerpt(&String::from_utf8_lossy(&self.bytes()), 4_000);
        write!(f, "{:?} {:?} {:?} body: {body}", self.route, self.auth, self.content_type)
    }
}

/// An event the API must accept: a name of at most [`MAX_EVENT_FIELD_BYTES`], a non-empty payload object, and
/// optional fields of the right types.
pub fn valid_event(payload: BoxedStrategy<Map<String, Value>>) -> BoxedStrategy<Value> {
    let event = prop_oneof![
        4 => Just(FILTERED.to_owned()),
        1 => Just(DELIVERED.to_owned()),
        5 => json::name(MAX_EVENT_FIELD_BYTES),
    ];
    let optional = || proptest::option::of(json::name(MAX_EVENT_FIELD_BYTES));
    let id = proptest::option::of("[a-z0-9]{1,3}");
    (event, payload, optional(), optional(), any::<bool>(), id)
        .prop_map(|(event, payload, resource, resource_id, typed, id)| {
            let mut e = Map::from_iter([("event".to_owned(), json!(event)), ("payload".to_owned(), json!(payload))]);
            let optional = [("resource", resource), ("resource_id", resource_id), ("id", id)];
            e.extend(optional.into_iter().filter_map(|(k, v)| Some((k.to_owned(), json!(v?)))));
            if typed {
                e.insert("type".into(), json!("event"));
            }
            Value::Object(e)
        })
        .boxed()
}

/// A valid event with one field made invalid: removed, blank, too long or of a wrong type.
pub fn broken_event(payload: BoxedStrategy<Map<String, Value>>) -> BoxedStrategy<Value> {
    let wrong = || {
        prop_oneof![
            json::number(),
            any::<bool>().prop_map(Value::Bool),
            Just(json!([])),
            Just(json!({"a": 1})),
            Just(json!("")),
            Just(json!("  \t")),
            Just(json!("x".repeat(MAX_EVENT_FIELD_BYTES + 1))),
        ]
    };
    let field = select(&["event", "payload", "resource", "resource_id", "type", "id"][..]);
    (valid_event(payload), field, wrong(), any::<bool>())
        .prop_map(|(mut event, field, wrong, remove)| {
            let map = event.as_object_mut().expect("an object");
            let replacement = match (field, &wrong) {
                ("event" | "payload", _) if remove => None,
                // `payload` must be an object; `{}` is refused too (422).
                ("payload", Value::Object(_)) => Some(json!({})),
                ("type", Value::String(s)) if s.len() <= MAX_EVENT_FIELD_BYTES => Some(json!("Event")),
                _ => Some(wrong),
            };
            match replacement {
                Some(value) => map.insert(field.into(), value),
                None => map.remove(field),
            };
            event
        })
        .boxed()
}

/// JSON the Rust parser refuses, or accepts in a way worth checking (duplicate keys, `null`).
const REFUSED_JSON: &[&[u8]] = &[
    br#"{"event":"a\ud800","payload":{"a":1}}"#,
    b"\xef\xbb\xbf{\"event\":\"a\",\"payload\":{\"a\":1}}",
    br#"{"event":"a","payload":{"a":NaN}}"#,
    br#"{"event":"a","payload":{"a":1e400}}"#,
    br#"{"event":"a","payload":{"a":1,},}"#,
    br#"{"event":"a","event":"b","payload":{"a":1}}"#,
    b"",
    b"null",
    b"[]",
];

/// Bytes that are not one valid event: garbage, truncated or corrupted JSON, JSON the Rust
/// parser refuses (lone surrogates, BOM, NaN, huge exponents, nesting past its limit).
pub fn raw() -> BoxedStrategy<Vec<u8>> {
    let event = || valid_event(json::payload()).prop_map(|e| serde_json::to_vec(&e).expect("serialize"));
    prop_oneof![
        2 => vec(any::<u8>(), 0..64),
        2 => (event(), any::<prop::sample::Index>()).prop_map(|(b, at)| b[..at.index(b.len())].to_vec()),
        2 => (event(), any::<prop::sample::Index>(), 0x80u8..=0xff).prop_map(|(mut b, at, byte)| {
            let at = at.index(b.len());
            b[at] = byte;
            b
        }),
        1 => select(REFUSED_JSON).prop_map(<[u8]>::to_vec),
        1 => (1usize..200_000, any::<bool>()).prop_map(|(depth, closed)| {
            let mut b = "[".repeat(depth).into_bytes();
            if closed {
                b.extend("]".repeat(depth).bytes());
            }
            b
        }),
    ]
    .boxed()
}

pub fn case() -> BoxedStrategy<IngestCase> {
    let body = prop_oneof![
        10 => valid_event(json::payload()).prop_map(|e| Body::Event(e, true)),
        4 => broken_event(json::payload()).prop_map(|e| Body::Event(e, false)),
        3 => vec(prop_oneof![
            4 => valid_event(small_payload()).prop_map(|e| (e, true)),
            1 => broken_event(small_payload()).prop_map(|e| (e, false)),
        ], 0..110)
        .prop_map(Body::Batch),
        4 => raw().prop_map(Body::Raw),
    ];
    let auth = prop_oneof![
        24 => Just(Auth::Publishable),
        6 => Just(Auth::Secret),
        1 => Just(Auth::Missing),
        1 => Just(Auth::Unknown),
        1 => vec(any::<u8>().prop_filter("a header byte", |b| *b >= 0x20 && *b != 0x7f), 0..40).prop_map(Auth::Garbage),
    ];
    let content_type = prop_oneof![
        16 => Just(ContentType::Json),
        1 => Just(ContentType::JsonCharset),
        1 => Just(ContentType::JsonUppercase),
        1 => Just(ContentType::Missing),
        1 => Just(ContentType::TextPlain),
    ];
    // Batches mostly go to the bulk route, other bodies mostly to the single one; the rest cross.
    (body, auth, content_type, 0u8..10)
        .prop_map(|(body, auth, content_type, cross)| {
            let batch = matches!(body, Body::Batch(_));
            let route = if batch == (cross > 0) { Route::Bulk } else { Route::Single };
            IngestCase { route, auth, content_type, body }
        })
        .boxed()
}

/// Smaller payloads for batches, so a batch of 100 stays near the body limit, not far past it.
fn small_payload() -> BoxedStrategy<Map<String, Value>> {
    (json::key(), json::tree()).prop_map(|(k, v)| Map::from_iter([(k, v)])).boxed()
}

/// The statuses the API defines for `case`, in the order the handler checks.
pub fn expected(case: &IngestCase, bytes: &[u8], body_limit: usize) -> &'static [u16] {
    if !matches!(case.auth, Auth::Publishable | Auth::Secret) {
        return &[401];
    }
    if bytes.len() > body_limit {
        return &[413];
    }
    if matches!(case.content_type, ContentType::Missing | ContentType::TextPlain) {
        return &[415];
    }
    // What the server's parser refuses (nesting past 128, lone surrogates) is a 400 whatever
    // the generator meant.
    if serde_json::from_slice::<Value>(bytes).is_err() {
        return &[400];
    }
    match (&case.body, case.route) {
        (Body::Event(event, valid), Route::Single) if *valid && acceptable(event) => &[200, 201],
        (Body::Event(_, true), Route::Single) => &[422],
        (Body::Event(_, false), Route::Single) => &[400, 422],
        (Body::Batch(items), Route::Bulk) if (1..=100).contains(&items.len()) => {
            match items.iter().filter(|(event, valid)| *valid && acceptable(event)).count() {
                n if n == items.len() => &[201],
                0 => &[400],
                _ => &[207],
            }
        }
        (Body::Raw(_), _) => &[200, 201, 207, 400, 422],
        _ => &[400],
    }
}

/// Status codes as outcome names.
const STATUSES: &[(u16, &str)] = &[
    (200, "200 duplicate"),
    (201, "201 created"),
    (207, "207 partly stored"),
    (400, "400 bad request"),
    (401, "401 unauthorized"),
    (413, "413 too large"),
    (415, "415 not JSON"),
    (422, "422 unprocessable"),
];

/// Whether a generated valid event is also within the payload nesting bound (a 422 past it).
fn acceptable(event: &Value) -> bool {
    json::depth(&event["payload"]) <= MAX_DEPTH
}

/// A running service with one workspace whose rules filter and deliver fuzzed events.
pub struct IngestTarget {
    pub rt: tokio::runtime::Runtime,
    pub host: TestHost,
    pub ws: Ws,
    pub hang: Duration,
    client: reqwest::Client,
    _receiver: Receiver,
    _connectors: tempfile::TempDir,
    /// Accepted events of the delivering rule, whose deliveries must finish.
    delivered: Mutex<Vec<String>>,
}

impl IngestTarget {
    pub fn start(hang: Duration) -> IngestTarget {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        // Only the webhook connector, so starting does not compile every guest the suite has.
        let connectors = tempfile::tempdir().expect("temp dir");
        let webhook = crate::build::component_path("switchboard-connector-webhook");
        std::fs::copy(&webhook, connectors.path().join(webhook.file_name().expect("a file"))).expect("copy");
        let (host, ws, receiver) = rt.block_on(async {
            let host = TestHost::start_with(|c| c.connectors_dir = Some(connectors.path().to_path_buf())).await;
            let receiver = Receiver::answering(204, "").await;
            let ws = host.workspace("fuzz").await;
            let connection = host.webhook_connection(&ws, &receiver.url("/fuzz")).await;
            let rule = |event: &str, filter: Value, fields: Value| {
                json!({"event": event, "connection": connection, "action": "send_webhook", "filter": filter,
                       "fields": fields})
            };
            host.rule(&ws, rule(FILTERED, costly_filter(), json!({}))).await;
            host.rule(&ws, rule(DELIVERED, json!({"payload": {"$exist": true}}), payload_walk())).await;
            (host, ws, receiver)
        });
        // A connection per case, so each case is answered on its own: after an over-limit body
        // the server closes the connection without saying so (a known bug, see
        // `fuzz::an_event_after_an_oversized_one_on_the_same_connection_is_answered`), which
        // would fail the next case on a pooled connection, whatever that case was.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
        let delivered = Mutex::new(Vec::new());
        IngestTarget { rt, host, ws, hang, client, _receiver: receiver, _connectors: connectors, delivered }
    }

    /// Sends `case`; `Err` says what was wrong with the answer.
    pub fn check(&self, case: &IngestCase) -> Verdict {
        let bytes = case.bytes();
        let expected = expected(case, &bytes, self.host.config.ingest.max_body_bytes);
        let answer = self.rt.block_on(async { tokio::time::timeout(self.hang, self.send(case, bytes)).await });
        let (status, body) = match answer {
            Err(_) => return Err(format!("no answer within {:?}: a hang", self.hang)),
            // A body far over the limit is refused from its Content-Length before it is read,
            // and the connection closed (`Connection: close`); a client still sending may then
            // see a reset instead of the 413. Counted, and the service must still be up.
            Ok(Err(_)) if expected == [413] && self.healthy().is_ok() => {
                return Ok("413 lost to the early close");
            }
            Ok(Err(e)) => return Err(format!("no answer: {e:#} ({})", self.liveness())),
            Ok(Ok(answer)) => answer,
        };
        let text = || json::excerpt(&String::from_utf8_lossy(&body), 500);
        if status >= 500 || !expected.contains(&status) {
            return Err(format!("answered {status}, expected one of {expected:?}: {}", text()));
        }
        let body: Value =
            serde_json::from_slice(&body).map_err(|e| format!("answered {status} with non-JSON ({e}): {}", text()))?;
        let records = match body.get("event") {
            Some(event) => vec![event.clone()],
            None => body.get("records").and_then(Value::as_array).cloned().unwrap_or_default(),
        };
        let ids = records.iter().filter(|r| r["event"] == DELIVERED).filter_map(|r| r["id"].as_str());
        self.delivered.lock().unwrap_or_else(|p| p.into_inner()).extend(ids.map(str::to_owned));
        Ok(STATUSES.iter().find(|s| s.0 == status).map_or("other", |s| s.1))
    }

    async fn send(&self, case: &IngestCase, bytes: Vec<u8>) -> anyhow::Result<(u16, Vec<u8>)> {
        let path = match case.route {
            Route::Single => "/api/v1/events",
            Route::Bulk => "/api/v1/events/bulk",
        };
        let mut request = self.client.post(format!("{}{path}", self.host.url)).body(bytes);
        request = match &case.auth {
            Auth::Publishable => request.header("x-meshes-publishable-key", &self.ws.publishable),
            Auth::Secret => request.bearer_auth(&self.ws.secret),
            Auth::Missing => request,
            Auth::Unknown => {
                let mut key = self.ws.publishable.clone();
                let last = if key.pop() == Some('x') { 'y' } else { 'x' };
                request.header("x-meshes-publishable-key", format!("{key}{last}"))
            }
            Auth::Garbage(bytes) => {
                let value = HeaderValue::from_bytes(bytes)?;
                request.header("x-meshes-publishable-key", value.clone()).header(AUTHORIZATION, value)
            }
        };
        let content_type = match case.content_type {
            ContentType::Json => Some("application/json"),
            ContentType::JsonCharset => Some("application/json; charset=utf-8"),
            ContentType::JsonUppercase => Some("Application/JSON"),
            ContentType::Missing => None,
            ContentType::TextPlain => Some("text/plain"),
        };
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?.to_vec()))
    }

    /// Whether the service still answers its health check, for failure messages.
    fn liveness(&self) -> String {
        match self.healthy() {
            Ok(()) => "the service still answers /healthz".into(),
            Err(e) => e,
        }
    }

    /// `/healthz` answers 200 within the hang bound.
    pub fn healthy(&self) -> Result<(), String> {
        let url = format!("{}/healthz", self.host.url);
        let answer = self.rt.block_on(async { tokio::time::timeout(self.hang, self.client.get(url).send()).await });
        match answer {
            Ok(Ok(r)) if r.status() == 200 => Ok(()),
            Ok(Ok(r)) => Err(format!("/healthz answered {}", r.status())),
            Ok(Err(e)) => Err(format!("/healthz did not answer: {e}")),
            Err(_) => Err(format!("/healthz did not answer within {:?}", self.hang)),
        }
    }

    /// Waits (at most `within`) until every event accepted for the delivering rule has settled,
    /// so rendering hostile payloads at delivery time left no delivery stuck. Returns how many.
    pub fn settle(&self, within: Duration) -> Result<usize, String> {
        let ids = self.delivered.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let deadline = Instant::now() + within;
        self.rt.block_on(async {
            for id in &ids {
                let path = format!("/api/v1/workspaces/{}/events/{id}", self.ws.id);
                loop {
                    let (status, event) = self.host.raw(Method::GET, &path, Some(ADMIN), None).await;
                    if status == 200 && event["status"] != "processing" {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(format!("event {id} did not settle within {within:?}: {status} {event}"));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Ok(ids.len())
        })
    }

    pub fn stop(mut self) {
        self.rt.block_on(self.host.stop());
    }
}

/// Costly for every event and never matching: large `$in` lists and string tests over the
/// payload first, then a resource no event has.
fn costly_filter() -> Value {
    let words: Vec<String> = (0..1000).map(|i| format!("word-{i}")).collect();
    let numbers: Vec<i64> = (0..1000).collect();
    json!({"$and": [
        {"$not": {"payload": {"$or": [{"a": {"$in": words}}, {"items": {"$in": numbers}},
                                      {"kind": {"$startsWith": "zz"}}, {"n": {"$gt": 1e300}}]}}},
        {"$or": [{"payload": {"items": [{"$exist": true}]}}, {"event": {"$endsWith": "completed"}}]},
        {"resource": {"$eq": "never\u{0}"}},
    ]})
}

/// Templates that walk the whole payload at delivery.
fn payload_walk() -> Value {
    json!({
        "all": "{{ payload | tojson }}",
        "keys": "{% for k in payload %}{{ k }},{% endfor %}",
        "count": "{{ payload | length }}",
        "kind": "{{ payload.kind | default('none') }}",
    })
}
