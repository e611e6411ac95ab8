//! The query path for cluster zones allocates nothing: every in-cluster
//! query (and every ndots:5 search-list miss) is answered by hash lookups
//! and byte copies into the listener's reused buffer. Checked by counting
//! the allocations of this thread around `Engine::respond`.
#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`

mod answers_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;

use crossdns::answer::{Engine, Transport};
use crossdns::config::Settings;
use crossdns::index::{Change, ClusterHandle, ClusterSpec, ClusterStore};
use crossdns::zones::ZoneTable;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged; the
// counter is a thread-local `Cell`, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn engine(dir: &std::path::Path) -> Engine {
    std::fs::create_dir_all(dir.join("m")).expect("mkdir");
    let yaml = "dns: {advertise: [10.0.0.53]}\n\
        clusters: [{name: c, zone: cluster.c, manifests: m, pods: insecure}]\n";
    let settings = Settings::from_yaml(yaml, &dir.join("c.yaml")).expect("valid");
    let spec = ClusterSpec::all(&settings).remove(0);
    let handle = Arc::new(ClusterHandle::new(spec.clone()));
    let mut store = ClusterStore::new(Arc::new(spec));
    let parsed = crossdns::watch::parse_documents(answers_support::ALPHA).expect("manifests");
    store.apply(Change::ResetSource("m".into(), parsed.objects));
    handle.publish(store.publish(1));
    Engine::new(&settings, &ZoneTable::new(&settings), &[handle])
}

#[test]
fn cluster_zone_answers_allocate_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let client: IpAddr = "127.0.0.1".parse().expect("ip");
    let cases = [
        (
            "web.shop.svc.cluster.c.",
            RecordType::A,
            ResponseCode::NoError,
        ),
        (
            "db.shop.svc.cluster.c.",
            RecordType::A,
            ResponseCode::NoError,
        ),
        (
            "db-1.db.shop.svc.cluster.c.",
            RecordType::A,
            ResponseCode::NoError,
        ),
        (
            "_grpc._tcp.db.shop.svc.cluster.c.",
            RecordType::SRV,
            ResponseCode::NoError,
        ),
        (
            "web.shop.svc.cluster.c.",
            RecordType::AAAA,
            ResponseCode::NoError,
        ),
        (
            "nope.shop.svc.cluster.c.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "web.shop.svc.cluster.c.svc.cluster.c.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        ("shop.svc.cluster.c.", RecordType::A, ResponseCode::NoError),
        ("pod.cluster.c.", RecordType::A, ResponseCode::NoError),
        (
            "10-0-0-9.shop.pod.cluster.c.",
            RecordType::A,
            ResponseCode::NoError,
        ),
        ("cluster.c.", RecordType::SOA, ResponseCode::NoError),
        ("ns.dns.cluster.c.", RecordType::A, ResponseCode::NoError),
        (
            "10.1.0.10.in-addr.arpa.",
            RecordType::PTR,
            ResponseCode::NoError,
        ),
    ];
    let mut out = Vec::with_capacity(4096);
    for (name, qtype, rcode) in cases {
        let packet = answers_support::query(name, qtype, Some(1232));
        // Once outside the count: the reply is right, and `out` has grown.
        engine
            .respond(&packet, client, Transport::Udp, &mut out)
            .expect("a reply");
        let m = Message::from_vec(&out).expect("parses");
        assert_eq!(m.metadata.response_code, rcode, "{name} {qtype}");
        let before = allocations();
        for _ in 0..100 {
            engine.respond(&packet, client, Transport::Udp, &mut out);
        }
        let made = allocations() - before;
        assert_eq!(made, 0, "{name} {qtype}: {made} allocations in 100 answers");
    }
}
