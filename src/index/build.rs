//! Builds the DNS records of one Service from its minimal structs, per the
//! Kubernetes DNS-Based Service Discovery spec 1.1.0 (§2.3 ClusterIP, §2.4
//! headless, §2.5 ExternalName) and design.md §1. Pure functions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use hashbrown::HashMap;
use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SRV};

use super::rrset::{Node, RrsetBuilder};
use super::sharded::Hasher;
use super::snapshot::ServiceRecords;
use super::{ClusterSpec, EndpointSlice, LbIngress, Protocol, Service, ServiceKind};
use crate::config::ServiceAddress;
use crate::dnsname::{WireName, dashed_ip};

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;

/// The records of one service plus the reverse names it contributes.
#[derive(Debug)]
pub struct Built {
    pub records: ServiceRecords,
    pub ptrs: Vec<(IpAddr, WireName)>,
}

/// `<svc>.<ns>` as lower-case wire labels: the snapshot's service key.
pub fn service_key_wire(ns: &str, name: &str) -> Option<Box<[u8]>> {
    WireName::from_labels([name, ns])
        .ok()
        .map(|w| w.as_bytes().into())
}

/// `<svc>.<ns>.svc.<zone>`.
pub fn service_fqdn(spec: &ClusterSpec, ns: &str, name: &str) -> Option<WireName> {
    WireName::from_labels([name, ns, "svc"])
        .ok()?
        .join(&spec.zone)
        .ok()
}

fn addr_sets(ttl: u32, ips: impl IntoIterator<Item = IpAddr>) -> (RrsetBuilder, RrsetBuilder) {
    let mut a = RrsetBuilder::new(TYPE_A, ttl);
    let mut aaaa = RrsetBuilder::new(TYPE_AAAA, ttl);
    for ip in ips {
        match ip {
            IpAddr::V4(v4) => a.push(&RData::A(A(v4))),
            IpAddr::V6(v6) => aaaa.push(&RData::AAAA(AAAA(v6))),
        }
    }
    (a, aaaa)
}

fn addr_node(ttl: u32, ips: impl IntoIterator<Item = IpAddr>) -> Node {
    let (a, aaaa) = addr_sets(ttl, ips);
    Node::new([a.finish(), aaaa.finish()])
}

fn push_addr_extra(b: &mut RrsetBuilder, owner: &WireName, ip: IpAddr) {
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
        for ep in &slice.endpoints {
            if !(ep.ready || svc.publish_not_ready) {
                continue;
            }
            for &ip in &ep.addresses {
                let label = match (&ep.hostname, &ep.pod_name) {
                    (Some(h), _) => h.clone(),
                    (None, Some(pod)) if spec.endpoint_pod_names => pod.clone(),
                    _ => dashed_ip(ip),
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

/// SRV weight: equal shares of 100 among the records (as CoreDNS does).
fn srv_weight(n: usize) -> u16 {
    (100 / n.max(1)).max(1) as u16
}

fn srv_key(port_name: &str, proto: Protocol) -> Option<(Box<[u8]>, Box<[u8]>)> {
    let port = format!("_{port_name}");
    let proto = format!("_{}", proto.label());
    let key = WireName::from_labels([port.as_str(), proto.as_str()]).ok()?;
    Some((key.as_bytes().into(), proto.into_bytes().into_boxed_slice()))
}

/// Builds the records for `svc`, or `None` when its name must not exist
/// (a headless Service with no published endpoints is NXDOMAIN, spec §2.4.1).
pub fn build_service(
    spec: &ClusterSpec,
    svc: &Service,
    slices: &[&EndpointSlice],
) -> Option<Built> {
    let fqdn = service_fqdn(spec, &svc.key.namespace, &svc.key.name)?;
    let ttl = spec.ttl;
    match &svc.kind {
        ServiceKind::ExternalName(target) => {
            let mut cname = RrsetBuilder::new(TYPE_CNAME, ttl);
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
        ServiceKind::ClusterIp(ips) => Some(build_cluster_ip(spec, svc, slices, &fqdn, ips)),
    }
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
    let unique_ips: BTreeSet<IpAddr> = members.iter().map(|m| m.ip).collect();
    let own = addr_node(ttl, unique_ips.iter().copied());

    // Host names: every member label, possibly with several addresses.
    let mut by_label: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    for m in &members {
        by_label.entry(m.label.as_str()).or_default().push(m.ip);
    }
    let mut hosts = HashMap::with_capacity_and_hasher(by_label.len(), Hasher::default());
    let mut host_fqdns: BTreeMap<&str, WireName> = BTreeMap::new();
    let mut ptrs = Vec::with_capacity(members.len());
    for (label, ips) in &by_label {
        let Ok(host) = WireName::from_labels([*label]).and_then(|h| h.join(fqdn)) else {
            continue; // a label DNS cannot carry; the rest of the service still answers
        };
        for ip in ips {
            ptrs.push((*ip, host.clone()));
        }
        hosts.insert(label.as_bytes().into(), addr_node(ttl, ips.iter().copied()));
        host_fqdns.insert(label, host);
    }

    // SRV per named port: one record per member, with the port number its
    // own slice declares (slices of one Service may differ).
    let mut srv_members: BTreeMap<(String, Protocol), BTreeSet<(u16, &str, IpAddr)>> =
        BTreeMap::new();
    for slice in slices {
        let slice_members = members_of_slice(spec, svc, slice);
        for port in slice.ports.iter().filter(|p| !p.name.is_empty()) {
            let entry = srv_members
                .entry((port.name.to_ascii_lowercase(), port.protocol))
                .or_default();
            for m in &slice_members {
                if let Some(known) = members.get(m) {
                    entry.insert((port.port, known.label.as_str(), known.ip));
                }
            }
        }
    }
    let mut srv = HashMap::with_hasher(Hasher::default());
    let mut protos: BTreeSet<Box<[u8]>> = BTreeSet::new();
    for ((port_name, proto), set) in &srv_members {
        let Some((key, proto_label)) = srv_key(port_name, *proto) else {
            continue;
        };
        let targets: BTreeSet<(u16, &str)> = set.iter().map(|(p, l, _)| (*p, *l)).collect();
        let weight = srv_weight(targets.len());
        let mut b = RrsetBuilder::new(TYPE_SRV, ttl);
        for (port, label) in &targets {
            if let Some(host) = host_fqdns.get(label) {
                b.push(&RData::SRV(SRV::new(0, weight, *port, host.to_hickory())));
            }
        }
        for (_, label, ip) in set {
            if let Some(host) = host_fqdns.get(label) {
                push_addr_extra(&mut b, host, *ip);
            }
        }
        if let Some(set) = b.finish() {
            srv.insert(key, Node::new([Some(set)]));
            protos.insert(proto_label);
        }
    }
    Some(Built {
        records: ServiceRecords {
            own,
            hosts,
            srv,
            protos: protos.into_iter().collect(),
        },
        ptrs,
    })
}

fn members_of_slice(spec: &ClusterSpec, svc: &Service, slice: &EndpointSlice) -> BTreeSet<Member> {
    members(spec, svc, &[slice])
}

fn build_cluster_ip(
    spec: &ClusterSpec,
    svc: &Service,
    slices: &[&EndpointSlice],
    fqdn: &WireName,
    vips: &[IpAddr],
) -> Built {
    let ttl = spec.ttl;
    // What `<svc>.<ns>.svc.<zone>` answers, per `service_address`.
    let mut cname = RrsetBuilder::new(TYPE_CNAME, ttl);
    let addrs: Vec<IpAddr> = match spec.service_address {
        ServiceAddress::ClusterIp => vips.to_vec(),
        ServiceAddress::Endpoints => {
            let set: BTreeSet<IpAddr> = members(spec, svc, slices)
                .into_iter()
                .map(|m| m.ip)
                .collect();
            set.into_iter().collect()
        }
        ServiceAddress::LoadBalancer => {
            let mut ips = Vec::new();
            for ing in &svc.lb_ingress {
                match ing {
                    LbIngress::Ip(ip) => ips.push(*ip),
                    // Only one CNAME may exist at a name (RFC 2181 §10.1).
                    LbIngress::Hostname(h) if cname.is_empty() && ips.is_empty() => {
                        cname.push(&RData::CNAME(CNAME(h.to_hickory())));
                    }
                    LbIngress::Hostname(_) => {}
                }
            }
            if !cname.is_empty() {
                ips.clear();
            }
            ips
        }
    };
    let own = if cname.is_empty() {
        addr_node(ttl, addrs.iter().copied())
    } else {
        Node::new([cname.finish()])
    };

    // SRV: one record per named port, targeting the service name (§2.3.2).
    let mut srv = HashMap::with_hasher(Hasher::default());
    let mut protos: BTreeSet<Box<[u8]>> = BTreeSet::new();
    for port in svc.ports.iter().filter(|p| !p.name.is_empty()) {
        let Some((key, proto_label)) = srv_key(&port.name.to_ascii_lowercase(), port.protocol)
        else {
            continue;
        };
        let mut b = RrsetBuilder::new(TYPE_SRV, ttl);
        b.push(&RData::SRV(SRV::new(0, 100, port.port, fqdn.to_hickory())));
        for ip in &addrs {
            push_addr_extra(&mut b, fqdn, *ip);
        }
        if let Some(set) = b.finish() {
            srv.insert(key, Node::new([Some(set)]));
            protos.insert(proto_label);
        }
    }
    // PTR for the VIPs (spec §2.3.4), whatever `service_address` answers.
    let ptrs = vips.iter().map(|ip| (*ip, fqdn.clone())).collect();
    Built {
        records: ServiceRecords {
            own,
            hosts: HashMap::with_hasher(Hasher::default()),
            srv,
            protos: protos.into_iter().collect(),
        },
        ptrs,
    }
}
