//! What one invocation may spend, and how the sandbox says it spent too much:
//! the fixed per-invocation caps on host calls, the guest CPU budget counted
//! in epoch ticks, and the one sentence that explains each way an invocation
//! stops. The configurable limits are [`SandboxLimits`], defined with the
//! rest of the configuration (`[sandbox]`).
//!
//! [`SandboxLimits`]: crate::config::SandboxLimits

use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use super::engine::TICK;
use super::host_impl::InvocationState;

/// `log.log` calls per invocation. The call after the last one
/// ends the invocation as `connector_error`, exactly like a send past
/// `max_requests`, rather than being ignored: ignored calls would let a log
/// loop run on until the CPU budget stops it, holding an instance slot and a
/// worker meanwhile and ending with a vaguer "CPU budget" error. 1,000 is ten
/// times what the attempt record keeps, so no connector that logs to
/// diagnose a delivery comes near it; one that does is looping, and its
/// author is better served by an error that names the rule.
pub const MAX_LOG_CALLS: u32 = 1_000;

/// Log lines an attempt record keeps: the first `RECORDED_LOG_LINES - 1`
/// lines written, then, when more were written, one line saying how many
/// were not kept. Only kept lines reach the operator's log too, so a
/// connector cannot flood it either.
pub const RECORDED_LOG_LINES: usize = 100;

/// Longer log lines are cut (on a character boundary) and marked with `…`.
pub const MAX_LOG_LINE_BYTES: usize = 2048;

/// `cache.set` calls that take effect per invocation. Later ones
/// are ignored (a warning in the record says so once): a lost cache write
/// costs a correct connector one lookup on its next delivery, so there is
/// no reason to fail this one.
pub const MAX_CACHE_WRITES: u32 = 100;

/// Bytes (keys and values) `cache.set` may write per invocation: the
/// connection's whole cache quota. Anything beyond it could only evict the
/// connection's own entries, while every byte costs the disk a write.
pub const MAX_CACHE_BYTES_WRITTEN: usize = crate::store::CACHE_MAX_BYTES;

/// `cache.get` calls that reach the store per invocation; later ones miss
/// at once. A call that reaches the store waits on it, and that wait is
/// not charged to the guest's CPU budget (the store may be busy with other
/// workspaces' work), so it is this cap that bounds a loop of lookups.
pub const MAX_CACHE_READS: u32 = 1_000;

/// A host import refused a call past a per-invocation cap and ended the
/// invocation; the text names the cap. The import also records the breach
/// as a `Violation::Limit`, which decides the outcome (`connector_error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimitReached(pub String);

/// The epoch callback's error: the guest computed for longer than its budget.
#[derive(Debug, thiserror::Error)]
#[error("guest exceeded its CPU budget")]
pub struct CpuBudgetExceeded;

/// Charge the guest one tick per epoch it spent running: its own code and
/// any host call that returns at once (a refused send, `log`, `cache.set`),
/// so a loop of cheap host calls spends the budget like a loop of
/// arithmetic. The tick after a host call that waited on the network is
/// not charged (see `InvocationState::resumed_from_host`).
pub fn charge_cpu(store: &mut Store<InvocationState>, cpu: Duration) {
    let budget_ticks = cpu.as_millis().div_ceil(TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut ctx| {
        let state = ctx.data_mut();
        if std::mem::take(&mut state.resumed_from_host) {
            return Ok(UpdateDeadline::Yield(1));
        }
        state.ticks += 1;
        if state.ticks > budget_ticks {
            return Err(wasmtime::Error::new(CpuBudgetExceeded));
        }
        Ok(UpdateDeadline::Yield(1))
    });
}

/// A clear sentence for a failed guest call.
pub fn explain_trap(e: &wasmtime::Error, store: &Store<InvocationState>) -> String {
    let limits = &store.data().io.limits;
    if e.downcast_ref::<CpuBudgetExceeded>().is_some() {
        return format!("exceeded the guest CPU budget of {:?}", limits.cpu);
    }
    if let Some(LimitReached(cap)) = e.downcast_ref::<LimitReached>() {
        return cap.clone();
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::StackOverflow => "trapped: stack overflow (unbounded recursion?)".to_string(),
            wasmtime::Trap::UnreachableCodeReached => "trapped: unreachable code reached (the connector panicked or aborted)".to_string(),
            // Rust guests keep their stack in linear memory: overflowing it
            // runs off the bottom of memory rather than the wasm call stack.
            wasmtime::Trap::MemoryOutOfBounds => {
                "trapped: out-of-bounds memory access (a stack overflow in the guest's shadow stack, or a memory-safety bug)".to_string()
            }
            wasmtime::Trap::Interrupt => format!("exceeded the guest CPU budget of {:?}", limits.cpu),
            other => format!("trapped: {other}"),
        };
    }
    let text = format!("{e:#}");
    if text.contains("memory") && (text.contains("grow") || text.contains("limit")) {
        return format!("exceeded the memory limit of {} MiB: {text}", limits.memory_bytes >> 20);
    }
    format!("failed: {text}")
}
