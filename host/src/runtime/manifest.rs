//! What a connector declares about itself, in host terms: the
//! [`ConnectorManifest`] its `describe` returns, and the checks it must pass
//! before the version is usable (name, semver, schemas, at least one action,
//! a sane default rate limit). The rest of the host reads manifests only
//! through these types, never through the generated WIT bindings.

use serde::{Deserialize, Serialize};

use super::bindings::types;
use super::error::LoadError;
use super::schema::check_schema;

/// A connector's manifest, in host terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectorManifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub settings_schema: serde_json::Value,
    pub secrets: Vec<SecretSpec>,
    pub actions: Vec<ActionSpec>,
    pub allowed_hosts: Vec<String>,
    pub default_rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretSpec {
    pub name: String,
    pub description: String,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionSpec {
    pub name: String,
    pub description: String,
    pub fields_schema: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

impl ConnectorManifest {
    /// The manifest `describe` returned, checked; the error names the fault.
    pub(super) fn from_wit(m: types::Manifest) -> Result<Self, LoadError> {
        let name_ok = !m.name.is_empty()
            && m.name.len() <= 64
            && m.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(LoadError::Manifest(format!("name `{}` must match [a-z0-9_-]{{1,64}}", m.name)));
        }
        semver::Version::parse(&m.version)
            .map_err(|e| LoadError::Manifest(format!("version `{}` is not semver: {e}", m.version)))?;
        let schema = |what: &str, text: &str| {
            let value = serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| LoadError::Manifest(format!("{what} is not JSON: {e}")))?;
            check_schema(&value, what).map_err(LoadError::Manifest)?;
            Ok::<_, LoadError>(value)
        };
        let settings_schema = schema("settings-schema", &m.settings_schema)?;
        if m.actions.is_empty() {
            return Err(LoadError::Manifest("the manifest declares no actions".into()));
        }
        let mut actions = Vec::with_capacity(m.actions.len());
        for a in m.actions {
            let fields_schema = schema(&format!("fields-schema of action `{}`", a.name), &a.fields_schema)?;
            actions.push(ActionSpec { name: a.name, description: a.description, fields_schema });
        }
        if let Some(r) = &m.default_rate_limit
            && (r.requests == 0 || r.per_seconds == 0)
        {
            return Err(LoadError::Manifest("default-rate-limit must have non-zero requests and per-seconds".into()));
        }
        Ok(ConnectorManifest {
            name: m.name,
            version: m.version,
            description: m.description,
            settings_schema,
            secrets: m
                .secrets
                .into_iter()
                .map(|s| SecretSpec { name: s.name, description: s.description, required: s.required })
                .collect(),
            actions,
            allowed_hosts: m.allowed_hosts,
            default_rate_limit: m
                .default_rate_limit
                .map(|r| RateLimit { requests: r.requests, per_seconds: r.per_seconds }),
        })
    }
}
