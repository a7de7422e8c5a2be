//! The sandbox: loads connector components and runs one invocation at a time
//! in a fresh, limited instance, returning a structured [`AttemptRecord`].
//!
//! One [`Runtime`] per process holds the engine (pooling allocator, epoch
//! ticker) and the linker (our imports + WASI p2, whose per-store context
//! grants nothing and whose clocks do not move: `wasi.rs`). Each loaded version is a [`LoadedConnector`] holding its
//! pre-instantiated component and manifest. Every invocation gets a new
//! `Store` with the memory cap, the CPU budget (epoch ticks, not counting
//! time waiting on the network), the wall-clock budget, the HTTP limits of
//! [`SandboxLimits`] and the per-invocation caps on host calls (`limits.rs`);
//! a trap, or a call past a cap, ends only that store.

mod bindings;
pub mod cache;
mod engine;
mod host_impl;
mod limits;
pub mod transport;
mod wasi;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

use crate::attempt::AttemptRecord;
use crate::egress::EgressPolicy;
use crate::outcome::{GuestFailure, GuestResult, decide};
use crate::secrets::{SecretSet, neutralize};
use bindings::{Connector as ConnectorWorld, ConnectorPre, types};
use cache::ConnectorCache;
pub use host_impl::Labels;
use host_impl::{InvocationIo, InvocationState};
pub use limits::SandboxLimits;
use limits::explain_trap;
use transport::Transport;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not implement the switchboard:connector world: {0}")]
    WrongWorld(String),
    #[error("describe failed: {0}")]
    Describe(String),
    #[error("invalid manifest: {0}")]
    Manifest(String),
}

/// A connector's manifest, in host terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSpec {
    pub name: String,
    pub description: String,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    pub name: String,
    pub description: String,
    pub fields_schema: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

impl ConnectorManifest {
    fn from_wit(m: types::Manifest) -> Result<Self, LoadError> {
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

/// Structural check of a JSON Schema: the keywords the host and the API
/// rely on have the right shapes. The error names the path of the fault.
fn check_schema(schema: &serde_json::Value, path: &str) -> Result<(), String> {
    use serde_json::Value;
    const TYPES: [&str; 7] = ["object", "array", "string", "number", "integer", "boolean", "null"];
    let obj = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(format!("{path} must be a JSON Schema (an object or a boolean)")),
    };
    let type_ok = |t: &Value| t.as_str().is_some_and(|t| TYPES.contains(&t));
    match obj.get("type") {
        None => {}
        Some(Value::Array(ts)) if !ts.is_empty() && ts.iter().all(type_ok) => {}
        Some(t) if type_ok(t) => {}
        Some(t) => return Err(format!("{path}.type: {t} is not a JSON Schema type")),
    }
    if let Some(props) = obj.get("properties") {
        let props = props.as_object().ok_or_else(|| format!("{path}.properties must be an object"))?;
        for (name, sub) in props {
            check_schema(sub, &format!("{path}.properties.{name}"))?;
        }
    }
    if let Some(required) = obj.get("required")
        && !required.as_array().is_some_and(|r| r.iter().all(Value::is_string))
    {
        return Err(format!("{path}.required must be an array of property names"));
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = obj.get(key) {
            check_schema(sub, &format!("{path}.{key}"))?;
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(subs) = obj.get(key) {
            let subs = subs.as_array().ok_or_else(|| format!("{path}.{key} must be an array of schemas"))?;
            for (i, sub) in subs.iter().enumerate() {
                check_schema(sub, &format!("{path}.{key}[{i}]"))?;
            }
        }
    }
    if obj.get("enum").is_some_and(|e| !e.is_array()) {
        return Err(format!("{path}.enum must be an array"));
    }
    for key in ["pattern", "format", "description", "title"] {
        if obj.get(key).is_some_and(|v| !v.is_string()) {
            return Err(format!("{path}.{key} must be a string"));
        }
    }
    Ok(())
}

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

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
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

    /// Compile and link a component, then run its `describe` in the sandbox.
    pub async fn load(&self, bytes: &[u8]) -> Result<LoadedConnector, LoadError> {
        let component = self.compile(bytes)?;
        self.load_component(component, sha256_hex(bytes)).await
    }

    /// `load`, reusing a compiled artifact from `artifacts` when this engine
    /// made one for these exact bytes, and saving one otherwise. Returns
    /// whether it compiled.
    pub async fn load_cached(&self, bytes: &[u8], artifacts: &Path) -> Result<(LoadedConnector, bool), LoadError> {
        // Compiling takes CPU for ~100 ms and the artifact cache is files:
        // both off the async workers.
        let (runtime, owned, artifacts) = (self.clone(), bytes.to_vec(), artifacts.to_path_buf());
        let (component, compiled) = tokio::task::spawn_blocking(move || runtime.compile_cached(&owned, &artifacts))
            .await
            .map_err(|e| LoadError::NotAComponent(format!("compilation stopped: {e}")))??;
        let sha256 = sha256_hex(bytes);
        Ok((self.load_component(component, sha256).await?, compiled))
    }

    fn compile_cached(&self, bytes: &[u8], artifacts: &Path) -> Result<(Component, bool), LoadError> {
        let path = artifacts.join(format!("{}.cwasm", self.artifact_key(bytes)));
        if path.exists() {
            // SAFETY: `deserialize_file` trusts its input to be an artifact
            // this engine configuration produced. Only this host writes the
            // data dir's artifacts (named by the component's SHA-256 and the
            // engine's compatibility hash), after compiling them itself.
            #[allow(unsafe_code)]
            let cached = unsafe { Component::deserialize_file(&self.inner.engine, &path) };
            match cached {
                Ok(component) => return Ok((component, false)),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "compiled artifact unusable; recompiling"),
            }
        }
        let component = self.compile(bytes)?;
        if let Ok(serialized) = component.serialize() {
            let tmp = path.with_extension("tmp");
            let written = std::fs::create_dir_all(artifacts)
                .and_then(|()| std::fs::write(&tmp, serialized))
                .and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "cannot save the compiled artifact");
            }
        }
        Ok((component, true))
    }

    /// Components this process compiled (artifact-cache misses included).
    pub fn compiled_count(&self) -> u64 {
        self.inner.compiled.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        self.inner.compiled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Component::new(&self.inner.engine, bytes).map_err(|e| LoadError::NotAComponent(format!("{e:#}")))
    }

    /// SHA-256 of the component and this engine's compatibility hash.
    fn artifact_key(&self, bytes: &[u8]) -> String {
        use std::hash::{Hash, Hasher};
        let mut engine = std::collections::hash_map::DefaultHasher::new();
        self.inner.engine.precompile_compatibility_hash().hash(&mut engine);
        format!("{}-{:016x}", sha256_hex(bytes), engine.finish())
    }

    /// Link an already compiled component (whose bytes hash to `sha256`)
    /// and read its manifest.
    pub async fn load_component(&self, component: Component, sha256: String) -> Result<LoadedConnector, LoadError> {
        let instance_pre =
            self.inner.linker.instantiate_pre(&component).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = ConnectorPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let mut store =
            self.new_store(Labels::default(), Arc::new(SecretSet::default()), String::new(), Arc::new([]), unix_now());
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
    pub async fn validate(&self, connector: &LoadedConnector, settings: &str) -> Result<Result<(), String>, String> {
        let labels = Labels {
            connector: connector.manifest.name.clone(),
            version: connector.manifest.version.clone(),
            ..Labels::default()
        };
        let mut store = self.new_store(
            labels,
            Arc::new(SecretSet::default()),
            String::new(),
            connector.allowed_hosts.clone(),
            unix_now(),
        );
        let result = tokio::time::timeout(self.inner.limits.wall, async {
            let instance = connector.pre.instantiate_async(&mut store).await?;
            instance.call_validate(&mut store, settings).await
        })
        .await;
        match result {
            Err(_) => Err(format!("validate did not finish within {:?}", self.inner.limits.wall)),
            Ok(Err(e)) => Err(explain_trap(&e, &store)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Run one delivery attempt in a fresh instance. Never panics on guest
    /// behaviour: every failure becomes an outcome in the record.
    pub async fn invoke(&self, connector: &LoadedConnector, inv: Invocation, labels: Labels) -> AttemptRecord {
        let started_at = now_rfc3339();
        let started = Instant::now();
        // One reading for both `event.attempt-time` and the guest's frozen
        // WASI wall clock, so the two always agree.
        let attempt_time = unix_now();
        let mut store = self.new_store(
            labels,
            inv.secrets.clone(),
            inv.cache_scope.clone(),
            connector.allowed_hosts.clone(),
            attempt_time,
        );
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
            Ok(Ok(Err(f))) => GuestResult::Failed(guest_failure(f)),
        };
        finish(connector, inv.attempt, started_at, started, guest, store.into_data())
    }

    fn new_store(
        &self,
        labels: Labels,
        secrets: Arc<SecretSet>,
        cache_scope: String,
        allowed_hosts: Arc<[String]>,
        attempt_time: u64,
    ) -> Store<InvocationState> {
        let io = InvocationIo {
            transport: self.inner.transport.clone(),
            egress: self.inner.egress.clone(),
            allowed_hosts,
            secrets,
            cache: self.inner.cache.clone(),
            cache_scope,
            limits: self.inner.limits.clone(),
            labels,
        };
        let mut store = Store::new(&self.inner.engine, InvocationState::new(io, attempt_time));
        store.limiter(|s| &mut s.limits);
        limits::charge_cpu(&mut store, self.inner.limits.cpu);
        store
    }
}

fn guest_failure(f: types::Failure) -> GuestFailure {
    match f {
        types::Failure::Retryable(r) => GuestFailure::Retryable { message: r.message, after_ms: r.after_ms },
        types::Failure::RateLimited(r) => GuestFailure::RateLimited { message: r.message, after_ms: r.after_ms },
        types::Failure::Permanent(m) => GuestFailure::Permanent(m),
        types::Failure::Auth(m) => GuestFailure::Auth(m),
        types::Failure::InvalidFields(m) => GuestFailure::InvalidFields(m),
    }
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

fn finish(
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

/// Now, in whole Unix seconds.
fn unix_now() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Millisecond).unwrap_or_else(|_| jiff::Timestamp::now()).to_string()
}

/// One instance reused across invocations. **Benchmarks only**: production
/// never reuses an instance, because guest state would leak between
/// deliveries and a trapped instance is unusable.
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
        let mut store =
            self.new_store(Labels::default(), secrets, "bench".into(), connector.allowed_hosts.clone(), unix_now());
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

#[cfg(test)]
mod schema_tests {
    use serde_json::json;

    use super::check_schema;

    #[test]
    fn schemas_with_wrong_shapes_are_named_by_path() {
        assert_eq!(check_schema(&json!({"type": "object", "properties": {"url": {"type": "string"}}}), "s"), Ok(()));
        assert_eq!(check_schema(&json!(true), "s"), Ok(()));
        let err = |v| check_schema(&v, "settings-schema").unwrap_err();
        assert!(
            err(json!({"properties": {"url": {"type": "url"}}})).starts_with("settings-schema.properties.url.type")
        );
        assert!(err(json!({"required": "url"})).contains("settings-schema.required"));
        assert!(err(json!({"anyOf": [{"type": 3}]})).contains("settings-schema.anyOf[0].type"));
        assert!(err(json!([1])).contains("must be a JSON Schema"));
    }
}
