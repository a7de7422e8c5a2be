//! The store conformance suite: what every backend must do, case by case,
//! run against every backend (the `conformance!` invocations at the end).
//! Cases of one concern may live in a submodule (`conformance/`).

mod queue_stats;

use serde_json::json;

use std::time::Duration;

use super::{
    Accept, Accepted, Backend, CACHE_MAX_BYTES, CACHE_MAX_ENTRIES, CacheEntry, ClaimPlan, DeliveryQuery, EmbeddedStore,
    Engine, EventQuery, MAX_INTERRUPTIONS, Next, Page, PgStore, Store, StoreConfig,
};
use crate::attempt::AttemptRecord;
use crate::model::{Delivery, DeliveryStatus, Event, EventStatus};
use crate::outcome::Outcome;
use queue_stats::{
    counts_paused_connections_in_every_workspace, counts_the_queue_by_status_with_its_oldest_due_delivery,
};

/// Where one case keeps its data: a fresh directory, or a fresh database in
/// the test process's scratch PostgreSQL cluster. `open` may be called
/// again on the same place (`survives_reopen`).
enum Place {
    Embedded(Engine, tempfile::TempDir),
    Postgres(StoreConfig),
}

impl Place {
    async fn new(backend: Backend) -> Place {
        match backend.engine() {
            Some(engine) => Place::Embedded(engine, tempfile::tempdir().unwrap()),
            None => {
                let cluster = super::postgres::scratch::ScratchCluster::shared().unwrap();
                let url = super::DatabaseUrl::parse(&cluster.database().await.unwrap()).unwrap();
                Place::Postgres(StoreConfig { backend, url: Some(url), ..StoreConfig::default() })
            }
        }
    }

    async fn open(&self) -> Box<dyn Store> {
        match self {
            Place::Embedded(engine, dir) => {
                Box::new(EmbeddedStore::open(*engine, dir.path(), &StoreConfig::default()).unwrap())
            }
            Place::Postgres(config) => Box::new(PgStore::open(config).await.unwrap()),
        }
    }
}

/// Claim everything due at `now` (no per-connection limits).
fn plan(now: i64, limit: usize, lease_ms: i64) -> ClaimPlan {
    ClaimPlan { now, lease_ms, limit, default_room: usize::MAX, ..Default::default() }
}

async fn claim(s: &dyn Store, now: i64, limit: usize, lease_ms: i64) -> Vec<Delivery> {
    s.claim_due(plan(now, limit, lease_ms)).await.unwrap().into_iter().map(|c| c.delivery).collect()
}

async fn accept1(s: &dyn Store, a: Accept) -> Accepted {
    s.accept_all(vec![a]).await.unwrap().remove(0)
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
            interruptions: 0,
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
        component_sha256: None,
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

async fn accepts_atomically_and_remembers_idempotency_keys(s: &dyn Store) {
    let first = accept1(s, accept("ws-a", "evt_1", 2, Some("k1"), 1000)).await;
    assert!(matches!(first, Accepted::New(_)));
    let again = accept1(s, accept("ws-a", "evt_2", 2, Some("k1"), 2000)).await;
    assert!(matches!(again, Accepted::Duplicate(e) if e.id == "evt_1"));
    assert!(s.event("ws-a", "evt_2").await.unwrap().is_none(), "a duplicate stores nothing");
    let other_ws = accept1(s, accept("ws-b", "evt_3", 1, Some("k1"), 2000)).await;
    assert!(matches!(other_ws, Accepted::New(_)), "keys are per workspace");
    let expired = accept1(s, accept("ws-a", "evt_4", 0, Some("k1"), 1000 + 24 * 3600 * 1000)).await;
    assert!(matches!(expired, Accepted::New(_)), "remembered for 24 h only");
    let page = Page { cursor: None, limit: 50 };
    assert_eq!(s.deliveries("ws-a", &DeliveryQuery::default(), &page).await.unwrap().len(), 2);
    let in_one_call = s
        .accept_all(vec![accept("ws-c", "evt_5", 1, Some("k2"), 0), accept("ws-c", "evt_6", 1, Some("k2"), 0)])
        .await
        .unwrap();
    assert!(matches!(&in_one_call[1], Accepted::Duplicate(e) if e.id == "evt_5"), "a key repeated in one group");
}

async fn claims_with_leases_and_ignores_stale_tokens(s: &dyn Store) {
    accept1(s, accept("ws", "evt_1", 1, None, 1000)).await;
    assert!(claim(s, 999, 10, 5000).await.is_empty(), "not due yet");
    let claimed = s.claim_due(plan(1000, 10, 5000)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.as_ref().map(|e| e.id.as_str()), Some("evt_1"), "the event comes with the claim");
    let d = &claimed[0].delivery;
    assert_eq!(d.status, DeliveryStatus::Processing);
    assert!(claim(s, 5999, 10, 5000).await.is_empty(), "leased");
    // The worker died: the lease expires and another worker claims it.
    let reclaimed = claim(s, 6000, 10, 5000).await;
    assert_eq!(reclaimed.len(), 1);
    let stale = d.lease.clone().unwrap();
    let fresh = reclaimed[0].lease.clone().unwrap();
    let n = reclaimed[0].attempt_count + 1;
    assert!(!s.finish_attempt(&d.id, &stale, &record(n, Outcome::Delivered), Next::Completed, 6001).await.unwrap());
    assert!(s.finish_attempt(&d.id, &fresh, &record(n, Outcome::Delivered), Next::Completed, 6001).await.unwrap());
    let done = s.delivery(&d.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.attempt_count, done.due_at), (DeliveryStatus::Completed, 2, None));
    assert!(claim(s, i64::MAX / 2, 10, 5000).await.is_empty(), "completed deliveries are never due");
}

async fn an_expired_lease_is_an_interrupted_attempt_and_three_in_a_row_fail(s: &dyn Store) {
    accept1(s, accept("ws", "evt_1", 1, None, 0)).await;
    let mut now = 0;
    // The first claim is fresh; each later one finds the previous lease expired.
    for i in 0..MAX_INTERRUPTIONS {
        assert_eq!(claim(s, now, 1, 100).await.len(), 1, "claim {i}");
        now += 100; // the process died; its lease runs out
    }
    assert!(claim(s, now, 1, 100).await.is_empty(), "the third interruption fails it instead");
    let d = s.delivery("dlv_evt_1_0").await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.last_outcome, Some(Outcome::Interrupted));
    let attempts = s.attempts(&d.id).await.unwrap();
    assert_eq!(attempts.len() as u32, MAX_INTERRUPTIONS);
    assert!(attempts.iter().all(|a| a.outcome == Outcome::Interrupted));
    assert_eq!(attempts.iter().map(|a| a.n).collect::<Vec<_>>(), (1..=MAX_INTERRUPTIONS).collect::<Vec<_>>());
    let failed = EventQuery { status: Some(EventStatus::Failed), ..Default::default() };
    assert_eq!(s.events("ws", &failed, &Page { cursor: None, limit: 10 }).await.unwrap().len(), 1);

    // A finished attempt resets the count: interruptions must be in a row.
    accept1(s, accept("ws", "evt_2", 1, None, now)).await;
    claim(s, now, 1, 100).await;
    let d = claim(s, now + 100, 1, 100).await.remove(0);
    assert_eq!(d.interruptions, 1);
    let lease = d.lease.clone().unwrap();
    let next = Next::Retry { at: now + 200 };
    s.finish_attempt(&d.id, &lease, &record(2, Outcome::Timeout), next, now + 150).await.unwrap();
    assert_eq!(s.delivery(&d.id).await.unwrap().unwrap().interruptions, 0);
}

async fn retries_waits_and_requeues(s: &dyn Store) {
    accept1(s, accept("ws", "evt_1", 1, None, 0)).await;
    let d = claim(s, 0, 1, 1000).await.remove(0);
    let lease = d.lease.as_deref().unwrap();
    let retry = Next::Retry { at: 500 };
    s.finish_attempt(&d.id, lease, &record(1, Outcome::RejectedServerError), retry, 10).await.unwrap();
    assert_eq!(s.next_due(10).await.unwrap(), Some(500));
    let d = claim(s, 500, 1, 1000).await.remove(0);
    assert!(s.park(&d.id, d.lease.as_deref().unwrap(), 600).await.unwrap());
    assert_eq!(s.delivery(&d.id).await.unwrap().unwrap().status, DeliveryStatus::Waiting);
    assert_eq!(s.waiting(&d.connection).await.unwrap(), std::slice::from_ref(&d.id));
    assert!(claim(s, i64::MAX / 2, 10, 1000).await.is_empty(), "waiting deliveries are not due");
    s.requeue(&d.id, 700, 700).await.unwrap().unwrap();
    assert!(s.waiting(&d.connection).await.unwrap().is_empty());
    assert_eq!(claim(s, 700, 1, 1000).await.len(), 1);
}

async fn claims_respect_each_connections_room(s: &dyn Store) {
    // Three deliveries per event, one per connection (conn_0, conn_1, conn_2).
    for i in 0..4 {
        accept1(s, accept("ws", &format!("evt_{i}"), 3, None, i)).await;
    }
    let mut p = plan(10, 100, 1000);
    p.default_room = 2;
    p.room.insert("conn_0".into(), 0);
    p.room.insert("conn_1".into(), 1);
    let claimed = claim_plan(s, p).await;
    let per = |c: &str| claimed.iter().filter(|d| d.connection == c).count();
    assert_eq!((per("conn_0"), per("conn_1"), per("conn_2")), (0, 1, 2));
    let untouched = s
        .deliveries(
            "ws",
            &DeliveryQuery { connection: Some("conn_0".into()), ..Default::default() },
            &Page { cursor: None, limit: 10 },
        )
        .await
        .unwrap();
    assert!(
        untouched.iter().all(|d| d.status == DeliveryStatus::Pending && d.updated_at < 10),
        "a full connection is skipped, not churned"
    );
    let mut p = plan(10, 3, 1000);
    p.default_room = 10;
    assert_eq!(claim_plan(s, p).await.len(), 3, "the overall limit holds");
}

/// An event of `ws` with one delivery to each of `connections`.
fn accept_to(ws: &str, event: &str, connections: &[&str], now: i64) -> Accept {
    let mut a = accept(ws, event, connections.len(), None, now);
    for (d, c) in a.deliveries.iter_mut().zip(connections) {
        d.connection = c.to_string();
    }
    a
}

async fn claims_take_turns_between_workspaces_within_their_share(s: &dyn Store) {
    for i in 0..6 {
        accept1(s, accept_to("ws-busy", &format!("evt_b{i}"), &["busy_0", "busy_1"], i)).await;
    }
    accept1(s, accept_to("ws-quiet", "evt_q0", &["quiet_0"], 100)).await;
    let turn = |d: &Vec<Delivery>| d.iter().map(|d| d.workspace.clone()).collect::<Vec<_>>();
    let both = claim(s, 200, 2, 1000).await;
    assert_eq!(
        turn(&both),
        ["ws-busy", "ws-quiet"],
        "the quiet workspace's one delivery is not queued behind the backlog"
    );
    accept1(s, accept_to("ws-quiet", "evt_q1", &["quiet_0"], 150)).await;
    assert_eq!(turn(&claim(s, 200, 1, 1000).await), ["ws-busy"], "turns go on from the workspace served last");
    assert_eq!(turn(&claim(s, 200, 1, 1000).await), ["ws-quiet"]);
    let busy = claim(s, 200, 100, 1000).await;
    assert_eq!(busy.len(), 10, "alone, a workspace takes what is due");
    let connections: Vec<&str> = busy.iter().take(4).map(|d| d.connection.as_str()).collect();
    assert!(
        connections[0] != connections[1] && connections[0..2] == connections[2..4],
        "a workspace's connections take turns: {connections:?}"
    );

    // A share: 8 workers, two workspaces with work: at most 4 each in flight.
    accept1(s, accept_to("ws-quiet", "evt_q2", &["quiet_0"], 300)).await;
    accept1(s, accept_to("ws-busy", "evt_b9", &["busy_0", "busy_1"], 300)).await;
    let mut p = plan(400, 100, 1000);
    p.workers = 8;
    p.in_flight = [("ws-busy".to_string(), 4)].into();
    assert_eq!(turn(&claim_plan(s, p).await), ["ws-quiet"], "the busy workspace holds its share already");
    let mut p = plan(400, 100, 1000);
    p.workers = 8;
    p.in_flight = [("ws-busy".to_string(), 5)].into();
    assert_eq!(claim_plan(s, p.clone()).await.len(), 1, "alone, up to three quarters of the workers (6 of 8)");
    p.in_flight = [("ws-busy".to_string(), 6)].into();
    assert!(claim_plan(s, p).await.is_empty(), "and no more");
}

async fn the_cache_keeps_each_connections_quota_and_sweeps_expired_entries(s: &dyn Store) {
    let entry = |value: &str, expires_at: i64| CacheEntry { value: value.into(), expires_at };
    s.cache_set("c2", "neighbour", &entry("v", 10_000)).await.unwrap();
    for i in 0..CACHE_MAX_ENTRIES {
        s.cache_set("c1", &format!("k{i:04}"), &entry("v", 1_000 + i as i64)).await.unwrap();
    }
    s.cache_set("c1", "one-more", &entry("v", 9_000)).await.unwrap();
    assert_eq!(s.cache_get("c1", "k0000", 0).await.unwrap(), None, "the entry expiring soonest made room");
    assert!(s.cache_get("c1", "k0001", 0).await.unwrap().is_some());
    assert!(s.cache_get("c1", "one-more", 0).await.unwrap().is_some());
    assert!(s.cache_get("c2", "neighbour", 0).await.unwrap().is_some(), "another connection is untouched");

    let big = "x".repeat(CACHE_MAX_BYTES / 2);
    s.cache_set("c1", "big-1", &entry(&big, 9_500)).await.unwrap();
    s.cache_set("c1", "big-2", &entry(&big, 9_500)).await.unwrap();
    assert_eq!(s.cache_get("c1", "big-1", 0).await.unwrap(), None, "bytes are a quota too");
    assert!(s.cache_get("c1", "big-2", 0).await.unwrap().is_some());
    s.cache_set("c1", "too-big", &entry(&"x".repeat(CACHE_MAX_BYTES + 1), 9_500)).await.unwrap();
    assert_eq!(s.cache_get("c1", "too-big", 0).await.unwrap(), None, "larger than the quota: not stored");

    assert_eq!(s.cache_sweep(9_600, 10_000).await.unwrap(), 1, "only big-2 was left in c1, expired at 9,500");
    assert_eq!(s.cache_sweep(9_600, 10_000).await.unwrap(), 0);
    assert!(s.cache_get("c2", "neighbour", 0).await.unwrap().is_some());
}

async fn claim_plan(s: &dyn Store, p: ClaimPlan) -> Vec<Delivery> {
    s.claim_due(p).await.unwrap().into_iter().map(|c| c.delivery).collect()
}

async fn lists_by_status_through_indexes_in_full_pages(s: &dyn Store) {
    for i in 0..30 {
        accept1(s, accept("ws", &format!("evt_{i:02}"), 1, None, i)).await;
    }
    // Fail every third delivery, complete the rest.
    for d in claim(s, 100, 100, 1000).await {
        let failed = d.event_id.trim_start_matches("evt_").parse::<u32>().unwrap() % 3 == 0;
        let next = if failed { Next::Failed } else { Next::Completed };
        s.finish_attempt(&d.id, d.lease.as_deref().unwrap(), &record(1, Outcome::Delivered), next, 101).await.unwrap();
    }
    let page = |cursor: Option<String>| Page { cursor, limit: 4 };
    let q = DeliveryQuery { status: Some(DeliveryStatus::Failed), ..Default::default() };
    let first = s.deliveries("ws", &q, &page(None)).await.unwrap();
    assert_eq!(first.len(), 4, "a full page");
    let rest = s.deliveries("ws", &q, &page(first.last().map(|d| d.id.clone()))).await.unwrap();
    assert_eq!(first.len() + rest.len(), 8, "4 + 4 of the 10 failed");
    assert!(first.iter().chain(&rest).all(|d| d.status == DeliveryStatus::Failed));
    let q = EventQuery { status: Some(EventStatus::Failed), ..Default::default() };
    let events = s.events("ws", &q, &Page { cursor: None, limit: 4 }).await.unwrap();
    assert_eq!(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["evt_00", "evt_03", "evt_06", "evt_09"]);
    let q = EventQuery { status: Some(EventStatus::Completed), ..Default::default() };
    assert_eq!(s.events("ws", &q, &Page { cursor: None, limit: 100 }).await.unwrap().len(), 20);
    s.requeue("dlv_evt_00_0", 200, 200).await.unwrap().unwrap();
    let q = EventQuery { status: Some(EventStatus::Processing), ..Default::default() };
    assert_eq!(
        s.events("ws", &q, &Page { cursor: None, limit: 100 }).await.unwrap().len(),
        1,
        "a requeued event is processing again"
    );
}

async fn cancels_and_final_stays_final(s: &dyn Store) {
    accept1(s, accept("ws", "evt_1", 2, None, 0)).await;
    let claimed = claim(s, 0, 10, 60_000).await;
    assert_eq!(claimed.len(), 2);
    let canceled = s.cancel(&claimed[0].id, 6).await.unwrap().unwrap();
    assert_eq!(canceled.status, DeliveryStatus::Canceled);
    assert!(s.cancel(&claimed[0].id, 7).await.unwrap().is_none(), "final deliveries stay final");
}

async fn sweeps_old_final_events_only(s: &dyn Store) {
    accept1(s, accept("ws", "evt_old", 1, None, 0)).await;
    accept1(s, accept("ws", "evt_pending", 1, None, 0)).await;
    let d = claim(s, 0, 10, 1000).await;
    let old = d.iter().find(|d| d.event_id == "evt_old").unwrap();
    s.finish_attempt(&old.id, old.lease.as_deref().unwrap(), &record(1, Outcome::Delivered), Next::Completed, 1)
        .await
        .unwrap();
    assert_eq!(s.sweep(100, 10).await.unwrap(), 1);
    assert!(s.event("ws", "evt_old").await.unwrap().is_none());
    assert!(s.attempts(&old.id).await.unwrap().is_empty());
    assert!(s.event("ws", "evt_pending").await.unwrap().is_some(), "a pending delivery is never removed");
}

async fn reports_a_stuck_operation_without_waiting_for_it(s: &dyn Store) {
    assert!(s.busy_for().is_none());
    s.stall(Duration::from_millis(300)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(s.busy_for().is_some_and(|d| d >= Duration::from_millis(50)), "{:?}", s.busy_for());
    assert!(s.workspace("nope").await.unwrap().is_none(), "queued work runs after the stall");
    assert!(s.busy_for().is_none());
}

async fn survives_reopen(place: Place) {
    {
        let s = place.open().await;
        let s = s.as_ref();
        accept1(s, accept("ws", "evt_1", 1, None, 0)).await;
        accept1(s, accept("ws", "evt_2", 1, None, 50)).await;
        let half = CacheEntry { value: "x".repeat(CACHE_MAX_BYTES / 2), expires_at: 100 };
        s.cache_set("c1", "kept", &half).await.unwrap();
        s.put_connection(&queue_stats::connection("ws", "con_paused", false)).await.unwrap();
    }
    // The first instance's owner thread lets go of the engine shortly after
    // its last handle drops; open retries while the lock is held.
    let s = place.open().await;
    let s = s.as_ref();
    assert!(s.event("ws", "evt_1").await.unwrap().is_some());
    assert_eq!(s.next_due(-1).await.unwrap(), Some(0), "the queue's heads are rebuilt");
    assert_eq!(claim(s, 100, 10, 1000).await.len(), 2);
    assert_eq!(s.cache_sweep(100, 10).await.unwrap(), 1, "the cache's expiry index is rebuilt");
    assert_eq!(s.queue_stats(0).await.unwrap().paused_connections, 1, "paused connections are counted again");
}

/// One `#[tokio::test]` per case and backend.
macro_rules! conformance {
    ($module:ident, $backend:expr, [$($case:ident),* $(,)?]) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let place = Place::new($backend).await;
                    super::$case(&*place.open().await).await;
                }
            )*
            #[tokio::test]
            async fn survives_reopen() {
                super::survives_reopen(Place::new($backend).await).await;
            }
        }
    };
}

macro_rules! every_case {
    ($module:ident, $backend:expr) => {
        conformance!(
            $module,
            $backend,
            [
                accepts_atomically_and_remembers_idempotency_keys,
                claims_with_leases_and_ignores_stale_tokens,
                an_expired_lease_is_an_interrupted_attempt_and_three_in_a_row_fail,
                retries_waits_and_requeues,
                claims_respect_each_connections_room,
                claims_take_turns_between_workspaces_within_their_share,
                the_cache_keeps_each_connections_quota_and_sweeps_expired_entries,
                lists_by_status_through_indexes_in_full_pages,
                cancels_and_final_stays_final,
                sweeps_old_final_events_only,
                reports_a_stuck_operation_without_waiting_for_it,
                counts_the_queue_by_status_with_its_oldest_due_delivery,
                counts_paused_connections_in_every_workspace,
            ]
        );
    };
}

every_case!(fjall, Backend::Fjall);
every_case!(sled, Backend::Sled);
every_case!(postgres, Backend::Postgres);
