//! Pre-encoded resource record sets. Records are built once, with hickory-proto,
//! when a snapshot is published, so answering a query copies bytes instead of
//! encoding records (design.md §6: the hot path must not pay for encoding).
//!
//! Answer-section records carry the owner as a compression pointer to the
//! question name at offset 12 (RFC 1035 §4.1.4): every answer crossdns gives
//! is owned by the question name, and the pointer also echoes the question's
//! case. Additional-section records carry their owner in full.

use hickory_proto::rr::{DNSClass, RData};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::dnsname::WireName;

/// Pointer to offset 12: the question name, right after the header.
pub const QNAME_POINTER: [u8; 2] = [0xC0, 0x0C];

/// One RRset at one owner, ready to copy into a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrset {
    pub rtype: u16,
    /// Records in the answer section.
    pub count: u16,
    /// Records for the additional section (SRV target addresses).
    pub extra_count: u16,
    /// `bytes[..split]` is the answer section, `bytes[split..]` the additional.
    split: u32,
    bytes: Box<[u8]>,
}

impl Rrset {
    pub fn answer(&self) -> &[u8] {
        &self.bytes[..self.split as usize]
    }

    pub fn extra(&self) -> &[u8] {
        &self.bytes[self.split as usize..]
    }
}

/// Accumulates records of one type for one owner.
#[derive(Debug)]
pub struct RrsetBuilder {
    rtype: u16,
    ttl: u32,
    count: u16,
    answer: Vec<u8>,
    extra_count: u16,
    extra: Vec<u8>,
}

impl RrsetBuilder {
    pub fn new(rtype: u16, ttl: u32) -> Self {
        Self {
            rtype,
            ttl,
            count: 0,
            answer: Vec::new(),
            extra_count: 0,
            extra: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds an answer record owned by the question name.
    pub fn push(&mut self, rdata: &RData) {
        if self.count == u16::MAX {
            return;
        }
        self.answer.extend_from_slice(&QNAME_POINTER);
        if push_rr_tail(&mut self.answer, rdata, self.ttl) {
            self.count += 1;
        } else {
            self.answer
                .truncate(self.answer.len() - QNAME_POINTER.len());
        }
    }

    /// Adds an additional-section record with its full owner name.
    pub fn push_extra(&mut self, owner: &WireName, rdata: &RData) {
        if self.extra_count == u16::MAX {
            return;
        }
        let mark = self.extra.len();
        self.extra.extend_from_slice(owner.as_bytes());
        self.extra.push(0);
        if push_rr_tail(&mut self.extra, rdata, self.ttl) {
            self.extra_count += 1;
        } else {
            self.extra.truncate(mark);
        }
    }

    pub fn finish(self) -> Option<Rrset> {
        if self.count == 0 {
            return None;
        }
        let split = self.answer.len() as u32;
        let mut bytes = self.answer;
        bytes.extend_from_slice(&self.extra);
        Some(Rrset {
            rtype: self.rtype,
            count: self.count,
            extra_count: self.extra_count,
            split,
            bytes: bytes.into_boxed_slice(),
        })
    }
}

/// Appends TYPE, CLASS, TTL, RDLENGTH and RDATA (RFC 1035 §4.1.3). Returns
/// false, leaving `out` as it was, if hickory refuses the rdata.
pub fn push_rr_tail(out: &mut Vec<u8>, rdata: &RData, ttl: u32) -> bool {
    let mark = out.len();
    out.extend_from_slice(&u16::from(rdata.record_type()).to_be_bytes());
    out.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let start = out.len();
    let ok = {
        // `new` would write from offset 0: append after what is there.
        let mut enc = BinEncoder::with_offset(out, start as u32);
        // Fragments are spliced into other messages: no pointers inside them.
        enc.set_name_encoding(NameEncoding::Uncompressed);
        rdata.emit(&mut enc).is_ok()
    };
    let rdlen = out.len() - start;
    if !ok || rdlen > usize::from(u16::MAX) {
        out.truncate(mark);
        return false;
    }
    out[len_at..len_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
    true
}

/// The records at one name, one RRset per type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node(Box<[Rrset]>);

impl Node {
    pub fn new(sets: impl IntoIterator<Item = Option<Rrset>>) -> Self {
        Self(sets.into_iter().flatten().collect())
    }

    pub fn get(&self, rtype: u16) -> Option<&Rrset> {
        self.0.iter().find(|s| s.rtype == rtype)
    }

    pub fn all(&self) -> &[Rrset] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
