//! Per-invocation overhead of the webhook connector (issue #2's Measure).
//!
//! Three ways to run the same delivery of a ~300-byte event, with `http.send`
//! answered in-process (no network):
//! - `fresh`:  the production path, `Runtime::invoke` — a new Store and
//!   instance per invocation from the pooling allocator;
//! - `reused`: one instance called again and again (benchmark-only API);
//! - `native`: the connector's Rust logic compiled natively against an
//!   in-process host, i.e. the cost with no sandbox at all.
//!
//! Run: `scripts/bench.sh invocation` (builds the component first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard::egress::EgressPolicy;
use switchboard::outcome::Outcome;
use switchboard::runtime::cache::MemoryCache;
use switchboard::runtime::transport::{FnTransport, InboundResponse};
use switchboard::runtime::{EventData, Invocation, Labels, Runtime, SandboxLimits};
use switchboard::secrets::SecretSet;
use switchboard_connector_webhook::Webhook;
use switchboard_sdk::{Connector, Delivery, Event, Host, KeyEncoding, Level, Request, Response, SendError};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PAYLOAD: &str = r#"{"user_id":"usr_5012","email":"alex@northstar.io","page_id":"page_connect-crm","page_title":"Connect your CRM","sequence_step":3,"completed_at":"2026-03-21T15:06:00Z","time_on_page_seconds":522}"#;
const WARMUP: usize = 2_000;
const ITERATIONS: usize = 20_000;

fn event() -> EventData {
    EventData {
        id: "evt_01JD5Z8Q4X9V2M7K3N6P1R0S8T".into(),
        delivery_id: "dlv_01JD5Z8Q4XA1B2C3D4E5F6G7H8".into(),
        name: "page.completed".into(),
        resource: "onboarding_sequence".into(),
        resource_id: Some("workspace-setup".into()),
        payload: PAYLOAD.into(),
        created_at: "2026-03-21T15:06:00.000Z".into(),
        workspace: "ws_01JD5Z8Q4X".into(),
    }
}

fn invocation() -> Invocation {
    Invocation {
        event: event(),
        action: "send_webhook".into(),
        fields: "{}".into(),
        settings: r#"{"url":"https://hooks.example.com/switchboard"}"#.into(),
        secrets: Arc::new(SecretSet::new([("signing_secret".to_string(), SECRET.to_string())])),
        cache_scope: "conn_bench".into(),
        attempt: 1,
    }
}

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Stats { mean, p50: at(0.50), p99: at(0.99) }
}

/// The native baseline's host: answers 204 and computes the real HMAC.
struct NativeHost {
    key: Vec<u8>,
}

impl Host for NativeHost {
    fn send(&self, request: &Request) -> Result<Response, SendError> {
        std::hint::black_box(request);
        Ok(Response::new(204, Vec::new(), Vec::new()))
    }
    fn cache_get(&self, _: &str) -> Option<String> {
        None
    }
    fn cache_set(&self, _: &str, _: &str, _: u32) {}
    fn hmac_sha256(&self, _: &str, _: KeyEncoding, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).map_err(|e| e.to_string())?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }
    fn has_secret(&self, name: &str) -> bool {
        name == "signing_secret"
    }
    fn log(&self, _: Level, _: &str) {}
}

fn native_delivery() -> Delivery {
    let e = event();
    let ev = Event {
        id: e.id,
        delivery_id: e.delivery_id,
        name: e.name,
        resource: e.resource,
        resource_id: e.resource_id,
        payload: e.payload,
        created_at: e.created_at,
        workspace: e.workspace,
        attempt: 1,
        attempt_time: 1_790_000_000,
    };
    Delivery::new(
        ev,
        "send_webhook",
        serde_json::json!({}),
        serde_json::json!({"url": "https://hooks.example.com/switchboard"}),
    )
}

fn main() {
    let wasm_path = std::env::var("SWITCHBOARD_WEBHOOK_WASM").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/wasm32-wasip2/guest/switchboard_connector_webhook.wasm")
            .to_string()
    });
    let wasm = std::fs::read(&wasm_path).unwrap_or_else(|e| panic!("{wasm_path}: {e} (run scripts/bench.sh)"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let transport = FnTransport(|_req: &_| Ok(InboundResponse { status: 204, headers: Vec::new(), body: Vec::new() }));
    let egress = Arc::new(EgressPolicy::default());
    let runtime =
        Runtime::new(SandboxLimits::default(), egress, Arc::new(transport), Arc::new(MemoryCache::default())).unwrap();
    let connector = rt.block_on(runtime.load(&wasm)).unwrap();
    let inv = invocation();
    let e = &inv.event;
    let event_bytes = [&e.id, &e.delivery_id, &e.name, &e.resource, &e.payload, &e.created_at, &e.workspace]
        .iter()
        .map(|s| s.len())
        .sum::<usize>()
        + e.resource_id.as_ref().map_or(0, String::len);
    println!(
        "component: {} bytes; event record: {event_bytes} bytes ({} of payload); {ITERATIONS} iterations after {WARMUP} warm-up",
        wasm.len(),
        PAYLOAD.len()
    );

    // fresh instance per invocation: the production path
    let fresh = rt.block_on(async {
        for _ in 0..WARMUP {
            let r = runtime.invoke(&connector, inv.clone(), Labels::default()).await;
            assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
        }
        let mut samples = Vec::with_capacity(ITERATIONS);
        for _ in 0..ITERATIONS {
            let inv = inv.clone();
            let t = Instant::now();
            let r = runtime.invoke(&connector, inv, Labels::default()).await;
            samples.push(t.elapsed());
            std::hint::black_box(r);
        }
        stats(samples)
    });

    // one instance reused
    let reused = rt.block_on(async {
        let mut instance = runtime.instantiate_for_benchmark(&connector, inv.secrets.clone()).await.unwrap();
        for _ in 0..WARMUP {
            assert!(instance.deliver(&inv).await.unwrap());
        }
        let mut samples = Vec::with_capacity(ITERATIONS);
        for _ in 0..ITERATIONS {
            let t = Instant::now();
            let ok = instance.deliver(&inv).await.unwrap();
            samples.push(t.elapsed());
            std::hint::black_box(ok);
        }
        stats(samples)
    });

    // the same logic compiled natively
    let host = NativeHost { key: switchboard_sdk::testing::decode_key(SECRET, KeyEncoding::StandardWebhooks).unwrap() };
    let native = {
        let d = native_delivery();
        for _ in 0..WARMUP {
            Webhook::deliver(&host, d.clone()).unwrap();
        }
        let mut samples = Vec::with_capacity(ITERATIONS);
        for _ in 0..ITERATIONS {
            let d = d.clone();
            let t = Instant::now();
            let r = Webhook::deliver(&host, d);
            samples.push(t.elapsed());
            std::hint::black_box(r).unwrap();
        }
        stats(samples)
    };

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("| mode | mean µs | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    for (name, s) in
        [("fresh instance (production)", &fresh), ("reused instance", &reused), ("native (no sandbox)", &native)]
    {
        println!("| {name} | {:.1} | {:.1} | {:.1} |", us(s.mean), us(s.p50), us(s.p99));
    }
    println!();
    println!(
        "sandbox overhead over native, fresh: mean {:.1} µs, p99 {:.1} µs",
        us(fresh.mean) - us(native.mean),
        us(fresh.p99) - us(native.p99)
    );
    println!("fresh / reused (mean): {:.2}x", fresh.mean.as_secs_f64() / reused.mean.as_secs_f64());
}
