//! DNS message bytes on the query path: a strict, allocation-free parser for
//! queries (RFC 1035 §4.1, EDNS0 per RFC 6891) and a writer that assembles
//! responses from pre-encoded record bytes. Records themselves are encoded
//! by hickory-proto when snapshots are built (`index::rrset`); anything a
//! query carries that this parser does not accept gets FORMERR or NOTIMP.

use crate::dnsname::QName;

pub const HEADER_LEN: usize = 12;
/// RFC 1035 §4.2.1: the classic UDP limit without EDNS.
pub const CLASSIC_UDP: usize = 512;
/// The EDNS payload crossdns offers and caps answers at (DNS Flag Day 2020).
pub const EDNS_UDP: u16 = 1232;

pub use crate::dnscode::{qtype, rcode};

/// RFC 1035 §4.1.1 / RFC 1996 §3: the opcodes crossdns answers.
pub mod opcode {
    pub const QUERY: u8 = 0;
    pub const NOTIFY: u8 = 4;
}

pub const CLASS_IN: u16 = 1;
pub const CLASS_ANY: u16 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A query the engine can answer.
#[derive(Debug)]
pub struct Query<'a> {
    pub id: u16,
    /// Header byte 2 of the query (opcode, RD) and byte 3 (CD).
    flags: [u8; 2],
    /// The question section exactly as sent, to echo its case.
    pub question: &'a [u8],
    pub name: QName,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
    /// `opcode::QUERY` or `opcode::NOTIFY`.
    pub opcode: u8,
}

/// Why a packet is not a query we answer normally.
#[derive(Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not worth a reply: too short to carry an ID, or itself a response.
    Drop,
    /// Reply with only a header carrying this RCODE.
    Reply { id: u16, flags: [u8; 2], rcode: u8 },
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Skips one (possibly compressed) name without following pointers, so a
/// compression loop cannot make this spin. Returns the offset after it.
pub fn skip_name(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *b.get(at)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + usize::from(len),
            0xC0 => return Some(at + 2).filter(|&end| end <= b.len()),
            _ => return None, // RFC 6891 §5: extended label types are gone
        }
    }
}

pub fn parse(packet: &[u8]) -> Result<Query<'_>, Reject> {
    if packet.len() < HEADER_LEN {
        return Err(Reject::Drop);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = [packet[2], packet[3]];
    if flags[0] & 0x80 != 0 {
        return Err(Reject::Drop); // a response: never answer one (reflection loops)
    }
    let formerr = Reject::Reply {
        id,
        flags,
        rcode: rcode::FORMERR,
    };
    let opcode = (flags[0] >> 3) & 0x0F;
    if !matches!(opcode, opcode::QUERY | opcode::NOTIFY) {
        return Err(Reject::Reply {
            id,
            flags,
            rcode: rcode::NOTIMP,
        });
    }
    let counts = [
        be16(packet, 4),
        be16(packet, 6),
        be16(packet, 8),
        be16(packet, 10),
    ];
    let [Some(qd), Some(an), Some(ns), Some(ar)] = counts else {
        return Err(formerr);
    };
    if qd != 1 {
        return Err(formerr);
    }

    // Question name: the first name in a message cannot be compressed.
    let mut name = QName::new();
    let mut at = HEADER_LEN;
    loop {
        let Some(&len) = packet.get(at) else {
            return Err(formerr);
        };
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xC0 != 0 {
            return Err(formerr);
        }
        let end = at + 1 + usize::from(len);
        let Some(label) = packet.get(at + 1..end) else {
            return Err(formerr);
        };
        if !name.push_label(label) {
            return Err(formerr);
        }
        at = end;
    }
    let (Some(qtype), Some(qclass)) = (be16(packet, at), be16(packet, at + 2)) else {
        return Err(formerr);
    };
    let question = &packet[HEADER_LEN..at + 4];
    at += 4;
    if qtype == qtype::OPT {
        return Err(formerr); // RFC 6891 §6.1.1: OPT is never a question
    }

    // Answer and authority records are not expected in a query; skip them.
    // In the additional section, find the OPT record.
    let mut edns = None;
    for section in 0..3 {
        let n = [an, ns, ar][section];
        for _ in 0..n {
            let owner_start = at;
            at = skip_name(packet, at).ok_or(Reject::Reply {
                id,
                flags,
                rcode: rcode::FORMERR,
            })?;
            let (Some(rtype), Some(class), Some(ttl_hi), Some(ttl_lo), Some(rdlen)) = (
                be16(packet, at),
                be16(packet, at + 2),
                be16(packet, at + 4),
                be16(packet, at + 6),
                be16(packet, at + 8),
            ) else {
                return Err(Reject::Reply {
                    id,
                    flags,
                    rcode: rcode::FORMERR,
                });
            };
            at += 10 + usize::from(rdlen);
            if at > packet.len() {
                return Err(Reject::Reply {
                    id,
                    flags,
                    rcode: rcode::FORMERR,
                });
            }
            if rtype == qtype::OPT {
                // RFC 6891 §6.1.1: one OPT, in the additional section, owned by root.
                if section != 2 || edns.is_some() || packet[owner_start] != 0 {
                    return Err(Reject::Reply {
                        id,
                        flags,
                        rcode: rcode::FORMERR,
                    });
                }
                edns = Some(Edns {
                    udp_size: class,
                    version: (ttl_hi & 0xFF) as u8,
                    dnssec_ok: ttl_lo & 0x8000 != 0,
                });
            }
        }
    }
    Ok(Query {
        id,
        flags,
        question,
        name,
        qtype,
        qclass,
        edns,
        opcode,
    })
}

impl Query<'_> {
    /// The largest response this query may receive over UDP.
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            None => CLASSIC_UDP,
            Some(e) => usize::from(e.udp_size.clamp(CLASSIC_UDP as u16, EDNS_UDP)),
        }
    }

    pub fn rd(&self) -> bool {
        self.flags[0] & 0x01 != 0
    }
}

/// Writes a header-only reply (FORMERR, NOTIMP) for a rejected packet.
pub fn write_header_only(out: &mut Vec<u8>, id: u16, flags: [u8; 2], rcode: u8) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    // QR, the query's opcode and RD; CD echoed; no other bits.
    out.push(0x80 | (flags[0] & 0x79));
    out.push((flags[1] & 0x10) | (rcode & 0x0F));
    out.extend_from_slice(&[0; 8]);
}

/// One section's worth of pre-encoded records.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chunk<'a> {
    pub count: u16,
    pub bytes: &'a [u8],
}

/// Assembles a response: header, echoed question, then sections in order.
#[derive(Debug)]
pub struct ResponseWriter<'o> {
    out: &'o mut Vec<u8>,
    counts: [u16; 3],
}

impl<'o> ResponseWriter<'o> {
    /// Starts a response to `q`; the header is completed by `finish`.
    pub fn new(out: &'o mut Vec<u8>, q: &Query<'_>) -> Self {
        out.clear();
        out.extend_from_slice(&q.id.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(q.question);
        Self {
            out,
            counts: [0; 3],
        }
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The reply so far.
    pub fn bytes(&self) -> &[u8] {
        self.out
    }

    /// Appends records to section 0 (answer), 1 (authority) or 2 (additional).
    /// Sections must be written in order.
    pub fn push(&mut self, section: usize, chunk: Chunk<'_>) {
        self.out.extend_from_slice(chunk.bytes);
        self.counts[section] = self.counts[section].saturating_add(chunk.count);
    }

    /// Raw access for records synthesized at query time; call `count` after.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        self.out
    }

    pub fn count(&mut self, section: usize, n: u16) {
        self.counts[section] = self.counts[section].saturating_add(n);
    }

    /// Drops everything after the question (for a truncated reply).
    pub fn clear_sections(&mut self, question_len: usize) {
        self.out.truncate(HEADER_LEN + question_len);
        self.counts = [0; 3];
    }

    /// Fills in the header, and appends the OPT record if the query had EDNS.
    pub fn finish(self, q: &Query<'_>, rcode: u8, aa: bool, tc: bool) {
        let mut ar = self.counts[2];
        if let Some(e) = q.edns {
            // RFC 6891 §6.1.3; the DO bit is copied back (RFC 3225 §3).
            let ext = rcode >> 4;
            self.out.push(0);
            self.out.extend_from_slice(&qtype::OPT.to_be_bytes());
            self.out.extend_from_slice(&EDNS_UDP.to_be_bytes());
            self.out
                .extend_from_slice(&[ext, 0, if e.dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
            ar = ar.saturating_add(1);
        }
        let b2 = 0x80 | (q.flags[0] & 0x79) | if aa { 0x04 } else { 0 } | if tc { 0x02 } else { 0 };
        let b3 = (q.flags[1] & 0x10) | (rcode & 0x0F);
        self.out[2] = b2;
        self.out[3] = b3;
        self.out[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        self.out[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        self.out[10..12].copy_from_slice(&ar.to_be_bytes());
    }
}

/// Bytes the OPT record adds to a response.
pub fn opt_len(q: &Query<'_>) -> usize {
    if q.edns.is_some() { 11 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(name);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        p
    }

    #[test]
    fn question_name_is_lowercased_and_split_into_labels() {
        let p = query(b"\x03Web\x04SHOP\x00", qtype::A);
        let q = parse(&p).expect("valid");
        assert_eq!(q.name.wire(), b"\x03web\x04shop");
        assert_eq!(q.name.label_count(), 2);
        assert_eq!(q.name.label(1), b"shop");
        assert_eq!(q.question, &p[12..]);
        assert!(q.rd());
    }

    #[test]
    fn pointer_in_question_is_formerr_not_a_loop() {
        let p = query(b"\xC0\x0C", qtype::A);
        assert!(matches!(
            parse(&p),
            Err(Reject::Reply {
                rcode: rcode::FORMERR,
                ..
            })
        ));
    }

    #[test]
    fn responses_and_runts_are_dropped() {
        assert_eq!(parse(&[0; 5]).err(), Some(Reject::Drop));
        let mut p = query(b"\x00", qtype::A);
        p[2] |= 0x80;
        assert_eq!(parse(&p).err(), Some(Reject::Drop));
    }

    #[test]
    fn two_questions_are_formerr_and_update_is_notimp() {
        let mut p = query(b"\x00", qtype::A);
        p[5] = 2;
        assert!(matches!(
            parse(&p),
            Err(Reject::Reply {
                rcode: rcode::FORMERR,
                ..
            })
        ));
        let mut p = query(b"\x00", qtype::A);
        p[2] = 5 << 3;
        assert!(matches!(
            parse(&p),
            Err(Reject::Reply {
                rcode: rcode::NOTIMP,
                ..
            })
        ));
    }

    #[test]
    fn edns_opt_is_read_from_the_additional_section() {
        let mut p = query(b"\x01a\x00", qtype::A);
        p[11] = 1;
        p.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0]);
        let q = parse(&p).expect("valid");
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 1232,
                version: 0,
                dnssec_ok: true
            })
        );
        assert_eq!(q.udp_limit(), 1232);
    }

    #[test]
    fn name_longer_than_255_octets_is_formerr() {
        let mut name = Vec::new();
        for _ in 0..5 {
            name.push(63);
            name.extend_from_slice(&[b'a'; 63]);
        }
        name.push(0);
        let p = query(&name, qtype::A);
        assert!(matches!(
            parse(&p),
            Err(Reject::Reply {
                rcode: rcode::FORMERR,
                ..
            })
        ));
    }
}
