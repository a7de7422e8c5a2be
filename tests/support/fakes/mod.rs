//! Faithful fakes of the vendor APIs the bundled connectors call: small axum
//! servers that check auth and bodies the way the vendor does, keep state,
//! and inject the vendor's real failure shapes on request, as each vendor's
//! API documentation describes them. The server, the call record and the
//! recorder they share are in [`server`].

pub mod activecampaign;
pub mod hubspot;
pub mod intercom;
pub mod server;
pub mod slack;

pub use server::Call;
