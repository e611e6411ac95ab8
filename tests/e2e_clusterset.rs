//! The clusterset end to end: the real binary watching three test
//! apiservers. (a) a cluster whose endpoints all turn unready leaves the
//! answer within 1 s; (b) an apiserver stall shorter than `stale_after`
//! changes nothing; (c) a longer outage drops the cluster within
//! `stale_after` + 1 s and it returns within 1 s of recovering; (d) failover
//! order and weights hold over UDP.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Crossdns, addresses, ip, query_udp, wait_for};
use fake_apiserver::{FakeApiServer, Fault};
use hickory_proto::rr::RecordType;
use serde_json::json;

const STALE_AFTER_SECS: u64 = 3;
const WEB: &str = "web.shop.svc.clusterset.local.";
const FO: &str = "fo.shop.svc.clusterset.local.";

fn service(name: &str, vip: &str, annotations: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
           "spec": {"clusterIP": vip, "clusterIPs": [vip], "ports": [{"name": "http", "port": 80}]}})
}

fn slice(service: &str, addr: &str, ready: bool) -> serde_json::Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("{service}-1"), "namespace": "shop",
                        "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4",
           "endpoints": [{"addresses": [addr], "conditions": {"ready": ready}}]})
}

/// The VIP of `svc` (1..=9) in region `n`.
fn vip(n: usize, svc: u8) -> String {
    format!("10.10{n}.0.{svc}")
}

/// Applies region `n`'s `web` Service and its one ready endpoint to `s`.
fn apply_web(s: &FakeApiServer, n: usize) {
    s.apply(service("web", &vip(n, 1), json!({}))).expect("web");
    s.apply(slice("web", &format!("10.{n}.1.1"), true))
        .expect("slice");
}

/// Writes `s`'s kubeconfig for region `n` to `dir`; returns the region's
/// entry for the config's `clusters:` list.
fn cluster_entry(s: &FakeApiServer, n: usize, dir: &Path) -> String {
    let kc = dir.join(format!("region{n}.kubeconfig"));
    s.write_kubeconfig(&kc, &format!("region{n}"))
        .expect("kubeconfig");
    format!(
        "  - {{name: region{n}, zone: cluster.region{n}, kubeconfig: {}, context: region{n}}}\n",
        kc.display()
    )
}

struct Regions {
    servers: Vec<FakeApiServer>,
    crossdns: Crossdns,
}

async fn start(dir: &Path) -> Regions {
    common::init_tls();
    let mut servers = Vec::new();
    let mut clusters = String::new();
    for n in 1..=3 {
        let s = FakeApiServer::start().await.expect("apiserver");
        s.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
            .expect("ns");
        apply_web(&s, n);
        s.apply(service(
            "fo",
            &vip(n, 2),
            json!({"crossdns.io/policy": "failover", "crossdns.io/failover-order": "region3,region2,region1"}),
        ))
        .expect("fo");
        s.apply(slice("fo", &format!("10.{n}.1.2"), true))
            .expect("slice");
        s.apply(service(
            "wt",
            &vip(n, 3),
            json!({"crossdns.io/policy": "weighted", "crossdns.io/weights": "region1=3,region2=1"}),
        ))
        .expect("wt");
        s.apply(slice("wt", &format!("10.{n}.1.3"), true))
            .expect("slice");
        clusters += &cluster_entry(&s, n, dir);
        servers.push(s);
    }
    let rest = format!(
        "allow: [127.0.0.0/8]\nclusters:\n{clusters}clusterset:\n  zone: clusterset.local\n  local: region1\n  \
         policy: round-robin\n  stale_after: {STALE_AFTER_SECS}s\n  all_down: servfail\n"
    );
    let crossdns = Crossdns::start(dir, &rest).await;
    crossdns.wait_ready(Duration::from_secs(20)).await;
    Regions { servers, crossdns }
}

/// The sorted A addresses of `name` at `dns`.
async fn a_set(dns: SocketAddr, name: &str) -> Vec<IpAddr> {
    let mut v = addresses(&query_udp(dns, name, RecordType::A).await);
    v.sort();
    v
}

/// Polls up to `within` for `name`'s A set at `dns` to become `want`;
/// returns the time, or panics saying `what` did not happen and what
/// `name` answered last.
async fn until_a(
    dns: SocketAddr,
    name: &str,
    want: &[IpAddr],
    within: Duration,
    what: &str,
) -> Duration {
    let mut last = Vec::new();
    let took = wait_for(within, async || {
        last = a_set(dns, name).await;
        last == want
    })
    .await;
    took.unwrap_or_else(|| panic!("{what} within {within:?}: {name} A is {last:?}, want {want:?}"))
}

/// The clusterset `web` answer.
async fn web(r: &Regions) -> Vec<IpAddr> {
    a_set(r.crossdns.dns, WEB).await
}

/// Polls for the clusterset `web` answer to become `want` (see `until_a`).
async fn until_web(r: &Regions, want: &[IpAddr], within: Duration, what: &str) -> Duration {
    until_a(r.crossdns.dns, WEB, want, within, what).await
}

/// The VIPs of `web` in the given regions.
fn web_vips(regions: &[usize]) -> Vec<IpAddr> {
    regions.iter().map(|&n| ip(&vip(n, 1))).collect()
}

fn all_three() -> Vec<IpAddr> {
    web_vips(&[1, 2, 3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_endpoints_all_turn_unready_leaves_the_answer_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    assert_eq!(web(&r).await, all_three());
    r.servers[1]
        .apply(slice("web", "10.2.1.1", false))
        .expect("unready");
    let took = until_web(
        &r,
        &web_vips(&[1, 3]),
        Duration::from_secs(3),
        "region2 never left the answer",
    )
    .await;
    assert!(
        took <= Duration::from_secs(1),
        "region2 left after {took:?}"
    );
    r.servers[1]
        .apply(slice("web", "10.2.1.1", true))
        .expect("ready again");
    let took = until_web(
        &r,
        &all_three(),
        Duration::from_secs(3),
        "region2 never came back",
    )
    .await;
    assert!(
        took <= Duration::from_secs(1),
        "region2 came back after {took:?}"
    );
    let transitions = r
        .crossdns
        .metric("crossdns_clusterset_service_health_transitions_total{cluster=\"region2\"}")
        .await;
    assert_eq!(transitions, Some(2.0), "down and up again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shorter_than_stale_after_changes_nothing_and_a_longer_one_drops_the_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    assert_eq!(web(&r).await, all_three());

    // (b) a blip: stalled for well under stale_after. Answers must not
    // change during it nor in the stale_after that follows (a late probe
    // failure must not backdate the stall and flip the cluster briefly).
    let transitions = "crossdns_clusterset_cluster_transitions_total{cluster=\"region2\"}";
    r.servers[1].set_fault(Fault::Stall);
    let blip = Instant::now();
    let watched = Duration::from_millis(1500 + STALE_AFTER_SECS * 1000);
    while blip.elapsed() < watched {
        if blip.elapsed() >= Duration::from_millis(1500) {
            r.servers[1].set_fault(Fault::None);
        }
        assert_eq!(
            web(&r).await,
            all_three(),
            "a short stall must not cause a failover ({:?} after it began)",
            blip.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        r.crossdns.metric(transitions).await,
        Some(0.0),
        "a short stall must not make region2 stale even briefly"
    );

    // (c) an outage longer than stale_after.
    r.servers[1].set_fault(Fault::Stall);
    let outage = Instant::now();
    until_web(
        &r,
        &web_vips(&[1, 3]),
        Duration::from_secs(STALE_AFTER_SECS + 5),
        "a stale region2 was never dropped",
    )
    .await;
    let dropped = outage.elapsed();
    assert!(
        dropped <= Duration::from_secs(STALE_AFTER_SECS + 1),
        "dropped after {dropped:?}"
    );
    assert!(
        dropped >= Duration::from_secs(STALE_AFTER_SECS) - Duration::from_millis(600),
        "dropped too early: {dropped:?}"
    );
    assert_eq!(
        r.crossdns
            .metric("crossdns_clusterset_cluster_fresh{cluster=\"region2\"}")
            .await,
        Some(0.0)
    );

    r.servers[1].set_fault(Fault::None);
    let took = until_web(
        &r,
        &all_three(),
        Duration::from_secs(5),
        "region2 never came back",
    )
    .await;
    assert!(
        took <= Duration::from_secs(1),
        "came back {took:?} after the apiserver recovered"
    );
    // The health monitor counts transitions every 100 ms.
    let counted = wait_for(Duration::from_secs(1), async || {
        r.crossdns.metric(transitions).await == Some(2.0)
    })
    .await;
    if counted.is_none() {
        let seen = r.crossdns.metric(transitions).await;
        panic!("expected stale once, fresh once; transitions = {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_that_refuses_connections_is_dropped_and_returns_when_its_watch_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    r.servers[2].pause().await;
    let outage = Instant::now();
    until_web(
        &r,
        &web_vips(&[1, 2]),
        Duration::from_secs(STALE_AFTER_SECS + 5),
        "region3 was never dropped",
    )
    .await;
    assert!(
        outage.elapsed() <= Duration::from_secs(STALE_AFTER_SECS + 1),
        "{:?}",
        outage.elapsed()
    );
    // Its own zone keeps answering from the last snapshot meanwhile.
    assert_eq!(
        a_set(r.crossdns.dns, "web.shop.svc.cluster.region3.").await,
        web_vips(&[3])
    );

    r.servers[2].resume().await.expect("resume");
    // The watch reconnects after its backoff (at most 5 s), then relists.
    let took = until_web(
        &r,
        &all_three(),
        Duration::from_secs(10),
        "region3 never came back",
    )
    .await;
    assert!(took <= Duration::from_secs(7), "came back after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_order_is_respected_and_weighted_answers_follow_the_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    let dns = r.crossdns.dns;
    assert_eq!(
        a_set(dns, FO).await,
        vec![ip(&vip(3, 2))],
        "region3 is first in crossdns.io/failover-order"
    );
    r.servers[2]
        .apply(slice("fo", "10.3.1.2", false))
        .expect("unready");
    until_a(
        dns,
        FO,
        &[ip(&vip(2, 2))],
        Duration::from_secs(3),
        "failover to region2, the next in order",
    )
    .await;
    r.servers[1]
        .apply(slice("fo", "10.2.1.2", false))
        .expect("unready");
    until_a(
        dns,
        FO,
        &[ip(&vip(1, 2))],
        Duration::from_secs(3),
        "then to region1",
    )
    .await;

    let mut counts: BTreeMap<IpAddr, u32> = BTreeMap::new();
    let n = 10_000u32;
    for _ in 0..n {
        let a = a_set(dns, "wt.shop.svc.clusterset.local.").await;
        assert_eq!(a.len(), 1, "one cluster per weighted answer");
        *counts.entry(a[0]).or_insert(0) += 1;
    }
    let share = |n_region: usize| {
        f64::from(counts.get(&ip(&vip(n_region, 3))).copied().unwrap_or(0)) / f64::from(n)
    };
    assert!((share(1) - 0.75).abs() <= 0.05, "region1=3: {counts:?}");
    assert!((share(2) - 0.25).abs() <= 0.05, "region2=1: {counts:?}");
    assert_eq!(share(3), 0.0, "region3 has no weight: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_without_version_namespaces_or_statefulsets_still_counts_as_healthy() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::init_tls();
    let hidden = vec![
        "version".to_owned(),
        "namespaces".to_owned(),
        "statefulsets".to_owned(),
    ];
    let mut clusters = String::new();
    let mut servers = Vec::new();
    for n in 1..=2 {
        let opts = fake_apiserver::Options {
            hidden: if n == 1 { hidden.clone() } else { Vec::new() },
            ..Default::default()
        };
        let s = FakeApiServer::start_with(opts).await.expect("apiserver");
        apply_web(&s, n);
        clusters += &cluster_entry(&s, n, dir.path());
        servers.push(s);
    }
    let rest = format!(
        "allow: [127.0.0.0/8]\nclusters:\n{clusters}clusterset:\n  zone: clusterset.local\n  policy: round-robin\n  stale_after: 1s\n"
    );
    let crossdns = Crossdns::start(dir.path(), &rest).await;
    crossdns.wait_ready(Duration::from_secs(20)).await;
    // Well past stale_after: region1's optional watches and probe keep
    // failing with 404s, yet it is neither stale nor out of the answer.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a_set(crossdns.dns, WEB).await, web_vips(&[1, 2]));
    assert_eq!(
        crossdns
            .metric("crossdns_clusterset_cluster_fresh{cluster=\"region1\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        crossdns
            .metric("crossdns_cluster_failing_seconds{cluster=\"region1\"}")
            .await,
        Some(0.0)
    );
    // A real outage still counts.
    servers[0].pause().await;
    until_a(
        crossdns.dns,
        WEB,
        &web_vips(&[2]),
        Duration::from_secs(5),
        "a paused region1 never left the answer",
    )
    .await;
}
