//! Query cost of clusterset answers against per-cluster answers, same run:
//! three clusters of 1,000 ClusterIP Services each, every Service in all
//! three, answered by the engine alone (no sockets).
//!
//!     cargo bench --bench clusterset -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use crossdns::answer::{Engine, Transport};
use crossdns::config::Settings;
use crossdns::index::{
    Change, ClusterHandle, ClusterSpec, ClusterStore, Endpoint, EndpointSlice, ObjKey, Object,
    Port, Protocol, Service, ServiceKind,
};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

const SERVICES: u32 = 1_000;

fn cluster(settings: &Settings, i: usize, policy: &str) -> Arc<ClusterHandle> {
    let cs = settings.clusterset.as_ref().map(|c| c.zone.clone());
    let spec = ClusterSpec::from_settings(&settings.clusters[i], 5).with_clusterset(cs);
    let handle = Arc::new(ClusterHandle::new(spec));
    let mut store = ClusterStore::new(Arc::clone(&handle.spec));
    let n = i as u32 + 1;
    for s in 0..SERVICES {
        let vip: IpAddr = format!("10.{n}.{}.{}", s / 250, s % 250 + 1)
            .parse()
            .expect("ip");
        let annotations = [("crossdns.io/policy".into(), policy.into())].into();
        store.apply(Change::Apply(Object::Service(Service {
            key: ObjKey::new("shop", format!("web-{s}")),
            kind: ServiceKind::ClusterIp([vip].into()),
            ports: [Port {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
            }]
            .into(),
            publish_not_ready: false,
            lb_ingress: Box::default(),
            annotations,
        })));
        let ep: IpAddr = format!("10.{}.{}.{}", 100 + n, s / 250, s % 250 + 1)
            .parse()
            .expect("ip");
        store.apply(Change::Apply(Object::EndpointSlice(EndpointSlice {
            key: ObjKey::new("shop", format!("web-{s}-x")),
            service: ObjKey::new("shop", format!("web-{s}")),
            ports: Box::default(),
            endpoints: [Endpoint {
                address: ep,
                ready: true,
                name_is_pod: false,
                name: None,
            }]
            .into(),
            more_addresses: Box::default(),
        })));
    }
    handle.publish(store.publish(1));
    handle
}

fn query(name: &str) -> Vec<u8> {
    let mut m = Message::new(1, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    m.set_edns(Edns::new());
    m.to_vec().expect("encode")
}

fn engine(policy: &str) -> Engine {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/region1");
    let yaml = format!(
        "dns: {{listen: [\"127.0.0.1:0\"]}}\nclusters:\n\
         - {{name: region1, zone: cluster.region1, manifests: {dir}}}\n\
         - {{name: region2, zone: cluster.region2, manifests: {dir}}}\n\
         - {{name: region3, zone: cluster.region3, manifests: {dir}}}\n\
         clusterset: {{zone: clusterset.local, local: region1}}\n"
    );
    let settings = Settings::from_yaml(&yaml, std::path::Path::new("bench.yaml")).expect("config");
    let clusters: Vec<_> = (0..3).map(|i| cluster(&settings, i, policy)).collect();
    Engine::new(
        &settings,
        &crossdns::zones::ZoneTable::new(&settings),
        &clusters,
    )
}

fn bench(c: &mut Criterion) {
    let client: IpAddr = "127.0.0.1".parse().expect("ip");
    let mut out = Vec::with_capacity(4096);
    let mut g = c.benchmark_group("respond");
    for (policy, label) in [
        ("local-first", "clusterset_local_first"),
        ("round-robin", "clusterset_round_robin"),
        ("weighted", "clusterset_weighted"),
    ] {
        let e = engine(policy);
        let cs = query("web-500.shop.svc.clusterset.local.");
        let own = query("web-500.shop.svc.cluster.region1.");
        // The answers must be right, or the figures mean nothing.
        for (q, n) in [
            (&cs, if policy == "round-robin" { 3 } else { 1 }),
            (&own, 1),
        ] {
            e.respond(q, client, Transport::Udp, &mut out)
                .expect("reply");
            let m = Message::from_vec(&out).expect("decodes");
            assert_eq!(m.answers.len(), n, "{policy}");
        }
        if policy == "local-first" {
            g.bench_function("per_cluster_a", |b| {
                b.iter(|| e.respond(black_box(&own), client, Transport::Udp, &mut out))
            });
        }
        g.bench_function(label, |b| {
            b.iter(|| e.respond(black_box(&cs), client, Transport::Udp, &mut out))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
