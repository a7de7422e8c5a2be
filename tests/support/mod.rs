//! Shared support for the integration suite: guest components and the
//! `switchboard` binary built from source, local HTTP receivers, a reference
//! Standard Webhooks verifier, and sandbox helpers.

pub mod build;
pub mod fakes;
pub mod fuzz;
pub mod host;
pub mod process;
pub mod receiver;
pub mod sandbox;
pub mod standard_webhooks;

/// The Standard Webhooks secret the suite's connections sign with.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
