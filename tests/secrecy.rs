//! Secrets never reach the guest, the attempt record or the logs: the guest
//! handles placeholders, the host substitutes them only on the wire.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use switchboard::outcome::Outcome;
use switchboard::runtime::Labels;
use switchboard_tests::receiver::{Receiver, reply};
use switchboard_tests::sandbox::{invocation, load, runtime};

const SECRET: &str = "sk_live_7f3a9c1e-very-secret";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_guest_sees_only_placeholders_even_when_the_receiver_echoes_the_secret() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || sink.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // The receiver echoes everything it got, in headers and body.
    let receiver = Receiver::start(|r| {
        let auth = r.header("authorization").unwrap_or_default().to_string();
        let echo = r.header("x-echo").unwrap_or_default().to_string();
        let body = format!("auth={auth} echo={echo} body={}", r.text());
        reply(200, &[("X-Echoed-Auth", auth.as_str()), ("Set-Cookie", "s=1")], body)
    })
    .await;
    let rt = runtime(true);
    let hostile = load(&rt, "switchboard-fixture-hostile").await;
    let inv = invocation("echo_secret", json!({"url": receiver.url("/echo")}), json!({}), &[("token", SECRET)]);
    let record = rt.invoke(&hostile, inv, Labels::default()).await;
    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");

    // The wire carried the real value: substitution happened.
    let sent = &receiver.requests()[0];
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert!(sent.text().contains(SECRET));

    // The guest saw placeholders only, in headers and body of the echo.
    let summary = record.summary.clone().unwrap();
    assert!(!summary.contains(SECRET), "guest saw the secret: {summary}");
    assert!(summary.contains("auth=Bearer {{ secret.token}}"), "scrubbed to a defused placeholder: {summary}");
    assert!(summary.contains("x-echoed-auth"), "{summary}");

    // The record (as the API would show it) and the logs hold no value.
    let json = serde_json::to_string(&record).unwrap();
    assert!(!json.contains(SECRET), "attempt record leaks the secret: {json}");
    assert!(json.contains("{{secret.token}}"), "the record keeps the placeholder");
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("guest saw"), "the guest's log line reached tracing: {logged}");
    assert!(!logged.contains(SECRET), "logs leak the secret: {logged}");
    assert_eq!(record.steps[0].response.as_ref().unwrap().headers["set-cookie"], "[redacted]");
}

#[tokio::test]
async fn an_unknown_secret_placeholder_is_refused_without_sending() {
    let receiver = Receiver::answering(200, "ok").await;
    let rt = runtime(true);
    let hostile = load(&rt, "switchboard-fixture-hostile").await;
    let inv = invocation("echo_secret", json!({"url": receiver.url("/echo")}), json!({}), &[]);
    let record = rt.invoke(&hostile, inv, Labels::default()).await;
    assert_eq!(record.outcome, Outcome::RejectedClientError);
    assert!(record.error.unwrap().contains("no secret named `token`"));
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn a_placeholder_smuggled_in_an_event_payload_is_never_substituted() {
    let receiver = Receiver::answering(204, "").await;
    let rt = runtime(true);
    let webhook = load(&rt, "switchboard-connector-webhook").await;
    let mut inv = invocation(
        "send_webhook",
        json!({}),
        json!({"url": receiver.url("/hook")}),
        &[("signing_secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), ("bearer_token", SECRET)],
    );
    // Anyone holding the browser-safe publishable key controls the payload.
    inv.event.payload = r#"{"note":"{{secret.bearer_token}}","again":"{{secret.signing_secret}}"}"#.into();
    let record = rt.invoke(&webhook, inv, Labels::default()).await;
    assert_eq!(record.outcome, Outcome::Delivered, "{record:#?}");
    let sent = &receiver.requests()[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {SECRET}").as_str()),
        "the connector's own placeholder works"
    );
    let body = sent.text();
    assert!(!body.contains(SECRET) && !body.contains("MfKQ9r8"), "a payload placeholder leaked a secret: {body}");
    assert!(body.contains(r#""note":"{{ secret.bearer_token}}""#), "{body}");
}
