//! The query path: arbitrary bytes, as a listener receives them over UDP
//! and over TCP, through the answer engine's parser and response writer
//! (and, for the forward zone, the forwarder's synchronous half). Every
//! packet that could be a query gets a reply, and every reply passes
//! `reply::check` and agrees with what the engine says it wrote.

use crossdns::answer::{Step, Transport};
use crossdns::forward::Early;
use crossdns::wire::{self, HEADER_LEN, rcode};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use super::{reply, world};

pub fn check(packet: &[u8]) {
    let w = world::get();
    let parsed = wire::parse(packet).ok();
    for transport in [Transport::Udp, Transport::Tcp] {
        let limit = match transport {
            Transport::Udp => parsed.as_ref().map_or(wire::CLASSIC_UDP, |q| q.udp_limit()),
            Transport::Tcp => usize::from(u16::MAX),
        };
        let mut out = Vec::new();
        match w.engine.step(packet, world::CLIENT, transport, &mut out) {
            Step::Drop => assert!(
                packet.len() < HEADER_LEN || packet[2] & 0x80 != 0,
                "a packet with a query header got no reply"
            ),
            Step::Reply(outcome) => {
                let m = reply::check(packet, &out, limit);
                assert_eq!(reply::rcode(&m), u16::from(outcome.rcode), "RCODE");
                assert_eq!(m.metadata.truncation, outcome.truncated, "TC");
                let query_edns = parsed.as_ref().is_some_and(|q| q.edns.is_some());
                assert_eq!(
                    m.edns.is_some(),
                    query_edns && !m.queries.is_empty(),
                    "OPT in the response without one in the query, or the reverse"
                );
                if outcome.zone.is_some() {
                    authoritative(&m);
                }
            }
            Step::Forward { zone, limit: l, .. } => {
                assert_eq!(l, limit, "forward limit");
                match w.forwarder.answer_early(zone, packet, l) {
                    Early::Done(resp, rc) => {
                        let m = reply::check(packet, &resp, l);
                        assert_eq!(m.metadata.response_code, rc, "RCODE");
                    }
                    Early::Upstream(req) => {
                        assert_eq!(req.metadata.id.to_be_bytes(), packet[..2], "ID");
                        assert_eq!(req.queries.len(), 1, "one question goes upstream");
                    }
                }
            }
            Step::Transfer { qtype, .. } => {
                assert_eq!(transport, Transport::Tcp, "a zone transfer over UDP");
                assert!(
                    [wire::qtype::AXFR, wire::qtype::IXFR].contains(&qtype),
                    "a transfer step for qtype {qtype}"
                );
                assert!(out.is_empty(), "a transfer step with a response written");
            }
            Step::Catalog { limit: l, .. } => {
                assert_eq!(l, limit, "catalog limit");
                assert!(out.is_empty(), "a catalog step with a response written");
            }
            Step::Notify { .. } => {
                assert!(
                    parsed.is_some(),
                    "a NOTIFY step for a packet that does not parse"
                );
                assert!(out.is_empty(), "a NOTIFY step with a response written");
            }
        }
    }
}

/// An answer from one of crossdns's own zones: AA, and the negative-answer
/// rules of RFC 2308 §2 (the zone's SOA in the authority section).
fn authoritative(m: &Message) {
    let rc = reply::rcode(m);
    if rc != u16::from(rcode::NOERROR) && rc != u16::from(rcode::NXDOMAIN) {
        return;
    }
    assert!(
        m.metadata.authoritative,
        "AA unset on an authoritative answer"
    );
    if m.metadata.truncation {
        assert!(
            m.answers.is_empty() && m.authorities.is_empty(),
            "a truncated answer carries records"
        );
        return;
    }
    let soas = m
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA)
        .count();
    if m.metadata.response_code == ResponseCode::NXDomain || m.answers.is_empty() {
        assert_eq!(
            soas, 1,
            "NXDOMAIN or NODATA without exactly one SOA (RFC 2308 §2)"
        );
        assert!(m.answers.is_empty(), "NXDOMAIN with answers");
    }
}
