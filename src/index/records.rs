//! A cluster zone as records: every name and RRset a snapshot answers, with
//! its owner, for zone transfers (design.md §7: "records in a transfer are
//! exactly the ones queries get"). Pre-encoded RRsets are handed out as
//! they are (owners are compression pointers to be re-pointed by the
//! writer); nothing is re-encoded except pod addresses, which queries
//! synthesize.

use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::{A, AAAA};

use super::rrset::{Node, Rrset, RrsetBuilder};
use super::snapshot::{ServiceRecords, Snapshot};
use super::{ClusterSpec, PodsMode};
use crate::dnsname::WireName;
use crate::grammar;

/// Calls `f` with every (owner, RRset) of one Service in zone `zone`
/// (`key` is its `<svc>.<ns>` wire key): the Service's own records (unless
/// its name does not exist), its hosts, its SRV names and its metadata.
pub fn service_records(
    zone: &WireName,
    key: &[u8],
    svc: &ServiceRecords,
    f: &mut dyn FnMut(&WireName, &Rrset),
) {
    let Ok(name) = grammar::service_name_of_key(zone, key) else {
        return;
    };
    let node = |f: &mut dyn FnMut(&WireName, &Rrset), owner: &WireName, node: &Node| {
        for set in node.all() {
            f(owner, set);
        }
    };
    if !svc.nxdomain {
        node(f, &name, &svc.own);
        let mut hosts: Vec<_> = svc.hosts.iter().collect();
        hosts.sort_by(|a, b| a.0.cmp(b.0));
        let mut wire = [0u8; 64];
        for (label, n) in hosts {
            // A host label is at most 63 octets; a longer one is no name.
            let Some(slot) = wire.get_mut(1..=label.len()) else {
                continue;
            };
            slot.copy_from_slice(label);
            wire[0] = label.len() as u8;
            if let Ok(owner) = WireName::prefixed(&wire[..=label.len()], &name) {
                node(f, &owner, n);
            }
        }
        for (srv_key, n) in svc.srv.iter() {
            if let Ok(owner) = WireName::prefixed(srv_key, &name) {
                node(f, &owner, n);
            }
        }
    }
    if !svc.meta.is_empty()
        && let Ok(owner) = grammar::service_meta_name_of_key(zone, key)
    {
        node(f, &owner, &svc.meta);
    }
}

/// The namespace marks of namespace `ns` (`marker` is their TXT).
pub fn namespace_records(
    zone: &WireName,
    ns: &[u8],
    marker: &Node,
    f: &mut dyn FnMut(&WireName, &Rrset),
) {
    let Ok(ns) = std::str::from_utf8(ns) else {
        return;
    };
    if let Ok(names) = grammar::namespace_meta_names(zone, ns) {
        for owner in &names {
            for set in marker.all() {
                f(owner, set);
            }
        }
    }
}

/// The address record of a verified pod, `<a-b-c-d>.<ns>.pod.<zone>`.
pub fn pod_record(
    zone: &WireName,
    ns: &str,
    ip: std::net::IpAddr,
    ttl: u32,
) -> Option<(WireName, Rrset)> {
    let owner = grammar::pod_name(zone, ns, ip).ok()?;
    let (rtype, rdata) = match ip {
        std::net::IpAddr::V4(v4) => (1, RData::A(A(v4))),
        std::net::IpAddr::V6(v6) => (28, RData::AAAA(AAAA(v6))),
    };
    let mut b = RrsetBuilder::new(rtype, ttl);
    b.push(&rdata);
    Some((owner, b.finish()?))
}

/// Every record of `snap` below the apex of `spec.zone` (the apex's SOA,
/// NS, `dns-version` and `ns.dns` records are the zone's, not the
/// snapshot's): services in key order, then namespace marks (with
/// `marker`), then verified pods. Pods of `pods: insecure` are synthesized
/// for any address and are not records (design.md §7).
pub fn snapshot_records(
    spec: &ClusterSpec,
    snap: &Snapshot,
    marker: Option<&Node>,
    f: &mut dyn FnMut(&WireName, &Rrset),
) {
    let zone = &spec.zone;
    let mut keys: Vec<&Box<[u8]>> = snap.services.iter().map(|(k, _)| k).collect();
    keys.sort();
    for key in keys {
        if let Some(svc) = snap.services.get(key.as_ref()) {
            service_records(zone, key, svc, f);
        }
    }
    if let Some(marker) = marker {
        let mut namespaces: Vec<&Box<[u8]>> = snap.namespaces.iter().collect();
        namespaces.sort();
        for ns in namespaces {
            namespace_records(zone, ns, marker, f);
        }
    }
    if spec.pods == PodsMode::Verified {
        let mut pods: Vec<_> = snap.pod_ips.iter().collect();
        pods.sort_by_key(|(ip, _)| **ip);
        for (ip, namespaces) in pods {
            for ns in namespaces.iter() {
                if let Some((owner, set)) = pod_record(zone, ns, *ip, spec.ttl) {
                    f(&owner, &set);
                }
            }
        }
    }
}
