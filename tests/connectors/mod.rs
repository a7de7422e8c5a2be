//! Each bundled vendor connector in the real sandbox against a faithful
//! fake of its vendor's API (`support::fakes`).

mod activecampaign;
mod hubspot;
mod intercom;
mod slack;
