//! Shared support for the integration suite: guest components and the
//! `switchboard` binary built from source, local HTTP receivers, a reference
//! Standard Webhooks verifier, and sandbox helpers.

pub mod build;
pub mod receiver;
pub mod sandbox;
pub mod standard_webhooks;
