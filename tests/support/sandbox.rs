//! A sandbox runtime on the real network stack, and invocation builders.

use std::sync::Arc;

use serde_json::Value;
use switchboard::egress::EgressPolicy;
use switchboard::runtime::cache::MemoryCache;
use switchboard::runtime::transport::ReqwestTransport;
use switchboard::runtime::{EventData, Invocation, LoadedConnector, Runtime, SandboxLimits};
use switchboard::secrets::SecretSet;

/// A runtime with default limits; `allow_private` lets connectors reach the
/// test's loopback receivers.
pub fn runtime(allow_private: bool) -> Runtime {
    // Operators may allow extra hosts; the suite allows loopback names so the
    // vendor connectors can reach the local fakes through `base_url`.
    let egress = Arc::new(EgressPolicy {
        allow_private_networks: allow_private,
        allow_hosts: vec!["127.0.0.1".into(), "localhost".into()],
    });
    let transport = ReqwestTransport::new(egress.clone()).expect("http client");
    let limits = SandboxLimits { max_concurrent_instances: 16, ..SandboxLimits::default() };
    Runtime::new(limits, egress, Arc::new(transport), Arc::new(MemoryCache::default())).expect("runtime")
}

pub async fn load(runtime: &Runtime, package: &str) -> LoadedConnector {
    runtime.load(&super::build::component(package)).await.unwrap_or_else(|e| panic!("load {package}: {e}"))
}

/// An invocation of the seed-like event.
pub fn invocation(action: &str, fields: Value, settings: Value, secrets: &[(&str, &str)]) -> Invocation {
    Invocation {
        event: EventData {
            id: "evt_01JTEST".into(),
            delivery_id: "dlv_01JTEST".into(),
            name: "page.completed".into(),
            resource: "onboarding_sequence".into(),
            resource_id: Some("workspace-setup".into()),
            payload: r#"{"user_id":"usr_5012","email":"alex@northstar.io","sequence_step":3}"#.into(),
            created_at: "2026-03-21T15:06:00Z".into(),
            workspace: "ws_test".into(),
        },
        action: action.into(),
        fields: fields.to_string(),
        settings: settings.to_string(),
        secrets: Arc::new(SecretSet::new(secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())))),
        cache_scope: "conn_test".into(),
        attempt: 1,
    }
}

/// A `validate` answer as the connector gave it: `Err` holds its words when
/// it refused the settings; a validate that did not answer fails the test.
pub fn rejection(answer: Result<(), switchboard::runtime::ValidateError>) -> Result<(), String> {
    match answer {
        Ok(()) => Ok(()),
        Err(switchboard::runtime::ValidateError::Rejected(words)) => Err(words),
        Err(failed) => panic!("validate did not answer: {failed}"),
    }
}
