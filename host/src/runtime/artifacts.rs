//! Compiling components, and the compiled-artifact cache that spares a
//! restart the compilation: a component compiled once is saved in the data
//! dir as `<sha256>-<engine hash>.cwasm` and deserialized next time.
//! Also the component's identity, [`sha256_hex`] of its bytes, which names
//! both the artifact and the build that ran an attempt.

use std::path::Path;
use std::sync::atomic::Ordering;

use wasmtime::component::Component;

use super::error::LoadError;
use super::{LoadedConnector, Runtime};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Runtime {
    /// `load`, reusing a compiled artifact from `artifacts` when this engine
    /// made one for these exact bytes, and saving one otherwise. Returns
    /// whether it compiled.
    pub async fn load_cached(&self, bytes: &[u8], artifacts: &Path) -> Result<(LoadedConnector, bool), LoadError> {
        // Compiling takes CPU for ~100 ms and the artifact cache is files:
        // both off the async workers.
        let (runtime, owned, artifacts) = (self.clone(), bytes.to_vec(), artifacts.to_path_buf());
        let (component, compiled) = tokio::task::spawn_blocking(move || runtime.compile_cached(&owned, &artifacts))
            .await
            .map_err(LoadError::CompilationStopped)??;
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
        // A missing artifact only costs the next start a compilation, so a
        // failure to save one is logged, not returned.
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
        self.inner.compiled.load(Ordering::Relaxed)
    }

    pub(super) fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        self.inner.compiled.fetch_add(1, Ordering::Relaxed);
        Component::new(&self.inner.engine, bytes).map_err(LoadError::NotAComponent)
    }

    /// SHA-256 of the component and this engine's compatibility hash, so an
    /// artifact is only read back by an engine that can run it (after a
    /// wasmtime upgrade, for one, the name changes and the bytes recompile).
    fn artifact_key(&self, bytes: &[u8]) -> String {
        use std::hash::{Hash, Hasher};
        let mut engine = std::collections::hash_map::DefaultHasher::new();
        self.inner.engine.precompile_compatibility_hash().hash(&mut engine);
        format!("{}-{:016x}", sha256_hex(bytes), engine.finish())
    }
}
