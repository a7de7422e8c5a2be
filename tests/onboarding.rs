//! The onboarding scenario (issue #4): a user finishes onboarding step 3,
//! the product emits `page.completed` once, and that workspace's HubSpot,
//! ActiveCampaign, Intercom, Slack and webhook destinations all change —
//! while another workspace, with its own credentials, is untouched.

use std::time::Instant;

use serde_json::{Value, json};
use switchboard_tests::WEBHOOK_SECRET;
use switchboard_tests::fakes::{activecampaign, hubspot, intercom, slack};
use switchboard_tests::host::{TestHost, Ws, seed_event};
use switchboard_tests::receiver::{Receiver, reply};
use switchboard_tests::standard_webhooks::verify_call;

struct Fakes {
    hubspot: hubspot::FakeHubSpot,
    activecampaign: activecampaign::FakeActiveCampaign,
    intercom: intercom::FakeIntercom,
    slack: slack::FakeSlack,
    webhook: Receiver,
}

async fn fakes() -> Fakes {
    let hubspot = hubspot::FakeHubSpot::start().await;
    hubspot.define_properties(&["onboarding_step"]);
    Fakes {
        hubspot,
        activecampaign: activecampaign::start().await,
        intercom: intercom::start().await,
        slack: slack::start().await,
        webhook: Receiver::start(|r| reply(if verify_call(WEBHOOK_SECRET, r).is_ok() { 204 } else { 401 }, &[], ""))
            .await,
    }
}

/// One workspace wired to every destination with realistic field templates.
async fn northstar(host: &TestHost, f: &Fakes) -> Ws {
    let ws = host.workspace("northstar-prod").await;
    let routes = [
        (
            json!({"connector": "hubspot", "name": "HubSpot",
                   "settings": {"base_url": f.hubspot.base_url()}, "secrets": {"access_token": hubspot::TOKEN}}),
            "upsert_contact",
            json!({"email": "{{ payload.email }}", "properties": {"onboarding_step": "{{ payload.sequence_step }}"}}),
        ),
        (
            json!({"connector": "activecampaign", "name": "ActiveCampaign",
                   "settings": {"api_url": f.activecampaign.base_url()}, "secrets": {"api_key": activecampaign::API_KEY}}),
            "tag_contact",
            json!({"email": "{{ payload.email }}", "tag": "onboarding-step-{{ payload.sequence_step + 1 }}"}),
        ),
        (
            json!({"connector": "intercom", "name": "Intercom",
                   "settings": {"base_url": f.intercom.base_url()}, "secrets": {"access_token": intercom::TOKEN}}),
            "tag_user",
            json!({"user_id": "{{ payload.user_id }}", "email": "{{ payload.email }}",
                   "tag": "onboarding-step-{{ payload.sequence_step }}-done"}),
        ),
        (
            json!({"connector": "slack", "name": "Slack",
                   "settings": {"mode": "bot", "base_url": f.slack.base_url()}, "secrets": {"bot_token": slack::BOT_TOKEN}}),
            "send_message",
            json!({"channel": slack::ONBOARDING,
                   "text": "{{ payload.email }} finished step {{ payload.sequence_step }}: {{ payload.page_title }}"}),
        ),
        (
            json!({"connector": "webhook", "name": "Data warehouse",
                   "settings": {"url": f.webhook.url("/hooks/onboarding")}, "secrets": {"signing_secret": WEBHOOK_SECRET}}),
            "send_webhook",
            json!({}),
        ),
    ];
    // Every connection first, then the rules that use them.
    let mut rules = Vec::new();
    for (connection, action, fields) in routes {
        rules.push((host.connection(&ws, connection).await, action, fields));
    }
    for (connection, action, fields) in rules {
        let rule = json!({"event": "page.completed", "resource": "onboarding_sequence",
                          "connection": connection, "action": action, "fields": fields});
        host.rule(&ws, rule).await;
    }
    ws
}

/// Every destination in the state the product expects after step 3.
fn assert_onboarded(f: &Fakes) {
    let contact = f.hubspot.contact("alex@northstar.io").expect("HubSpot contact");
    assert_eq!(contact.get("onboarding_step"), Some("3"));
    assert_eq!(f.activecampaign.tags_of("alex@northstar.io"), ["onboarding-step-4"]);
    let user = f.intercom.contact_by_external_id("usr_5012").expect("Intercom user");
    assert_eq!(f.intercom.tag_names(&user.id), ["onboarding-step-3-done"]);
    let posted: Vec<_> = f.slack.messages().into_iter().filter(|m| m.channel == slack::ONBOARDING).collect();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].text, "alex@northstar.io finished step 3: Connect your CRM");
    let hooks = f.webhook.requests();
    assert_eq!(hooks.len(), 1);
    let body: Value = serde_json::from_slice(&hooks[0].body).unwrap();
    assert_eq!((body["type"].as_str(), body["data"]["sequence_step"].as_u64()), (Some("page.completed"), Some(3)));
}

/// Each delivery's connector and attempts, by connector name.
async fn attempts_of(host: &TestHost, ws: &Ws, event: &str) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for d in host.deliveries(ws, event).await {
        let attempts = host.attempts(ws, d["id"].as_str().unwrap()).await;
        out.push((d["connector"].as_str().unwrap().to_string(), attempts));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_3_reaches_every_destination_of_its_workspace_and_no_other() {
    let f = fakes().await;
    let host = TestHost::start().await;
    let ws = northstar(&host, &f).await;

    // A second tenant with its own destination and a rule for later steps only.
    let other_receiver = Receiver::answering(204, "").await;
    let other = host.workspace("acme-prod").await;
    let later_steps = json!({"event": "page.completed", "action": "send_webhook",
                             "filter": {"payload": {"sequence_step": {"$gte": 5}}}});
    host.webhook_route(&other, &other_receiver.url("/acme"), later_steps).await;

    let t = Instant::now();
    let id = host.emit_ok(&ws, seed_event()).await;
    let event = host.settled_event(&ws, &id).await;
    eprintln!("onboarding: 201 to last of 5 deliveries in {:?}", t.elapsed());
    assert_eq!(
        (event["status"].as_str(), event["total_rules"].as_u64(), event["completed_count"].as_u64()),
        (Some("completed"), Some(5), Some(5))
    );
    assert_onboarded(&f);

    let attempts = attempts_of(&host, &ws, &id).await;
    let connectors: Vec<&str> = attempts.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(connectors, ["activecampaign", "hubspot", "intercom", "slack", "webhook"]);
    for (connector, a) in &attempts {
        assert_eq!(a.len(), 1, "{connector}: one attempt");
        assert_eq!(a[0]["outcome"], "delivered", "{connector}: {}", a[0]);
        assert!(!a[0]["steps"].as_array().unwrap().is_empty(), "{connector} recorded its HTTP steps");
    }
    let json = serde_json::to_string(&attempts.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>()).unwrap();
    for secret in [hubspot::TOKEN, activecampaign::API_KEY, intercom::TOKEN, slack::BOT_TOKEN, WEBHOOK_SECRET] {
        assert!(!json.contains(secret), "attempt records never hold a secret");
    }

    // The other workspace heard nothing of it; its own step-5 event reaches it once.
    assert!(other_receiver.requests().is_empty());
    let step_5 = host.emit_event(&other, "page.completed", json!({"email": "kim@acme.io", "sequence_step": 5})).await;
    host.settled_event(&other, &step_5).await;
    assert_eq!(other_receiver.requests().len(), 1);
    assert_eq!(f.slack.messages().len(), 1, "northstar's Slack is untouched by acme's event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_failing_its_own_way_still_completes_with_delays_respected() {
    let f = fakes().await;
    let host = TestHost::start_with(|c| {
        c.retry.schedule = ["0s", "200ms", "200ms", "200ms", "200ms", "200ms"]
            .iter()
            .map(|d| switchboard::config::duration::parse(d).unwrap())
            .collect();
    })
    .await;
    let ws = northstar(&host, &f).await;
    // Each vendor first answers its own rate-limit shape...
    let reset_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 2;
    f.hubspot.fail_next(1, hubspot::Failure::RateLimited(hubspot::Policy::TenSecondlyRolling));
    f.activecampaign.fail_next(1, activecampaign::Failure::RateLimited { retry_after_secs: 1 });
    f.intercom.fail_next(1, intercom::Failure::RateLimited { reset_at });
    f.slack.fail_next(1, slack::Failure::RateLimited { retry_after_secs: 1 });
    // ...then, once that was seen, a 503.
    let id = host.emit_ok(&ws, seed_event()).await;
    host.wait_until("every vendor answered its 429", || async {
        !f.hubspot.calls().is_empty()
            && !f.activecampaign.calls().is_empty()
            && !f.intercom.calls().is_empty()
            && !f.slack.calls().is_empty()
    })
    .await;
    f.hubspot.fail_next(1, hubspot::Failure::Status(503));
    f.activecampaign.fail_next(1, activecampaign::Failure::Unavailable);
    f.intercom.fail_next(1, intercom::Failure::Server(503));
    f.slack.fail_next(1, slack::Failure::ServerError(503));
    let event = host.settled_event(&ws, &id).await;
    assert_eq!(event["status"], "completed", "{event}");
    assert_onboarded(&f);

    let started = |a: &Value| a["started_at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    for (connector, a) in attempts_of(&host, &ws, &id).await {
        if connector == "webhook" {
            continue;
        }
        assert_eq!(a[0]["outcome"], "rate_limited", "{connector}: {}", a[0]);
        let asked =
            a[0]["retry_after_ms"].as_u64().unwrap_or_else(|| panic!("{connector} reported no delay: {}", a[0]));
        assert!(asked >= 1000, "{connector}: the vendor's delay was read ({asked} ms)");
        assert_eq!(a[1]["outcome"], "rejected_server_error", "{connector}: then the 503");
        let waited = started(&a[1]).duration_since(started(&a[0]));
        assert!(
            waited >= jiff::SignedDuration::from_millis(asked as i64),
            "{connector}: asked {asked} ms, waited {waited:#}"
        );
        assert_eq!(a.last().unwrap()["outcome"], "delivered", "{connector}");
        eprintln!("fault pass: {connector}: {} attempts, first delay {asked} ms", a.len());
    }
}
