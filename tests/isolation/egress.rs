//! A connector cannot reach the operator's own machine by another spelling
//!: loopback written as IPv6 with an embedded IPv4 address, or the
//! host's own interface address, is refused in a real sandbox before any
//! connection is made. The unit tests in `host/src/egress.rs` cover every
//! embedded form and the metadata addresses; these prove the outcome.

use std::net::{IpAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use switchboard::attempt::AttemptRecord;
use switchboard::egress::EgressPolicy;
use switchboard::outcome::Outcome;
use switchboard::runtime::cache::MemoryCache;
use switchboard::runtime::transport::ReqwestTransport;
use switchboard::runtime::{Labels, LoadedConnector, Runtime, SandboxLimits};
use switchboard_tests::sandbox::{invocation, load};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The hostile fixture on a runtime whose operator allows every host name,
/// so only the address rules decide.
async fn hostile(allow_private_networks: bool) -> (Runtime, LoadedConnector) {
    let egress = Arc::new(EgressPolicy { allow_private_networks, allow_hosts: vec!["*".into()] });
    let transport = ReqwestTransport::new(egress.clone()).expect("http client");
    let cache = Arc::new(MemoryCache::default());
    let rt = Runtime::new(SandboxLimits::default(), egress, Arc::new(transport), cache).expect("runtime");
    let connector = load(&rt, "switchboard-fixture-hostile").await;
    (rt, connector)
}

async fn send_to((rt, connector): &(Runtime, LoadedConnector), url: &str) -> AttemptRecord {
    rt.invoke(connector, invocation("send_to", json!({"url": url}), json!({}), &[]), Labels::default()).await
}

#[tokio::test]
async fn loopback_embedded_in_ipv6_is_refused_as_loopback() {
    let refusing = hostile(false).await;
    for host in ["[::127.0.0.1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]"] {
        let record = send_to(&refusing, &format!("http://{host}:9/")).await;
        assert_eq!(record.outcome, Outcome::EgressDenied, "{host}: {record:#?}");
        let error = record.error.unwrap_or_default();
        assert!(error.contains("127.0.0.1 (embedded in the") && error.contains("loopback"), "{host}: {error}");
    }
}

/// This machine's source address on its route out, if it has one:
/// connecting a UDP socket consults the routing table and sends nothing.
fn own_outbound_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

#[tokio::test]
async fn the_hosts_own_address_is_refused_unless_private_networks_are_allowed() {
    let Some(own) = own_outbound_address() else {
        eprintln!("skipped: this machine has no route out, so no own non-loopback address to probe");
        return;
    };
    let listener = tokio::net::TcpListener::bind((own, 0)).await.expect("listen on the host's own address");
    let url = format!("http://{}/own", listener.local_addr().expect("listener address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
        }
    });

    let refused = send_to(&hostile(false).await, &url).await;
    assert_eq!(refused.outcome, Outcome::EgressDenied, "{refused:#?}");
    let error = refused.error.unwrap_or_default();
    assert!(error.contains(&own.to_string()) && error.contains("private networks are not allowed"), "{error}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing reached the host's own address");

    // Allowing private networks allows the host's own addresses, as it
    // allows loopback: both reach the same machine.
    let allowed = send_to(&hostile(true).await, &url).await;
    assert_eq!(allowed.outcome, Outcome::Delivered, "{allowed:#?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    server.abort();
}
