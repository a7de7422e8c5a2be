//! [`Manifest`]: what a connector declares about itself, built fluently.

use serde_json::Value;

/// A secret the connection must (or may) hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The name a request refers to as `{{secret.NAME}}`.
    pub name: String,
    /// What to put there, for whoever sets up a connection.
    pub description: String,
    /// Whether a connection must hold it.
    pub required: bool,
}

/// One action and the JSON Schema of its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// What a rule names, e.g. `send_message`.
    pub name: String,
    /// What the action does.
    pub description: String,
    /// JSON Schema of the rule's rendered fields.
    pub fields_schema: Value,
}

/// At most `requests` deliveries per `per_seconds`, per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Deliveries allowed per window.
    pub requests: u32,
    /// The window, in seconds.
    pub per_seconds: u32,
}

/// The connector's manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The registry name: lower-case `[a-z0-9_-]`.
    pub name: String,
    /// Semver; connectors use `env!("CARGO_PKG_VERSION")`.
    pub version: String,
    /// One line on what the connector does.
    pub description: String,
    /// JSON Schema of a connection's settings.
    pub settings_schema: Value,
    /// The secrets a connection supplies.
    pub secrets: Vec<SecretSpec>,
    /// What a rule can ask for.
    pub actions: Vec<Action>,
    /// Where requests may go: exact names, `*.` wildcards, or `*`.
    pub allowed_hosts: Vec<String>,
    /// The per-connection limit unless a connection sets its own.
    pub default_rate_limit: Option<RateLimit>,
}

impl Manifest {
    /// A manifest with no settings, secrets, actions or hosts yet.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Manifest {
            name: name.to_string(),
            version: version.to_string(),
            description: description.to_string(),
            settings_schema: serde_json::json!({"type": "object"}),
            secrets: Vec::new(),
            actions: Vec::new(),
            allowed_hosts: Vec::new(),
            default_rate_limit: None,
        }
    }

    /// The JSON Schema of a connection's settings (default: any object).
    pub fn settings_schema(mut self, schema: Value) -> Self {
        self.settings_schema = schema;
        self
    }

    /// A secret every connection must hold.
    pub fn required_secret(self, name: &str, description: &str) -> Self {
        self.secret(name, description, true)
    }

    /// A secret a connection may hold; check with [`crate::Host::has_secret`]
    /// before using it.
    pub fn optional_secret(self, name: &str, description: &str) -> Self {
        self.secret(name, description, false)
    }

    fn secret(mut self, name: &str, description: &str, required: bool) -> Self {
        self.secrets.push(SecretSpec { name: name.to_string(), description: description.to_string(), required });
        self
    }

    /// An action and the JSON Schema of its fields.
    pub fn action(mut self, name: &str, description: &str, fields_schema: Value) -> Self {
        self.actions.push(Action { name: name.to_string(), description: description.to_string(), fields_schema });
        self
    }

    /// Add hosts requests may go to.
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_hosts.extend(hosts.into_iter().map(Into::into));
        self
    }

    /// At most `requests` deliveries per `per_seconds`, per connection, unless
    /// the connection says otherwise.
    pub fn rate_limit(mut self, requests: u32, per_seconds: u32) -> Self {
        self.default_rate_limit = Some(RateLimit { requests, per_seconds });
        self
    }
}
