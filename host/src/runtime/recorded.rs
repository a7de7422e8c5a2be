//! What a re-run touches instead of the world (`ops::rerun`):
//! [`RecordedTransport`] answers each request from an attempt's recorded
//! steps, in order, and [`OverlayCache`] reads the connection's cache but
//! keeps the run's own writes. A connector version can so run against a
//! past attempt with no network traffic and nothing stored.
//!
//! The i-th request that reaches the transport gets the i-th recorded step:
//! its response (status, headers and body as recorded — bodies are the
//! scrubbed first 4 KiB) or its error, replayed as the same kind of
//! transport error, at once (a recorded timeout is not waited out). A
//! request past the recorded steps is an interruption.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::cache::ConnectorCache;
use super::transport::{InboundResponse, OutboundRequest, Transport, TransportError, TransportFuture};
use crate::attempt::{Step, StepError};

/// Answers requests from recorded steps; never touches the network.
#[derive(Debug)]
pub struct RecordedTransport {
    steps: Vec<Step>,
    /// How many requests have been answered so far.
    next: AtomicUsize,
    /// 1-based numbers of the steps whose cut body was replayed.
    truncated: Mutex<Vec<u32>>,
}

impl RecordedTransport {
    pub fn new(steps: Vec<Step>) -> Self {
        RecordedTransport { steps, next: AtomicUsize::new(0), truncated: Mutex::new(Vec::new()) }
    }

    /// The recorded steps (1-based) whose response body was replayed as
    /// recorded, cut to its first 4 KiB: the connector saw less than the
    /// destination had sent.
    pub fn truncated_bodies(&self) -> Vec<u32> {
        self.truncated.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn answer(&self, request: &OutboundRequest) -> Result<InboundResponse, TransportError> {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        let n = i + 1;
        let Some(step) = self.steps.get(i) else {
            return Err(TransportError::Interrupted(format!("no recorded response for request {n}")));
        };
        let Some(recorded) = &step.response else {
            return Err(match &step.error {
                Some(e) => replayed_error(e),
                None => TransportError::Interrupted(format!("recorded step {n} has neither a response nor an error")),
            });
        };
        if recorded.body.len() > request.max_response_bytes {
            return Err(TransportError::TooLarge(format!(
                "response body exceeds the {} byte limit",
                request.max_response_bytes
            )));
        }
        if recorded.body_truncated {
            self.truncated.lock().unwrap_or_else(PoisonError::into_inner).push(n as u32);
        }
        Ok(InboundResponse {
            status: recorded.status,
            headers: recorded.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: recorded.body.clone().into_bytes(),
        })
    }
}

/// The transport error that made the host record `e`.
fn replayed_error(e: &StepError) -> TransportError {
    match e {
        StepError::Timeout => TransportError::Timeout,
        StepError::Connect(m) => TransportError::Connect(m.clone()),
        StepError::Interrupted(m) => TransportError::Interrupted(m.clone()),
        StepError::Denied(m) => TransportError::Denied(m.clone()),
        StepError::LimitExceeded(m) => TransportError::TooLarge(m.clone()),
        StepError::Invalid(m) => TransportError::Invalid(m.clone()),
    }
}

impl Transport for RecordedTransport {
    fn execute(&self, request: OutboundRequest) -> TransportFuture<'_> {
        Box::pin(std::future::ready(self.answer(&request)))
    }
}

/// A cache that reads through to another but keeps writes to itself, for
/// as long as it lives: a re-run sees the connection's cached values and
/// leaves them as they were.
pub struct OverlayCache {
    under: Arc<dyn ConnectorCache>,
    writes: Mutex<HashMap<(String, String), (String, Instant)>>,
}

impl std::fmt::Debug for OverlayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayCache").finish_non_exhaustive()
    }
}

impl OverlayCache {
    pub fn new(under: Arc<dyn ConnectorCache>) -> Self {
        OverlayCache { under, writes: Mutex::new(HashMap::new()) }
    }
}

#[async_trait::async_trait]
impl ConnectorCache for OverlayCache {
    async fn get(&self, scope: &str, key: &str) -> Option<String> {
        let written = {
            let writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
            writes.get(&(scope.to_string(), key.to_string())).cloned()
        };
        match written {
            // A value this run wrote hides the one below, expired or not.
            Some((value, expires)) => (expires > Instant::now()).then_some(value),
            None => self.under.get(scope, key).await,
        }
    }

    async fn set(&self, scope: &str, key: &str, value: &str, ttl: Duration) {
        let mut writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        writes.insert((scope.to_string(), key.to_string()), (value.to_string(), Instant::now() + ttl));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::attempt::{StepRequest, StepResponse};
    use crate::runtime::cache::MemoryCache;

    fn step(response: Option<StepResponse>, error: Option<StepError>) -> Step {
        Step { request: StepRequest::default(), response, error, duration_ms: 1.0 }
    }

    fn ok(status: u16, body: &str, truncated: bool) -> Step {
        let headers = BTreeMap::from([("content-type".to_string(), "text/plain".to_string())]);
        step(Some(StepResponse { status, headers, body: body.into(), body_truncated: truncated }), None)
    }

    fn request() -> OutboundRequest {
        OutboundRequest {
            method: http::Method::POST,
            url: url::Url::parse("https://api.example.com/x").unwrap(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(10),
            max_response_bytes: 1 << 20,
        }
    }

    #[tokio::test]
    async fn requests_get_the_recorded_answers_in_order_then_an_interruption() {
        let t = RecordedTransport::new(vec![
            ok(409, "exists", false),
            step(None, Some(StepError::Timeout)),
            step(None, Some(StepError::Connect("refused".into()))),
            ok(200, "cut", true),
        ]);
        let first = t.execute(request()).await.unwrap();
        assert_eq!((first.status, first.body.as_slice()), (409, b"exists".as_slice()));
        assert_eq!(first.headers, [("content-type".to_string(), "text/plain".to_string())]);
        assert_eq!(t.execute(request()).await.unwrap_err(), TransportError::Timeout);
        assert_eq!(t.execute(request()).await.unwrap_err(), TransportError::Connect("refused".into()));
        assert_eq!(t.execute(request()).await.unwrap().body, b"cut");
        assert_eq!(
            t.execute(request()).await.unwrap_err(),
            TransportError::Interrupted("no recorded response for request 5".into())
        );
        assert_eq!(t.truncated_bodies(), [4], "the fourth step's body was replayed cut");
    }

    #[tokio::test]
    async fn every_recorded_error_replays_as_the_transport_error_that_made_it() {
        for (recorded, replayed) in [
            (StepError::Interrupted("reset".into()), TransportError::Interrupted("reset".into())),
            (StepError::Denied("no".into()), TransportError::Denied("no".into())),
            (StepError::LimitExceeded("big".into()), TransportError::TooLarge("big".into())),
            (StepError::Invalid("bad".into()), TransportError::Invalid("bad".into())),
        ] {
            let t = RecordedTransport::new(vec![step(None, Some(recorded))]);
            assert_eq!(t.execute(request()).await.unwrap_err(), replayed);
        }
    }

    #[tokio::test]
    async fn the_overlay_reads_through_and_keeps_its_writes() {
        let under: Arc<dyn ConnectorCache> = Arc::new(MemoryCache::default());
        under.set("conn", "tag", "16", Duration::from_secs(60)).await;
        let overlay = OverlayCache::new(under.clone());
        assert_eq!(overlay.get("conn", "tag").await.as_deref(), Some("16"));
        overlay.set("conn", "tag", "99", Duration::from_secs(60)).await;
        overlay.set("conn", "new", "1", Duration::from_secs(60)).await;
        assert_eq!(overlay.get("conn", "tag").await.as_deref(), Some("99"));
        assert_eq!(overlay.get("conn", "new").await.as_deref(), Some("1"));
        assert_eq!(under.get("conn", "tag").await.as_deref(), Some("16"), "the cache below is unchanged");
        assert_eq!(under.get("conn", "new").await, None);
    }
}
