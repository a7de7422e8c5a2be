//! Claiming due deliveries in PostgreSQL within a [`ClaimPlan`], in one
//! transaction, taking the same deliveries in the same order as the
//! embedded store's round robin (`embedded/queue.rs`):
//!
//! 1. *Heads*: each connection with a queue and its earliest due time, read
//!    as a skip scan of the queue index (one index probe per connection, not
//!    a scan of the backlog). The due ones, grouped by workspace, are the
//!    embedded store's turns.
//! 2. *Quotas*, in Rust ([`quotas`]): the plan's rooms — per connection
//!    (`room_for`), per workspace (`workspace_room`, given how many
//!    workspaces are busy), `limit` — and the workspaces' turn order,
//!    starting after the one served last.
//! 3. *Pick*, in SQL: each connection's next due deliveries up to its cap;
//!    numbered within the workspace in its round-robin order (round, then
//!    connection by head); at most the workspace's cap; then across
//!    workspaces by (round, turn); at most `limit`. Bounded by the quotas,
//!    never the backlog.
//! 4. *Lock* the picked rows `FOR UPDATE SKIP LOCKED`, checking they are
//!    still due: another node's claim skips them or finds them leased.
//! 5. *Take* each one: a fresh lease due at `now + lease_ms`; an expired
//!    lease first records an `interrupted` attempt, and fails the delivery
//!    at [`MAX_INTERRUPTIONS`].
//!
//! A row another node took between the pick and the lock is not replaced:
//! the claim returns fewer, and the next claim looks again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use sqlx::{PgConnection, PgPool, Row};

use super::super::{ClaimPlan, Claimed, MAX_INTERRUPTIONS, Result, interrupted_attempt};
use super::queue::record_attempts;
use super::rows::{self, DELIVERY_COLUMNS, EVENT_COLUMNS, from_json, int, text};
use crate::attempt::AttemptRecord;
use crate::model::{Connection, Delivery, DeliveryStatus, Event};
use crate::outcome::Outcome;

/// A connection with a queue, and its earliest due time.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub connection: String,
    pub workspace: String,
    pub at: i64,
}

/// What the pick may take from one due connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    pub head: Head,
    /// Its workspace's place in the turn order.
    pub turn: i64,
    /// Deliveries this connection may give.
    pub cap: i64,
    /// Deliveries its workspace may give.
    pub workspace_cap: i64,
}

pub async fn claim_due(pool: &PgPool, plan: &ClaimPlan, last_served: &Mutex<String>) -> Result<Vec<Claimed>> {
    if plan.limit == 0 {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    let heads = heads(&mut tx, plan.now).await?;
    let served = last_served.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let quotas = quotas(plan, heads, &served);
    if quotas.is_empty() {
        return Ok(Vec::new());
    }
    let picked = pick(&mut tx, plan, &quotas).await?;
    let locked = lock(&mut tx, &picked, plan.now).await?;
    let mut taken = Vec::with_capacity(locked.len());
    let mut changed = Vec::with_capacity(locked.len());
    let mut attempts = Vec::new();
    for old in locked {
        let (new, attempt) = take(&old, plan);
        if new.status == DeliveryStatus::Processing {
            taken.push(new.clone());
        } else {
            tracing::warn!(delivery = %new.id, interruptions = new.interruptions, "delivery failed: its attempts kept ending with the process");
        }
        attempts.extend(attempt.map(|a| (new.id.clone(), a)));
        changed.push(new);
    }
    write(&mut tx, &changed, plan.now).await?;
    let attempts: Vec<(&str, &AttemptRecord)> = attempts.iter().map(|(id, a)| (id.as_str(), a)).collect();
    record_attempts(&mut tx, &attempts).await?;
    let claimed = with_context(&mut tx, taken).await?;
    tx.commit().await?;
    if let Some(last) = claimed.last() {
        let mut served = last_served.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.delivery.workspace.clone_into(&mut served);
    }
    Ok(claimed)
}

/// Every connection's queue head due at `now`.
async fn heads(db: &mut PgConnection, now: i64) -> Result<Vec<Head>> {
    let found = sqlx::query(
        "WITH RECURSIVE heads AS ( \
             (SELECT connection, workspace, due_at FROM deliveries WHERE due_at IS NOT NULL \
              ORDER BY connection, due_at LIMIT 1) \
             UNION ALL \
             SELECT next.* FROM heads h CROSS JOIN LATERAL ( \
                 SELECT connection, workspace, due_at FROM deliveries \
                 WHERE due_at IS NOT NULL AND connection > h.connection \
                 ORDER BY connection, due_at LIMIT 1) next \
         ) \
         SELECT connection, workspace, due_at FROM heads WHERE due_at <= $1",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    found
        .iter()
        .map(|row| Ok(Head { connection: row.try_get(0)?, workspace: row.try_get(1)?, at: row.try_get(2)? }))
        .collect()
}

/// The plan's rooms over the due heads. Workspaces take turns in id order
/// starting after `last_served`; within one, connections by head (most
/// overdue first). Only what a claim of `limit` could reach gets a quota:
/// the first `limit` workspaces with room, and in each the first
/// connections with room, as many as the workspace may give.
pub fn quotas(plan: &ClaimPlan, heads: Vec<Head>, last_served: &str) -> Vec<Quota> {
    let mut by_workspace: BTreeMap<String, Vec<Head>> = BTreeMap::new();
    for head in heads {
        by_workspace.entry(head.workspace.clone()).or_default().push(head);
    }
    let in_flight = plan.in_flight.iter().filter(|(_, n)| **n > 0).map(|(ws, _)| ws);
    let busy = by_workspace.keys().chain(in_flight).collect::<HashSet<_>>().len();
    let (before, after): (Vec<_>, Vec<_>) = by_workspace.into_iter().partition(|(ws, _)| ws.as_str() <= last_served);
    let mut quotas = Vec::new();
    let mut turn = 0;
    for (workspace, mut heads) in after.into_iter().chain(before) {
        if turn >= plan.limit {
            break;
        }
        let workspace_cap = plan.workspace_room(&workspace, busy).min(plan.limit);
        heads.sort_by(|a, b| (a.at, &a.connection).cmp(&(b.at, &b.connection)));
        let open = heads.into_iter().filter(|h| plan.room_for(&h.connection) > 0).take(workspace_cap);
        let before = quotas.len();
        for head in open {
            let cap = plan.room_for(&head.connection).min(workspace_cap);
            quotas.push(Quota { head, turn: sql_int(turn), cap: sql_int(cap), workspace_cap: sql_int(workspace_cap) });
        }
        if quotas.len() > before {
            turn += 1;
        }
    }
    quotas
}

/// A count as a `bigint`; "unlimited" (`usize::MAX`) stays the largest.
fn sql_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The ids to claim, in claim order (see the module's step 3).
async fn pick(db: &mut PgConnection, plan: &ClaimPlan, quotas: &[Quota]) -> Result<Vec<String>> {
    let connections: Vec<&str> = quotas.iter().map(|q| q.head.connection.as_str()).collect();
    let workspaces: Vec<&str> = quotas.iter().map(|q| q.head.workspace.as_str()).collect();
    let heads: Vec<i64> = quotas.iter().map(|q| q.head.at).collect();
    let turns: Vec<i64> = quotas.iter().map(|q| q.turn).collect();
    let caps: Vec<i64> = quotas.iter().map(|q| q.cap).collect();
    let workspace_caps: Vec<i64> = quotas.iter().map(|q| q.workspace_cap).collect();
    let picked: Vec<(String,)> = sqlx::query_as(
        "WITH quota AS ( \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[]) \
                 AS q(connection, workspace, head, turn, cap, workspace_cap) \
         ), queued AS ( \
             SELECT d.id, q.connection, q.workspace, q.head, q.turn, q.workspace_cap, \
                    row_number() OVER (PARTITION BY q.connection ORDER BY d.due_at, d.id) AS nth \
             FROM quota q CROSS JOIN LATERAL ( \
                 SELECT id, due_at FROM deliveries \
                 WHERE connection = q.connection AND due_at <= $7 \
                 ORDER BY due_at, id LIMIT q.cap) d \
         ), rounds AS ( \
             SELECT id, turn, workspace_cap, \
                    row_number() OVER (PARTITION BY workspace ORDER BY nth, head, connection) AS round \
             FROM queued \
         ) \
         SELECT id FROM rounds WHERE round <= workspace_cap ORDER BY round, turn LIMIT $8",
    )
    .bind(&connections)
    .bind(&workspaces)
    .bind(&heads)
    .bind(&turns)
    .bind(&caps)
    .bind(&workspace_caps)
    .bind(plan.now)
    .bind(sql_int(plan.limit))
    .fetch_all(db)
    .await?;
    Ok(picked.into_iter().map(|(id,)| id).collect())
}

/// Lock the picked deliveries still due, skipping those another claim
/// holds; in pick order.
async fn lock(db: &mut PgConnection, picked: &[String], now: i64) -> Result<Vec<Delivery>> {
    let sql =
        format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ANY($1) AND due_at <= $2 FOR UPDATE SKIP LOCKED");
    let found = sqlx::query(&sql).bind(picked).bind(now).fetch_all(db).await?;
    let mut by_id: HashMap<String, Delivery> = HashMap::with_capacity(found.len());
    for row in &found {
        let d = rows::delivery(row)?;
        by_id.insert(d.id.clone(), d);
    }
    Ok(picked.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// A due delivery claimed: leased, or failed after too many interruptions;
/// with the `interrupted` attempt to record when its last lease expired.
fn take(old: &Delivery, plan: &ClaimPlan) -> (Delivery, Option<AttemptRecord>) {
    let mut new = old.clone();
    new.updated_at = plan.now;
    let mut attempt = None;
    if old.lease.is_some() {
        // The lease expired unfinished: the process holding it died.
        new.attempt_count += 1;
        new.interruptions += 1;
        let record = interrupted_attempt(old, new.attempt_count, plan.now);
        new.last_outcome = Some(Outcome::Interrupted);
        new.last_error.clone_from(&record.error);
        attempt = Some(record);
        if new.interruptions >= MAX_INTERRUPTIONS {
            new.status = DeliveryStatus::Failed;
            new.due_at = None;
            new.lease = None;
            return (new, attempt);
        }
    }
    new.lease = Some(ulid::Ulid::new().to_string());
    new.due_at = Some(plan.now + plan.lease_ms);
    new.status = DeliveryStatus::Processing;
    (new, attempt)
}

/// Write what [`take`] changed, in one statement.
async fn write(db: &mut PgConnection, changed: &[Delivery], now: i64) -> Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = changed.iter().map(|d| d.id.as_str()).collect();
    let statuses: Vec<&str> = changed.iter().map(|d| d.status.as_str()).collect();
    let due: Vec<Option<i64>> = changed.iter().map(|d| d.due_at).collect();
    let leases: Vec<Option<&str>> = changed.iter().map(|d| d.lease.as_deref()).collect();
    let counts: Vec<i32> = changed.iter().map(|d| int(d.attempt_count)).collect();
    let interruptions: Vec<i32> = changed.iter().map(|d| int(d.interruptions)).collect();
    let outcomes: Vec<Option<&str>> = changed.iter().map(|d| d.last_outcome.map(|o| o.as_str())).collect();
    let errors: Vec<Option<String>> =
        changed.iter().map(|d| d.last_error.as_deref().map(|e| text(e).into_owned())).collect();
    sqlx::query(
        "UPDATE deliveries d SET status = c.status, due_at = c.due_at, lease = c.lease, \
             attempt_count = c.attempt_count, interruptions = c.interruptions, \
             last_outcome = c.last_outcome, last_error = c.last_error, updated_at = $1 \
         FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[], $6::int4[], $7::int4[], $8::text[], $9::text[]) \
             AS c(id, status, due_at, lease, attempt_count, interruptions, last_outcome, last_error) \
         WHERE d.id = c.id",
    )
    .bind(now)
    .bind(&ids)
    .bind(&statuses)
    .bind(&due)
    .bind(&leases)
    .bind(&counts)
    .bind(&interruptions)
    .bind(&outcomes)
    .bind(&errors)
    .execute(db)
    .await?;
    Ok(())
}

/// The claimed deliveries with their events and connections.
async fn with_context(db: &mut PgConnection, taken: Vec<Delivery>) -> Result<Vec<Claimed>> {
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    let workspaces: Vec<&str> = taken.iter().map(|d| d.workspace.as_str()).collect();
    let events: Vec<&str> = taken.iter().map(|d| d.event_id.as_str()).collect();
    let connections: Vec<&str> = taken.iter().map(|d| d.connection.as_str()).collect();
    let in_pairs = "(workspace, id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))";
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE {in_pairs}");
    let found = sqlx::query(&sql).bind(&workspaces).bind(&events).fetch_all(&mut *db).await?;
    let mut event_of: HashMap<(String, String), Event> = HashMap::new();
    for row in &found {
        let e = rows::event(row)?;
        event_of.insert((e.workspace.clone(), e.id.clone()), e);
    }
    let sql = format!("SELECT workspace, id, record::text FROM connections WHERE {in_pairs}");
    let found: Vec<(String, String, String)> =
        sqlx::query_as(&sql).bind(&workspaces).bind(&connections).fetch_all(&mut *db).await?;
    let mut connection_of: HashMap<(String, String), Connection> = HashMap::new();
    for (workspace, id, record) in found {
        let c = from_json("connections", &id, &record)?;
        connection_of.insert((workspace, id), c);
    }
    Ok(taken
        .into_iter()
        .map(|d| {
            let event = event_of.get(&(d.workspace.clone(), d.event_id.clone())).cloned();
            let connection = connection_of.get(&(d.workspace.clone(), d.connection.clone())).cloned();
            Claimed { delivery: d, event, connection }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(workspace: &str, connection: &str, at: i64) -> Head {
        Head { connection: connection.into(), workspace: workspace.into(), at }
    }

    fn plan(limit: usize) -> ClaimPlan {
        ClaimPlan { now: 100, lease_ms: 10, limit, default_room: usize::MAX, ..Default::default() }
    }

    #[test]
    fn workspaces_take_turns_after_the_one_served_last() {
        let heads = vec![head("a", "a1", 5), head("b", "b1", 1), head("c", "c1", 9)];
        let turns = |served: &str| {
            quotas(&plan(10), heads.clone(), served).into_iter().map(|q| (q.head.workspace, q.turn)).collect::<Vec<_>>()
        };
        assert_eq!(turns(""), [("a".into(), 0), ("b".into(), 1), ("c".into(), 2)]);
        assert_eq!(turns("b"), [("c".into(), 0), ("a".into(), 1), ("b".into(), 2)]);
    }

    #[test]
    fn rooms_bound_every_quota() {
        let heads = vec![head("a", "late", 9), head("a", "early", 1), head("a", "full", 0), head("b", "b1", 0)];
        let mut p = plan(3);
        p.room.insert("full".into(), 0);
        p.room.insert("late".into(), 1);
        p.workers = 4;
        p.in_flight.insert("b".into(), 2);
        let q = quotas(&p, heads, "");
        let view: Vec<_> = q.iter().map(|q| (q.head.connection.as_str(), q.cap, q.workspace_cap)).collect();
        // Two busy workspaces, 4 workers: a share of 2 each; b has 2 in flight.
        assert_eq!(view, [("early", 2, 2), ("late", 1, 2)], "most overdue first; no room, no quota");
    }

    #[test]
    fn only_what_a_claim_could_reach_gets_a_quota() {
        let heads = (0..5).map(|i| head(&format!("ws{i}"), &format!("c{i}"), 0)).collect();
        assert_eq!(quotas(&plan(2), heads, "").len(), 2, "two turns: two workspaces");
        let heads = (0..5).map(|i| head("ws", &format!("c{i}"), i)).collect();
        let q = quotas(&plan(2), heads, "");
        assert_eq!(q.iter().map(|q| q.head.connection.as_str()).collect::<Vec<_>>(), ["c0", "c1"]);
    }
}
