//! The records of one name as a transferred zone holds them while it
//! changes: per type, a TTL and the data in arrival order (RFC 2181 §5: a
//! set, one TTL), and the way back from a snapshot's pre-encoded RRsets.

use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};

use super::Group;
use crate::index::rrset::{Node, Rrset};
use crate::index::snapshot::ServiceRecords;

/// The records at one name, by type (in type order); each type's TTL and
/// data in the order they arrived. A sorted vector, not a map: a name holds
/// one or two types, and a whole transfer holds one of these per name
/// while it is folded in (a `BTreeMap` node and a `Vec` grown to four
/// `RData`s made 0.5 KiB per one-address name).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Sets(Vec<(u16, Set)>);

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Set {
    pub(super) ttl: u32,
    pub(super) data: Vec<RData>,
}

impl Sets {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (type, set), in type order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&u16, &Set)> {
        self.0.iter().map(|(t, s)| (t, s))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Set> {
        self.0.iter().map(|(_, s)| s)
    }

    pub(super) fn get(&self, rtype: &u16) -> Option<&Set> {
        self.find(*rtype).ok().map(|i| &self.0[i].1)
    }

    pub(super) fn contains_key(&self, rtype: &u16) -> bool {
        self.find(*rtype).is_ok()
    }

    fn find(&self, rtype: u16) -> Result<usize, usize> {
        self.0.binary_search_by_key(&rtype, |(t, _)| *t)
    }
}

impl FromIterator<(u16, Set)> for Sets {
    fn from_iter<I: IntoIterator<Item = (u16, Set)>>(iter: I) -> Self {
        let mut v: Vec<(u16, Set)> = iter.into_iter().collect();
        v.sort_by_key(|(t, _)| *t);
        v.dedup_by_key(|(t, _)| *t);
        v.shrink_to_fit();
        Self(v)
    }
}

/// Adds a record to its name's sets; false when it was there already
/// (RFC 2181 §5: an RRset holds no duplicates). The set's TTL is its
/// smallest record's.
pub(super) fn add(sets: &mut Sets, r: Record) -> bool {
    let rtype = u16::from(r.record_type());
    let at = match sets.find(rtype) {
        Ok(at) => at,
        Err(at) => {
            if sets.0.capacity() == 0 {
                sets.0.reserve_exact(1);
            }
            let set = Set {
                ttl: r.ttl,
                data: Vec::with_capacity(1),
            };
            sets.0.insert(at, (rtype, set));
            at
        }
    };
    let set = &mut sets.0[at].1;
    if set.data.contains(&r.data) {
        return false;
    }
    set.ttl = set.ttl.min(r.ttl);
    set.data.push(r.data);
    true
}

/// Removes a record (matched by type and data, not TTL: RFC 1995 §2);
/// false when it was not there.
pub(super) fn remove(sets: &mut Sets, r: &Record) -> bool {
    let rtype = u16::from(r.record_type());
    let Ok(i) = sets.find(rtype) else {
        return false;
    };
    let set = &mut sets.0[i].1;
    let Some(at) = set.data.iter().position(|d| *d == r.data) else {
        return false;
    };
    set.data.remove(at);
    if set.data.is_empty() {
        sets.0.remove(i);
    }
    true
}

/// A published Service's records, read back from its RRsets.
pub(super) fn decode_group(s: &ServiceRecords) -> Group {
    Group {
        own: decode_node(&s.own),
        hosts: s
            .hosts
            .iter()
            .map(|(l, n)| (l.clone(), decode_node(n)))
            .collect(),
        srv: s
            .srv
            .iter()
            .map(|(k, n)| (Box::from(k), decode_node(n)))
            .collect(),
        meta: decode_node(&s.meta),
    }
}

pub(super) fn decode_node(node: &Node) -> Sets {
    node.all()
        .iter()
        .filter_map(|set| Some((set.rtype, decode_rrset(set)?)))
        .collect()
}

/// The answer records of `set` (owner pointer, TYPE, CLASS, TTL, RDLENGTH,
/// RDATA; RFC 1035 §4.1.3), decoded with hickory-proto.
pub(super) fn decode_rrset(set: &Rrset) -> Option<Set> {
    let bytes = set.answer();
    let rtype = RecordType::from(set.rtype);
    let mut out = Set {
        ttl: 0,
        data: Vec::with_capacity(1),
    };
    let mut at = 0;
    while at < bytes.len() {
        let field = |i: usize, n: usize| bytes.get(at + i..at + i + n);
        let ttl = u32::from_be_bytes(field(6, 4)?.try_into().ok()?);
        let rdlen = u16::from_be_bytes(field(10, 2)?.try_into().ok()?);
        let rdata = field(12, usize::from(rdlen))?;
        let mut decoder = BinDecoder::new(rdata);
        out.data
            .push(RData::read(&mut decoder, rtype, Restrict::new(rdlen)).ok()?);
        out.ttl = ttl;
        at += 12 + usize::from(rdlen);
    }
    (!out.data.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, TXT};

    fn record(ttl: u32, data: RData) -> Record {
        Record::from_rdata(
            Name::from_ascii("web.shop.svc.z.").expect("name"),
            ttl,
            data,
        )
    }

    #[test]
    fn sets_keep_types_in_order_data_once_and_the_smallest_ttl() {
        let a = |last: u8| RData::A(A::new(10, 0, 0, last));
        let txt = RData::TXT(TXT::new(vec!["x".into()]));
        let mut sets = Sets::default();
        assert!(add(&mut sets, record(30, txt.clone())));
        assert!(add(&mut sets, record(20, a(1))));
        assert!(add(&mut sets, record(10, a(2))));
        assert!(!add(&mut sets, record(5, a(1))), "a duplicate");
        let types: Vec<u16> = sets.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, [1, 16]);
        let addresses = sets.get(&1).expect("A");
        assert_eq!((addresses.ttl, addresses.data.len()), (10, 2));
        assert!(
            remove(&mut sets, &record(99, a(1))),
            "matched by data, not TTL"
        );
        assert!(!remove(&mut sets, &record(10, a(1))), "gone already");
        assert!(remove(&mut sets, &record(10, a(2))));
        assert!(!sets.contains_key(&1), "an emptied type goes");
        assert!(remove(&mut sets, &record(30, txt)));
        assert!(sets.is_empty());
    }
}
