//! Re-running a recorded attempt on another connector version, against the
//! responses that attempt recorded: "would 2.0.0 have delivered this?".
//! The version runs on the delivery's event and fields with the
//! connection's settings and secrets, as the worker would run it, but every
//! request it makes is answered from the attempt's steps
//! (`runtime::recorded`), its cache writes stay with the run, and nothing
//! is stored: no attempt is recorded, the delivery is left as it is. The
//! answer is the attempt as it would have been recorded and where its
//! requests differ from the original's.

use std::sync::Arc;

use serde::Serialize;

use super::{OpError, Result};
use crate::app::App;
use crate::attempt::{AttemptRecord, Step, StepRequest};
use crate::delivery::worker::{invocation, labels, render_fields};
use crate::model::{Delivery, now_ms, rfc3339};
use crate::outcome::Outcome;
use crate::runtime::LoadedConnector;
use crate::runtime::recorded::{OverlayCache, RecordedTransport};
use crate::secrets::SecretSet;

/// A re-run's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rerun {
    /// The attempt as it would have been recorded (it was not).
    pub attempt: AttemptRecord,
    pub original: OriginalAttempt,
    /// Where the re-run's requests differ from the original's, step by
    /// step, in order; empty when it asked for the same requests.
    pub differences: Vec<Difference>,
    /// The steps (1-based) whose recorded response body was replayed cut to
    /// its first 4 KiB: the connector saw less than the destination sent.
    pub truncated_bodies: Vec<u32>,
}

/// The attempt that was re-run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OriginalAttempt {
    pub n: u32,
    pub outcome: Outcome,
    pub connector_version: String,
}

/// One way a request of the re-run differs from the original's request at
/// the same step. URLs keep their `{{secret.NAME}}` placeholders and
/// sensitive header values are `[redacted]` on both sides, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum Difference {
    Method {
        step: u32,
        original: String,
        rerun: String,
    },
    Url {
        step: u32,
        original: String,
        rerun: String,
    },
    /// A header (lower-case name) sent by one run only (`null` on the
    /// other side) or with another value.
    Header {
        step: u32,
        name: String,
        #[schema(required = true)]
        original: Option<String>,
        #[schema(required = true)]
        rerun: Option<String>,
    },
    BodyBytes {
        step: u32,
        original: usize,
        rerun: usize,
    },
    /// A request only one of the runs made (`null` on the other side).
    Request {
        step: u32,
        #[schema(required = true)]
        original: Option<StepRequest>,
        #[schema(required = true)]
        rerun: Option<StepRequest>,
    },
}

/// Run attempt `n` of the workspace's delivery again on `version` of its
/// connector (blocked versions too), answered from the attempt's record.
pub async fn rerun(app: &App, workspace: &str, delivery: &str, n: u32, version: &str) -> Result<Rerun> {
    let d = super::deliveries::load(app, workspace, delivery).await?;
    let original = app
        .store()
        .attempts(&d.id)
        .await?
        .into_iter()
        .find(|a| a.n == n)
        .ok_or_else(|| OpError::not_found("attempt", n.to_string()))?;
    let connector = app.registry().resolve(&d.connector, version).ok_or_else(|| OpError::Invalid {
        field: "version".into(),
        message: format!("is not a registered version of connector `{}`", d.connector),
    })?;
    let event = app.store().event(workspace, &d.event_id).await?.ok_or_else(|| {
        OpError::Refused(format!("the delivery's event `{}` is no longer stored; it cannot be re-run", d.event_id))
    })?;
    let connection = app.store().connection(workspace, &d.connection).await?.ok_or_else(|| {
        OpError::Refused(format!("the delivery's connection `{}` was deleted; it cannot be re-run", d.connection))
    })?;

    let mut truncated_bodies = Vec::new();
    let attempt = match render_fields(&d, &event) {
        // As the worker records it: the connector never runs.
        Err(message) => mapping_error(&d, &connector, n, message),
        Ok(fields) => {
            let opened = app.master_key().open(&connection.sealed_secrets, &connection.id);
            let secrets = SecretSet::new(opened.map_err(|e| OpError::Sealed(e.to_string()))?);
            // The attempt number the original saw, so the connector decides as it did then.
            let invocation = invocation(&d, &event, &connection, &fields, secrets, n);
            let labels = labels(&connector, &d);
            let transport = Arc::new(RecordedTransport::new(original.steps.clone()));
            let cache = Arc::new(OverlayCache::new(app.runtime().cache().clone()));
            let record = app.runtime().invoke_via(&connector, invocation, labels, transport.clone(), cache).await;
            truncated_bodies = transport.truncated_bodies();
            record
        }
    };
    Ok(Rerun {
        differences: differences(&original.steps, &attempt.steps),
        original: OriginalAttempt {
            n: original.n,
            outcome: original.outcome,
            connector_version: original.connector_version,
        },
        attempt,
        truncated_bodies,
    })
}

fn mapping_error(d: &Delivery, connector: &LoadedConnector, n: u32, message: String) -> AttemptRecord {
    AttemptRecord {
        connector: d.connector.clone(),
        connector_version: connector.manifest().version.clone(),
        component_sha256: None,
        n,
        started_at: rfc3339(now_ms()),
        duration_ms: 0.0,
        outcome: Outcome::MappingError,
        error: Some(message),
        summary: None,
        retry_after_ms: None,
        steps: Vec::new(),
        logs: Vec::new(),
    }
}

/// The re-run's requests against the original's, step by step.
pub fn differences(original: &[Step], rerun: &[Step]) -> Vec<Difference> {
    let mut out = Vec::new();
    for i in 0..original.len().max(rerun.len()) {
        let step = i as u32 + 1;
        let (a, b) = match (original.get(i), rerun.get(i)) {
            (Some(a), Some(b)) => (&a.request, &b.request),
            (a, b) => {
                let (original, rerun) = (a.map(|s| s.request.clone()), b.map(|s| s.request.clone()));
                out.push(Difference::Request { step, original, rerun });
                continue;
            }
        };
        if a.method != b.method {
            out.push(Difference::Method { step, original: a.method.clone(), rerun: b.method.clone() });
        }
        if a.url != b.url {
            out.push(Difference::Url { step, original: a.url.clone(), rerun: b.url.clone() });
        }
        let mut names: Vec<&String> = a.headers.keys().chain(b.headers.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let (original, rerun) = (a.headers.get(name), b.headers.get(name));
            if original != rerun {
                out.push(Difference::Header {
                    step,
                    name: name.clone(),
                    original: original.cloned(),
                    rerun: rerun.cloned(),
                });
            }
        }
        if a.body_bytes != b.body_bytes {
            out.push(Difference::BodyBytes { step, original: a.body_bytes, rerun: b.body_bytes });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn step(method: &str, url: &str, headers: &[(&str, &str)], body_bytes: usize) -> Step {
        let headers: BTreeMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Step {
            request: StepRequest { method: method.into(), url: url.into(), headers, body_bytes },
            response: None,
            error: None,
            duration_ms: 0.0,
        }
    }

    #[test]
    fn identical_requests_have_no_differences() {
        let s = [step("POST", "https://a.example/{{secret.key}}", &[("authorization", "[redacted]")], 10)];
        assert!(differences(&s, &s).is_empty());
    }

    #[test]
    fn each_differing_part_of_a_step_is_named() {
        let a = [step("POST", "https://a.example/v1", &[("content-type", "application/json"), ("x-old", "1")], 10)];
        let b = [step("PUT", "https://a.example/v2", &[("content-type", "text/plain"), ("x-new", "2")], 12)];
        let url = |v: &str| format!("https://a.example/{v}");
        assert_eq!(
            differences(&a, &b),
            [
                Difference::Method { step: 1, original: "POST".into(), rerun: "PUT".into() },
                Difference::Url { step: 1, original: url("v1"), rerun: url("v2") },
                Difference::Header {
                    step: 1,
                    name: "content-type".into(),
                    original: Some("application/json".into()),
                    rerun: Some("text/plain".into()),
                },
                Difference::Header { step: 1, name: "x-new".into(), original: None, rerun: Some("2".into()) },
                Difference::Header { step: 1, name: "x-old".into(), original: Some("1".into()), rerun: None },
                Difference::BodyBytes { step: 1, original: 10, rerun: 12 },
            ]
        );
    }

    #[test]
    fn a_step_only_one_run_made_is_a_request_difference() {
        let one = step("GET", "https://a.example/token", &[], 0);
        let two = step("POST", "https://a.example/send", &[], 5);
        let (shorter, longer) = ([one.clone()], [one, two.clone()]);
        let diff = differences(&shorter, &longer);
        assert_eq!(diff, [Difference::Request { step: 2, original: None, rerun: Some(two.request.clone()) }]);
        let diff = differences(&longer, &shorter);
        assert_eq!(diff, [Difference::Request { step: 2, original: Some(two.request), rerun: None }]);
    }

    #[test]
    fn differences_serialize_tagged_by_field() {
        let d = Difference::Header { step: 1, name: "idempotency-key".into(), original: None, rerun: Some("k".into()) };
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            serde_json::json!({"field": "header", "step": 1, "name": "idempotency-key", "original": null, "rerun": "k"})
        );
    }
}
