//! The name grammar, in one place: what a name under a cluster zone or a
//! reverse zone means (Kubernetes DNS spec 1.1.0 §2, design.md §1), and what
//! exists. Reads snapshots; never sees Kubernetes types.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::wire::QName;
use crate::config::PodsMode;
use crate::dnsname::{WireName, parse_dashed_ip};
use crate::index::{ClusterHandle, Node, Snapshot};

/// A cluster serving (part of) a zone: all namespaces, or only these.
#[derive(Debug)]
pub struct Member {
    pub namespaces: Vec<Box<[u8]>>,
    pub cluster: Arc<ClusterHandle>,
}

impl Member {
    fn serves(&self, ns: &[u8]) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n.as_ref() == ns)
    }
}

/// What a name is, for the response writer.
#[derive(Debug)]
pub enum Found<'s> {
    /// The zone apex: SOA and NS.
    Apex,
    /// `dns-version.<zone>`: TXT "1.1.0" (spec §2.1).
    DnsVersion,
    /// Pre-encoded records at the name.
    Node(&'s Node),
    /// An address synthesized from the name (pod records).
    Address(IpAddr),
    /// Reverse names for an address.
    Ptr(&'s [WireName]),
    /// Records assembled at query time (the clusterset's merged answers).
    Merged(super::clusterset::Merged),
    /// The name exists with no records (an empty non-terminal).
    Nodata,
    Nxdomain,
    /// Data for the name is not available yet (cluster never synced).
    Servfail,
}

/// Looks up `name`, whose labels `0..k` are relative to a cluster zone, and
/// hands the result to `f` while the snapshot it borrows is still loaded.
pub fn cluster_zone<R>(
    members: &[Member],
    name: &QName,
    k: usize,
    f: impl FnOnce(Found<'_>) -> R,
) -> R {
    // Names not tied to one namespace answer only once every cluster of the
    // zone has synced: before that the zone says SERVFAIL, never NXDOMAIN.
    let all_synced = || members.iter().all(|m| m.cluster.status.synced());
    let top = (k > 0).then(|| name.label(k - 1));
    let namespaced = matches!(top, Some(b"svc" | b"pod")) && k >= 2;
    if !namespaced && !all_synced() {
        return f(Found::Servfail);
    }
    let Some(top) = top else {
        return f(Found::Apex);
    };
    match (top, k) {
        (b"dns-version", 1) => return f(Found::DnsVersion),
        // `svc.Z`, `pod.Z`: empty non-terminals, NODATA in every `pods`
        // mode (design.md §1). `pod.Z` used to fall through to the
        // namespace lookup below, whose `k - 2` underflowed (found by the
        // `query` fuzz target; release builds wrapped and said NXDOMAIN).
        (b"svc" | b"pod", 1) => return f(Found::Nodata),
        (b"svc" | b"pod", _) => {}
        _ => return f(Found::Nxdomain),
    }
    // `<...>.<ns>.svc|pod.<zone>`: the namespace label picks the cluster.
    let ns = name.label(k - 2);
    let Some(member) = members.iter().find(|m| m.serves(ns)) else {
        return f(Found::Nxdomain);
    };
    let guard = member.cluster.load();
    let Some(snap) = guard.as_deref() else {
        return f(Found::Servfail);
    };
    if top == b"pod" {
        return f(pod_name(member.cluster.spec.pods, snap, name, k, ns));
    }
    if k == 2 {
        return f(if snap.has_namespace(ns) {
            Found::Nodata
        } else {
            Found::Nxdomain
        });
    }
    let Some(svc) = snap.service(name.span(k - 3, k - 1)) else {
        return f(Found::Nxdomain);
    };
    let found = match k {
        3 => Found::Node(&svc.own),
        4 => {
            let first = name.label(0);
            match svc.hosts.get(first) {
                Some(node) => Found::Node(node),
                None if svc.is_proto_label(first) => Found::Nodata,
                None => Found::Nxdomain,
            }
        }
        5 => svc
            .srv
            .get(name.span(0, 2))
            .map_or(Found::Nxdomain, Found::Node),
        _ => Found::Nxdomain,
    };
    f(found)
}

/// `<a-b-c-d>.<ns>.pod.<zone>` (spec §2.5 is silent; CoreDNS `pods` modes).
fn pod_name<'s>(
    mode: PodsMode,
    snap: &'s Snapshot,
    name: &QName,
    k: usize,
    ns: &[u8],
) -> Found<'s> {
    if mode == PodsMode::Disabled {
        return Found::Nxdomain;
    }
    match k {
        2 if snap.has_namespace(ns) => Found::Nodata,
        3 => match parse_dashed_ip(name.label(0)) {
            Some(ip) if mode == PodsMode::Insecure => Found::Address(ip),
            Some(ip) if snap.pod_exists(ip, ns) => Found::Address(ip),
            _ => Found::Nxdomain,
        },
        _ => Found::Nxdomain,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// `in-addr.arpa` (RFC 1035 §3.5) and `ip6.arpa` (RFC 3596 §2.5): PTR for
/// ClusterIPs and endpoint addresses of every watched cluster.
pub fn reverse_zone<R>(
    clusters: &[Arc<ClusterHandle>],
    family: Family,
    name: &QName,
    k: usize,
    f: impl FnOnce(Found<'_>) -> R,
) -> R {
    let full = match family {
        Family::V4 => 4,
        Family::V6 => 32,
    };
    if k == 0 {
        return f(Found::Apex);
    }
    if k < full {
        // Every shorter name is an empty non-terminal above some address:
        // NODATA, never NXDOMAIN, so QNAME-minimising resolvers go on (RFC 8020).
        return f(Found::Nodata);
    }
    let Some(ip) = (k == full).then(|| reverse_ip(family, name)).flatten() else {
        return f(Found::Nxdomain);
    };
    for cluster in clusters {
        let guard = cluster.load();
        if let Some(names) = guard.as_deref().and_then(|s| s.ptr.get(&ip)) {
            return f(Found::Ptr(names));
        }
    }
    if clusters.iter().all(|c| c.status.synced()) {
        f(Found::Nxdomain)
    } else {
        f(Found::Servfail)
    }
}

fn reverse_ip(family: Family, name: &QName) -> Option<IpAddr> {
    match family {
        Family::V4 => {
            let mut o = [0u8; 4];
            for (i, byte) in o.iter_mut().enumerate() {
                let label = std::str::from_utf8(name.label(3 - i)).ok()?;
                if label.len() > 1 && label.starts_with('0') {
                    return None;
                }
                *byte = label.parse().ok()?;
            }
            Some(IpAddr::V4(Ipv4Addr::from(o)))
        }
        Family::V6 => {
            let mut v: u128 = 0;
            for i in (0..32).rev() {
                let label = name.label(i);
                let [c] = label else { return None };
                v = (v << 4) | u128::from((*c as char).to_digit(16)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(v)))
        }
    }
}
