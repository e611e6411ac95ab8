//! The answer table: every per-cluster row of design.md §1 (Kubernetes DNS
//! spec 1.1.0), NXDOMAIN vs NODATA, case, EDNS and truncation, as
//! (qname, qtype) → (rcode, records). Each row is checked three ways against
//! one in-process server: the engine directly, a live UDP socket and a live
//! TCP connection. Responses are decoded with hickory-proto, an independent
//! parser, so a malformed byte fails the row.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use crossdns::answer::Transport;
use crossdns::app::{Running, start};
use crossdns::config::Settings;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

const ALPHA: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00::10"]
  ports:
    - {name: http, port: 80, protocol: TCP}
    - {name: dns, port: 53, protocol: UDP}
    - {port: 8080, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - {addresses: [10.0.0.1], conditions: {ready: true}, targetRef: {kind: Pod, name: web-a}}
  - {addresses: [10.0.0.2], conditions: {ready: false}, targetRef: {kind: Pod, name: web-b}}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  ports: [{name: grpc, port: 26257, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-x, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: grpc, port: 26257, protocol: TCP}]
endpoints:
  - {addresses: [10.0.1.10], hostname: db-0, conditions: {ready: true}}
  - {addresses: [10.0.1.11], hostname: db-1, conditions: {ready: true}}
  - {addresses: [10.0.1.12], hostname: db-2, conditions: {ready: false}}
---
apiVersion: v1
kind: Service
metadata: {name: peers, namespace: shop}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  ports: [{name: gossip, port: 7946, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: peers-x, namespace: shop, labels: {kubernetes.io/service-name: peers}}
addressType: IPv4
ports: [{name: gossip, port: 7946, protocol: UDP}]
endpoints:
  - {addresses: [10.0.2.1], conditions: {ready: true}, targetRef: {kind: Pod, name: peers-a}}
  - {addresses: [10.0.2.2], conditions: {ready: false}, targetRef: {kind: Pod, name: peers-b}}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: shop}
spec: {clusterIP: None}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec: {type: ExternalName, externalName: db.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: v6, namespace: shop}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v6-x, namespace: shop, labels: {kubernetes.io/service-name: v6}}
addressType: IPv6
endpoints:
  - {addresses: ["fd00::1:1"], hostname: v6-0}
"#;

const BETA: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: peers, namespace: default}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: peers-1, namespace: default, labels: {kubernetes.io/service-name: peers}}
addressType: IPv4
endpoints:
  - {addresses: [10.2.0.5], targetRef: {kind: Pod, name: peers-abc}}
---
apiVersion: v1
kind: Pod
metadata: {name: peers-abc, namespace: default}
status: {podIP: 10.2.0.5, podIPs: [{ip: 10.2.0.5}]}
"#;

fn crdb(ns: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: cockroachdb, namespace: {ns}}}\nspec: {{clusterIP: None}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: c1, namespace: {ns}, labels: {{kubernetes.io/service-name: cockroachdb}}}}\n\
         addressType: IPv4\nendpoints:\n  - {{addresses: [{ip}], hostname: cockroachdb-0}}\n"
    )
}

/// 100 ready endpoints: 1,600 bytes of A records, more than any UDP limit.
fn big() -> String {
    let mut s = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: shop}\nspec: {clusterIP: None}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: big-1, namespace: shop, labels: {kubernetes.io/service-name: big}}\n\
         addressType: IPv4\nendpoints:\n",
    );
    for i in 0..100 {
        s.push_str(&format!(
            "  - {{addresses: [10.9.0.{i}], hostname: big-{i}}}\n"
        ));
    }
    s
}

fn write(dir: &Path, sub: &str, files: &[(&str, String)]) -> String {
    let d = dir.join(sub);
    std::fs::create_dir_all(&d).expect("mkdir");
    for (name, text) in files {
        std::fs::write(d.join(name), text).expect("write manifest");
    }
    d.display().to_string()
}

async fn server(dir: &Path) -> Running {
    let alpha = write(
        dir,
        "alpha",
        &[("a.yaml", ALPHA.to_owned()), ("big.yaml", big())],
    );
    let beta = write(dir, "beta", &[("b.yaml", BETA.to_owned())]);
    let east = write(dir, "east", &[("c.yaml", crdb("us-east1", "10.3.0.1"))]);
    let west = write(dir, "west", &[("c.yaml", crdb("us-west1", "10.4.0.1"))]);
    // A cluster whose apiserver never answers: its zone must SERVFAIL.
    let kubeconfig = dir.join("dead.kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: dead, context: {cluster: c, user: u}}]\ncurrent-context: dead\n",
    )
    .expect("kubeconfig");
    let yaml = format!(
        "dns: {{listen: [\"127.0.0.1:0\"], ttl: 7}}\nallow: [127.0.0.0/8]\nclusters:\n\
         - {{name: alpha, zone: cluster.alpha, manifests: {alpha}, pods: insecure}}\n\
         - {{name: beta, zone: cluster.beta, manifests: {beta}, pods: verified, endpoint_pod_names: true}}\n\
         - {{name: east, zone: cluster.shared, manifests: {east}, namespaces: [us-east1]}}\n\
         - {{name: west, zone: cluster.shared, manifests: {west}, namespaces: [us-west1]}}\n\
         - {{name: dead, zone: cluster.dead, kubeconfig: {}, context: dead}}\n",
        kubeconfig.display()
    );
    let settings = Settings::from_yaml(&yaml, &dir.join("crossdns.yaml")).expect("valid config");
    let running = start(settings).await.expect("server starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !running
        .clusters
        .iter()
        .filter(|c| c.spec.name != "dead")
        .all(|c| c.status.synced())
    {
        assert!(Instant::now() < deadline, "manifest clusters did not sync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running
}

fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(0xBEEF, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().expect("encode")
}

fn via_engine(r: &Running, q: &[u8], transport: Transport) -> Vec<u8> {
    let mut out = Vec::new();
    r.engine
        .respond(
            q,
            "127.0.0.1".parse::<IpAddr>().expect("ip"),
            transport,
            &mut out,
        )
        .expect("a reply");
    out
}

fn via_udp(addr: SocketAddr, q: &[u8]) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = vec![0u8; 65_535];
    for _ in 0..3 {
        sock.send_to(q, addr).expect("send");
        if let Ok(n) = sock.recv(&mut buf) {
            return buf[..n].to_vec();
        }
    }
    panic!("no UDP reply from {addr}");
}

fn via_tcp(addr: SocketAddr, q: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed).expect("write");
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("length");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).expect("body");
    buf
}

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

fn render(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .map(|r| {
            let s = format!("{} {}", r.record_type(), r.data);
            if r.record_type() == SOA {
                // The serial is a timestamp: mask it.
                let mut parts: Vec<&str> = s.split(' ').collect();
                if parts.len() > 3 {
                    parts[3] = "*";
                }
                parts.join(" ")
            } else {
                s.replace('"', "")
            }
        })
        .collect();
    v.sort();
    v
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_truncate_over_udp_and_arrive_whole_over_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path()).await;
    let addr = r.dns[0];
    let name = "big.shop.svc.cluster.alpha.";
    for (edns, limit) in [
        (None, 512usize),
        (Some(1232), 1232),
        (Some(4096), 1232),
        (Some(100), 512),
    ] {
        let q = query(name, A, edns);
        let bytes = tokio::task::spawn_blocking(move || via_udp(addr, &q))
            .await
            .expect("udp");
        assert!(
            bytes.len() <= limit,
            "edns {edns:?}: {} bytes > {limit}",
            bytes.len()
        );
        let m = Message::from_vec(&bytes).expect("decodes");
        assert!(m.metadata.truncation, "edns {edns:?}: TC set");
        assert_eq!(m.metadata.response_code, NoError);
        assert_eq!(
            m.edns.is_some(),
            edns.is_some(),
            "OPT only when asked with OPT"
        );
        if let Some(e) = &m.edns {
            assert_eq!(e.max_payload(), 1232, "we advertise 1232");
        }
    }
    let q = query(name, A, None);
    let bytes = tokio::task::spawn_blocking(move || via_tcp(addr, &q))
        .await
        .expect("tcp");
    let m = Message::from_vec(&bytes).expect("decodes");
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100);
    // Small answers without EDNS still fit the classic 512 bytes whole.
    let q = query("db.shop.svc.cluster.alpha.", A, None);
    let m = Message::from_vec(&via_engine(&r, &q, Transport::Udp)).expect("decodes");
    assert!(!m.metadata.truncation && m.answers.len() == 2 && m.edns.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_answers_carry_target_addresses_in_the_additional_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path()).await;
    let q = query("_grpc._tcp.db.shop.svc.cluster.alpha.", SRV, Some(1232));
    let m = Message::from_vec(&via_engine(&r, &q, Transport::Udp)).expect("decodes");
    let mut extra: Vec<String> = m
        .additionals
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    extra.sort();
    assert_eq!(
        extra,
        vec![
            "db-0.db.shop.svc.cluster.alpha. A 10.0.1.10".to_owned(),
            "db-1.db.shop.svc.cluster.alpha. A 10.0.1.11".to_owned()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_change_is_answered_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path()).await;
    let q = query("late.shop.svc.cluster.alpha.", A, Some(1232));
    let rcode = |r: &Running| {
        Message::from_vec(&via_engine(r, &q, Transport::Udp))
            .expect("decodes")
            .metadata
            .response_code
    };
    assert_eq!(rcode(&r), NXDomain);
    std::fs::write(
        dir.path().join("alpha/late.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: late, namespace: shop}\nspec: {clusterIP: 10.96.0.99}\n",
    )
    .expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    while rcode(&r) != NoError {
        assert!(Instant::now() < deadline, "new manifest not served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A half-written file keeps the file's last good objects (none here) and
    // everything else.
    std::fs::write(
        dir.path().join("alpha/a.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: [",
    )
    .expect("write");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let q = query("web.shop.svc.cluster.alpha.", A, Some(1232));
    let m = Message::from_vec(&via_engine(&r, &q, Transport::Udp)).expect("decodes");
    assert_eq!(
        render(&m),
        vec!["A 10.96.0.10".to_owned()],
        "a broken file loses nothing"
    );
}
