//! Zone transfer responses, as a `primary:` source reads them: arbitrary
//! bytes become a request (byte 0: even asks AXFR, odd asks IXFR from the
//! serial in bytes 1..5) and the stream of length-prefixed messages that
//! answers it (RFC 1035 §4.2.2), each checked against a TSIG key (it never
//! verifies; the checks must not fail on hostile input) and read by
//! `watch::xfr::Reader` until it completes or errs. A complete transfer is
//! folded into a `TransferredZone`, and then:
//! - what the zone serves, transferred again, builds the same zone (the
//!   records a secondary of this secondary gets are a fixed point);
//! - IXFR differences give the zone a whole transfer of their result would
//!   (record identity per RFC 1995: owner, type and data; TTLs aside, as
//!   an RRset whose records disagree on TTL breaks RFC 2181 §5.2).

use std::sync::Arc;

use crossdns::config::{PodsMode, ServiceAddress, TsigAlgorithm, TsigKey};
use crossdns::dnsname::WireName;
use crossdns::index::records::snapshot_records;
use crossdns::index::{ClusterSpec, Snapshot, TransferredZone, meta};
use crossdns::tsig::{ResponseVerifier, signer};
use crossdns::watch::xfr::{Ask, Reader, Transfer};
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

const ZONE: &str = "cluster.b";

fn spec() -> Arc<ClusterSpec> {
    Arc::new(ClusterSpec {
        name: "b".into(),
        zone: WireName::parse(ZONE).expect("zone"),
        ttl: 5,
        namespaces: Vec::new(),
        service_address: ServiceAddress::Endpoints,
        pods: PodsMode::Verified,
        endpoint_pod_names: false,
        clusterset: Some(WireName::parse("clusterset.local").expect("zone")),
        transfer: true,
    })
}

pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (ask, mut stream) = if selector % 2 == 0 {
        (Ask::Axfr, rest)
    } else {
        let Some((serial, rest)) = rest.split_first_chunk::<4>() else {
            return;
        };
        (
            Ask::Ixfr {
                serial: u32::from_be_bytes(*serial),
            },
            rest,
        )
    };
    let zone = Name::from_ascii(format!("{ZONE}.")).expect("zone");
    // The ID of the first message, so inputs get past the ID check.
    let id = stream
        .get(2..4)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut reader = Reader::new(zone, ask, id);
    let key = TsigKey {
        name: "sites".into(),
        algorithm: TsigAlgorithm::HmacSha256,
        secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        secret_file: "-".into(),
    };
    let mut verifier = ResponseVerifier::new(signer(&key).expect("signer"), vec![0; 32]);
    let transfer = loop {
        let Some((len, tail)) = stream.split_first_chunk::<2>() else {
            return;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (raw, tail) = tail.split_at(len);
        stream = tail;
        let Ok(msg) = Message::from_vec(raw) else {
            return;
        };
        let _ = verifier.verify(raw, &msg);
        match reader.push(&msg) {
            Ok(true) => break reader.finish().expect("complete"),
            Ok(false) => {}
            Err(_) => return,
        }
    };
    let mut zone = TransferredZone::new(spec());
    match &transfer {
        Transfer::UpToDate { .. } => return,
        Transfer::Full { records, .. } => {
            zone.replace(records.clone());
        }
        Transfer::Incremental { diffs, .. } => {
            for d in diffs {
                zone.apply(d.deleted.clone(), d.added.clone());
            }
        }
    }
    let served = rendered(&zone.publish(1));
    let mut again = TransferredZone::new(spec());
    again.replace(served.iter().map(|(r, _)| r.clone()).collect());
    assert_eq!(
        rendered(&again.publish(1)),
        served,
        "a transfer of what is served builds the same zone"
    );

    if let Transfer::Incremental { diffs, .. } = &transfer {
        // The differences applied to records, one by one (RFC 1995).
        let mut held: Vec<Record> = Vec::new();
        for d in diffs {
            for r in &d.deleted {
                if let Some(at) = held.iter().position(|h| same(h, r)) {
                    held.remove(at);
                }
            }
            for r in &d.added {
                if !held.iter().any(|h| same(h, r)) {
                    held.push(r.clone());
                }
            }
        }
        let mut whole = TransferredZone::new(spec());
        whole.replace(held);
        let strip = |v: Vec<(Record, Vec<u8>)>| {
            let mut v: Vec<String> = v
                .into_iter()
                .map(|(r, extra)| format!("{} {} {} {extra:?}", r.name, r.record_type(), r.data))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            strip(rendered(&whole.publish(1))),
            strip(served),
            "IXFR = AXFR of its result"
        );
    }
}

fn same(a: &Record, b: &Record) -> bool {
    a.name == b.name
        && a.record_type() == b.record_type()
        && a.dns_class == b.dns_class
        && a.data == b.data
}

/// Every record the zone serves (owner, TTL, data) with the additional
/// bytes its RRset carries, in serving order.
fn rendered(snap: &Snapshot) -> Vec<(Record, Vec<u8>)> {
    let spec = spec();
    let mut out = Vec::new();
    snapshot_records(
        &spec,
        snap,
        Some(&meta::namespace_marker(5)),
        &mut |owner, set| {
            let mut msg = vec![0u8; 12];
            msg.extend_from_slice(&owner.to_wire_fqdn());
            let start = msg.len();
            msg.extend_from_slice(set.answer());
            let mut d = BinDecoder::new(&msg);
            d.read_slice(start).expect("skip to the records");
            for _ in 0..set.count {
                let r = Record::read(&mut d).expect("a served record decodes");
                out.push((r, set.extra().to_vec()));
            }
        },
    );
    out
}
