//! How the host executes a connector's HTTP requests. [`ReqwestTransport`]
//! is the real network (no redirects, no proxy, [`GuardedResolver`] for DNS);
//! [`FnTransport`] answers in-process, for `connector test` fixtures and
//! benchmarks that must not measure a network.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::egress::{Denied, EgressPolicy, GuardedResolver};

/// A request with secrets already substituted. Never logged or recorded.
#[derive(Clone)]
pub struct OutboundRequest {
    pub method: http::Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
    /// Read at most this many body bytes; more is an error.
    pub max_response_bytes: usize,
}

impl std::fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may hold secrets: show the shape only.
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct InboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Messages may quote the destination (a host name in a resolver error), so
/// whoever shows one to a guest or a record scrubs it with the connection's
/// secrets first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("request timed out")]
    Timeout,
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Interrupted(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Invalid(String),
}

pub type TransportFuture<'a> = Pin<Box<dyn Future<Output = Result<InboundResponse, TransportError>> + Send + 'a>>;

/// Executes outbound requests for connectors.
pub trait Transport: Send + Sync + 'static {
    fn execute(&self, request: OutboundRequest) -> TransportFuture<'_>;
}

/// The real network.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    pub fn new(policy: Arc<EgressPolicy>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(policy)))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ReqwestTransport { client })
    }
}

impl Transport for ReqwestTransport {
    fn execute(&self, req: OutboundRequest) -> TransportFuture<'_> {
        Box::pin(async move {
            let mut builder = self.client.request(req.method, req.url).timeout(req.timeout).body(req.body);
            for (name, value) in &req.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            let response = builder.send().await.map_err(classify_reqwest)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(classify_reqwest)?;
                if body.len() + chunk.len() > req.max_response_bytes {
                    return Err(TransportError::TooLarge(format!(
                        "response body exceeds the {} byte limit",
                        req.max_response_bytes
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(InboundResponse { status, headers, body })
        })
    }
}

fn classify_reqwest(e: reqwest::Error) -> TransportError {
    // reqwest's Display names the URL, and this URL has the secrets
    // substituted: the message goes to the guest and the attempt record. The
    // record already shows the guest's URL with placeholders; the caller also
    // scrubs what is left (a resolver error naming the host).
    let e = e.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(denied) = err.downcast_ref::<Denied>() {
            return TransportError::Denied(denied.0.clone());
        }
        source = err.source();
    }
    if e.is_timeout() {
        return TransportError::Timeout;
    }
    if e.is_builder() {
        return TransportError::Invalid(error_chain(&e));
    }
    // Only a failure to connect proves the destination saw nothing.
    if e.is_connect() {
        return TransportError::Connect(error_chain(&e));
    }
    TransportError::Interrupted(error_chain(&e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A transport answered by a closure, in-process.
pub struct FnTransport<F>(pub F);

impl<F> Transport for FnTransport<F>
where
    F: Fn(&OutboundRequest) -> Result<InboundResponse, TransportError> + Send + Sync + 'static,
{
    fn execute(&self, request: OutboundRequest) -> TransportFuture<'_> {
        let result = (self.0)(&request);
        Box::pin(std::future::ready(result))
    }
}
