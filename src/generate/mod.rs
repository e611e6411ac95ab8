//! Config generators (design.md §3): CoreDNS and kube-dns stanzas that send
//! other clusters' zones to crossdns, BIND and knot secondaries of crossdns
//! (§7), StatefulSet `--join` lists and certificate SANs. Everything here is a pure function from settings (and
//! collected StatefulSet data) to text; only `collect` starts watchers, and
//! nothing here serves DNS.

mod collect;
mod names;
mod secondary;
mod stub;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

pub use collect::{DEFAULT_TIMEOUT, collect};
pub use names::{Found, ZoneStyle, join, sans};
pub use secondary::{bind, knot};
pub use stub::{coredns, forwarded_zones, kube_dns};

use crate::index::ObjKey;

/// Everything that stops a generator, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("unknown cluster {name:?}: the config has {known:?}")]
    UnknownCluster { name: String, known: Vec<String> },
    #[error(
        "--address {0:?} is not IP, IP:PORT or tls://IP:PORT#server-name (e.g. 10.0.0.53, 10.0.0.53:5353, tls://10.0.0.53:853#dns.example.com)"
    )]
    BadAddress(String),
    #[error(
        "kube-dns stubDomains cannot use DNS over TLS ({0}): give a plain IP or IP:PORT, or use `generate coredns`"
    )]
    TlsUnsupported(String),
    #[error(
        "--address {0:?}: give IP or IP:PORT (the secondary's primaries/remote address; XFR over TLS is configured by hand)"
    )]
    SecondaryAddress(String),
    #[error(
        "the config has no `transfer:` section, so crossdns refuses every zone transfer: add one (design.md §7) first"
    )]
    NoTransfer,
    #[error("--force-tcp does nothing with a tls:// address: DNS over TLS always runs over TCP")]
    ForceTcpWithTls,
    #[error(
        "--address values must all be plain or all tls:// with one server name: a CoreDNS forward block takes one transport and one tls_servername"
    )]
    MixedAddresses,
    #[error("--statefulset {0:?} is not NAMESPACE/NAME")]
    BadStatefulSet(String),
    #[error("no cluster has StatefulSet {key} (looked in {clusters:?})")]
    StatefulSetNotFound {
        key: StatefulSetRef,
        clusters: Vec<String>,
    },
    #[error("--zone-style clusterset needs clusterset.zone in the config")]
    NoClusterset,
    #[error(
        "StatefulSet {0}'s Service is not exported to the clusterset in any cluster (crossdns.io/export: \"false\"): it has no clusterset names"
    )]
    NotExported(StatefulSetRef),
    #[error("cluster {cluster}: {name:?} is not a valid DNS name: {reason}")]
    BadName {
        cluster: String,
        name: String,
        reason: String,
    },
    #[error(
        "cluster {cluster} did not sync within {timeout:?}: its source is unreachable or failing ({source_desc}); see the log above"
    )]
    NotSynced {
        cluster: String,
        source_desc: String,
        timeout: std::time::Duration,
    },
    #[error(
        "cluster {0} comes from a `primary:` source (a zone transfer), which carries no StatefulSets: run this with a config that watches {0}'s apiserver (kubeconfig) or manifests, e.g. the operator's, which has every cluster's kubeconfig"
    )]
    Transferred(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Where the cluster DNS should send the zones: crossdns's Service address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// Plain DNS over UDP (and TCP on truncation, or always with `force_tcp`).
    Plain(SocketAddr),
    /// DNS over TLS (RFC 7858); `server_name` is checked against the
    /// certificate when given.
    Tls {
        addr: SocketAddr,
        server_name: Option<String>,
    },
}

/// RFC 1035 §4.2: DNS port; RFC 7858 §3.1: DNS over TLS port.
const DNS_PORT: u16 = 53;
const DOT_PORT: u16 = 853;

fn socket_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

impl FromStr for Address {
    type Err = GenerateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GenerateError::BadAddress(s.to_owned());
        match s.strip_prefix("tls://") {
            Some(rest) => {
                let (addr, name) = match rest.split_once('#') {
                    Some((_, "")) => return Err(bad()),
                    Some((a, n)) => (a, Some(n)),
                    None => (rest, None),
                };
                if let Some(n) = name {
                    crate::dnsname::WireName::parse(n).map_err(|_| bad())?;
                }
                Ok(Address::Tls {
                    addr: socket_addr(addr, DOT_PORT).ok_or_else(bad)?,
                    server_name: name.map(str::to_owned),
                })
            }
            None => socket_addr(s, DNS_PORT).map(Address::Plain).ok_or_else(bad),
        }
    }
}

/// `IP` when the port is the default, else `IP:PORT` (`[v6]:PORT`): the
/// spelling both CoreDNS `forward` and kube-dns `stubDomains` accept.
fn host_port(addr: SocketAddr, default_port: u16) -> String {
    if addr.port() == default_port {
        addr.ip().to_string()
    } else {
        addr.to_string()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Plain(a) => f.write_str(&host_port(*a, DNS_PORT)),
            Address::Tls {
                addr,
                server_name: Some(n),
            } => write!(f, "tls://{addr}#{n}"),
            Address::Tls {
                addr,
                server_name: None,
            } => write!(f, "tls://{addr}"),
        }
    }
}

/// Which StatefulSet `join` and `sans` look for: `NAMESPACE/NAME`, or
/// `*/NAME` for that name in every watched namespace (the shared-zone
/// recipes put each region's copy in a namespace named after the region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSetRef {
    /// `None` for `*`.
    pub namespace: Option<String>,
    pub name: String,
}

impl StatefulSetRef {
    pub fn matches(&self, key: &ObjKey) -> bool {
        key.name() == self.name
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace())
    }
}

impl fmt::Display for StatefulSetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.namespace.as_deref().unwrap_or("*"),
            self.name
        )
    }
}

impl FromStr for StatefulSetRef {
    type Err = GenerateError;

    /// Parses `--statefulset NAMESPACE/NAME` (or `*/NAME`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use crate::dnsname::is_rfc1123_label;
        match s.split_once('/') {
            Some((ns, name)) if is_rfc1123_label(name) && (ns == "*" || is_rfc1123_label(ns)) => {
                Ok(StatefulSetRef {
                    namespace: (ns != "*").then(|| ns.to_owned()),
                    name: name.to_owned(),
                })
            }
            _ => Err(GenerateError::BadStatefulSet(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_accepts_ip_ip_port_and_tls() {
        assert_eq!(
            "10.0.0.53".parse::<Address>().expect("ip"),
            Address::Plain("10.0.0.53:53".parse().expect("addr"))
        );
        assert_eq!(
            "10.0.0.53:5353".parse::<Address>().expect("ip:port"),
            Address::Plain("10.0.0.53:5353".parse().expect("addr"))
        );
        assert_eq!(
            "tls://10.0.0.53:853#dns.example.com"
                .parse::<Address>()
                .expect("tls"),
            Address::Tls {
                addr: "10.0.0.53:853".parse().expect("addr"),
                server_name: Some("dns.example.com".to_owned())
            }
        );
        assert_eq!(
            "tls://10.0.0.53".parse::<Address>().expect("tls no port"),
            Address::Tls {
                addr: "10.0.0.53:853".parse().expect("addr"),
                server_name: None
            }
        );
        assert_eq!(
            "[fd00::53]:5353"
                .parse::<Address>()
                .expect("v6")
                .to_string(),
            "[fd00::53]:5353"
        );
        assert_eq!(
            "fd00::53".parse::<Address>().expect("v6").to_string(),
            "fd00::53"
        );
    }

    #[test]
    fn address_refuses_names_and_garbage() {
        for bad in [
            "",
            "dns.example.com",
            "10.0.0.53:",
            "udp://10.0.0.53",
            "tls://10.0.0.53#",
            "tls://dns.example.com:853",
            "tls://10.0.0.53:853#bad name",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn statefulset_is_namespace_slash_name_or_any_namespace() {
        let one: StatefulSetRef = "default/cockroachdb".parse().expect("ok");
        assert!(one.matches(&ObjKey::new("default", "cockroachdb")));
        assert!(!one.matches(&ObjKey::new("other", "cockroachdb")));
        assert_eq!(one.to_string(), "default/cockroachdb");
        let any: StatefulSetRef = "*/cockroachdb".parse().expect("ok");
        assert!(any.matches(&ObjKey::new("us-east1", "cockroachdb")));
        assert!(!any.matches(&ObjKey::new("us-east1", "web")));
        for bad in ["cockroachdb", "/x", "x/", "a/b/c", "Default/x", "*/*"] {
            assert!(
                bad.parse::<StatefulSetRef>().is_err(),
                "{bad:?} was accepted"
            );
        }
    }
}
