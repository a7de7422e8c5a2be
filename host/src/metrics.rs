//! Prometheus metrics: what is recorded where, and `GET /metrics`.
//!
//! Events (ingest answers, accepted events, attempts, the store's durable
//! commits) are counted where they happen, through the `metrics` facade
//! into one process-wide Prometheus recorder: installed once, whatever
//! number of `App`s the process runs (the integration tests start many),
//! and rendered by the route here — no exporter server of its own. State
//! (the queue, paused connections) is not counted along the way but read
//! from the scraped App's store when scraped (`metrics/queue.rs`).
//!
//! Labels stay few: no workspace, connection, event or id ever becomes
//! one, and connector names are capped ([`LabelCap`]).

mod queue;

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ::metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{ApiError, AppState};
use crate::attempt::AttemptRecord;
use crate::store::Accepted;
use crate::store::Next as NextAttempt;

const INGEST_REQUESTS: &str = "switchboard_ingest_requests_total";
const INGEST_DURATION: &str = "switchboard_ingest_duration_seconds";
const EVENTS_ACCEPTED: &str = "switchboard_events_accepted_total";
const DELIVERIES: &str = "switchboard_deliveries_total";
const ATTEMPT_DURATION: &str = "switchboard_attempt_duration_seconds";
const STORE_SYNC_DURATION: &str = "switchboard_store_sync_duration_seconds";

/// Ingest answers: a durable write inside, so milliseconds to seconds.
const INGEST_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Attempts: a destination's answer, up to the connector's timeout.
const ATTEMPT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// An fsync or a commit's WAL flush: tens of microseconds on a good disk.
const SYNC_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Distinct `connector` label values at most. Connector names come from the
/// registry, so they are few, but whoever may upload connectors can register
/// as many names as they like: past this many, an attempt counts under
/// [`OTHER`], so one hostile upload cannot grow the scrape without bound.
const MAX_CONNECTOR_LABELS: usize = 100;
const OTHER: &str = "other";

/// The text exposition format, version 0.0.4 (what Prometheus asks for).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's recorder, installed on first use; its handle renders.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [
            (INGEST_DURATION, INGEST_BUCKETS),
            (ATTEMPT_DURATION, ATTEMPT_BUCKETS),
            (STORE_SYNC_DURATION, SYNC_BUCKETS),
        ];
        let builder = buckets.into_iter().fold(PrometheusBuilder::new(), |b, (name, values)| {
            b.set_buckets_for_metric(Matcher::Full(name.into()), values).expect("bucket lists are not empty")
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = ::metrics::set_global_recorder(recorder) {
            // Only an embedder that installed its own can get here.
            tracing::warn!(error = %e, "another metrics recorder is installed: /metrics shows the queue only");
        }
        describe();
        keep_up(handle.clone());
        handle
    })
}

/// HELP and TYPE for every family, and the unlabelled counters at zero, so
/// a scrape shows them before anything happened.
fn describe() {
    describe_counter!(INGEST_REQUESTS, "Ingest requests answered, by HTTP status code.");
    describe_histogram!(INGEST_DURATION, Unit::Seconds, "Time to answer an ingest request.");
    describe_counter!(EVENTS_ACCEPTED, "Events stored by ingest (idempotent repeats not counted).");
    describe_counter!(DELIVERIES, "Delivery attempts recorded, by outcome and connector.");
    describe_histogram!(ATTEMPT_DURATION, Unit::Seconds, "Time one delivery attempt took.");
    describe_histogram!(STORE_SYNC_DURATION, Unit::Seconds, "Time one durable commit (fsync, WAL flush) took.");
    counter!(EVENTS_ACCEPTED).increment(0);
}

/// Histogram samples wait in the recorder until a scrape folds them in;
/// when nobody scrapes, this does, so they never pile up.
fn keep_up(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("switchboard-metrics".into()).spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(5));
            handle.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread; histograms are folded in at scrapes only");
    }
}

/// Count the events an ingest stored (not the repeats it recognised).
pub fn events_accepted(accepted: &[Accepted]) {
    let new = accepted.iter().filter(|a| matches!(a, Accepted::New(_))).count();
    counter!(EVENTS_ACCEPTED).increment(new as u64);
}

/// An attempt was recorded: by outcome and connector, and its duration.
pub fn attempt_finished(connector: &str, record: &AttemptRecord, _next: &NextAttempt) {
    let connector = connector_labels().label(connector);
    counter!(DELIVERIES, "outcome" => record.outcome.as_str(), "connector" => connector).increment(1);
    histogram!(ATTEMPT_DURATION).record(record.duration_ms / 1000.0);
}

/// A durable commit of the store (an fsync, a transaction's commit) took `took`.
pub fn store_synced(took: Duration) {
    histogram!(STORE_SYNC_DURATION).record(took.as_secs_f64());
}

/// Middleware on the ingest routes: requests by status, and their duration.
pub async fn track_ingest(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    counter!(INGEST_REQUESTS, "status" => response.status().as_u16().to_string()).increment(1);
    histogram!(INGEST_DURATION).record(started.elapsed().as_secs_f64());
    response
}

pub fn router() -> Router<AppState> {
    // Installed with the routes, before the first request is counted.
    recorder();
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = &app.config().metrics.token {
        authorize(token, &headers)?;
    }
    let mut body = recorder().render();
    body.push_str(&queue::render(&app).await);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

/// `Authorization: Bearer <token>`, compared in constant time (as digests,
/// so not even the token's length shows in the timing).
fn authorize(token: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <metrics token>`"))?;
    let (want, got) = (Sha256::digest(token.as_bytes()), Sha256::digest(given.as_bytes()));
    if bool::from(want.ct_eq(&got)) { Ok(()) } else { Err(ApiError::unauthorized("wrong metrics token")) }
}

fn connector_labels() -> &'static LabelCap {
    static CAP: OnceLock<LabelCap> = OnceLock::new();
    CAP.get_or_init(|| LabelCap::new(MAX_CONNECTOR_LABELS))
}

/// Label values as given for the first `max` distinct ones, [`OTHER`] for
/// any after: a bound on the series one label can make.
#[derive(Debug)]
pub struct LabelCap {
    max: usize,
    seen: Mutex<HashSet<String>>,
}

impl LabelCap {
    pub fn new(max: usize) -> LabelCap {
        LabelCap { max, seen: Mutex::new(HashSet::new()) }
    }

    pub fn label(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(value) || (seen.len() < self.max && seen.insert(value.to_owned())) {
            value.to_owned()
        } else {
            OTHER.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn connector_labels_past_the_cap_count_as_other() {
        let cap = LabelCap::new(3);
        let first: Vec<String> = ["webhook", "slack", "hubspot"].iter().map(|c| cap.label(c)).collect();
        assert_eq!(first, ["webhook", "slack", "hubspot"]);
        assert_eq!(cap.label("mailchimp"), OTHER, "a fourth name");
        assert_eq!(cap.label("x".repeat(40).as_str()), OTHER);
        assert_eq!(cap.label("slack"), "slack", "names seen before the cap keep their label");
    }

    #[test]
    fn the_process_cap_holds_at_a_hundred_connectors() {
        let cap = LabelCap::new(MAX_CONNECTOR_LABELS);
        let labels: HashSet<String> = (0..1000).map(|i| cap.label(&format!("connector-{i}"))).collect();
        assert_eq!(labels.len(), MAX_CONNECTOR_LABELS + 1, "a hundred names and `other`");
        assert!(labels.contains(OTHER));
    }

    #[test]
    fn the_token_is_a_bearer_compared_whole() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            h
        };
        assert!(authorize("s3cret", &with("Bearer s3cret")).is_ok());
        assert!(authorize("s3cret", &with("bearer s3cret")).is_ok(), "the scheme is case-insensitive");
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret", "Bearer "] {
            assert_eq!(authorize("s3cret", &with(wrong)).unwrap_err().status, 401, "{wrong}");
        }
        assert_eq!(authorize("s3cret", &HeaderMap::new()).unwrap_err().status, 401);
    }
}
