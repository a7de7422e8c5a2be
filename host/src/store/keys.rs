//! Key layout of the single sled tree. One tree makes every multi-record
//! write one atomic batch. Prefix letters name the table; ids never contain
//! `/`; due times are big-endian so the queue sorts by time.

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

pub fn due(at_ms: i64, delivery: &str) -> Vec<u8> {
    let mut k = vec![DUE, SEP];
    k.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    k.push(SEP);
    k.extend_from_slice(delivery.as_bytes());
    k
}

pub fn due_upto(at_ms: i64) -> Vec<u8> {
    let mut k = vec![DUE, SEP];
    k.extend_from_slice(&(at_ms.max(0) as u64 + 1).to_be_bytes());
    k
}

pub fn attempt(delivery: &str, n: u32) -> Vec<u8> {
    let mut k = prefix(ATTEMPT, &[delivery]);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The delivery id at the end of a due key.
pub fn due_delivery(k: &[u8]) -> Option<&str> {
    k.get(11..).and_then(|b| std::str::from_utf8(b).ok())
}

pub const WORKSPACE: u8 = b'W';
pub const KEY: u8 = b'K';
pub const WS_KEYS: u8 = b'k';
pub const CONNECTION: u8 = b'C';
pub const RULE: u8 = b'R';
pub const EVENT: u8 = b'E';
pub const DELIVERY: u8 = b'D';
pub const WS_DELIVERIES: u8 = b'd';
pub const DUE: u8 = b'Q';
pub const ATTEMPT: u8 = b'A';
pub const IDEMPOTENCY: u8 = b'I';
pub const WAITING: u8 = b'w';
pub const REPLAY: u8 = b'P';
pub const CACHE: u8 = b'X';
