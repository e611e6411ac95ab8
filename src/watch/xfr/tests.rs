//! The response forms of RFC 5936 and RFC 1995, and the ways a response
//! can be wrong.

use super::*;
use hickory_proto::op::Query;
use hickory_proto::rr::rdata::{A, SOA};

fn zone() -> Name {
    Name::from_ascii("cluster.b.").expect("zone")
}

fn soa(serial: u32) -> Record {
    let z = zone();
    Record::from_rdata(
        z.clone(),
        5,
        RData::SOA(SOA::new(z.clone(), z, serial, 7200, 1800, 86400, 5)),
    )
}

fn a(host: &str, last: u8) -> Record {
    Record::from_rdata(
        Name::from_ascii(format!("{host}.shop.svc.cluster.b.")).expect("name"),
        5,
        RData::A(A::new(10, 0, 0, last)),
    )
}

fn msg(ask: Ask, id: u16, question: bool, answers: Vec<Record>) -> Message {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    if question {
        m.add_query(Query::query(zone(), ask.rtype()));
    }
    m.add_answers(answers);
    m
}

/// Feeds `messages` (the first with the question) and returns the result.
fn read(ask: Ask, messages: Vec<Vec<Record>>) -> Result<Transfer, XfrError> {
    let mut r = Reader::new(zone(), ask, 42);
    let n = messages.len();
    for (i, answers) in messages.into_iter().enumerate() {
        let done = r.push(&msg(ask, 42, i == 0, answers))?;
        assert_eq!(done, i + 1 == n, "complete exactly at the last message");
    }
    r.finish()
}

#[test]
fn an_axfr_in_several_messages_is_the_zone_between_its_soas() {
    let t = read(
        Ask::Axfr,
        vec![
            vec![soa(9), a("web", 1)],
            vec![a("db", 2)],
            vec![a("x", 3), soa(9)],
        ],
    )
    .expect("complete");
    assert_eq!(
        t,
        Transfer::Full {
            serial: 9,
            records: vec![a("web", 1), a("db", 2), a("x", 3)]
        }
    );
    // An empty zone: its SOA twice. A first message of the SOA alone is
    // not yet the end of an AXFR.
    assert_eq!(
        read(Ask::Axfr, vec![vec![soa(3)], vec![soa(3)]]).expect("empty"),
        Transfer::Full {
            serial: 3,
            records: Vec::new()
        }
    );
}

#[test]
fn an_ixfr_answered_with_the_soa_alone_is_up_to_date_unless_the_soa_is_newer() {
    let ask = Ask::Ixfr { serial: 10 };
    assert_eq!(
        read(ask, vec![vec![soa(10)]]).expect("current"),
        Transfer::UpToDate { serial: 10 }
    );
    assert_eq!(
        read(ask, vec![vec![soa(8)]]).expect("older"),
        Transfer::UpToDate { serial: 8 }
    );
    assert_eq!(
        read(ask, vec![vec![soa(11)]]),
        Err(XfrError::NoIncremental(10))
    );
}

#[test]
fn ixfr_differences_follow_each_other_and_end_at_the_servers_soa() {
    let ask = Ask::Ixfr { serial: 10 };
    let t = read(
        ask,
        vec![
            vec![soa(12), soa(10), a("web", 1), soa(11), a("web", 2)],
            vec![soa(11), a("db", 3), soa(12)],
            vec![a("db", 4), soa(12)],
        ],
    )
    .expect("complete");
    assert_eq!(
        t,
        Transfer::Incremental {
            serial: 12,
            diffs: vec![
                Diff {
                    from: 10,
                    to: 11,
                    deleted: vec![a("web", 1)],
                    added: vec![a("web", 2)]
                },
                Diff {
                    from: 11,
                    to: 12,
                    deleted: vec![a("db", 3)],
                    added: vec![a("db", 4)]
                },
            ]
        }
    );
    // Condensed (one difference), and only additions.
    let t = read(
        ask,
        vec![vec![soa(15), soa(10), soa(15), a("new", 9), soa(15)]],
    )
    .expect("ok");
    assert!(
        matches!(t, Transfer::Incremental { serial: 15, ref diffs } if diffs.len() == 1 && diffs[0].added.len() == 1)
    );
    // The whole zone instead (AXFR form).
    let t = read(ask, vec![vec![soa(15), a("web", 1), soa(15)]]).expect("whole");
    assert_eq!(
        t,
        Transfer::Full {
            serial: 15,
            records: vec![a("web", 1)]
        }
    );
}

#[test]
fn a_wrong_response_is_refused_with_what_was_wrong() {
    let ax = Ask::Axfr;
    let err = |ask, messages| read(ask, messages).expect_err("refused").to_string();
    assert!(err(ax, vec![vec![a("web", 1), soa(1)]]).contains("not the zone's SOA"));
    assert!(err(ax, vec![vec![soa(1), a("web", 1), soa(2)]]).contains("SOA serial 2 inside"));
    // A gap between differences, and a difference that goes back.
    let ix = Ask::Ixfr { serial: 10 };
    assert!(
        err(
            ix,
            vec![vec![soa(13), soa(10), soa(11), soa(12), soa(13), soa(13)]]
        )
        .contains("from serial 12 after one to 11")
    );
    assert!(err(ix, vec![vec![soa(13), soa(10), soa(9)]]).contains("from serial 10 to 9"));
    // Ends early: no final SOA.
    let mut r = Reader::new(zone(), ax, 42);
    assert_eq!(
        r.push(&msg(ax, 42, true, vec![soa(1), a("web", 1)])),
        Ok(false)
    );
    assert!(r.finish().is_err());
    // Records after the end, another ID, an error RCODE, truncation.
    let mut r = Reader::new(zone(), ax, 42);
    assert!(
        r.push(&msg(ax, 42, true, vec![soa(1), soa(1), a("web", 1)]))
            .is_err()
    );
    let mut r = Reader::new(zone(), ax, 42);
    assert!(r.push(&msg(ax, 43, true, vec![soa(1), soa(1)])).is_err());
    let mut refused = msg(ax, 42, true, Vec::new());
    refused.metadata.response_code = ResponseCode::NotAuth;
    let mut r = Reader::new(zone(), ax, 42);
    assert_eq!(
        r.push(&refused),
        Err(XfrError::Rcode(ResponseCode::NotAuth))
    );
    let mut cut = msg(ax, 42, true, vec![soa(1)]);
    cut.metadata.truncation = true;
    let mut r = Reader::new(zone(), ax, 42);
    assert!(r.push(&cut).is_err());
    // The question of another zone.
    let mut other = msg(ax, 42, false, vec![soa(1), soa(1)]);
    other.add_query(Query::query(
        Name::from_ascii("cluster.c.").expect("n"),
        RecordType::AXFR,
    ));
    let mut r = Reader::new(zone(), ax, 42);
    assert!(r.push(&other).is_err());
}
