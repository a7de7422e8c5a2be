//! Key layout of the embedded store's single key space. Prefix letters name
//! the table; ids never contain `/`; times are big-endian so scans sort by
//! time. Index entries carry empty values: the key is the fact.

pub const SEP: u8 = b'/';

pub fn key(table: u8, parts: &[&str]) -> Vec<u8> {
    let mut k = vec![table];
    for p in parts {
        k.push(SEP);
        k.extend_from_slice(p.as_bytes());
    }
    k
}

/// `key(...)` plus a trailing separator: the prefix of everything below.
pub fn prefix(table: u8, parts: &[&str]) -> Vec<u8> {
    let mut k = key(table, parts);
    k.push(SEP);
    k
}

/// The first key after every key starting with `pfx`.
pub fn end_of(pfx: &[u8]) -> Vec<u8> {
    let mut k = pfx.to_vec();
    k.push(0xff);
    k
}

/// Start of a scan under `pfx` after `cursor` (exclusive), if any.
pub fn after(pfx: &[u8], cursor: Option<&str>) -> Vec<u8> {
    let mut k = pfx.to_vec();
    if let Some(c) = cursor {
        k.extend_from_slice(c.as_bytes());
        k.push(0);
    }
    k
}

pub fn attempt(delivery: &str, n: u32) -> Vec<u8> {
    let mut k = prefix(ATTEMPT, &[delivery]);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

pub const WORKSPACE: u8 = b'W';
pub const KEY: u8 = b'K';
pub const WS_KEYS: u8 = b'k';
pub const CONNECTION: u8 = b'C';
pub const RULE: u8 = b'R';
pub const EVENT: u8 = b'E';
/// `e/<ws>/<final event status>/<event>`; events still processing are
/// indexed in memory (`embedded/active.rs`).
pub const EVENT_STATUS: u8 = b'e';
pub const DELIVERY: u8 = b'D';
/// `d/<ws>/<delivery>`: a workspace's deliveries in time order.
pub const WS_DELIVERIES: u8 = b'd';
/// `S/<ws>/<final status>/<delivery>`; active statuses are indexed in memory.
pub const DELIVERY_STATUS: u8 = b'S';
/// `N/<delivery>`: the delivery is not final (the memory index is rebuilt from these).
pub const ACTIVE: u8 = b'N';
/// `c/<connection>/<delivery>`.
pub const CONN_DELIVERIES: u8 = b'c';
pub const ATTEMPT: u8 = b'A';
pub const IDEMPOTENCY: u8 = b'I';
pub const REPLAY: u8 = b'P';
pub const CACHE: u8 = b'X';
