//! The records of one name as a transferred zone holds them while it
//! changes: per type, a TTL and the data in arrival order (RFC 2181 §5: a
//! set, one TTL), and the way back from a snapshot's pre-encoded RRsets.

use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};

use super::Group;
use crate::index::rrset::{Node, Rrset};
use crate::index::snapshot::ServiceRecords;

/// The records at one name, by type; each type's TTL and data in the order
/// they arrived.
pub(super) type Sets = std::collections::BTreeMap<u16, Set>;

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Set {
    pub(super) ttl: u32,
    pub(super) data: Vec<RData>,
}

/// Adds a record to its name's sets; false when it was there already
/// (RFC 2181 §5: an RRset holds no duplicates). The set's TTL is its
/// smallest record's.
pub(super) fn add(sets: &mut Sets, r: Record) -> bool {
    let rtype = u16::from(r.record_type());
    let set = sets.entry(rtype).or_insert_with(|| Set {
        ttl: r.ttl,
        data: Vec::new(),
    });
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
    let Some(set) = sets.get_mut(&rtype) else {
        return false;
    };
    let Some(at) = set.data.iter().position(|d| *d == r.data) else {
        return false;
    };
    set.data.remove(at);
    if set.data.is_empty() {
        sets.remove(&rtype);
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
    let mut out = Set::default();
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
