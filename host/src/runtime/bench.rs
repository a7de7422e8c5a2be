//! **Benchmarks only**: one instance reused across invocations, so
//! `benches/invocation.rs` can measure a call apart from instantiation.
//! Production never reuses an instance, because guest state would leak
//! between deliveries and a trapped instance is unusable; nothing outside
//! the benchmarks calls this, and it is hidden from the docs.

use std::sync::Arc;

use wasmtime::Store;

use super::bindings::Connector as ConnectorWorld;
use super::host_impl::{InvocationState, Labels};
use super::{Invocation, LoadedConnector, Runtime, wit_event};
use crate::secrets::SecretSet;
use crate::time::unix_now;

/// One instance reused across invocations (see the module docs).
#[doc(hidden)]
pub struct ReusedInstance {
    store: Store<InvocationState>,
    instance: ConnectorWorld,
}

impl Runtime {
    #[doc(hidden)]
    pub async fn instantiate_for_benchmark(
        &self,
        connector: &LoadedConnector,
        secrets: Arc<SecretSet>,
    ) -> anyhow::Result<ReusedInstance> {
        let grants = super::Grants {
            secrets,
            cache: self.inner.cache.clone(),
            cache_scope: "bench".into(),
            allowed_hosts: connector.allowed_hosts.clone(),
            secret_hosts: connector.allowed_hosts.clone(),
            transport: self.inner.transport.clone(),
        };
        let mut store = self.new_store(Labels::default(), unix_now(), grants);
        let instance = connector.pre.instantiate_async(&mut store).await?;
        Ok(ReusedInstance { store, instance })
    }
}

impl ReusedInstance {
    #[doc(hidden)]
    pub async fn deliver(&mut self, inv: &Invocation) -> anyhow::Result<bool> {
        self.store.data_mut().reset_for_reuse();
        let event = wit_event(inv, unix_now());
        let r = self.instance.call_deliver(&mut self.store, &event, &inv.action, &inv.fields, &inv.settings).await?;
        Ok(r.is_ok())
    }
}
