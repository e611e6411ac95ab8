//! Builds the DNS records of one Service from its minimal structs, per the
//! Kubernetes DNS-Based Service Discovery spec 1.1.0 (§2.3 ClusterIP, §2.4
//! headless, §2.5 ExternalName), design.md §1, and this cluster's part of the
//! clusterset names (Multi-Cluster Services DNS, KEP-1645). Pure functions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use hashbrown::HashMap;
use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SRV};

use super::meta::ServiceMeta;
use super::rrset::{Node, RrsetBuilder};
use super::sharded::Hasher;
use super::snapshot::{ClustersetRecords, ServiceRecords, SrvTable};
use super::{ClusterSpec, EndpointSlice, Protocol, Service, ServiceKind};
use crate::config::{ClustersetPolicy, ServiceAddress};
use crate::dnsname::WireName;
use crate::grammar;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;

/// Annotations read for the clusterset view.
pub const ANNOTATION_EXPORT: &str = "crossdns.io/export";
pub const ANNOTATION_POLICY: &str = "crossdns.io/policy";
pub const ANNOTATION_FAILOVER_ORDER: &str = "crossdns.io/failover-order";
pub const ANNOTATION_WEIGHTS: &str = "crossdns.io/weights";

/// The records of one service plus the reverse names it contributes.
#[derive(Debug)]
pub struct Built {
    pub records: ServiceRecords,
    pub ptrs: Vec<(IpAddr, WireName)>,
}

/// `<svc>.<ns>` as lower-case wire labels: the snapshot's service key.
pub fn service_key_wire(ns: &str, name: &str) -> Option<Box<[u8]>> {
    grammar::service_key(ns, name)
}

/// `<svc>.<ns>.svc.<zone>`.
pub fn service_fqdn(spec: &ClusterSpec, ns: &str, name: &str) -> Option<WireName> {
    grammar::service_name(&spec.zone, ns, name).ok()
}

pub(super) fn addr_node(ttl: u32, ips: impl IntoIterator<Item = IpAddr>) -> Node {
    let mut a = RrsetBuilder::new(TYPE_A, ttl);
    let mut aaaa = RrsetBuilder::new(TYPE_AAAA, ttl);
    for ip in ips {
        match ip {
            IpAddr::V4(v4) => a.push(&RData::A(A(v4))),
            IpAddr::V6(v6) => aaaa.push(&RData::AAAA(AAAA(v6))),
        }
    }
    Node::new([a.finish(), aaaa.finish()])
}

pub(super) fn push_addr_extra(b: &mut RrsetBuilder, owner: &WireName, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => b.push_extra(owner, &RData::A(A(v4))),
        IpAddr::V6(v6) => b.push_extra(owner, &RData::AAAA(AAAA(v6))),
    }
}

/// One endpoint address with the label DNS names it by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Member {
    label: String,
    ip: IpAddr,
}

/// Endpoints that DNS publishes: ready ones, or all of them when the
/// Service sets `publishNotReadyAddresses` (spec §2.4.1).
fn members(spec: &ClusterSpec, svc: &Service, slices: &[&EndpointSlice]) -> BTreeSet<Member> {
    let mut out = BTreeSet::new();
    for slice in slices {
        for (i, ep) in slice.endpoints.iter().enumerate() {
            if !(ep.ready || svc.publish_not_ready) {
                continue;
            }
            for ip in slice.addresses_of(i) {
                let label = match ep.label(spec.endpoint_pod_names) {
                    Some(name) => name.to_owned(),
                    None => grammar::endpoint_label(ip),
                };
                out.insert(Member {
                    label: label.to_ascii_lowercase(),
                    ip,
                });
            }
        }
    }
    out
}

/// Per named port and protocol: (port number, member) for every published
/// member, with the port number its own slice declares (slices of one
/// Service may differ).
type SrvMembers = BTreeMap<(String, Protocol), BTreeSet<(u16, Member)>>;

fn srv_members(spec: &ClusterSpec, svc: &Service, slices: &[&EndpointSlice]) -> SrvMembers {
    let mut out = SrvMembers::new();
    for slice in slices {
        let slice_members = members(spec, svc, &[slice]);
        for port in slice.ports.iter().filter(|p| !p.name.is_empty()) {
            let entry = out
                .entry((port.name.to_ascii_lowercase(), port.protocol))
                .or_default();
            entry.extend(slice_members.iter().map(|m| (port.port, m.clone())));
        }
    }
    out
}

/// SRV weight: equal shares of 100 among the records (as CoreDNS does).
fn srv_weight(n: usize) -> u16 {
    (100 / n.max(1)).max(1) as u16
}

/// The snapshot key of `_<port>._<proto>`.
fn srv_key(port_name: &str, proto: Protocol) -> Option<Box<[u8]>> {
    grammar::srv_key(port_name, proto.label())
}

/// Headless SRV: one record per member, targeting `host_name(label)`, with
/// the targets' addresses for the additional section.
fn headless_srv(
    ttl: u32,
    srv: &SrvMembers,
    host_name: impl Fn(&str) -> Option<WireName>,
) -> SrvTable {
    let mut out = Vec::new();
    for ((port_name, proto), set) in srv {
        let Some(key) = srv_key(port_name, *proto) else {
            continue;
        };
        let targets: BTreeSet<(u16, &str)> =
            set.iter().map(|(p, m)| (*p, m.label.as_str())).collect();
        let weight = srv_weight(targets.len());
        let mut b = RrsetBuilder::new(TYPE_SRV, ttl);
        for (port, label) in &targets {
            if let Some(host) = host_name(label) {
                b.push(&RData::SRV(SRV::new(0, weight, *port, host.to_hickory())));
            }
        }
        let addressed: BTreeSet<&Member> = set.iter().map(|(_, m)| m).collect();
        for m in addressed {
            if let Some(host) = host_name(&m.label) {
                push_addr_extra(&mut b, &host, m.ip);
            }
        }
        if let Some(rrset) = b.finish() {
            out.push((key, Node::new([Some(rrset)])));
        }
    }
    out.into_iter().collect()
}

/// ClusterIP SRV: one record per named Service port, targeting `target`.
fn vip_srv(ttl: u32, svc: &Service, target: &WireName, addrs: &[IpAddr]) -> SrvTable {
    let mut out = Vec::new();
    for port in svc.ports.iter().filter(|p| !p.name.is_empty()) {
        let Some(key) = srv_key(&port.name.to_ascii_lowercase(), port.protocol) else {
            continue;
        };
        let mut b = RrsetBuilder::new(TYPE_SRV, ttl);
        b.push(&RData::SRV(SRV::new(
            0,
            100,
            port.port,
            target.to_hickory(),
        )));
        for ip in addrs {
            push_addr_extra(&mut b, target, *ip);
        }
        if let Some(rrset) = b.finish() {
            out.push((key, Node::new([Some(rrset)])));
        }
    }
    out.into_iter().collect()
}

/// What `<svc>` answers for a Service with a VIP, per `service_address`:
/// addresses, or a CNAME to a load balancer's hostname.
fn vip_answer(
    spec: &ClusterSpec,
    svc: &Service,
    slices: &[&EndpointSlice],
    vips: &[IpAddr],
) -> (Vec<IpAddr>, Option<WireName>) {
    match spec.service_address {
        ServiceAddress::ClusterIp => (vips.to_vec(), None),
        ServiceAddress::Endpoints => {
            let set: BTreeSet<IpAddr> = members(spec, svc, slices)
                .into_iter()
                .map(|m| m.ip)
                .collect();
            (set.into_iter().collect(), None)
        }
        ServiceAddress::LoadBalancer => {
            let ips: Vec<IpAddr> = svc.lb_ips().collect();
            // Only one CNAME may exist at a name (RFC 2181 §10.1), and never
            // beside addresses: IPs win, then the first hostname.
            let cname = ips.is_empty().then(|| svc.lb_hostname().cloned());
            (ips, cname.flatten())
        }
    }
}

/// Builds the records for `svc`, or `None` when its name must not exist
/// anywhere (a headless Service with no published endpoints is NXDOMAIN,
/// spec §2.4.1; with a clusterset it still exists there, unhealthy).
pub fn build_service(
    spec: &ClusterSpec,
    svc: &Service,
    slices: &[&EndpointSlice],
) -> Option<Built> {
    let fqdn = service_fqdn(spec, svc.key.namespace(), svc.key.name())?;
    let built = match &svc.kind {
        ServiceKind::ExternalName(target) => {
            let mut cname = RrsetBuilder::new(TYPE_CNAME, spec.ttl);
            cname.push(&RData::CNAME(CNAME(target.to_hickory())));
            Some(Built {
                records: ServiceRecords {
                    own: Node::new([cname.finish()]),
                    ..ServiceRecords::default()
                },
                ptrs: Vec::new(),
            })
        }
        ServiceKind::Headless => build_headless(spec, svc, slices, &fqdn),
        ServiceKind::ClusterIp(vips) => Some(build_cluster_ip(spec, svc, slices, &fqdn, vips)),
    };
    let clusterset = clusterset_records(spec, svc, slices);
    // A transferable zone carries what other servers' clustersets need.
    let meta = spec
        .transfer
        .then(|| ServiceMeta::of(svc, slices))
        .flatten()
        .map(|m| m.to_node(spec.ttl));
    if clusterset.is_none() && meta.is_none() {
        return built;
    }
    // A headless Service with no endpoints does not exist in the cluster's
    // zone, but it does for the clusterset (unhealthy) and its metadata.
    let mut b = built.unwrap_or_else(|| Built {
        records: ServiceRecords {
            nxdomain: true,
            ..ServiceRecords::default()
        },
        ptrs: Vec::new(),
    });
    b.records.clusterset = clusterset;
    b.records.meta = meta.unwrap_or_default();
    Some(b)
}

fn build_headless(
    spec: &ClusterSpec,
    svc: &Service,
    slices: &[&EndpointSlice],
    fqdn: &WireName,
) -> Option<Built> {
    let ttl = spec.ttl;
    let members = members(spec, svc, slices);
    if members.is_empty() {
        return None;
    }
    let own = addr_node(ttl, members.iter().map(|m| m.ip).collect::<BTreeSet<_>>());
    let host_name = |label: &str| grammar::host_name(fqdn, label).ok();

    // Host names: every member label, possibly with several addresses.
    let mut by_label: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    for m in &members {
        by_label.entry(m.label.as_str()).or_default().push(m.ip);
    }
    let mut hosts = HashMap::with_capacity_and_hasher(by_label.len(), Hasher::default());
    let mut ptrs = Vec::with_capacity(members.len());
    for (label, ips) in &by_label {
        // A label DNS cannot carry is left out; the rest still answers.
        let Some(host) = host_name(label) else {
            continue;
        };
        ptrs.extend(ips.iter().map(|ip| (*ip, host.clone())));
        hosts.insert(label.as_bytes().into(), addr_node(ttl, ips.iter().copied()));
    }
    let srv = headless_srv(ttl, &srv_members(spec, svc, slices), host_name);
    Some(Built {
        records: ServiceRecords {
            own,
            hosts,
            srv,
            ..ServiceRecords::default()
        },
        ptrs,
    })
}

fn build_cluster_ip(
    spec: &ClusterSpec,
    svc: &Service,
    slices: &[&EndpointSlice],
    fqdn: &WireName,
    vips: &[IpAddr],
) -> Built {
    let (addrs, cname) = vip_answer(spec, svc, slices, vips);
    let own = match &cname {
        Some(target) => {
            let mut b = RrsetBuilder::new(TYPE_CNAME, spec.ttl);
            b.push(&RData::CNAME(CNAME(target.to_hickory())));
            Node::new([b.finish()])
        }
        None => addr_node(spec.ttl, addrs.iter().copied()),
    };
    let srv = vip_srv(spec.ttl, svc, fqdn, &addrs);
    // PTR for the VIPs (spec §2.3.4), whatever `service_address` answers.
    let ptrs = vips.iter().map(|ip| (*ip, fqdn.clone())).collect();
    Built {
        records: ServiceRecords {
            own,
            srv,
            ..ServiceRecords::default()
        },
        ptrs,
    }
}

/// A Service annotation's value, trimmed.
pub(super) fn annotation<'a>(svc: &'a Service, key: &str) -> Option<&'a str> {
    svc.annotations
        .iter()
        .find(|(k, _)| **k == *key)
        .map(|(_, v)| v.trim())
}

/// Parses `crossdns.io/weights: region1=3,region2=1`; bad entries are skipped.
pub fn parse_weights(s: &str) -> Vec<(String, u32)> {
    s.split(',')
        .filter_map(|pair| {
            let (name, w) = pair.split_once('=')?;
            Some((name.trim().to_owned(), w.trim().parse().ok()?))
        })
        .collect()
}

pub fn parse_policy(s: &str) -> Option<ClustersetPolicy> {
    match s {
        "local-first" => Some(ClustersetPolicy::LocalFirst),
        "failover" => Some(ClustersetPolicy::Failover),
        "round-robin" => Some(ClustersetPolicy::RoundRobin),
        "weighted" => Some(ClustersetPolicy::Weighted),
        _ => None,
    }
}

/// This cluster's part of `<svc>.<ns>.svc.<clusterset>`, unless there is no
/// clusterset, the Service opted out, or it is an ExternalName.
fn clusterset_records(
    spec: &ClusterSpec,
    svc: &Service,
    slices: &[&EndpointSlice],
) -> Option<Box<ClustersetRecords>> {
    let cs_zone = spec.clusterset.as_ref()?;
    if annotation(svc, ANNOTATION_EXPORT) == Some("false")
        || matches!(svc.kind, ServiceKind::ExternalName(_))
    {
        return None;
    }
    let ttl = spec.ttl;
    let (ns, name) = (svc.key.namespace(), svc.key.name());
    let cs_fqdn = grammar::service_name(cs_zone, ns, name).ok()?;
    let readiness_dependent = matches!(svc.kind, ServiceKind::Headless)
        || spec.service_address == ServiceAddress::Endpoints;
    let fallback = if readiness_dependent {
        let all: BTreeSet<IpAddr> = slices.iter().flat_map(|s| s.all_addresses()).collect();
        addr_node(ttl, all)
    } else {
        Node::default()
    };
    let (addrs, srv) = match &svc.kind {
        ServiceKind::Headless => {
            let ips: BTreeSet<IpAddr> = members(spec, svc, slices)
                .into_iter()
                .map(|m| m.ip)
                .collect();
            // `<host>.<cluster>.<svc>.<ns>.svc.<clusterset>` (KEP-1645).
            let host_name = |label: &str| {
                grammar::clusterset_host_name(cs_zone, &spec.name, ns, name, label).ok()
            };
            let srv = headless_srv(ttl, &srv_members(spec, svc, slices), host_name);
            (ips.into_iter().collect::<Vec<_>>(), srv)
        }
        ServiceKind::ClusterIp(vips) => {
            let (addrs, _cname) = vip_answer(spec, svc, slices, vips);
            let srv = vip_srv(ttl, svc, &cs_fqdn, &[]);
            (addrs, srv)
        }
        ServiceKind::ExternalName(_) => return None,
    };
    Some(Box::new(ClustersetRecords {
        ready: slices.iter().flat_map(|s| &s.endpoints).any(|e| e.ready),
        addrs: addr_node(ttl, addrs),
        fallback,
        srv,
        policy: annotation(svc, ANNOTATION_POLICY).and_then(parse_policy),
        failover_order: annotation(svc, ANNOTATION_FAILOVER_ORDER)
            .map(|s| {
                s.split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        weights: annotation(svc, ANNOTATION_WEIGHTS)
            .map(parse_weights)
            .unwrap_or_default()
            .into(),
    }))
}
