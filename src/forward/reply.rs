//! What the client gets from a forward zone: its own ID, question and
//! flags around the upstream's (or the cache's) records, with TTLs aged or
//! set for stale answers, cut to the client's size limit; RCODEs and TTLs
//! an upstream may send but a client must not see are mapped first.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Record, RecordType};

use super::cache::Entry;

/// The RCODE an upstream's reply gives the client, or `None` when the reply
/// cannot be passed on (the client then gets SERVFAIL, and the next
/// upstream is tried). Both cases were found by the `upstream_reply` fuzz
/// target:
/// - extended RCODEs (above 15: BADVERS, the TSIG errors, BADCOOKIE; RFC
///   6891 §6.1.3, RFC 8945, RFC 7873) describe crossdns's own exchange with
///   that upstream, not the client's question, and a client without EDNS
///   cannot even be told them (the client saw NOERROR or SERVFAIL while
///   the metric said otherwise);
/// - a reply that is not a QUERY response (QR unset, or another opcode:
///   hickory reads an UPDATE's empty RDATA as valid, RFC 2136 §2.5) was
///   passed on with empty-RDATA records inside a QUERY response, which
///   clients reject as malformed (and hickory-net only checks ID and
///   question, over UDP).
pub(super) fn usable_rcode(m: &Message) -> Option<ResponseCode> {
    let rc = m.metadata.response_code;
    (m.metadata.message_type == MessageType::Response
        && m.metadata.op_code == OpCode::Query
        && u16::from(rc) <= 15)
        .then_some(rc)
}

/// RFC 2181 §8: a TTL is at most 2^31 - 1, and one received with the top
/// bit set is read as zero. Without this an upstream's TTL of 3222011906
/// (found by the `upstream_reply` fuzz target) was cached for a century and
/// sent on to clients. `None` when every TTL is in range (no copy).
pub(super) fn capped_ttls(m: &Message) -> Option<Message> {
    let too_big = |r: &Record| r.ttl > i32::MAX as u32;
    let all = || m.answers.iter().chain(&m.authorities).chain(&m.additionals);
    if !all().any(too_big) {
        return None;
    }
    let mut m = m.clone();
    for r in m
        .answers
        .iter_mut()
        .chain(&mut m.authorities)
        .chain(&mut m.additionals)
    {
        if too_big(r) {
            r.ttl = 0;
        }
    }
    Some(m)
}

pub(super) enum TtlRule {
    /// Fresh cache hit: TTLs minus the entry's age.
    Age(u32),
    /// Stale answer: every TTL set to this.
    Fixed(u32),
}

pub(super) fn respond_entry(
    req: &Message,
    e: &Entry,
    rule: TtlRule,
    limit: usize,
) -> (Vec<u8>, ResponseCode) {
    respond(
        req,
        e.rcode,
        &e.answers,
        &e.authorities,
        &e.additionals,
        Some(rule),
        limit,
    )
}

/// Builds the client's response: its ID, question (case echoed) and flags,
/// the upstream's records, our EDNS; TC when it does not fit `limit`.
pub(super) fn respond(
    req: &Message,
    rcode: ResponseCode,
    answers: &[Record],
    authorities: &[Record],
    additionals: &[Record],
    ttl: Option<TtlRule>,
    limit: usize,
) -> (Vec<u8>, ResponseCode) {
    let adjust = |records: &[Record]| -> Vec<Record> {
        records
            .iter()
            .filter(|r| r.record_type() != RecordType::OPT)
            .map(|r| {
                let mut r = r.clone();
                match &ttl {
                    Some(TtlRule::Age(age)) => r.ttl = r.ttl.saturating_sub(*age),
                    Some(TtlRule::Fixed(t)) => r.ttl = *t,
                    None => {}
                }
                r
            })
            .collect()
    };
    let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.checking_disabled = req.metadata.checking_disabled;
    m.metadata.response_code = rcode;
    for q in &req.queries {
        m.add_query(q.clone());
    }
    if let Some(e) = &req.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(crate::wire::EDNS_UDP);
        edns.set_dnssec_ok(e.flags().dnssec_ok);
        m.set_edns(edns);
    }
    let full = {
        let mut full = m.clone();
        full.answers = adjust(answers);
        full.authorities = adjust(authorities);
        full.additionals = adjust(additionals);
        full
    };
    if let Ok(bytes) = full.to_vec() {
        if bytes.len() <= limit {
            return (bytes, rcode);
        }
        // Additional records are optional (RFC 2181 §9): drop them first.
        let mut trimmed = full;
        trimmed.additionals.clear();
        if let Ok(bytes) = trimmed.to_vec()
            && bytes.len() <= limit
        {
            return (bytes, rcode);
        }
        m.metadata.truncation = true;
    } else {
        m.metadata.response_code = ResponseCode::ServFail;
    }
    (m.to_vec().unwrap_or_default(), m.metadata.response_code)
}

/// A header-only error for a query hickory cannot decode.
pub(super) fn reply_error(query: &[u8], rcode: ResponseCode) -> (Vec<u8>, ResponseCode) {
    let mut out = Vec::with_capacity(12);
    let id = [
        query.first().copied().unwrap_or(0),
        query.get(1).copied().unwrap_or(0),
    ];
    let flags = [
        query.get(2).copied().unwrap_or(0),
        query.get(3).copied().unwrap_or(0),
    ];
    crate::wire::write_header_only(
        &mut out,
        u16::from_be_bytes(id),
        flags,
        u16::from(rcode) as u8,
    );
    (out, rcode)
}
