//! `switchboard connector test`: one invocation in the real sandbox with
//! every HTTP request answered from a fixture file, no network.
//!
//! The fixture is a JSON array of the requests the connector must make, in
//! order, each with the answer to give:
//!
//! ```json
//! [{"method": "POST", "url": "https://api.example.com/v1/events",
//!   "response": {"status": 202, "headers": {"content-type": "application/json"}, "body": {"id": "e1"}}}]
//! ```
//!
//! A request matches when its method and URL equal the next expectation's.
//! The URL compared is the one the host would send, i.e. with secrets
//! substituted; a fixture URL may therefore hold `{{secret.NAME}}`
//! placeholders, which are substituted from `--secret` the same way before
//! comparing (so fixtures need not spell secret values out), and URLs are
//! compared after parsing (`https://h` equals `https://h/`). A string
//! `body` is sent as is; any other JSON value is serialised, with
//! `content-type: application/json` unless the fixture sets one.
//!
//! The test fails (exit 1), naming the step, on a request that does not match
//! the next expectation (the connector gets a `connect` error for it), on an
//! expectation left unused, and on an outcome other than `--expect-outcome`
//! (default `delivered`). Printed steps and messages never hold a secret.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use super::{UsageError, check_action, cli_runtime, failed, invocation, read_component, read_input};
use crate::attempt::{AttemptRecord, StepError};
use crate::egress::EgressPolicy;
use crate::outcome::Outcome;
use crate::runtime::ValidateError;
use crate::runtime::transport::{InboundResponse, OutboundRequest, Transport, TransportError, TransportFuture};
use crate::secrets::SecretSet;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The connector component (.wasm).
    pub component: PathBuf,
    /// A JSON file with the event as the ingest API takes it:
    /// {"event", "payload", "resource"?, "resource_id"?}.
    #[arg(long)]
    pub event: PathBuf,
    /// The action to run.
    #[arg(long)]
    pub action: String,
    /// The rule's fields, already rendered (JSON).
    #[arg(long, default_value = "{}")]
    pub fields: String,
    /// The connection's settings (JSON).
    #[arg(long, default_value = "{}")]
    pub settings: String,
    /// A connection secret, NAME=VALUE; repeatable.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,
    /// The expected requests and their answers (JSON array, in order).
    #[arg(long, value_name = "FILE")]
    pub responses: PathBuf,
    /// The outcome the invocation must end with, e.g. rejected_server_error.
    #[arg(long, default_value = "delivered", value_name = "OUTCOME")]
    pub expect_outcome: String,
    /// Allow loopback and private addresses in URLs.
    #[arg(long)]
    pub allow_private_networks: bool,
    /// An extra host the connector may reach; repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
}

/// One entry of the fixture file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    method: String,
    url: String,
    response: FixtureResponse,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureResponse {
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

/// An expectation ready to compare and answer.
#[derive(Debug)]
struct Expected {
    method: String,
    /// With secrets substituted: what the host would send.
    url: url::Url,
    /// As the fixture wrote it (placeholders kept): what we print.
    shown: String,
    response: InboundResponse,
}

/// Answers from the fixture, in order; records every mismatch.
struct FixtureTransport {
    expected: Vec<Expected>,
    secrets: Arc<SecretSet>,
    state: Mutex<FixtureState>,
}

#[derive(Default)]
struct FixtureState {
    /// Requests seen so far.
    requests: usize,
    /// Expectations consumed so far.
    used: usize,
    /// One sentence per request that matched no expectation, naming its step.
    unexpected: Vec<String>,
}

impl FixtureTransport {
    fn answer(&self, request: &OutboundRequest) -> Result<InboundResponse, TransportError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests += 1;
        let step = state.requests;
        let next = self.expected.get(state.used);
        if let Some(e) = next
            && e.method == request.method.as_str()
            && e.url == request.url
        {
            state.used += 1;
            // The same cap the real transport applies while reading.
            if e.response.body.len() > request.max_response_bytes {
                return Err(TransportError::TooLarge(format!(
                    "response body exceeds the {} byte limit",
                    request.max_response_bytes
                )));
            }
            return Ok(e.response.clone());
        }
        let url = self.secrets.scrub_str(request.url.as_str());
        let wanted = next.map(|e| format!("{} {}", e.method, e.shown));
        let message = match &wanted {
            Some(w) => format!("step {step}: unexpected request {} {url}; the fixture expects {w}", request.method),
            None => format!(
                "step {step}: unexpected request {} {url}; the fixture expects no more requests",
                request.method
            ),
        };
        state.unexpected.push(message.clone());
        Err(TransportError::Connect(message))
    }
}

impl Transport for FixtureTransport {
    fn execute(&self, request: OutboundRequest) -> TransportFuture<'_> {
        let result = self.answer(&request);
        Box::pin(std::future::ready(result))
    }
}

/// Read and check the fixture file, substituting secrets into its URLs.
fn read_fixture(path: &std::path::Path, secrets: &SecretSet) -> Result<Vec<Expected>, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read responses file {}: {e}", path.display())))?;
    let entries: Vec<Expectation> = serde_json::from_str(&text).map_err(|e| {
        UsageError(format!(
            "responses file {} is not a JSON array of {{\"method\", \"url\", \"response\": {{\"status\", \"headers\"?, \"body\"?}}}}: {e}",
            path.display()
        ))
    })?;
    let mut expected = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let n = i + 1;
        let substituted = secrets
            .substitute_str(&entry.url)
            .map_err(|e| UsageError(format!("responses file, entry {n}: {e} (pass it with --secret)")))?;
        let url = url::Url::parse(&substituted)
            .map_err(|e| UsageError(format!("responses file, entry {n}: url `{}` is not valid: {e}", entry.url)))?;
        if !(100..=599).contains(&entry.response.status) {
            return Err(UsageError(format!(
                "responses file, entry {n}: status {} is not an HTTP status",
                entry.response.status
            )));
        }
        let mut headers: Vec<(String, String)> = entry.response.headers.into_iter().collect();
        let body = match entry.response.body {
            None => Vec::new(),
            Some(Value::String(s)) => s.into_bytes(),
            Some(json) => {
                if !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case("content-type")) {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                json.to_string().into_bytes()
            }
        };
        expected.push(Expected {
            method: entry.method.to_ascii_uppercase(),
            url,
            shown: entry.url,
            response: InboundResponse { status: entry.response.status, headers, body },
        });
    }
    Ok(expected)
}

pub async fn run(args: TestArgs) -> Result<ExitCode, UsageError> {
    let bytes = read_component(&args.component)?;
    let input = read_input(&args.event, &args.fields, &args.settings, &args.secrets)?;
    let expect_outcome: Outcome = serde_json::from_value(Value::String(args.expect_outcome.clone()))
        .map_err(|_| UsageError(format!("--expect-outcome `{}` is not an outcome code", args.expect_outcome)))?;
    let expected = read_fixture(&args.responses, &input.secrets)?;
    let total = expected.len();
    let transport = Arc::new(FixtureTransport {
        expected,
        secrets: input.secrets.clone(),
        state: Mutex::new(FixtureState::default()),
    });
    let egress = Arc::new(EgressPolicy {
        allow_private_networks: args.allow_private_networks,
        allow_hosts: args.allow_hosts.clone(),
    });
    let runtime = cli_runtime(egress, transport.clone())?;
    let connector = match runtime.load(&bytes).await {
        Ok(c) => c,
        Err(e) => return Ok(failed(format_args!("{}: {e}", args.component.display()))),
    };
    check_action(&connector, &args.action)?;
    match runtime.validate(&connector, &input.settings.to_string()).await {
        Ok(()) => {}
        Err(ValidateError::Rejected(msg)) => {
            return Ok(failed(format_args!("validate: the connector rejected the settings: {msg}")));
        }
        Err(ValidateError::Failed(e)) => return Ok(failed(format_args!("validate: {e}"))),
    }
    let (invocation, labels) = invocation(&connector, input, args.action);
    let record = runtime.invoke(&connector, invocation, labels).await;
    print_record(&record);

    let state = transport.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut problems = state.unexpected.clone();
    for (i, e) in transport.expected.iter().enumerate().skip(state.used) {
        problems.push(format!(
            "step {}: expected {} {} but it was never requested ({} of {total} expectations used)",
            i + 1,
            e.method,
            e.shown,
            state.used
        ));
    }
    if record.outcome != expect_outcome {
        problems.push(format!(
            "outcome: expected {}, got {}",
            outcome_name(expect_outcome),
            outcome_name(record.outcome)
        ));
    }
    if problems.is_empty() {
        println!("ok: {} request(s) as the fixture expects, outcome {}", state.used, outcome_name(record.outcome));
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    println!("FAILED: {} problem(s)", problems.len());
    Ok(ExitCode::from(1))
}

fn outcome_name(outcome: Outcome) -> String {
    serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// One line per HTTP step (as the connector wrote it: placeholders kept),
/// then the outcome.
fn print_record(record: &AttemptRecord) {
    for (i, step) in record.steps.iter().enumerate() {
        let result = match (&step.response, &step.error) {
            (Some(r), _) => r.status.to_string(),
            (None, Some(e)) => format!("no response: {}", step_error(e)),
            (None, None) => "no response".to_string(),
        };
        println!("step {}: {} {} -> {result}", i + 1, step.request.method, step.request.url);
    }
    let detail = record.summary.as_deref().or(record.error.as_deref()).map(|d| format!(" ({d})")).unwrap_or_default();
    println!("outcome: {}{detail}", outcome_name(record.outcome));
}

fn step_error(e: &StepError) -> String {
    match e {
        StepError::Timeout => "timeout".into(),
        StepError::Connect(m) => format!("connect: {m}"),
        StepError::Interrupted(m) => format!("interrupted: {m}"),
        StepError::Denied(m) => format!("denied: {m}"),
        StepError::LimitExceeded(m) => format!("limit exceeded: {m}"),
        StepError::Invalid(m) => format!("invalid: {m}"),
    }
}
