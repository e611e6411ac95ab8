//! The catalog zone (RFC 9432, schema version 2) at `transfer.catalog`:
//! every transferable cluster zone as a member, so a BIND or knot secondary
//! that consumes the catalog follows new clusters by itself. Members are
//! listed whether or not they have synced (design.md §7). Its serial is its
//! own: it starts from the clock and rises only when a reload changes the
//! set of members. Transferred like any zone, and answered to queries too
//! (secondaries check its SOA before they transfer it).

use std::sync::atomic::{AtomicU32, Ordering};

use hickory_proto::rr::rdata::{NS, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData};

use super::message::{Messages, Sink};
use crate::dnsname::WireName;
use crate::index::{Node, Rrset, RrsetBuilder, apex, next_serial, unix_ms};
use crate::wire::{Chunk, Query, ResponseWriter, qtype, rcode};

/// RFC 9432 §4.2: the schema version this catalog follows.
const VERSION: &str = "2";

#[derive(Debug)]
pub(super) struct Catalog {
    pub apex: WireName,
    pub ttl: u32,
    serial: AtomicU32,
    members: Vec<WireName>,
    ns: Option<Rrset>,
    /// `version.<catalog>` and `<id>.zones.<catalog>`, in that order.
    names: Vec<(WireName, Node)>,
}

/// RFC 9432 §4.1: the apex NS points at `invalid.` (a catalog is data, not
/// a zone anyone resolves through).
fn invalid() -> Name {
    Name::from_ascii("invalid.").unwrap_or_else(|_| Name::root())
}

fn one(rtype: u16, ttl: u32, rdata: RData) -> Option<Rrset> {
    let mut b = RrsetBuilder::new(rtype, ttl);
    b.push(&rdata);
    b.finish()
}

/// A member's unique label (RFC 9432 §4.3): the first 8 bytes of the
/// SHA-256 of its wire name, in hex. Stable across restarts, reloads and
/// versions, so secondaries never see a member change identity.
pub fn member_id(zone: &WireName) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &zone.to_wire_fqdn());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Catalog {
    /// The catalog `apex` listing `members` (zone apexes, in config order).
    pub fn new(apex: &WireName, members: Vec<WireName>, ttl: u32) -> Self {
        let mut names = Vec::with_capacity(members.len() + 1);
        let under = |labels: &[&str]| {
            WireName::from_labels(labels.iter().copied()).and_then(|l| l.join(apex))
        };
        if let Ok(version) = under(&["version"]) {
            let txt = one(16, ttl, RData::TXT(TXT::new(vec![VERSION.to_owned()])));
            names.push((version, Node::new([txt])));
        }
        for zone in &members {
            let id = member_id(zone);
            if let Ok(owner) = under(&[id.as_str(), "zones"]) {
                let ptr = one(12, ttl, RData::PTR(PTR(zone.to_hickory())));
                names.push((owner, Node::new([ptr])));
            }
        }
        Self {
            apex: apex.clone(),
            ttl,
            serial: AtomicU32::new(next_serial(0, unix_ms())),
            members,
            ns: one(2, ttl, RData::NS(NS(invalid()))),
            names,
        }
    }

    pub fn serial(&self) -> u32 {
        self.serial.load(Ordering::Acquire)
    }

    /// After a reload: the running catalog's serial when the members are
    /// the same, else a greater one, so secondaries fetch the new set.
    pub fn carry_over(&self, running: &Catalog) {
        let serial = if running.members == self.members {
            running.serial()
        } else {
            next_serial(running.serial(), unix_ms())
        };
        self.serial.store(serial, Ordering::Release);
    }

    pub fn soa_rdata(&self, serial: u32) -> RData {
        RData::SOA(SOA::new(
            invalid(),
            invalid(),
            serial,
            apex::REFRESH,
            apex::RETRY,
            apex::EXPIRE,
            self.ttl,
        ))
    }

    fn soa(&self) -> Option<Rrset> {
        one(6, self.ttl, self.soa_rdata(self.serial()))
    }

    /// The whole catalog, SOA to SOA.
    pub fn write_all<S: Sink>(&self, m: &mut Messages<'_, S>) {
        let Some(soa) = self.soa() else {
            return;
        };
        m.rrset(&self.apex, &soa);
        if let Some(ns) = &self.ns {
            m.rrset(&self.apex, ns);
        }
        for (owner, node) in &self.names {
            for set in node.all() {
                m.rrset(owner, set);
            }
        }
        m.rrset(&self.apex, &soa);
    }

    /// Answers a query for a name in the catalog (`q.name` is at or below
    /// the apex) within `limit` bytes; returns the RCODE and whether the
    /// answer was truncated.
    pub fn answer(&self, q: &Query<'_>, limit: usize, out: &mut Vec<u8>) -> (u8, bool) {
        let name = q.name.wire();
        let want = q.qtype;
        let any = want == qtype::ANY;
        let mut sets: Vec<&Rrset> = Vec::new();
        let soa = self.soa();
        let exists = if name == self.apex.as_bytes() {
            sets.extend(soa.iter().filter(|_| any || want == qtype::SOA));
            sets.extend(self.ns.iter().filter(|_| any || want == qtype::NS));
            true
        } else if let Some((_, node)) = self.names.iter().find(|(o, _)| o.as_bytes() == name) {
            sets.extend(node.all().iter().filter(|s| any || s.rtype == want));
            true
        } else {
            // `zones.<catalog>` is an empty non-terminal (RFC 1034 §4.3.2).
            self.names
                .iter()
                .any(|(o, _)| o.as_bytes().len() > name.len() && o.as_bytes().ends_with(name))
        };
        let mut w = ResponseWriter::new(out, q);
        let len: usize = sets.iter().map(|s| s.answer().len()).sum();
        if w.len() + len + crate::wire::opt_len(q) > limit {
            w.clear_sections(q.question.len());
            w.finish(q, rcode::NOERROR, true, true);
            return (rcode::NOERROR, true);
        }
        for s in &sets {
            w.push(
                0,
                Chunk {
                    count: s.count,
                    bytes: s.answer(),
                },
            );
        }
        let rcode = if exists {
            rcode::NOERROR
        } else {
            rcode::NXDOMAIN
        };
        if sets.is_empty()
            && let Some(soa) = &soa
        {
            // RFC 2308 §3: the SOA in the authority section, owned by the apex.
            for_records(soa.answer(), |tail| {
                w.buf().extend_from_slice(&self.apex.to_wire_fqdn());
                w.buf().extend_from_slice(tail);
                w.count(1, 1);
            });
        }
        w.finish(q, rcode, true, false);
        (rcode, false)
    }
}

fn for_records(bytes: &[u8], f: impl FnMut(&[u8])) {
    super::message::for_each_record(bytes, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_stable_labels_and_differ_per_zone() {
        let a = WireName::parse("cluster.region1").expect("name");
        let b = WireName::parse("cluster.region2").expect("name");
        assert_eq!(member_id(&a), member_id(&a));
        assert_ne!(member_id(&a), member_id(&b));
        assert_eq!(member_id(&a).len(), 16);
        assert!(member_id(&a).chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_reload_keeps_the_serial_for_the_same_members_and_raises_it_otherwise() {
        let apex = WireName::parse("catalog.crossdns").expect("name");
        let a = WireName::parse("cluster.a").expect("name");
        let b = WireName::parse("cluster.b").expect("name");
        let running = Catalog::new(&apex, vec![a.clone()], 5);
        running.serial.store(1000, Ordering::Release);
        let same = Catalog::new(&apex, vec![a.clone()], 5);
        same.carry_over(&running);
        assert_eq!(same.serial(), 1000);
        let more = Catalog::new(&apex, vec![a, b], 5);
        more.carry_over(&running);
        assert!(crate::index::serial_gt(more.serial(), 1000));
    }
}
