//! The clusterset end to end: the real binary watching three test
//! apiservers. (a) a cluster whose endpoints all turn unready leaves the
//! answer within 1 s; (b) an apiserver stall shorter than `stale_after`
//! changes nothing; (c) a longer outage drops the cluster within
//! `stale_after` + 1 s and it returns within 1 s of recovering; (d) failover
//! order and weights hold over UDP.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Crossdns, addresses, ip, query_udp, wait_for};
use fake_apiserver::{FakeApiServer, Fault};
use hickory_proto::rr::RecordType;
use serde_json::json;

const STALE_AFTER_SECS: u64 = 3;

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
        s.apply(service("web", &vip(n, 1), json!({}))).expect("web");
        s.apply(slice("web", &format!("10.{n}.1.1"), true))
            .expect("slice");
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
        let kc = dir.join(format!("region{n}.kubeconfig"));
        s.write_kubeconfig(&kc, &format!("region{n}"))
            .expect("kubeconfig");
        clusters += &format!(
            "  - {{name: region{n}, zone: cluster.region{n}, kubeconfig: {}, context: region{n}}}\n",
            kc.display()
        );
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

async fn web(r: &Regions) -> Vec<IpAddr> {
    let mut v = addresses(
        &query_udp(
            r.crossdns.dns,
            "web.shop.svc.clusterset.local.",
            RecordType::A,
        )
        .await,
    );
    v.sort();
    v
}

fn all_three() -> Vec<IpAddr> {
    (1..=3).map(|n| ip(&vip(n, 1))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_endpoints_all_turn_unready_leaves_the_answer_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    assert_eq!(web(&r).await, all_three());
    r.servers[1]
        .apply(slice("web", "10.2.1.1", false))
        .expect("unready");
    let without_region2: Vec<IpAddr> = vec![ip(&vip(1, 1)), ip(&vip(3, 1))];
    let took = wait_for(Duration::from_secs(3), async || {
        web(&r).await == without_region2
    })
    .await
    .expect("region2 never left the answer");
    assert!(
        took <= Duration::from_secs(1),
        "region2 left after {took:?}"
    );
    r.servers[1]
        .apply(slice("web", "10.2.1.1", true))
        .expect("ready again");
    let took = wait_for(Duration::from_secs(3), async || {
        web(&r).await == all_three()
    })
    .await
    .expect("region2 never came back");
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
    let without_region2: Vec<IpAddr> = vec![ip(&vip(1, 1)), ip(&vip(3, 1))];
    wait_for(Duration::from_secs(STALE_AFTER_SECS + 5), async || {
        web(&r).await == without_region2
    })
    .await
    .expect("a stale region2 was never dropped");
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
    let took = wait_for(Duration::from_secs(5), async || {
        web(&r).await == all_three()
    })
    .await
    .expect("region2 never came back");
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
    let without_region3: Vec<IpAddr> = vec![ip(&vip(1, 1)), ip(&vip(2, 1))];
    wait_for(Duration::from_secs(STALE_AFTER_SECS + 5), async || {
        web(&r).await == without_region3
    })
    .await
    .expect("region3 was never dropped");
    assert!(
        outage.elapsed() <= Duration::from_secs(STALE_AFTER_SECS + 1),
        "{:?}",
        outage.elapsed()
    );
    // Its own zone keeps answering from the last snapshot meanwhile.
    let own = query_udp(
        r.crossdns.dns,
        "web.shop.svc.cluster.region3.",
        RecordType::A,
    )
    .await;
    assert_eq!(addresses(&own), vec![ip(&vip(3, 1))]);

    r.servers[2].resume().await.expect("resume");
    // The watch reconnects after its backoff (at most 5 s), then relists.
    let took = wait_for(Duration::from_secs(10), async || {
        web(&r).await == all_three()
    })
    .await
    .expect("region3 never came back");
    assert!(took <= Duration::from_secs(7), "came back after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_order_is_respected_and_weighted_answers_follow_the_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    let fo = async || {
        addresses(
            &query_udp(
                r.crossdns.dns,
                "fo.shop.svc.clusterset.local.",
                RecordType::A,
            )
            .await,
        )
    };
    assert_eq!(
        fo().await,
        vec![ip(&vip(3, 2))],
        "region3 is first in crossdns.io/failover-order"
    );
    r.servers[2]
        .apply(slice("fo", "10.3.1.2", false))
        .expect("unready");
    wait_for(Duration::from_secs(3), async || {
        fo().await == vec![ip(&vip(2, 2))]
    })
    .await
    .expect("failover to region2, the next in order");
    r.servers[1]
        .apply(slice("fo", "10.2.1.2", false))
        .expect("unready");
    wait_for(Duration::from_secs(3), async || {
        fo().await == vec![ip(&vip(1, 2))]
    })
    .await
    .expect("then to region1");

    let mut counts: BTreeMap<IpAddr, u32> = BTreeMap::new();
    let n = 10_000u32;
    for _ in 0..n {
        let m = query_udp(
            r.crossdns.dns,
            "wt.shop.svc.clusterset.local.",
            RecordType::A,
        )
        .await;
        let a = addresses(&m);
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
        s.apply(service("web", &vip(n, 1), json!({}))).expect("web");
        s.apply(slice("web", &format!("10.{n}.1.1"), true))
            .expect("slice");
        let kc = dir.path().join(format!("region{n}.kubeconfig"));
        s.write_kubeconfig(&kc, &format!("region{n}"))
            .expect("kubeconfig");
        clusters += &format!(
            "  - {{name: region{n}, zone: cluster.region{n}, kubeconfig: {}, context: region{n}}}\n",
            kc.display()
        );
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
    let mut answer = addresses(
        &query_udp(
            crossdns.dns,
            "web.shop.svc.clusterset.local.",
            RecordType::A,
        )
        .await,
    );
    answer.sort();
    assert_eq!(answer, vec![ip(&vip(1, 1)), ip(&vip(2, 1))]);
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
    wait_for(Duration::from_secs(5), async || {
        addresses(
            &query_udp(
                crossdns.dns,
                "web.shop.svc.clusterset.local.",
                RecordType::A,
            )
            .await,
        ) == vec![ip(&vip(2, 1))]
    })
    .await
    .expect("a paused region1 never left the answer");
}
