//! The service layer: every operation that changes state, one module per
//! resource, called alike by the API, the delivery worker, development mode
//! and the CLI. Operations check their own rules and answer [`OpError`];
//! choosing an HTTP status for it is the API's business (`api/error.rs`).

pub mod connections;
pub mod connectors;
pub mod deliveries;
pub mod preview;
pub mod releases;
pub mod replay;
pub mod rerun;
pub mod retention;
pub mod rules;
pub mod workspaces;

use crate::store::StoreError;

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    /// A value the caller sent breaks a rule; `field` is its JSON path.
    #[error("`{field}` {message}")]
    Invalid { field: String, message: String },
    /// The request is well formed but cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
    /// Refused for what is at `path` inside a value (a filter, a template);
    /// the message names the path already.
    #[error("{message}")]
    RefusedAt { path: String, message: String },
    /// The request conflicts with the current state (retry after changing it).
    #[error("{0}")]
    Conflict(String),
    /// Not now: the thing is busy (an attempt in flight) or about to happen anyway.
    #[error("{0}")]
    TooEarly(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealed data could not be opened (a wrong or changed master key).
    #[error("cannot open sealed secrets: {0}")]
    Sealed(String),
    /// A file the operation must write could not be written.
    #[error("cannot record {what}: {source}")]
    Disk {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl OpError {
    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        OpError::NotFound { what, id: id.into() }
    }
}

pub type Result<T, E = OpError> = std::result::Result<T, E>;
