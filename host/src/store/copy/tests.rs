//! `store copy` end to end: an embedded store (fjall, and sled) with a
//! record of every kind and deliveries in every state, copied into a fresh
//! scratch PostgreSQL database, read back record by record.

use std::path::Path;
use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::json;

use super::super::postgres::scratch::ScratchCluster;
use super::super::{
    Accept, Accepted, Backend, ClaimPlan, DatabaseUrl, EmbeddedStore, Engine, EventQuery, Next, Page, PgStore,
    SharedRegistry, SharedVersion, Store, StoreConfig,
};
use super::{CopyError, CopyOptions, copy, source_engine};
use crate::attempt::AttemptRecord;
use crate::model::{
    ApiKey, Connection, Delivery, DeliveryStatus, Event, KeyKind, ReplayJob, ReplayState, Rule, Workspace,
};
use crate::outcome::Outcome;

const WS: &str = "ws-1";
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

fn accept(id: &str, at: i64, idempotency: Option<&str>) -> Accept {
    let delivery = Delivery {
        id: format!("dlv_{id}"),
        workspace: WS.into(),
        event_id: id.into(),
        rule: "rul_1".into(),
        connection: "con_1".into(),
        connector: "webhook".into(),
        action: "send_webhook".into(),
        fields: json!({"to": "{{ payload.email }}"}),
        status: DeliveryStatus::Pending,
        attempt_count: 0,
        due_at: Some(at),
        lease: None,
        connector_version: None,
        last_error: None,
        last_outcome: None,
        interruptions: 0,
        created_at: at,
        updated_at: at,
    };
    Accept {
        event: Event {
            id: id.into(),
            workspace: WS.into(),
            event: "page.completed".into(),
            resource: "user".into(),
            resource_id: Some("u_1".into()),
            payload: format!("{{\"step\":\"{id}\"}}"),
            created_by: "key-1".into(),
            created_at: at,
            delivery_ids: vec![delivery.id.clone()],
        },
        deliveries: vec![delivery],
        idempotency: idempotency.map(str::to_string),
    }
}

fn attempt(n: u32, outcome: Outcome, error: Option<&str>) -> AttemptRecord {
    AttemptRecord {
        connector: "webhook".into(),
        connector_version: "0.1.0".into(),
        component_sha256: Some("ab".repeat(32)),
        n,
        started_at: "2026-01-01T00:00:00Z".into(),
        duration_ms: 12.5,
        outcome,
        error: error.map(str::to_string),
        summary: Some("HTTP 503".into()),
        retry_after_ms: Some(30_000),
        steps: vec![],
        logs: vec![crate::attempt::LogLine { level: "info".into(), message: "trying".into() }],
    }
}

/// Claim the one due delivery at `now`; its lease.
async fn claim(s: &EmbeddedStore, now: i64) -> String {
    let plan = ClaimPlan { now, lease_ms: 45_000, limit: 1, default_room: usize::MAX, ..Default::default() };
    let mut claimed = s.claim_due(plan).await.unwrap();
    assert_eq!(claimed.len(), 1, "one due at {now}");
    claimed.remove(0).delivery.lease.unwrap()
}

/// A workspace with two keys, a connection, a rule, two replay jobs and
/// four events: completed after a retry, retrying, leased (its attempt cut
/// short by the stop), and pending; three with idempotency keys. And an
/// empty workspace. (Pages are of 2 in tests: most kinds span two.)
async fn fill(s: &EmbeddedStore) {
    s.put_workspace(&Workspace { id: WS.into(), name: "Acme".into(), created_at: 1 }).await.unwrap();
    s.put_workspace(&Workspace { id: "ws-2".into(), name: "Empty".into(), created_at: 1 }).await.unwrap();
    let key = ApiKey {
        id: "key-1".into(),
        workspace: WS.into(),
        kind: KeyKind::Secret,
        hash: "f".repeat(64),
        hint: "sk_…abcd".into(),
        created_at: 2,
        revoked_at: None,
    };
    s.put_key(&key).await.unwrap();
    s.put_key(&ApiKey { id: "key-2".into(), hash: "e".repeat(64), revoked_at: Some(9), ..key }).await.unwrap();
    s.put_connection(&Connection {
        id: "con_1".into(),
        workspace: WS.into(),
        name: "hooks".into(),
        connector: "webhook".into(),
        version: "latest".into(),
        settings: json!({"url": "https://example.com/hook"}),
        secret_names: vec!["signing_secret".into()],
        sealed_secrets: vec![0, 1, 2, 254, 255],
        active: true,
        inactive_reason: None,
        rate_limit_per_second: Some(2.5),
        concurrency: Some(4),
        created_at: 3,
        updated_at: 4,
    })
    .await
    .unwrap();
    s.put_rule(&Rule {
        id: "rul_1".into(),
        workspace: WS.into(),
        event: "page.completed".into(),
        resource: Some("user".into()),
        resource_id: None,
        filter: Some(json!({"step": {"$gte": 3}})),
        connection: "con_1".into(),
        action: "send_webhook".into(),
        fields: json!({"to": "{{ payload.email }}"}),
        active: true,
        created_at: 5,
        updated_at: 6,
    })
    .await
    .unwrap();
    for (id, state) in [("rpl_1", ReplayState::Completed), ("rpl_2", ReplayState::Pending)] {
        s.put_replay(&ReplayJob {
            id: id.into(),
            workspace: WS.into(),
            status: DeliveryStatus::Failed,
            connection: Some("con_1".into()),
            rule: None,
            since: Some(0),
            until: None,
            matched: 3,
            requeued: 2,
            state,
            total: None,
            created_at: 7,
            updated_at: 7,
        })
        .await
        .unwrap();
    }

    // Completed on its second attempt.
    s.accept_all(vec![accept("evt_1", 1000, Some("idem-hash-0"))]).await.unwrap();
    let lease = claim(s, 1000).await;
    let failed = attempt(1, Outcome::RejectedServerError, Some("HTTP 503"));
    assert!(s.finish_attempt("dlv_evt_1", &lease, &failed, Next::Retry { at: 1500 }, 1100).await.unwrap());
    let lease = claim(s, 1500).await;
    let done = attempt(2, Outcome::Delivered, None);
    assert!(s.finish_attempt("dlv_evt_1", &lease, &done, Next::Completed, 1600).await.unwrap());
    // Retrying, due later.
    s.accept_all(vec![accept("evt_2", 2000, Some("idem-hash-2"))]).await.unwrap();
    let lease = claim(s, 2000).await;
    let failed = attempt(1, Outcome::RejectedServerError, Some("HTTP 502"));
    assert!(s.finish_attempt("dlv_evt_2", &lease, &failed, Next::Retry { at: 900_000 }, 2100).await.unwrap());
    // Leased when the node stopped.
    s.accept_all(vec![accept("evt_3", 3000, None)]).await.unwrap();
    claim(s, 3000).await;
    // Pending, accepted with an idempotency key.
    let answer = s.accept_all(vec![accept("evt_4", 4000, Some("idem-hash-1"))]).await.unwrap();
    assert!(matches!(answer[..], [Accepted::New(_)]));
}

/// The embedded store in `data`, once the previous instance has let go of
/// its lock (its owner thread closes the engine a moment after the drop).
async fn reopen(engine: Engine, data: &Path) -> EmbeddedStore {
    for _ in 0..100 {
        match EmbeddedStore::open_existing(engine, data, &StoreConfig::default()) {
            Ok(s) => return s,
            Err(CopyError::SourceInUse { .. }) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the store stayed locked");
}

async fn scratch_target() -> PgStore {
    let url = ScratchCluster::shared().unwrap().database().await.unwrap();
    let config =
        StoreConfig { backend: Backend::Postgres, url: Some(DatabaseUrl::parse(&url).unwrap()), ..Default::default() };
    PgStore::open(&config).await.unwrap()
}

#[tokio::test]
async fn copies_every_record_as_it_is_and_requeues_the_leased() {
    copies_everything_from(Engine::Fjall).await;
}

#[tokio::test]
async fn copies_from_sled_too() {
    copies_everything_from(Engine::Sled).await;
}

async fn copies_everything_from(engine: Engine) {
    let data = tempfile::tempdir().unwrap();
    let live = EmbeddedStore::open(engine, &data.path().join("store"), &StoreConfig::default()).unwrap();
    fill(&live).await;
    let err = EmbeddedStore::open_existing(engine, data.path(), &StoreConfig::default()).unwrap_err();
    assert!(matches!(err, CopyError::SourceInUse { .. }), "a running node's store is refused: {err}");
    drop(live);
    let source = reopen(engine, data.path()).await;
    assert_eq!(source.count_events().await.unwrap(), 4);
    let target = scratch_target().await;
    // An uploaded version, blocked, beside the store.
    let uploads = data.path().join("connectors");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("my-crm-1.2.0-rc.1.wasm"), b"\0asm component").unwrap();
    std::fs::write(uploads.join("blocked.json"), br#"["my-crm@1.2.0-rc.1"]"#).unwrap();

    let options = CopyOptions { force: false, uploads: Some(uploads) };
    let copied = copy(&source, &target, &options, &ProgressBar::hidden()).await.unwrap();
    assert_eq!(
        copied.to_string(),
        "2 workspaces, 2 API keys, 1 connections, 1 rules, 4 events, 4 deliveries (1 leased, now queued), \
         3 attempts, 2 replay jobs, 3 idempotency keys, 1 uploaded connector versions (1 blocked)"
    );

    // The catalog, record for record.
    let all = Page::all();
    assert_eq!(target.workspaces(&all).await.unwrap(), source.workspaces(&all).await.unwrap());
    assert_eq!(target.keys(WS).await.unwrap(), source.keys(WS).await.unwrap());
    assert_eq!(target.connections(WS, &all).await.unwrap(), source.connections(WS, &all).await.unwrap());
    assert_eq!(target.rules(WS, &all).await.unwrap(), source.rules(WS, &all).await.unwrap());
    for id in ["rpl_1", "rpl_2"] {
        assert_eq!(target.replay(WS, id).await.unwrap(), source.replay(WS, id).await.unwrap(), "{id}");
    }
    assert_eq!(target.replays_pending().await.unwrap(), source.replays_pending().await.unwrap());
    let (name, version) = ("my-crm".to_string(), "1.2.0-rc.1".to_string());
    let sha256 = crate::runtime::sha256_hex(b"\0asm component");
    let shared = SharedRegistry {
        uploaded: vec![SharedVersion { name: name.clone(), version: version.clone(), sha256 }],
        blocked: vec![(name.clone(), version.clone())],
        releases: Default::default(),
    };
    assert_eq!(target.shared_registry().await.unwrap(), Some(shared));
    assert_eq!(target.shared_component(&name, &version).await.unwrap().as_deref(), Some(&b"\0asm component"[..]));

    // Events, deliveries in their states, attempts.
    let events = source.events(WS, &EventQuery::default(), &all).await.unwrap();
    assert_eq!(target.events(WS, &EventQuery::default(), &all).await.unwrap(), events);
    for event in &events {
        let (from, to) = (source.deliveries_of(event).await.unwrap(), target.deliveries_of(event).await.unwrap());
        assert_eq!(to.len(), 1);
        let (from, to) = (&from[0], &to[0]);
        assert_eq!(target.attempts(&to.id).await.unwrap(), source.attempts(&from.id).await.unwrap(), "{}", from.id);
        if event.id == "evt_3" {
            assert_eq!(from.status, DeliveryStatus::Processing);
            assert!(from.lease.is_some());
            let queued = Delivery { status: DeliveryStatus::Pending, lease: None, ..from.clone() };
            assert_eq!(*to, queued, "leased: queued, due when its lease would have expired");
        } else {
            assert_eq!(to, from);
        }
    }
    let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_1", "evt_2", "evt_3", "evt_4"]);
    let completed = target.delivery("dlv_evt_1").await.unwrap().unwrap();
    assert_eq!((completed.status, completed.attempt_count), (DeliveryStatus::Completed, 2));
    let retrying = target.delivery("dlv_evt_2").await.unwrap().unwrap();
    assert_eq!((retrying.status, retrying.due_at), (DeliveryStatus::Retrying, Some(900_000)));
    assert_eq!(retrying.last_error.as_deref(), Some("HTTP 502"));

    // The new cluster claims the formerly leased one without recording an
    // interruption, and the others when they are due.
    let plan = ClaimPlan { now: 60_000, lease_ms: 45_000, limit: 10, default_room: usize::MAX, ..Default::default() };
    let mut claimed: Vec<String> = target.claim_due(plan).await.unwrap().into_iter().map(|c| c.delivery.id).collect();
    claimed.sort();
    assert_eq!(claimed, ["dlv_evt_3", "dlv_evt_4"]);
    assert!(target.attempts("dlv_evt_3").await.unwrap().is_empty());

    // The idempotency key: still recognised within 24 h of the original...
    let retried = target.accept_all(vec![accept("evt_5", 4000 + IDEMPOTENCY_WINDOW_MS - 1, Some("idem-hash-1"))]);
    assert!(matches!(&retried.await.unwrap()[..], [Accepted::Duplicate(e)] if e.id == "evt_4"));
    let retried = target.accept_all(vec![accept("evt_7", 1000 + IDEMPOTENCY_WINDOW_MS - 1, Some("idem-hash-0"))]);
    assert!(matches!(&retried.await.unwrap()[..], [Accepted::Duplicate(e)] if e.id == "evt_1"));
    // ...and forgotten after, counted from the original's time.
    let late = target.accept_all(vec![accept("evt_6", 4000 + IDEMPOTENCY_WINDOW_MS, Some("idem-hash-1"))]);
    assert!(matches!(&late.await.unwrap()[..], [Accepted::New(_)]));

    // Again into the same database: refused, then merged with --force.
    let refused = copy(&source, &target, &options, &ProgressBar::hidden()).await.unwrap_err();
    assert!(matches!(refused, CopyError::NotEmpty { workspaces: 2, events: 5 }), "{refused}");
    assert!(refused.to_string().contains("--force"), "{refused}");
    let again = copy(&source, &target, &CopyOptions { force: true, ..options }, &ProgressBar::hidden()).await.unwrap();
    assert_eq!(again, copied);
    let leased = target.delivery("dlv_evt_3").await.unwrap().unwrap();
    assert_eq!((leased.status, leased.lease), (DeliveryStatus::Pending, None), "written over as in the source");
}

#[test]
fn the_source_must_be_there_and_unambiguous() {
    let data = tempfile::tempdir().unwrap();
    let none = source_engine(data.path(), None).unwrap_err();
    assert!(matches!(none, CopyError::NoSource(_)), "{none}");
    let err = EmbeddedStore::open_existing(Engine::Fjall, data.path(), &StoreConfig::default()).unwrap_err();
    assert!(matches!(err, CopyError::NoSource(_)), "never creates an empty store: {err}");
    assert!(!data.path().join("store").exists());
    std::fs::create_dir_all(data.path().join("store/sled")).unwrap();
    assert_eq!(source_engine(data.path(), None).unwrap(), Engine::Sled);
    std::fs::create_dir_all(data.path().join("store/fjall")).unwrap();
    assert!(matches!(source_engine(data.path(), None), Err(CopyError::TwoSources(_))));
    assert_eq!(source_engine(data.path(), Some(Engine::Fjall)).unwrap(), Engine::Fjall);
}
