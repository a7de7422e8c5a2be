//! Switchboard: a self-hosted event router that delivers each event to its
//! destinations through sandboxed WebAssembly connectors.
//!
//! Module map: [`server`] starts everything; [`api`] is the HTTP surface;
//! [`routing`] matches rules and renders fields; [`store`] is durable state;
//! [`delivery`] runs attempts with retries and limits; [`runtime`] is the
//! sandbox; [`egress`] decides where a connector may connect; [`secrets`]
//! substitutes, scrubs and seals secrets; [`outcome`] turns what happened
//! into an outcome code; [`attempt`] is the record users see; [`cli`] is the
//! command line.

pub mod api;
pub mod app;
pub mod attempt;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod devmode;
pub mod egress;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod model;
pub mod outcome;
pub mod redact;
pub mod registry;
pub mod routing;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod store;

pub use server::run;
