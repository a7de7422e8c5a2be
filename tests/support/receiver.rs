//! A local HTTP receiver on 127.0.0.1:0 that records every request and
//! answers with a scripted response.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Response, StatusCode};

/// A request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> Response<Body> + Send + Sync>;

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Recorded>>>,
    respond: Responder,
    delay: std::time::Duration,
}

pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Start a receiver whose answers come from `respond`.
    pub async fn start(respond: impl Fn(&Recorded) -> Response<Body> + Send + Sync + 'static) -> Receiver {
        Self::start_delayed(std::time::Duration::ZERO, respond).await
    }

    /// Like `start`, but every answer comes `delay` after the request.
    pub async fn start_delayed(
        delay: std::time::Duration,
        respond: impl Fn(&Recorded) -> Response<Body> + Send + Sync + 'static,
    ) -> Receiver {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared { seen: seen.clone(), respond: Arc::new(respond), delay };
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Receiver { addr, seen, task }
    }

    /// A receiver that answers every request with `status` and `body`.
    pub async fn answering(status: u16, body: &'static str) -> Receiver {
        Self::start(move |_| reply(status, &[], body)).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let recorded = Recorded {
        method: parts.method,
        path_and_query: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    // Recorded on arrival, so a request whose caller gives up still counts.
    shared.seen.lock().unwrap().push(recorded.clone());
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    (shared.respond)(&recorded)
}

/// Build a response.
pub fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response<Body> {
    let mut builder = Response::builder().status(StatusCode::from_u16(status).expect("valid status"));
    for (n, v) in headers {
        builder = builder.header(*n, *v);
    }
    builder.body(body.into()).expect("valid response")
}
