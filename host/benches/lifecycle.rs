//! What connector lifecycle checks cost each delivery (issue #13): before
//! an attempt, a connection following `latest` resolves to the newest
//! version whose schemas accept its settings and the delivery's fields
//! (held back otherwise), and every invocation works out which hosts its
//! secrets may reach. Measured against, in the same run: resolving an exact
//! pin (no checks: what every delivery did before), and one whole sandboxed
//! invocation of the same connector (what the check rides along with).
//!
//! Run: `scripts/bench.sh lifecycle` (needs the guest components built).

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use switchboard::egress::EgressPolicy;
use switchboard::registry::{Entry, Origin, Registry};
use switchboard::runtime::cache::MemoryCache;
use switchboard::runtime::transport::{FnTransport, InboundResponse};
use switchboard::runtime::{EventData, Invocation, Labels, LoadedConnector, Runtime, SandboxLimits};
use switchboard::secrets::SecretSet;
use switchboard::validation;

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Nanoseconds per call of `f`, median of [`RUNS`] runs of `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    f();
                }
                t.elapsed().as_nanos() as f64 / n as f64
            })
            .collect(),
    )
}

fn main() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/wasm32-wasip2/guest"));
    let read = |name: &str| {
        let path = dir.join(format!("{name}.wasm"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/bench.sh)", path.display()))
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let transport = FnTransport(|_req: &_| Ok(InboundResponse { status: 204, headers: Vec::new(), body: Vec::new() }));
    let egress = Arc::new(EgressPolicy::default());
    let runtime =
        Runtime::new(SandboxLimits::default(), egress, Arc::new(transport), Arc::new(MemoryCache::default())).unwrap();
    let registry = Registry::default();
    let load = |bytes: Vec<u8>| -> LoadedConnector { rt.block_on(runtime.load(&bytes)).unwrap() };
    let webhook = load(read("switchboard_connector_webhook"));
    let hubspot = load(read("switchboard_connector_hubspot"));
    for connector in [webhook.clone(), hubspot.clone()] {
        registry.register(Entry { connector, origin: Origin::Bundled, compiled: true, blocked: false }).unwrap();
    }

    println!("Per delivery, before the attempt (median of {RUNS} runs, ns per call):");
    println!("| connector | exact pin (no checks) | `latest` with schema checks | ratio | checks alone |");
    println!("|---|---|---|---|---|");
    let cases = [
        (
            "webhook",
            json!({"url": "https://hooks.example.com/in", "headers": {"x-team": "growth"}}),
            vec!["signing_secret".to_string()],
            "send_webhook",
            json!({}),
        ),
        (
            "hubspot",
            json!({"api_version": "2026-03"}),
            vec!["access_token".to_string()],
            "upsert_contact",
            json!({"email": "{{ payload.email }}", "properties": {"onboarding_step": "{{ payload.step }}", "plan": "pro"}}),
        ),
    ];
    let mut checks_ns = 0.0;
    for (name, settings, secrets, action, fields) in &cases {
        let fits = |c: &LoadedConnector| {
            validation::connection(c, settings, secrets).is_empty() && validation::rule(c, action, fields).is_empty()
        };
        let connector = registry.resolve(name, "0.1.0").unwrap();
        assert!(fits(&connector), "{name}: the bench's connection must fit");
        let exact = per_call(200_000, || {
            std::hint::black_box(registry.resolve(name, "0.1.0"));
        });
        let latest = per_call(200_000, || {
            std::hint::black_box(registry.resolve_for(name, "latest", "conn_01JQ4Z8X2M7R5T9V3B6N1C0D8E", &fits));
        });
        let alone = per_call(200_000, || {
            std::hint::black_box(fits(&connector));
        });
        if *name == "webhook" {
            checks_ns = latest;
        }
        println!("| {name} | {exact:.0} | {latest:.0} | {:.1}× | {alone:.0} |", latest / exact);
    }

    // One whole invocation of the webhook connector, for scale.
    let invoke_us = median(
        (0..RUNS)
            .map(|_| {
                let n = 300;
                let t = Instant::now();
                for _ in 0..n {
                    let record = rt.block_on(runtime.invoke(&webhook, invocation(), Labels::default()));
                    std::hint::black_box(record);
                }
                t.elapsed().as_secs_f64() * 1e6 / n as f64
            })
            .collect(),
    );
    println!();
    println!(
        "One webhook invocation (sandbox, signing, one request to an in-memory transport): {invoke_us:.0} µs; \
         the `latest` resolution with checks is {:.2} % of it.",
        checks_ns / 10.0 / invoke_us
    );
}

fn invocation() -> Invocation {
    Invocation {
        event: EventData {
            id: "evt_01JQ4Z8X2M7R5T9V3B6N1C0D8E".into(),
            delivery_id: "dlv_01JQ4Z8X2M7R5T9V3B6N1C0D8E".into(),
            name: "page.completed".into(),
            resource: "global".into(),
            resource_id: None,
            payload: r#"{"email":"ada@example.com","step":3}"#.into(),
            created_at: "2026-03-21T15:06:00.000Z".into(),
            workspace: "ws-01JQ4Z8X2M7R5T9V3B6N1C0D8E".into(),
        },
        action: "send_webhook".into(),
        fields: "{}".into(),
        settings: r#"{"url":"https://hooks.example.com/in"}"#.into(),
        secrets: Arc::new(SecretSet::new([(
            "signing_secret".to_string(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string(),
        )])),
        cache_scope: "conn_01JQ4Z8X2M7R5T9V3B6N1C0D8E".into(),
        attempt: 1,
    }
}
