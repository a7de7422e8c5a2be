//! The sandbox's lifecycle: one [`Runtime`] per process loads connector
//! components and runs one invocation at a time in a fresh, limited
//! instance, returning a structured [`AttemptRecord`].
//!
//! The runtime holds the engine (pooling allocator, epoch ticker:
//! `engine.rs`) and the linker (our imports, `host_impl.rs`, + WASI p2, whose
//! per-store context grants nothing and whose clocks do not move: `wasi.rs`).
//! Loading compiles a component (or reuses its compiled artifact:
//! `artifacts.rs`), links it and runs its `describe`, whose answer is checked
//! as a [`ConnectorManifest`] (`manifest.rs`); the result is a
//! [`LoadedConnector`], pre-instantiated. Every invocation gets a new `Store`
//! with the memory cap, the CPU budget (epoch ticks, not counting time
//! waiting on the network), the wall-clock budget, the HTTP limits of
//! [`SandboxLimits`] and the per-invocation caps on host calls (`limits.rs`);
//! a trap, or a call past a cap, ends only that store. How the invocation
//! ended is judged in `verdict.rs` (the outcome code) and written up here as
//! the attempt record.
//!
//! Other files: `bindings.rs` (the generated WIT code), `transport.rs` (how
//! requests leave), `cache.rs` (the `cache` import's storage), `bench.rs`
//! (instance reuse, for benchmarks only), `error.rs` ([`LoadError`]),
//! `schema.rs` (the manifest's JSON Schema check).

mod artifacts;
mod bench;
mod bindings;
pub mod cache;
mod engine;
mod error;
mod host_impl;
mod limits;
mod manifest;
pub mod recorded;
mod schema;
mod secret_hosts;
pub mod transport;
mod verdict;
mod wasi;

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

use crate::attempt::AttemptRecord;
use crate::egress::EgressPolicy;
use crate::secrets::{SecretSet, neutralize};
use crate::time::unix_now;
use bindings::{Connector as ConnectorWorld, ConnectorPre, types};
use cache::ConnectorCache;
use host_impl::{InvocationIo, InvocationState};
use limits::explain_trap;
use transport::Transport;

// The public surface, at the paths the rest of the host and the tests use.
pub use artifacts::sha256_hex;
#[doc(hidden)]
pub use bench::ReusedInstance;
// Defined with the rest of the configuration (`[sandbox]`), so that `config`
// needs nothing from the sandbox; re-exported here, where the limits apply.
pub use crate::config::SandboxLimits;
// Time lives in `crate::time`; the old path keeps working for now.
pub use crate::time::now_rfc3339;
pub use error::{LoadError, ValidateError};
pub use host_impl::Labels;
pub use manifest::{ActionSpec, ConnectorManifest, RateLimit, SecretSpec};
pub use verdict::{Decision, GuestFailure, GuestResult, Violation, decide};

/// A loaded, ready-to-run connector version.
#[derive(Clone)]
pub struct LoadedConnector {
    pre: ConnectorPre<InvocationState>,
    manifest: Arc<ConnectorManifest>,
    allowed_hosts: Arc<[String]>,
    /// SHA-256 (hex) of the component's bytes: which build ran an attempt.
    sha256: Arc<str>,
}

impl std::fmt::Debug for LoadedConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedConnector")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .finish()
    }
}

impl LoadedConnector {
    pub fn manifest(&self) -> &ConnectorManifest {
        &self.manifest
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// The event as a connector receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventData {
    pub id: String,
    pub delivery_id: String,
    pub name: String,
    pub resource: String,
    pub resource_id: Option<String>,
    /// JSON text.
    pub payload: String,
    pub created_at: String,
    pub workspace: String,
}

/// One invocation's input.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub event: EventData,
    pub action: String,
    /// Rendered rule fields, JSON text.
    pub fields: String,
    /// Connection settings, JSON text.
    pub settings: String,
    pub secrets: Arc<SecretSet>,
    /// Namespace of the `cache` import: the connection id.
    pub cache_scope: String,
    /// 1-based attempt number.
    pub attempt: u32,
}

/// The sandbox runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    /// Components compiled by this process (not read from the artifact cache).
    compiled: std::sync::atomic::AtomicU64,
    engine: Engine,
    linker: Linker<InvocationState>,
    limits: Arc<SandboxLimits>,
    egress: Arc<EgressPolicy>,
    transport: Arc<dyn Transport>,
    cache: Arc<dyn ConnectorCache>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("limits", &self.inner.limits).finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new(
        limits: SandboxLimits,
        egress: Arc<EgressPolicy>,
        transport: Arc<dyn Transport>,
        cache: Arc<dyn ConnectorCache>,
    ) -> anyhow::Result<Self> {
        let engine = engine::build_engine(&limits)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        ConnectorWorld::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                compiled: std::sync::atomic::AtomicU64::new(0),
                engine,
                linker,
                limits: Arc::new(limits),
                egress,
                transport,
                cache,
            }),
        })
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.inner.limits
    }

    /// The `cache` import's storage.
    pub fn cache(&self) -> &Arc<dyn ConnectorCache> {
        &self.inner.cache
    }

    /// Compile and link a component, then run its `describe` in the sandbox.
    pub async fn load(&self, bytes: &[u8]) -> Result<LoadedConnector, LoadError> {
        let component = self.compile(bytes)?;
        self.load_component(component, sha256_hex(bytes)).await
    }

    /// Link an already compiled component (whose bytes hash to `sha256`)
    /// and read its manifest.
    pub async fn load_component(&self, component: Component, sha256: String) -> Result<LoadedConnector, LoadError> {
        let instance_pre = self.inner.linker.instantiate_pre(&component).map_err(LoadError::WrongWorld)?;
        let pre = ConnectorPre::new(instance_pre).map_err(LoadError::WrongWorld)?;
        let mut store = self.new_store(Labels::default(), unix_now(), self.no_grants(Arc::new([])));
        let described = tokio::time::timeout(self.inner.limits.wall, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        })
        .await;
        let manifest = match described {
            Err(_) => return Err(LoadError::Describe(format!("did not finish within {:?}", self.inner.limits.wall))),
            Ok(Err(e)) => return Err(LoadError::Describe(explain_trap(&e, &store))),
            Ok(Ok(m)) => ConnectorManifest::from_wit(m)?,
        };
        let allowed_hosts: Arc<[String]> = manifest.allowed_hosts.clone().into();
        Ok(LoadedConnector { pre, manifest: Arc::new(manifest), allowed_hosts, sha256: sha256.into() })
    }

    /// Run the connector's `validate` on settings (JSON text).
    pub async fn validate(&self, connector: &LoadedConnector, settings: &str) -> Result<(), ValidateError> {
        let labels = Labels {
            connector: connector.manifest.name.clone(),
            version: connector.manifest.version.clone(),
            ..Labels::default()
        };
        let mut store = self.new_store(labels, unix_now(), self.no_grants(connector.allowed_hosts.clone()));
        let result = tokio::time::timeout(self.inner.limits.wall, async {
            let instance = connector.pre.instantiate_async(&mut store).await?;
            instance.call_validate(&mut store, settings).await
        })
        .await;
        match result {
            Err(_) => {
                Err(ValidateError::Failed(format!("validate did not finish within {:?}", self.inner.limits.wall)))
            }
            Ok(Err(e)) => Err(ValidateError::Failed(explain_trap(&e, &store))),
            Ok(Ok(r)) => r.map_err(ValidateError::Rejected),
        }
    }

    /// Run one delivery attempt in a fresh instance. Never panics on guest
    /// behaviour: every failure becomes an outcome in the record.
    #[tracing::instrument(name = "invoke", skip_all, fields(connector = %labels.connector, version = %labels.version))]
    pub async fn invoke(&self, connector: &LoadedConnector, inv: Invocation, labels: Labels) -> AttemptRecord {
        self.invoke_via(connector, inv, labels, self.inner.transport.clone(), self.inner.cache.clone()).await
    }

    /// [`Runtime::invoke`], with requests leaving through `transport`
    /// instead of the network and the `cache` import answered by `cache`
    /// (a re-run answers from recorded responses and keeps its cache writes).
    pub async fn invoke_via(
        &self,
        connector: &LoadedConnector,
        inv: Invocation,
        labels: Labels,
        transport: Arc<dyn Transport>,
        cache: Arc<dyn ConnectorCache>,
    ) -> AttemptRecord {
        let started_at = now_rfc3339();
        let started = Instant::now();
        // One reading for both `event.attempt-time` and the guest's frozen
        // WASI wall clock, so the two always agree.
        let attempt_time = unix_now();
        let grants = Grants {
            secrets: inv.secrets.clone(),
            cache,
            cache_scope: inv.cache_scope.clone(),
            allowed_hosts: connector.allowed_hosts.clone(),
            secret_hosts: secret_hosts::secret_hosts(&connector.manifest, &inv.settings, &inv.secrets),
            transport,
        };
        let mut store = self.new_store(labels, attempt_time, grants);
        let event = wit_event(&inv, attempt_time);
        let result = tokio::time::timeout(self.inner.limits.wall, async {
            let instance = connector.pre.instantiate_async(&mut store).await?;
            instance
                .call_deliver(&mut store, &event, &inv.action, &neutralize(&inv.fields), &neutralize(&inv.settings))
                .await
        })
        .await;
        let guest = match result {
            Err(_) => GuestResult::Crashed(format!("exceeded the wall-clock budget of {:?}", self.inner.limits.wall)),
            Ok(Err(e)) => GuestResult::Crashed(explain_trap(&e, &store)),
            Ok(Ok(Ok(summary))) => GuestResult::Ok(summary),
            Ok(Ok(Err(f))) => GuestResult::Failed(f.into()),
        };
        record(connector, inv.attempt, started_at, started, guest, store.into_data())
    }

    /// What a call with no connection behind it (`describe`, `validate`)
    /// is granted: no secrets, no cache scope.
    fn no_grants(&self, allowed_hosts: Arc<[String]>) -> Grants {
        Grants {
            secrets: Arc::new(SecretSet::default()),
            cache: self.inner.cache.clone(),
            cache_scope: String::new(),
            allowed_hosts,
            secret_hosts: Arc::new([]),
            transport: self.inner.transport.clone(),
        }
    }

    fn new_store(&self, labels: Labels, attempt_time: u64, g: Grants) -> Store<InvocationState> {
        let io = InvocationIo {
            transport: g.transport,
            secret_hosts: g.secret_hosts,
            egress: self.inner.egress.clone(),
            allowed_hosts: g.allowed_hosts,
            secrets: g.secrets,
            cache: g.cache,
            cache_scope: g.cache_scope,
            limits: self.inner.limits.clone(),
            labels,
        };
        let mut store = Store::new(&self.inner.engine, InvocationState::new(io, attempt_time));
        store.limiter(|s| &mut s.limits);
        limits::charge_cpu(&mut store, self.inner.limits.cpu);
        store
    }
}

/// What one invocation's imports may use: the connection's secrets and the
/// hosts they may go to, its cache, the hosts it may reach, and where its
/// requests go.
struct Grants {
    secrets: Arc<SecretSet>,
    cache: Arc<dyn ConnectorCache>,
    cache_scope: String,
    allowed_hosts: Arc<[String]>,
    secret_hosts: Arc<[String]>,
    transport: Arc<dyn Transport>,
}

/// The event as the guest sees it: everything that came from the emitter
/// has its secret placeholders defused (see `secrets::neutralize`).
fn wit_event(inv: &Invocation, attempt_time: u64) -> types::Event {
    let defuse = |s: &str| neutralize(s).into_owned();
    types::Event {
        id: inv.event.id.clone(),
        delivery_id: inv.event.delivery_id.clone(),
        name: defuse(&inv.event.name),
        resource: defuse(&inv.event.resource),
        resource_id: inv.event.resource_id.as_deref().map(defuse),
        payload: defuse(&inv.event.payload),
        created_at: inv.event.created_at.clone(),
        workspace: inv.event.workspace.clone(),
        attempt: inv.attempt,
        attempt_time,
    }
}

/// The attempt record of a finished invocation: the decision on what the
/// guest returned and what its store saw, and everything the store recorded.
fn record(
    connector: &LoadedConnector,
    n: u32,
    started_at: String,
    started: Instant,
    guest: GuestResult,
    mut state: InvocationState,
) -> AttemptRecord {
    let secrets = state.io.secrets.clone();
    let decision = decide(guest, state.violation.as_ref(), &state.steps);
    let manifest = &connector.manifest;
    AttemptRecord {
        connector: manifest.name.clone(),
        connector_version: manifest.version.clone(),
        component_sha256: Some(connector.sha256.to_string()),
        n,
        started_at,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        outcome: decision.outcome,
        // Guest-authored text could only hold a secret it was handed by a
        // scrubbed response, but scrub anyway: the record must never hold one.
        error: decision.error.map(|e| secrets.scrub_str(&e)),
        summary: decision.summary.map(|s| secrets.scrub_str(&s)),
        retry_after_ms: decision.retry_after_ms,
        logs: state.take_logs(),
        steps: state.steps,
    }
}
