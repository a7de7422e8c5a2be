//! Routing (SPEC §5): which rules an event matches ([`filter`]) and the
//! fields each matched rule hands its connector ([`fields`]).

pub mod fields;
pub mod filter;
