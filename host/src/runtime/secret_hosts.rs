//! Where a connection's secrets may go. A secret is substituted only into a
//! request to a host the connection allows: the hosts of the URLs the
//! connection itself holds — in its settings (a webhook's `url`, a CRM's
//! `base_url` pointed at a proxy) or as a secret's value (a Slack incoming
//! webhook URL) — and the hosts the connector declares, unless it declares
//! any host (`*`, such as webhook): then only the connection's own. A
//! connector cannot carry a secret to a host of its choosing, whatever its
//! manifest claims; whoever configured the connection chose where its
//! credentials go.

use std::sync::Arc;

use serde_json::Value;

use super::ConnectorManifest;
use crate::egress::host_matches;
use crate::secrets::SecretSet;

/// Settings are searched this deep for URLs…
const MAX_DEPTH: usize = 4;
/// …and at most this many string values are looked at.
const MAX_VALUES: usize = 256;

/// The host patterns a connection with `settings` (JSON text) and `secrets`
/// lets its secrets reach.
pub fn secret_hosts(manifest: &ConnectorManifest, settings: &str, secrets: &SecretSet) -> Arc<[String]> {
    let mut hosts: Vec<String> = if manifest.allowed_hosts.iter().any(|h| h.trim() == "*") {
        Vec::new()
    } else {
        manifest.allowed_hosts.clone()
    };
    let mut budget = MAX_VALUES;
    if let Ok(settings) = serde_json::from_str::<Value>(settings) {
        collect(&settings, 0, &mut budget, &mut hosts);
    }
    for value in secrets.names().filter_map(|name| secrets.get(name)) {
        collect(&Value::String(value.to_string()), 0, &mut budget, &mut hosts);
    }
    hosts.sort();
    hosts.dedup();
    hosts.into()
}

/// True when a secret may be sent to `host`.
pub fn allows(patterns: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    patterns.iter().any(|p| host_matches(p, &host))
}

/// Why a request carrying a secret may not go to `host`; `None` when it may.
pub fn refusal(patterns: &[String], host: &str) -> Option<String> {
    if allows(patterns, host) {
        return None;
    }
    let allowed = if patterns.is_empty() { "no host".to_string() } else { patterns.join(", ") };
    Some(format!("a secret may not be sent to host `{host}`: this connection allows its secrets only to {allowed}"))
}

fn collect(value: &Value, depth: usize, budget: &mut usize, hosts: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::String(s) => {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            if let Ok(url) = url::Url::parse(s)
                && matches!(url.scheme(), "http" | "https")
                && let Some(host) = url.host_str()
            {
                // The `url` crate writes an IPv6 host in brackets; patterns
                // and the request check compare the bare address.
                let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
                hosts.push(host.to_ascii_lowercase());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, depth + 1, budget, hosts)),
        Value::Object(map) => map.values().for_each(|v| collect(v, depth + 1, budget, hosts)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> SecretSet {
        SecretSet::default()
    }

    #[test]
    fn a_url_held_as_a_secret_is_a_host_of_the_connection() {
        let secrets =
            SecretSet::new([("webhook_url".to_string(), "https://hooks.slack.com/services/T0/B0/x".to_string())]);
        let hosts = secret_hosts(&manifest(&["*"]), "{}", &secrets);
        assert_eq!(&*hosts, ["hooks.slack.com".to_string()]);
    }

    fn manifest(hosts: &[&str]) -> ConnectorManifest {
        ConnectorManifest {
            name: "t".into(),
            version: "1.0.0".into(),
            description: String::new(),
            settings_schema: serde_json::json!({}),
            secrets: Vec::new(),
            actions: Vec::new(),
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            default_rate_limit: None,
        }
    }

    #[test]
    fn a_connector_with_declared_hosts_sends_secrets_there_and_to_its_settings_urls() {
        let hosts = secret_hosts(&manifest(&["api.hubapi.com"]), r#"{"region": "eu"}"#, &none());
        assert!(allows(&hosts, "api.hubapi.com") && allows(&hosts, "API.hubapi.com."));
        assert!(!allows(&hosts, "evil.example"));
        // A base URL the connection points at a proxy is the connection's choice.
        let hosts = secret_hosts(&manifest(&["api.hubapi.com"]), r#"{"base_url": "http://127.0.0.1:9000"}"#, &none());
        assert!(allows(&hosts, "127.0.0.1") && allows(&hosts, "api.hubapi.com"));
    }

    #[test]
    fn an_any_host_connector_sends_secrets_only_to_the_configured_urls() {
        let settings =
            r#"{"url": "https://hooks.acme.test/in?x=1", "nested": {"backup": ["http://[::1]:9/"]}, "n": 3}"#;
        let hosts = secret_hosts(&manifest(&["*"]), settings, &none());
        assert_eq!(&*hosts, ["::1".to_string(), "hooks.acme.test".to_string()]);
        assert!(!allows(&hosts, "evil.example"));
        assert!(secret_hosts(&manifest(&["*"]), r#"{"note": "not a url"}"#, &none()).is_empty());
    }
}
