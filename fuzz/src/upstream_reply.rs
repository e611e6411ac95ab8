//! The forwarder's handling of upstream replies: arbitrary bytes, decoded
//! as hickory-net decodes what an upstream sends, go through
//! `ForwardZone::accept` (caching, the client's ID and question restored,
//! truncation to the client's limit) and then back out of the cache fresh,
//! aged and stale (TTL rewriting). Every response passes `reply::check`.

use std::time::{Duration, Instant};

use crossdns::forward::{Forwarder, STALE_TTL};
use crossdns::zones::ZoneTable;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};

use super::{reply, world};

/// A client query a reply may answer.
struct Client {
    name: &'static str,
    rtype: RecordType,
    /// EDNS payload and DO bit, if the client sends OPT.
    edns: Option<(u16, bool)>,
    /// The response size the client takes (512/1232 over UDP, TCP's 65535).
    limit: usize,
}

/// Picked by the reply's ID, so seeds stay plain packets.
const CLIENTS: [Client; 4] = [
    Client {
        name: "web.shop.svc.cluster.region3.",
        rtype: RecordType::A,
        edns: Some((1232, false)),
        limit: 1232,
    },
    Client {
        name: "Web.Shop.svc.cluster.region3.",
        rtype: RecordType::AAAA,
        edns: None,
        limit: 512,
    },
    Client {
        name: "_http._tcp.web.shop.svc.cluster.region3.",
        rtype: RecordType::SRV,
        edns: Some((4096, true)),
        limit: 1232,
    },
    Client {
        name: "cluster.region3.",
        rtype: RecordType::ANY,
        edns: Some((1232, false)),
        limit: 65535,
    },
];

pub fn check(upstream: &[u8]) {
    // hickory-net hands the forwarder only replies it could decode.
    let Ok(m) = Message::from_vec(upstream) else {
        return;
    };
    let client = &CLIENTS[usize::from(m.metadata.id) % CLIENTS.len()];
    let (edns, limit) = (client.edns, client.limit);
    let query = client_query(client);
    let req = Message::from_vec(&query).expect("the client query decodes");

    // A fresh forwarder per input: nothing cached by an earlier input.
    let settings = &world::get().settings;
    let forwarder = Forwarder::new(&settings.forward, &ZoneTable::new(settings)).expect("no I/O");
    let zone = &forwarder.zones[0];
    let t0 = Instant::now();
    let (resp, rc) = zone.accept(&req, &m, limit, t0);
    let out = reply::check(&query, &resp, limit);
    assert_eq!(out.metadata.response_code, rc, "RCODE");
    assert_eq!(
        out.edns.is_some(),
        edns.is_some(),
        "OPT echoed iff the client sent one"
    );
    let upstream_records = |s: &[Record]| {
        s.iter()
            .filter(|r| r.record_type() != RecordType::OPT)
            .count()
    };
    // Only a QUERY response with a plain RCODE is passed on; anything else
    // is SERVFAIL with no records (extended RCODEs describe crossdns's own
    // exchange, other opcodes carry records no query response may).
    let md = &m.metadata;
    let passed_on = md.message_type == MessageType::Response
        && md.op_code == OpCode::Query
        && u16::from(md.response_code) <= 15;
    if !passed_on {
        assert_eq!(rc, ResponseCode::ServFail, "an unusable reply passed on");
        assert!(
            reply::records(&out).next().is_none(),
            "records of an unusable reply"
        );
    } else if !out.metadata.truncation && rc == md.response_code {
        assert_eq!(
            out.answers.len(),
            upstream_records(&m.answers),
            "answers lost"
        );
        assert_eq!(
            out.authorities.len(),
            upstream_records(&m.authorities),
            "authorities lost"
        );
    }

    // Back out of the cache: TTLs aged by the entry's age, then stale.
    for age in [0, 1, 3600] {
        let at = t0 + Duration::from_secs(age);
        if let Some((resp, rc)) = zone.cached(&req, limit, at, false) {
            let hit = reply::check(&query, &resp, limit);
            assert_eq!(hit.metadata.response_code, rc, "RCODE");
            if !hit.metadata.truncation && hit.answers.len() == out.answers.len() {
                for (now, then) in hit.answers.iter().zip(&out.answers) {
                    let age = u32::try_from(age).unwrap_or(u32::MAX);
                    assert_eq!(now.ttl, then.ttl.saturating_sub(age), "aged TTL of {now}");
                }
            }
        }
    }
    let later = t0 + Duration::from_secs(1800);
    if let Some((resp, _)) = zone.cached(&req, limit, later, true) {
        let stale = reply::check(&query, &resp, limit);
        for r in reply::records(&stale) {
            assert_eq!(r.ttl, STALE_TTL, "stale TTL of {r} (RFC 8767 §4)");
        }
    }
}

fn client_query(c: &Client) -> Vec<u8> {
    let mut m = Message::new(0x5a5a, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(c.name).expect("name"),
        c.rtype,
    ));
    if let Some((payload, dnssec_ok)) = c.edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m.to_vec().expect("encode the client query")
}
