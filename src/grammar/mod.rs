//! The name grammar, in both directions and in one place (the shape of
//! CoreDNS's `parse.go`): `parse_cluster`, `parse_clusterset` and
//! `parse_reverse` turn a question, relative to the zone it fell in, into a
//! typed name; `build` makes the keys and names the index and the generators
//! use. Only this module knows which label sits where (Kubernetes DNS spec
//! 1.1.0 §2, KEP-1645 §2, design.md §1). Pure functions: no snapshots, no
//! I/O, no Kubernetes types.

mod build;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use build::*;

use crate::dnsname::{QName, parse_dashed_ip};
use crate::zones::Family;

const SVC: &[u8] = b"svc";
const POD: &[u8] = b"pod";
const DNS: &[u8] = b"dns";
const NS: &[u8] = b"ns";
const DNS_VERSION: &[u8] = b"dns-version";
/// The reserved first label of metadata names (design.md §7): no Service,
/// namespace or host name can begin with `_`.
pub const META: &str = "_crossdns";
const META_LABEL: &[u8] = META.as_bytes();

/// `<svc>.<ns>` of a name under `svc.<zone>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRef<'q> {
    /// `<svc>.<ns>` in wire form: the snapshot's service key (`service_key`).
    pub key: &'q [u8],
    pub name: &'q [u8],
    pub namespace: &'q [u8],
}

/// A name under a cluster zone `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterName<'q> {
    /// `Z`: SOA and NS.
    Apex,
    /// `dns-version.Z` (spec §2.1).
    DnsVersion,
    /// `dns.Z`: the empty non-terminal above `ns.dns.Z`.
    Dns,
    /// `ns.dns.Z`: the apex NS target (design.md §1).
    Ns,
    /// `svc.Z`: an empty non-terminal.
    Svc,
    /// `pod.Z`: an empty non-terminal in every `pods` mode (RFC 8020).
    Pods,
    /// `<ns>.svc.Z`.
    Namespace(&'q [u8]),
    /// `<ns>.pod.Z`.
    PodNamespace(&'q [u8]),
    /// `<svc>.<ns>.svc.Z` (spec §2.3.1, §2.4.1, §2.5).
    Service(ServiceRef<'q>),
    /// `<host>.<svc>.<ns>.svc.Z` (spec §2.4.1).
    Host {
        host: &'q [u8],
        service: ServiceRef<'q>,
    },
    /// `_<proto>.<svc>.<ns>.svc.Z`: an empty non-terminal above SRV names,
    /// or nothing.
    Proto {
        proto: &'q [u8],
        service: ServiceRef<'q>,
    },
    /// `_<port>._<proto>.<svc>.<ns>.svc.Z` (spec §2.3.2, §2.4.2).
    Srv {
        /// The two labels in wire form: the service's SRV table key (`srv_key`).
        key: &'q [u8],
        service: ServiceRef<'q>,
    },
    /// `<a-b-c-d>.<ns>.pod.Z`, or a dashed IPv6 address.
    Pod { ip: IpAddr, namespace: &'q [u8] },
    /// `<svc>._crossdns.<ns>.svc.Z`: the Service's clusterset metadata
    /// (`index::meta`). Not below the Service's own name, so that name's
    /// existence does not change.
    ServiceMeta { name: &'q [u8], namespace: &'q [u8] },
    /// `_crossdns.<ns>.svc.Z` and `_crossdns.<ns>.pod.Z`: a namespace that
    /// exists, so that a copy of the zone has its empty non-terminals.
    NamespaceMeta(&'q [u8]),
    /// No name of this shape exists (NXDOMAIN once the data that would say
    /// otherwise is there); `namespace` when it lies under one.
    Nonexistent { namespace: Option<&'q [u8]> },
}

impl ClusterName<'_> {
    /// The namespace the name lies under: it picks the cluster in a shared
    /// zone, and only that cluster's sync matters. `None` for names above
    /// every namespace.
    pub fn namespace(&self) -> Option<&[u8]> {
        match *self {
            ClusterName::Namespace(ns) | ClusterName::PodNamespace(ns) => Some(ns),
            ClusterName::Service(s)
            | ClusterName::Host { service: s, .. }
            | ClusterName::Proto { service: s, .. }
            | ClusterName::Srv { service: s, .. } => Some(s.namespace),
            ClusterName::Pod { namespace, .. } | ClusterName::ServiceMeta { namespace, .. } => {
                Some(namespace)
            }
            ClusterName::NamespaceMeta(ns) => Some(ns),
            ClusterName::Nonexistent { namespace } => namespace,
            ClusterName::Apex
            | ClusterName::DnsVersion
            | ClusterName::Dns
            | ClusterName::Ns
            | ClusterName::Svc
            | ClusterName::Pods => None,
        }
    }
}

/// A name under the clusterset zone `CS` (KEP-1645 naming).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClustersetName<'q> {
    Apex,
    /// `dns-version.CS` (KEP-1645 specification §2.2).
    DnsVersion,
    Dns,
    Ns,
    Svc,
    /// `<ns>.svc.CS`.
    Namespace(&'q [u8]),
    /// `<svc>.<ns>.svc.CS`.
    Service(ServiceRef<'q>),
    /// `_<proto>.<svc>.<ns>.svc.CS`.
    Proto {
        proto: &'q [u8],
        service: ServiceRef<'q>,
    },
    /// `<cluster>.<svc>.<ns>.svc.CS`: holds no records (KEP-1645 §2.3.4,
    /// §2.4.4), but exists above that cluster's host names.
    Cluster {
        cluster: &'q [u8],
        service: ServiceRef<'q>,
    },
    /// `<host>.<cluster>.<svc>.<ns>.svc.CS` (§2.4.1).
    ClusterHost {
        host: &'q [u8],
        cluster: &'q [u8],
        service: ServiceRef<'q>,
    },
    /// `_<port>._<proto>.<svc>.<ns>.svc.CS` (§2.3.2, §2.4.2).
    Srv {
        key: &'q [u8],
        service: ServiceRef<'q>,
    },
    Nonexistent,
}

/// A name under `in-addr.arpa` or `ip6.arpa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReverseName {
    Apex,
    Dns,
    Ns,
    /// Fewer labels than an address, each a valid octet or nibble: an empty
    /// non-terminal above some address (RFC 8020: never NXDOMAIN).
    Partial,
    Address(IpAddr),
    Nonexistent,
}

/// The labels of `name` below a zone apex: `0..len`, label 0 leftmost.
#[derive(Debug, Clone, Copy)]
struct Relative<'q> {
    name: &'q QName,
    len: usize,
}

impl<'q> Relative<'q> {
    fn new(name: &'q QName, len: usize) -> Self {
        Self {
            name,
            len: len.min(name.label_count()),
        }
    }

    /// Label `j` counted from the apex side (0 = the one next to the apex).
    fn top(&self, j: usize) -> &'q [u8] {
        match self.len.checked_sub(j + 1) {
            Some(i) => self.name.label(i),
            None => &[],
        }
    }

    fn label(&self, i: usize) -> &'q [u8] {
        if i < self.len {
            self.name.label(i)
        } else {
            &[]
        }
    }

    /// The service named by the three labels above `svc.<zone>`'s child:
    /// `<svc>.<ns>` sits at positions `len-3..len-1`.
    fn service(&self) -> ServiceRef<'q> {
        let i = self.len.saturating_sub(3);
        ServiceRef {
            key: self.name.span(i, self.len.saturating_sub(1)),
            name: self.name.label(i),
            namespace: self.top(1),
        }
    }

    /// The names every served zone has at its top: apex, `dns`, `ns.dns`.
    fn common(&self) -> Option<Common> {
        match (self.len, self.top(0)) {
            (0, _) => Some(Common::Apex),
            (1, DNS) => Some(Common::Dns),
            (2, DNS) if self.label(0) == NS => Some(Common::Ns),
            (1, DNS_VERSION) => Some(Common::DnsVersion),
            _ => None,
        }
    }
}

enum Common {
    Apex,
    Dns,
    Ns,
    DnsVersion,
}

fn underscored(label: &[u8]) -> bool {
    label.first() == Some(&b'_')
}

/// Parses a name whose labels `0..k` lie below a cluster zone's apex.
pub fn parse_cluster(name: &QName, k: usize) -> ClusterName<'_> {
    let r = Relative::new(name, k);
    if let Some(c) = r.common() {
        return match c {
            Common::Apex => ClusterName::Apex,
            Common::Dns => ClusterName::Dns,
            Common::Ns => ClusterName::Ns,
            Common::DnsVersion => ClusterName::DnsVersion,
        };
    }
    let k = r.len;
    let ns = r.top(1);
    match (r.top(0), k) {
        (SVC, 1) => ClusterName::Svc,
        (POD, 1) => ClusterName::Pods,
        (SVC, 2) => ClusterName::Namespace(ns),
        (POD, 2) => ClusterName::PodNamespace(ns),
        (SVC | POD, 3) if r.label(0) == META_LABEL => ClusterName::NamespaceMeta(ns),
        (SVC, 4) if r.label(1) == META_LABEL => ClusterName::ServiceMeta {
            name: r.label(0),
            namespace: ns,
        },
        (SVC, 3) => ClusterName::Service(r.service()),
        (SVC, 4) if underscored(r.label(0)) => ClusterName::Proto {
            proto: r.label(0),
            service: r.service(),
        },
        (SVC, 4) => ClusterName::Host {
            host: r.label(0),
            service: r.service(),
        },
        (SVC, 5) if underscored(r.label(0)) && underscored(r.label(1)) => ClusterName::Srv {
            key: name.span(0, 2),
            service: r.service(),
        },
        (POD, 3) => match parse_dashed_ip(r.label(0)) {
            Some(ip) => ClusterName::Pod { ip, namespace: ns },
            None => ClusterName::Nonexistent {
                namespace: Some(ns),
            },
        },
        (SVC | POD, _) => ClusterName::Nonexistent {
            namespace: Some(ns),
        },
        _ => ClusterName::Nonexistent { namespace: None },
    }
}

/// Parses a name whose labels `0..k` lie below the clusterset zone's apex.
pub fn parse_clusterset(name: &QName, k: usize) -> ClustersetName<'_> {
    let r = Relative::new(name, k);
    if let Some(c) = r.common() {
        return match c {
            Common::Apex => ClustersetName::Apex,
            Common::Dns => ClustersetName::Dns,
            Common::Ns => ClustersetName::Ns,
            Common::DnsVersion => ClustersetName::DnsVersion,
        };
    }
    if r.top(0) != SVC {
        return ClustersetName::Nonexistent;
    }
    let (first, second) = (r.label(0), r.label(1));
    match r.len {
        1 => ClustersetName::Svc,
        2 => ClustersetName::Namespace(r.top(1)),
        3 => ClustersetName::Service(r.service()),
        4 if underscored(first) => ClustersetName::Proto {
            proto: first,
            service: r.service(),
        },
        4 => ClustersetName::Cluster {
            cluster: first,
            service: r.service(),
        },
        5 if underscored(first) && underscored(second) => ClustersetName::Srv {
            key: name.span(0, 2),
            service: r.service(),
        },
        5 if !underscored(first) && !underscored(second) => ClustersetName::ClusterHost {
            host: first,
            cluster: second,
            service: r.service(),
        },
        _ => ClustersetName::Nonexistent,
    }
}

/// Parses a name whose labels `0..k` lie below `in-addr.arpa` / `ip6.arpa`.
pub fn parse_reverse(family: Family, name: &QName, k: usize) -> ReverseName {
    let r = Relative::new(name, k);
    match r.common() {
        Some(Common::Apex) => return ReverseName::Apex,
        Some(Common::Dns) => return ReverseName::Dns,
        Some(Common::Ns) => return ReverseName::Ns,
        Some(Common::DnsVersion) | None => {}
    }
    let full = match family {
        Family::V4 => 4,
        Family::V6 => 32,
    };
    if r.len > full {
        return ReverseName::Nonexistent;
    }
    // Label `j` from the top is the address's `j`-th octet or nibble.
    let mut v4 = [0u8; 4];
    let mut v6: u128 = 0;
    for j in 0..r.len {
        let label = r.top(j);
        match family {
            Family::V4 => match (octet(label), v4.get_mut(j)) {
                (Some(o), Some(slot)) => *slot = o,
                _ => return ReverseName::Nonexistent,
            },
            Family::V6 => match nibble(label) {
                Some(n) => v6 |= u128::from(n) << (4 * (31 - j)),
                None => return ReverseName::Nonexistent,
            },
        }
    }
    if r.len < full {
        return ReverseName::Partial;
    }
    ReverseName::Address(match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v4)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v6)),
    })
}

/// A decimal octet as `in-addr.arpa` writes it: digits only (no sign), no
/// leading zeros.
fn octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label[0] == b'0') {
        return None;
    }
    let mut value: u16 = 0;
    for &c in label {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u16::from(c - b'0');
    }
    u8::try_from(value).ok()
}

/// One hex digit, as `ip6.arpa` writes each nibble.
fn nibble(label: &[u8]) -> Option<u8> {
    match label {
        [c] => (*c as char).to_digit(16).map(|d| d as u8),
        _ => None,
    }
}
