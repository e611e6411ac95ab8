//! The answer table: every per-cluster row of design.md §1 (Kubernetes DNS
//! spec 1.1.0), NXDOMAIN vs NODATA, case, EDNS and truncation, as
//! (qname, qtype) → (rcode, records). Each row is checked three ways against
//! one in-process server: the engine directly, a live UDP socket and a live
//! TCP connection. Responses are decoded with hickory-proto, an independent
//! parser, so a malformed byte fails the row.

mod answers_support;

use answers_support::{query, render, server, via_engine, via_tcp, via_udp};
use crossdns::answer::Transport;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// What a row expects.
struct Row {
    name: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    /// Answer records as "TYPE rdata", any order.
    answers: &'static [&'static str],
}

const fn row(
    name: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    answers: &'static [&'static str],
) -> Row {
    Row {
        name,
        qtype,
        rcode,
        answers,
    }
}

use RecordType::{A, AAAA, ANY, CNAME, NS, PTR, SOA, SRV, TXT};
use ResponseCode::{NXDomain, NoError, Refused, ServFail};

const TABLE: &[Row] = &[
    // spec §2.1 schema version, and the synthesized apex.
    row("dns-version.cluster.alpha.", TXT, NoError, &["TXT 1.1.0"]),
    row("dns-version.cluster.alpha.", A, NoError, &[]),
    row(
        "cluster.alpha.",
        SOA,
        NoError,
        &["SOA ns.dns.cluster.alpha. hostmaster.cluster.alpha. * 7200 1800 86400 7"],
    ),
    row("cluster.alpha.", NS, NoError, &["NS ns.dns.cluster.alpha."]),
    row("cluster.alpha.", A, NoError, &[]),
    // §2.3 ClusterIP: A and AAAA from clusterIPs (dual stack).
    row("web.shop.svc.cluster.alpha.", A, NoError, &["A 10.96.0.10"]),
    row(
        "web.shop.svc.cluster.alpha.",
        AAAA,
        NoError,
        &["AAAA fd00::10"],
    ),
    row("web.shop.svc.cluster.alpha.", TXT, NoError, &[]),
    row(
        "web.shop.svc.cluster.alpha.",
        ANY,
        NoError,
        &["A 10.96.0.10", "AAAA fd00::10"],
    ),
    // §2.3.2 SRV for named ports only, per protocol.
    row(
        "_http._tcp.web.shop.svc.cluster.alpha.",
        SRV,
        NoError,
        &["SRV 0 100 80 web.shop.svc.cluster.alpha."],
    ),
    row(
        "_dns._udp.web.shop.svc.cluster.alpha.",
        SRV,
        NoError,
        &["SRV 0 100 53 web.shop.svc.cluster.alpha."],
    ),
    row("_dns._tcp.web.shop.svc.cluster.alpha.", SRV, NXDomain, &[]),
    row("_tcp.web.shop.svc.cluster.alpha.", SRV, NoError, &[]), // empty non-terminal
    row("_nope._tcp.web.shop.svc.cluster.alpha.", SRV, NXDomain, &[]),
    // §2.3.4 PTR for ClusterIPs (both families).
    row(
        "10.0.96.10.in-addr.arpa.",
        PTR,
        NoError,
        &["PTR web.shop.svc.cluster.alpha."],
    ),
    row(
        "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
        PTR,
        NoError,
        &["PTR web.shop.svc.cluster.alpha."],
    ),
    // An octet has no leading zero (nor a sign: src/grammar/tests.rs).
    row("010.0.96.10.in-addr.arpa.", PTR, NXDomain, &[]),
    // §2.4 headless: ready endpoints only; host names; SRV per endpoint.
    row(
        "db.shop.svc.cluster.alpha.",
        A,
        NoError,
        &["A 10.0.1.10", "A 10.0.1.11"],
    ),
    row(
        "db-0.db.shop.svc.cluster.alpha.",
        A,
        NoError,
        &["A 10.0.1.10"],
    ),
    row("db-2.db.shop.svc.cluster.alpha.", A, NXDomain, &[]), // not ready
    row("db-0.db.shop.svc.cluster.alpha.", AAAA, NoError, &[]),
    row(
        "_grpc._tcp.db.shop.svc.cluster.alpha.",
        SRV,
        NoError,
        &[
            "SRV 0 50 26257 db-0.db.shop.svc.cluster.alpha.",
            "SRV 0 50 26257 db-1.db.shop.svc.cluster.alpha.",
        ],
    ),
    row(
        "11.1.0.10.in-addr.arpa.",
        PTR,
        NoError,
        &["PTR db-1.db.shop.svc.cluster.alpha."],
    ),
    // publishNotReadyAddresses: not-ready endpoints too; dashed-IP names.
    row(
        "peers.shop.svc.cluster.alpha.",
        A,
        NoError,
        &["A 10.0.2.1", "A 10.0.2.2"],
    ),
    row(
        "10-0-2-2.peers.shop.svc.cluster.alpha.",
        A,
        NoError,
        &["A 10.0.2.2"],
    ),
    row(
        "_gossip._udp.peers.shop.svc.cluster.alpha.",
        SRV,
        NoError,
        &[
            "SRV 0 50 7946 10-0-2-1.peers.shop.svc.cluster.alpha.",
            "SRV 0 50 7946 10-0-2-2.peers.shop.svc.cluster.alpha.",
        ],
    ),
    row(
        "v6.shop.svc.cluster.alpha.",
        AAAA,
        NoError,
        &["AAAA fd00::1:1"],
    ),
    row(
        "v6-0.v6.shop.svc.cluster.alpha.",
        AAAA,
        NoError,
        &["AAAA fd00::1:1"],
    ),
    row("v6.shop.svc.cluster.alpha.", A, NoError, &[]),
    // Headless with no ready endpoints does not exist (spec §2.4.1).
    row("empty.shop.svc.cluster.alpha.", A, NXDomain, &[]),
    // §2.5 ExternalName: a CNAME whatever the type.
    row(
        "ext.shop.svc.cluster.alpha.",
        A,
        NoError,
        &["CNAME db.example.com."],
    ),
    row(
        "ext.shop.svc.cluster.alpha.",
        CNAME,
        NoError,
        &["CNAME db.example.com."],
    ),
    row(
        "ext.shop.svc.cluster.alpha.",
        SRV,
        NoError,
        &["CNAME db.example.com."],
    ),
    row("_http._tcp.ext.shop.svc.cluster.alpha.", SRV, NXDomain, &[]),
    // Pods, `insecure`: any well-formed dashed IP.
    row(
        "10-0-0-99.shop.pod.cluster.alpha.",
        A,
        NoError,
        &["A 10.0.0.99"],
    ),
    row(
        "fd00--7.shop.pod.cluster.alpha.",
        AAAA,
        NoError,
        &["AAAA fd00::7"],
    ),
    row("not-an-ip.shop.pod.cluster.alpha.", A, NXDomain, &[]),
    row("x.10-0-0-99.shop.pod.cluster.alpha.", A, NXDomain, &[]),
    // Every name with names below it exists, in every `pods` mode (RFC 8020,
    // so QNAME-minimising resolvers go on); a missing namespace does not.
    row("pod.cluster.alpha.", A, NoError, &[]),
    row("shop.pod.cluster.alpha.", A, NoError, &[]),
    row("nope.pod.cluster.alpha.", A, NXDomain, &[]),
    row("10-0-0-99.nope.pod.cluster.alpha.", A, NXDomain, &[]),
    row("pod.cluster.beta.", A, NoError, &[]),
    row("default.pod.cluster.beta.", A, NoError, &[]),
    row("pod.cluster.shared.", A, NoError, &[]),
    row("us-east1.pod.cluster.shared.", A, NoError, &[]),
    row("eu-west1.pod.cluster.shared.", A, NXDomain, &[]),
    // The apex NS target answers `dns.advertise`.
    row("dns.cluster.alpha.", A, NoError, &[]),
    row("ns.dns.cluster.alpha.", A, NoError, &["A 10.0.0.53"]),
    row("ns.dns.cluster.alpha.", AAAA, NoError, &["AAAA fd00::53"]),
    row("ns.dns.cluster.alpha.", TXT, NoError, &[]),
    row("x.ns.dns.cluster.alpha.", A, NXDomain, &[]),
    row("ns.dns.in-addr.arpa.", A, NoError, &["A 10.0.0.53"]),
    // Dashed IPv6 labels never begin or end with `-` (a `0` is added), the
    // same label in A/AAAA, SRV and PTR.
    row(
        "2001-db8--0.v6n.shop.svc.cluster.alpha.",
        AAAA,
        NoError,
        &["AAAA 2001:db8::"],
    ),
    row(
        "0--1.v6n.shop.svc.cluster.alpha.",
        AAAA,
        NoError,
        &["AAAA ::1"],
    ),
    row(
        "_p._tcp.v6n.shop.svc.cluster.alpha.",
        SRV,
        NoError,
        &[
            "SRV 0 50 80 0--1.v6n.shop.svc.cluster.alpha.",
            "SRV 0 50 80 2001-db8--0.v6n.shop.svc.cluster.alpha.",
        ],
    ),
    row(
        "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
        PTR,
        NoError,
        &["PTR 2001-db8--0.v6n.shop.svc.cluster.alpha."],
    ),
    row(
        "2001-db8--.v6n.shop.svc.cluster.alpha.",
        AAAA,
        NXDomain,
        &[],
    ),
    // NXDOMAIN vs NODATA for the tree's inner names.
    row("svc.cluster.alpha.", A, NoError, &[]),
    row("shop.svc.cluster.alpha.", A, NoError, &[]),
    row("nope.svc.cluster.alpha.", A, NXDomain, &[]),
    row("nope.shop.svc.cluster.alpha.", A, NXDomain, &[]),
    row(
        "web.shop.svc.cluster.alpha.svc.cluster.alpha.",
        A,
        NXDomain,
        &[],
    ), // ndots:5 search miss
    row("a.b.c.web.shop.svc.cluster.alpha.", A, NXDomain, &[]),
    row("random.cluster.alpha.", A, NXDomain, &[]),
    // Case-insensitive names.
    row("WEB.Shop.SVC.Cluster.Alpha.", A, NoError, &["A 10.96.0.10"]),
    // endpoint_pod_names and `pods: verified`.
    row(
        "peers-abc.peers.default.svc.cluster.beta.",
        A,
        NoError,
        &["A 10.2.0.5"],
    ),
    row("10-2-0-5.peers.default.svc.cluster.beta.", A, NXDomain, &[]),
    row(
        "10-2-0-5.default.pod.cluster.beta.",
        A,
        NoError,
        &["A 10.2.0.5"],
    ),
    row("10-2-0-6.default.pod.cluster.beta.", A, NXDomain, &[]),
    row("10-2-0-5.other.pod.cluster.beta.", A, NXDomain, &[]),
    // Pods disabled (the default) in the shared zone.
    row("10-3-0-1.us-east1.pod.cluster.shared.", A, NXDomain, &[]),
    // A shared zone: the namespace label picks the cluster.
    row(
        "cockroachdb-0.cockroachdb.us-east1.svc.cluster.shared.",
        A,
        NoError,
        &["A 10.3.0.1"],
    ),
    row(
        "cockroachdb-0.cockroachdb.us-west1.svc.cluster.shared.",
        A,
        NoError,
        &["A 10.4.0.1"],
    ),
    row("cockroachdb.eu-west1.svc.cluster.shared.", A, NXDomain, &[]),
    // A cluster that never synced: SERVFAIL, never NXDOMAIN.
    row("web.default.svc.cluster.dead.", A, ServFail, &[]),
    row("anything.cluster.dead.", A, ServFail, &[]),
    row("cluster.dead.", SOA, ServFail, &[]),
    row("dns-version.cluster.dead.", TXT, ServFail, &[]),
    // Reverse: unknown address, and the names above addresses.
    row("1.2.3.4.in-addr.arpa.", PTR, ServFail, &[]), // `dead` might know it
    row("96.10.in-addr.arpa.", PTR, NoError, &[]),
    // Outside every zone: never an open resolver.
    row("example.com.", A, Refused, &[]),
    row("cluster.alpha.example.com.", A, Refused, &[]),
];

fn check(row: &Row, bytes: &[u8], how: &str, asked: &str) {
    let m = Message::from_vec(bytes)
        .unwrap_or_else(|e| panic!("{how} {} {}: undecodable reply: {e}", row.name, row.qtype));
    let ctx = format!("{how} {} {}", row.name, row.qtype);
    assert_eq!(m.metadata.response_code, row.rcode, "{ctx}: rcode");
    assert_eq!(m.metadata.id, 0xBEEF, "{ctx}: id");
    assert!(!m.metadata.truncation, "{ctx}: truncated");
    let mut want: Vec<String> = row.answers.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(render(&m), want, "{ctx}: answers");
    // The question is echoed byte for byte (case included).
    assert_eq!(
        m.queries[0].name().to_ascii(),
        asked,
        "{ctx}: question case"
    );
    for r in &m.answers {
        assert_eq!(
            r.name.to_ascii(),
            asked,
            "{ctx}: answer owner echoes the question"
        );
        if r.record_type() != SOA {
            assert_eq!(r.ttl, 7, "{ctx}: TTL from dns.ttl");
        }
    }
    let negative = row.answers.is_empty() && matches!(row.rcode, NoError | NXDomain);
    let soa = m
        .authorities
        .iter()
        .filter(|r| r.record_type() == SOA)
        .count();
    assert_eq!(
        soa,
        usize::from(negative),
        "{ctx}: SOA in authority iff negative"
    );
    if negative {
        assert_eq!(m.authorities[0].ttl, 7, "{ctx}: negative TTL");
    }
    let authoritative = matches!(row.rcode, NoError | NXDomain);
    assert_eq!(m.metadata.authoritative, authoritative, "{ctx}: AA");
    assert!(m.metadata.recursion_desired, "{ctx}: RD echoed");
    assert!(m.edns.is_some(), "{ctx}: EDNS answered with OPT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_answer_table_over_engine_udp_and_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path()).await;
    let addr = r.dns[0];
    for row in TABLE {
        let q = query(row.name, row.qtype, Some(1232));
        check(row, &via_engine(&r, &q, Transport::Udp), "engine", row.name);
        let udp = tokio::task::spawn_blocking({
            let q = q.clone();
            move || via_udp(addr, &q)
        });
        check(row, &udp.await.expect("udp"), "udp", row.name);
        let tcp = tokio::task::spawn_blocking(move || via_tcp(addr, &q));
        check(row, &tcp.await.expect("tcp"), "tcp", row.name);
    }
}
