//! Egress policy: which destinations a connector may reach.
//!
//! Two gates. Before a request, the URL's host must be allowed by the
//! connector's manifest or the operator, and an IP literal must not be a
//! refused address. At connect time, [`GuardedResolver`] resolves names and
//! drops refused addresses, so DNS cannot smuggle a request to a private
//! network (the addresses checked are the ones connected to). Redirects are
//! never followed. Cloud metadata addresses are refused even when private
//! networks are allowed.
//!
//! An IPv6 address that embeds an IPv4 one (IPv4-mapped, IPv4-compatible,
//! NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged by the embedded address,
//! since a dual-stack socket, a translator or a relay may deliver it there.
//! The host's own interface addresses count as private: like loopback, they
//! reach the operator's own machine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// The operator's egress settings plus the policy logic.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Allow loopback, private, link-local and similar addresses, and this
    /// host's own interface addresses (tests, on-premise receivers).
    /// Metadata addresses stay refused.
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
        let name = host_name(&host);
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

    /// Refuse special-purpose addresses and this host's own addresses unless
    /// private networks are allowed; always refuse cloud metadata endpoints.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        self.judge(ip, is_own_address)
    }

    /// [`Self::check_ip`] with the host's own addresses given by `is_own`, so
    /// tests can name an own address that no other rule refuses.
    fn judge(&self, ip: IpAddr, is_own: impl Fn(IpAddr) -> bool) -> Result<(), Denied> {
        let (target, subject) = match embedded_ipv4(ip) {
            Some((v4, form)) => (IpAddr::V4(v4), format!("{v4} (embedded in the {form} address {ip})")),
            None => (ip, ip.to_string()),
        };
        if is_metadata(target) {
            return Err(Denied(format!("{subject} is a cloud metadata address")));
        }
        // Own addresses are allowed along with loopback: an operator who lets
        // connectors reach this machine's loopback gains nothing by refusing
        // its other addresses, and on-premise receivers may listen on them.
        if self.allow_private_networks {
            return Ok(());
        }
        if let Some(kind) = special_range(target) {
            let a = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            return Err(Denied(format!("{subject} is {a} {kind} address and private networks are not allowed")));
        }
        if is_own(ip) || is_own(target) {
            return Err(Denied(format!(
                "{subject} is one of this host's own interface addresses and private networks are not allowed"
            )));
        }
        Ok(())
    }
}

/// A host as the allowed-hosts patterns and `map_hosts` name it: lower
/// case, no trailing dot, IPv6 without brackets.
pub fn host_name<S: AsRef<str>>(host: &url::Host<S>) -> String {
    match host {
        url::Host::Domain(d) => d.as_ref().trim_end_matches('.').to_ascii_lowercase(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
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

/// The IPv4 address an IPv6 address carries, with the form's name.
fn embedded_ipv4(ip: IpAddr) -> Option<(Ipv4Addr, &'static str)> {
    let IpAddr::V6(v6) = ip else { return None };
    let (s, o) = (v6.segments(), v6.octets());
    let last_32_bits = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        Some((v4, "IPv4-mapped"))
    } else if s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback() {
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        Some((last_32_bits, "IPv4-compatible"))
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some((last_32_bits, "NAT64"))
    } else if s[0] == 0x2002 {
        Some((Ipv4Addr::new(o[2], o[3], o[4], o[5]), "6to4"))
    } else {
        None
    }
}

/// How long a read of the host's interface addresses is trusted: interfaces
/// change rarely, and every request is checked.
const OWN_ADDRESSES_REFRESH: Duration = Duration::from_secs(30);

static OWN_ADDRESSES: RwLock<AddressCache> = RwLock::new(AddressCache { read_at: None, addrs: Vec::new() });

/// Whether `ip` is one of this host's interface addresses, from a cache
/// re-read at most every [`OWN_ADDRESSES_REFRESH`].
fn is_own_address(ip: IpAddr) -> bool {
    let now = Instant::now();
    {
        let cache = OWN_ADDRESSES.read().unwrap_or_else(PoisonError::into_inner);
        if cache.is_fresh(now) {
            return cache.addrs.contains(&ip);
        }
    }
    let mut cache = OWN_ADDRESSES.write().unwrap_or_else(PoisonError::into_inner);
    cache.refresh(now, || Ok(if_addrs::get_if_addrs()?.iter().map(if_addrs::Interface::ip).collect()));
    cache.addrs.contains(&ip)
}

#[derive(Debug, Default)]
struct AddressCache {
    read_at: Option<Instant>,
    addrs: Vec<IpAddr>,
}

impl AddressCache {
    fn is_fresh(&self, now: Instant) -> bool {
        self.read_at.is_some_and(|at| now.saturating_duration_since(at) < OWN_ADDRESSES_REFRESH)
    }

    /// Re-read unless fresh. A failed read keeps the last list (the other
    /// rules still apply) and is retried only after the next interval, so a
    /// persistent failure neither stops all egress nor floods the log.
    fn refresh(&mut self, now: Instant, read: impl FnOnce() -> std::io::Result<Vec<IpAddr>>) {
        if self.is_fresh(now) {
            return;
        }
        self.read_at = Some(now);
        match read() {
            Ok(addrs) => self.addrs = addrs,
            Err(e) => {
                tracing::warn!(error = %e, "could not read this host's interface addresses; keeping the last list")
            }
        }
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
        for addr in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::]/",
        ] {
            let err = policy(true).check_url(&url(addr), &any).unwrap_err();
            assert!(err.0.contains("metadata"), "{addr}: {err}");
        }
    }

    #[test]
    fn ipv4_embedded_in_ipv6_is_judged_by_the_embedded_address() {
        let any = vec!["*".to_string()];
        for (addr, form) in [
            ("http://[::127.0.0.1]/", "IPv4-compatible"),
            ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
            ("http://[64:ff9b::7f00:1]/", "NAT64"),
            ("http://[2002:7f00:1::]/", "6to4"),
            ("http://[64:ff9b::a00:1]/", "NAT64"),          // 10.0.0.1
            ("http://[2002:c0a8:1:2::3]/", "6to4"),         // 192.168.0.1
            ("http://[::ffff:100.64.0.1]/", "IPv4-mapped"), // carrier-grade NAT
        ] {
            let err = policy(false).check_url(&url(addr), &any).unwrap_err();
            assert!(err.0.contains(&format!("(embedded in the {form} address ")), "{addr}: {err}");
            assert!(policy(true).check_url(&url(addr), &any).is_ok(), "{addr} allowed with private networks");
        }
        let err = policy(false).check_url(&url("http://[64:ff9b::7f00:1]/"), &any).unwrap_err();
        assert_eq!(
            err.0,
            "127.0.0.1 (embedded in the NAT64 address 64:ff9b::7f00:1) is a loopback address \
             and private networks are not allowed"
        );
        for addr in ["http://[64:ff9b::808:808]/", "http://[2002:808:808::1]/", "http://[::ffff:8.8.8.8]/"] {
            assert!(policy(false).check_url(&url(addr), &any).is_ok(), "{addr} embeds a public address");
        }
    }

    #[test]
    fn ipv6_loopback_and_unspecified_are_not_read_as_embedded_ipv4() {
        for (ip, says) in [("::1", "::1 is a loopback address"), ("::", ":: is an unspecified address")] {
            let err = policy(false).check_ip(ip.parse().unwrap()).unwrap_err();
            assert!(err.0.starts_with(says), "{err}");
        }
    }

    #[test]
    fn the_hosts_own_addresses_are_refused_like_loopback() {
        // 93.184.215.14 is public, so only the own-address rule can refuse it.
        let own = |ip: IpAddr| ip == IpAddr::from([93, 184, 215, 14]);
        for ip in ["93.184.215.14", "::ffff:93.184.215.14", "64:ff9b::5db8:d70e", "2002:5db8:d70e::"] {
            let ip: IpAddr = ip.parse().unwrap();
            let err = policy(false).judge(ip, own).unwrap_err();
            assert!(err.0.contains("is one of this host's own interface addresses"), "{ip}: {err}");
            assert!(policy(true).judge(ip, own).is_ok(), "{ip} allowed with private networks");
        }
        assert!(policy(false).judge("93.184.215.15".parse().unwrap(), own).is_ok());
    }

    /// The real enumeration. With private networks allowed these addresses go
    /// through, by decision: that setting already opens loopback, which
    /// reaches the same machine.
    #[test]
    fn this_machines_interface_addresses_are_refused_unless_private_networks_are_allowed() {
        let interfaces = if_addrs::get_if_addrs().expect("list interfaces");
        for ip in interfaces.iter().map(if_addrs::Interface::ip).filter(|ip| !ip.is_loopback()) {
            let err = policy(false).check_ip(ip).unwrap_err();
            let only_own = special_range(ip).is_none();
            assert!(!only_own || err.0.contains("own interface addresses"), "{ip}: {err}");
            assert!(policy(true).check_ip(ip).is_ok(), "{ip} allowed with private networks");
        }
    }

    #[test]
    fn own_addresses_are_reread_at_most_once_per_interval_and_kept_on_failure() {
        let (start, addr): (Instant, IpAddr) = (Instant::now(), "192.0.2.2".parse().unwrap());
        let mut cache = AddressCache::default();
        cache.refresh(start, || Ok(vec![addr]));
        cache.refresh(start + Duration::from_secs(29), || panic!("re-read within the interval"));
        cache.refresh(start + OWN_ADDRESSES_REFRESH, || Err(std::io::Error::other("netlink")));
        assert_eq!(cache.addrs, [addr], "a failed read keeps the last list");
        cache.refresh(start + 2 * OWN_ADDRESSES_REFRESH, || Ok(Vec::new()));
        assert!(cache.addrs.is_empty());
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
