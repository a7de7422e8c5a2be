//! Routing: which rules an event matches ([`filter`]), the deliveries an
//! accepted event gets ([`plan`]) and the fields each matched rule hands its
//! connector ([`fields`]). Both are
//! written by tenants, so both are bounded: checked at save,
//! and limited in the work each evaluation or render may do.

pub mod fields;
pub mod filter;
pub mod plan;

use std::io;

/// Whether `value` serializes to at most `limit` bytes, found without
/// building the text and stopping as soon as the limit is passed.
pub(crate) fn fits_serialized(value: &serde_json::Value, limit: usize) -> bool {
    struct Counter {
        left: usize,
    }
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.left = self.left.checked_sub(buf.len()).ok_or_else(|| io::Error::other("too large"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Counter { left: limit }, value).is_ok()
}
