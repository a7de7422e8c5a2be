//! The skeleton every local HTTP double of the suite shares — the vendor
//! fakes and the webhook [`Receiver`](crate::receiver::Receiver): a server on
//! 127.0.0.1:0 that records each request as a [`Call`] and lets a [`Fake`]
//! answer it, stopped when dropped.
//!
//! Calls are recorded and answered one at a time under the fake's lock, so a
//! fake's state (its contacts, its rate-limit clock) sees them in the order
//! a test reads them back from [`FakeServer::calls`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Response, StatusCode};
use serde_json::Value;

/// The most of a request body a fake reads; far above what any connector sends.
const MAX_BODY: usize = 16 << 20;

/// One request as a fake received it, and what became of it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it was served: taken under the fake's lock, so it grows in
    /// recording order and is the clock the fake's rate limits read.
    pub at: Instant,
    /// The status it was answered with; 0 while a delayed responder has not
    /// built the answer yet.
    pub status: u16,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `"POST /api/3/contact/sync"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path_and_query)
    }
}

/// What a fake does with each call.
pub trait Fake: Send + 'static {
    /// Answer `call`, which is recorded already. Runs under the fake's lock.
    fn answer(&mut self, call: &Call) -> Answer;
}

/// A fake's answer: a response, sent at once or after a delay.
pub struct Answer {
    delay: Duration,
    response: Pending,
}

enum Pending {
    Ready(Response<Body>),
    /// Built only after the delay, outside the lock, so slow answers overlap.
    Later(Box<dyn FnOnce() -> Response<Body> + Send>),
}

impl From<Response<Body>> for Answer {
    fn from(response: Response<Body>) -> Answer {
        Answer { delay: Duration::ZERO, response: Pending::Ready(response) }
    }
}

impl Answer {
    /// Hold a finished answer back for `delay`: whatever the call did is
    /// done, only the caller hears of it late.
    pub fn after(self, delay: Duration) -> Answer {
        Answer { delay, ..self }
    }

    /// Build the answer with `build` once `delay` has passed.
    pub fn later(delay: Duration, build: impl FnOnce() -> Response<Body> + Send + 'static) -> Answer {
        Answer { delay, response: Pending::Later(Box::new(build)) }
    }
}

struct Shared<F> {
    fake: Mutex<F>,
    calls: Mutex<Vec<Call>>,
}

/// A running fake; dropping it stops the server.
pub struct FakeServer<F> {
    pub addr: SocketAddr,
    shared: Arc<Shared<F>>,
    task: tokio::task::JoinHandle<()>,
}

impl<F> Drop for FakeServer<F> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<F: Fake> FakeServer<F> {
    /// Serve `fake` on a fresh loopback port.
    pub async fn serve(fake: F) -> FakeServer<F> {
        let shared = Arc::new(Shared { fake: Mutex::new(fake), calls: Mutex::new(Vec::new()) });
        let app = axum::Router::new().fallback(handle::<F>).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a fake");
        let addr = listener.local_addr().expect("the fake's address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the fake serves");
        });
        FakeServer { addr, shared, task }
    }

    /// `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The origin, for a connection's `base_url` setting.
    pub fn base_url(&self) -> String {
        self.url("")
    }

    /// Every call so far, in the order they were served.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The fake's state, to seed it or read it.
    pub fn lock(&self) -> MutexGuard<'_, F> {
        self.shared.fake.lock().unwrap()
    }
}

async fn handle<F: Fake>(State(shared): State<Arc<Shared<F>>>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let (index, answer) = {
        let mut fake = shared.fake.lock().unwrap();
        let call = Call {
            method: parts.method,
            path_and_query: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            headers: parts.headers,
            body,
            at: Instant::now(),
            status: 0,
        };
        // Recorded before it is answered, so a call whose caller gives up
        // waiting still counts.
        let index = record(&shared, call.clone());
        let answer = fake.answer(&call);
        if let Pending::Ready(response) = &answer.response {
            shared.calls.lock().unwrap()[index].status = response.status().as_u16();
        }
        (index, answer)
    };
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    match answer.response {
        Pending::Ready(response) => response,
        Pending::Later(build) => {
            let response = build();
            shared.calls.lock().unwrap()[index].status = response.status().as_u16();
            response
        }
    }
}

fn record<F>(shared: &Shared<F>, call: Call) -> usize {
    let mut calls = shared.calls.lock().unwrap();
    calls.push(call);
    calls.len() - 1
}

/// A response with `status`, `headers` and `body`.
pub fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response<Body> {
    let mut builder = Response::builder().status(StatusCode::from_u16(status).expect("valid status"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).expect("valid response")
}

/// Decode `%XX` escapes in a path segment (an email in a URL, say);
/// anything else is kept as it is.
pub fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%').then(|| segment.get(i + 1..i + 3)).flatten();
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
