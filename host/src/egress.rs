//! Egress policy: which destinations a connector may reach.
//!
//! Two gates. Before a request, the URL's host must be allowed by the
//! connector's manifest or the operator, and an IP literal must not be a
//! refused address. At connect time, [`GuardedResolver`] resolves names and
//! drops refused addresses, so DNS cannot smuggle a request to a private
//! network (the addresses checked are the ones connected to). Redirects are
//! never followed. Cloud metadata addresses are refused even when private
//! networks are allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// The operator's egress settings plus the policy logic.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Allow loopback, private, link-local and similar addresses (tests,
    /// on-premise receivers). Metadata addresses stay refused.
    pub allow_private_networks: bool,
    /// Hosts allowed for every connector, in addition to each manifest's.
    pub allow_hosts: Vec<String>,
}

impl EgressPolicy {
    /// Check a URL against the allowed host patterns and, for IP literals,
    /// the address rules. Names are checked again at resolution time.
    pub fn check_url(&self, url: &url::Url, manifest_hosts: &[String]) -> Result<(), Denied> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(Denied(format!("scheme `{other}` is not allowed; use http or https"))),
        }
        let host = url.host().ok_or_else(|| Denied(format!("URL `{url}` has no host")))?;
        let name = match &host {
            url::Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        let allowed = manifest_hosts.iter().chain(&self.allow_hosts).any(|pattern| host_matches(pattern, &name));
        if !allowed {
            return Err(Denied(format!("host `{name}` is not in the connector's allowed hosts")));
        }
        match host {
            url::Host::Ipv4(ip) => self.check_ip(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => self.check_ip(IpAddr::V6(ip)),
            url::Host::Domain(_) => Ok(()),
        }
    }

    /// Refuse special-purpose addresses unless private networks are allowed;
    /// always refuse cloud metadata endpoints.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        let ip = canonical(ip);
        if is_metadata(ip) {
            return Err(Denied(format!("{ip} is a cloud metadata address")));
        }
        match special_range(ip) {
            Some(kind) if !self.allow_private_networks => {
                Err(Denied(format!("{ip} is a {kind} address and private networks are not allowed")))
            }
            _ => Ok(()),
        }
    }
}

/// `*` matches any host; `*.example.com` matches subdomains of example.com;
/// anything else matches exactly (case-insensitive).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => pattern == host,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn is_metadata(ip: IpAddr) -> bool {
    const V4: [Ipv4Addr; 3] = [
        Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack
        Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
        Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    ];
    match ip {
        IpAddr::V4(v4) => V4.contains(&v4),
        IpAddr::V6(v6) => v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    }
}

fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("multicast/broadcast")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if a == 100 && (64..128).contains(&b) {
                Some("carrier-grade NAT")
            } else if a >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else {
                None
            }
        }
    }
}

/// A DNS resolver that only returns addresses the policy allows, so the
/// connection is made to an address that was checked.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check_ip(addr.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refused.map(|d| d.0).unwrap_or_else(|| "no addresses".to_string());
                return Err(Box::new(Denied(format!("`{host}` resolves to a refused address: {why}"))) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(private: bool) -> EgressPolicy {
        EgressPolicy { allow_private_networks: private, allow_hosts: vec!["operator.example".into()] }
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn host_patterns() {
        assert!(host_matches("*", "anything.io"));
        assert!(host_matches("api.hubapi.com", "api.hubapi.com"));
        assert!(host_matches("API.HubApi.com", "api.hubapi.com"));
        assert!(!host_matches("api.hubapi.com", "evil-api.hubapi.com"));
        assert!(host_matches("*.api-us1.com", "acme.api-us1.com"));
        assert!(!host_matches("*.api-us1.com", "api-us1.com"));
        assert!(!host_matches("*.api-us1.com", "acme.api-us1.com.evil.io"));
    }

    #[test]
    fn refuses_hosts_outside_the_allow_list() {
        let p = policy(false);
        let hosts = vec!["api.hubapi.com".to_string()];
        assert!(p.check_url(&url("https://api.hubapi.com/x"), &hosts).is_ok());
        assert!(p.check_url(&url("https://operator.example/x"), &hosts).is_ok());
        let denied = p.check_url(&url("https://example.com/x"), &hosts).unwrap_err();
        assert!(denied.0.contains("example.com"), "{denied}");
        assert!(p.check_url(&url("file:///etc/passwd"), &["*".into()]).is_err());
    }

    #[test]
    fn refuses_special_addresses_unless_private_networks_are_allowed() {
        let any = vec!["*".to_string()];
        for addr in [
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://172.16.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[fd12::1]/",
        ] {
            assert!(policy(false).check_url(&url(addr), &any).is_err(), "{addr} must be refused");
            assert!(policy(true).check_url(&url(addr), &any).is_ok(), "{addr} allowed with private networks");
        }
        assert!(policy(false).check_url(&url("http://93.184.215.14/"), &any).is_ok());
    }

    #[test]
    fn metadata_addresses_are_refused_even_with_private_networks() {
        let any = vec!["*".to_string()];
        for addr in
            ["http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/", "http://[::ffff:169.254.169.254]/"]
        {
            let err = policy(true).check_url(&url(addr), &any).unwrap_err();
            assert!(err.0.contains("metadata"), "{addr}: {err}");
        }
    }

    #[tokio::test]
    async fn resolver_drops_refused_addresses() {
        let guarded = GuardedResolver::new(Arc::new(policy(false)));
        let err = guarded.resolve("localhost".parse().unwrap()).await.err().expect("localhost is loopback");
        assert!(err.to_string().contains("refused"), "{err}");
        let open = GuardedResolver::new(Arc::new(policy(true)));
        assert!(open.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
