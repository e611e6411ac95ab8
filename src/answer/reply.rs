//! Writes what a name holds (`Found`) into the reply: pre-encoded records
//! copied as bytes, synthesized ones encoded here, negative answers with
//! the zone's SOA (RFC 2308 §2), truncation (RFC 2181 §9). Records are owned
//! by a compression pointer: to the question, or, once a CNAME is followed,
//! to the CNAME's target name inside the reply itself.

use std::net::IpAddr;

use std::sync::Arc;

use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::{A, AAAA, TXT};

use super::Found;
use crate::dnsname::{QName, WireName};
use crate::grammar;
use crate::index::{Node, Rrset, ZoneJournal, apex, push_rr_tail};
use crate::wire::{self, CLASS_IN, Chunk, HEADER_LEN, Query, ResponseWriter, qtype, rcode};

/// Answer bytes assembled at query time (the clusterset's merged answers):
/// records owned by the question pointer, like pre-encoded ones.
#[derive(Debug, Default)]
pub struct Merged {
    pub count: u16,
    pub answer: Vec<u8>,
    pub extra_count: u16,
    pub extra: Vec<u8>,
}

/// The records every served zone synthesizes: SOA, NS, `dns-version`, and
/// the addresses of its NS target `ns.dns.<zone>`.
#[derive(Debug)]
pub(super) struct ZoneRecords {
    ttl: u32,
    /// SOA from TYPE on (its owner is written per reply); the serial at
    /// `serial_at` is rewritten from `serial` on every use.
    soa_tail: Vec<u8>,
    serial_at: usize,
    serial: Serial,
    ns_tail: Vec<u8>,
    /// TXT with the zone's schema version, where it has one.
    version_tail: Option<Vec<u8>>,
    /// `dns.advertise`: what `ns.dns.<zone>` answers.
    advertise: Vec<IpAddr>,
    /// The same as additional-section records owned by `ns.dns.<zone>`.
    glue: Vec<u8>,
    glue_count: u16,
}

/// Where a zone's SOA serial comes from.
#[derive(Debug, Clone)]
pub(super) enum Serial {
    /// Fixed at start (reverse zones, the clusterset: answers chosen per query).
    Fixed(u32),
    /// The zone's journal: it rises with every published change (design.md §7).
    Journal(Arc<ZoneJournal>),
}

impl Serial {
    fn get(&self) -> u32 {
        match self {
            Serial::Fixed(s) => *s,
            Serial::Journal(j) => j.serial(),
        }
    }
}

impl ZoneRecords {
    pub(super) fn new(
        apex: &WireName,
        ttl: u32,
        serial: Serial,
        version: Option<&str>,
        advertise: &[IpAddr],
    ) -> Self {
        let soa = apex::soa(apex, serial.get(), ttl);
        // TYPE, CLASS, TTL, RDLENGTH (10), MNAME, RNAME (uncompressed,
        // with their root labels), then SERIAL.
        let wire_len = |n: Result<WireName, _>| n.map_or(0, |n: WireName| n.as_bytes().len() + 1);
        let serial_at =
            10 + wire_len(grammar::ns_name(apex)) + wire_len(grammar::hostmaster_name(apex));
        let tail = |rdata: &RData| {
            let mut v = Vec::new();
            push_rr_tail(&mut v, rdata, ttl);
            v
        };
        let mname = grammar::ns_name(apex).unwrap_or_else(|_| apex.clone());
        let mut glue = Vec::new();
        let mut glue_count = 0u16;
        for ip in advertise {
            glue.extend_from_slice(&mname.to_wire_fqdn());
            glue.extend_from_slice(&tail(&address(*ip)));
            glue_count += 1;
        }
        Self {
            ttl,
            soa_tail: tail(&RData::SOA(soa)),
            serial_at,
            serial,
            ns_tail: tail(&RData::NS(apex::ns(apex))),
            version_tail: version.map(|v| tail(&RData::TXT(TXT::new(vec![v.to_owned()])))),
            advertise: advertise.to_vec(),
            glue,
            glue_count,
        }
    }

    /// Appends the SOA from TYPE on, with the zone's current serial.
    fn write_soa(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.soa_tail);
        let at = start + self.serial_at;
        if let Some(bytes) = out.get_mut(at..at + 4) {
            bytes.copy_from_slice(&self.serial.get().to_be_bytes());
        }
    }
}

fn address(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

/// Who owns the records being written: compression pointers to the name,
/// and to its zone's apex labels inside it (the SOA owner of a negative
/// answer).
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner {
    name: [u8; 2],
    apex: [u8; 2],
}

/// RFC 1035 §4.1.4: a pointer holds a 14-bit offset.
const MAX_POINTER: usize = 0x3FFF;

fn pointer(offset: usize) -> Option<[u8; 2]> {
    (offset <= MAX_POINTER).then(|| (0xC000 | offset as u16).to_be_bytes())
}

impl Owner {
    /// The question name, whose labels `zone_at..` are the zone's apex.
    pub(super) fn question(name: &QName, zone_at: usize) -> Self {
        Self {
            name: crate::index::QNAME_POINTER,
            // The question name ends within the first 12 + 255 bytes.
            apex: pointer(HEADER_LEN + name.offset(zone_at)).unwrap_or([0xC0, 0x0C]),
        }
    }

    /// A name written uncompressed at byte `offset` of the reply.
    pub(super) fn at(offset: usize, name: &QName, zone_at: usize) -> Option<Self> {
        Some(Self {
            name: pointer(offset)?,
            apex: pointer(offset + name.offset(zone_at))?,
        })
    }
}

/// How far a name's records got into the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Emitted {
    /// Finished with this RCODE (records, or a negative answer with SOA).
    Done(u8),
    /// A CNAME was written; its target name starts at this byte.
    Cname { target_at: usize },
    /// The data is not there yet.
    Servfail,
    /// The answer does not fit the transport's limit.
    Truncated,
}

/// Writes `found` for a name owned by `owner` in `zone`.
pub(super) fn emit(
    w: &mut ResponseWriter<'_>,
    q: &Query<'_>,
    zone: &ZoneRecords,
    owner: Owner,
    found: Found<'_>,
    limit: usize,
) -> Emitted {
    let want = q.qtype;
    let any = want == qtype::ANY;
    let room = |w: &ResponseWriter<'_>, more: usize| w.len() + more + wire::opt_len(q) <= limit;
    match found {
        Found::Servfail => Emitted::Servfail,
        Found::Nxdomain => negative(w, zone, owner, rcode::NXDOMAIN),
        Found::Nodata => negative(w, zone, owner, rcode::NOERROR),
        Found::Apex => {
            let mut n = 0;
            if any || want == qtype::SOA {
                w.buf().extend_from_slice(&owner.name);
                zone.write_soa(w.buf());
                n += 1;
            }
            if any || want == qtype::NS {
                w.buf().extend_from_slice(&owner.name);
                w.buf().extend_from_slice(&zone.ns_tail);
                n += 1;
            }
            if n == 0 {
                return negative(w, zone, owner, rcode::NOERROR);
            }
            w.count(0, n);
            if (any || want == qtype::NS) && room(w, zone.glue.len()) {
                w.push(
                    2,
                    Chunk {
                        count: zone.glue_count,
                        bytes: &zone.glue,
                    },
                );
            }
            Emitted::Done(rcode::NOERROR)
        }
        Found::DnsVersion => match &zone.version_tail {
            Some(tail) if any || want == qtype::TXT => {
                w.buf().extend_from_slice(&owner.name);
                w.buf().extend_from_slice(tail);
                w.count(0, 1);
                Emitted::Done(rcode::NOERROR)
            }
            _ => negative(w, zone, owner, rcode::NOERROR),
        },
        Found::NsAddresses => {
            let mut n = 0;
            for ip in &zone.advertise {
                if any || want == rtype_of(*ip) {
                    write_address(w.buf(), owner, zone.ttl, *ip);
                    n += 1;
                }
            }
            if n == 0 {
                return negative(w, zone, owner, rcode::NOERROR);
            }
            w.count(0, n);
            Emitted::Done(rcode::NOERROR)
        }
        Found::Address(ip) => {
            if !(any || want == rtype_of(ip)) {
                return negative(w, zone, owner, rcode::NOERROR);
            }
            write_address(w.buf(), owner, zone.ttl, ip);
            w.count(0, 1);
            Emitted::Done(rcode::NOERROR)
        }
        Found::Ptr(names) => {
            if !(any || want == qtype::PTR) {
                return negative(w, zone, owner, rcode::NOERROR);
            }
            for name in names.iter() {
                let name = name.as_bytes();
                if !room(w, name.len() + 1 + 12) {
                    return Emitted::Truncated;
                }
                // The target in full, then the root label.
                write_rr(w.buf(), owner, qtype::PTR, zone.ttl, &[name, &[0]]);
                w.count(0, 1);
            }
            Emitted::Done(rcode::NOERROR)
        }
        Found::Merged(m) => {
            if !room(w, m.answer.len()) {
                return Emitted::Truncated;
            }
            copy_owned(w, owner, m.count, &m.answer);
            if room(w, m.extra.len()) {
                w.push(
                    2,
                    Chunk {
                        count: m.extra_count,
                        bytes: &m.extra,
                    },
                );
            }
            Emitted::Done(rcode::NOERROR)
        }
        Found::Node(node) => emit_node(w, zone, owner, node, want, |w, n| room(w, n)),
    }
}

fn emit_node(
    w: &mut ResponseWriter<'_>,
    zone: &ZoneRecords,
    owner: Owner,
    node: &Node,
    want: u16,
    room: impl Fn(&ResponseWriter<'_>, usize) -> bool,
) -> Emitted {
    // RFC 1034 §3.6.2: a CNAME answers every type.
    if let Some(cname) = node.get(qtype::CNAME) {
        if !room(w, cname.answer().len()) {
            return Emitted::Truncated;
        }
        let start = w.len();
        copy_owned(w, owner, cname.count, cname.answer());
        // Owner (2), TYPE, CLASS, TTL, RDLENGTH (10), then the target.
        return Emitted::Cname {
            target_at: start + 12,
        };
    }
    let mut sets: [Option<&Rrset>; 4] = [None; 4];
    if want == qtype::ANY {
        for (slot, set) in sets.iter_mut().zip(node.all()) {
            *slot = Some(set);
        }
    } else {
        sets[0] = node.get(want);
    }
    if sets[0].is_none() {
        return negative(w, zone, owner, rcode::NOERROR);
    }
    let sets = sets.iter().flatten();
    let answer_len: usize = sets.clone().map(|s| s.answer().len()).sum();
    if !room(w, answer_len) {
        return Emitted::Truncated;
    }
    for s in sets.clone() {
        copy_owned(w, owner, s.count, s.answer());
    }
    // RFC 2181 §9: additional data that does not fit is left out without
    // setting TC.
    let extra_len: usize = sets.clone().map(|s| s.extra().len()).sum();
    if room(w, extra_len) {
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
    Emitted::Done(rcode::NOERROR)
}

/// Copies answer records owned by the question pointer, re-pointing each
/// owner at `owner` when that is another name.
fn copy_owned(w: &mut ResponseWriter<'_>, owner: Owner, count: u16, records: &[u8]) {
    let start = w.len();
    w.push(
        0,
        Chunk {
            count,
            bytes: records,
        },
    );
    if owner.name == crate::index::QNAME_POINTER {
        return;
    }
    let buf = w.buf();
    let mut at = start;
    // Each record: owner (2), TYPE, CLASS (4), TTL (4), RDLENGTH (2), RDATA.
    while at + 12 <= buf.len() {
        buf[at..at + 2].copy_from_slice(&owner.name);
        let rdlen = usize::from(u16::from_be_bytes([buf[at + 10], buf[at + 11]]));
        at += 12 + rdlen;
    }
}

/// NXDOMAIN or NODATA, with the zone's SOA in the authority section
/// (RFC 2308 §2); its owner points at the zone's labels in the name.
fn negative(w: &mut ResponseWriter<'_>, zone: &ZoneRecords, owner: Owner, rcode: u8) -> Emitted {
    w.buf().extend_from_slice(&owner.apex);
    zone.write_soa(w.buf());
    w.count(1, 1);
    Emitted::Done(rcode)
}

fn rtype_of(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => qtype::A,
        IpAddr::V6(_) => qtype::AAAA,
    }
}

fn write_address(out: &mut Vec<u8>, owner: Owner, ttl: u32, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => write_rr(out, owner, qtype::A, ttl, &[&v4.octets()]),
        IpAddr::V6(v6) => write_rr(out, owner, qtype::AAAA, ttl, &[&v6.octets()]),
    }
}

/// One record owned by `owner`, its RDATA the concatenation of `rdata`.
fn write_rr(out: &mut Vec<u8>, owner: Owner, rtype: u16, ttl: u32, rdata: &[&[u8]]) {
    let len: usize = rdata.iter().map(|p| p.len()).sum();
    out.extend_from_slice(&owner.name);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for part in rdata {
        out.extend_from_slice(part);
    }
}

/// Completes the header for how the reply ended; returns (rcode, truncated).
pub(super) fn finish(mut w: ResponseWriter<'_>, q: &Query<'_>, emitted: Emitted) -> (u8, bool) {
    match emitted {
        Emitted::Done(rcode) => {
            w.finish(q, rcode, true, false);
            (rcode, false)
        }
        Emitted::Cname { .. } => {
            w.finish(q, rcode::NOERROR, true, false);
            (rcode::NOERROR, false)
        }
        Emitted::Servfail => {
            w.clear_sections(q.question.len());
            w.finish(q, rcode::SERVFAIL, false, false);
            (rcode::SERVFAIL, false)
        }
        Emitted::Truncated => {
            w.clear_sections(q.question.len());
            w.finish(q, rcode::NOERROR, true, true);
            (rcode::NOERROR, true)
        }
    }
}
