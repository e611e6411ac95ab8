//! End to end: the real `crossdns` binary watching two fake apiservers (real
//! list/watch protocol over TLS with bearer tokens) loaded with the demo
//! manifests, answering over real UDP and TCP sockets.
//!
//! Tests run one at a time (`common::SERIAL`): the propagation bar (1 s) is
//! measured on a shared 2-core machine.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{
    Crossdns, addresses, has_soa, ip, name_targets, query_hickory_client, query_tcp, query_udp,
    rcode, srv_targets, wait_for,
};
use fake_apiserver::{FakeApiServer, Fault};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a cluster may take to list and sync when everything is healthy.
const SYNC: Duration = Duration::from_secs(20);
/// How long recovery after an outage may take (kube watcher backoff).
const RECOVERY: Duration = Duration::from_secs(20);

/// Names of the demo that several tests check.
const R1_POD0: &str = "cockroachdb-0.cockroachdb.default.svc.cluster.region1";
const R2_POD0: &str = "cockroachdb-0.cockroachdb.default.svc.cluster.region2";
const R1_PUBLIC: &str = "cockroachdb-public.default.svc.cluster.region1";
const R1_CACHE: &str = "cache.shop.svc.cluster.region1";

struct Demo {
    r1: FakeApiServer,
    r2: FakeApiServer,
    crossdns: Crossdns,
    _dir: TempDir,
    /// Held for the test's whole life (dropped last): see `common::SERIAL`.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Demo {
    fn dns(&self) -> SocketAddr {
        self.crossdns.dns
    }

    /// Applies `object` to `server` (`what` names the change in failures),
    /// then polls up to `deadline` for `name`'s A set to become `want`.
    /// Returns the time from the apply until the answer showed the change.
    async fn apply_until_a(
        &self,
        server: &FakeApiServer,
        object: Value,
        what: &str,
        name: &str,
        want: &[&str],
        deadline: Duration,
    ) -> Duration {
        let started = Instant::now();
        server
            .apply(object)
            .unwrap_or_else(|e| panic!("apply {what}: {e:#}"));
        until_a(self.dns(), name, want, deadline).await;
        started.elapsed()
    }

    /// Applies `object` to `server` and asserts that `name`'s A set became
    /// `want` within the contract (polled up to 10 s, so that a slow change
    /// fails with its time rather than a timeout).
    async fn apply_within_contract(
        &self,
        server: &FakeApiServer,
        object: Value,
        what: &str,
        name: &str,
        want: &[&str],
    ) {
        let took = self
            .apply_until_a(server, object, what, name, want, Duration::from_secs(10))
            .await;
        assert_within_contract(what, took);
    }

    /// Applies a Service `warmup` to region1 and waits (up to `SYNC`) until
    /// it answers: the watches are open once a change made now arrives.
    async fn warm_up(&self) {
        self.apply_until_a(
            &self.r1,
            service("default", "warmup", "10.101.9.1"),
            "warmup Service",
            "warmup.default.svc.cluster.region1",
            &["10.101.9.1"],
            SYNC,
        )
        .await;
    }

    /// Asserts `/readyz` is 503 naming exactly `cluster` as not synced.
    async fn assert_not_synced(&self, cluster: &str) {
        let (status, body) = self.crossdns.readyz().await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["not_synced"], json!([cluster]), "{body}");
    }
}

/// Two fake apiservers with the demo manifests; `prepare` runs before crossdns
/// starts; crossdns is then started (not waited for). Takes `common::SERIAL`
/// first, so that the tests of this file run one at a time.
async fn demo_unready(prepare: impl AsyncFnOnce(&FakeApiServer, &FakeApiServer)) -> Demo {
    let serial = common::SERIAL.lock().await;
    common::init_tls();
    let root = common::repo_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let r1 = FakeApiServer::start().await.expect("region1 apiserver");
    let r2 = FakeApiServer::start().await.expect("region2 apiserver");
    r1.apply_dir(&root.join("examples/demo/region1"))
        .expect("apply region1 demo");
    r2.apply_dir(&root.join("examples/demo/region2"))
        .expect("apply region2 demo");
    let kc1 = dir.path().join("region1.kubeconfig");
    let kc2 = dir.path().join("region2.kubeconfig");
    // Distinct contexts, selected by `context:`.
    r1.write_kubeconfig(&kc1, "region1-ctx")
        .expect("write kubeconfig 1");
    r2.write_kubeconfig(&kc2, "region2-ctx")
        .expect("write kubeconfig 2");
    prepare(&r1, &r2).await;
    let rest = format!(
        "allow: [\"127.0.0.0/8\"]\nclusters:\n  - name: region1\n    zone: cluster.region1\n    kubeconfig: {}\n    context: region1-ctx\n  - name: region2\n    zone: cluster.region2\n    kubeconfig: {}\n    context: region2-ctx\n",
        kc1.display(),
        kc2.display()
    );
    let crossdns = Crossdns::start(dir.path(), &rest).await;
    Demo {
        r1,
        r2,
        crossdns,
        _dir: dir,
        _serial: serial,
    }
}

/// The demo with both clusters synced.
async fn demo() -> Demo {
    let d = demo_unready(async |_, _| {}).await;
    d.crossdns.wait_ready(SYNC).await;
    d
}

async fn a(dns: SocketAddr, name: &str) -> Message {
    query_udp(dns, name, RecordType::A).await
}

/// The sorted A addresses of `name` (empty on any negative answer).
async fn a_set(dns: SocketAddr, name: &str) -> Vec<std::net::IpAddr> {
    addresses(&a(dns, name).await)
}

fn ips(list: &[&str]) -> Vec<std::net::IpAddr> {
    let mut v: Vec<_> = list.iter().map(|s| ip(s)).collect();
    v.sort();
    v
}

/// Asserts `name`'s A set is `want` now; `why` says what that shows.
async fn assert_a(dns: SocketAddr, name: &str, want: &[&str], why: &str) {
    assert_eq!(a_set(dns, name).await, ips(want), "{name} A: {why}");
}

/// Polls up to `deadline` for `name`'s A set to equal `want`; returns the time.
async fn until_a(dns: SocketAddr, name: &str, want: &[&str], deadline: Duration) -> Duration {
    let want = ips(want);
    let mut last = Vec::new();
    match wait_for(deadline, async || {
        last = a_set(dns, name).await;
        last == want
    })
    .await
    {
        Some(t) => t,
        None => panic!("{name} A never became {want:?} within {deadline:?}; last {last:?}"),
    }
}

async fn until_rcode(
    dns: SocketAddr,
    name: &str,
    want: ResponseCode,
    deadline: Duration,
) -> Duration {
    let mut last = None;
    match wait_for(deadline, async || {
        let got = rcode(&a(dns, name).await);
        last = Some(got);
        got == want
    })
    .await
    {
        Some(t) => t,
        None => panic!("{name} A never answered {want:?} within {deadline:?}; last {last:?}"),
    }
}

fn service(ns: &str, name: &str, cluster_ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    })
}

/// Initial lists served so far: paginated lists and streaming lists
/// (watches with `sendInitialEvents`).
fn initial_lists(server: &FakeApiServer) -> u64 {
    let st = server.stats();
    st.lists + st.watch_lists
}

/// Deletes the Service `ns`/`name`, which must exist.
fn delete_service(server: &FakeApiServer, ns: &str, name: &str) {
    assert!(
        server.delete("v1", "Service", Some(ns), name),
        "Service {ns}/{name} did not exist"
    );
}

fn cockroach_slice(server: &FakeApiServer) -> Value {
    server
        .get(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some("default"),
            "cockroachdb-abcde",
        )
        .expect("the demo's cockroachdb EndpointSlice")
}

/// Asserts a measured propagation time meets the contract.
fn assert_within_contract(what: &str, took: Duration) {
    eprintln!("{what}: visible after {took:?}");
    assert!(
        took <= common::CHANGE_DEADLINE,
        "{what}: took {took:?}, the contract says changes are visible within {:?}",
        common::CHANGE_DEADLINE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_names_answer_from_live_apiservers_over_udp_and_tcp() {
    let d = demo().await;
    let dns = d.dns();
    for tcp in [false, true] {
        let q = async |name: &str, t: RecordType| {
            if tcp {
                query_tcp(dns, name, t).await
            } else {
                query_udp(dns, name, t).await
            }
        };
        let via = if tcp { "tcp" } else { "udp" };

        let m = q(R2_POD0, RecordType::A).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{via}: {m:?}");
        assert!(m.metadata.authoritative, "{via}: answers are authoritative");
        assert_eq!(addresses(&m), ips(&["10.2.0.10"]), "{via}: {m:?}");

        let m = q(R1_PUBLIC, RecordType::A).await;
        assert_eq!(addresses(&m), ips(&["10.101.0.20"]), "{via}: {m:?}");

        let m = q(
            "_grpc._tcp.cockroachdb.default.svc.cluster.region1",
            RecordType::SRV,
        )
        .await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{via}: {m:?}");
        assert_eq!(
            srv_targets(&m),
            vec![
                "cockroachdb-0.cockroachdb.default.svc.cluster.region1",
                "cockroachdb-1.cockroachdb.default.svc.cluster.region1",
                "cockroachdb-2.cockroachdb.default.svc.cluster.region1",
            ],
            "{via}: {m:?}"
        );

        let m = q("payments.shop.svc.cluster.region2", RecordType::A).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{via}: {m:?}");
        assert_eq!(
            name_targets(&m),
            vec!["payments.region2.example.com"],
            "{via}: ExternalName is a CNAME: {m:?}"
        );
        assert!(
            m.answers
                .iter()
                .all(|r| r.record_type() == RecordType::CNAME),
            "{via}: only the CNAME: {m:?}"
        );

        let m = q("30.0.101.10.in-addr.arpa", RecordType::PTR).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{via}: {m:?}");
        assert_eq!(
            name_targets(&m),
            vec!["web.shop.svc.cluster.region1"],
            "{via}: {m:?}"
        );

        let m = q("web.shop.svc.cluster.region1", RecordType::AAAA).await;
        assert_eq!(
            addresses(&m),
            ips(&["fd00:1::30"]),
            "{via}: dual-stack: {m:?}"
        );

        // Headless: ready endpoints only.
        let m = q("cache.shop.svc.cluster.region2", RecordType::A).await;
        assert_eq!(
            addresses(&m),
            ips(&["10.2.2.7", "10.2.2.8"]),
            "{via}: {m:?}"
        );

        let m = q("missing.default.svc.cluster.region1", RecordType::A).await;
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "{via}: {m:?}");
        assert!(has_soa(&m), "{via}: SOA in the authority section: {m:?}");
        assert!(m.answers.is_empty(), "{via}: {m:?}");

        // Headless with no endpoints does not exist (the spec says NXDOMAIN).
        let m = q("batch.shop.svc.cluster.region1", RecordType::A).await;
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "{via}: {m:?}");
        assert!(has_soa(&m), "{via}: {m:?}");

        // NODATA: the name exists, the type does not.
        let m = q(R1_PUBLIC, RecordType::AAAA).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{via}: {m:?}");
        assert!(m.answers.is_empty(), "{via}: {m:?}");
        assert!(has_soa(&m), "{via}: NODATA carries the SOA: {m:?}");

        let m = q("dns-version.cluster.region2", RecordType::TXT).await;
        assert_eq!(rcode(&m), ResponseCode::NoError, "{via}: {m:?}");
        assert_eq!(m.answers.len(), 1, "{via}: {m:?}");
    }
    d.crossdns.wait_ready(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_the_apiserver_are_answered_within_one_second() {
    let d = demo().await;
    let dns = d.dns();
    d.warm_up().await;

    // 1. A new endpoint with a hostname (a StatefulSet scaling up).
    let mut slice = cockroach_slice(&d.r1);
    slice["endpoints"]
        .as_array_mut()
        .expect("endpoints array")
        .push(json!({
            "addresses": ["10.1.0.13"],
            "hostname": "cockroachdb-3",
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "targetRef": {"kind": "Pod", "name": "cockroachdb-3", "namespace": "default"},
        }));
    d.apply_within_contract(
        &d.r1,
        slice,
        "new endpoint cockroachdb-3",
        "cockroachdb-3.cockroachdb.default.svc.cluster.region1",
        &["10.1.0.13"],
    )
    .await;
    let m = query_udp(
        dns,
        "_grpc._tcp.cockroachdb.default.svc.cluster.region1",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        srv_targets(&m).len(),
        4,
        "SRV follows the new endpoint: {m:?}"
    );

    // 2. A Service deleted: NXDOMAIN.
    let started = Instant::now();
    delete_service(&d.r1, "shop", "web");
    until_rcode(
        dns,
        "web.shop.svc.cluster.region1",
        ResponseCode::NXDomain,
        Duration::from_secs(10),
    )
    .await;
    assert_within_contract("deleted Service web", started.elapsed());
    // Its reverse record goes with it.
    let m = query_udp(dns, "30.0.101.10.in-addr.arpa", RecordType::PTR).await;
    assert_eq!(
        rcode(&m),
        ResponseCode::NXDomain,
        "PTR of a deleted Service: {m:?}"
    );
    assert_a(
        dns,
        "web.shop.svc.cluster.region2",
        &["10.102.0.30"],
        "region2's web is untouched",
    )
    .await;

    // 3. A pod IP changes (pod rescheduled).
    let mut slice = cockroach_slice(&d.r1);
    for ep in slice["endpoints"].as_array_mut().expect("endpoints array") {
        if ep["hostname"] == "cockroachdb-1" {
            ep["addresses"] = json!(["10.1.0.111"]);
        }
    }
    d.apply_within_contract(
        &d.r1,
        slice,
        "cockroachdb-1 moved to 10.1.0.111",
        "cockroachdb-1.cockroachdb.default.svc.cluster.region1",
        &["10.1.0.111"],
    )
    .await;
    let all = a_set(dns, "cockroachdb.default.svc.cluster.region1").await;
    assert!(
        all.contains(&ip("10.1.0.111")) && !all.contains(&ip("10.1.0.11")),
        "headless A follows the move: {all:?}"
    );

    // 4. A new Service.
    d.apply_within_contract(
        &d.r2,
        service("shop", "orders", "10.102.0.77"),
        "new Service orders in region2",
        "orders.shop.svc.cluster.region2",
        &["10.102.0.77"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_outage_keeps_the_last_answers_and_recovers() {
    let d = demo().await;
    let dns = d.dns();

    d.r1.pause().await;
    // A change the watcher cannot see until the server is back.
    d.r1.apply(service("default", "late", "10.101.0.99"))
        .expect("apply while paused");
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(4) {
        assert_a(
            dns,
            R1_POD0,
            &["10.1.0.10"],
            "region1 keeps its last snapshot during the outage",
        )
        .await;
        assert_a(
            dns,
            R1_PUBLIC,
            &["10.101.0.20"],
            "region1 keeps its last snapshot during the outage",
        )
        .await;
        let m = a(dns, "late.default.svc.cluster.region1").await;
        assert_eq!(rcode(&m), ResponseCode::NXDomain, "not seen yet: {m:?}");
        assert_a(dns, R2_POD0, &["10.2.0.10"], "region2 is unaffected").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = d.crossdns.readyz().await;
    assert_eq!(
        status, 200,
        "a cluster that synced once stays ready: {body}"
    );
    // The failure is visible while it lasts.
    let failing = wait_for(Duration::from_secs(10), async || {
        d.crossdns
            .metric("crossdns_cluster_failing_seconds{cluster=\"region1\"}")
            .await
            .is_some_and(|v| v > 0.0)
    })
    .await;
    assert!(
        failing.is_some(),
        "crossdns_cluster_failing_seconds{{cluster=\"region1\"}} never > 0 during the outage:\n{}",
        d.crossdns.metrics().await
    );

    d.r1.resume().await.expect("resume region1");
    let took = until_a(
        dns,
        "late.default.svc.cluster.region1",
        &["10.101.0.99"],
        RECOVERY,
    )
    .await;
    eprintln!("change made during the outage visible {took:?} after resume");
    assert_a(dns, R1_POD0, &["10.1.0.10"], "after the outage").await;
    let metrics = d.crossdns.metrics().await;
    let restarts = common::metric_value(
        &metrics,
        "crossdns_cluster_watch_restarts_total{cluster=\"region1\"}",
    );
    assert!(
        restarts.is_some_and(|v| v > 0.0),
        "watch restarts for region1 should be counted, got {restarts:?}:\n{metrics}"
    );
    let restarts2 = common::metric_value(
        &metrics,
        "crossdns_cluster_watch_restarts_total{cluster=\"region2\"}",
    );
    assert_eq!(restarts2, Some(0.0), "region2 never failed:\n{metrics}");

    // And live changes flow again at full speed.
    d.apply_within_contract(
        &d.r1,
        service("default", "after", "10.101.0.98"),
        "change after recovery",
        "after.default.svc.cluster.region1",
        &["10.101.0.98"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_synced_cluster_answers_servfail_and_holds_readyz_while_the_other_answers() {
    let d = demo_unready(async |r1, _| r1.set_fault(Fault::Stall)).await;
    let dns = d.dns();
    until_a(dns, R2_POD0, &["10.2.0.10"], SYNC).await;
    // (The apex SOA/NS come from config, not from the cluster, so they are
    // not checked here.)
    for (name, t) in [
        ("x.default.svc.cluster.region1", RecordType::A),
        (R1_POD0, RecordType::A),
        (
            "_grpc._tcp.cockroachdb.default.svc.cluster.region1",
            RecordType::SRV,
        ),
        // The reverse zone is shared: region1 might own this IP, so no
        // NXDOMAIN may be claimed for it yet.
        ("30.0.101.10.in-addr.arpa", RecordType::PTR),
    ] {
        for tcp in [false, true] {
            let m = if tcp {
                query_tcp(dns, name, t).await
            } else {
                query_udp(dns, name, t).await
            };
            assert_eq!(
                rcode(&m),
                ResponseCode::ServFail,
                "{name} {t} (tcp={tcp}) in a never-synced cluster: {m:?}"
            );
        }
    }
    // A reverse name of the synced cluster answers.
    let m = query_udp(dns, "30.0.102.10.in-addr.arpa", RecordType::PTR).await;
    assert_eq!(
        name_targets(&m),
        vec!["web.shop.svc.cluster.region2"],
        "{m:?}"
    );
    d.assert_not_synced("region1").await;
    // The other cluster is fully served meanwhile.
    let m = query_udp(dns, "x.default.svc.cluster.region2", RecordType::A).await;
    assert_eq!(rcode(&m), ResponseCode::NXDomain, "{m:?}");

    d.r1.set_fault(Fault::None);
    let took = d.crossdns.wait_ready(RECOVERY).await;
    eprintln!("ready {took:?} after the stall cleared");
    assert_a(dns, R1_POD0, &["10.1.0.10"], "once the stall cleared").await;
    let m = query_udp(dns, "x.default.svc.cluster.region1", RecordType::A).await;
    assert_eq!(rcode(&m), ResponseCode::NXDomain, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_apiserver_at_start_answers_servfail_until_it_comes_up() {
    // Connection refused on region1's port until resume().
    let d = demo_unready(async |r1, _| r1.pause().await).await;
    let dns = d.dns();
    until_a(
        dns,
        "cockroachdb-public.default.svc.cluster.region2",
        &["10.102.0.20"],
        SYNC,
    )
    .await;
    let m = query_udp(dns, R1_PUBLIC, RecordType::A).await;
    assert_eq!(rcode(&m), ResponseCode::ServFail, "{m:?}");
    d.assert_not_synced("region1").await;

    d.r1.resume().await.expect("resume region1");
    d.crossdns.wait_ready(RECOVERY).await;
    assert_a(dns, R1_PUBLIC, &["10.101.0.20"], "once the apiserver is up").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_an_apiserver_does_not_lose_the_good_snapshot() {
    let d = demo().await;
    let dns = d.dns();
    let skipped = "crossdns_cluster_skipped_objects_total{cluster=\"region1\"}";

    // 1. One object whose spec is garbage: skipped, the rest still answers.
    d.r1.apply(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "broken", "namespace": "default"},
        "spec": {"ports": "lots", "clusterIP": 12},
    }))
    .expect("apply a garbage Service");
    let seen = wait_for(Duration::from_secs(10), async || {
        d.crossdns.metric(skipped).await.is_some_and(|v| v > 0.0)
    })
    .await;
    assert!(
        seen.is_some(),
        "{skipped} never > 0:\n{}",
        d.crossdns.metrics().await
    );
    let m = a(dns, "broken.default.svc.cluster.region1").await;
    assert_ne!(rcode(&m), ResponseCode::ServFail, "{m:?}");
    assert_a(dns, R1_PUBLIC, &["10.101.0.20"], "the rest still answers").await;
    // Good changes behind the bad one still arrive promptly.
    d.apply_within_contract(
        &d.r1,
        service("default", "good", "10.101.0.50"),
        "good Service after a garbage one",
        "good.default.svc.cluster.region1",
        &["10.101.0.50"],
    )
    .await;
    // Fixing the bad object makes it answer.
    d.apply_until_a(
        &d.r1,
        service("default", "broken", "10.101.0.51"),
        "fixed Service broken",
        "broken.default.svc.cluster.region1",
        &["10.101.0.51"],
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_lists_keep_the_last_snapshot_and_a_clean_relist_recovers() {
    let d = demo().await;
    let dns = d.dns();
    let lists_before = initial_lists(&d.r1);

    // Every list is garbage from now on; a 410 on the open watches forces
    // relists, which fail.
    d.r1.set_fault(Fault::GarbageJson);
    d.r1.compact();
    d.r1.drop_watches();
    let relisted = wait_for(Duration::from_secs(10), async || {
        initial_lists(&d.r1) > lists_before
    })
    .await;
    assert!(
        relisted.is_some(),
        "crossdns never tried to relist: {:?}",
        d.r1.stats()
    );
    // Changes made meanwhile, visible only through a list.
    d.r1.apply(service("default", "during-garbage", "10.101.0.52"))
        .expect("apply during garbage");
    delete_service(&d.r1, "shop", "cache");
    let garbage = Instant::now();
    while garbage.elapsed() < Duration::from_secs(4) {
        assert_a(dns, R1_POD0, &["10.1.0.10"], "the good snapshot is kept").await;
        assert_a(
            dns,
            R1_CACHE,
            &["10.1.2.7", "10.1.2.8"],
            "the last good data, not an empty zone",
        )
        .await;
        assert_a(dns, R2_POD0, &["10.2.0.10"], "region2 is unaffected").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = d.crossdns.readyz().await;
    assert_eq!(status, 200, "{body}");
    assert!(
        d.crossdns
            .metric("crossdns_cluster_watch_restarts_total{cluster=\"region1\"}")
            .await
            .is_some_and(|v| v > 0.0),
        "garbage lists count as watch failures:\n{}",
        d.crossdns.metrics().await
    );

    d.r1.set_fault(Fault::None);
    let took = until_a(
        dns,
        "during-garbage.default.svc.cluster.region1",
        &["10.101.0.52"],
        RECOVERY,
    )
    .await;
    eprintln!("recovered {took:?} after the garbage stopped");
    until_rcode(dns, R1_CACHE, ResponseCode::NXDomain, RECOVERY).await;
    assert_a(dns, R1_POD0, &["10.1.0.10"], "after the clean relist").await;
}

/// A watch event that does not decode is lost; the watcher must not carry on
/// from a later resourceVersion (a BOOKMARK moves it past the lost event) as
/// if nothing happened, or the change is never seen. Relisting after a
/// decode error (or refusing to advance past it) recovers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_watch_events_are_not_lost_for_good() {
    let d = demo().await;
    let dns = d.dns();
    // Make sure the watches are open.
    d.warm_up().await;

    d.r1.set_fault(Fault::GarbageJson);
    // Sent to the open watches as lines that are not JSON.
    d.r1.apply(service("default", "during-garbage", "10.101.0.52"))
        .expect("apply during garbage");
    delete_service(&d.r1, "shop", "cache");
    // Answers stay meanwhile.
    let garbage = Instant::now();
    while garbage.elapsed() < Duration::from_secs(3) {
        assert_a(
            dns,
            R1_POD0,
            &["10.1.0.10"],
            "answers stay while the watch events are garbage",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.r1.set_fault(Fault::None);
    d.r1.drop_watches();
    until_a(
        dns,
        "during-garbage.default.svc.cluster.region1",
        &["10.101.0.52"],
        Duration::from_secs(40),
    )
    .await;
    until_rcode(dns, R1_CACHE, ResponseCode::NXDomain, RECOVERY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_expired_relists_and_later_changes_still_arrive() {
    let d = demo().await;
    let dns = d.dns();
    let lists_before = initial_lists(&d.r1);

    // 1. Open watches get a 410 ERROR event and are closed.
    d.r1.compact();
    d.r1.drop_watches();
    d.apply_until_a(
        &d.r1,
        service("default", "after-410", "10.101.0.60"),
        "Service after compaction",
        "after-410.default.svc.cluster.region1",
        &["10.101.0.60"],
        RECOVERY,
    )
    .await;
    assert!(
        initial_lists(&d.r1) > lists_before,
        "a 410 makes the watcher list again: {:?}",
        d.r1.stats()
    );
    d.apply_within_contract(
        &d.r1,
        service("default", "later", "10.101.0.61"),
        "change after a 410 relist",
        "later.default.svc.cluster.region1",
        &["10.101.0.61"],
    )
    .await;

    // 2. A watch resumed from a resourceVersion that has been compacted away:
    //    changes made meanwhile (including a delete) arrive only by relisting.
    d.r1.pause().await;
    delete_service(&d.r1, "shop", "cache");
    delete_service(&d.r1, "default", "later");
    d.r1.apply(service("default", "while-away", "10.101.0.62"))
        .expect("apply while away");
    d.r1.compact();
    tokio::time::sleep(Duration::from_secs(1)).await;
    d.r1.resume().await.expect("resume");
    until_a(
        dns,
        "while-away.default.svc.cluster.region1",
        &["10.101.0.62"],
        RECOVERY,
    )
    .await;
    until_rcode(dns, R1_CACHE, ResponseCode::NXDomain, RECOVERY).await;
    until_rcode(
        dns,
        "later.default.svc.cluster.region1",
        ResponseCode::NXDomain,
        RECOVERY,
    )
    .await;
    assert_a(dns, R1_POD0, &["10.1.0.10"], "after the relist on resume").await;
    d.apply_within_contract(
        &d.r1,
        service("default", "latest", "10.101.0.63"),
        "change after a relist on resume",
        "latest.default.svc.cluster.region1",
        &["10.101.0.63"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_hickory_client_gets_answers_from_the_binary() {
    let d = demo().await;
    let dns = d.dns();
    let m = query_hickory_client(
        dns,
        "cockroachdb-0.cockroachdb.default.svc.cluster.region2.",
        RecordType::A,
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NoError, "{m:?}");
    assert_eq!(addresses(&m), ips(&["10.2.0.10"]), "{m:?}");

    let m = query_hickory_client(
        dns,
        "_GRPC._tcp.CockroachDB.default.svc.cluster.region1.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(rcode(&m), ResponseCode::NoError, "{m:?}");
    assert_eq!(srv_targets(&m).len(), 3, "{m:?}");
    assert_eq!(
        m.queries[0].name().to_string(),
        "_GRPC._tcp.CockroachDB.default.svc.cluster.region1.",
        "the question's case is echoed"
    );
    // And byte for byte on the wire.
    let q = common::make_query(
        "_GRPC._tcp.CockroachDB.default.svc.cluster.region1.",
        RecordType::SRV,
        None,
    );
    let raw = common::udp_exchange_raw(dns, &q).await;
    let needle = b"\x05_GRPC\x04_tcp\x0bCockroachDB\x07default";
    assert!(
        raw.windows(needle.len()).any(|w| w == needle),
        "question echoed byte for byte: {raw:02x?}"
    );

    let m = query_hickory_client(dns, "web.shop.svc.cluster.region2.", RecordType::AAAA).await;
    assert_eq!(addresses(&m), ips(&["fd00:2::30"]), "{m:?}");

    let m = query_hickory_client(dns, "nothing.shop.svc.cluster.region2.", RecordType::A).await;
    assert_eq!(rcode(&m), ResponseCode::NXDomain, "{m:?}");
    assert!(has_soa(&m), "{m:?}");
}
