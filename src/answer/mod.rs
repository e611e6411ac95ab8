//! The answer engine: turns (snapshot, query bytes) into response bytes.
//! Routes a question to the longest matching zone (REFUSED outside them),
//! applies the name grammar (`lookup`), and writes the response (`wire`).
//! Reads snapshots only; never sees Kubernetes types; does no I/O.

pub mod clusterset;
pub mod lookup;
pub mod wire;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hashbrown::HashMap;
use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::{NS, SOA, TXT};

use crate::config::{AllowList, Settings};
use crate::dnsname::WireName;
use crate::index::{ClusterHandle, Node, Rrset, push_rr_tail};
use clusterset::{ClustersetStats, ClustersetZone};
use lookup::{Family, Found, Member};
use wire::{Chunk, Query, Reject, ResponseWriter, qtype, rcode};

/// How the query arrived: decides the response size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What happened to a query, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub rcode: u8,
    pub qtype: u16,
    /// Index into `Engine::zone_names()`, if the name was in a zone.
    pub zone: Option<u16>,
    pub truncated: bool,
}

impl Outcome {
    /// A query of stub zone `zone` that the forwarder answered with `rcode`.
    pub fn forwarded(zone: u16, qtype: u16, rcode: hickory_proto::op::ResponseCode) -> Self {
        Self {
            rcode: u16::from(rcode) as u8,
            qtype,
            zone: Some(zone),
            truncated: false,
        }
    }
}

#[derive(Debug)]
enum ZoneKind {
    Cluster(Vec<Member>),
    Reverse(Family),
    /// A stub zone: handed to the forwarder (index into `Settings::forward`).
    Forward(usize),
    Clusterset(ClustersetZone),
}

/// What a listener does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `out` holds the response.
    Reply(Outcome),
    /// No reply: not a query, or too short to carry an ID.
    Drop,
    /// A valid query for a forward zone: resolve it with
    /// `Forwarder::resolve(forward, packet, limit)`.
    Forward {
        zone: u16,
        forward: usize,
        limit: usize,
        qtype: u16,
    },
}

#[derive(Debug)]
struct Zone {
    apex: WireName,
    kind: ZoneKind,
    /// SOA record from TYPE on (owner written per response).
    soa_tail: Vec<u8>,
    ns_tail: Vec<u8>,
}

/// The DNS answer engine. Cheap to share: listeners hold an `Arc<Engine>`.
#[derive(Debug)]
pub struct Engine {
    zones: Vec<Zone>,
    by_apex: HashMap<Box<[u8]>, usize>,
    clusters: Vec<Arc<ClusterHandle>>,
    allow: AllowList,
    dns_version_tail: Vec<u8>,
}

impl Engine {
    /// Builds the zone table from the config and the clusters' handles
    /// (`clusters[i]` belongs to `settings.clusters[i]`).
    pub fn new(settings: &Settings, clusters: &[Arc<ClusterHandle>]) -> Self {
        let ttl = settings.dns.ttl;
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        let mut zones: Vec<Zone> = Vec::new();
        let mut by_apex: HashMap<Box<[u8]>, usize> = HashMap::new();
        for (cfg, handle) in settings.clusters.iter().zip(clusters) {
            let member = Member {
                namespaces: cfg.namespaces.iter().map(|n| n.as_bytes().into()).collect(),
                cluster: Arc::clone(handle),
            };
            match by_apex.get(cfg.zone.as_bytes()) {
                Some(&i) => {
                    if let ZoneKind::Cluster(members) = &mut zones[i].kind {
                        members.push(member);
                    }
                }
                None => {
                    by_apex.insert(cfg.zone.as_bytes().into(), zones.len());
                    zones.push(Zone::new(
                        cfg.zone.clone(),
                        ZoneKind::Cluster(vec![member]),
                        ttl,
                        serial,
                    ));
                }
            }
        }
        for (apex, family) in [("in-addr.arpa", Family::V4), ("ip6.arpa", Family::V6)] {
            if let Ok(apex) = WireName::parse(apex)
                && !by_apex.contains_key(apex.as_bytes())
            {
                by_apex.insert(apex.as_bytes().into(), zones.len());
                zones.push(Zone::new(apex, ZoneKind::Reverse(family), ttl, serial));
            }
        }
        if let Some(cs) = &settings.clusterset {
            by_apex.insert(cs.zone.as_bytes().into(), zones.len());
            let kind = ZoneKind::Clusterset(ClustersetZone::new(cs, clusters));
            zones.push(Zone::new(cs.zone.clone(), kind, ttl, serial));
        }
        for (i, fw) in settings.forward.iter().enumerate() {
            by_apex.insert(fw.zone.as_bytes().into(), zones.len());
            zones.push(Zone::new(
                fw.zone.clone(),
                ZoneKind::Forward(i),
                ttl,
                serial,
            ));
        }
        let mut dns_version_tail = Vec::new();
        push_rr_tail(
            &mut dns_version_tail,
            &RData::TXT(TXT::new(vec!["1.1.0".to_owned()])),
            ttl,
        );
        Self {
            zones,
            by_apex,
            clusters: clusters.to_vec(),
            allow: settings.allow.clone(),
            dns_version_tail,
        }
    }

    /// Zone names in metric-label order.
    pub fn zone_names(&self) -> Vec<String> {
        self.zones.iter().map(|z| z.apex.to_string()).collect()
    }

    /// Answers one DNS message without forwarding: `None` when the packet
    /// deserves no reply; queries for forward zones get SERVFAIL. For code
    /// paths with no forwarder (benchmarks, tests of the engine alone).
    pub fn respond(
        &self,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Option<Outcome> {
        match self.step(packet, client, transport, out) {
            Step::Reply(o) => Some(o),
            Step::Drop => None,
            Step::Forward { zone, .. } => {
                let q = wire::parse(packet).ok()?;
                ResponseWriter::new(out, &q).finish(&q, rcode::SERVFAIL, false, false);
                Some(Outcome::forwarded(
                    zone,
                    q.qtype,
                    hickory_proto::op::ResponseCode::ServFail,
                ))
            }
        }
    }

    /// Answers one DNS message into `out`, or says it must be forwarded.
    pub fn step(
        &self,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Step {
        let q = match wire::parse(packet) {
            Ok(q) => q,
            Err(Reject::Drop) => return Step::Drop,
            Err(Reject::Reply { id, flags, rcode }) => {
                wire::write_header_only(out, id, flags, rcode);
                return Step::Reply(Outcome {
                    rcode,
                    qtype: 0,
                    zone: None,
                    truncated: false,
                });
            }
        };
        let limit = match transport {
            Transport::Udp => q.udp_limit(),
            Transport::Tcp => usize::from(u16::MAX),
        };
        let refuse = |out: &mut Vec<u8>, rcode: u8| {
            ResponseWriter::new(out, &q).finish(&q, rcode, false, false);
            Step::Reply(Outcome {
                rcode,
                qtype: q.qtype,
                zone: None,
                truncated: false,
            })
        };
        if q.edns.is_some_and(|e| e.version != 0) {
            return refuse(out, rcode::BADVERS);
        }
        if !self.allow.allows(client) {
            return refuse(out, rcode::REFUSED);
        }
        if !matches!(q.qclass, wire::CLASS_IN | wire::CLASS_ANY)
            || matches!(q.qtype, qtype::AXFR | qtype::IXFR)
        {
            return refuse(out, rcode::REFUSED);
        }
        let Some((zi, at)) = self.find_zone(&q) else {
            return refuse(out, rcode::REFUSED);
        };
        let zone = &self.zones[zi];
        if let ZoneKind::Forward(forward) = zone.kind {
            return Step::Forward {
                zone: zi as u16,
                forward,
                limit,
                qtype: q.qtype,
            };
        }
        let emit = |found: Found<'_>| self.emit(&q, zone, at, found, limit, out);
        let (rcode, truncated) = match &zone.kind {
            ZoneKind::Cluster(members) => lookup::cluster_zone(members, &q.name, at, emit),
            ZoneKind::Reverse(family) => {
                lookup::reverse_zone(&self.clusters, *family, &q.name, at, emit)
            }
            ZoneKind::Clusterset(cs) => cs.lookup(&q.name, at, q.qtype, emit),
            ZoneKind::Forward(_) => return Step::Drop, // handed off above
        };
        Step::Reply(Outcome {
            rcode,
            qtype: q.qtype,
            zone: Some(zi as u16),
            truncated,
        })
    }

    /// The longest zone that is a suffix of the name, and the index of the
    /// first label of the zone (= number of labels relative to it).
    fn find_zone(&self, q: &Query<'_>) -> Option<(usize, usize)> {
        (0..q.name.label_count()).find_map(|i| self.by_apex.get(q.name.suffix(i)).map(|&z| (z, i)))
    }

    /// Writes the response for `found`; returns (rcode, truncated).
    fn emit(
        &self,
        q: &Query<'_>,
        zone: &Zone,
        zone_at: usize,
        found: Found<'_>,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> (u8, bool) {
        let mut w = ResponseWriter::new(out, q);
        let want = q.qtype;
        let any = want == qtype::ANY;
        let mut sets: [Option<&Rrset>; 4] = [None; 4];
        match found {
            Found::Servfail => {
                w.finish(q, rcode::SERVFAIL, false, false);
                return (rcode::SERVFAIL, false);
            }
            Found::Nxdomain => return negative(w, q, zone, zone_at, rcode::NXDOMAIN),
            Found::Nodata => return negative(w, q, zone, zone_at, rcode::NOERROR),
            Found::Apex => {
                let mut n = 0;
                for (t, tail) in [(qtype::SOA, &zone.soa_tail), (qtype::NS, &zone.ns_tail)] {
                    if any || want == t {
                        w.buf().extend_from_slice(&crate::index::QNAME_POINTER);
                        w.buf().extend_from_slice(tail);
                        n += 1;
                    }
                }
                if n == 0 {
                    return negative(w, q, zone, zone_at, rcode::NOERROR);
                }
                w.count(0, n);
            }
            Found::DnsVersion => {
                if !(any || want == qtype::TXT) {
                    return negative(w, q, zone, zone_at, rcode::NOERROR);
                }
                w.buf().extend_from_slice(&crate::index::QNAME_POINTER);
                w.buf().extend_from_slice(&self.dns_version_tail);
                w.count(0, 1);
            }
            Found::Address(ip) => {
                let (t, bytes): (u16, Vec<u8>) = match ip {
                    IpAddr::V4(v4) => (qtype::A, v4.octets().to_vec()),
                    IpAddr::V6(v6) => (qtype::AAAA, v6.octets().to_vec()),
                };
                if !(any || want == t) {
                    return negative(w, q, zone, zone_at, rcode::NOERROR);
                }
                write_rr(w.buf(), t, zone_ttl(zone), &bytes);
                w.count(0, 1);
            }
            Found::Ptr(names) => {
                if !(any || want == qtype::PTR) {
                    return negative(w, q, zone, zone_at, rcode::NOERROR);
                }
                let ttl = zone_ttl(zone);
                let mut n = 0;
                for name in names {
                    if w.len() + name.as_bytes().len() + 13 + wire::opt_len(q) > limit {
                        return truncated(w, q);
                    }
                    write_rr(w.buf(), qtype::PTR, ttl, &name.to_wire_fqdn());
                    n += 1;
                }
                w.count(0, n);
            }
            Found::Merged(m) => {
                if w.len() + m.answer.len() + wire::opt_len(q) > limit {
                    return truncated(w, q);
                }
                w.push(
                    0,
                    Chunk {
                        count: m.count,
                        bytes: &m.answer,
                    },
                );
                if w.len() + m.extra.len() + wire::opt_len(q) <= limit {
                    w.push(
                        2,
                        Chunk {
                            count: m.extra_count,
                            bytes: &m.extra,
                        },
                    );
                }
            }
            Found::Node(node) => {
                select(node, want, &mut sets);
                if sets[0].is_none() {
                    return negative(w, q, zone, zone_at, rcode::NOERROR);
                }
                let sets = sets.iter().flatten();
                let answer_len: usize = sets.clone().map(|s| s.answer().len()).sum();
                if w.len() + answer_len + wire::opt_len(q) > limit {
                    return truncated(w, q);
                }
                for s in sets.clone() {
                    w.push(
                        0,
                        Chunk {
                            count: s.count,
                            bytes: s.answer(),
                        },
                    );
                }
                // RFC 2181 §9: additional data that does not fit is left out
                // without setting TC.
                let extra_len: usize = sets.clone().map(|s| s.extra().len()).sum();
                if w.len() + extra_len + wire::opt_len(q) <= limit {
                    for s in sets {
                        w.push(
                            2,
                            Chunk {
                                count: s.extra_count,
                                bytes: s.extra(),
                            },
                        );
                    }
                }
            }
        }
        w.finish(q, rcode::NOERROR, true, false);
        (rcode::NOERROR, false)
    }

    /// The clusterset's counters, if the config has a clusterset.
    pub fn clusterset_stats(&self) -> Option<Arc<ClustersetStats>> {
        self.zones.iter().find_map(|z| match &z.kind {
            ZoneKind::Clusterset(cs) => Some(Arc::clone(&cs.stats)),
            _ => None,
        })
    }
}

/// Which RRsets at a node answer `want` (RFC 1034 §3.6.2: a CNAME answers
/// every type).
fn select<'n>(node: &'n Node, want: u16, out: &mut [Option<&'n Rrset>; 4]) {
    if let Some(cname) = node.get(qtype::CNAME) {
        out[0] = Some(cname);
        return;
    }
    if want == qtype::ANY {
        for (slot, set) in out.iter_mut().zip(node.all()) {
            *slot = Some(set);
        }
    } else {
        out[0] = node.get(want);
    }
}

fn truncated(mut w: ResponseWriter<'_>, q: &Query<'_>) -> (u8, bool) {
    w.clear_sections(q.question.len());
    w.finish(q, rcode::NOERROR, true, true);
    (rcode::NOERROR, true)
}

/// NXDOMAIN or NODATA, with the zone's SOA in the authority section
/// (RFC 2308 §2); its owner is a pointer to the zone's labels in the question.
fn negative(
    mut w: ResponseWriter<'_>,
    q: &Query<'_>,
    zone: &Zone,
    zone_at: usize,
    rcode: u8,
) -> (u8, bool) {
    let ptr = 0xC000 | (wire::HEADER_LEN + q.name.offset(zone_at)) as u16;
    w.buf().extend_from_slice(&ptr.to_be_bytes());
    w.buf().extend_from_slice(&zone.soa_tail);
    w.count(1, 1);
    w.finish(q, rcode, true, false);
    (rcode, false)
}

fn write_rr(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&crate::index::QNAME_POINTER);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&wire::CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// The zone's TTL, read back from its SOA MINIMUM (the last 4 bytes).
fn zone_ttl(zone: &Zone) -> u32 {
    let t = &zone.soa_tail;
    t.len().checked_sub(4).map_or(0, |at| {
        u32::from_be_bytes([t[at], t[at + 1], t[at + 2], t[at + 3]])
    })
}

impl Zone {
    fn new(apex: WireName, kind: ZoneKind, ttl: u32, serial: u32) -> Self {
        let mname = WireName::parse("ns.dns")
            .and_then(|n| n.join(&apex))
            .unwrap_or_else(|_| apex.clone());
        let rname = WireName::parse("hostmaster")
            .and_then(|n| n.join(&apex))
            .unwrap_or_else(|_| apex.clone());
        // RFC 2308 §5: negative answers are cached for min(SOA TTL, MINIMUM);
        // both are the configured TTL so NXDOMAINs expire like answers do.
        let soa = SOA::new(
            mname.to_hickory(),
            rname.to_hickory(),
            serial,
            7200,
            1800,
            86400,
            ttl,
        );
        let mut soa_tail = Vec::new();
        push_rr_tail(&mut soa_tail, &RData::SOA(soa), ttl);
        let mut ns_tail = Vec::new();
        push_rr_tail(&mut ns_tail, &RData::NS(NS(mname.to_hickory())), ttl);
        Self {
            apex,
            kind,
            soa_tail,
            ns_tail,
        }
    }
}

#[cfg(test)]
mod tests;
