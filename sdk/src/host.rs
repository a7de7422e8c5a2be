//! [`Host`]: the connector's only way out of the sandbox.

use crate::{Request, Response, SendError};

/// How a secret's text becomes HMAC key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// The secret's UTF-8 bytes.
    Utf8,
    /// Standard base64.
    Base64,
    /// Standard Webhooks: `whsec_` prefix stripped, then base64.
    StandardWebhooks,
}

/// Log levels, mapped to `tracing` levels by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Step-by-step detail.
    Trace,
    /// Detail for whoever debugs the connector.
    Debug,
    /// Something worth knowing, e.g. a cached id refused and looked up again.
    Info,
    /// Something went wrong but the delivery carries on.
    Warn,
    /// Something went wrong.
    Error,
}

/// What the host does for a connector. In a component these are the WIT
/// imports; in native tests, [`crate::testing::MockHost`].
pub trait Host {
    /// Execute one HTTP request (secrets substituted by the host).
    fn send(&self, request: &Request) -> Result<Response, SendError>;
    /// A cached value private to this connection.
    fn cache_get(&self, key: &str) -> Option<String>;
    /// Cache a value for `ttl_seconds` (0 = the host's maximum).
    fn cache_set(&self, key: &str, value: &str, ttl_seconds: u32);
    /// HMAC-SHA256 keyed by the connection's secret `secret_name`.
    fn hmac_sha256(&self, secret_name: &str, encoding: KeyEncoding, data: &[u8]) -> Result<Vec<u8>, String>;
    /// Whether the connection holds a secret called `name` (never its value).
    fn has_secret(&self, name: &str) -> bool;
    /// Write a diagnostic line to the host's log.
    fn log(&self, level: Level, message: &str);
}
