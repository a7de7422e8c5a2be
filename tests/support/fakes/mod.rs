//! Faithful fakes of the vendor APIs the bundled connectors call: small axum
//! servers that check auth and bodies the way the vendor does, keep state,
//! and inject the vendor's real failure shapes on request, as each vendor's
//! API documentation describes them.

pub mod activecampaign;
pub mod hubspot;
pub mod intercom;
pub mod slack;
