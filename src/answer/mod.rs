//! The answer engine: turns (snapshots, query bytes) into response bytes.
//! Routes a question to the longest matching zone (REFUSED outside them),
//! has the grammar parse it into a typed name, looks that name up in the
//! zone's data (`cluster`, `reverse`, `clusterset`), and writes the reply
//! (`reply`), following CNAMEs into zones it serves. Reads snapshots only;
//! never sees Kubernetes types; does no I/O.

mod cluster;
pub mod clusterset;
mod reply;
mod reverse;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hashbrown::HashMap;

use crate::config::{AllowList, Settings};
use crate::dnsname::{QName, WireName};
use crate::grammar;
use crate::index::{ClusterHandle, Node, SnapshotGuard};
use crate::wire::{self, Query, Reject, ResponseWriter, qtype, rcode};
use crate::zones::{Role, ZoneId, ZoneTable};
use cluster::ClusterZone;
use clusterset::{ClustersetStats, ClustersetZone};
pub use reply::Merged;
use reply::{Emitted, Owner, Serial, ZoneRecords};

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
    /// The zone the name fell in, if any.
    pub zone: Option<ZoneId>,
    pub truncated: bool,
}

impl Outcome {
    /// A query of stub zone `zone` that the forwarder answered with `rcode`.
    pub fn forwarded(zone: ZoneId, qtype: u16, rcode: hickory_proto::op::ResponseCode) -> Self {
        Self {
            rcode: u16::from(rcode) as u8,
            qtype,
            zone: Some(zone),
            truncated: false,
        }
    }
}

/// What a listener does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `out` holds the response.
    Reply(Outcome),
    /// No reply: not a query, or too short to carry an ID.
    Drop,
    /// A valid query for a forward zone: resolve it with
    /// `Forwarder::resolve(zone, packet, limit)`.
    Forward {
        zone: ZoneId,
        limit: usize,
        qtype: u16,
    },
    /// An AXFR or IXFR over TCP or TLS for a zone crossdns serves: answer
    /// it with `Transfers::serve` (design.md §7), which checks
    /// `transfer.allow` and TSIG itself.
    Transfer { zone: ZoneId, qtype: u16 },
    /// A query for a name in the catalog zone `zone` (RFC 9432): answer it
    /// with `Transfers::catalog_query(packet, zone, limit)`.
    Catalog { zone: ZoneId, limit: usize },
    /// A NOTIFY (RFC 1996) about `zone` (`None`: no zone crossdns serves):
    /// answer it with `Transfers::notified`, which accepts it only from a
    /// configured primary.
    Notify { zone: Option<ZoneId> },
}

/// What a name holds, as the reply writer needs it.
#[derive(Debug)]
pub enum Found<'s> {
    /// The zone apex: SOA and NS.
    Apex,
    /// `dns-version.<zone>`: the zone's schema version TXT.
    DnsVersion,
    /// `ns.dns.<zone>`: the `dns.advertise` addresses.
    NsAddresses,
    /// Pre-encoded records at the name.
    Node(&'s Node),
    /// An address synthesized from the name (pod records).
    Address(IpAddr),
    /// Reverse names for an address.
    Ptr(Arc<[WireName]>),
    /// Records assembled at query time (the clusterset's merged answers).
    Merged(Merged),
    /// The name exists with no records (an empty non-terminal).
    Nodata,
    Nxdomain,
    /// Data for the name is not available yet (a cluster never synced).
    Servfail,
}

#[derive(Debug)]
enum Kind {
    Cluster(ClusterZone),
    Reverse(crate::zones::Family),
    Clusterset(ClustersetZone),
    /// A stub zone: handed to the forwarder.
    Forward,
    /// The catalog zone: answered by `Transfers` (`Step::Catalog`).
    Catalog,
}

#[derive(Debug)]
struct Zone {
    id: ZoneId,
    kind: Kind,
    records: ZoneRecords,
}

/// The most CNAMEs one answer follows (RFC 1034 §4.3.2 leaves the bound
/// to the server; BIND stops at 16): an ExternalName chain longer than
/// this, or one that loops, is answered with the CNAMEs so far.
const MAX_CNAMES: usize = 8;

/// The DNS answer engine. Cheap to share: listeners hold an `Arc<Engine>`.
#[derive(Debug)]
pub struct Engine {
    /// Indexed by `ZoneId::index()`.
    zones: Vec<Zone>,
    by_apex: HashMap<Box<[u8]>, ZoneId>,
    /// Every cluster, for reverse lookups.
    clusters: Vec<Arc<ClusterHandle>>,
    allow: AllowList,
}

impl Engine {
    /// Builds the engine over `table`'s zones and the clusters' handles
    /// (`clusters[i]` belongs to `settings.clusters[i]`).
    pub fn new(settings: &Settings, table: &ZoneTable, clusters: &[Arc<ClusterHandle>]) -> Self {
        let ttl = settings.dns.ttl;
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        let mut zones = Vec::with_capacity(table.len());
        let mut by_apex = HashMap::new();
        for z in table.iter() {
            let (kind, version) = match z.role {
                Role::Cluster => (
                    Kind::Cluster(ClusterZone::new(&z.apex, settings, clusters)),
                    Some(grammar::CLUSTER_SCHEMA_VERSION),
                ),
                Role::Reverse(family) => (Kind::Reverse(family), None),
                Role::Clusterset => {
                    let Some(cs) = &settings.clusterset else {
                        continue;
                    };
                    let zone = ClustersetZone::new(cs, clusters);
                    (
                        Kind::Clusterset(zone),
                        Some(grammar::CLUSTERSET_SCHEMA_VERSION),
                    )
                }
                Role::Forward => (Kind::Forward, None),
                Role::Catalog => (Kind::Catalog, None),
            };
            by_apex.insert(z.apex.as_bytes().into(), z.id);
            // A cluster zone's serial is its journal's (shared by the
            // clusters of a shared zone); the others' is the start time.
            let serial = match &kind {
                Kind::Cluster(c) => c.journal().map_or(Serial::Fixed(serial), Serial::Journal),
                _ => Serial::Fixed(serial),
            };
            let records = ZoneRecords::new(&z.apex, ttl, serial, version, &settings.dns.advertise);
            zones.push(Zone {
                id: z.id,
                kind,
                records,
            });
        }
        Self {
            zones,
            by_apex,
            clusters: clusters.to_vec(),
            allow: settings.allow.clone(),
        }
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
            Step::Transfer { .. } | Step::Notify { .. } | Step::Catalog { .. } => {
                let q = wire::parse(packet).ok()?;
                ResponseWriter::new(out, &q).finish(&q, rcode::REFUSED, false, false);
                Some(Outcome {
                    rcode: rcode::REFUSED,
                    qtype: q.qtype,
                    zone: None,
                    truncated: false,
                })
            }
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
        if !matches!(q.qclass, wire::CLASS_IN | wire::CLASS_ANY) {
            return refuse(out, rcode::REFUSED);
        }
        // NOTIFY and zone transfers have access rules of their own
        // (`transfer.allow`, the configured primaries), not `allow`.
        if q.opcode == wire::opcode::NOTIFY {
            let zone = self.find_zone(&q.name).filter(|(_, at)| *at == 0);
            return Step::Notify {
                zone: zone.map(|(z, _)| z.id),
            };
        }
        if matches!(q.qtype, qtype::AXFR | qtype::IXFR) {
            // RFC 5936 §4.2: AXFR is TCP only; IXFR over UDP may be
            // answered "use TCP", and REFUSED is allowed (design.md §7).
            return match self.find_zone(&q.name) {
                Some((zone, 0))
                    if transport == Transport::Tcp
                        && matches!(zone.kind, Kind::Cluster(_) | Kind::Catalog) =>
                {
                    Step::Transfer {
                        zone: zone.id,
                        qtype: q.qtype,
                    }
                }
                _ => refuse(out, rcode::REFUSED),
            };
        }
        if !self.allow.allows(client) {
            return refuse(out, rcode::REFUSED);
        }
        let Some((zone, at)) = self.find_zone(&q.name) else {
            return refuse(out, rcode::REFUSED);
        };
        if let Kind::Catalog = zone.kind {
            return Step::Catalog {
                zone: zone.id,
                limit,
            };
        }
        if let Kind::Forward = zone.kind {
            return Step::Forward {
                zone: zone.id,
                limit,
                qtype: q.qtype,
            };
        }
        let (rcode, truncated) = self.answer(&q, zone, at, limit, out);
        Step::Reply(Outcome {
            rcode,
            qtype: q.qtype,
            zone: Some(zone.id),
            truncated,
        })
    }

    /// The longest served zone that is a suffix of `name`, and the number of
    /// labels of `name` below its apex.
    fn find_zone(&self, name: &QName) -> Option<(&Zone, usize)> {
        (0..name.label_count()).find_map(|i| {
            self.by_apex
                .get(name.suffix(i))
                .map(|id| (&self.zones[id.index()], i))
        })
    }

    /// What `name` (labels `0..at` below `zone`'s apex) holds. The result
    /// may borrow the snapshot `guard` is made to hold.
    fn lookup<'g>(
        &'g self,
        zone: &'g Zone,
        name: &QName,
        at: usize,
        want: u16,
        guard: &'g mut Option<SnapshotGuard>,
    ) -> Found<'g> {
        match &zone.kind {
            Kind::Cluster(c) => c.lookup(grammar::parse_cluster(name, at), guard),
            Kind::Reverse(family) => {
                reverse::lookup(&self.clusters, grammar::parse_reverse(*family, name, at))
            }
            Kind::Clusterset(cs) => cs.lookup(grammar::parse_clusterset(name, at), want),
            Kind::Forward | Kind::Catalog => Found::Servfail,
        }
    }

    /// Writes the whole reply to `q`, whose name lies `at` labels below
    /// `zone`'s apex; returns (rcode, truncated).
    fn answer(
        &self,
        q: &Query<'_>,
        zone: &Zone,
        at: usize,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> (u8, bool) {
        let mut w = ResponseWriter::new(out, q);
        let owner = Owner::question(&q.name, at);
        let emitted = {
            let mut guard = None;
            let found = self.lookup(zone, &q.name, at, q.qtype, &mut guard);
            reply::emit(&mut w, q, &zone.records, owner, found, limit)
        };
        let emitted = match emitted {
            Emitted::Cname { target_at } if !matches!(q.qtype, qtype::CNAME | qtype::ANY) => {
                self.chase(&mut w, q, target_at, limit)
            }
            Emitted::Cname { .. } => Emitted::Done(rcode::NOERROR),
            other => other,
        };
        reply::finish(w, q, emitted)
    }

    /// Follows a CNAME whose target name starts at byte `target_at` of the
    /// reply into the zones crossdns serves, adding the target's records
    /// (RFC 1034 §4.3.2 step 3a): the resolvers in front of crossdns pass
    /// answers through without chasing them. Stops at targets outside every
    /// served zone (and in forward zones), at `MAX_CNAMES`, and at a name
    /// already answered (a loop).
    fn chase(
        &self,
        w: &mut ResponseWriter<'_>,
        q: &Query<'_>,
        mut target_at: usize,
        limit: usize,
    ) -> Emitted {
        let mut seen: Vec<QName> = vec![q.name.clone()];
        for _ in 0..MAX_CNAMES {
            let Some(target) = w.bytes().get(target_at..).and_then(QName::from_wire_fqdn) else {
                break;
            };
            if seen.iter().any(|n| n.wire() == target.wire()) {
                break;
            }
            let Some((zone, at)) = self.find_zone(&target) else {
                break;
            };
            if matches!(zone.kind, Kind::Forward) {
                break;
            }
            let Some(owner) = Owner::at(target_at, &target, at) else {
                break;
            };
            let emitted = {
                let mut guard = None;
                let found = self.lookup(zone, &target, at, q.qtype, &mut guard);
                reply::emit(w, q, &zone.records, owner, found, limit)
            };
            match emitted {
                Emitted::Cname { target_at: next } => {
                    seen.push(target);
                    target_at = next;
                }
                other => return other,
            }
        }
        Emitted::Done(rcode::NOERROR)
    }

    /// The clusterset's counters, if the config has a clusterset.
    pub fn clusterset_stats(&self) -> Option<Arc<ClustersetStats>> {
        self.zones.iter().find_map(|z| match &z.kind {
            Kind::Clusterset(cs) => Some(Arc::clone(&cs.stats)),
            _ => None,
        })
    }
}
