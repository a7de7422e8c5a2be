//! The host side of the WIT imports: `http.send` (egress policy, secret
//! substitution, limits, recording), `cache`, `crypto`, `secrets` and `log`,
//! each counting its calls against the caps in `limits.rs`.
//! One [`InvocationState`] lives in each invocation's `Store` and is dropped
//! with it, so nothing leaks between invocations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{cache, crypto, http, log, secrets, types};
use super::limits::{
    LimitReached, MAX_CACHE_BYTES_WRITTEN, MAX_CACHE_READS, MAX_CACHE_WRITES, MAX_LOG_CALLS, MAX_LOG_LINE_BYTES,
    RECORDED_LOG_LINES,
};
use super::transport::{OutboundRequest, Transport, TransportError};
use super::verdict::Violation;
use crate::attempt::{LogLine, Step, StepError, StepRequest, StepResponse, header_map};
use crate::config::SandboxLimits;
use crate::egress::EgressPolicy;
use crate::runtime::cache::ConnectorCache;
use crate::secrets::{SecretSet, neutralize, neutralize_bytes, redact_header};

const RECORDED_BODY_BYTES: usize = 4096;
const MAX_CACHE_KEY_BYTES: usize = 512;
const MAX_CACHE_VALUE_BYTES: usize = 64 << 10;
const MAX_CACHE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Who is running, for logs and cache scoping.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub connector: String,
    pub version: String,
    pub workspace: String,
    pub delivery: String,
}

/// Everything one invocation's imports may touch.
pub struct InvocationIo {
    pub transport: Arc<dyn Transport>,
    pub egress: Arc<EgressPolicy>,
    pub allowed_hosts: Arc<[String]>,
    /// The hosts this connection's secrets may be sent to (`secret_hosts.rs`).
    pub secret_hosts: Arc<[String]>,
    pub secrets: Arc<SecretSet>,
    pub cache: Arc<dyn ConnectorCache>,
    /// The connection id: the cache's namespace.
    pub cache_scope: String,
    pub limits: Arc<SandboxLimits>,
    pub labels: Labels,
}

/// Store data for one invocation.
pub struct InvocationState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) io: InvocationIo,
    pub(super) steps: Vec<Step>,
    pub(super) logs: Vec<LogLine>,
    pub(super) violation: Option<Violation>,
    requests: u32,
    cache_writes: u32,
    cache_bytes_written: usize,
    cache_reads: u32,
    log_calls: u32,
    /// Log lines written but not kept in the record (past `RECORDED_LOG_LINES`).
    logs_dropped: u32,
    /// Epoch ticks charged to the guest (its CPU budget).
    pub(super) ticks: u64,
    /// The next epoch callback follows a host call: its tick was spent
    /// waiting on the host, not computing, so it is not charged.
    pub(super) resumed_from_host: bool,
}

impl InvocationState {
    /// `attempt_time` (Unix seconds) is what the guest's WASI wall clock
    /// reads for the whole invocation (see `wasi.rs`).
    pub fn new(io: InvocationIo, attempt_time: u64) -> Self {
        let wasi = super::wasi::context(attempt_time);
        let limits = StoreLimitsBuilder::new()
            .memory_size(io.limits.memory_bytes)
            .table_elements(100_000)
            .instances(32)
            .tables(32)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        InvocationState {
            wasi,
            table: ResourceTable::new(),
            limits,
            io,
            steps: Vec::new(),
            logs: Vec::new(),
            violation: None,
            requests: 0,
            ticks: 0,
            resumed_from_host: false,
            cache_writes: 0,
            cache_bytes_written: 0,
            cache_reads: 0,
            log_calls: 0,
            logs_dropped: 0,
        }
    }

    /// Forget the previous call's record and counters (benchmark reuse only).
    pub(super) fn reset_for_reuse(&mut self) {
        self.steps.clear();
        self.logs.clear();
        self.violation = None;
        self.requests = 0;
        self.cache_writes = 0;
        self.cache_bytes_written = 0;
        self.cache_reads = 0;
        self.log_calls = 0;
        self.logs_dropped = 0;
        self.ticks = 0;
        self.resumed_from_host = false;
    }

    fn violate(&mut self, v: Violation) {
        // The first violation is the one that explains the attempt.
        self.violation.get_or_insert(v);
    }

    /// Validate, police, substitute and execute one request.
    async fn execute(&mut self, req: &types::Request, record: &mut Step) -> Result<types::Response, types::SendError> {
        use types::SendError as E;
        let limits = self.io.limits.clone();
        let body_len = req.body.as_ref().map_or(0, Vec::len);
        if body_len > limits.max_request_body {
            let msg = format!("request body of {body_len} bytes exceeds the {} byte limit", limits.max_request_body);
            self.violate(Violation::Limit(msg.clone()));
            return Err(E::LimitExceeded(msg));
        }
        let method = ::http::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .ok()
            .filter(|m| matches!(m.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD"))
            .ok_or_else(|| E::Invalid(format!("method `{}` is not supported", req.method)))?;

        let secrets = self.io.secrets.clone();
        let url_text = secrets.substitute_str(&req.url).map_err(|e| E::Invalid(e.to_string()))?;
        let url = url::Url::parse(&url_text).map_err(|e| {
            // The parse error never quotes the URL, which may hold a secret.
            E::Invalid(format!("URL `{}` is not valid: {e}", req.url))
        })?;
        if let Err(denied) = self.io.egress.check_url(&url, &self.io.allowed_hosts) {
            let msg = secrets.scrub_str(&denied.0);
            self.violate(Violation::Egress(msg.clone()));
            return Err(E::Denied(msg));
        }
        let mut carries_secret = url_text != req.url;
        let mut headers = Vec::with_capacity(req.headers.len());
        for h in &req.headers {
            let value = secrets.substitute_str(&h.value).map_err(|e| E::Invalid(e.to_string()))?;
            carries_secret |= value != h.value;
            headers.push((h.name.clone(), value));
        }
        let body = match &req.body {
            Some(b) => {
                let substituted = secrets.substitute(b).map_err(|e| E::Invalid(e.to_string()))?;
                carries_secret |= substituted != *b;
                substituted
            }
            None => Vec::new(),
        };
        // Checked after substitution: a secret written into the host name
        // itself makes a host no connection allows.
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        if carries_secret && let Some(refusal) = super::secret_hosts::refusal(&self.io.secret_hosts, host) {
            let msg = secrets.scrub_str(&refusal);
            self.violate(Violation::Egress(msg.clone()));
            return Err(E::Denied(msg));
        }
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(limits.request_timeout)
            .min(limits.request_timeout);
        let outbound = OutboundRequest {
            method,
            url: url.clone(),
            headers,
            body,
            timeout,
            max_response_bytes: limits.max_response_body,
        };

        // Every message is scrubbed before the guest or the record sees it: a
        // transport may quote the destination, which holds substituted values
        // (percent-encoded in a query, lower-cased in a host name).
        let response = match self.io.transport.execute(outbound).await {
            Ok(r) => r,
            Err(TransportError::Timeout) => return Err(E::Timeout),
            Err(TransportError::Connect(m)) => return Err(E::Connect(secrets.scrub_str(&m))),
            Err(TransportError::Interrupted(m)) => return Err(E::Interrupted(secrets.scrub_str(&m))),
            Err(TransportError::Invalid(m)) => return Err(E::Invalid(secrets.scrub_str(&m))),
            Err(TransportError::Denied(m)) => {
                let msg = secrets.scrub_str(&m);
                self.violate(Violation::Egress(msg.clone()));
                return Err(E::Denied(msg));
            }
            Err(TransportError::TooLarge(m)) => {
                let msg = secrets.scrub_str(&m);
                self.violate(Violation::Limit(msg.clone()));
                return Err(E::LimitExceeded(msg));
            }
        };

        // Redirects are not followed; one aimed at a refused place is a
        // policy event worth recording as such.
        if (300..400).contains(&response.status)
            && let Some((_, location)) = response.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("location"))
            && let Ok(target) = url.join(location)
            && let Err(denied) = self.io.egress.check_url(&target, &self.io.allowed_hosts)
        {
            self.violate(Violation::Egress(format!(
                "redirect to {} refused: {}",
                secrets.scrub_str(target.as_str()),
                secrets.scrub_str(&denied.0)
            )));
        }

        // The guest and the record see secret values scrubbed from the answer,
        // and placeholders in it defused (a destination cannot make the guest
        // echo `{{secret.NAME}}` into the next request).
        let body = neutralize_bytes(secrets.scrub(&response.body));
        let headers: Vec<types::Header> = response
            .headers
            .iter()
            .map(|(n, v)| types::Header { name: n.clone(), value: neutralize(&secrets.scrub_str(v)).into_owned() })
            .collect();
        record.response = Some(StepResponse {
            status: response.status,
            headers: header_map(headers.iter().map(|h| (h.name.as_str(), redact_header(&h.name, &h.value)))),
            body: String::from_utf8_lossy(&body[..body.len().min(RECORDED_BODY_BYTES)]).into_owned(),
            body_truncated: body.len() > RECORDED_BODY_BYTES,
        });
        Ok(types::Response { status: response.status, headers, body })
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for InvocationState {}

impl http::Host for InvocationState {
    async fn send(&mut self, req: types::Request) -> wasmtime::Result<Result<types::Response, types::SendError>> {
        let started = Instant::now();
        let mut step = Step {
            request: StepRequest {
                method: req.method.clone(),
                url: req.url.clone(),
                headers: header_map(req.headers.iter().map(|h| (h.name.as_str(), redact_header(&h.name, &h.value)))),
                body_bytes: req.body.as_ref().map_or(0, Vec::len),
            },
            response: None,
            error: None,
            duration_ms: 0.0,
        };
        // Every call counts, refused ones too, so a loop of sends the egress
        // policy refuses ends at the cap like any other. The call past the cap
        // is recorded and does not return: the invocation ends there.
        self.requests += 1;
        let max_requests = self.io.limits.max_requests;
        if self.requests > max_requests {
            let msg = format!("tried to send more than {max_requests} HTTP requests in one invocation");
            step.error = Some(StepError::LimitExceeded(msg.clone()));
            self.steps.push(step);
            self.violate(Violation::Limit(msg.clone()));
            return Err(LimitReached(msg).into());
        }
        let result = self.execute(&req, &mut step).await;
        step.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Err(e) = &result {
            step.error = Some(match e {
                types::SendError::Timeout => StepError::Timeout,
                types::SendError::Connect(m) => StepError::Connect(m.clone()),
                types::SendError::Interrupted(m) => StepError::Interrupted(m.clone()),
                types::SendError::Denied(m) => StepError::Denied(m.clone()),
                types::SendError::LimitExceeded(m) => StepError::LimitExceeded(m.clone()),
                types::SendError::Invalid(m) => StepError::Invalid(m.clone()),
            });
        }
        // Only a request that went out waited on the network; a refused one
        // (egress, invalid, body over the cap) returned at once, so the
        // guest's next tick is charged.
        let went_out = step.response.is_some()
            || matches!(step.error, Some(StepError::Timeout | StepError::Connect(_) | StepError::Interrupted(_)));
        self.steps.push(step);
        self.resumed_from_host = went_out;
        Ok(result)
    }
}

impl cache::Host for InvocationState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.cache_reads += 1;
        if key.len() > MAX_CACHE_KEY_BYTES || self.cache_reads > MAX_CACHE_READS {
            return None;
        }
        // Waiting on the store is not the guest's CPU (see `MAX_CACHE_READS`).
        self.resumed_from_host = true;
        self.io.cache.get(&self.io.cache_scope, &key).await
    }

    async fn set(&mut self, key: String, value: String, ttl_seconds: u32) {
        self.cache_writes += 1;
        if self.cache_writes > MAX_CACHE_WRITES {
            if self.cache_writes == MAX_CACHE_WRITES + 1 {
                self.push_log(
                    "warn",
                    format!("cache.set ignored: more than {MAX_CACHE_WRITES} writes in one invocation"),
                );
            }
            return;
        }
        if key.len() > MAX_CACHE_KEY_BYTES || value.len() > MAX_CACHE_VALUE_BYTES {
            self.push_log(
                "warn",
                format!("cache.set ignored: key or value over the size limit ({} / {} bytes)", key.len(), value.len()),
            );
            return;
        }
        let bytes = key.len() + value.len();
        if self.cache_bytes_written + bytes > MAX_CACHE_BYTES_WRITTEN {
            if self.cache_bytes_written <= MAX_CACHE_BYTES_WRITTEN {
                self.push_log(
                    "warn",
                    format!("cache.set ignored: more than {MAX_CACHE_BYTES_WRITTEN} bytes written in one invocation"),
                );
            }
            self.cache_bytes_written = MAX_CACHE_BYTES_WRITTEN + 1;
            return;
        }
        self.cache_bytes_written += bytes;
        // Capped above, so the wait on the store is not charged as CPU.
        self.resumed_from_host = true;
        let ttl = match ttl_seconds {
            0 => MAX_CACHE_TTL,
            s => Duration::from_secs(s.into()).min(MAX_CACHE_TTL),
        };
        self.io.cache.set(&self.io.cache_scope, &key, &value, ttl).await;
    }
}

impl crypto::Host for InvocationState {
    fn hmac_sha256(
        &mut self,
        secret_name: String,
        encoding: crypto::KeyEncoding,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let secret = self
            .io
            .secrets
            .get(&secret_name)
            .ok_or_else(|| format!("the connection has no secret named `{secret_name}`"))?;
        let b64 = |s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| format!("secret `{secret_name}` is not valid base64"))
        };
        let key = match encoding {
            crypto::KeyEncoding::Utf8 => secret.as_bytes().to_vec(),
            crypto::KeyEncoding::Base64 => b64(secret)?,
            crypto::KeyEncoding::StandardWebhooks => b64(secret.strip_prefix("whsec_").unwrap_or(secret))?,
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
        mac.update(&data);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl secrets::Host for InvocationState {
    fn has(&mut self, name: String) -> bool {
        self.io.secrets.contains(&name)
    }
}

impl log::Host for InvocationState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.log_calls += 1;
        if self.log_calls > MAX_LOG_CALLS {
            let msg = format!("logged more than {MAX_LOG_CALLS} lines in one invocation");
            self.violate(Violation::Limit(msg.clone()));
            return Err(LimitReached(msg).into());
        }
        let level = match level {
            log::Level::Trace => "trace",
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        self.push_log(level, message);
        Ok(())
    }
}

impl InvocationState {
    /// The lines the attempt record keeps: those written up to
    /// `RECORDED_LOG_LINES - 1`, then one saying how many more were not kept.
    pub(super) fn take_logs(&mut self) -> Vec<LogLine> {
        let mut logs = std::mem::take(&mut self.logs);
        if self.logs_dropped > 0 {
            logs.push(LogLine {
                level: "warn".into(),
                message: format!(
                    "{} more log lines not recorded (an attempt keeps the first {})",
                    self.logs_dropped,
                    RECORDED_LOG_LINES - 1
                ),
            });
        }
        logs
    }

    /// Record a line (the guest's or the host's own note about the guest)
    /// and pass it to the operator's log, while there is room in the record.
    fn push_log(&mut self, level: &str, mut message: String) {
        if self.logs.len() >= RECORDED_LOG_LINES - 1 {
            self.logs_dropped += 1;
            return;
        }
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let l = &self.io.labels;
        match level {
            "error" => {
                tracing::error!(target: "switchboard::connector", connector = %l.connector, version = %l.version, workspace = %l.workspace, delivery = %l.delivery, "{message}")
            }
            "warn" => {
                tracing::warn!(target: "switchboard::connector", connector = %l.connector, version = %l.version, workspace = %l.workspace, delivery = %l.delivery, "{message}")
            }
            "info" => {
                tracing::info!(target: "switchboard::connector", connector = %l.connector, version = %l.version, workspace = %l.workspace, delivery = %l.delivery, "{message}")
            }
            "debug" => {
                tracing::debug!(target: "switchboard::connector", connector = %l.connector, version = %l.version, workspace = %l.workspace, delivery = %l.delivery, "{message}")
            }
            _ => {
                tracing::trace!(target: "switchboard::connector", connector = %l.connector, version = %l.version, workspace = %l.workspace, delivery = %l.delivery, "{message}")
            }
        }
        self.logs.push(LogLine { level: level.to_string(), message });
    }
}
