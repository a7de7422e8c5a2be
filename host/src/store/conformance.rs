//! The store conformance suite: what every backend must do. Run here
//! against sled; a second backend runs the same functions.

use serde_json::json;

use super::{Accept, Accepted, DeliveryQuery, Next, Page, SledStore, Store};
use crate::attempt::AttemptRecord;
use crate::model::{Delivery, DeliveryStatus, Event};
use crate::outcome::Outcome;

fn sled() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

fn accept(ws: &str, event: &str, deliveries: usize, idem: Option<&str>, now: i64) -> Accept {
    let ds: Vec<Delivery> = (0..deliveries)
        .map(|i| Delivery {
            id: format!("dlv_{event}_{i}"),
            workspace: ws.into(),
            event_id: event.into(),
            rule: format!("rule_{i}"),
            connection: format!("conn_{i}"),
            connector: "webhook".into(),
            action: "send_webhook".into(),
            fields: json!({}),
            status: DeliveryStatus::Pending,
            attempt_count: 0,
            due_at: Some(now),
            lease: None,
            connector_version: None,
            last_error: None,
            last_outcome: None,
            created_at: now,
            updated_at: now,
        })
        .collect();
    Accept {
        event: Event {
            id: event.into(),
            workspace: ws.into(),
            event: "page.completed".into(),
            resource: "global".into(),
            resource_id: None,
            payload: "{\"a\":1}".into(),
            created_by: "key-1".into(),
            created_at: now,
            delivery_ids: ds.iter().map(|d| d.id.clone()).collect(),
        },
        deliveries: ds,
        idempotency: idem.map(str::to_string),
    }
}

fn record(n: u32, outcome: Outcome) -> AttemptRecord {
    AttemptRecord {
        connector: "webhook".into(),
        connector_version: "0.1.0".into(),
        n,
        started_at: "2026-01-01T00:00:00Z".into(),
        duration_ms: 1.0,
        outcome,
        error: None,
        summary: None,
        retry_after_ms: None,
        steps: vec![],
        logs: vec![],
    }
}

fn accepts_atomically_and_remembers_idempotency_keys(s: &dyn Store) {
    let first = s.accept(&accept("ws-a", "evt_1", 2, Some("k1"), 1000)).unwrap();
    assert!(matches!(first, Accepted::New(_)));
    s.sync().unwrap();
    let again = s.accept(&accept("ws-a", "evt_2", 2, Some("k1"), 2000)).unwrap();
    assert!(matches!(again, Accepted::Duplicate(e) if e.id == "evt_1"));
    assert!(s.event("ws-a", "evt_2").unwrap().is_none(), "a duplicate stores nothing");
    let other_ws = s.accept(&accept("ws-b", "evt_3", 1, Some("k1"), 2000)).unwrap();
    assert!(matches!(other_ws, Accepted::New(_)), "keys are per workspace");
    let expired = s.accept(&accept("ws-a", "evt_4", 0, Some("k1"), 1000 + 24 * 3600 * 1000)).unwrap();
    assert!(matches!(expired, Accepted::New(_)), "remembered for 24 h only");
    assert_eq!(s.deliveries("ws-a", &DeliveryQuery::default(), &Page { cursor: None, limit: 50 }).unwrap().len(), 2);
}

fn claims_with_leases_and_ignores_stale_tokens(s: &dyn Store) {
    s.accept(&accept("ws", "evt_1", 1, None, 1000)).unwrap();
    assert!(s.claim_due(999, 10, 5000).unwrap().is_empty(), "not due yet");
    let claimed = s.claim_due(1000, 10, 5000).unwrap();
    assert_eq!(claimed.len(), 1);
    let d = &claimed[0];
    assert_eq!(d.status, DeliveryStatus::Processing);
    assert!(s.claim_due(5999, 10, 5000).unwrap().is_empty(), "leased");
    // The worker died: the lease expires and another worker claims it.
    let reclaimed = s.claim_due(6000, 10, 5000).unwrap();
    assert_eq!(reclaimed.len(), 1);
    let stale = d.lease.clone().unwrap();
    let fresh = reclaimed[0].lease.clone().unwrap();
    assert!(!s.finish_attempt(&d.id, &stale, &record(1, Outcome::Delivered), Next::Completed, 6001).unwrap());
    assert!(s.finish_attempt(&d.id, &fresh, &record(1, Outcome::Delivered), Next::Completed, 6001).unwrap());
    let done = s.delivery(&d.id).unwrap().unwrap();
    assert_eq!((done.status, done.attempt_count, done.due_at), (DeliveryStatus::Completed, 1, None));
    assert_eq!(s.attempts(&d.id).unwrap().len(), 1);
    assert!(s.claim_due(i64::MAX / 2, 10, 5000).unwrap().is_empty(), "completed deliveries are never due");
}

fn retries_waits_and_requeues(s: &dyn Store) {
    s.accept(&accept("ws", "evt_1", 1, None, 0)).unwrap();
    let d = s.claim_due(0, 1, 1000).unwrap().remove(0);
    s.finish_attempt(
        &d.id,
        d.lease.as_deref().unwrap(),
        &record(1, Outcome::RejectedServerError),
        Next::Retry { at: 500 },
        10,
    )
    .unwrap();
    assert_eq!(s.next_due().unwrap(), Some(500));
    let d = s.claim_due(500, 1, 1000).unwrap().remove(0);
    assert!(s.park(&d.id, d.lease.as_deref().unwrap(), 600).unwrap());
    assert_eq!(s.delivery(&d.id).unwrap().unwrap().status, DeliveryStatus::Waiting);
    assert_eq!(s.waiting(&d.connection).unwrap(), std::slice::from_ref(&d.id));
    assert!(s.claim_due(i64::MAX / 2, 10, 1000).unwrap().is_empty(), "waiting deliveries are not due");
    s.requeue(&d.id, 700, 700).unwrap().unwrap();
    assert!(s.waiting(&d.connection).unwrap().is_empty());
    assert_eq!(s.claim_due(700, 1, 1000).unwrap().len(), 1);
}

fn releases_leases_after_a_restart_and_cancels(s: &dyn Store) {
    s.accept(&accept("ws", "evt_1", 2, None, 0)).unwrap();
    assert_eq!(s.claim_due(0, 10, 60_000).unwrap().len(), 2);
    assert_eq!(s.release_all_leases(5).unwrap(), 2);
    let again = s.claim_due(5, 10, 60_000).unwrap();
    assert_eq!(again.len(), 2);
    let canceled = s.cancel(&again[0].id, 6).unwrap().unwrap();
    assert_eq!(canceled.status, DeliveryStatus::Canceled);
    assert!(s.cancel(&again[0].id, 7).unwrap().is_none(), "final deliveries stay final");
}

fn sweeps_old_final_events_only(s: &dyn Store) {
    s.accept(&accept("ws", "evt_old", 1, None, 0)).unwrap();
    s.accept(&accept("ws", "evt_pending", 1, None, 0)).unwrap();
    let d = s.claim_due(0, 10, 1000).unwrap();
    let old = d.iter().find(|d| d.event_id == "evt_old").unwrap();
    s.finish_attempt(&old.id, old.lease.as_deref().unwrap(), &record(1, Outcome::Delivered), Next::Completed, 1)
        .unwrap();
    assert_eq!(s.sweep(100).unwrap(), 1);
    assert!(s.event("ws", "evt_old").unwrap().is_none());
    assert!(s.attempts(&old.id).unwrap().is_empty());
    assert!(s.event("ws", "evt_pending").unwrap().is_some(), "a pending delivery is never removed");
}

#[test]
fn sled_conforms() {
    let suite: [fn(&dyn Store); 5] = [
        accepts_atomically_and_remembers_idempotency_keys,
        claims_with_leases_and_ignores_stale_tokens,
        retries_waits_and_requeues,
        releases_leases_after_a_restart_and_cancels,
        sweeps_old_final_events_only,
    ];
    for test in suite {
        let (_dir, store) = sled();
        test(&store);
    }
}

#[test]
fn sled_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.accept(&accept("ws", "evt_1", 1, None, 0)).unwrap();
        s.sync().unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    assert!(s.event("ws", "evt_1").unwrap().is_some());
    assert_eq!(s.claim_due(0, 10, 1000).unwrap().len(), 1);
}
