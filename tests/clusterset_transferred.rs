//! The clusterset over a transferred zone (design.md §7, issue 9 §3), in
//! process: one engine watches region1 and region2 from manifests; the
//! other watches region1 but has region2 as a `primary:` cluster, its
//! snapshot built from the records region2's primary would transfer
//! (metadata included). For every `service_address` mode, a deterministic
//! and a rotating policy, and either cluster local, every clusterset name and every
//! region2 name must answer alike: health (ready endpoints), annotations
//! (`crossdns.io/policy`, `failover-order`, `export`), SRV targets and
//! their addresses, reverse names.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use crossdns::answer::{Engine, Transport};
use crossdns::config::Settings;
use crossdns::dnsname::WireName;
use crossdns::index::records::snapshot_records;
use crossdns::index::{
    Change, ClusterHandle, ClusterSpec, ClusterStore, Snapshot, TransferredZone, meta,
};
use crossdns::zones::ZoneTable;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable as _, BinDecoder};

/// What region2 adds to the demo: a Service failing over region2 first, one
/// opted out, one with no ready endpoint, and a dual-stack headless one.
const REGION2_EXTRA: &str = r#"
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop, annotations: {crossdns.io/policy: failover, crossdns.io/failover-order: "region2,region1"}}
    spec: {clusterIP: 10.102.0.30, clusterIPs: [10.102.0.30], ports: [{name: http, port: 80, protocol: TCP}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: ingress, namespace: shop, annotations: {crossdns.io/export: "false"}}
    spec: {type: LoadBalancer, clusterIP: 10.102.0.40, clusterIPs: [10.102.0.40], ports: [{name: https, port: 443, protocol: TCP}]}
    status: {loadBalancer: {ingress: [{ip: 192.0.2.20}]}}
  - apiVersion: v1
    kind: Service
    metadata: {name: cache, namespace: shop}
    spec: {clusterIP: None, ports: [{name: redis, port: 6379, protocol: TCP}]}
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: cache-k2, namespace: shop, labels: {kubernetes.io/service-name: cache}}
    addressType: IPv4
    ports: [{name: redis, port: 6379, protocol: TCP}]
    endpoints:
      - {addresses: ["10.2.2.7"], conditions: {ready: false}}
  - apiVersion: v1
    kind: Service
    metadata: {name: dual, namespace: shop}
    spec: {clusterIP: None, ports: [{name: tcp, port: 7000, protocol: TCP}]}
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: dual-6, namespace: shop, labels: {kubernetes.io/service-name: dual}}
    addressType: IPv6
    ports: [{name: tcp, port: 7000, protocol: TCP}]
    endpoints:
      - {addresses: ["fd00:2::7"], hostname: d-0, conditions: {ready: true}}
      - {addresses: ["fd00:2::8"], conditions: {ready: true}}
"#;

fn settings(dir: &Path, region2: &str, mode: &str, (policy, local): (&str, &str)) -> Settings {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/region1");
    let yaml = format!(
        "clusters:\n\
         \x20 - {{name: region1, zone: cluster.region1, manifests: {demo}}}\n\
         \x20 - {{name: region2, zone: cluster.region2, service_address: {mode}, {region2}}}\n\
         clusterset: {{zone: clusterset.local, local: {local}, policy: {policy}}}\n\
         transfer: {{allow: [127.0.0.1]}}\n"
    );
    Settings::from_yaml(&yaml, &dir.join("c.yaml")).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn watched(spec: ClusterSpec, dirs: &[&Path]) -> Arc<Snapshot> {
    let mut store = ClusterStore::new(Arc::new(spec));
    for dir in dirs {
        for entry in std::fs::read_dir(dir).expect("read manifests") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
            for obj in crossdns::watch::parse_documents(&text)
                .expect("parse")
                .objects
            {
                store.apply(Change::Apply(obj));
            }
        }
    }
    store.publish(1)
}

/// The records a transfer of `snap` carries.
fn transferred_records(spec: &ClusterSpec, snap: &Snapshot) -> Vec<Record> {
    let marker = meta::namespace_marker(spec.ttl);
    let mut out = Vec::new();
    snapshot_records(spec, snap, Some(&marker), &mut |owner, set| {
        // Answer records are owned by a pointer to offset 12: put them
        // behind a 12-byte header and the owner, and decode them there.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&owner.to_wire_fqdn());
        let start = msg.len();
        msg.extend_from_slice(set.answer());
        let mut d = BinDecoder::new(&msg);
        d.read_slice(start).expect("skip");
        for _ in 0..set.count {
            out.push(Record::read(&mut d).expect("record"));
        }
    });
    out
}

/// (rcode, answer and additional records, sorted) of `name` `qtype`.
fn ask(engine: &Engine, name: &str, qtype: RecordType) -> (String, Vec<String>) {
    let mut q = Message::new(1, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    let mut out = Vec::new();
    engine
        .respond(
            &q.to_vec().expect("encode"),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Transport::Tcp,
            &mut out,
        )
        .expect("an answer");
    let m = Message::from_vec(&out).expect("parse");
    let mut records: Vec<String> = m
        .answers
        .iter()
        .chain(&m.additionals)
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.name.to_lowercase(),
                r.ttl,
                r.record_type(),
                r.data
            )
        })
        .collect();
    records.sort();
    (m.metadata.response_code.to_string(), records)
}

/// Every name and type to compare: region2's owners, clusterset names of
/// every Service of both, their hosts, and reverse names.
fn table(spec2: &ClusterSpec, snap1: &Snapshot, snap2: &Snapshot) -> Vec<(String, RecordType)> {
    let mut names = Vec::new();
    let mut ips = Vec::new();
    snapshot_records(
        spec2,
        snap2,
        Some(&meta::namespace_marker(5)),
        &mut |owner, _| {
            names.push(format!("{owner}."));
        },
    );
    for (cluster, snap) in [("region1", snap1), ("region2", snap2)] {
        for (key, svc) in snap.services.iter() {
            let zone = WireName::parse("clusterset.local").expect("zone");
            let fqdn = crossdns::grammar::service_name_of_key(&zone, key).expect("name");
            names.push(format!("{fqdn}."));
            for (srv, _) in svc.srv.iter() {
                let srv = WireName::prefixed(srv, &fqdn).expect("srv");
                names.push(format!("{srv}."));
            }
            for host in svc.hosts.keys() {
                names.push(format!(
                    "{}.{cluster}.{fqdn}.",
                    String::from_utf8_lossy(host)
                ));
            }
        }
        ips.extend(snap.ptr.iter().map(|(ip, _)| *ip));
    }
    names.push("nope.shop.svc.clusterset.local.".into());
    names.push("shop.svc.clusterset.local.".into());
    names.sort();
    names.dedup();
    let mut rows: Vec<(String, RecordType)> = names
        .into_iter()
        .flat_map(|n| {
            [
                RecordType::A,
                RecordType::AAAA,
                RecordType::SRV,
                RecordType::TXT,
                RecordType::CNAME,
            ]
            .map(|t| (n.clone(), t))
        })
        .collect();
    for ip in ips {
        let rev = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
            }
            IpAddr::V6(v6) => {
                let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
                let mut nibbles: Vec<String> = hex.chars().map(String::from).collect();
                nibbles.reverse();
                format!("{}.ip6.arpa.", nibbles.join("."))
            }
        };
        rows.push((rev, RecordType::PTR));
    }
    rows
}

#[test]
fn a_transferred_cluster_answers_in_the_clusterset_as_the_watched_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let region2 = dir.path().join("region2");
    std::fs::create_dir(&region2).expect("mkdir");
    let demo2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/region2");
    std::fs::write(region2.join("extra.yaml"), REGION2_EXTRA).expect("write");
    let mut rows = 0;
    for mode in ["cluster-ip", "endpoints", "load-balancer"] {
        // Annotations count from the local cluster's Service: with region2
        // local, the transferred metadata's policy decides.
        for policy in [
            ("local-first", "region1"),
            ("round-robin", "region2"),
            ("local-first", "region2"),
        ] {
            let manifests = format!("manifests: {}", region2.display());
            let a = settings(dir.path(), &manifests, mode, policy);
            let b = settings(
                dir.path(),
                "primary: {servers: [\"127.0.0.1:9\"]}",
                mode,
                policy,
            );
            let specs_a = ClusterSpec::all(&a);
            let specs_b = ClusterSpec::all(&b);
            let demo1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/region1");
            let snap1 = watched(specs_a[0].clone(), &[&demo1]);
            let snap2 = watched(specs_a[1].clone(), &[&demo2, &region2]);
            // The engine that watches both.
            let handles_a: Vec<Arc<ClusterHandle>> = specs_a
                .iter()
                .zip([&snap1, &snap2])
                .map(|(s, snap)| {
                    let h = Arc::new(ClusterHandle::new(s.clone()));
                    h.publish(Arc::clone(snap));
                    h
                })
                .collect();
            // The engine that has region2 from its primary's records.
            let mut zone = TransferredZone::new(Arc::new(specs_b[1].clone()));
            assert!(
                zone.replace(transferred_records(&specs_a[1], &snap2))
                    .is_empty()
            );
            let h1 = Arc::new(ClusterHandle::new(specs_b[0].clone()));
            h1.publish(Arc::clone(&snap1));
            let h2 = Arc::new(ClusterHandle::new(specs_b[1].clone()));
            h2.publish_at(zone.publish(1), Some(77));
            let engine_a = Engine::new(&a, &ZoneTable::new(&a), &handles_a);
            let engine_b = Engine::new(&b, &ZoneTable::new(&b), &[h1, h2]);
            for (name, qtype) in table(&specs_a[1], &snap1, &snap2) {
                let (want, got) = (ask(&engine_a, &name, qtype), ask(&engine_b, &name, qtype));
                // TTLs too: the zone's as transferred, the clusterset's own.
                assert_eq!(got, want, "{mode} {policy:?}: {name} {qtype}");
                rows += 1;
            }
        }
    }
    assert!(rows > 1000, "{rows} rows compared");
    eprintln!("{rows} (name, type) rows answered alike");
}
