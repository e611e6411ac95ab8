//! A transferred zone must be what its primary is: the same records, the
//! same reverse names, the same clusterset parts. Each test builds a watched
//! cluster from manifests, renders its records as a transfer would carry
//! them, and loads them into a `TransferredZone` with the same spec.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::sets::{decode_node, decode_rrset};
use super::*;
use crate::config::{PodsMode, ServiceAddress};
use crate::index::records::snapshot_records;
use crate::index::{Change, ClusterStore, meta};
use crate::index::{Node, Rrset};

/// Beyond the demo: annotations, an opted-out Service, a load balancer with
/// only a hostname, pods for `pods: verified`, a headless Service with no
/// ready endpoint.
const EXTRA: &str = r#"
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata:
      name: api
      namespace: shop
      annotations: {crossdns.io/policy: weighted, crossdns.io/weights: "a=3,b=1", crossdns.io/failover-order: "b,a"}
    spec: {clusterIP: 10.101.0.50, clusterIPs: [10.101.0.50], ports: [{name: http, port: 80, protocol: TCP}]}
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: api-1, namespace: shop, labels: {kubernetes.io/service-name: api}}
    addressType: IPv4
    ports: [{name: http, port: 8080, protocol: TCP}]
    endpoints:
      - {addresses: ["10.1.5.1"], conditions: {ready: true}}
      - {addresses: ["10.1.5.2"], conditions: {ready: false}}
  - apiVersion: v1
    kind: Service
    metadata: {name: hidden, namespace: shop, annotations: {crossdns.io/export: "false"}}
    spec: {clusterIP: 10.101.0.51, clusterIPs: [10.101.0.51]}
  - apiVersion: v1
    kind: Service
    metadata: {name: elb, namespace: shop}
    spec: {type: LoadBalancer, clusterIP: 10.101.0.52, clusterIPs: [10.101.0.52]}
    status: {loadBalancer: {ingress: [{hostname: lb.example.com}]}}
  - apiVersion: v1
    kind: Service
    metadata: {name: idle, namespace: jobs}
    spec: {clusterIP: None, ports: [{name: http, port: 80, protocol: TCP}]}
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: idle-1, namespace: jobs, labels: {kubernetes.io/service-name: idle}}
    addressType: IPv4
    ports: [{name: http, port: 80, protocol: TCP}]
    endpoints:
      - {addresses: ["10.1.6.1"], conditions: {ready: false}}
  - apiVersion: v1
    kind: Pod
    metadata: {name: p, namespace: shop}
    status: {podIP: 10.1.1.5, podIPs: [{ip: 10.1.1.5}]}
  - apiVersion: v1
    kind: Namespace
    metadata: {name: empty}
"#;

fn spec(mode: ServiceAddress) -> Arc<ClusterSpec> {
    Arc::new(ClusterSpec {
        name: "region1".into(),
        zone: WireName::parse("cluster.region1").expect("zone"),
        ttl: 7,
        namespaces: Vec::new(),
        service_address: mode,
        pods: PodsMode::Verified,
        endpoint_pod_names: false,
        clusterset: Some(WireName::parse("clusterset.local").expect("zone")),
        transfer: true,
    })
}

fn watched(spec: &Arc<ClusterSpec>, yaml: &[&str]) -> (ClusterStore, Arc<Snapshot>) {
    let mut store = ClusterStore::new(Arc::clone(spec));
    for text in yaml {
        let parsed = crate::watch::parse_documents(text).expect("manifests parse");
        for obj in parsed.objects {
            store.apply(Change::Apply(obj));
        }
    }
    let snap = store.publish(1);
    (store, snap)
}

fn demo() -> Vec<&'static str> {
    vec![
        include_str!("../../../examples/demo/region1/shop.yaml"),
        include_str!("../../../examples/demo/region1/cockroachdb.yaml"),
        EXTRA,
    ]
}

/// The records a transfer of `snap` carries, as hickory records.
fn records_of(spec: &ClusterSpec, snap: &Snapshot) -> Vec<Record> {
    let marker = meta::namespace_marker(spec.ttl);
    let mut out = Vec::new();
    snapshot_records(spec, snap, Some(&marker), &mut |owner, set| {
        let set_data = decode_rrset(set).expect("decodes");
        for rdata in set_data.data {
            out.push(Record::from_rdata(owner.to_hickory(), set_data.ttl, rdata));
        }
    });
    out
}

/// Every (owner, RRset) of a snapshot, with the additional records, sorted.
fn rendered(spec: &ClusterSpec, snap: &Snapshot) -> Vec<(WireName, Rrset)> {
    let marker = meta::namespace_marker(spec.ttl);
    let mut out = Vec::new();
    snapshot_records(spec, snap, Some(&marker), &mut |o, s| {
        out.push((o.clone(), s.clone()))
    });
    out.sort_by(|a, b| (&a.0, a.1.rtype).cmp(&(&b.0, b.1.rtype)));
    out
}

fn clusterset_parts(snap: &Snapshot) -> BTreeMap<Vec<u8>, String> {
    snap.services
        .iter()
        .map(|(k, s)| (k.to_vec(), format!("{:?}", s.clusterset)))
        .collect()
}

fn ptrs(snap: &Snapshot) -> BTreeMap<IpAddr, Vec<WireName>> {
    snap.ptr.iter().map(|(ip, n)| (*ip, n.to_vec())).collect()
}

fn assert_same(spec: &ClusterSpec, want: &Snapshot, got: &Snapshot) {
    assert_eq!(rendered(spec, got), rendered(spec, want), "zone records");
    let (g, w) = (clusterset_parts(got), clusterset_parts(want));
    for key in g.keys().chain(w.keys()) {
        let name = String::from_utf8_lossy(key);
        assert_eq!(g.get(key), w.get(key), "clusterset records of {name}");
    }
    let (g, w) = (ptrs(got), ptrs(want));
    for ip in g.keys().chain(w.keys()) {
        assert_eq!(g.get(ip), w.get(ip), "reverse names of {ip}");
    }
    assert_eq!(got.namespaces, want.namespaces, "namespaces");
    let pods = |s: &Snapshot| -> BTreeMap<IpAddr, Vec<Box<str>>> {
        s.pod_ips.iter().map(|(ip, n)| (*ip, n.to_vec())).collect()
    };
    assert_eq!(pods(got), pods(want), "verified pods");
    let nx = |s: &Snapshot| -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = s
            .services
            .iter()
            .filter(|(_, r)| r.nxdomain)
            .map(|(k, _)| k.to_vec())
            .collect();
        v.sort();
        v
    };
    assert_eq!(nx(got), nx(want), "names that do not exist");
}

#[test]
fn a_transferred_zone_answers_and_joins_the_clusterset_as_the_watched_one_in_every_address_mode() {
    for mode in [
        ServiceAddress::ClusterIp,
        ServiceAddress::Endpoints,
        ServiceAddress::LoadBalancer,
    ] {
        let spec = spec(mode);
        let (_, want) = watched(&spec, &demo());
        let records = records_of(&spec, &want);
        assert!(records.len() > 40, "{} records", records.len());
        let mut zone = TransferredZone::new(Arc::clone(&spec));
        let skipped = zone.replace(records);
        assert!(skipped.is_empty(), "{skipped:?}");
        let got = zone.publish(1);
        assert_same(&spec, &want, &got);
        // The headless Service with no ready endpoint exists only for the
        // clusterset, unhealthy; the opted-out one has no part in it.
        let idle = got
            .services
            .get(b"\x04idle\x04jobs".as_slice())
            .expect("idle");
        assert!(idle.nxdomain && !idle.clusterset.as_ref().expect("part").ready);
        // Its metadata says it exists, even with no address to answer.
        let hidden = got
            .services
            .get(b"\x06hidden\x04shop".as_slice())
            .expect("hidden");
        assert!(!hidden.nxdomain && hidden.clusterset.is_none());
        let api = got
            .services
            .get(b"\x03api\x04shop".as_slice())
            .expect("api");
        let api = api.clusterset.as_ref().expect("exported");
        assert_eq!(
            api.weights.as_ref(),
            [("a".to_owned(), 3), ("b".to_owned(), 1)]
        );
    }
}

#[test]
fn an_incremental_change_gives_the_zone_a_full_transfer_of_the_result_would() {
    let spec = spec(ServiceAddress::Endpoints);
    let (mut store, before) = watched(&spec, &demo());
    let mut zone = TransferredZone::new(Arc::clone(&spec));
    zone.replace(records_of(&spec, &before));
    let first = zone.publish(1);
    // The primary changes: an endpoint turns ready, a Service goes, one comes.
    let change = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: idle-1, namespace: jobs, labels: {kubernetes.io/service-name: idle}}
addressType: IPv4
ports: [{name: http, port: 80, protocol: TCP}]
endpoints:
  - {addresses: ["10.1.6.1"], conditions: {ready: true}, hostname: worker}
---
apiVersion: v1
kind: Service
metadata: {name: new, namespace: fresh}
spec: {clusterIP: 10.101.0.99, clusterIPs: [10.101.0.99]}
"#;
    for obj in crate::watch::parse_documents(change)
        .expect("parse")
        .objects
    {
        store.apply(Change::Apply(obj));
    }
    store.apply(Change::Delete(
        crate::index::Kind::Service,
        crate::index::ObjKey::new("shop", "web"),
    ));
    let after = store.publish(2);
    let (old, new) = (records_of(&spec, &before), records_of(&spec, &after));
    let deleted: Vec<Record> = old.iter().filter(|r| !new.contains(r)).cloned().collect();
    let added: Vec<Record> = new.iter().filter(|r| !old.contains(r)).cloned().collect();
    assert!(!deleted.is_empty() && !added.is_empty());
    zone.apply(deleted, added);
    let got = zone.publish(2);
    assert_same(&spec, &after, &got);
    assert_eq!(zone.take_health_flips(), 1, "idle became healthy");
    // Only what the difference touched was rebuilt: the rest is shared.
    let cache = b"\x05cache\x04shop".as_slice();
    let same = |s: &Snapshot| Arc::clone(s.services.get(cache).expect("cache"));
    assert!(Arc::ptr_eq(&same(&first), &same(&got)));
}

#[test]
fn a_whole_zone_again_rebuilds_only_the_services_that_changed() {
    let spec = spec(ServiceAddress::ClusterIp);
    let (_, want) = watched(&spec, &demo());
    let mut zone = TransferredZone::new(Arc::clone(&spec));
    zone.replace(records_of(&spec, &want));
    let first = zone.publish(1);
    zone.replace(records_of(&spec, &want));
    let again = zone.publish(2);
    let changed = first.services.diff(&again.services, Arc::ptr_eq).count();
    assert_eq!(changed, 0, "an unchanged AXFR changes nothing");
}

/// A zone file as knotd or BIND serves it: no metadata.
fn plain_records() -> Vec<Record> {
    let rr = |name: &str, ttl: u32, rdata: RData| {
        Record::from_rdata(Name::from_ascii(name).expect("name"), ttl, rdata)
    };
    let a = |s: &str| RData::A(hickory_proto::rr::rdata::A(s.parse().expect("ip")));
    let srv = |port, target: &str| {
        RData::SRV(SRV::new(
            0,
            50,
            port,
            Name::from_ascii(target).expect("name"),
        ))
    };
    let z = "cluster.lab.";
    vec![
        rr(&format!("web.shop.svc.{z}"), 30, a("10.9.0.1")),
        rr(
            &format!("_http._tcp.web.shop.svc.{z}"),
            30,
            srv(80, &format!("web.shop.svc.{z}")),
        ),
        rr(&format!("db.shop.svc.{z}"), 60, a("10.9.1.1")),
        rr(&format!("db.shop.svc.{z}"), 60, a("10.9.1.2")),
        rr(&format!("db-0.db.shop.svc.{z}"), 60, a("10.9.1.1")),
        rr(&format!("db-1.db.shop.svc.{z}"), 60, a("10.9.1.2")),
        rr(
            &format!("_pg._tcp.db.shop.svc.{z}"),
            60,
            srv(5432, &format!("db-0.db.shop.svc.{z}")),
        ),
        rr(
            &format!("_pg._tcp.db.shop.svc.{z}"),
            60,
            srv(5432, &format!("db-1.db.shop.svc.{z}")),
        ),
        rr(&format!("www.{z}"), 60, a("192.0.2.1")),
        rr(&format!("*.shop.svc.{z}"), 60, a("192.0.2.2")),
        rr("x.y.other.", 60, a("192.0.2.3")),
    ]
}

use hickory_proto::rr::rdata::SRV;

#[test]
fn a_plain_zone_file_joins_the_clusterset_from_its_records_and_skips_other_names_once() {
    let spec = Arc::new(ClusterSpec {
        name: "lab".into(),
        zone: WireName::parse("cluster.lab").expect("zone"),
        ..(*spec(ServiceAddress::ClusterIp)).clone()
    });
    let mut zone = TransferredZone::new(Arc::clone(&spec));
    let mut skipped = zone.replace(plain_records());
    skipped.sort();
    assert_eq!(
        skipped,
        ["*.shop.svc.cluster.lab.", "www.cluster.lab.", "x.y.other."]
    );
    let snap = zone.publish(1);
    let web = snap.service(b"\x03web\x04shop").expect("web");
    let cs = web.clusterset.as_ref().expect("every Service exported");
    assert!(cs.ready);
    let data = |n: &Node| {
        decode_node(n)
            .values()
            .map(|s| s.data.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(data(&cs.addrs), data(&web.own));
    let db = snap.service(b"\x02db\x04shop").expect("db");
    assert_eq!(db.own.get(1).expect("A").count, 2);
    assert_eq!(
        db.own.get(1).map(|s| s.answer()[6..10].to_vec()),
        Some(60u32.to_be_bytes().to_vec()),
        "TTL as transferred"
    );
    let pg = db
        .clusterset
        .as_ref()
        .expect("db")
        .srv
        .get(b"\x03_pg\x04_tcp")
        .and_then(|n| n.get(33))
        .expect("SRV");
    let text = format!("{:?}", decode_rrset(pg).expect("srv").data);
    assert!(
        text.contains("db-0.lab.db.shop.svc.clusterset.local"),
        "{text}"
    );
    assert_eq!(pg.extra_count, 2, "target addresses");
    // Host addresses name the hosts; a Service without hosts names itself.
    let names = |ip: &str| {
        snap.ptr
            .get(&ip.parse::<IpAddr>().expect("ip"))
            .map(|n| n.to_vec())
    };
    assert_eq!(
        names("10.9.1.1"),
        Some(vec![
            WireName::parse("db-0.db.shop.svc.cluster.lab").expect("n")
        ])
    );
    assert_eq!(
        names("10.9.0.1"),
        Some(vec![
            WireName::parse("web.shop.svc.cluster.lab").expect("n")
        ])
    );
    assert!(snap.has_namespace(b"shop"));
    // Reported once: the same names again are not news.
    assert!(zone.replace(plain_records()).is_empty());
    assert_eq!(zone.skipped_names(), 3);
}

#[test]
fn the_first_metadata_in_a_plain_zone_makes_services_without_it_leave_the_clusterset() {
    let spec = Arc::new(ClusterSpec {
        name: "lab".into(),
        zone: WireName::parse("cluster.lab").expect("zone"),
        ..(*spec(ServiceAddress::ClusterIp)).clone()
    });
    let mut zone = TransferredZone::new(Arc::clone(&spec));
    zone.replace(plain_records());
    zone.publish(1);
    let txt = RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![
        "v=1".into(),
        "kind=cluster-ip".into(),
        "ready=1".into(),
        "vip=10.9.0.1".into(),
    ]));
    let meta = Record::from_rdata(
        Name::from_ascii("web._crossdns.shop.svc.cluster.lab.").expect("name"),
        30,
        txt,
    );
    zone.apply(Vec::new(), vec![meta.clone()]);
    let snap = zone.publish(2);
    assert!(
        snap.service(b"\x03web\x04shop")
            .and_then(|s| s.clusterset.as_ref())
            .is_some()
    );
    assert!(
        snap.service(b"\x02db\x04shop")
            .expect("db")
            .clusterset
            .is_none(),
        "a zone with metadata exports only what has it"
    );
    zone.apply(vec![meta], Vec::new());
    let snap = zone.publish(3);
    assert!(
        snap.service(b"\x02db\x04shop")
            .expect("db")
            .clusterset
            .is_some()
    );
}
