//! Why a component could not be loaded (the one error of [`Runtime::load`]
//! and its variants `load_cached`, `load_component`), and why settings did
//! not pass [`Runtime::validate`].
//!
//! Callers show only the message (the API's 422 body, the CLI's line, the
//! operator's log), so each message carries its cause's text; the cause is
//! also kept as the `source` where there is one, for callers that walk it.
//!
//! [`Runtime::load`]: super::Runtime::load
//! [`Runtime::validate`]: super::Runtime::validate

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid WebAssembly component: {0:#}")]
    NotAComponent(#[source] wasmtime::Error),
    /// The blocking task that compiles the component panicked or was
    /// cancelled (the process is shutting down).
    #[error("not a valid WebAssembly component: compilation stopped: {0}")]
    CompilationStopped(#[source] tokio::task::JoinError),
    #[error("the component does not implement the switchboard:connector world: {0:#}")]
    WrongWorld(#[source] wasmtime::Error),
    /// The sandbox's own sentence for why `describe` did not answer (a trap,
    /// a budget): the guest's failure is explained, not forwarded.
    #[error("describe failed: {0}")]
    Describe(String),
    #[error("invalid manifest: {0}")]
    Manifest(String),
}

/// Why settings did not pass a connector's `validate`.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The connector read the settings and refused them; its own words.
    #[error("{0}")]
    Rejected(String),
    /// `validate` did not answer: a trap or a budget, in the sandbox's words.
    #[error("{0}")]
    Failed(String),
}
