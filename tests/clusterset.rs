//! The clusterset view as a table: every clusterset row of design.md §1,
//! every policy, annotations overriding the default, `all_down` modes and
//! `service_address` modes, against the engine and over UDP. Staleness of a
//! failing apiserver is covered end to end in `e2e_clusterset.rs`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use crossdns::answer::Transport;
use crossdns::app::{Running, start};
use crossdns::config::Settings;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// A ClusterIP Service and its slice: `ready` endpoints ready, then `unready` not.
fn vip(
    ns: &str,
    name: &str,
    ip: &str,
    ready: &[&str],
    unready: &[&str],
    annotations: &str,
) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}, annotations: {{{annotations}}}}}\n\
         spec: {{clusterIP: {ip}, ports: [{{name: http, port: 80, protocol: TCP}}]}}\n\
         status: {{loadBalancer: {{ingress: [{{ip: 203.0.113.{last}}}]}}}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-s, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nendpoints:\n",
        last = ip.rsplit('.').next().unwrap_or("1"),
    );
    for (list, ready) in [(ready, true), (unready, false)] {
        for a in list {
            s.push_str(&format!(
                "  - {{addresses: [{a}], conditions: {{ready: {ready}}}}}\n"
            ));
        }
    }
    s.push_str("---\n");
    s
}

fn headless(ns: &str, name: &str, pods: &[(&str, &str)]) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec: {{clusterIP: None, ports: [{{name: grpc, port: 26257, protocol: TCP}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-s, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nports: [{{name: grpc, port: 26257, protocol: TCP}}]\nendpoints:\n"
    );
    for (host, ip) in pods {
        s.push_str(&format!(
            "  - {{addresses: [{ip}], hostname: {host}, conditions: {{ready: true}}}}\n"
        ));
    }
    s.push_str("---\n");
    s
}

fn region(n: u8) -> String {
    let ip = |last: u8| format!("10.{n}.0.{last}");
    let r = |last: u8| format!("10.9{n}.0.{last}");
    let mut s = String::new();
    // web: ready in region1 and region2, not ready in region3.
    let (ready, unready): (Vec<String>, Vec<String>) = if n == 3 {
        (vec![], vec![ip(1)])
    } else {
        (vec![ip(1)], vec![])
    };
    let ready: Vec<&str> = ready.iter().map(String::as_str).collect();
    let unready: Vec<&str> = unready.iter().map(String::as_str).collect();
    s += &vip("shop", "web", &r(1), &ready, &unready, "");
    // api: not in region1 at all; ready in 2 and 3.
    if n != 1 {
        s += &vip("shop", "api", &r(2), &[&ip(2)], &[], "");
    }
    // fo: failover order region3, region2, region1 (region3 not ready).
    let fo_ready: Vec<&str> = if n == 3 { vec![] } else { vec!["10.0.0.1"] };
    let fo_unready: Vec<&str> = if n == 3 { vec!["10.0.0.1"] } else { vec![] };
    s += &vip(
        "shop",
        "fo",
        &r(3),
        &fo_ready,
        &fo_unready,
        "\"crossdns.io/policy\": failover, \"crossdns.io/failover-order\": \"region3,region2,region1\"",
    );
    // rr and wt: ready everywhere.
    s += &vip(
        "shop",
        "rr",
        &r(4),
        &["10.0.0.2"],
        &[],
        "\"crossdns.io/policy\": round-robin",
    );
    s += &vip(
        "shop",
        "wt",
        &r(5),
        &["10.0.0.3"],
        &[],
        "\"crossdns.io/policy\": weighted, \"crossdns.io/weights\": \"region1=3,region2=1,region3=0\"",
    );
    // hidden: opted out of the clusterset in every cluster.
    s += &vip(
        "shop",
        "hidden",
        &r(6),
        &["10.0.0.4"],
        &[],
        "\"crossdns.io/export\": \"false\"",
    );
    // down: exists everywhere, ready nowhere.
    s += &vip("shop", "down", &r(7), &[], &["10.0.0.5"], "");
    s += &headless("default", "db", &[("db-0", &ip(10)), ("db-1", &ip(11))]);
    s
}

fn write_region(dir: &Path, n: u8) -> String {
    let d = dir.join(format!("region{n}"));
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join("all.yaml"), region(n)).expect("write");
    d.display().to_string()
}

async fn server(dir: &Path, all_down: &str) -> Running {
    let (r1, r2, r3) = (
        write_region(dir, 1),
        write_region(dir, 2),
        write_region(dir, 3),
    );
    let yaml = format!(
        "dns: {{listen: [\"127.0.0.1:0\"], ttl: 9}}\nallow: [127.0.0.0/8]\nclusters:\n\
         - {{name: region1, zone: cluster.region1, manifests: {r1}}}\n\
         - {{name: region2, zone: cluster.region2, manifests: {r2}, service_address: endpoints}}\n\
         - {{name: region3, zone: cluster.region3, manifests: {r3}, service_address: load-balancer}}\n\
         clusterset: {{zone: clusterset.local, local: region1, policy: local-first, all_down: {all_down}}}\n"
    );
    let settings = Settings::from_yaml(&yaml, &dir.join("c.yaml")).expect("valid");
    let running = start(settings).await.expect("starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !running.clusters.iter().all(|c| c.status.synced()) {
        assert!(Instant::now() < deadline, "clusters did not sync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m.set_edns(Edns::new());
    m.to_vec().expect("encode")
}

fn ask(r: &Running, name: &str, qtype: RecordType) -> Message {
    let mut out = Vec::new();
    r.engine
        .respond(
            &query(name, qtype),
            "127.0.0.1".parse().expect("ip"),
            Transport::Udp,
            &mut out,
        )
        .expect("reply");
    Message::from_vec(&out).expect("decodes")
}

fn ask_udp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    sock.send_to(&query(name, qtype), addr).expect("send");
    let mut buf = vec![0u8; 4096];
    let n = sock.recv(&mut buf).expect("udp reply");
    Message::from_vec(&buf[..n]).expect("decodes")
}

fn rdata(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

use RecordType::{A, SRV};
use ResponseCode::{NXDomain, NoError, ServFail};

/// (name, type, rcode, sorted answers)
const TABLE: &[(&str, RecordType, ResponseCode, &[&str])] = &[
    // local-first: region1 is healthy, so only region1's ClusterIP.
    ("web.shop.svc.clusterset.local.", A, NoError, &["10.91.0.1"]),
    // not in region1: all healthy others; region2 answers endpoints, region3 its LB IP.
    (
        "api.shop.svc.clusterset.local.",
        A,
        NoError,
        &["10.2.0.2", "203.0.113.2"],
    ),
    // failover by annotation: region3 (first) is not ready, region2 next (endpoints mode).
    ("fo.shop.svc.clusterset.local.", A, NoError, &["10.0.0.1"]),
    // export: "false" everywhere: not in the clusterset.
    ("hidden.shop.svc.clusterset.local.", A, NXDomain, &[]),
    (
        "hidden.shop.svc.cluster.region1.",
        A,
        NoError,
        &["10.91.0.6"],
    ),
    // exists, healthy nowhere: all_down (servfail in this server).
    ("down.shop.svc.clusterset.local.", A, ServFail, &[]),
    ("nothere.shop.svc.clusterset.local.", A, NXDomain, &[]),
    // one pod in one cluster, always; the bare cluster label does not exist.
    (
        "db-1.region2.db.default.svc.clusterset.local.",
        A,
        NoError,
        &["10.2.0.11"],
    ),
    // An existing pod name without a record of the type: NODATA.
    (
        "db-1.region2.db.default.svc.clusterset.local.",
        RecordType::AAAA,
        NoError,
        &[],
    ),
    (
        "db-1.region4.db.default.svc.clusterset.local.",
        A,
        NXDomain,
        &[],
    ),
    // `<cluster>.<svc>...` holds no records (KEP-1645 §2.4.4) but exists
    // above that cluster's pods (RFC 8020), so NODATA; with no pods below
    // it (a ClusterIP Service, an unknown cluster) it does not exist.
    ("region2.db.default.svc.clusterset.local.", A, NoError, &[]),
    ("region2.web.shop.svc.clusterset.local.", A, NXDomain, &[]),
    ("region4.db.default.svc.clusterset.local.", A, NXDomain, &[]),
    // The MCS DNS schema version (KEP-1645 specification §2.2).
    (
        "dns-version.clusterset.local.",
        RecordType::TXT,
        NoError,
        &["1.0.0"],
    ),
    ("pod.clusterset.local.", A, NXDomain, &[]),
    ("_tcp.db.default.svc.clusterset.local.", SRV, NoError, &[]),
    // headless, local-first: region1's pods.
    (
        "db.default.svc.clusterset.local.",
        A,
        NoError,
        &["10.1.0.10", "10.1.0.11"],
    ),
    // SRV merged over every healthy cluster, targets carry the cluster label.
    (
        "_grpc._tcp.db.default.svc.clusterset.local.",
        SRV,
        NoError,
        &[
            "0 50 26257 db-0.region1.db.default.svc.clusterset.local.",
            "0 50 26257 db-0.region2.db.default.svc.clusterset.local.",
            "0 50 26257 db-0.region3.db.default.svc.clusterset.local.",
            "0 50 26257 db-1.region1.db.default.svc.clusterset.local.",
            "0 50 26257 db-1.region2.db.default.svc.clusterset.local.",
            "0 50 26257 db-1.region3.db.default.svc.clusterset.local.",
        ],
    ),
    (
        "_grpc._tcp.db.default.svc.clusterset.local.",
        A,
        NoError,
        &[],
    ),
    (
        "_http._tcp.web.shop.svc.clusterset.local.",
        SRV,
        NoError,
        &["0 100 80 web.shop.svc.clusterset.local."],
    ),
    ("shop.svc.clusterset.local.", A, NoError, &[]),
    ("clusterset.local.", A, NoError, &[]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusterset_table_over_engine_and_udp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path(), "servfail").await;
    for (name, qtype, rcode, want) in TABLE {
        for (how, m) in [
            ("engine", ask(&r, name, *qtype)),
            ("udp", ask_udp(r.dns[0], name, *qtype)),
        ] {
            assert_eq!(
                m.metadata.response_code, *rcode,
                "{how} {name} {qtype}: rcode"
            );
            assert_eq!(
                rdata(&m),
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{how} {name} {qtype}"
            );
            for rr in &m.answers {
                assert_eq!(rr.ttl, 9, "{how} {name}: TTL from dns.ttl");
            }
            // RFC 2308 §2: a negative answer carries the zone's SOA.
            if want.is_empty() && matches!(rcode, NoError | NXDomain) {
                assert!(
                    m.authorities
                        .iter()
                        .any(|a| a.record_type() == RecordType::SOA),
                    "{how} {name} {qtype}: negative answer without SOA"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_rotates_the_records_per_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path(), "servfail").await;
    let mut firsts = BTreeMap::new();
    for _ in 0..30 {
        let m = ask(&r, "rr.shop.svc.clusterset.local.", A);
        // All three clusters every time; region2 answers its endpoint, region3 its LB.
        assert_eq!(rdata(&m), vec!["10.0.0.2", "10.91.0.4", "203.0.113.4"]);
        *firsts.entry(m.answers[0].data.to_string()).or_insert(0) += 1;
    }
    assert_eq!(
        firsts.len(),
        3,
        "each cluster's record comes first in turn: {firsts:?}"
    );
    assert!(firsts.values().all(|n| *n == 10), "{firsts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_answers_follow_the_weights_within_five_percent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path(), "servfail").await;
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let n = 10_000;
    for _ in 0..n {
        let m = ask(&r, "wt.shop.svc.clusterset.local.", A);
        assert_eq!(m.answers.len(), 1, "one cluster per answer");
        *counts.entry(m.answers[0].data.to_string()).or_insert(0) += 1;
    }
    let share = |ip: &str| f64::from(counts.get(ip).copied().unwrap_or(0)) / f64::from(n);
    // region1=3 (ClusterIP 10.91.0.5), region2=1 (endpoint 10.0.0.3), region3=0.
    assert!((share("10.91.0.5") - 0.75).abs() < 0.05, "{counts:?}");
    assert!((share("10.0.0.3") - 0.25).abs() < 0.05, "{counts:?}");
    assert_eq!(
        share("203.0.113.5"),
        0.0,
        "weight 0 never answers: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_down_nxdomain_answers_nxdomain_with_soa() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path(), "nxdomain").await;
    let m = ask(&r, "down.shop.svc.clusterset.local.", A);
    assert_eq!(m.metadata.response_code, NXDomain);
    assert_eq!(m.authorities.len(), 1, "SOA in authority");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_down_last_healthy_keeps_the_last_healthy_clusters_with_a_short_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path(), "last-healthy").await;
    // Never healthy: nothing to fall back to.
    assert_eq!(
        ask(&r, "down.shop.svc.clusterset.local.", A)
            .metadata
            .response_code,
        ServFail
    );
    // api is healthy in region2 and region3. Take region3 down first, so
    // region2 alone is the last healthy cluster, then region2 too.
    assert_eq!(
        rdata(&ask(&r, "api.shop.svc.clusterset.local.", A)),
        vec!["10.2.0.2", "203.0.113.2"]
    );
    let unready = |n: u8| {
        let path = dir.path().join(format!("region{n}/all.yaml"));
        let text = std::fs::read_to_string(&path).expect("read").replace(
            &format!("[10.{n}.0.2], conditions: {{ready: true}}"),
            &format!("[10.{n}.0.2], conditions: {{ready: false}}"),
        );
        std::fs::write(&path, text).expect("write");
    };
    unready(3);
    let deadline = Instant::now() + Duration::from_secs(5);
    while rdata(&ask(&r, "api.shop.svc.clusterset.local.", A)) != vec!["10.2.0.2"] {
        assert!(Instant::now() < deadline, "region3 never left the answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unready(2);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = ask(&r, "api.shop.svc.clusterset.local.", A);
        if m.answers
            .first()
            .is_some_and(|a| a.ttl == crossdns::answer::clusterset::LAST_HEALTHY_TTL)
        {
            assert_eq!(m.metadata.response_code, NoError);
            assert_eq!(
                rdata(&m),
                vec!["10.2.0.2"],
                "region2 was healthy last; its not-ready endpoint is the fallback"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never fell back to last-healthy: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_going_unready_move_local_first_to_the_other_clusters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path(), "servfail").await;
    assert_eq!(
        rdata(&ask(&r, "web.shop.svc.clusterset.local.", A)),
        vec!["10.91.0.1"]
    );
    let path = dir.path().join("region1/all.yaml");
    let text = std::fs::read_to_string(&path).expect("read").replacen(
        "[10.1.0.1], conditions: {ready: true}",
        "[10.1.0.1], conditions: {ready: false}",
        1,
    );
    std::fs::write(&path, text).expect("write");
    let started = Instant::now();
    loop {
        // region2 answers its ready endpoint; region3's web is not ready.
        if rdata(&ask(&r, "web.shop.svc.clusterset.local.", A)) == vec!["10.2.0.1"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "failover did not happen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = r.metrics.encode();
    assert!(
        metrics.contains("crossdns_clusterset_failovers_total 1")
            || metrics.contains("crossdns_clusterset_failovers_total{} "),
        "{metrics}"
    );
}
