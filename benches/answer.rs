//! In-memory benchmarks of the answer engine and the index writer, no sockets.
//!
//! Data: one cluster, zone `cluster.bench`, 10,000 Services in 100 namespaces
//! (9,000 ClusterIP with one 10-endpoint slice each, 1,000 headless with 10
//! hostname endpoints each) = 100,000 endpoints.
//!
//!     CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench answer -- \
//!         --warm-up-time 1 --measurement-time 3
//!
//! Groups: `respond/*` (one query → response bytes), `publish/one_change`
//! (apply one changed EndpointSlice + publish), `build/full` (everything
//! from an empty store + publish).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crossdns::answer::{Engine, Transport};
use crossdns::config::Settings;
use crossdns::index::{
    Change, ClusterHandle, ClusterSpec, ClusterStore, Endpoint, EndpointSlice, ObjKey, Object,
    Port, Protocol, Service, ServiceKind,
};

const SERVICES: u32 = 10_000;
const HEADLESS_EVERY: u32 = 10; // every 10th service is headless → 1,000
const ENDPOINTS: u32 = 10;
const NAMESPACES: u32 = 100;
const ZONE: &str = "cluster.bench";

fn ns_of(i: u32) -> String {
    format!("ns-{}", i % NAMESPACES)
}
fn svc_name(i: u32) -> String {
    format!("svc-{i}")
}
fn is_headless(i: u32) -> bool {
    i.is_multiple_of(HEADLESS_EVERY)
}
fn vip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i))
}
fn ep_ip(i: u32, j: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i * ENDPOINTS + j,
    ))
}
fn http_port() -> Port {
    Port {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
    }
}

fn service(i: u32) -> Service {
    Service {
        key: ObjKey::new(ns_of(i), svc_name(i)),
        kind: if is_headless(i) {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp([vip(i)].into())
        },
        ports: [http_port()].into(),
        publish_not_ready: false,
        lb_ingress: Box::default(),
        annotations: Box::default(),
    }
}

/// The slice of service `i`; `bump` changes the first endpoint's address.
fn slice(i: u32, bump: u32) -> EndpointSlice {
    let endpoints = (0..ENDPOINTS)
        .map(|j| {
            let mut ip = ep_ip(i, j);
            if j == 0 && bump != 0 {
                ip = IpAddr::V4(Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(10, 200, 0, 0)) + bump,
                ));
            }
            // Headless endpoints carry a hostname, the others their Pod.
            Endpoint {
                address: ip,
                ready: true,
                name_is_pod: !is_headless(i),
                name: Some(if is_headless(i) {
                    format!("pod-{j}").into()
                } else {
                    format!("{}-{j}", svc_name(i)).into()
                }),
            }
        })
        .collect();
    EndpointSlice {
        key: ObjKey::new(ns_of(i), format!("{}-abcde", svc_name(i))),
        service: ObjKey::new(ns_of(i), svc_name(i)),
        ports: [http_port()].into(),
        endpoints,
        more_addresses: Box::default(),
    }
}

fn settings() -> Settings {
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/region1");
    let yaml = format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\nallow: [\"127.0.0.0/8\"]\nclusters:\n  - name: bench\n    zone: {ZONE}\n    manifests: {manifests}\n"
    );
    Settings::from_yaml(&yaml, Path::new("bench.yaml")).expect("bench settings")
}

fn spec(settings: &Settings) -> ClusterSpec {
    ClusterSpec::from_settings(&settings.clusters[0], settings.dns.ttl)
}

fn fill(store: &mut ClusterStore) {
    for i in 0..SERVICES {
        store.apply(Change::Apply(Object::Service(service(i))));
        store.apply(Change::Apply(Object::EndpointSlice(slice(i, 0))));
    }
}

/// VmRSS of this process in KiB (0 when /proc is unavailable).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_str(name).expect("name"), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m.to_vec().expect("encode query")
}

struct Case {
    id: &'static str,
    bytes: Vec<u8>,
    rcode: ResponseCode,
    answers: usize,
}

fn cases() -> Vec<Case> {
    let cip = 1; // ClusterIP service (1 % 10 != 0)
    let hl = 10; // headless
    let v = match vip(cip) {
        IpAddr::V4(v) => v.octets(),
        IpAddr::V6(_) => unreachable!(),
    };
    let ptr = format!("{}.{}.{}.{}.in-addr.arpa.", v[3], v[2], v[1], v[0]);
    vec![
        Case {
            id: "existing_clusterip_a",
            bytes: query(
                &format!("{}.{}.svc.{ZONE}.", svc_name(cip), ns_of(cip)),
                RecordType::A,
            ),
            rcode: ResponseCode::NoError,
            answers: 1,
        },
        Case {
            id: "headless_host_a",
            bytes: query(
                &format!("pod-3.{}.{}.svc.{ZONE}.", svc_name(hl), ns_of(hl)),
                RecordType::A,
            ),
            rcode: ResponseCode::NoError,
            answers: 1,
        },
        Case {
            id: "srv",
            bytes: query(
                &format!("_http._tcp.{}.{}.svc.{ZONE}.", svc_name(hl), ns_of(hl)),
                RecordType::SRV,
            ),
            rcode: ResponseCode::NoError,
            answers: ENDPOINTS as usize,
        },
        Case {
            id: "missing_name_nxdomain",
            bytes: query(
                &format!(
                    "{s}.{n}.svc.{ZONE}.{n}.svc.{ZONE}.",
                    s = svc_name(cip),
                    n = ns_of(cip)
                ),
                RecordType::A,
            ),
            rcode: ResponseCode::NXDomain,
            answers: 0,
        },
        Case {
            id: "ptr",
            bytes: query(&ptr, RecordType::PTR),
            rcode: ResponseCode::NoError,
            answers: 1,
        },
    ]
}

fn bench_all(c: &mut Criterion) {
    let settings = settings();
    let spec = spec(&settings);

    let rss_before = rss_kb();
    let mut store = ClusterStore::new(Arc::new(spec.clone()));
    fill(&mut store);
    let rss_store = rss_kb();
    let snap = store.publish(1);
    let rss_snap = rss_kb();
    assert_eq!(snap.services.len(), SERVICES as usize);
    eprintln!(
        "index memory (VmRSS deltas): store objects {} KiB, + first snapshot {} KiB",
        rss_store.saturating_sub(rss_before),
        rss_snap.saturating_sub(rss_store)
    );
    let handle = Arc::new(ClusterHandle::new(spec.clone()));
    handle.publish(snap);
    let zones = crossdns::zones::ZoneTable::new(&settings);
    let engine = Engine::new(&settings, &zones, &[Arc::clone(&handle)]);
    let client: IpAddr = "127.0.0.1".parse().expect("ip");

    // ---- respond/*: check each case once, outside the timed loop.
    let cases = cases();
    let mut out = Vec::with_capacity(4096);
    for case in &cases {
        out.clear();
        engine
            .respond(&case.bytes, client, Transport::Udp, &mut out)
            .unwrap_or_else(|| panic!("{}: no response", case.id));
        let msg = Message::from_vec(&out).unwrap_or_else(|e| panic!("{}: {e}", case.id));
        assert_eq!(msg.metadata.response_code, case.rcode, "{}: rcode", case.id);
        assert_eq!(msg.answers.len(), case.answers, "{}: answers", case.id);
        assert!(!msg.metadata.truncation, "{}: truncated", case.id);
    }
    {
        let mut g = c.benchmark_group("respond");
        for case in &cases {
            g.bench_function(case.id, |b| {
                b.iter(|| {
                    out.clear();
                    black_box(engine.respond(
                        black_box(&case.bytes),
                        client,
                        Transport::Udp,
                        &mut out,
                    ))
                })
            });
        }
        g.finish();
    }

    // ---- publish/one_change: one slice with one IP changed, then publish.
    {
        let mut g = c.benchmark_group("publish");
        let mut n: u64 = 1;
        let target = 4321; // a ClusterIP service
        let target_hl = 4320; // a headless service
        g.bench_function("one_change", |b| {
            b.iter(|| {
                n += 1;
                store.apply(Change::Apply(Object::EndpointSlice(slice(
                    target,
                    (n % 50_000) as u32 + 1,
                ))));
                black_box(store.publish(n))
            })
        });
        g.bench_function("one_change_headless", |b| {
            b.iter(|| {
                n += 1;
                store.apply(Change::Apply(Object::EndpointSlice(slice(
                    target_hl,
                    (n % 50_000) as u32 + 1,
                ))));
                black_box(store.publish(n))
            })
        });
        g.finish();
    }
    // ---- build/full: everything from an empty store, then publish.
    {
        let mut g = c.benchmark_group("build");
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(20));
        g.bench_function("full", |b| {
            b.iter_batched(
                || {
                    let objs: Vec<Change> = (0..SERVICES)
                        .flat_map(|i| {
                            [
                                Change::Apply(Object::Service(service(i))),
                                Change::Apply(Object::EndpointSlice(slice(i, 0))),
                            ]
                        })
                        .collect();
                    objs
                },
                |changes| {
                    let mut store = ClusterStore::new(Arc::new(spec.clone()));
                    for ch in changes {
                        store.apply(ch);
                    }
                    let snap = store.publish(1);
                    (store, snap)
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();
    }
    drop(engine);
}

criterion_group!(benches, bench_all);
criterion_main!(benches);
