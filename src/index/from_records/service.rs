//! One transferred Service's records as `ServiceRecords`: its names as
//! transferred (SRV targets' addresses in the additional section, as
//! crossdns answers them), its reverse names, and this cluster's part of the
//! clusterset names, built as `index::build` builds them for a watched
//! cluster (KEP-1645): from the Service's metadata (`index::meta`) when the
//! zone carries metadata, else, for a plain zone file, from its records
//! (every Service exported, ready while it has addresses).

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::SRV;

use super::{Group, Sets, wire_of};
use crate::config::ServiceAddress;
use crate::dnsname::{Labels, WireName};
use crate::grammar;
use crate::index::ClusterSpec;
use crate::index::build::{Built, addr_node, push_addr_extra};
use crate::index::meta::ServiceMeta;
use crate::index::rrset::{Node, RrsetBuilder};
use crate::index::sharded::Hasher;
use crate::index::snapshot::{ClustersetRecords, ServiceRecords, SrvTable};

const TYPE_CNAME: u16 = 5;
const TYPE_TXT: u16 = 16;
const TYPE_SRV: u16 = 33;

/// The records of Service `key` (`<svc>.<ns>` wire; `fqdn` its name) from
/// its group, or `None` when nothing is left of it. `plain`: the zone has no
/// metadata at all.
pub(super) fn build(
    spec: &ClusterSpec,
    fqdn: &WireName,
    key: &[u8],
    g: &Group,
    plain: bool,
) -> Option<Built> {
    if g.is_empty() {
        return None;
    }
    let hosts: hashbrown::HashMap<Box<[u8]>, Node, Hasher> =
        g.hosts.iter().map(|(l, s)| (l.clone(), node(s))).collect();
    let srv: SrvTable = g
        .srv
        .iter()
        .map(|(k, sets)| (k.clone(), zone_srv(sets, g, fqdn)))
        .collect();
    let meta = parse_meta(&g.meta);
    // A name with no records below it does not exist in a copy, except
    // an exported ClusterIP Service's: its metadata says it exists (its
    // primary answers NODATA, say while no load balancer is assigned).
    let nxdomain = g.own.is_empty()
        && g.hosts.is_empty()
        && g.srv.is_empty()
        && meta.as_ref().is_none_or(|m| m.headless);
    let clusterset = spec.clusterset.as_ref().and_then(|cs| {
        let (name, ns) = names_of(key)?;
        let cs_fqdn = grammar::service_name(cs, ns, name).ok()?;
        let host = |label: &str| grammar::clusterset_host_name(cs, &spec.name, ns, name, label);
        match &meta {
            Some(m) if m.exported => from_meta(spec, m, g, fqdn, &cs_fqdn, &host),
            Some(_) => None,
            None if plain => from_plain(spec, g, fqdn, &cs_fqdn, &host),
            None => None,
        }
    });
    let ptrs = if nxdomain {
        Vec::new()
    } else {
        ptrs(fqdn, g, meta.as_ref())
    };
    Some(Built {
        records: ServiceRecords {
            own: node(&g.own),
            hosts,
            srv,
            nxdomain,
            clusterset,
            meta: node(&g.meta),
        },
        ptrs,
    })
}

/// `(<svc>, <ns>)` of a service key.
fn names_of(key: &[u8]) -> Option<(&str, &str)> {
    let mut labels = Labels::new(key).map(|l| std::str::from_utf8(l).ok());
    Some((labels.next()??, labels.next()??))
}

/// One node from sets, each type's records as transferred.
fn node(sets: &Sets) -> Node {
    Node::new(sets.iter().map(|(rtype, set)| {
        let mut b = RrsetBuilder::new(*rtype, set.ttl);
        for d in &set.data {
            b.push(d);
        }
        b.finish()
    }))
}

/// The addresses (A, then AAAA) among `sets`.
fn addresses(sets: &Sets) -> Vec<IpAddr> {
    sets.values()
        .flat_map(|s| &s.data)
        .filter_map(super::address_of)
        .collect()
}

/// The host label of `name` when it is `<label>.<fqdn>`.
fn host_label<'n>(name: &'n WireName, fqdn: &WireName) -> Option<&'n str> {
    let (name, fqdn) = (name.as_bytes(), fqdn.as_bytes());
    let prefix = name.strip_suffix(fqdn)?;
    let (&len, label) = prefix.split_first()?;
    (usize::from(len) == label.len())
        .then(|| std::str::from_utf8(label).ok())
        .flatten()
}

/// What a name of this Service answers with A/AAAA: the Service's own
/// addresses at `fqdn`, a host's at `<host>.<fqdn>`.
fn addresses_at(g: &Group, fqdn: &WireName, name: &WireName) -> Vec<IpAddr> {
    if name == fqdn {
        return addresses(&g.own);
    }
    host_label(name, fqdn)
        .and_then(|l| g.hosts.get(l.as_bytes()))
        .map(addresses)
        .unwrap_or_default()
}

/// An SRV name's records as transferred, with the addresses of targets in
/// this Service in the additional section.
fn zone_srv(sets: &Sets, g: &Group, fqdn: &WireName) -> Node {
    Node::new(sets.iter().map(|(rtype, set)| {
        let mut b = RrsetBuilder::new(*rtype, set.ttl);
        let mut targets: Vec<WireName> = Vec::new();
        for d in &set.data {
            b.push(d);
            if let RData::SRV(s) = d
                && let Some(t) = wire_of(&s.target)
                && !targets.contains(&t)
            {
                targets.push(t);
            }
        }
        for t in &targets {
            for ip in addresses_at(g, fqdn, t) {
                push_addr_extra(&mut b, t, ip);
            }
        }
        b.finish()
    }))
}

/// Clusterset SRV: each SRV record with its target renamed by `rename`
/// (new target, and whether its addresses go in the additional section).
fn clusterset_srv(
    ttl: u32,
    g: &Group,
    fqdn: &WireName,
    rename: &dyn Fn(&WireName) -> Option<(WireName, bool)>,
) -> SrvTable {
    let mut out = Vec::new();
    for (key, sets) in &g.srv {
        let Some(set) = sets.get(&TYPE_SRV) else {
            continue;
        };
        let mut b = RrsetBuilder::new(TYPE_SRV, ttl);
        let mut extras: Vec<(WireName, WireName)> = Vec::new();
        let mut seen: Vec<(u16, u16, u16, WireName)> = Vec::new();
        for d in &set.data {
            let RData::SRV(s) = d else { continue };
            let Some(target) = wire_of(&s.target) else {
                continue;
            };
            let (renamed, extra) = rename(&target).unwrap_or((target.clone(), false));
            let record = (s.priority, s.weight, s.port, renamed.clone());
            if seen.contains(&record) {
                continue;
            }
            b.push(&RData::SRV(SRV::new(
                s.priority,
                s.weight,
                s.port,
                renamed.to_hickory(),
            )));
            seen.push(record);
            if extra && !extras.iter().any(|(r, _)| *r == renamed) {
                extras.push((renamed, target));
            }
        }
        for (renamed, target) in &extras {
            for ip in addresses_at(g, fqdn, target) {
                push_addr_extra(&mut b, renamed, ip);
            }
        }
        if let Some(rrset) = b.finish() {
            out.push((key.clone(), Node::new([Some(rrset)])));
        }
    }
    out.into_iter().collect()
}

type HostName<'a> = dyn Fn(&str) -> Result<WireName, crate::dnsname::NameError> + 'a;

/// Headless targets `<host>.<svc>...Z` become `<host>.<cluster>.<svc>...CS`
/// with their addresses; the Service's own name becomes its clusterset name.
fn headless_rename<'a>(
    fqdn: &'a WireName,
    cs_fqdn: &'a WireName,
    host: &'a HostName<'a>,
) -> impl Fn(&WireName) -> Option<(WireName, bool)> + 'a {
    move |t| {
        if t == fqdn {
            return Some((cs_fqdn.clone(), false));
        }
        let label = host_label(t, fqdn)?;
        Some((host(label).ok()?, true))
    }
}

/// From the metadata, as `index::build` does from the objects.
fn from_meta(
    spec: &ClusterSpec,
    m: &ServiceMeta,
    g: &Group,
    fqdn: &WireName,
    cs_fqdn: &WireName,
    host: &HostName<'_>,
) -> Option<Box<ClustersetRecords>> {
    let ttl = spec.ttl;
    let readiness_dependent = m.headless || spec.service_address == ServiceAddress::Endpoints;
    let fallback = if readiness_dependent {
        let all: BTreeSet<IpAddr> = m.endpoints.iter().chain(&m.not_ready).copied().collect();
        addr_node(ttl, all)
    } else {
        Node::default()
    };
    let sorted = |v: &[IpAddr]| {
        v.iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let (addrs, srv): (Vec<IpAddr>, SrvTable) = if m.headless {
        let rename = headless_rename(fqdn, cs_fqdn, host);
        (sorted(&m.endpoints), clusterset_srv(ttl, g, fqdn, &rename))
    } else {
        let addrs = match spec.service_address {
            ServiceAddress::ClusterIp => m.vips.clone(),
            ServiceAddress::Endpoints => sorted(&m.endpoints),
            ServiceAddress::LoadBalancer => m.lb.clone(),
        };
        let rename = |_: &WireName| Some((cs_fqdn.clone(), false));
        (addrs, clusterset_srv(ttl, g, fqdn, &rename))
    };
    Some(Box::new(ClustersetRecords {
        ready: m.ready,
        addrs: addr_node(ttl, addrs),
        fallback,
        srv,
        policy: m.policy,
        failover_order: m.failover_order.clone().into(),
        weights: m.weights.clone().into(),
    }))
}

/// A plain zone's Service: exported, ready while it has addresses, which
/// are its own A/AAAA; an alias (CNAME) takes no part, as an ExternalName.
fn from_plain(
    spec: &ClusterSpec,
    g: &Group,
    fqdn: &WireName,
    cs_fqdn: &WireName,
    host: &HostName<'_>,
) -> Option<Box<ClustersetRecords>> {
    if g.own.contains_key(&TYPE_CNAME) {
        return None;
    }
    let addrs = addresses(&g.own);
    let rename = headless_rename(fqdn, cs_fqdn, host);
    Some(Box::new(ClustersetRecords {
        ready: !addrs.is_empty(),
        addrs: addr_node(spec.ttl, addrs),
        srv: clusterset_srv(spec.ttl, g, fqdn, &rename),
        ..ClustersetRecords::default()
    }))
}

/// The metadata in the group's TXT records, if it parses.
fn parse_meta(meta: &Sets) -> Option<ServiceMeta> {
    let set = meta.get(&TYPE_TXT)?;
    ServiceMeta::parse(set.data.iter().filter_map(|d| match d {
        RData::TXT(t) => Some(t.txt_data.iter().map(|s| &**s)),
        _ => None,
    }))
    .ok()
}

/// Reverse names, as a watched cluster gives them: a headless Service's
/// host addresses name its hosts; a ClusterIP Service's VIPs name it. With
/// no metadata to tell the kind, hosts make it headless.
fn ptrs(fqdn: &WireName, g: &Group, meta: Option<&ServiceMeta>) -> Vec<(IpAddr, WireName)> {
    let hosts = || -> Vec<(IpAddr, WireName)> {
        g.hosts
            .iter()
            .filter_map(|(label, sets)| {
                let host = grammar::host_name(fqdn, std::str::from_utf8(label).ok()?).ok()?;
                Some(
                    addresses(sets)
                        .into_iter()
                        .map(move |ip| (ip, host.clone())),
                )
            })
            .flatten()
            .collect()
    };
    match meta {
        Some(m) if m.headless => hosts(),
        Some(m) => m.vips.iter().map(|ip| (*ip, fqdn.clone())).collect(),
        None if !g.hosts.is_empty() => hosts(),
        None if g.own.contains_key(&TYPE_CNAME) => Vec::new(),
        None => addresses(&g.own)
            .into_iter()
            .map(|ip| (ip, fqdn.clone()))
            .collect(),
    }
}
