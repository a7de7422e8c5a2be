//! Conformance: the queue's numbers (`Store::queue_stats`) that `GET
//! /metrics` shows, alike on every backend. Registered in the suite's
//! `every_case!` list like the cases in `conformance.rs`.

use serde_json::json;

use super::{accept, accept1, claim, record};
use crate::model::Connection;
use crate::outcome::Outcome;
use crate::store::{Next, QueueStats, Store};

/// A connection of `workspace`, paused unless `active`.
pub(super) fn connection(workspace: &str, id: &str, active: bool) -> Connection {
    Connection {
        id: id.into(),
        workspace: workspace.into(),
        name: "hooks".into(),
        connector: "webhook".into(),
        version: "latest".into(),
        settings: json!({}),
        secret_names: vec![],
        sealed_secrets: vec![],
        active,
        inactive_reason: None,
        rate_limit_per_second: None,
        concurrency: None,
        created_at: 0,
        updated_at: 0,
    }
}

pub(super) async fn counts_the_queue_by_status_with_its_oldest_due_delivery(s: &dyn Store) {
    let stats = |now| async move { s.queue_stats(now).await.unwrap() };
    assert_eq!(stats(0).await, QueueStats::default(), "an empty store");

    accept1(s, accept("ws", "evt_1", 3, None, 1000)).await; // conn_0, conn_1, conn_2, due at 1000
    accept1(s, accept("ws", "evt_2", 1, None, 2000)).await; // conn_0, due at 2000
    let queued = QueueStats { pending: 4, ..QueueStats::default() };
    assert_eq!(stats(500).await, queued, "queued, none due yet");
    assert_eq!(stats(1500).await, QueueStats { oldest_due: Some(1000), ..queued });

    let claimed = claim(s, 1500, 10, 10_000).await;
    assert_eq!(claimed.len(), 3);
    let in_flight = QueueStats { pending: 1, processing: 3, ..QueueStats::default() };
    assert_eq!(stats(1500).await, in_flight, "a lease is not due until it expires");

    let nexts = [Next::Retry { at: 3000 }, Next::Wait, Next::Completed];
    for (d, next) in claimed.iter().zip(nexts) {
        let lease = d.lease.as_deref().unwrap();
        assert!(s.finish_attempt(&d.id, lease, &record(1, Outcome::Timeout), next, 1600).await.unwrap());
    }
    let settled = QueueStats { pending: 1, retrying: 1, waiting: 1, ..QueueStats::default() };
    assert_eq!(stats(1600).await, settled, "a final delivery leaves the queue");
    assert_eq!(stats(2500).await, QueueStats { oldest_due: Some(2000), ..settled });

    // evt_2's delivery, leased until 2600 and never finished: due again.
    assert_eq!(claim(s, 2500, 1, 100).await.len(), 1);
    let abandoned = QueueStats { pending: 0, processing: 1, oldest_due: Some(2600), ..settled };
    assert_eq!(stats(3500).await, abandoned, "an expired lease is due, the oldest here");
}

pub(super) async fn counts_paused_connections_in_every_workspace(s: &dyn Store) {
    let paused = || async { s.queue_stats(0).await.unwrap().paused_connections };
    s.put_connection(&connection("ws-a", "con_1", false)).await.unwrap();
    s.put_connection(&connection("ws-a", "con_2", true)).await.unwrap();
    s.put_connection(&connection("ws-b", "con_1", false)).await.unwrap();
    assert_eq!(paused().await, 2);
    s.put_connection(&connection("ws-a", "con_1", true)).await.unwrap();
    assert_eq!(paused().await, 1, "resumed");
    s.put_connection(&connection("ws-b", "con_1", false)).await.unwrap();
    assert_eq!(paused().await, 1, "written again, still one");
    assert!(s.delete_connection("ws-b", "con_1").await.unwrap());
    assert_eq!(paused().await, 0, "deleted");
}
