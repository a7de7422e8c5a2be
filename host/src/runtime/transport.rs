//! How the host executes a connector's HTTP requests. [`ReqwestTransport`]
//! is the real network (no redirects, no proxy, [`GuardedResolver`] for DNS,
//! [`HostMap`] for vendor hosts the operator points at a fake);
//! [`FnTransport`] answers in-process, for `connector test` fixtures and
//! benchmarks that must not measure a network.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::egress::{Denied, EgressPolicy, GuardedResolver, host_name};

/// A request with secrets already substituted. Never logged or recorded.
#[derive(Clone)]
pub struct OutboundRequest {
    pub method: http::Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
    /// Read at most this many body bytes; more is an error.
    pub max_response_bytes: usize,
}

impl std::fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may hold secrets: show the shape only.
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct InboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Messages may quote the destination (a host name in a resolver error), so
/// whoever shows one to a guest or a record scrubs it with the connection's
/// secrets first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("request timed out")]
    Timeout,
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Interrupted(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Invalid(String),
}

pub type TransportFuture<'a> = Pin<Box<dyn Future<Output = Result<InboundResponse, TransportError>> + Send + 'a>>;

/// Executes outbound requests for connectors.
pub trait Transport: Send + Sync + 'static {
    fn execute(&self, request: OutboundRequest) -> TransportFuture<'_>;
}

/// `[egress] map_hosts` and `connector test --map-host`: a request whose URL
/// host is mapped goes to the mapped address instead, over plain HTTP, with
/// path and query kept and `Host` still the original (staging against a
/// local fake). The URL has already passed the allowed-hosts check, so the
/// manifest still governs; the address is the operator's explicit choice and
/// so is not subject to the private-network rule, except that a cloud
/// metadata address is refused when the map is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostMap(BTreeMap<String, SocketAddr>);

/// A mapping that is not `host = "ip:port"`; `host` as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{host}`: {reason}")]
pub struct BadHostMapping {
    pub host: String,
    pub reason: String,
}

impl HostMap {
    /// Check and normalise `(host, "ip:port")` pairs.
    pub fn parse<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<HostMap, BadHostMapping> {
        let mut map = BTreeMap::new();
        for (host, address) in entries {
            let bad = |reason: String| BadHostMapping { host: host.to_string(), reason };
            let parsed = url::Host::parse(host.trim()).map_err(|e| bad(format!("not a host name ({e})")))?;
            let to: SocketAddr = address
                .trim()
                .parse()
                .map_err(|_| bad(format!("`{address}` is not an IP address and port, such as 127.0.0.1:8081")))?;
            if to.port() == 0 {
                return Err(bad(format!("`{address}` has port 0")));
            }
            // With private networks allowed, only metadata addresses are refused.
            let open = EgressPolicy { allow_private_networks: true, allow_hosts: Vec::new() };
            open.check_ip(to.ip()).map_err(|denied| bad(denied.0))?;
            if map.insert(host_name(&parsed), to).is_some() {
                return Err(bad("is mapped twice".into()));
            }
        }
        Ok(HostMap(map))
    }

    /// `[egress] map_hosts` as the config holds it.
    pub fn from_config(map: &BTreeMap<String, String>) -> Result<HostMap, BadHostMapping> {
        Self::parse(map.iter().map(|(h, a)| (h.as_str(), a.as_str())))
    }

    /// Where a request for `url` goes instead, if its host is mapped.
    pub fn target(&self, url: &url::Url) -> Option<SocketAddr> {
        self.0.get(&host_name(&url.host()?)).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, SocketAddr)> {
        self.0.iter().map(|(h, a)| (h.as_str(), *a))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `url` sent to `to` over plain HTTP, and the `Host` the original names.
fn redirected(url: &url::Url, to: SocketAddr) -> (url::Url, String) {
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let mut target = url.clone();
    // An http(s) URL with a host: each of these succeeds.
    let _ = target.set_scheme("http");
    let _ = target.set_ip_host(to.ip());
    let _ = target.set_port(Some(to.port()));
    target.set_fragment(None);
    (target, host)
}

/// The real network.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    map_hosts: Arc<HostMap>,
}

impl ReqwestTransport {
    pub fn new(policy: Arc<EgressPolicy>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(policy)))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ReqwestTransport { client, map_hosts: Arc::default() })
    }

    /// Send requests for the hosts in `map` to their addresses instead.
    pub fn with_map_hosts(mut self, map: HostMap) -> Self {
        self.map_hosts = Arc::new(map);
        self
    }
}

impl Transport for ReqwestTransport {
    fn execute(&self, req: OutboundRequest) -> TransportFuture<'_> {
        Box::pin(async move {
            let (url, host) = match self.map_hosts.target(&req.url) {
                Some(to) => {
                    let (url, host) = redirected(&req.url, to);
                    (url, Some(host))
                }
                None => (req.url, None),
            };
            let mut builder = self.client.request(req.method, url).timeout(req.timeout).body(req.body);
            for (name, value) in &req.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            // The fake sees the vendor's host, as the vendor would.
            if let Some(host) = host
                && !req.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host"))
            {
                builder = builder.header(http::header::HOST, host);
            }
            let response = builder.send().await.map_err(classify_reqwest)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(classify_reqwest)?;
                if body.len() + chunk.len() > req.max_response_bytes {
                    return Err(TransportError::TooLarge(format!(
                        "response body exceeds the {} byte limit",
                        req.max_response_bytes
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(InboundResponse { status, headers, body })
        })
    }
}

fn classify_reqwest(e: reqwest::Error) -> TransportError {
    // reqwest's Display names the URL, and this URL has the secrets
    // substituted: the message goes to the guest and the attempt record. The
    // record already shows the guest's URL with placeholders; the caller also
    // scrubs what is left (a resolver error naming the host).
    let e = e.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(denied) = err.downcast_ref::<Denied>() {
            return TransportError::Denied(denied.0.clone());
        }
        source = err.source();
    }
    if e.is_timeout() {
        return TransportError::Timeout;
    }
    if e.is_builder() {
        return TransportError::Invalid(error_chain(&e));
    }
    // Only a failure to connect proves the destination saw nothing.
    if e.is_connect() {
        return TransportError::Connect(error_chain(&e));
    }
    TransportError::Interrupted(error_chain(&e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A transport answered by a closure, in-process.
pub struct FnTransport<F>(pub F);

impl<F> Transport for FnTransport<F>
where
    F: Fn(&OutboundRequest) -> Result<InboundResponse, TransportError> + Send + Sync + 'static,
{
    fn execute(&self, request: OutboundRequest) -> TransportFuture<'_> {
        let result = (self.0)(&request);
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> Result<HostMap, BadHostMapping> {
        HostMap::parse(entries.iter().copied())
    }

    #[test]
    fn a_mapped_host_is_found_however_the_url_spells_it() {
        let m = map(&[("API.Vendor.com.", "127.0.0.1:8081")]).unwrap();
        let to: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        for url in ["https://api.vendor.com/v1", "https://API.VENDOR.COM./v1?x=1", "http://api.vendor.com:8443/"] {
            assert_eq!(m.target(&url::Url::parse(url).unwrap()), Some(to), "{url}");
        }
        assert_eq!(m.target(&url::Url::parse("https://eu.api.vendor.com/").unwrap()), None, "exact names only");
    }

    #[test]
    fn the_redirected_url_keeps_path_and_query_and_names_the_original_host() {
        let to: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let (url, host) = redirected(&url::Url::parse("https://api.vendor.com/v1/a%40b?id=1#frag").unwrap(), to);
        assert_eq!((url.as_str(), host.as_str()), ("http://127.0.0.1:8081/v1/a%40b?id=1", "api.vendor.com"));
        let to: SocketAddr = "[::1]:9000".parse().unwrap();
        let (url, host) = redirected(&url::Url::parse("https://api.vendor.com:8443/x").unwrap(), to);
        assert_eq!((url.as_str(), host.as_str()), ("http://[::1]:9000/x", "api.vendor.com:8443"));
    }

    #[test]
    fn a_bad_mapping_names_its_host_and_the_fault() {
        for (host, address, says) in [
            ("api.vendor.com", "localhost:8081", "is not an IP address and port"),
            ("api.vendor.com", "127.0.0.1", "is not an IP address and port"),
            ("api.vendor.com", "127.0.0.1:0", "port 0"),
            ("api.vendor.com", "169.254.169.254:80", "cloud metadata address"),
            ("", "127.0.0.1:8081", "not a host name"),
            ("bad host", "127.0.0.1:8081", "not a host name"),
        ] {
            let err = map(&[(host, address)]).unwrap_err();
            assert!(err.to_string().starts_with(&format!("`{host}`: ")), "{err}");
            assert!(err.reason.contains(says), "{host} = {address}: {err}");
        }
        let twice = map(&[("api.vendor.com", "127.0.0.1:1"), ("API.vendor.com", "127.0.0.1:2")]).unwrap_err();
        assert_eq!(twice.reason, "is mapped twice");
    }
}
