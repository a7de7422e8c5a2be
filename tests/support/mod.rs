//! Shared support for the integration suite: guest components and the
//! `switchboard` binary built from source, local HTTP receivers, a reference
//! Standard Webhooks verifier, and sandbox helpers.

pub mod browser;
pub mod build;
pub mod cluster;
pub mod fakes;
pub mod fuzz;
pub mod host;
pub mod process;
pub mod receiver;
pub mod sandbox;
pub mod standard_webhooks;

/// Held by the tests that measure latency or load (fair share, the soak),
/// so that they do not measure each other: the suite runs tests in
/// parallel, and on two cores one of them would slow the other's numbers.
pub async fn measuring_alone() -> tokio::sync::MutexGuard<'static, ()> {
    static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    MEASURING.lock().await
}

/// The Standard Webhooks secret the suite's connections sign with.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
