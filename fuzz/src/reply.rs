//! What every DNS response crossdns writes must be, whichever part wrote it
//! (answer engine, forwarder): hickory-proto decodes all of it with nothing
//! left over (so the header counts match the sections), it carries the
//! query's ID, opcode, RD and CD bits and its question byte for byte, it
//! fits the size the client can take, and every TTL is in RFC 2181 §8's
//! range.

use hickory_proto::op::{Header, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

const HEADER_LEN: usize = 12;
/// RFC 2181 §8: a TTL is at most 2^31 - 1.
const MAX_TTL: u32 = i32::MAX as u32;

/// Checks `resp`, the response to `query` for a client that takes at most
/// `limit` bytes; returns it decoded.
pub fn check(query: &[u8], resp: &[u8], limit: usize) -> Message {
    assert!(
        resp.len() <= limit,
        "response of {} bytes for a client that takes {limit}",
        resp.len()
    );
    let question_end = walk(resp);
    let m = Message::from_vec(resp)
        .unwrap_or_else(|e| panic!("hickory-proto cannot decode the response: {e}; {resp:02x?}"));
    assert_eq!(
        resp[..2],
        query[..2],
        "the response does not carry the query's ID"
    );
    assert_eq!(m.metadata.message_type, MessageType::Response, "QR unset");
    // Opcode and RD (byte 2, 0x79), CD (byte 3, 0x10) are echoed.
    assert_eq!(resp[2] & 0x79, query[2] & 0x79, "opcode or RD not echoed");
    assert_eq!(resp[3] & 0x10, query[3] & 0x10, "CD not echoed");
    match m.queries.len() {
        0 => {
            assert!(
                matches!(
                    m.metadata.response_code,
                    ResponseCode::FormErr | ResponseCode::NotImp
                ),
                "a response without the question must be FORMERR or NOTIMP, not {:?}",
                m.metadata.response_code
            );
            assert!(
                m.answers.is_empty() && m.authorities.is_empty() && m.additionals.is_empty(),
                "a response without the question carries records"
            );
        }
        1 => assert_eq!(
            resp.get(HEADER_LEN..question_end),
            query.get(HEADER_LEN..question_end),
            "the question is not echoed byte for byte"
        ),
        n => panic!("{n} questions in a response"),
    }
    for r in records(&m) {
        assert!(
            r.ttl <= MAX_TTL,
            "TTL {} above 2^31-1 (RFC 2181 §8): {r}",
            r.ttl
        );
    }
    if let Some(e) = &m.edns {
        assert!(
            e.max_payload() >= 512,
            "EDNS payload {} below 512 (RFC 6891 §6.2.5)",
            e.max_payload()
        );
    }
    m
}

/// Walks the sections exactly as the header counts say, and insists that
/// nothing follows them; returns where the question section ends.
fn walk(resp: &[u8]) -> usize {
    let mut d = BinDecoder::new(resp);
    let header = Header::read(&mut d)
        .unwrap_or_else(|e| panic!("no DNS header in the response: {e}; {resp:02x?}"));
    let c = header.counts;
    for _ in 0..c.queries {
        Query::read(&mut d).unwrap_or_else(|e| panic!("question does not decode: {e}"));
    }
    let question_end = d.index();
    for _ in 0..u32::from(c.answers) + u32::from(c.authorities) + u32::from(c.additionals) {
        Record::read(&mut d).unwrap_or_else(|e| {
            panic!("header counts {c:?} promise more records than follow: {e}; {resp:02x?}")
        });
    }
    assert!(
        d.is_empty(),
        "{} bytes after the {c:?} records the header counts; {resp:02x?}",
        d.len()
    );
    question_end
}

/// Every record of every section (OPT is not among them: hickory keeps it
/// apart as `edns`).
pub fn records(m: &Message) -> impl Iterator<Item = &Record> {
    m.answers.iter().chain(&m.authorities).chain(&m.additionals)
}

/// The whole RCODE, extended bits (RFC 6891 §6.1.3) included.
pub fn rcode(m: &Message) -> u16 {
    u16::from(m.metadata.response_code)
}
