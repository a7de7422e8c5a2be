//! [`Manifest`]: what a connector declares about itself, built fluently.

use serde_json::Value;

/// A secret the connection must (or may) hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    pub name: String,
    pub description: String,
    pub required: bool,
}

/// One action and the JSON Schema of its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub name: String,
    pub description: String,
    pub fields_schema: Value,
}

/// At most `requests` deliveries per `per_seconds`, per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

/// The connector's manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub settings_schema: Value,
    pub secrets: Vec<SecretSpec>,
    pub actions: Vec<Action>,
    pub allowed_hosts: Vec<String>,
    pub default_rate_limit: Option<RateLimit>,
}

impl Manifest {
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

    pub fn settings_schema(mut self, schema: Value) -> Self {
        self.settings_schema = schema;
        self
    }

    pub fn secret(mut self, name: &str, description: &str, required: bool) -> Self {
        self.secrets.push(SecretSpec { name: name.to_string(), description: description.to_string(), required });
        self
    }

    pub fn action(mut self, name: &str, description: &str, fields_schema: Value) -> Self {
        self.actions.push(Action { name: name.to_string(), description: description.to_string(), fields_schema });
        self
    }

    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_hosts.extend(hosts.into_iter().map(Into::into));
        self
    }

    pub fn rate_limit(mut self, requests: u32, per_seconds: u32) -> Self {
        self.default_rate_limit = Some(RateLimit { requests, per_seconds });
        self
    }
}
