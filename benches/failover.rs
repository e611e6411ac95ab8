//! Failover time distributions for the clusterset (issue figures, not timed
//! tests): (a) time from a cluster's endpoints all turning unready at its
//! apiserver to the clusterset answer dropping it; (c) time from its
//! apiserver stalling to the answer dropping it (`stale_after` 2 s), and from
//! the stall ending to the answer taking it back. Each over 20 trials, with
//! three test apiservers and crossdns in-process, polled over UDP every 5 ms.
//!
//!     cargo bench --bench failover

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crossdns::config::Settings;
use fake_apiserver::{FakeApiServer, Fault};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::json;

const TRIALS: usize = 20;
const STALE_AFTER: Duration = Duration::from_secs(2);

fn slice(n: usize, ready: bool) -> serde_json::Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": "web-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
           "addressType": "IPv4", "endpoints": [{"addresses": [format!("10.{n}.1.1")], "conditions": {"ready": ready}}]})
}

/// How many clusters the clusterset answer for web holds.
fn answer_size(sock: &UdpSocket, dns: SocketAddr) -> usize {
    let mut m = Message::new(fastrand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("web.shop.svc.clusterset.local.").expect("name"),
        RecordType::A,
    ));
    m.set_edns(Edns::new());
    let bytes = m.to_vec().expect("encode");
    let mut buf = [0u8; 2048];
    for _ in 0..3 {
        let _ = sock.send_to(&bytes, dns);
        if let Ok(n) = sock.recv(&mut buf) {
            let reply = Message::from_vec(&buf[..n]).expect("decodes");
            return reply
                .answers
                .iter()
                .filter(|r| matches!(r.data, RData::A(_)))
                .count();
        }
    }
    0
}

fn fastrand_id() -> u16 {
    (Instant::now().elapsed().subsec_nanos() & 0xFFFF) as u16
}

/// Polls until the answer holds `want` clusters; the time it took.
fn until(sock: &UdpSocket, dns: SocketAddr, want: usize, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if answer_size(sock, dns) == want {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pct = |p: f64| ms(v[((v.len() as f64 - 1.0) * p).round() as usize]);
    println!(
        "{name:<44} n={:>2}  min {:>7.1} ms  p50 {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms",
        v.len(),
        ms(v[0]),
        pct(0.5),
        pct(0.9),
        ms(v[v.len() - 1])
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut servers = Vec::new();
    let mut clusters = String::new();
    for n in 1..=3 {
        let s = FakeApiServer::start().await.expect("apiserver");
        s.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
                       "spec": {"clusterIP": format!("10.10{n}.0.1")}}))
            .expect("service");
        s.apply(slice(n, true)).expect("slice");
        let kc = dir.path().join(format!("r{n}.kubeconfig"));
        s.write_kubeconfig(&kc, "ctx").expect("kubeconfig");
        clusters += &format!(
            "  - {{name: region{n}, zone: cluster.region{n}, kubeconfig: {}, context: ctx}}\n",
            kc.display()
        );
        servers.push(s);
    }
    let yaml = format!(
        "dns: {{listen: [\"127.0.0.1:0\"]}}\nallow: [127.0.0.0/8]\nclusters:\n{clusters}\
         clusterset: {{zone: clusterset.local, policy: round-robin, stale_after: {}s}}\n",
        STALE_AFTER.as_secs()
    );
    let settings = Settings::from_yaml(&yaml, &dir.path().join("c.yaml")).expect("config");
    let running = crossdns::app::start(settings).await.expect("start");
    let dns = running.dns[0];
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let sock = std::sync::Arc::new(sock);
    let probe = |want: usize, limit: Duration| {
        let sock = std::sync::Arc::clone(&sock);
        tokio::task::spawn_blocking(move || until(&sock, dns, want, limit))
    };
    probe(3, Duration::from_secs(20))
        .await
        .expect("join")
        .expect("all three clusters never answered");

    let (mut unready, mut ready) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        servers[1].apply(slice(2, false)).expect("unready");
        unready.push(
            probe(2, Duration::from_secs(5))
                .await
                .expect("join")
                .expect("region2 never left"),
        );
        servers[1].apply(slice(2, true)).expect("ready");
        ready.push(
            probe(3, Duration::from_secs(5))
                .await
                .expect("join")
                .expect("region2 never came back"),
        );
    }
    let (mut dropped, mut back) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        servers[1].set_fault(Fault::Stall);
        dropped.push(
            probe(2, Duration::from_secs(10))
                .await
                .expect("join")
                .expect("stale region2 never left"),
        );
        servers[1].set_fault(Fault::None);
        back.push(
            probe(3, Duration::from_secs(10))
                .await
                .expect("join")
                .expect("region2 never came back"),
        );
    }
    println!("clusterset failover, {TRIALS} trials each (stale_after = {STALE_AFTER:?}):");
    summary("(a) endpoints unready -> dropped", unready);
    summary("(a) endpoints ready again -> back", ready);
    summary("(c) apiserver stalled -> dropped", dropped);
    summary("(c) apiserver recovered -> back", back);
    drop(running);
}
