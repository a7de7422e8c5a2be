//! What only a shared database has to get right, beyond the conformance
//! suite: two nodes on one database — work signals reach the other node,
//! concurrent claims never hand one delivery to both, a connection's limits
//! and the registry are the same for both, a replay runs on one of them.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::super::{
    Accept, Admission, Backend, ClaimPlan, DatabaseUrl, SharedRegistry, SharedVersion, Store, StoreConfig,
};
use super::PgStore;
use super::scratch::ScratchCluster;
use crate::model::{Delivery, DeliveryStatus, Event};

/// Two stores (two nodes) on one fresh database.
async fn two_nodes() -> (PgStore, PgStore) {
    let url = ScratchCluster::shared().unwrap().database().await.unwrap();
    let config =
        StoreConfig { backend: Backend::Postgres, url: Some(DatabaseUrl::parse(&url).unwrap()), ..Default::default() };
    (PgStore::open(&config).await.unwrap(), PgStore::open(&config).await.unwrap())
}

/// An event with `n` deliveries spread over four connections, due at 0.
fn event(id: &str, n: usize) -> Accept {
    let deliveries: Vec<Delivery> = (0..n)
        .map(|i| Delivery {
            id: format!("dlv_{id}_{i:03}"),
            workspace: "ws".into(),
            event_id: id.into(),
            rule: "rule".into(),
            connection: format!("conn_{}", i % 4),
            connector: "webhook".into(),
            action: "send_webhook".into(),
            fields: json!({}),
            status: DeliveryStatus::Pending,
            attempt_count: 0,
            due_at: Some(0),
            lease: None,
            connector_version: None,
            last_error: None,
            last_outcome: None,
            interruptions: 0,
            created_at: 0,
            updated_at: 0,
        })
        .collect();
    Accept {
        event: Event {
            id: id.into(),
            workspace: "ws".into(),
            event: "page.completed".into(),
            resource: "global".into(),
            resource_id: None,
            payload: "{}".into(),
            created_by: "key".into(),
            created_at: 0,
            delivery_ids: deliveries.iter().map(|d| d.id.clone()).collect(),
        },
        deliveries,
        idempotency: None,
    }
}

/// Wait until both nodes' listeners listen (each has run its `LISTEN`).
async fn both_listening(store: &PgStore) {
    for _ in 0..100 {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'",
        )
        .fetch_one(&store.pool)
        .await
        .unwrap();
        if n >= 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the listeners did not start within 5 s");
}

#[tokio::test]
async fn another_nodes_accept_wakes_this_one() {
    let (this, other) = two_nodes().await;
    both_listening(&this).await;
    // Only what comes from now on: not the listener's own start signal,
    // sent just after its LISTEN.
    let mut signals = this.work_signals().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    while signals.try_recv().is_ok() {}
    other.accept_all(vec![event("evt_1", 1)]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), signals.recv()).await.expect("a signal within 10 s").unwrap();
    other.requeue("dlv_evt_1_000", 5, 5).await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), signals.recv()).await.expect("a requeue signals too").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_share_a_delivery() {
    let (a, b) = two_nodes().await;
    a.accept_all(vec![event("evt_1", 60)]).await.unwrap();
    let plan = ClaimPlan { now: 10, lease_ms: 60_000, limit: 4, default_room: usize::MAX, ..Default::default() };
    let drain = |store: PgStore, plan: ClaimPlan| async move {
        let mut ids = Vec::new();
        let mut empty = 0;
        while empty < 3 {
            let claimed = store.claim_due(plan.clone()).await.unwrap();
            empty = if claimed.is_empty() { empty + 1 } else { 0 };
            ids.extend(claimed.into_iter().map(|c| c.delivery.id));
        }
        ids
    };
    let (from_a, from_b) = tokio::join!(tokio::spawn(drain(a, plan.clone())), tokio::spawn(drain(b, plan)));
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    let all: Vec<&String> = from_a.iter().chain(&from_b).collect();
    let unique: HashSet<&&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no delivery claimed twice");
    assert_eq!(all.len(), 60, "every delivery claimed once: {} by a, {} by b", from_a.len(), from_b.len());
}

#[tokio::test]
async fn text_from_outside_never_fails_a_write() {
    let (store, _) = two_nodes().await;
    let mut hostile = event("evt_nul", 1);
    hostile.event.event = "page\0completed".into();
    let answers = store.accept_all(vec![hostile, event("evt_fine", 1)]).await.unwrap();
    assert!(answers.iter().all(|a| matches!(a, crate::store::Accepted::New(_))), "the group is not failed by one");
    let stored = store.event("ws", "evt_nul").await.unwrap().unwrap();
    assert_eq!(stored.event, "page\u{FFFD}completed", "text cannot hold NUL: replaced");

    let plan = ClaimPlan { now: 10, lease_ms: 1000, limit: 1, default_room: usize::MAX, ..Default::default() };
    let claimed = store.claim_due(plan).await.unwrap().remove(0).delivery;
    let attempt = crate::attempt::AttemptRecord {
        connector: "webhook".into(),
        connector_version: "0.1.0".into(),
        component_sha256: None,
        n: 1,
        started_at: "2026-01-01T00:00:00Z".into(),
        duration_ms: 1.0,
        outcome: crate::outcome::Outcome::RejectedServerError,
        error: Some("the body said \0".into()),
        summary: Some("\0\u{1}".into()),
        retry_after_ms: None,
        steps: vec![],
        logs: vec![],
    };
    let lease = claimed.lease.as_deref().unwrap();
    let next = crate::store::Next::Retry { at: 100 };
    assert!(store.finish_attempt(&claimed.id, lease, &attempt, next, 11).await.unwrap());
    assert_eq!(store.attempts(&claimed.id).await.unwrap(), [attempt], "records are kept exactly");

    let entry = crate::store::CacheEntry { value: "a\0b".into(), expires_at: 100 };
    store.cache_set("conn", "k\0", &entry).await.unwrap();
    assert_eq!(store.cache_get("conn", "k\0", 0).await.unwrap().as_deref(), Some("a\0b"), "cached exactly");
}

#[tokio::test]
async fn a_connections_rate_holds_for_both_nodes_together() {
    let (a, b) = two_nodes().await;
    // 5 a second: a full bucket of five, shared, then one every 200 ms.
    for i in 0..5 {
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(node.admit("conn", Some(5.0), None, 1_000).await.unwrap(), Admission::Admitted, "token {i}");
    }
    assert_eq!(a.admit("conn", Some(5.0), None, 1_000).await.unwrap(), Admission::RetryAt(1_200));
    assert_eq!(b.admit("conn", Some(5.0), None, 1_100).await.unwrap(), Admission::RetryAt(1_200));
    assert_eq!(b.admit("conn", Some(5.0), None, 1_200).await.unwrap(), Admission::Admitted);
    assert_eq!(
        a.admit("other", Some(5.0), None, 1_200).await.unwrap(),
        Admission::Admitted,
        "buckets are per connection"
    );
}

#[tokio::test]
async fn attempts_in_flight_are_counted_on_every_node() {
    let (a, b) = two_nodes().await;
    a.accept_all(vec![event("evt_1", 8)]).await.unwrap(); // two deliveries per connection
    let plan = ClaimPlan { now: 10, lease_ms: 1_000, limit: 8, default_room: usize::MAX, ..Default::default() };
    assert_eq!(a.claim_due(plan).await.unwrap().len(), 8);
    // conn_0 has two leased: a cap of two admits (this one included), of one does not.
    assert_eq!(b.admit("conn_0", None, Some(2), 20).await.unwrap(), Admission::Admitted);
    assert!(matches!(b.admit("conn_0", None, Some(1), 20).await.unwrap(), Admission::RetryAt(_)));
    // Leases that expired (their node died) no longer count.
    assert_eq!(b.admit("conn_0", None, Some(1), 2_000).await.unwrap(), Admission::Admitted);
}

#[tokio::test]
async fn uploads_and_blocks_are_seen_by_every_node() {
    let (a, b) = two_nodes().await;
    assert_eq!(b.shared_registry().await.unwrap(), Some(SharedRegistry::default()));
    let v = SharedVersion { name: "webhook".into(), version: "1.2.0".into(), sha256: "ab12".into() };
    a.share_component(&v, b"\0asm", 5).await.unwrap();
    a.share_block("webhook", "1.1.0", true).await.unwrap();
    let rollout = crate::registry::Release { approved: true, rollout: Some(10), rolled_back: false };
    a.share_release("webhook", "1.2.0", &rollout).await.unwrap();
    let seen = b.shared_registry().await.unwrap().unwrap();
    assert_eq!(seen.uploaded, [v]);
    assert_eq!(seen.blocked, [("webhook".to_string(), "1.1.0".to_string())]);
    assert_eq!(seen.releases, [("webhook@1.2.0".to_string(), rollout)].into());
    a.share_release("webhook", "1.2.0", &crate::registry::Release::default()).await.unwrap();
    assert_eq!(b.shared_component("webhook", "1.2.0").await.unwrap().as_deref(), Some(&b"\0asm"[..]));
    a.share_block("webhook", "1.1.0", false).await.unwrap();
    a.unshare_component("webhook", "1.2.0").await.unwrap();
    assert_eq!(b.shared_registry().await.unwrap(), Some(SharedRegistry::default()));
}

#[tokio::test]
async fn a_replay_job_runs_on_one_node_until_its_hold_passes() {
    let (a, b) = two_nodes().await;
    let job = crate::model::ReplayJob {
        id: "rpl_1".into(),
        workspace: "ws".into(),
        status: DeliveryStatus::Failed,
        connection: None,
        rule: None,
        since: None,
        until: None,
        matched: 0,
        requeued: 0,
        state: crate::model::ReplayState::Pending,
        total: None,
        created_at: 0,
        updated_at: 0,
    };
    a.put_replay(&job).await.unwrap();
    assert!(a.claim_replay("ws", "rpl_1", 1_000, 0).await.unwrap());
    assert!(!b.claim_replay("ws", "rpl_1", 1_500, 500).await.unwrap(), "held by a");
    assert!(a.claim_replay("ws", "rpl_1", 2_000, 900).await.unwrap(), "a renews its hold");
    assert!(!b.claim_replay("ws", "rpl_1", 2_500, 1_500).await.unwrap(), "renewed");
    assert!(b.claim_replay("ws", "rpl_1", 3_000, 2_000).await.unwrap(), "a stopped renewing: b takes over");
    assert!(!a.claim_replay("ws", "rpl_1", 3_500, 2_100).await.unwrap(), "a lost it");
}
