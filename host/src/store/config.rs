//! `[store]`: which backend holds the data, where, and how long a caller
//! waits for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DatabaseUrl, Engine};

/// Where the data lives: an embedded engine in the data dir, or PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Fjall,
    Sled,
    Postgres,
}

impl Backend {
    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Fjall => "fjall",
            Backend::Sled => "sled",
            Backend::Postgres => "postgres",
        }
    }

    /// The embedded engine, for the backends that are one.
    pub fn engine(self) -> Option<Engine> {
        match self {
            Backend::Fjall => Some(Engine::Fjall),
            Backend::Sled => Some(Engine::Sled),
            Backend::Postgres => None,
        }
    }

    /// Whether several nodes may share it.
    pub fn is_shared(self) -> bool {
        self == Backend::Postgres
    }
}

/// `[store]`: which backend, and how long a caller waits for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub backend: Backend,
    /// A store call that has not answered by then fails as unavailable
    /// (ingest answers 503 with Retry-After) instead of hanging.
    #[serde(with = "crate::time::duration")]
    pub timeout: Duration,
    /// Block cache of the embedded engine.
    pub cache_bytes: u64,
    /// The PostgreSQL database (`postgres://user:password@host:port/db`),
    /// for `backend = "postgres"`. Never shown: see [`DatabaseUrl`].
    pub url: Option<DatabaseUrl>,
    /// Connections the PostgreSQL backend keeps at most (one of them
    /// listens for other nodes' work signals).
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Fjall,
            timeout: Duration::from_secs(5),
            cache_bytes: 32 << 20,
            url: None,
            max_connections: 16,
        }
    }
}

impl StoreConfig {
    /// What `Config::load` checks of `[store]`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.timeout.is_zero() {
            return Err("store.timeout must be more than 0s".into());
        }
        match (self.backend, &self.url) {
            (Backend::Postgres, None) => Err("store.url is required with store.backend = \"postgres\"".into()),
            (Backend::Postgres, Some(_)) if self.max_connections < 2 => {
                Err("store.max_connections must be at least 2 (one listens for other nodes' work)".into())
            }
            (Backend::Fjall | Backend::Sled, Some(_)) => {
                Err("store.url is only for store.backend = \"postgres\"".into())
            }
            _ => Ok(()),
        }
    }
}
