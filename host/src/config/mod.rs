//! Configuration: defaults, then an optional TOML file, then `SWITCHBOARD_*`
//! environment variables (`SWITCHBOARD_EGRESS__ALLOW_PRIVATE_NETWORKS=true`:
//! the dotted path upper-cased, `__` between levels). Unknown keys are an
//! error that names the key. Durations are friendly text (`"250ms"`, `"5m"`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::StoreConfig;

mod load;

pub use load::ConfigError;

/// Everything `switchboard serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Generated and stored in the data dir on first start when absent.
    pub admin_token: Option<String>,
    /// Base64 of 32 bytes; generated like the admin token when absent.
    pub master_key: Option<String>,
    /// Every `*.wasm` here is registered at start, after the connectors
    /// bundled in the binary (`Origin::Directory`).
    pub connectors_dir: Option<PathBuf>,
    pub registry: RegistryConfig,
    pub egress: EgressConfig,
    pub retry: RetryConfig,
    pub delivery: DeliveryConfig,
    pub ingest: IngestConfig,
    pub retention: RetentionConfig,
    pub sandbox: SandboxLimits,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub alerts: AlertsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            admin_token: None,
            master_key: None,
            connectors_dir: None,
            registry: RegistryConfig::default(),
            egress: EgressConfig::default(),
            retry: RetryConfig::default(),
            delivery: DeliveryConfig::default(),
            ingest: IngestConfig::default(),
            retention: RetentionConfig::default(),
            sandbox: SandboxLimits::default(),
            store: StoreConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            alerts: AlertsConfig::default(),
        }
    }
}

/// Development mode: `watch` reloads a connector in `connectors_dir` when
/// its file changes (also `serve --dev`). Off by default: in production,
/// whoever can write to that directory could otherwise swap a connector
/// under running connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    pub watch: bool,
    /// A version in staged rollout is rolled back when its failure ratio
    /// exceeds the previous version's by more than this (0.2 = 20 points)…
    pub rollback_margin: f64,
    /// …over at least this many of its own attempts.
    pub rollback_min_attempts: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig { watch: false, rollback_margin: 0.2, rollback_min_attempts: 20 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    pub allow_private_networks: bool,
    pub allow_hosts: Vec<String>,
    /// `"api.vendor.com" = "127.0.0.1:8081"`: requests for that host go to
    /// that address instead, over plain HTTP (staging against local fakes).
    pub map_hosts: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before each attempt: the first is attempt 1 (normally `0s`).
    #[serde(with = "durations")]
    pub schedule: Vec<Duration>,
    /// Each delay is scaled by a random factor in `1 ± jitter`.
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let secs = [0, 5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400];
        RetryConfig { schedule: secs.iter().map(|s| Duration::from_secs(*s)).collect(), jitter: 0.2 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Attempts in flight, all connections together.
    pub concurrency: usize,
    /// Attempts in flight per connection unless the connection says otherwise.
    pub per_connection_concurrency: usize,
    /// How long a claimed delivery stays with its worker before it is due
    /// again. After a crash, deliveries that were in flight wait this long;
    /// it must outlast the longest attempt (`sandbox.wall`).
    #[serde(with = "duration")]
    pub lease: Duration,
    /// How often the scheduler looks for due deliveries when nothing wakes it.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// In-flight attempts get this long to finish on shutdown.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            concurrency: 64,
            per_connection_concurrency: 16,
            lease: Duration::from_secs(45),
            poll_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    pub max_body_bytes: usize,
    /// Events per second each workspace may emit (a token bucket holding one
    /// second's worth); unlimited when absent. Over it: 429 with Retry-After.
    pub rate_per_workspace: Option<f64>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig { max_body_bytes: 256 << 10, rate_per_workspace: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    pub days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { days: 30 }
    }
}

/// `[sandbox]`: what one connector invocation may spend. Enforced by
/// `runtime` (engine, store limits, budgets and caps); defined here with the
/// other sections so that `config` depends on nothing that reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    /// Linear memory cap per instance.
    pub memory_bytes: usize,
    /// Guest CPU budget (time waiting for HTTP is not counted).
    #[serde(with = "duration")]
    pub cpu: Duration,
    /// Wall-clock budget for the whole invocation.
    #[serde(with = "duration")]
    pub wall: Duration,
    /// `http.send` calls per invocation; the next one ends the invocation.
    pub max_requests: u32,
    pub max_request_body: usize,
    pub max_response_body: usize,
    /// Cap on each request's timeout.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Instances that may exist at once (the pooling allocator's size).
    pub max_concurrent_instances: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            memory_bytes: 32 << 20,
            cpu: Duration::from_millis(100),
            wall: Duration::from_secs(30),
            max_requests: 10,
            max_request_body: 1 << 20,
            max_response_body: 5 << 20,
            request_timeout: Duration::from_secs(10),
            max_concurrent_instances: 256,
        }
    }
}

/// `[log]`: how the server writes its log (to stderr).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: a level (`info`) or directives
    /// (`warn,switchboard=debug`). `SWITCHBOARD_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; colored only on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[metrics]`: `GET /metrics` is open unless a token is set; then it wants
/// `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub token: Option<String>,
}

/// `[alerts]`: with a workspace set, Switchboard emits its own events
/// (`switchboard.connection.paused`, `switchboard.connection.failing`) into
/// it, at most one per connection and kind per `window`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    pub workspace: Option<String>,
    /// Debounce and measuring window for `failing`.
    #[serde(with = "duration")]
    pub window: Duration,
    /// `failing` fires when failed / finished attempts in the window exceeds this…
    pub failure_ratio: f64,
    /// …over at least this many attempts.
    pub min_attempts: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig { workspace: None, window: Duration::from_secs(900), failure_ratio: 0.5, min_attempts: 10 }
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.retry.schedule.is_empty() {
            return bad("retry.schedule must list at least one delay");
        }
        if !(0.0..1.0).contains(&self.retry.jitter) {
            return bad("retry.jitter must be in [0, 1)");
        }
        if self.delivery.concurrency == 0 || self.delivery.per_connection_concurrency == 0 {
            return bad("delivery.concurrency and delivery.per_connection_concurrency must be at least 1");
        }
        if self.delivery.lease < self.sandbox.wall + Duration::from_secs(1) {
            return bad("delivery.lease must be at least sandbox.wall + 1s, so no attempt outlives its lease");
        }
        if self.ingest.rate_per_workspace.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return bad("ingest.rate_per_workspace must be positive");
        }
        if self.ingest.max_body_bytes < 1024 {
            return bad("ingest.max_body_bytes must be at least 1024");
        }
        self.store.validate().map_err(ConfigError::Invalid)
    }
}

/// Serde for `Duration` as friendly text such as `"250ms"`.
pub use crate::time::duration;

/// Serde for `Vec<Duration>`.
mod durations {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(ds: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(ds.len()))?;
        for d in ds {
            seq.serialize_element(&super::duration::format(d))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| super::duration::parse(t).map_err(D::Error::custom)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_durations() {
        assert_eq!(duration::parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration::parse("2h"), Ok(Duration::from_secs(7200)));
        assert!(duration::parse("soon").unwrap_err().contains("soon"));
    }
}
