//! The registry's numbers (issue #5's Measure): compile time per connector,
//! start-up with 5 and 50 registered versions (cold: nothing cached; warm:
//! compiled artifacts in the data dir), upload-to-first-delivery for a new
//! version, and delivery latency p99 with and without a swap mid-stream.
//!
//! Run: `scripts/bench.sh registry` (needs the guest components built).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ADMIN, guests_dir, ms, percentiles, start};
use reqwest::Method;
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::secrets::MasterKey;

fn component(name: &str) -> Vec<u8> {
    std::fs::read(guests_dir().join(format!("{name}.wasm")))
        .unwrap_or_else(|e| panic!("{name}: {e} (run scripts/bench.sh)"))
}

/// The same component made distinct (an extra custom section), so each copy
/// is a separate artifact to compile, as distinct versions would be.
fn distinct(bytes: &[u8], n: usize) -> Vec<u8> {
    let name = format!("bench-copy-{n}");
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

async fn startup(dir: &std::path::Path, connectors: &std::path::Path) -> Duration {
    let config = Config {
        data_dir: dir.to_path_buf(),
        admin_token: Some(ADMIN.into()),
        master_key: Some(MasterKey::generate()),
        connectors_dir: Some(connectors.to_path_buf()),
        ..Config::default()
    };
    let t = Instant::now();
    let app = switchboard::server::build(config).await.unwrap();
    let took = t.elapsed();
    drop(app);
    // The store's writer task lets go of the database asynchronously.
    tokio::time::sleep(Duration::from_millis(500)).await;
    took
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let names = [
            "switchboard_connector_webhook",
            "switchboard_connector_hubspot",
            "switchboard_connector_activecampaign",
            "switchboard_connector_intercom",
            "switchboard_connector_slack",
        ];
        // Compile (and describe) each bundled connector, no cache.
        let runtime = {
            let egress = Arc::new(switchboard::egress::EgressPolicy::default());
            let transport = switchboard::runtime::transport::FnTransport(|_: &_| {
                Err(switchboard::runtime::transport::TransportError::Timeout)
            });
            switchboard::runtime::Runtime::new(
                Default::default(),
                egress,
                Arc::new(transport),
                Arc::new(switchboard::runtime::cache::MemoryCache::default()),
            )
            .unwrap()
        };
        println!("| connector | component KiB | compile + describe ms |");
        println!("|---|---:|---:|");
        for name in names {
            let bytes = component(name);
            let t = Instant::now();
            runtime.load(&bytes).await.unwrap();
            println!(
                "| {} | {} | {:.0} |",
                name.trim_start_matches("switchboard_connector_"),
                bytes.len() / 1024,
                ms(t.elapsed())
            );
        }

        println!();
        println!("| start-up with | cold (compile all) ms | cached artifacts ms |");
        println!("|---|---:|---:|");
        for count in [5usize, 50] {
            let connectors = tempfile::tempdir().unwrap();
            for i in 0..count {
                let bytes = distinct(&component(names[i % names.len()]), i);
                std::fs::write(connectors.path().join(format!("v{i:03}.wasm")), bytes).unwrap();
            }
            let data = tempfile::tempdir().unwrap();
            let cold = startup(data.path(), connectors.path()).await;
            let warm = startup(data.path(), connectors.path()).await;
            println!("| {count} versions | {:.0} | {:.0} |", ms(cold), ms(warm));
        }

        // A running service with echo 1.0.0 serving a `latest` connection.
        // (event id, arrival, version) per delivery.
        let arrivals: Arc<Mutex<Vec<(String, Instant, String)>>> = Arc::default();
        let seen = arrivals.clone();
        let receiver = common::receiver("/echo", false, move |body| {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let event = v["event_id"].as_str().unwrap_or("").to_string();
            seen.lock().unwrap().push((event, Instant::now(), v["version"].as_str().unwrap_or("").to_string()));
        })
        .await;
        let bundled = tempfile::tempdir().unwrap();
        std::fs::write(bundled.path().join("echo.wasm"), component("switchboard_fixture_echo_v1")).unwrap();
        let bundled_dir = bundled.path().to_path_buf();
        let service = start(move |c| c.connectors_dir = Some(bundled_dir)).await;
        let (ws, key) = service.workspace().await;
        let conn = service
            .admin(
                Method::POST,
                &format!("/api/v1/workspaces/{ws}/connections"),
                json!({"connector": "echo", "name": "e", "settings": {"url": receiver}}),
            )
            .await;
        service
            .admin(
                Method::POST,
                &format!("/api/v1/workspaces/{ws}/rules"),
                json!({"event": "tick", "connection": conn["id"], "action": "send"}),
            )
            .await;
        let emit = |n: usize| {
            let (client, url, key) = (service.client.clone(), format!("{}/api/v1/events", service.url), key.clone());
            async move {
                let r = client
                    .post(url)
                    .header("X-Meshes-Publishable-Key", key)
                    .json(&json!({"event": "tick", "payload": {"n": n}}))
                    .send()
                    .await
                    .unwrap();
                let body: Value = r.json().await.unwrap();
                body["event"]["id"].as_str().unwrap().to_string()
            }
        };
        // Steady 200 events/s for 5 s; returns emit-to-arrival latencies.
        let stream = |upload: Option<Vec<u8>>| {
            let arrivals = arrivals.clone();
            let (client, url) = (service.client.clone(), format!("{}/api/v1/connectors/echo", service.url));
            async move {
                arrivals.lock().unwrap().clear();
                let mut sent = Vec::new();
                let mut upload_started = None;
                let mut ticker = tokio::time::interval(Duration::from_millis(5));
                for n in 0..1000 {
                    ticker.tick().await;
                    if n == 500
                        && let Some(bytes) = &upload
                    {
                        upload_started = Some(Instant::now());
                        let (client, url, bytes) = (client.clone(), url.clone(), bytes.clone());
                        tokio::spawn(async move {
                            let r = client.put(url).bearer_auth(ADMIN).body(bytes).send().await.unwrap();
                            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
                        });
                    }
                    let t = Instant::now();
                    sent.push((emit(n).await, t));
                }
                while arrivals.lock().unwrap().len() < 1000 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let got = arrivals.lock().unwrap().clone();
                let first_v2 = got.iter().filter(|(_, _, v)| v == "2.0.0").map(|(_, t, _)| *t).min();
                let upload_to_first = upload_started.zip(first_v2).map(|(u, f)| f.saturating_duration_since(u));
                let sent_at: std::collections::HashMap<&str, Instant> =
                    sent.iter().map(|(id, t)| (id.as_str(), *t)).collect();
                let latencies =
                    got.iter().map(|(id, t, _)| t.saturating_duration_since(sent_at[id.as_str()])).collect();
                (percentiles(latencies), upload_to_first, got)
            }
        };
        let (steady, _, _) = stream(None).await;
        let (swapping, upload_to_first, got) = stream(Some(component("switchboard_fixture_echo_v2"))).await;
        let v2 = got.iter().filter(|(_, _, v)| v == "2.0.0").count();

        println!();
        println!("| delivery latency, 200 events/s for 5 s | p50 ms | p99 ms |");
        println!("|---|---:|---:|");
        println!("| no swap | {:.1} | {:.1} |", ms(steady.p50), ms(steady.p99));
        println!(
            "| echo 2.0.0 uploaded mid-stream ({v2} of 1000 delivered by it) | {:.1} | {:.1} |",
            ms(swapping.p50),
            ms(swapping.p99)
        );
        println!();
        println!(
            "upload-to-first-delivery of the new version (PUT sent → first delivery by 2.0.0 arrives): {:.0} ms",
            ms(upload_to_first.unwrap())
        );

        service.shutdown.cancel();
    });
}
