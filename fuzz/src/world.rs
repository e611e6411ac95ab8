//! The realistic server every target runs against, built once per process
//! with no sockets: four clusters (ClusterIP, dual-stack, headless,
//! ExternalName, LoadBalancer Services with SRV ports, StatefulSets, a
//! headless Service too big for one UDP answer, one cluster that never
//! syncs), the clusterset view over them and a forward zone.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crossdns::answer::Engine;
use crossdns::config::Settings;
use crossdns::forward::Forwarder;
use crossdns::index::{Change, ClusterHandle, ClusterSpec, ClusterStore};
use crossdns::watch::parse_documents;
use crossdns::zones::ZoneTable;

/// A client the allow list admits.
pub const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `manifests: .` only has to name a folder that exists; the objects are
/// applied below, not read from it.
const CONFIG: &str = r#"
dns:
  listen: ["127.0.0.1:0"]
  ttl: 5
allow: ["127.0.0.0/8", "::1/128"]
clusters:
  - name: region1
    zone: cluster.region1
    manifests: .
    pods: insecure
  - name: region2
    zone: cluster.region2
    manifests: .
    service_address: endpoints
    endpoint_pod_names: true
  - name: eu-west1
    zone: cluster.eu-west1
    manifests: .
    namespaces: [cockroachdb]
    service_address: load-balancer
  - name: lab
    zone: cluster.lab
    manifests: .
clusterset:
  zone: clusterset.local
  local: region1
  policy: local-first
  stale_after: 30s
  all_down: servfail
forward:
  - zone: cluster.region3
    upstreams: ["192.0.2.53:53", "192.0.2.54:53"]
    policy: round-robin
    stale_for: 1h
"#;

/// What each synced cluster holds (`lab` never publishes: SERVFAIL).
const REGION1: &[&str] = &[
    include_str!("../../examples/demo/region1/shop.yaml"),
    include_str!("../../examples/demo/region1/cockroachdb.yaml"),
    EXTRA_REGION1,
];
const REGION2: &[&str] = &[
    include_str!("../../examples/demo/region2/shop.yaml"),
    include_str!("../../examples/demo/region2/cockroachdb.yaml"),
    EXTRA_REGION2,
];
const EU_WEST1: &[&str] = &[include_str!(
    "../../examples/cockroachdb-multiregion/clusters/eu-west1/cockroachdb.yaml"
)];

/// Clusterset annotations, a named IPv6 endpoint, and a Service whose
/// clusterset merge spans both regions.
const EXTRA_REGION1: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  annotations: {crossdns.io/policy: weighted, crossdns.io/weights: "region1=3,region2=1"}
spec:
  clusterIP: None
  ports: [{name: grpc, port: 9000, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-v6, namespace: shop, labels: {kubernetes.io/service-name: api}}
addressType: IPv6
ports: [{name: grpc, port: 9000, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]
endpoints:
  - {addresses: ["fd00:1::a"], hostname: api-0, conditions: {ready: true}}
  - {addresses: ["fd00:1::b"], conditions: {ready: true}, targetRef: {kind: Pod, name: api-b, namespace: shop}}
"#;
const EXTRA_REGION2: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  annotations: {crossdns.io/failover-order: "region2,region1", crossdns.io/export: "true"}
spec:
  clusterIP: 10.102.0.50
  clusterIPs: [10.102.0.50]
  ports: [{name: grpc, port: 9000, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-x, namespace: shop, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: grpc, port: 9000, protocol: TCP}]
endpoints:
  - {addresses: ["10.2.5.1"], conditions: {ready: true}, targetRef: {kind: Pod, name: api-7f-1, namespace: shop}}
  - {addresses: ["10.2.5.2"], conditions: {ready: false}, targetRef: {kind: Pod, name: api-7f-2, namespace: shop}}
"#;

/// A headless Service with 120 hostname endpoints: its A and SRV answers
/// do not fit 512 or 1232 bytes, so truncation is on the path.
fn crowd() -> String {
    let mut y = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: crowd, namespace: shop}\n\
         spec: {clusterIP: None, ports: [{name: http, port: 80, protocol: TCP}]}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: crowd-a, namespace: shop, labels: {kubernetes.io/service-name: crowd}}\n\
         addressType: IPv4\nports: [{name: http, port: 80, protocol: TCP}]\nendpoints:\n",
    );
    for i in 0..120 {
        y.push_str(&format!(
            "  - {{addresses: [\"10.1.9.{i}\"], hostname: crowd-{i}, conditions: {{ready: true}}}}\n"
        ));
    }
    y
}

#[derive(Debug)]
pub struct World {
    pub settings: Settings,
    pub engine: Engine,
    pub forwarder: Forwarder,
    /// region1's spec (pods answered, clusterset names built).
    pub spec: Arc<ClusterSpec>,
}

/// The world, built on first use.
pub fn get() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build)
}

/// Parses this world's config (also the `config_yaml` target's first seed).
pub fn settings() -> Settings {
    Settings::from_yaml(CONFIG, Path::new("fuzz-world.yaml")).expect("the world's config is valid")
}

fn build() -> World {
    let settings = settings();
    let crowd = crowd();
    let mut region1 = REGION1.to_vec();
    region1.push(&crowd);
    let sources: [&[&str]; 3] = [&region1, REGION2, EU_WEST1];
    let specs = ClusterSpec::all(&settings);
    let spec = Arc::new(specs[0].clone());
    let mut handles = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let handle = Arc::new(ClusterHandle::new(spec.clone()));
        if let Some(files) = sources.get(i) {
            let mut store = ClusterStore::new(Arc::new(spec));
            for (n, text) in files.iter().enumerate() {
                let parsed = parse_documents(text).expect("the world's manifests parse");
                assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
                store.apply(Change::ResetSource(format!("file{n}"), parsed.objects));
            }
            handle.publish(store.publish(1));
        }
        handles.push(handle);
    }
    let zones = ZoneTable::new(&settings);
    let engine = Engine::new(&settings, &zones, &handles);
    let forwarder = Forwarder::new(&settings.forward, &zones).expect("forwarder without I/O");
    World {
        settings,
        engine,
        forwarder,
        spec,
    }
}

/// What a cluster's writer does with changes from its source: applies them
/// to a store (a fresh one, with region1's spec) and publishes a snapshot.
pub fn index(changes: Vec<Change>) {
    let mut store = ClusterStore::new(Arc::clone(&get().spec));
    for change in changes {
        store.apply(change);
    }
    let snapshot = store.publish(1);
    drop(snapshot);
}
