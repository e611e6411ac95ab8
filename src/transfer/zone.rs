//! One transferable cluster zone (design.md §7): its members (the clusters
//! serving it, several for a shared zone), its serial and journal, and its
//! records as a transfer sends them: the apex records queries get (SOA,
//! NS, `dns-version`, `ns.dns` addresses; `index::apex`) and every member's
//! snapshot records (`index::records`), read from snapshots taken at one
//! version and held while the transfer runs.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::{A, AAAA, TXT};

use super::message::{Messages, Sink};
use crate::config::{PodsMode, Settings};
use crate::dnsname::WireName;
use crate::grammar;
use crate::index::{ClusterHandle, ClusterSpec, Node, Rrset, RrsetBuilder, Snapshot, ZoneJournal};
use crate::index::{apex, meta, records};

const TYPE_SOA: u16 = 6;
const TYPE_NS: u16 = 2;
const TYPE_TXT: u16 = 16;

/// The records a zone's apex synthesizes, as answers give them.
#[derive(Debug)]
pub(super) struct Apex {
    pub name: WireName,
    pub ttl: u32,
    ns: Option<Rrset>,
    version: Option<Rrset>,
    ns_name: Option<WireName>,
    ns_addresses: Vec<Rrset>,
}

impl Apex {
    /// `version`: the `dns-version` TXT (`None` for the catalog);
    /// `advertise`: what `ns.dns.<zone>` answers.
    pub fn new(name: &WireName, ttl: u32, version: Option<&str>, advertise: &[IpAddr]) -> Self {
        let one = |rtype: u16, rdata: RData| {
            let mut b = RrsetBuilder::new(rtype, ttl);
            b.push(&rdata);
            b.finish()
        };
        let mut ns_addresses = Vec::new();
        for (rtype, v4) in [(1u16, true), (28u16, false)] {
            let mut b = RrsetBuilder::new(rtype, ttl);
            for ip in advertise.iter().filter(|ip| ip.is_ipv4() == v4) {
                b.push(&match ip {
                    IpAddr::V4(a) => RData::A(A(*a)),
                    IpAddr::V6(a) => RData::AAAA(AAAA(*a)),
                });
            }
            ns_addresses.extend(b.finish());
        }
        Self {
            name: name.clone(),
            ttl,
            ns: one(TYPE_NS, RData::NS(apex::ns(name))),
            version: version.and_then(|v| one(TYPE_TXT, RData::TXT(TXT::new(vec![v.to_owned()])))),
            ns_name: grammar::ns_name(name).ok(),
            ns_addresses,
        }
    }

    /// The SOA with `serial`, as answers carry it.
    pub fn soa(&self, serial: u32) -> Option<Rrset> {
        let mut b = RrsetBuilder::new(TYPE_SOA, self.ttl);
        b.push(&RData::SOA(apex::soa(&self.name, serial, self.ttl)));
        b.finish()
    }

    pub fn soa_rdata(&self, serial: u32) -> RData {
        RData::SOA(apex::soa(&self.name, serial, self.ttl))
    }

    /// The SOA record alone (IXFR's markers, the last record of a transfer).
    pub fn write_soa<S: Sink>(&self, serial: u32, m: &mut Messages<'_, S>) {
        if let Some(soa) = self.soa(serial) {
            m.rrset(&self.name, &soa);
        }
    }

    /// SOA first (RFC 5936 §2.2), then the other apex records.
    pub fn write_head<S: Sink>(&self, serial: u32, m: &mut Messages<'_, S>) {
        self.write_soa(serial, m);
        if let Some(ns) = &self.ns {
            m.rrset(&self.name, ns);
        }
        if let Some(version) = &self.version
            && let Ok(owner) =
                WireName::from_labels(["dns-version"]).and_then(|l| l.join(&self.name))
        {
            m.rrset(&owner, version);
        }
        if let Some(owner) = &self.ns_name {
            for set in &self.ns_addresses {
                m.rrset(owner, set);
            }
        }
    }
}

/// A cluster zone and the clusters serving it.
#[derive(Debug)]
pub(super) struct ClusterZone {
    pub apex: Apex,
    members: Vec<Arc<ClusterHandle>>,
    pub journal: Arc<ZoneJournal>,
    /// The TXT marking a namespace (`index::meta`).
    pub marker: Node,
    /// Some member has `pods: verified`: pod records are zone data.
    pub pods: bool,
}

/// Every member's snapshot at one version of the zone.
#[derive(Debug)]
pub(super) struct View {
    pub serial: u32,
    members: Vec<(Arc<ClusterSpec>, Arc<Snapshot>)>,
}

impl View {
    /// Services across the members (how big a whole transfer is).
    pub fn services(&self) -> usize {
        self.members.iter().map(|(_, s)| s.services.len()).sum()
    }
}

impl ClusterZone {
    /// The zone `apex` of `settings` (`clusters[i]` is `settings.clusters[i]`'s).
    pub fn new(
        apex: &WireName,
        settings: &Settings,
        clusters: &[Arc<ClusterHandle>],
    ) -> Option<Self> {
        let members: Vec<Arc<ClusterHandle>> = clusters
            .iter()
            .filter(|c| c.spec.zone == *apex)
            .cloned()
            .collect();
        let journal = Arc::clone(&members.first()?.journal);
        let pods = settings
            .clusters
            .iter()
            .any(|c| c.zone == *apex && c.pods == PodsMode::Verified);
        let ttl = settings.dns.ttl;
        Some(Self {
            apex: Apex::new(
                apex,
                ttl,
                Some(grammar::CLUSTER_SCHEMA_VERSION),
                &settings.dns.advertise,
            ),
            members,
            journal,
            marker: meta::namespace_marker(ttl),
            pods,
        })
    }

    /// Every member has published a first snapshot.
    pub fn synced(&self) -> bool {
        self.members.iter().all(|m| m.status.synced())
    }

    /// The members' snapshots and the serial they make together; `None`
    /// while some member has never synced (the transfer gets SERVFAIL).
    pub fn view(&self) -> Option<View> {
        self.journal.consistent(|| {
            let members = self
                .members
                .iter()
                .map(|m| Some((Arc::clone(&m.spec), m.snapshot()?)))
                .collect::<Option<Vec<_>>>()?;
            Some(View {
                serial: self.journal.serial(),
                members,
            })
        })
    }

    /// The serial a NOTIFY announces: the current one, once synced.
    pub fn notify_serial(&self) -> Option<u32> {
        self.journal
            .consistent(|| self.synced().then(|| self.journal.serial()))
    }

    /// The whole zone, SOA to SOA (AXFR, RFC 5936 §2.2; also IXFR's
    /// AXFR-style answer, RFC 1995 §4). Stops early when the peer is gone.
    pub fn write_all<S: Sink>(&self, view: &View, m: &mut Messages<'_, S>) {
        self.apex.write_head(view.serial, m);
        for (spec, snap) in &view.members {
            if m.closed() {
                return;
            }
            let marker = spec.transfer.then_some(&self.marker);
            records::snapshot_records(spec, snap, marker, &mut |owner, set| m.rrset(owner, set));
        }
        self.apex.write_soa(view.serial, m);
    }
}
