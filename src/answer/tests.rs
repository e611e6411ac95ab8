//! The engine alone, no sockets: following CNAMEs into the zones crossdns
//! serves (RFC 1034 §4.3.2 step 3a), the owner pointers of the records it
//! adds, the loop guard, and the zones it must not enter.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::{Engine, Transport};
use crate::config::Settings;
use crate::index::{Change, ClusterHandle, ClusterSpec, ClusterStore};
use crate::zones::ZoneTable;

const ALPHA: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10, "fd00::10"]}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: shop}
spec: {type: ExternalName, externalName: web.shop.svc.cluster.alpha}
---
apiVersion: v1
kind: Service
metadata: {name: hop, namespace: shop}
spec: {type: ExternalName, externalName: alias.shop.svc.cluster.alpha}
---
apiVersion: v1
kind: Service
metadata: {name: far, namespace: shop}
spec: {type: ExternalName, externalName: db-0.db.data.svc.cluster.beta}
---
apiVersion: v1
kind: Service
metadata: {name: merged, namespace: shop}
spec: {type: ExternalName, externalName: db.data.svc.clusterset.local}
---
apiVersion: v1
kind: Service
metadata: {name: loop-a, namespace: shop}
spec: {type: ExternalName, externalName: loop-b.shop.svc.cluster.alpha}
---
apiVersion: v1
kind: Service
metadata: {name: loop-b, namespace: shop}
spec: {type: ExternalName, externalName: loop-a.shop.svc.cluster.alpha}
---
apiVersion: v1
kind: Service
metadata: {name: dangling, namespace: shop}
spec: {type: ExternalName, externalName: gone.shop.svc.cluster.alpha}
---
apiVersion: v1
kind: Service
metadata: {name: stub, namespace: shop}
spec: {type: ExternalName, externalName: x.cluster.far}
---
apiVersion: v1
kind: Service
metadata: {name: outside, namespace: shop}
spec: {type: ExternalName, externalName: db.example.com}
"#;

const BETA: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: data, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
endpoints:
  - {addresses: [10.2.0.7], hostname: db-0, conditions: {ready: true}}
"#;

struct Fixture {
    engine: Engine,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("m")).expect("mkdir");
    let yaml = "dns: {ttl: 7}\n\
        clusters:\n\
        - {name: alpha, zone: cluster.alpha, manifests: m}\n\
        - {name: beta, zone: cluster.beta, manifests: m}\n\
        clusterset: {zone: clusterset.local}\n\
        forward: [{zone: cluster.far, upstreams: ['127.0.0.1:9']}]\n";
    let settings = Settings::from_yaml(yaml, &dir.path().join("c.yaml")).expect("valid");
    let clusters: Vec<Arc<ClusterHandle>> = ClusterSpec::all(&settings)
        .into_iter()
        .zip([ALPHA, BETA])
        .map(|(spec, text)| {
            let handle = Arc::new(ClusterHandle::new(spec.clone()));
            let mut store = ClusterStore::new(Arc::new(spec));
            let parsed = crate::watch::parse_documents(text).expect("manifests");
            assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
            store.apply(Change::ResetSource("t".into(), parsed.objects));
            handle.publish(store.publish(1));
            handle
        })
        .collect();
    let table = ZoneTable::new(&settings);
    Fixture {
        engine: Engine::new(&settings, &table, &clusters),
        _dir: dir,
    }
}

fn ask(f: &Fixture, name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(HQuery::query(Name::from_ascii(name).expect("name"), qtype));
    let mut out = Vec::new();
    let client: IpAddr = "127.0.0.1".parse().expect("ip");
    f.engine
        .respond(
            &m.to_vec().expect("encode"),
            client,
            Transport::Udp,
            &mut out,
        )
        .expect("a reply");
    Message::from_vec(&out).expect("the reply parses")
}

/// Answer records as `owner TYPE rdata`, in order.
fn answers(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

#[test]
fn an_external_name_into_the_same_zone_is_followed_by_the_targets_records() {
    let f = fixture();
    let m = ask(&f, "alias.shop.svc.cluster.alpha.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&m),
        [
            "alias.shop.svc.cluster.alpha. CNAME web.shop.svc.cluster.alpha.",
            "web.shop.svc.cluster.alpha. A 10.96.0.10",
        ]
    );
    let m = ask(&f, "alias.shop.svc.cluster.alpha.", RecordType::AAAA);
    assert_eq!(answers(&m)[1], "web.shop.svc.cluster.alpha. AAAA fd00::10");
    // Two hops.
    let m = ask(&f, "hop.shop.svc.cluster.alpha.", RecordType::A);
    assert_eq!(
        answers(&m),
        [
            "hop.shop.svc.cluster.alpha. CNAME alias.shop.svc.cluster.alpha.",
            "alias.shop.svc.cluster.alpha. CNAME web.shop.svc.cluster.alpha.",
            "web.shop.svc.cluster.alpha. A 10.96.0.10",
        ]
    );
    assert!(m.metadata.authoritative);
}

#[test]
fn an_external_name_is_followed_into_another_cluster_zone_and_the_clusterset() {
    let f = fixture();
    let m = ask(&f, "far.shop.svc.cluster.alpha.", RecordType::A);
    assert_eq!(
        answers(&m),
        [
            "far.shop.svc.cluster.alpha. CNAME db-0.db.data.svc.cluster.beta.",
            "db-0.db.data.svc.cluster.beta. A 10.2.0.7",
        ]
    );
    let m = ask(&f, "merged.shop.svc.cluster.alpha.", RecordType::A);
    assert_eq!(
        answers(&m),
        [
            "merged.shop.svc.cluster.alpha. CNAME db.data.svc.clusterset.local.",
            "db.data.svc.clusterset.local. A 10.2.0.7",
        ]
    );
}

#[test]
fn a_missing_target_gets_nxdomain_with_the_cname_and_the_targets_soa() {
    let f = fixture();
    let m = ask(&f, "dangling.shop.svc.cluster.alpha.", RecordType::A);
    // RFC 2308 §2.1: the RCODE is that of the last name in the chain.
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        answers(&m),
        ["dangling.shop.svc.cluster.alpha. CNAME gone.shop.svc.cluster.alpha."]
    );
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].name.to_ascii(), "cluster.alpha.");
    // A target with no record of the type: NODATA after the CNAME.
    let m = ask(&f, "far.shop.svc.cluster.alpha.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.authorities[0].name.to_ascii(), "cluster.beta.");
}

#[test]
fn a_cname_loop_stops_with_each_name_answered_once() {
    let f = fixture();
    let m = ask(&f, "loop-a.shop.svc.cluster.alpha.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&m),
        [
            "loop-a.shop.svc.cluster.alpha. CNAME loop-b.shop.svc.cluster.alpha.",
            "loop-b.shop.svc.cluster.alpha. CNAME loop-a.shop.svc.cluster.alpha.",
        ]
    );
}

#[test]
fn targets_outside_served_zones_and_cname_queries_are_not_followed() {
    let f = fixture();
    for name in [
        "stub.shop.svc.cluster.alpha.",
        "outside.shop.svc.cluster.alpha.",
    ] {
        let m = ask(&f, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(m.answers.len(), 1, "{name}: the CNAME alone");
        assert!(m.authorities.is_empty(), "{name}");
    }
    let m = ask(&f, "alias.shop.svc.cluster.alpha.", RecordType::CNAME);
    assert_eq!(
        answers(&m),
        ["alias.shop.svc.cluster.alpha. CNAME web.shop.svc.cluster.alpha."]
    );
}
