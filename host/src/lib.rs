//! Switchboard: a self-hosted event router that delivers each event to its
//! destinations through sandboxed WebAssembly connectors.
//!
//! Module map: [`runtime`] is the sandbox; [`egress`] decides where a
//! connector may connect; [`secrets`] substitutes and scrubs secrets;
//! [`outcome`] turns what happened into an outcome code; [`attempt`] is the
//! record users see; [`cli`] is the command line.

pub mod attempt;
pub mod cli;
pub mod config;
pub mod egress;
pub mod outcome;
pub mod runtime;
pub mod secrets;
