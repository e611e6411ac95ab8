//! Shared by the propagation benches (`propagation`, `propagation_xfr`):
//! their start (a runtime and a loaded test apiserver with a kubeconfig),
//! the objects it is loaded with, one A query over UDP, and percentiles.
#![allow(dead_code)]

use std::net::{Ipv4Addr, UdpSocket};

use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use serde_json::{Value, json};

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn service(ns: &str, name: &str, headless: bool, i: u32) -> Value {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i).to_string();
    let cluster_ip = if headless {
        "None".to_owned()
    } else {
        ip.clone()
    };
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": cluster_ip,
                 "clusterIPs": if headless { json!(null) } else { json!([ip]) },
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    })
}

pub fn slice(ns: &str, svc: &str, ips: &[Ipv4Addr], hostnames: bool) -> Value {
    let endpoints: Vec<Value> = ips
        .iter()
        .enumerate()
        .map(|(j, ip)| {
            let mut ep = json!({
                "addresses": [ip.to_string()],
                "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": format!("{svc}-{j}"), "namespace": ns}
            });
            if hostnames {
                ep["hostname"] = json!(format!("{svc}-{j}"));
            }
            ep
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{svc}-abcde"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}

/// What both benches start from.
pub struct Bench {
    pub rt: tokio::runtime::Runtime,
    pub api: fake_apiserver::FakeApiServer,
    /// Holds the kubeconfig and whatever else a bench writes.
    pub dir: tempfile::TempDir,
    /// The test apiserver's kubeconfig, context `ctx`.
    pub kubeconfig: std::path::PathBuf,
}

/// A runtime and a test apiserver `load`ed with `background` Services.
pub fn start(background: u32) -> anyhow::Result<Bench> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (api, dir, kubeconfig) = {
        let _guard = rt.enter();
        let api = rt.block_on(fake_apiserver::FakeApiServer::start())?;
        load(&api, background)?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, "ctx")?;
        (api, dir, kubeconfig)
    };
    Ok(Bench {
        rt,
        api,
        dir,
        kubeconfig,
    })
}

/// `background` ClusterIP Services of 10 endpoints each, then the headless
/// Service `db.bench` whose host `db-0` has 10.200.0.0.
pub fn load(api: &fake_apiserver::FakeApiServer, background: u32) -> anyhow::Result<()> {
    for i in 0..background {
        let ns = format!("ns-{}", i % 20);
        let name = format!("svc-{i}");
        api.apply(service(&ns, &name, false, i + 1))?;
        let ips: Vec<Ipv4Addr> = (0..10)
            .map(|j| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i * 10 + j))
            .collect();
        api.apply(slice(&ns, &name, &ips, false))?;
    }
    api.apply(service("bench", "db", true, 0))?;
    api.apply(slice("bench", "db", &[db_ip(0)], true))?;
    Ok(())
}

/// The address `db-0` gets at iteration `k` (0: the initial one).
pub fn db_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + k as u32)
}

/// One A query; the IPv4 answers, or None on timeout / parse failure.
pub fn ask(sock: &UdpSocket, query: &mut [u8], id: u16) -> Option<Vec<Ipv4Addr>> {
    query[0..2].copy_from_slice(&id.to_be_bytes());
    sock.send(query).ok()?;
    let mut buf = [0u8; 2048];
    loop {
        let n = sock.recv(&mut buf).ok()?;
        let msg = Message::from_vec(&buf[..n]).ok()?;
        if msg.metadata.id != id {
            continue; // a late answer to an earlier poll
        }
        return Some(
            msg.answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect(),
        );
    }
}

/// The `p` quantile of sorted samples (nearest rank).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
