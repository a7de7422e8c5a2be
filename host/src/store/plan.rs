//! The delay queue's vocabulary, the same for every backend: what one
//! claim may take (`ClaimPlan`, the fair-share rule included), what it
//! hands back, what becomes of a delivery after its attempt, and the record
//! of an attempt cut short.

use crate::attempt::AttemptRecord;
use crate::model::{Connection, Delivery, Event};

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Completed,
    Failed,
    Retry {
        at: i64,
    },
    /// The connection is paused: wait, without a due time, until it is fixed.
    Wait,
}

/// How many deliveries one claim may take: `limit` in all, and per
/// connection the room its concurrency and rate limits leave (`room`, or
/// `default_room` for connections the scheduler has not seen yet), and per
/// workspace its fair share of the workers. A connection or workspace with
/// no room is skipped, not churned through the queue. Claims take turns
/// between workspaces (round robin, one delivery a turn, the first turn
/// after the workspace served last) and, within a workspace, between its
/// due connections, most overdue first.
#[derive(Debug, Clone, Default)]
pub struct ClaimPlan {
    pub now: i64,
    pub lease_ms: i64,
    pub limit: usize,
    pub default_room: usize,
    pub room: std::collections::HashMap<String, usize>,
    /// The scheduler's worker pool (0: no per-workspace share).
    pub workers: usize,
    /// Attempts in flight per workspace.
    pub in_flight: std::collections::HashMap<String, usize>,
}

impl ClaimPlan {
    pub fn room_for(&self, connection: &str) -> usize {
        self.room.get(connection).copied().unwrap_or(self.default_room)
    }

    /// How many more attempts `workspace` may start, when `busy` workspaces
    /// have work (in flight or due). Its share is an equal part of the
    /// workers, never more than three quarters of them: a workspace whose
    /// work arrives while another fills the pool finds free workers at once
    /// instead of waiting for the other's attempts, which may be slow.
    pub fn workspace_room(&self, workspace: &str, busy: usize) -> usize {
        if self.workers == 0 {
            return usize::MAX;
        }
        let share = self.workers.div_ceil(busy.max(1)).min(self.workers - self.workers / 4).max(1);
        share.saturating_sub(self.in_flight.get(workspace).copied().unwrap_or(0))
    }
}

/// A claimed delivery with what its attempt needs, read in the same step.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub event: Option<Event>,
    pub connection: Option<Connection>,
}

/// An attempt whose process died before it finished is recorded with this
/// many consecutive interruptions at most; then the delivery fails, so a
/// delivery that kills the process cannot crash-loop it.
pub const MAX_INTERRUPTIONS: u32 = 3;

/// The record of an attempt cut short by a process death: what a claim
/// writes when it finds a lease expired unfinished.
pub(crate) fn interrupted_attempt(d: &Delivery, n: u32, now: i64) -> AttemptRecord {
    AttemptRecord {
        connector: d.connector.clone(),
        connector_version: d.connector_version.clone().unwrap_or_default(),
        component_sha256: None,
        n,
        // Claimed (and so started) at the delivery's last update.
        started_at: crate::model::rfc3339(d.updated_at),
        duration_ms: (now - d.updated_at).max(0) as f64,
        outcome: crate::outcome::Outcome::Interrupted,
        error: Some(format!(
            "the process running this attempt stopped before it finished (interruption {} of at most {MAX_INTERRUPTIONS} in a row); the destination may or may not have received it",
            d.interruptions + 1
        )),
        summary: None,
        retry_after_ms: None,
        steps: Vec::new(),
        logs: Vec::new(),
    }
}
