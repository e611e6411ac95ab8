//! More of the answer table: truncation, the additional section, CNAMEs
//! followed into served zones, the apex NS target, and a manifest change,
//! over the same in-process server as `answers.rs`.

mod answers_support;

use std::time::{Duration, Instant};

use answers_support::{query, render, server, via_engine, via_tcp, via_udp};
use crossdns::answer::Transport;
use crossdns::app::Running;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use RecordType::{A, SRV};
use ResponseCode::{NXDomain, NoError};

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

/// Answer records as `owner TYPE rdata`, in order.
fn owned(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

/// (name, type, rcode, answers with owners, SOA in authority)
type FollowRow = (
    &'static str,
    RecordType,
    ResponseCode,
    &'static [&'static str],
    bool,
);

const FOLLOW: &[FollowRow] = &[
    // RFC 1034 §4.3.2 step 3a: an ExternalName into a zone crossdns serves
    // is followed by the target's records, in the same zone...
    (
        "alias.shop.svc.cluster.alpha.",
        A,
        NoError,
        &[
            "alias.shop.svc.cluster.alpha. CNAME web.shop.svc.cluster.alpha.",
            "web.shop.svc.cluster.alpha. A 10.96.0.10",
        ],
        false,
    ),
    // ...and across cluster zones.
    (
        "cross.shop.svc.cluster.alpha.",
        A,
        NoError,
        &[
            "cross.shop.svc.cluster.alpha. CNAME peers-abc.peers.default.svc.cluster.beta.",
            "peers-abc.peers.default.svc.cluster.beta. A 10.2.0.5",
        ],
        false,
    ),
    // A target that does not exist: its zone's NXDOMAIN, after the CNAME.
    (
        "dangling.shop.svc.cluster.alpha.",
        A,
        NXDomain,
        &["dangling.shop.svc.cluster.alpha. CNAME gone.shop.svc.cluster.alpha."],
        true,
    ),
    // Outside every served zone: the CNAME alone, for the resolver to chase.
    (
        "ext.shop.svc.cluster.alpha.",
        A,
        NoError,
        &["ext.shop.svc.cluster.alpha. CNAME db.example.com."],
        false,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_names_into_served_zones_are_followed_over_engine_udp_and_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path()).await;
    let addr = r.dns[0];
    for (name, qtype, rcode, want, soa) in FOLLOW {
        let q = query(name, *qtype, Some(1232));
        let udp = tokio::task::spawn_blocking({
            let q = q.clone();
            move || via_udp(addr, &q)
        });
        let tcp = {
            let q = q.clone();
            tokio::task::spawn_blocking(move || via_tcp(addr, &q))
        };
        let replies = [
            ("engine", via_engine(&r, &q, Transport::Udp)),
            ("udp", udp.await.expect("udp")),
            ("tcp", tcp.await.expect("tcp")),
        ];
        for (how, bytes) in replies {
            let m = Message::from_vec(&bytes).expect("decodes");
            assert_eq!(m.metadata.response_code, *rcode, "{how} {name}: rcode");
            assert_eq!(owned(&m), *want, "{how} {name}: answers");
            let soas = m
                .authorities
                .iter()
                .filter(|a| a.record_type() == RecordType::SOA)
                .count();
            assert_eq!(soas, usize::from(*soa), "{how} {name}: SOA");
            assert!(m.metadata.authoritative, "{how} {name}: AA");
            assert!(m.answers.iter().all(|a| a.ttl == 7), "{how} {name}: TTL");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apex_ns_target_resolves_and_comes_as_glue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = server(dir.path()).await;
    let q = query("cluster.alpha.", RecordType::NS, Some(1232));
    let m = Message::from_vec(&via_engine(&r, &q, Transport::Udp)).expect("decodes");
    assert_eq!(render(&m), ["NS ns.dns.cluster.alpha."]);
    let mut glue: Vec<String> = m
        .additionals
        .iter()
        .map(|a| format!("{} {} {}", a.name, a.record_type(), a.data))
        .collect();
    glue.sort();
    assert_eq!(
        glue,
        [
            "ns.dns.cluster.alpha. A 10.0.0.53",
            "ns.dns.cluster.alpha. AAAA fd00::53"
        ]
    );
}
