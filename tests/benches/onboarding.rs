//! The onboarding scenario at volume (issue #4's Measure): 5,000
//! `page.completed` events across 10 workspaces, each workspace wired to
//! HubSpot, ActiveCampaign, Intercom, Slack and a webhook (the faithful fakes
//! on loopback, their rate limits off). Reports delivered/s and the latency
//! from an event's creation to the end of its last delivery, from the
//! attempt records the management API returns.
//!
//! Run: `cargo bench -p switchboard-tests --bench onboarding`.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::fakes::{activecampaign, hubspot, intercom, slack};
use switchboard_tests::host::{TestHost, Ws};
use switchboard_tests::receiver::Receiver;

const WORKSPACES: usize = 10;
const EVENTS: usize = 5_000;

async fn connection(host: &TestHost, ws: &Ws, body: Value) -> String {
    let v = host
        .admin(Method::POST, &format!("/api/v1/workspaces/{}/connections", ws.id), Some(body), StatusCode::CREATED)
        .await;
    v["id"].as_str().unwrap().to_string()
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let hs = hubspot::FakeHubSpot::start().await;
        hs.define_properties(&["onboarding_step"]);
        let ac = activecampaign::start().await;
        let ic = intercom::start().await;
        let sl = slack::start().await;
        let hook = Receiver::answering(204, "").await;
        let host = TestHost::start_with(|c| {
            c.delivery.per_connection_concurrency = 16;
            c.sandbox.max_concurrent_instances = 128;
        })
        .await;
        let mut workspaces = Vec::new();
        for w in 0..WORKSPACES {
            let ws = host.workspace(&format!("tenant-{w}")).await;
            let conns = [
                (connection(&host, &ws, json!({"connector": "hubspot", "name": "hs", "settings": {"base_url": hs.base_url()}, "secrets": {"access_token": hubspot::TOKEN}, "rate_limit_per_second": 10000.0})).await, "upsert_contact",
                 json!({"email": "{{ payload.email }}", "properties": {"onboarding_step": "{{ payload.sequence_step }}"}})),
                (connection(&host, &ws, json!({"connector": "activecampaign", "name": "ac", "settings": {"api_url": ac.base_url()}, "secrets": {"api_key": activecampaign::API_KEY}, "rate_limit_per_second": 10000.0})).await, "tag_contact",
                 json!({"email": "{{ payload.email }}", "tag": "onboarding-step-{{ payload.sequence_step + 1 }}"})),
                (connection(&host, &ws, json!({"connector": "intercom", "name": "ic", "settings": {"base_url": ic.base_url()}, "secrets": {"access_token": intercom::TOKEN}, "rate_limit_per_second": 10000.0})).await, "tag_user",
                 json!({"user_id": "{{ payload.user_id }}", "email": "{{ payload.email }}", "tag": "step-{{ payload.sequence_step }}"})),
                (connection(&host, &ws, json!({"connector": "slack", "name": "sl", "settings": {"mode": "bot", "base_url": sl.base_url()}, "secrets": {"bot_token": slack::BOT_TOKEN}, "rate_limit_per_second": 10000.0})).await, "send_message",
                 json!({"channel": slack::ONBOARDING, "text": "{{ payload.email }} finished step {{ payload.sequence_step }}"})),
                (connection(&host, &ws, json!({"connector": "webhook", "name": "wh", "settings": {"url": hook.url("/h")}, "secrets": {"signing_secret": WEBHOOK_SECRET}})).await, "send_webhook", json!({})),
            ];
            for (conn, action, fields) in conns {
                host.rule(&ws, json!({"event": "page.completed", "connection": conn, "action": action, "fields": fields})).await;
            }
            workspaces.push(ws);
        }

        let client = reqwest::Client::new();
        let started = Instant::now();
        let mut ids: Vec<(usize, String)> = Vec::new();
        for chunk in 0..EVENTS / 100 {
            let w = chunk % WORKSPACES;
            let batch: Vec<Value> = (0..100)
                .map(|i| {
                    let n = chunk * 100 + i;
                    json!({"event": "page.completed", "resource": "onboarding_sequence", "payload": {
                        "user_id": format!("usr_{n}"), "email": format!("user{n}@northstar.io"), "page_id": "page_connect-crm",
                        "page_title": "Connect your CRM", "sequence_step": 3}})
                })
                .collect();
            let res = client
                .post(format!("{}/api/v1/events/bulk", host.url))
                .header("X-Meshes-Publishable-Key", &workspaces[w].publishable)
                .json(&batch)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            let body: Value = res.json().await.unwrap();
            ids.extend(body["records"].as_array().unwrap().iter().map(|r| (w, r["id"].as_str().unwrap().to_string())));
        }
        let ingested = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(900);
        for (w, id) in &ids {
            host.settled_event(&workspaces[*w], id).await;
            assert!(Instant::now() < deadline);
        }
        let settled = started.elapsed();

        let mut latencies = Vec::new();
        let mut first_created: Option<jiff::Timestamp> = None;
        let mut last_end: Option<jiff::Timestamp> = None;
        let mut failed = 0;
        for (w, id) in &ids {
            let ws = &workspaces[*w];
            let event = host.admin(Method::GET, &format!("/api/v1/workspaces/{}/events/{id}", ws.id), None, StatusCode::OK).await;
            failed += event["failed_count"].as_u64().unwrap();
            let created = ts(&event["created_at"]);
            let deliveries = host.admin(Method::GET, &format!("/api/v1/workspaces/{}/events/{id}/deliveries", ws.id), None, StatusCode::OK).await;
            let mut end = created;
            for d in deliveries["records"].as_array().unwrap() {
                let a = host.admin(Method::GET, &format!("/api/v1/workspaces/{}/deliveries/{}/attempts", ws.id, d["id"].as_str().unwrap()), None, StatusCode::OK).await;
                for attempt in a["records"].as_array().unwrap() {
                    let finish = ts(&attempt["started_at"]) + jiff::SignedDuration::from_secs_f64(attempt["duration_ms"].as_f64().unwrap() / 1000.0);
                    end = end.max(finish);
                }
            }
            latencies.push(end.duration_since(created));
            first_created = Some(first_created.map_or(created, |f| f.min(created)));
            last_end = Some(last_end.map_or(end, |l| l.max(end)));
        }
        latencies.sort();
        let span = last_end.unwrap().duration_since(first_created.unwrap()).as_secs_f64();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!("| measure | value |");
        println!("|---|---:|");
        println!("| events / workspaces / deliveries | {EVENTS} / {WORKSPACES} / {} |", EVENTS * 5);
        println!("| ingest (bulk x100) | {:.2} s |", ingested.as_secs_f64());
        println!("| all settled (as polled) | {:.2} s |", settled.as_secs_f64());
        println!("| failed deliveries | {failed} |");
        println!("| delivered/s (first event created to last delivery finished) | {:.0} |", (EVENTS * 5) as f64 / span);
        println!("| event-to-last-delivery p50 | {:.0} ms |", at(0.5).as_secs_f64() * 1000.0);
        println!("| event-to-last-delivery p99 | {:.0} ms |", at(0.99).as_secs_f64() * 1000.0);
    });
}
