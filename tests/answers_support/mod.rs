//! The data and plumbing of the answer tables: the clusters' manifests, an
//! in-process server over them, and one query three ways (the engine, a live
//! UDP socket, a live TCP connection). Used by `answers.rs` and
//! `answers_more.rs`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use crossdns::answer::Transport;
use crossdns::app::{Running, start};
use crossdns::config::Settings;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

pub const ALPHA: &str = r#"
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
metadata: {name: alias, namespace: shop}
spec: {type: ExternalName, externalName: web.shop.svc.cluster.alpha}
---
apiVersion: v1
kind: Service
metadata: {name: cross, namespace: shop}
spec: {type: ExternalName, externalName: peers-abc.peers.default.svc.cluster.beta}
---
apiVersion: v1
kind: Service
metadata: {name: dangling, namespace: shop}
spec: {type: ExternalName, externalName: gone.shop.svc.cluster.alpha}
---
apiVersion: v1
kind: Service
metadata: {name: v6n, namespace: shop}
spec:
  clusterIP: None
  ports: [{name: p, port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v6n-x, namespace: shop, labels: {kubernetes.io/service-name: v6n}}
addressType: IPv6
ports: [{name: p, port: 80, protocol: TCP}]
endpoints:
  - {addresses: ["2001:db8::"], conditions: {ready: true}}
  - {addresses: ["::1"], conditions: {ready: true}}
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

pub const BETA: &str = r#"
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

pub fn crdb(ns: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: cockroachdb, namespace: {ns}}}\nspec: {{clusterIP: None}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: c1, namespace: {ns}, labels: {{kubernetes.io/service-name: cockroachdb}}}}\n\
         addressType: IPv4\nendpoints:\n  - {{addresses: [{ip}], hostname: cockroachdb-0}}\n"
    )
}

/// 100 ready endpoints: 1,600 bytes of A records, more than any UDP limit.
pub fn big() -> String {
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

pub fn write(dir: &Path, sub: &str, files: &[(&str, String)]) -> String {
    let d = dir.join(sub);
    std::fs::create_dir_all(&d).expect("mkdir");
    for (name, text) in files {
        std::fs::write(d.join(name), text).expect("write manifest");
    }
    d.display().to_string()
}

pub async fn server(dir: &Path) -> Running {
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
        "dns: {{listen: [\"127.0.0.1:0\"], ttl: 7, advertise: [10.0.0.53, \"fd00::53\"]}}\nallow: [127.0.0.0/8]\nclusters:\n\
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

pub fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
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

pub fn via_engine(r: &Running, q: &[u8], transport: Transport) -> Vec<u8> {
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

pub fn via_udp(addr: SocketAddr, q: &[u8]) -> Vec<u8> {
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

pub fn via_tcp(addr: SocketAddr, q: &[u8]) -> Vec<u8> {
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

pub fn render(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .map(|r| {
            let s = format!("{} {}", r.record_type(), r.data);
            if r.record_type() == RecordType::SOA {
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
