//! Switchboard: a self-hosted event router that delivers each event to its
//! destinations through sandboxed WebAssembly connectors.
//!
//! Module map: [`server`] starts everything from a [`config`]; [`app`] is the
//! shared state; [`api`] is the HTTP surface; [`ops`] is every state change a
//! person or a worker asks for; [`routing`] matches rules and renders fields;
//! [`store`] is durable state, holding the records of [`model`]; [`delivery`]
//! runs attempts with retries, limits and fair shares; [`runtime`] is the
//! sandbox, running the connector versions of the [`registry`] ([`devmode`]
//! reloads them, [`cluster`] follows other nodes' uploads and blocks); [`egress`] decides where a connector may connect;
//! [`secrets`] substitutes, scrubs and seals secrets, with [`redact`] finding
//! their encoded forms; [`keys`] mints and hashes API keys; [`metrics`]
//! records and serves the Prometheus metrics, [`telemetry`] sets up the log,
//! [`alerts`] emits Switchboard's own events about failing connections, and
//! [`ui`] serves the dashboard; [`outcome`] is
//! the outcome codes; [`attempt`] is the record users see; [`time`] reads the
//! clock and writes instants; [`cli`] is the command line; `fault` holds
//! test-only fault hooks.

pub mod alerts;
pub mod api;
pub mod app;
pub mod attempt;
pub mod bundled;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod devmode;
pub mod egress;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod outcome;
pub mod redact;
pub mod registry;
pub mod rollout;
pub mod routing;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod ui;
pub mod validation;

pub use server::run;
