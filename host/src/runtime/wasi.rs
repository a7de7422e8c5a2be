//! What WASI gives a guest. It is linked only so that a Rust `std` guest
//! links and runs; through it a guest reaches nothing and measures nothing:
//! no preopened directories, environment, arguments, stdio or sockets,
//! clocks that never move, and random numbers that say nothing about the host.
//!
//! Clocks. The contract (`wit/connector.wit`) says connectors have no clock:
//! `event.attempt-time` is their time. WASI's clocks are replaced rather than
//! removed, because removing them would refuse every `std` guest that merely
//! links `SystemTime` or `Instant`. The wall clock reads the attempt's start
//! in whole seconds — the same value as `attempt-time`, so a guest that calls
//! `SystemTime::now()` still stamps the right second — and the monotonic clock
//! reads 0; neither ever moves. A security-minded operator wants this: a
//! precise clock is what turns shared hardware into a side channel (timing
//! caches or other work is how a guest would learn what it must not, and this
//! process holds every tenant's decrypted secrets), and a clock that does not
//! move gives a guest nothing to time with. It also makes an attempt a
//! function of its inputs, so `connector test` fixtures replay exactly.
//! Sleeping on a `wasi:clocks` pollable still waits real time — a guest can
//! wait, not measure — and counts towards the wall-clock budget.
//!
//! Random. `wasi:random` stays the host's CSPRNG, fresh for each instance,
//! and the contract says so: randomness grants no authority and measures
//! nothing, while a predictable generator would silently break a connector
//! that draws a nonce or a multipart boundary from it (and `std` seeds
//! `HashMap` from `wasi:random`, so removing it would refuse ordinary
//! guests). Each call is capped at [`MAX_RANDOM_BYTES`] so a guest cannot make
//! the host allocate wasmtime's default 64 MiB outside the guest's memory limit.

use std::time::Duration;

use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

/// Largest `get-random-bytes` / `get-insecure-random-bytes` request; a larger
/// one traps (the attempt ends `connector_error`).
pub const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// The WASI context of one instance whose wall clock is frozen at
/// `attempt_time` (Unix seconds).
pub fn context(attempt_time: u64) -> WasiCtx {
    // The builder's defaults already deny TCP, UDP and name lookups, and
    // grant no directories, environment or arguments; say so explicitly so
    // a wasmtime upgrade cannot quietly change it.
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenWallClock(Duration::from_secs(attempt_time)))
        .monotonic_clock(FrozenMonotonicClock)
        .max_random_size(MAX_RANDOM_BYTES)
        .build()
}

/// `wasi:clocks/wall-clock`: always the attempt's start, whole seconds.
struct FrozenWallClock(Duration);

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

/// `wasi:clocks/monotonic-clock`: always 0.
struct FrozenMonotonicClock;

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}
