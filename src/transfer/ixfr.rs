//! IXFR (RFC 1995 §4) from the zone's journal: for each published change
//! since the secondary's serial, the old SOA, the records that went, the
//! new SOA and the records that came. Records are rendered exactly as a
//! whole transfer renders them (`index::records`), before and after, and
//! compared as (owner, record bytes), so an IXFR leaves a secondary holding
//! what an AXFR would have given it.

use std::collections::HashSet;
use std::sync::Arc;

use super::message::{Messages, Sink, for_each_record};
use super::zone::ClusterZone;
use crate::dnsname::WireName;
use crate::index::{Entry, Rrset, ServiceRecords, records};

/// One record: its owner and its bytes from TYPE on.
type Rr = (WireName, Vec<u8>);

/// A snapshot's namespace set (lower-case names).
type Namespaces = Arc<HashSet<Box<[u8]>>>;

fn push(out: &mut Vec<Rr>, owner: &WireName, set: &Rrset) {
    for_each_record(set.answer(), |tail| {
        out.push((owner.clone(), tail.to_vec()))
    });
}

/// The records that went and came in one journal entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Delta {
    pub deleted: Vec<Rr>,
    pub added: Vec<Rr>,
}

impl Delta {
    /// Records in `old` but not `new` go; in `new` but not `old` come.
    fn add(&mut self, old: Vec<Rr>, new: Vec<Rr>) {
        let old_set: HashSet<&Rr> = old.iter().collect();
        let new_set: HashSet<&Rr> = new.iter().collect();
        self.deleted
            .extend(old.iter().filter(|r| !new_set.contains(r)).cloned());
        self.added
            .extend(new.iter().filter(|r| !old_set.contains(r)).cloned());
    }
}

/// What `entry` changed in `zone`'s records.
pub(super) fn delta(zone: &ClusterZone, entry: &Entry) -> Delta {
    let apex = &zone.apex.name;
    let mut d = Delta::default();
    let render = |svc: Option<&ServiceRecords>, key: &[u8]| {
        let mut out = Vec::new();
        if let Some(svc) = svc {
            records::service_records(apex, key, svc, &mut |o, s| push(&mut out, o, s));
        }
        out
    };
    for c in &entry.services {
        d.add(
            render(c.old.as_deref(), &c.key),
            render(c.new.as_deref(), &c.key),
        );
    }
    if let Some((old, new)) = &entry.namespaces {
        let marks = |set: &Namespaces, other: &Namespaces| {
            let mut gone: Vec<&Box<[u8]>> = set.iter().filter(|ns| !other.contains(*ns)).collect();
            gone.sort();
            let mut out = Vec::new();
            for ns in gone {
                records::namespace_records(apex, ns, &zone.marker, &mut |o, s| {
                    push(&mut out, o, s)
                });
            }
            out
        };
        d.add(marks(old, new), marks(new, old));
    }
    if zone.pods {
        for p in &entry.pods {
            let render = |namespaces: Option<&Arc<[Box<str>]>>| {
                let mut out = Vec::new();
                for ns in namespaces.into_iter().flat_map(|l| l.iter()) {
                    if let Some((owner, set)) = records::pod_record(apex, ns, p.ip, zone.apex.ttl) {
                        push(&mut out, &owner, &set);
                    }
                }
                out
            };
            d.add(render(p.old.as_ref()), render(p.new.as_ref()));
        }
    }
    d
}

/// The changes since the secondary's serial, SOA to SOA (RFC 1995 §4).
/// `entries` is the journal from that serial on; the last entry's `to` is
/// the zone's current serial.
pub(super) fn write<S: Sink>(zone: &ClusterZone, entries: &[Entry], m: &mut Messages<'_, S>) {
    let Some(current) = entries.last().map(|e| e.to) else {
        return;
    };
    zone.apex.write_soa(current, m);
    for entry in entries {
        if m.closed() {
            return;
        }
        let d = delta(zone, entry);
        zone.apex.write_soa(entry.from, m);
        for (owner, tail) in &d.deleted {
            m.record(owner, tail);
        }
        zone.apex.write_soa(entry.to, m);
        for (owner, tail) in &d.added {
            m.record(owner, tail);
        }
    }
    zone.apex.write_soa(current, m);
}

/// How many records the entries change (to choose IXFR or a whole zone).
pub(super) fn weight(entries: &[Entry]) -> usize {
    entries
        .iter()
        .map(|e| 1 + e.services.len() + e.pods.len())
        .sum()
}
