//! Bad input on the wire: malformed, hostile and oversized DNS messages sent
//! to the real `crossdns` binary over UDP and TCP. Every case gets the right
//! RCODE (or deliberately no reply), and a valid query is answered afterwards:
//! never a crash, never a hang.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{
    Crossdns, addresses, ip, make_query, rcode, tcp_connect, tcp_raw, tcp_recv, tcp_send,
    udp_exchange, udp_exchange_raw, udp_raw,
};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::json;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt as _;

/// How long to wait for a reply that must not come.
const SILENCE: Duration = Duration::from_millis(300);
const FORMERR: u16 = 1;
const NOTIMP: u16 = 4;
const REFUSED: u16 = 5;
const BADVERS: u16 = 16;
const BIG_ENDPOINTS: usize = 200;

struct Server {
    crossdns: Crossdns,
    _dir: TempDir,
}

/// The demo clusters from their manifests, plus `cluster.big` with a
/// headless Service of 200 endpoints; `allow` as given.
async fn server_with_allow(allow: &str) -> Server {
    let root = common::repo_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big");
    std::fs::create_dir(&big).expect("mkdir big");
    write_big_manifests(&big);
    let rest = format!(
        "allow: {allow}\nclusters:\n  - name: region1\n    zone: cluster.region1\n    manifests: {}\n  - name: region2\n    zone: cluster.region2\n    manifests: {}\n  - name: big\n    zone: cluster.big\n    manifests: {}\n",
        root.join("examples/demo/region1").display(),
        root.join("examples/demo/region2").display(),
        big.display(),
    );
    let crossdns = Crossdns::start(dir.path(), &rest).await;
    crossdns.wait_ready(Duration::from_secs(20)).await;
    Server {
        crossdns,
        _dir: dir,
    }
}

async fn server() -> Server {
    server_with_allow("[\"127.0.0.0/8\"]").await
}

fn write_big_manifests(dir: &Path) {
    let endpoints: Vec<_> = (0..BIG_ENDPOINTS)
        .map(|i| {
            json!({
                "addresses": [format!("10.9.{}.{}", i / 250, i % 250 + 1)],
                "conditions": {"ready": true},
            })
        })
        .collect();
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "many", "namespace": "default"},
                "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "many-1",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "many"},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                "endpoints": endpoints,
            },
        ],
    });
    std::fs::write(
        dir.join("many.json"),
        serde_json::to_string_pretty(&list).expect("json"),
    )
    .expect("write many.json");
}

impl Server {
    fn dns(&self) -> SocketAddr {
        self.crossdns.dns
    }

    /// A valid query is answered correctly over UDP and TCP, and the process
    /// is alive with no panic in its log.
    async fn assert_still_answers(&mut self, after: &str) {
        let name = "cockroachdb-0.cockroachdb.default.svc.cluster.region1";
        let m = common::query_udp(self.dns(), name, RecordType::A).await;
        assert_eq!(
            addresses(&m),
            vec![ip("10.1.0.10")],
            "UDP after {after}: {m:?}"
        );
        let m = common::query_tcp(self.dns(), name, RecordType::A).await;
        assert_eq!(
            addresses(&m),
            vec![ip("10.1.0.10")],
            "TCP after {after}: {m:?}"
        );
        self.crossdns.assert_alive();
    }
}

// ---------------------------------------------------------------------------
// Raw message building
// ---------------------------------------------------------------------------

/// A 12-byte header: ID, flag bytes, QD/AN/NS/AR counts.
fn header(id: u16, flags: [u8; 2], counts: [u16; 4]) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend_from_slice(&flags);
    for c in counts {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

/// Wire form of a dotted name.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn question(name_wire: &[u8], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut q = name_wire.to_vec();
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    q
}

/// OPT pseudo-record (owner root): payload, version, DO off, no options.
fn opt(payload: u16, version: u8) -> Vec<u8> {
    let mut r = vec![0];
    r.extend_from_slice(&41u16.to_be_bytes());
    r.extend_from_slice(&payload.to_be_bytes());
    r.extend_from_slice(&[0, version, 0, 0, 0, 0]);
    r
}

const NAME: &str = "cockroachdb-public.default.svc.cluster.region1";

/// Header (RD) + one IN A question for NAME, with the given extra counts.
fn query_with(id: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut p = header(id, [0x01, 0x00], [1, an, ns, ar]);
    p.extend(question(&wire_name(NAME), 1, 1));
    p
}

/// The ID and full RCODE (extended bits from the OPT when present) of a
/// reply, checking it is a decodable response.
fn reply_code(raw: &[u8], want_id: u16) -> (Message, u16) {
    let m =
        Message::from_vec(raw).unwrap_or_else(|e| panic!("undecodable reply ({e}): {raw:02x?}"));
    assert_eq!(m.metadata.id, want_id, "reply ID: {m:?}");
    assert_eq!(
        m.metadata.message_type,
        hickory_proto::op::MessageType::Response,
        "QR set: {m:?}"
    );
    let code = u16::from(m.metadata.response_code);
    (m, code)
}

/// Sends `packet` over UDP and over TCP and asserts both replies carry `want`.
async fn expect_rcode(s: &mut Server, what: &str, packet: &[u8], want: u16) {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let raw = udp_raw(s.dns(), packet, Duration::from_secs(2))
        .await
        .unwrap_or_else(|| panic!("{what}: no UDP reply"));
    let (m, code) = reply_code(&raw, id);
    assert_eq!(code, want, "{what} over UDP: {m:?}");
    let raw = tcp_raw(s.dns(), packet)
        .await
        .unwrap_or_else(|| panic!("{what}: no TCP reply"));
    let (m, code) = reply_code(&raw, id);
    assert_eq!(code, want, "{what} over TCP: {m:?}");
    s.assert_still_answers(what).await;
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runts_and_responses_get_no_reply_and_do_not_hurt() {
    let mut s = server().await;
    for len in 0..12 {
        // Bytes that would be a query with RD if the header were complete.
        let packet: Vec<u8> = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0]
            .into_iter()
            .take(len)
            .collect();
        assert_eq!(
            udp_raw(s.dns(), &packet, SILENCE).await,
            None,
            "a {len}-byte runt gets no UDP reply"
        );
        s.assert_still_answers(&format!("a {len}-byte runt")).await;
    }
    // A response (QR set) is never answered: no reflection loops.
    let mut resp = query_with(0x4242, 0, 0, 0);
    resp[2] |= 0x80;
    assert_eq!(
        udp_raw(s.dns(), &resp, SILENCE).await,
        None,
        "QR=1 over UDP"
    );
    // Over TCP: no reply (the connection may be closed).
    assert_eq!(tcp_raw(s.dns(), &resp).await, None, "QR=1 over TCP");
    s.assert_still_answers("runts and responses").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_and_questions_are_formerr() {
    let mut s = server().await;

    let p = header(0x1001, [0x01, 0x00], [0, 0, 0, 0]);
    expect_rcode(&mut s, "QDCOUNT=0", &p, FORMERR).await;

    let mut p = header(0x1002, [0x01, 0x00], [2, 0, 0, 0]);
    p.extend(question(&wire_name(NAME), 1, 1));
    p.extend(question(&wire_name("web.shop.svc.cluster.region1"), 1, 1));
    expect_rcode(&mut s, "QDCOUNT=2", &p, FORMERR).await;

    // QDCOUNT=1 but no question at all.
    let p = header(0x1003, [0x01, 0x00], [1, 0, 0, 0]);
    expect_rcode(&mut s, "QDCOUNT=1 with no question", &p, FORMERR).await;

    // A question name that points at itself.
    let mut p = header(0x1004, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend([0xC0, 0x0C, 0, 1, 0, 1]);
    expect_rcode(&mut s, "pointer loop in the question", &p, FORMERR).await;

    // A label that runs past the end of the message.
    let mut p = header(0x1005, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend([63, b'a', b'b', b'c']);
    expect_rcode(&mut s, "label past the end", &p, FORMERR).await;

    // Name without its qtype/qclass.
    let mut p = header(0x1006, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend(wire_name(NAME));
    expect_rcode(&mut s, "question without type and class", &p, FORMERR).await;

    // 5 x 63-octet labels: 321 octets, over the 255 limit.
    let long: Vec<String> = (0..5).map(|_| "a".repeat(63)).collect();
    let mut p = header(0x1007, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend(question(&wire_name(&long.join(".")), 1, 1));
    expect_rcode(&mut s, "name over 255 octets", &p, FORMERR).await;

    // Exactly 255 octets is fine (answered, REFUSED: not in a zone).
    let labels = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61),
    ];
    let name = labels.join(".");
    assert_eq!(wire_name(&name).len(), 255);
    let mut p = header(0x1008, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend(question(&wire_name(&name), 1, 1));
    expect_rcode(&mut s, "a 255-octet name outside every zone", &p, REFUSED).await;

    // Extended label types (0x40, 0x80) are gone (RFC 6891 §5).
    let mut p = header(0x1009, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend([0x41, 0x01, 0x00, 0, 0, 1, 0, 1]);
    expect_rcode(&mut s, "extended label type", &p, FORMERR).await;

    // Records announced but missing.
    let p = query_with(0x100A, 0, 0, 3);
    expect_rcode(&mut s, "ARCOUNT=3 with no records", &p, FORMERR).await;

    // A record whose RDLENGTH runs past the end.
    let mut p = query_with(0x100B, 0, 0, 1);
    p.extend([0, 0, 1, 0, 1, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2]);
    expect_rcode(&mut s, "RDLENGTH past the end", &p, FORMERR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compression_loop_in_the_additional_section_never_hangs() {
    let mut s = server().await;
    let mut p = query_with(0x2001, 0, 0, 1);
    let at = p.len() as u16;
    // Owner name: a pointer to itself.
    p.extend((0xC000 | at).to_be_bytes());
    p.extend([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    for (via, raw) in [
        ("udp", udp_raw(s.dns(), &p, Duration::from_secs(2)).await),
        ("tcp", tcp_raw(s.dns(), &p).await),
    ] {
        let raw = raw.unwrap_or_else(|| panic!("{via}: no reply within 2 s"));
        let (m, code) = reply_code(&raw, 0x2001);
        assert!(
            code == FORMERR || code == 0,
            "{via}: FORMERR or answered, got {code}: {m:?}"
        );
    }
    // Two labels pointing at each other.
    let mut p = query_with(0x2002, 0, 0, 1);
    let at = p.len() as u16;
    p.extend([1, b'x']);
    p.extend((0xC000 | (at + 4)).to_be_bytes());
    p.extend([1, b'y']);
    p.extend((0xC000 | at).to_be_bytes());
    p.extend([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    let raw = udp_raw(s.dns(), &p, Duration::from_secs(2))
        .await
        .expect("no reply to a two-pointer loop");
    let (m, code) = reply_code(&raw, 0x2002);
    assert!(code == FORMERR || code == 0, "got {code}: {m:?}");
    s.assert_still_answers("compression loops in the additional section")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misplaced_or_repeated_opt_is_formerr_and_edns_version_1_is_badvers() {
    let mut s = server().await;

    let mut p = query_with(0x3001, 1, 0, 0);
    p.extend(opt(1232, 0));
    expect_rcode(&mut s, "OPT in the answer section", &p, FORMERR).await;

    let mut p = query_with(0x3002, 0, 1, 0);
    p.extend(opt(1232, 0));
    expect_rcode(&mut s, "OPT in the authority section", &p, FORMERR).await;

    let mut p = query_with(0x3003, 0, 0, 2);
    p.extend(opt(1232, 0));
    p.extend(opt(1232, 0));
    expect_rcode(&mut s, "two OPTs", &p, FORMERR).await;

    // OPT with a non-root owner.
    let mut p = query_with(0x3004, 0, 0, 1);
    let mut r = opt(1232, 0);
    r.splice(0..1, wire_name("x"));
    p.extend(r);
    expect_rcode(&mut s, "OPT not owned by the root", &p, FORMERR).await;

    // OPT as the question type.
    let mut p = header(0x3005, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend(question(&wire_name(NAME), 41, 1));
    expect_rcode(&mut s, "QTYPE=OPT", &p, FORMERR).await;

    // EDNS version 1: BADVERS = extended RCODE 16, i.e. header RCODE 0 and
    // 1 in the OPT's extended-RCODE byte; the reply carries an OPT (version 0).
    let mut p = query_with(0x3006, 0, 0, 1);
    p.extend(opt(1232, 1));
    for (via, raw) in [
        ("udp", udp_raw(s.dns(), &p, Duration::from_secs(2)).await),
        ("tcp", tcp_raw(s.dns(), &p).await),
    ] {
        let raw = raw.unwrap_or_else(|| panic!("{via}: no reply to EDNS version 1"));
        assert_eq!(raw[3] & 0x0F, 0, "{via}: header RCODE bits of BADVERS");
        let (m, code) = reply_code(&raw, 0x3006);
        assert_eq!(code, BADVERS, "{via}: {m:?}");
        let edns = m.edns.as_ref().expect("BADVERS reply carries an OPT");
        assert_eq!(edns.version(), 0, "{via}: we speak version 0");
    }
    s.assert_still_answers("EDNS version 1").await;

    // A valid OPT is echoed.
    let mut p = query_with(0x3007, 0, 0, 1);
    p.extend(opt(4096, 0));
    let raw = udp_raw(s.dns(), &p, Duration::from_secs(2))
        .await
        .expect("reply with EDNS");
    let (m, code) = reply_code(&raw, 0x3007);
    assert_eq!(code, 0, "{m:?}");
    assert!(m.edns.is_some(), "OPT echoed: {m:?}");
    assert_eq!(addresses(&m), vec![ip("10.101.0.20")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_opcodes_are_notimp() {
    let mut s = server().await;
    for (opcode, label) in [(1u8, "IQUERY"), (2, "STATUS"), (5, "UPDATE")] {
        let mut p = query_with(0x4000 | u16::from(opcode), 0, 0, 0);
        p[2] = opcode << 3;
        expect_rcode(&mut s, label, &p, NOTIMP).await;
    }
    // NOTIFY (RFC 1996) is understood, but only a configured primary may
    // send one (design.md §7): this server has none.
    let mut p = query_with(0x4004, 0, 0, 0);
    p[2] = 4 << 3;
    expect_rcode(&mut s, "NOTIFY from a stranger", &p, REFUSED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_transfers_other_classes_and_foreign_names_are_refused() {
    let mut s = server().await;
    for (id, qtype, what) in [(0x5001u16, 252u16, "AXFR"), (0x5002, 251, "IXFR")] {
        let mut p = header(id, [0x00, 0x00], [1, 0, 0, 0]);
        p.extend(question(&wire_name("cluster.region1"), qtype, 1));
        let raw = tcp_raw(s.dns(), &p)
            .await
            .unwrap_or_else(|| panic!("{what}: no TCP reply"));
        let (m, code) = reply_code(&raw, id);
        assert_eq!(code, REFUSED, "{what} over TCP: {m:?}");
        assert!(m.answers.is_empty(), "{what}: {m:?}");
    }
    // CHAOS class (version.bind) and HESIOD.
    let mut p = header(0x5003, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend(question(&wire_name("version.bind"), 16, 3));
    expect_rcode(&mut s, "class CH", &p, REFUSED).await;
    let mut p = header(0x5004, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend(question(&wire_name(NAME), 1, 3));
    expect_rcode(&mut s, "class CH for a served name", &p, REFUSED).await;
    let mut p = header(0x5005, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend(question(&wire_name(NAME), 1, 4));
    expect_rcode(&mut s, "class HS", &p, REFUSED).await;
    // A name outside every zone: not our business.
    let mut p = header(0x5006, [0x01, 0x00], [1, 0, 0, 0]);
    p.extend(question(&wire_name("example.com"), 1, 1));
    expect_rcode(&mut s, "a name outside every zone", &p, REFUSED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disallowed_source_is_refused() {
    // 127.0.0.1 is outside 10.0.0.0/8.
    let mut s = server_with_allow("[\"10.0.0.0/8\"]").await;
    let name = "cockroachdb-0.cockroachdb.default.svc.cluster.region1";
    let m = common::query_udp(s.dns(), name, RecordType::A).await;
    assert_eq!(rcode(&m), ResponseCode::Refused, "UDP: {m:?}");
    assert!(m.answers.is_empty(), "{m:?}");
    let m = common::query_tcp(s.dns(), name, RecordType::A).await;
    assert_eq!(rcode(&m), ResponseCode::Refused, "TCP: {m:?}");
    assert!(m.answers.is_empty(), "{m:?}");
    s.crossdns.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_framing_abuse_does_not_hurt_the_server() {
    let mut s = server().await;

    // Announces 65535 bytes, sends a few, then closes.
    let mut c = tcp_connect(s.dns()).await;
    c.write_all(&[0xFF, 0xFF, 1, 2, 3, 4, 5])
        .await
        .expect("write");
    drop(c);
    s.assert_still_answers("a short TCP body then close").await;

    // Announces 65535 bytes and leaves them pending: other clients are served meanwhile.
    let mut hold = tcp_connect(s.dns()).await;
    hold.write_all(&[0xFF, 0xFF, 1, 2, 3]).await.expect("write");
    s.assert_still_answers("a stalled TCP body").await;
    drop(hold);

    // A zero-length message: no answer (FORMERR or a close); the server lives.
    let mut c = tcp_connect(s.dns()).await;
    c.write_all(&[0, 0]).await.expect("write");
    if let Some(raw) = tcp_recv(&mut c).await {
        assert!(
            raw.len() >= 12,
            "a reply to a zero-length message is a header at least: {raw:02x?}"
        );
        assert_eq!(raw[3] & 0x0F, FORMERR as u8, "{raw:02x?}");
    }
    drop(c);
    // A length prefix split over two writes, then the message.
    let q = make_query(NAME, RecordType::A, None);
    let bytes = q.to_vec().expect("encode");
    let mut c = tcp_connect(s.dns()).await;
    let len = (bytes.len() as u16).to_be_bytes();
    c.write_all(&len[..1]).await.expect("write");
    c.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(&len[1..]).await.expect("write");
    c.write_all(&bytes[..5]).await.expect("write");
    c.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(&bytes[5..]).await.expect("write");
    let raw = tcp_recv(&mut c)
        .await
        .expect("reply to a query sent in pieces");
    let (m, _) = reply_code(&raw, q.metadata.id);
    assert_eq!(addresses(&m), vec![ip("10.101.0.20")]);
    drop(c);
    // A half-sent length prefix then close.
    let mut c = tcp_connect(s.dns()).await;
    c.write_all(&[0x00]).await.expect("write");
    drop(c);
    s.assert_still_answers("TCP framing abuse").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_tcp_queries_are_all_answered_in_order() {
    let mut s = server().await;
    let names = [
        "cockroachdb-0.cockroachdb.default.svc.cluster.region1",
        "cockroachdb-1.cockroachdb.default.svc.cluster.region2",
        "missing.default.svc.cluster.region1",
        "web.shop.svc.cluster.region2",
        "example.com",
    ];
    let mut queries = Vec::new();
    let mut wire = Vec::new();
    for i in 0..100 {
        let mut q = make_query(names[i % names.len()], RecordType::A, None);
        q.metadata.id = 7000 + i as u16;
        let bytes = q.to_vec().expect("encode");
        wire.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        wire.extend_from_slice(&bytes);
        queries.push(q);
    }
    let mut c = tcp_connect(s.dns()).await;
    c.write_all(&wire).await.expect("write all queries at once");
    for q in &queries {
        let raw = tcp_recv(&mut c)
            .await
            .unwrap_or_else(|| panic!("no reply to pipelined query {}", q.metadata.id));
        let (m, code) = reply_code(&raw, q.metadata.id);
        let qname = q.queries[0].name().to_string();
        let want = match qname.trim_end_matches('.') {
            "missing.default.svc.cluster.region1" => 3,
            "example.com" => REFUSED,
            _ => 0,
        };
        assert_eq!(code, want, "{m:?}");
    }
    // The connection still works afterwards, for one more query.
    let q = make_query(NAME, RecordType::A, Some(1232));
    tcp_send(&mut c, &q.to_vec().expect("encode")).await;
    let raw = tcp_recv(&mut c).await.expect("reply after the pipeline");
    let (m, _) = reply_code(&raw, q.metadata.id);
    assert_eq!(addresses(&m), vec![ip("10.101.0.20")]);
    s.assert_still_answers("pipelining").await;
}

/// xorshift64*: a tiny seeded PRNG so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// A random packet: pure noise, or a valid query with a few bytes flipped,
/// truncated or extended (to get past the header checks).
fn random_packet(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(3) {
        0 => (0..rng.below(600)).map(|_| rng.byte()).collect(),
        _ => {
            let mut p = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(p.len());
                p[at] = rng.byte();
            }
            match rng.below(4) {
                0 => p.truncate(rng.below(p.len() + 1)),
                1 => p.extend((0..rng.below(64)).map(|_| rng.byte())),
                _ => {}
            }
            // Keep it a query most of the time so it reaches the parser.
            if rng.below(8) != 0 && p.len() > 2 {
                p[2] &= 0x7F;
            }
            p.truncate(600);
            p
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_packets_do_not_hurt_the_server() {
    let mut s = server().await;
    let mut seeds = Vec::new();
    for (name, t) in [
        (
            "cockroachdb-0.cockroachdb.default.svc.cluster.region1",
            RecordType::A,
        ),
        (
            "_grpc._tcp.cockroachdb.default.svc.cluster.region2",
            RecordType::SRV,
        ),
        ("30.0.101.10.in-addr.arpa", RecordType::PTR),
        ("web.shop.svc.cluster.region1", RecordType::AAAA),
        ("many.default.svc.cluster.big", RecordType::A),
    ] {
        for edns in [None, Some(1232)] {
            seeds.push(make_query(name, t, edns).to_vec().expect("encode"));
        }
    }
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut buf = vec![0u8; 65_535];
    let mut replies = 0usize;
    for i in 0..1000 {
        let p = random_packet(&mut rng, &seeds);
        sock.send_to(&p, s.dns()).await.expect("send");
        // Drain replies so our buffer never fills; pace a little every 50.
        while let Ok((n, _)) = sock.try_recv_from(&mut buf) {
            assert!(n >= 12, "every reply has a header");
            replies += 1;
        }
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok((n, _)) = sock.try_recv_from(&mut buf) {
        assert!(n >= 12, "every reply has a header");
        replies += 1;
    }
    eprintln!("1000 random UDP packets: {replies} replies");
    s.assert_still_answers("1000 random UDP packets").await;

    // And 100 over TCP, each on its own connection.
    for _ in 0..100 {
        let p = random_packet(&mut rng, &seeds);
        let mut c = tcp_connect(s.dns()).await;
        let mut framed = (p.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&p);
        let _ = c.write_all(&framed).await;
        if let Some(raw) = tcp_recv(&mut c).await {
            assert!(raw.len() >= 12, "every reply has a header: {raw:02x?}");
        }
    }
    s.assert_still_answers("100 random TCP messages").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_truncated_over_udp_and_complete_over_tcp() {
    let mut s = server().await;
    let name = "many.default.svc.cluster.big";

    // UDP without EDNS: TC, at most 512 bytes.
    let q = make_query(name, RecordType::A, None);
    let raw = udp_exchange_raw(s.dns(), &q).await;
    assert!(raw.len() <= 512, "classic UDP reply is {} bytes", raw.len());
    let (m, code) = reply_code(&raw, q.metadata.id);
    assert_eq!(code, 0, "{m:?}");
    assert!(m.metadata.truncation, "TC set: {m:?}");
    assert_eq!(m.queries.len(), 1, "the question is echoed: {m:?}");

    // UDP with EDNS 1232 (and with a larger offer): at most 1232 bytes.
    for offer in [1232u16, 4096, 65_000] {
        let q = make_query(name, RecordType::A, Some(offer));
        let raw = udp_exchange_raw(s.dns(), &q).await;
        assert!(
            raw.len() <= 1232,
            "EDNS {offer}: reply is {} bytes",
            raw.len()
        );
        let (m, _) = reply_code(&raw, q.metadata.id);
        assert!(
            m.metadata.truncation,
            "EDNS {offer}: 200 A records do not fit: {m:?}"
        );
        assert!(m.edns.is_some(), "EDNS {offer}: OPT echoed: {m:?}");
    }
    // EDNS below 512 is treated as 512.
    let q = make_query(name, RecordType::A, Some(100));
    let raw = udp_exchange_raw(s.dns(), &q).await;
    assert!(raw.len() <= 512, "EDNS 100: reply is {} bytes", raw.len());

    // TCP: the whole answer.
    for edns in [None, Some(1232)] {
        let m = common::tcp_exchange(s.dns(), &make_query(name, RecordType::A, edns)).await;
        assert!(!m.metadata.truncation, "{m:?}");
        assert_eq!(addresses(&m).len(), BIG_ENDPOINTS, "all endpoints over TCP");
        let m = common::tcp_exchange(
            s.dns(),
            &make_query(
                "_http._tcp.many.default.svc.cluster.big",
                RecordType::SRV,
                edns,
            ),
        )
        .await;
        assert_eq!(
            common::srv_targets(&m).len(),
            BIG_ENDPOINTS,
            "all SRV records over TCP"
        );
    }
    // A small answer over UDP without EDNS is not truncated.
    let m = udp_exchange(s.dns(), &make_query(NAME, RecordType::A, None)).await;
    assert!(!m.metadata.truncation, "{m:?}");
    s.assert_still_answers("large answers").await;
}
