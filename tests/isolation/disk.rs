//! The disk is shared by every workspace: a connector that writes all the
//! cache it may on every delivery, with new keys each time, keeps its
//! connection within the cache quota (1,000 entries, 1 MiB), so the data
//! dir stays bounded however long it goes on.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::process::ServerProcess;

const DELIVERIES: usize = 200;
/// Bytes the flood writes: 15 values of 64 KiB per delivery.
const ASKED: u64 = DELIVERIES as u64 * 15 * (64 << 10);
/// What the data dir may grow by: the quota, and room for the engine's
/// journals and tables of the other records.
const ALLOWED_GROWTH: u64 = 96 << 20;

fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_of(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0, // removed while we looked: compaction at work
        })
        .sum()
}

#[tokio::test]
async fn a_cache_flood_keeps_the_data_dir_bounded() {
    let server = ServerProcess::start(&[]);
    server.wait_ready().await;
    let ws = server.admin("/api/v1/workspaces", Some(json!({"name": "flooder"}))).await;
    let (id, key) = (ws["id"].as_str().unwrap(), ws["publishable_key"].as_str().unwrap());
    let conn = json!({"connector": "hostile", "name": "filler", "settings": {}});
    let conn = server.admin(&format!("/api/v1/workspaces/{id}/connections"), Some(conn)).await;
    let rule = json!({"event": "fill", "connection": conn["id"], "action": "cache_fill"});
    server.admin(&format!("/api/v1/workspaces/{id}/rules"), Some(rule)).await;
    let before = size_of(&server.data_dir());
    let flood_started = Instant::now();

    let http = reqwest::Client::new();
    for chunk in 0..DELIVERIES / 100 {
        let items: Vec<Value> = (0..100).map(|i| json!({"event": "fill", "payload": {"n": chunk * 100 + i}})).collect();
        let answer = http
            .post(format!("{}/api/v1/events/bulk", server.url()))
            .header("X-Meshes-Publishable-Key", key)
            .json(&items)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "bulk emit: {}", answer.status());
    }
    // Watch the dir while the flood runs, until no delivery is left to run.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut largest = before;
    loop {
        largest = largest.max(size_of(&server.data_dir()));
        let mut left = 0;
        for status in ["pending", "processing"] {
            let page = server.admin(&format!("/api/v1/workspaces/{id}/deliveries?status={status}&limit=1"), None).await;
            left += page["count"].as_u64().unwrap();
        }
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            let some = server.admin(&format!("/api/v1/workspaces/{id}/deliveries?limit=3"), None).await;
            panic!("the flood's deliveries did not finish in 120 s: {some:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // sampling the dir's size
    }
    let completed = format!("/api/v1/workspaces/{id}/deliveries?status=completed&limit=200");
    let sample = server.admin(&format!("/api/v1/workspaces/{id}/deliveries?limit=1"), None).await;
    assert_eq!(server.admin(&completed, None).await["count"], DELIVERIES, "every delivery ran to the end: {sample:#}");
    let growth = largest.saturating_sub(before);
    println!(
        "cache flood: {DELIVERIES} deliveries in {:?} wrote {} MiB; the data dir grew by {} MiB at most",
        flood_started.elapsed(),
        ASKED >> 20,
        growth >> 20
    );
    assert!(
        growth <= ALLOWED_GROWTH,
        "the data dir grew by {} MiB (allowed {} MiB)",
        growth >> 20,
        ALLOWED_GROWTH >> 20
    );
    assert!(server.is_alive());
}
