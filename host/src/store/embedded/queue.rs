//! Every delivery state change of the embedded store. [`Tables::write_delivery`]
//! is the one place that keeps a delivery's indexes in step with its record:
//! on disk the active marker or the final-status entry, and the event's final
//! status; in memory (`active.rs`) the delay queue and everything that churns.

use std::collections::{HashMap, HashSet};

use super::super::keys::{self, key};
use super::super::{Accept, Accepted, ClaimPlan, Claimed, MAX_INTERRUPTIONS, Next, Result, interrupted_attempt};
use super::kv::Batch;
use super::tables::{Tables, encode};
use crate::attempt::AttemptRecord;
use crate::model::{Delivery, DeliveryStatus, Event, EventStatus};
use crate::outcome::Outcome;

const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct IdemRecord {
    event: String,
    at: i64,
}

/// The durable index keys (empty values) a delivery in this state has.
fn index_keys(d: &Delivery) -> Vec<Vec<u8>> {
    if d.status.is_final() {
        vec![key(keys::DELIVERY_STATUS, &[&d.workspace, d.status.as_str(), &d.id])]
    } else {
        vec![key(keys::ACTIVE, &[&d.id])]
    }
}

impl Tables {
    /// Accept each event unless its idempotency key is known; one batch per
    /// event so each is atomic on its own.
    pub fn accept_all(&mut self, accepts: &[Accept]) -> Result<Vec<Accepted>> {
        let mut in_call: HashMap<Vec<u8>, Event> = HashMap::new();
        let mut results = Vec::with_capacity(accepts.len());
        for a in accepts {
            let ws = &a.event.workspace;
            let idem_key = a.idempotency.as_ref().map(|h| key(keys::IDEMPOTENCY, &[ws, h]));
            if let Some(ik) = &idem_key {
                if let Some(original) = in_call.get(ik) {
                    results.push(Accepted::Duplicate(original.clone()));
                    continue;
                }
                if let Some(seen) = self.get::<IdemRecord>(ik)?
                    && a.event.created_at - seen.at < IDEMPOTENCY_WINDOW_MS
                    && let Some(original) = self.event(ws, &seen.event)?
                {
                    results.push(Accepted::Duplicate(original));
                    continue;
                }
            }
            let mut b = Batch::default();
            b.put(key(keys::EVENT, &[ws, &a.event.id]), encode(&a.event));
            if a.deliveries.is_empty() {
                b.put(key(keys::EVENT_STATUS, &[ws, EventStatus::Completed.as_str(), &a.event.id]), Vec::new());
            }
            for d in &a.deliveries {
                b.put(key(keys::WS_DELIVERIES, &[ws, &d.id]), Vec::new());
                b.put(key(keys::CONN_DELIVERIES, &[&d.connection, &d.id]), Vec::new());
                for k in index_keys(d) {
                    b.put(k, Vec::new());
                }
                b.put(key(keys::DELIVERY, &[&d.id]), encode(d));
            }
            if let Some(ik) = idem_key {
                b.put(ik.clone(), encode(&IdemRecord { event: a.event.id.clone(), at: a.event.created_at }));
                in_call.insert(ik, a.event.clone());
            }
            self.kv.commit(b)?;
            for d in &a.deliveries {
                self.active.apply(d);
            }
            results.push(Accepted::New(a.event.clone()));
        }
        Ok(results)
    }

    /// Replace `old` with `new` in one batch, moving every index along; the
    /// event's status index follows when the delivery's status class changes.
    fn write_delivery(&mut self, old: &Delivery, new: &Delivery, extra: Batch) -> Result<()> {
        let mut b = extra;
        let (before, after) = (index_keys(old), index_keys(new));
        let before_set: HashSet<&Vec<u8>> = before.iter().collect();
        let after_set: HashSet<&Vec<u8>> = after.iter().collect();
        for k in before.iter().filter(|k| !after_set.contains(k)) {
            b.remove(k.clone());
        }
        for k in after.iter().filter(|k| !before_set.contains(k)) {
            b.put(k.clone(), Vec::new());
        }
        b.put(key(keys::DELIVERY, &[&new.id]), encode(new));
        if old.status.is_final() != new.status.is_final() {
            self.move_event_status(&mut b, old, new)?;
        }
        self.kv.commit(b)?;
        self.active.apply(new);
        Ok(())
    }

    /// The event's final status lives on disk, "processing" in memory: when
    /// its last active delivery turns final the event gets its final entry;
    /// when a final delivery is queued again, the event loses it.
    fn move_event_status(&self, b: &mut Batch, old: &Delivery, new: &Delivery) -> Result<()> {
        let Some(event) = self.event(&new.workspace, &new.event_id)? else { return Ok(()) };
        let mut others = Vec::new();
        for id in event.delivery_ids.iter().filter(|id| **id != new.id) {
            others.extend(self.delivery(id)?.map(|d| d.status));
        }
        if others.iter().any(|s| !s.is_final()) {
            return Ok(()); // still processing before and after
        }
        let entry = |d: &Delivery| {
            let status = EventStatus::of(others.iter().chain([&d.status]));
            key(keys::EVENT_STATUS, &[&event.workspace, status.as_str(), &event.id])
        };
        if new.status.is_final() {
            b.put(entry(new), Vec::new());
        } else {
            b.remove(entry(old));
        }
        Ok(())
    }

    /// Change a delivery if `check` accepts its current state.
    fn update(
        &mut self,
        id: &str,
        check: impl Fn(&Delivery) -> bool,
        change: impl FnOnce(&mut Delivery),
    ) -> Result<Option<Delivery>> {
        let Some(old) = self.delivery(id)? else { return Ok(None) };
        if !check(&old) {
            return Ok(None);
        }
        let mut new = old.clone();
        change(&mut new);
        self.write_delivery(&old, &new, Batch::default())?;
        Ok(Some(new))
    }

    pub fn claim_due(&mut self, plan: &ClaimPlan) -> Result<Vec<Claimed>> {
        let mut turns = self.active.due_by_workspace(plan.now);
        let busy =
            turns.iter().map(|(ws, _)| ws).chain(plan.in_flight.iter().filter(|(_, n)| **n > 0).map(|(ws, _)| ws));
        let busy = busy.collect::<std::collections::HashSet<_>>().len();
        let mut workspace_room: Vec<usize> = turns.iter().map(|(ws, _)| plan.workspace_room(ws, busy)).collect();
        let mut connection_room = std::collections::HashMap::new();
        let mut claimed = Vec::new();
        while claimed.len() < plan.limit {
            let mut progress = false;
            for (i, (workspace, connections)) in turns.iter_mut().enumerate() {
                if claimed.len() >= plan.limit {
                    break;
                }
                // This workspace's turn: one delivery from its next connection with room.
                while workspace_room[i] > 0
                    && let Some(connection) = connections.pop_front()
                {
                    let room = connection_room.entry(connection.clone()).or_insert_with(|| plan.room_for(&connection));
                    let Some((at, id)) = (*room > 0)
                        .then(|| self.active.due_in(&connection, plan.now, 1))
                        .and_then(|d| d.into_iter().next())
                    else {
                        continue; // at its limits or drained: out of this claim
                    };
                    *room -= 1;
                    connections.push_back(connection);
                    if let Some(c) = self.claim_one(&id, at, plan)? {
                        claimed.push(c);
                        workspace_room[i] -= 1;
                        self.active.served(workspace);
                    }
                    progress = true;
                    break;
                }
            }
            if !progress {
                break;
            }
        }
        Ok(claimed)
    }

    fn claim_one(&mut self, id: &str, at: i64, plan: &ClaimPlan) -> Result<Option<Claimed>> {
        let Some(old) = self.delivery(id)? else { return Ok(None) };
        if old.status.is_final() || old.due_at != Some(at) {
            // The memory index disagrees with the record (cannot happen
            // through this module's writes): trust the record.
            tracing::error!(delivery = %id, "queue index out of step with the record; repaired");
            self.active.apply(&old);
            return Ok(None);
        }
        let mut new = old.clone();
        let mut extra = Batch::default();
        if old.lease.is_some() {
            // The lease expired unfinished: the process holding it died.
            new.attempt_count += 1;
            new.interruptions += 1;
            let record = interrupted_attempt(&old, new.attempt_count, plan.now);
            extra.put(keys::attempt(id, new.attempt_count), encode(&record));
            new.last_outcome = Some(Outcome::Interrupted);
            new.last_error = record.error;
            if new.interruptions >= MAX_INTERRUPTIONS {
                new.status = DeliveryStatus::Failed;
                new.due_at = None;
                new.lease = None;
                new.updated_at = plan.now;
                self.write_delivery(&old, &new, extra)?;
                tracing::warn!(delivery = %id, interruptions = new.interruptions, "delivery failed: its attempts kept ending with the process");
                return Ok(None);
            }
        }
        new.lease = Some(ulid::Ulid::new().to_string());
        new.due_at = Some(plan.now + plan.lease_ms);
        new.status = DeliveryStatus::Processing;
        new.updated_at = plan.now;
        self.write_delivery(&old, &new, extra)?;
        let event = self.event(&new.workspace, &new.event_id)?;
        let connection = self.connection(&new.workspace, &new.connection)?;
        Ok(Some(Claimed { delivery: new, event, connection }))
    }

    pub fn finish_attempt(
        &mut self,
        id: &str,
        lease: &str,
        attempt: &AttemptRecord,
        next: Next,
        now: i64,
    ) -> Result<bool> {
        let Some(old) = self.delivery(id)? else { return Ok(false) };
        if old.lease.as_deref() != Some(lease) {
            return Ok(false);
        }
        let mut new = old.clone();
        new.attempt_count = new.attempt_count.max(attempt.n);
        new.lease = None;
        new.updated_at = now;
        new.interruptions = 0;
        new.connector_version = Some(attempt.connector_version.clone());
        new.last_outcome = Some(attempt.outcome);
        new.last_error = attempt.error.clone();
        (new.status, new.due_at) = match next {
            Next::Completed => (DeliveryStatus::Completed, None),
            Next::Failed => (DeliveryStatus::Failed, None),
            Next::Retry { at } => (DeliveryStatus::Retrying, Some(at)),
            Next::Wait => (DeliveryStatus::Waiting, None),
        };
        let mut extra = Batch::default();
        extra.put(keys::attempt(id, attempt.n), encode(attempt));
        self.write_delivery(&old, &new, extra)?;
        Ok(true)
    }

    pub fn release(&mut self, id: &str, lease: &str, at: i64, now: i64) -> Result<bool> {
        let updated = self.update(
            id,
            |d| d.lease.as_deref() == Some(lease),
            |d| {
                d.lease = None;
                d.due_at = Some(at);
                d.status = DeliveryStatus::queued(d.attempt_count);
                d.updated_at = now;
            },
        )?;
        Ok(updated.is_some())
    }

    pub fn park(&mut self, id: &str, lease: &str, now: i64) -> Result<bool> {
        let updated = self.update(
            id,
            |d| d.lease.as_deref() == Some(lease),
            |d| {
                d.lease = None;
                d.due_at = None;
                d.status = DeliveryStatus::Waiting;
                d.updated_at = now;
            },
        )?;
        Ok(updated.is_some())
    }

    pub fn requeue(&mut self, id: &str, at: i64, now: i64) -> Result<Option<Delivery>> {
        self.update(
            id,
            |d| d.lease.is_none(),
            |d| {
                d.due_at = Some(at);
                d.status = DeliveryStatus::queued(d.attempt_count);
                d.interruptions = 0;
                d.updated_at = now;
            },
        )
    }

    pub fn cancel(&mut self, id: &str, now: i64) -> Result<Option<Delivery>> {
        self.update(
            id,
            |d| !d.status.is_final(),
            |d| {
                d.status = DeliveryStatus::Canceled;
                d.due_at = None;
                d.lease = None;
                d.updated_at = now;
            },
        )
    }
}
