//! Interop and forwarding against real DNS programs (design.md §5 "Interop"):
//! kube-dns's dnsmasq chained to crossdns through the `stubDomains` that
//! `crossdns generate kube-dns` prints, unbound forwarding to crossdns, and
//! crossdns forwarding to knotd upstreams that die and come back
//! (health, serve-stale, sequential failover) and to itself (loops).
//!
//! Programs: dnsmasq, unbound, knotd. A missing one skips the test with a
//! loud `SKIPPED:` line, or fails it when env `CI` is set.

mod interop_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use interop_support::{
    Knot, Summary, Transport, exchange, expect_servfail, free_dns_port, metric, min_ttl,
    must_metric, query, require, run_bounded, start_crossdns, start_dns_daemon, summarize,
    wait_metric, wait_rcode, zone_file,
};
use k8s_openapi::api::core::v1::ConfigMap;

const A: RecordType = RecordType::A;

fn demo_dir(region: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/demo")
        .join(region)
}

/// configs/demo.yaml with absolute manifest paths and an ephemeral port.
fn demo_config() -> String {
    format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\n  ttl: 5\n\
         allow: [\"127.0.0.0/8\", \"::1/128\"]\n\
         clusters:\n\
         \x20 - name: region1\n    zone: cluster.region1\n    manifests: {}\n    pods: insecure\n\
         \x20 - name: region2\n    zone: cluster.region2\n    manifests: {}\n    pods: insecure\n\
         clusterset:\n  zone: clusterset.local\n  local: region1\n  policy: local-first\n  stale_after: 30s\n  all_down: servfail\n",
        demo_dir("region1").display(),
        demo_dir("region2").display(),
    )
}

/// One row of the answer table: the name, the type, what crossdns itself
/// must answer (so that a table of empty answers cannot pass), and how many
/// answer records at least.
struct Row {
    name: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    min_answers: usize,
}

const fn row(
    name: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    min_answers: usize,
) -> Row {
    Row {
        name,
        qtype,
        rcode,
        min_answers,
    }
}

const NOERROR: ResponseCode = ResponseCode::NoError;
const NXDOMAIN: ResponseCode = ResponseCode::NXDomain;

/// Names of another cluster (region2) and of the clusterset view.
const REMOTE_TABLE: &[Row] = &[
    // StatefulSet pod
    row(
        "cockroachdb-0.cockroachdb.default.svc.cluster.region2.",
        A,
        NOERROR,
        1,
    ),
    row(
        "cockroachdb-2.cockroachdb.default.svc.cluster.region2.",
        A,
        NOERROR,
        1,
    ),
    // headless service: every pod
    row("cockroachdb.default.svc.cluster.region2.", A, NOERROR, 3),
    // SRV per pod
    row(
        "_grpc._tcp.cockroachdb.default.svc.cluster.region2.",
        RecordType::SRV,
        NOERROR,
        3,
    ),
    // ClusterIP
    row(
        "cockroachdb-public.default.svc.cluster.region2.",
        A,
        NOERROR,
        1,
    ),
    row(
        "web.shop.svc.cluster.region2.",
        RecordType::AAAA,
        NOERROR,
        1,
    ),
    // NODATA: existing name, no record of the type
    row(
        "cockroachdb-0.cockroachdb.default.svc.cluster.region2.",
        RecordType::AAAA,
        NOERROR,
        0,
    ),
    // NXDOMAIN
    row("nosuch.default.svc.cluster.region2.", A, NXDOMAIN, 0),
    row("dns-version.cluster.region2.", RecordType::TXT, NOERROR, 1),
    // clusterset view
    row("web.shop.svc.clusterset.local.", A, NOERROR, 1),
    row(
        "cockroachdb-1.region2.cockroachdb.default.svc.clusterset.local.",
        A,
        NOERROR,
        1,
    ),
    row(
        "_grpc._tcp.cockroachdb.default.svc.clusterset.local.",
        RecordType::SRV,
        NOERROR,
        3,
    ),
    row("nosuch.shop.svc.clusterset.local.", A, NXDOMAIN, 0),
    // An ExternalName into a served zone: the CNAME and the target's
    // address, which forwarders (dnsmasq) pass through as they are.
    row("crdb.shop.svc.cluster.region2.", A, NOERROR, 2),
];

/// ExternalName: a CNAME out of the cluster zones. A forwarder (dnsmasq)
/// passes it through; a resolver (unbound) chases the target, which is not
/// resolvable here, so it is only in the dnsmasq table.
const EXTERNAL_NAME: Row = row("payments.shop.svc.cluster.region2.", A, NOERROR, 1);

/// Names of the local cluster (region1), sent by unbound as a stub zone
/// (iterative queries, so QNAME minimisation walks the empty non-terminals
/// `svc.cluster.region1`, `default.svc.cluster.region1`, ...).
const STUB_TABLE: &[Row] = &[
    row(
        "cockroachdb-0.cockroachdb.default.svc.cluster.region1.",
        A,
        NOERROR,
        1,
    ),
    row(
        "_grpc._tcp.cockroachdb.default.svc.cluster.region1.",
        RecordType::SRV,
        NOERROR,
        3,
    ),
    row("web.shop.svc.cluster.region1.", A, NOERROR, 1),
    row("nosuch.shop.svc.cluster.region1.", A, NXDOMAIN, 0),
    // Minimised, unbound asks `pod.cluster.region1` and
    // `default.pod.cluster.region1` first: both must exist (RFC 8020).
    row("10-1-0-10.default.pod.cluster.region1.", A, NOERROR, 1),
];

/// Asks crossdns directly and through `via` for every row; both must agree
/// (RCODE and sorted answer records), and crossdns must give the expected
/// RCODE and at least the expected number of records.
async fn compare(direct: SocketAddr, via: SocketAddr, via_name: &str, rows: &[&Row]) {
    let mut mismatches = Vec::new();
    for r in rows {
        let d = summarize(&query(direct, r.name, r.qtype, Transport::Udp).await);
        assert_eq!(
            d.rcode, r.rcode,
            "crossdns direct: {} {} answered {d:?}",
            r.name, r.qtype
        );
        assert!(
            d.answers.len() >= r.min_answers,
            "crossdns direct: {} {} answered {d:?}, expected at least {} records",
            r.name,
            r.qtype,
            r.min_answers
        );
        let v: Summary = summarize(&query(via, r.name, r.qtype, Transport::Udp).await);
        if v != d {
            mismatches.push(format!(
                "{} {}:\n  crossdns: {d:?}\n  {via_name}: {v:?}",
                r.name, r.qtype
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "answers through {via_name} differ from crossdns's own:\n{}",
        mismatches.join("\n")
    );
}

/// Starts crossdns on the demo config and waits until every zone answers.
async fn demo_crossdns(dir: &Path) -> crossdns::app::Running {
    let running = start_crossdns(dir, "demo", &demo_config()).await;
    let dns = running.dns[0];
    for name in [
        "cockroachdb-0.cockroachdb.default.svc.cluster.region1.",
        "cockroachdb-0.cockroachdb.default.svc.cluster.region2.",
        "web.shop.svc.clusterset.local.",
    ] {
        wait_rcode(dns, name, A, NOERROR, Duration::from_secs(15)).await;
    }
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_dns_dnsmasq_with_generated_stub_domains_answers_like_crossdns() {
    let Some(programs) = require(&["dnsmasq"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let running = demo_crossdns(dir.path()).await;
    let direct = running.dns[0];

    // The real binary prints the kube-dns ConfigMap for region1.
    let (status, stdout, stderr) = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_crossdns"))
            .arg("generate")
            .arg("kube-dns")
            .arg("--config")
            .arg(dir.path().join("demo.yaml"))
            .arg("--cluster")
            .arg("region1")
            .arg("--address")
            .arg(direct.to_string()),
        Duration::from_secs(30),
    );
    assert!(
        status.success(),
        "generate kube-dns failed ({status}):\n{stderr}"
    );
    let cm: ConfigMap = serde_yaml_ng::from_str(&stdout)
        .unwrap_or_else(|e| panic!("generate kube-dns output is not a ConfigMap ({e}):\n{stdout}"));
    assert_eq!(
        cm.metadata.name.as_deref(),
        Some("kube-dns"),
        "ConfigMap name:\n{stdout}"
    );
    assert_eq!(
        cm.metadata.namespace.as_deref(),
        Some("kube-system"),
        "ConfigMap namespace:\n{stdout}"
    );
    let stub_json = cm
        .data
        .as_ref()
        .and_then(|d| d.get("stubDomains"))
        .unwrap_or_else(|| panic!("no data.stubDomains in:\n{stdout}"));
    let stubs: BTreeMap<String, Vec<String>> =
        serde_json::from_str(stub_json).unwrap_or_else(|e| {
            panic!("stubDomains is not a JSON object of lists ({e}):\n{stub_json}")
        });
    assert!(
        !stubs.contains_key("cluster.region1"),
        "region1's own zone must not be forwarded by region1's kube-dns: {stubs:?}"
    );
    let zones: Vec<&str> = stubs.keys().map(String::as_str).collect();
    assert_eq!(
        zones,
        ["cluster.region2", "clusterset.local"],
        "stubDomains zones"
    );

    // What kube-dns's dnsmasq-nanny makes of stubDomains: --server=/zone/ip#port.
    let mut server_flags = Vec::new();
    for (zone, targets) in &stubs {
        assert!(!targets.is_empty(), "stubDomains[{zone}] is empty");
        for t in targets {
            let addr: SocketAddr = t
                .parse()
                .unwrap_or_else(|e| panic!("stubDomains[{zone}] entry {t:?} is not IP:PORT: {e}"));
            assert_eq!(addr, direct, "stubDomains[{zone}] points elsewhere");
            server_flags.push(format!("--server=/{zone}/{}#{}", addr.ip(), addr.port()));
        }
    }

    let dnsmasq = programs["dnsmasq"].clone();
    let pid_file = dir.path().join("dnsmasq.pid");
    let (_dnsmasq, via) = start_dns_daemon(
        "dnsmasq",
        dir.path(),
        None,
        ("dns-version.cluster.region2.", RecordType::TXT),
        |port| {
            let mut cmd = Command::new(&dnsmasq);
            // As kube-dns's dnsmasq-nanny runs it; plus --conf-file=/dev/null
            // so that the host's /etc/dnsmasq.conf does not leak in.
            cmd.args([
                "-k",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--cache-size=1000",
                "--no-negcache",
                "--dns-loop-detect",
                "--log-facility=-",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--user=root",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", pid_file.display()))
            .args(&server_flags);
            cmd
        },
    )
    .await;

    let mut rows: Vec<&Row> = REMOTE_TABLE.iter().collect();
    rows.push(&EXTERNAL_NAME);
    compare(direct, via, "dnsmasq", &rows).await;
    // Twice: the second round comes from dnsmasq's cache.
    compare(direct, via, "dnsmasq (cached)", &rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_forwarding_and_stub_zones_answer_like_crossdns() {
    let Some(programs) = require(&["unbound"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let running = demo_crossdns(dir.path()).await;
    let direct = running.dns[0];
    let (ip, port) = (direct.ip(), direct.port());

    let unbound = programs["unbound"].clone();
    let work = dir.path().to_owned();
    let (_unbound, via) = start_dns_daemon(
        "unbound",
        dir.path(),
        None,
        ("dns-version.cluster.region2.", RecordType::TXT),
        |uport| {
            let conf = work.join(format!("unbound-{uport}.conf"));
            let text = format!(
                "server:\n\
                 \x20   interface: 127.0.0.1@{uport}\n\
                 \x20   do-ip6: no\n\
                 \x20   num-threads: 1\n\
                 \x20   do-not-query-localhost: no\n\
                 \x20   domain-insecure: \"cluster.region1\"\n\
                 \x20   domain-insecure: \"cluster.region2\"\n\
                 \x20   domain-insecure: \"clusterset.local\"\n\
                 \x20   local-zone: \"local.\" nodefault\n\
                 \x20   module-config: \"iterator\"\n\
                 \x20   chroot: \"\"\n\
                 \x20   username: \"\"\n\
                 \x20   directory: \"{dir}\"\n\
                 \x20   pidfile: \"\"\n\
                 \x20   do-daemonize: no\n\
                 \x20   use-syslog: no\n\
                 \x20   logfile: \"\"\n\
                 \x20   verbosity: 1\n\
                 \x20   access-control: 127.0.0.0/8 allow\n\
                 \x20   qname-minimisation: yes\n\
                 forward-zone:\n\
                 \x20   name: \"cluster.region2\"\n\
                 \x20   forward-addr: {ip}@{port}\n\
                 forward-zone:\n\
                 \x20   name: \"clusterset.local\"\n\
                 \x20   forward-addr: {ip}@{port}\n\
                 stub-zone:\n\
                 \x20   name: \"cluster.region1\"\n\
                 \x20   stub-addr: {ip}@{port}\n",
                dir = work.display()
            );
            std::fs::write(&conf, text).expect("write unbound.conf");
            let mut cmd = Command::new(&unbound);
            cmd.arg("-d").arg("-c").arg(&conf);
            cmd
        },
    )
    .await;

    let rows: Vec<&Row> = REMOTE_TABLE.iter().chain(STUB_TABLE).collect();
    compare(direct, via, "unbound", &rows).await;
    compare(direct, via, "unbound (cached)", &rows).await;
}

// ---------------------------------------------------------------------------
// crossdns forwarding to knotd
// ---------------------------------------------------------------------------

const ZONE3: &str = "cluster.region3";

/// `n<i>` → 10.3.<i/250>.<i%250+1>
fn zone3_names(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("n{i}"), format!("10.3.{}.{}", i / 250, i % 250 + 1)))
        .collect()
}

fn forward_config(upstreams: &[SocketAddr], extra: &str, local_dir: &Path) -> String {
    let list: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\n\
         allow: [\"127.0.0.0/8\"]\n\
         clusters:\n  - {{name: region1, zone: cluster.region1, manifests: \"{}\"}}\n\
         forward:\n  - zone: {ZONE3}\n    upstreams: [{}]\n{extra}",
        local_dir.display(),
        list.join(", ")
    )
}

fn a_of(m: &hickory_proto::op::Message) -> Vec<String> {
    summarize(m)
        .answers
        .into_iter()
        .filter_map(|a| a.split(' ').nth(2).map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_marked_down_cached_names_are_served_stale_and_it_comes_back() {
    let Some(programs) = require(&["knotd"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("region1");
    std::fs::create_dir(&local).expect("mkdir");
    let names = zone3_names(10);
    let mut knot = Knot::start(
        &programs["knotd"],
        dir.path(),
        "knot",
        ZONE3,
        &zone_file(ZONE3, 1, &names),
    )
    .await;
    let up = knot.addr.to_string();
    let stale = start_crossdns(
        dir.path(),
        "stale",
        &forward_config(
            &[knot.addr],
            "    max_fails: 2\n    stale_for: 1h\n",
            &local,
        ),
    )
    .await;
    let nostale = start_crossdns(
        dir.path(),
        "nostale",
        &forward_config(
            &[knot.addr],
            "    max_fails: 2\n    stale_for: \"0\"\n",
            &local,
        ),
    )
    .await;
    let (s_dns, n_dns) = (stale.dns[0], nostale.dns[0]);
    let labels = [("zone", ZONE3), ("upstream", up.as_str())];

    // Cached while the upstream lives.
    for server in [s_dns, n_dns] {
        let m = query(server, "n0.cluster.region3.", A, Transport::Udp).await;
        assert_eq!(m.metadata.response_code, NOERROR, "{:?}", summarize(&m));
        assert_eq!(a_of(&m), ["10.3.0.1"], "{:?}", summarize(&m));
        assert!(min_ttl(&m).is_some_and(|t| t <= 1), "zone TTL is 1: {m:?}");
    }
    assert_eq!(
        must_metric(&stale, "crossdns_forward_upstream_up", &labels),
        1.0
    );

    knot.kill();
    // Let the TTL (1 s) run out.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Cached name: served stale, TTL 30 (RFC 8767), within one attempt's timeout.
    let t = Instant::now();
    let m = exchange(
        s_dns,
        "n0.cluster.region3.",
        A,
        Transport::Udp,
        Duration::from_secs(5),
    )
    .await
    .expect("a stale answer, not silence");
    let took = t.elapsed();
    assert_eq!(m.metadata.response_code, NOERROR, "{:?}", summarize(&m));
    assert_eq!(a_of(&m), ["10.3.0.1"], "stale answer: {:?}", summarize(&m));
    assert!(
        m.answers.iter().all(|r| r.ttl == 30),
        "stale answers carry TTL 30: {:?}",
        m.answers
    );
    assert!(
        took < Duration::from_millis(2500),
        "stale answer took {took:?} (attempt timeout 1.5 s)"
    );

    // Uncached name: nothing to serve.
    expect_servfail(
        s_dns,
        "n1.cluster.region3.",
        A,
        Duration::from_secs(5),
        "an uncached name has nothing to serve",
    )
    .await;

    // Two failures in a row (max_fails 2): down.
    assert_eq!(
        must_metric(&stale, "crossdns_forward_upstream_failures_total", &labels),
        2.0
    );
    assert_eq!(
        must_metric(&stale, "crossdns_forward_upstream_up", &labels),
        0.0
    );
    assert!(
        must_metric(
            &stale,
            "crossdns_forward_stale_served_total",
            &[("zone", ZONE3)]
        ) >= 1.0
    );

    // Down: stale answers come at once, without waiting on the dead upstream.
    let t = Instant::now();
    let m = query(s_dns, "n0.cluster.region3.", A, Transport::Udp).await;
    assert_eq!(a_of(&m), ["10.3.0.1"]);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "stale answer while down took {:?}",
        t.elapsed()
    );

    // stale_for: 0 → no stale answer: SERVFAIL.
    expect_servfail(
        n_dns,
        "n0.cluster.region3.",
        A,
        Duration::from_secs(5),
        "stale_for 0 must not serve stale",
    )
    .await;
    assert_eq!(
        metric(
            &nostale.metrics.encode(),
            "crossdns_forward_stale_served_total",
            &[("zone", ZONE3)]
        ),
        Some(0.0)
    );

    // Back on the same port: probed up within a few seconds, fresh answers.
    knot.restart().await;
    let took = wait_metric(
        &stale,
        "crossdns_forward_upstream_up",
        &labels,
        |v| v == 1.0,
        Duration::from_secs(5),
    )
    .await;
    eprintln!("upstream marked up again {took:?} after knotd answered");
    let m = query(s_dns, "n0.cluster.region3.", A, Transport::Udp).await;
    assert_eq!(m.metadata.response_code, NOERROR);
    assert_eq!(a_of(&m), ["10.3.0.1"]);
    assert!(
        min_ttl(&m).is_some_and(|t| t <= 1),
        "a fresh answer has the zone's TTL (1), not the stale 30: {:?}",
        m.answers
    );
    let m = query(s_dns, "n1.cluster.region3.", A, Transport::Udp).await;
    assert_eq!(a_of(&m), ["10.3.0.2"], "{:?}", summarize(&m));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_sequential_upstreams_a_killed_first_one_costs_only_max_fails_queries() {
    let Some(programs) = require(&["knotd"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("region1");
    std::fs::create_dir(&local).expect("mkdir");
    let names = zone3_names(40);
    let zone = zone_file(ZONE3, 300, &names);
    let mut first = Knot::start(&programs["knotd"], dir.path(), "first", ZONE3, &zone).await;
    let second = Knot::start(&programs["knotd"], dir.path(), "second", ZONE3, &zone).await;
    let running = start_crossdns(
        dir.path(),
        "seq",
        &forward_config(
            &[first.addr, second.addr],
            "    policy: sequential\n    max_fails: 2\n",
            &local,
        ),
    )
    .await;
    let dns = running.dns[0];
    let (f, s) = (first.addr.to_string(), second.addr.to_string());
    let first_labels = [("zone", ZONE3), ("upstream", f.as_str())];
    let second_labels = [("zone", ZONE3), ("upstream", s.as_str())];

    // Sanity: the first upstream is the one in use.
    let m = query(dns, "n39.cluster.region3.", A, Transport::Udp).await;
    assert_eq!(a_of(&m), ["10.3.0.40"]);
    assert_eq!(
        must_metric(
            &running,
            "crossdns_forward_upstream_requests_total",
            &first_labels
        ),
        1.0
    );

    first.kill();
    let mut times = Vec::new();
    for (i, (owner, ip)) in names.iter().take(20).enumerate() {
        let name = format!("{owner}.{ZONE3}.");
        let t = Instant::now();
        let m = exchange(dns, &name, A, Transport::Udp, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("query {i} ({name}) failed: {e}"));
        times.push(t.elapsed());
        assert_eq!(
            m.metadata.response_code,
            NOERROR,
            "query {i} ({name}): {:?}",
            summarize(&m)
        );
        assert_eq!(a_of(&m), std::slice::from_ref(ip), "query {i} ({name})");
    }
    eprintln!("per-query times: {times:?}");
    assert_eq!(
        must_metric(
            &running,
            "crossdns_forward_upstream_failures_total",
            &first_labels
        ),
        2.0,
        "the dead upstream is tried exactly max_fails times"
    );
    assert_eq!(
        must_metric(&running, "crossdns_forward_upstream_up", &first_labels),
        0.0
    );
    assert_eq!(
        must_metric(
            &running,
            "crossdns_forward_upstream_failures_total",
            &second_labels
        ),
        0.0
    );
    for (i, t) in times.iter().enumerate().skip(2) {
        assert!(
            *t < Duration::from_millis(100),
            "query {i} took {t:?}: after max_fails no query may wait on the dead upstream ({times:?})"
        );
    }
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_crossdns_forwarding_a_zone_to_each_other_answer_servfail_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("region1");
    std::fs::create_dir(&local).expect("mkdir");
    let zone_cfg = |upstream: SocketAddr, listen: u16| {
        format!(
            "dns:\n  listen: [\"127.0.0.1:{listen}\"]\n\
             allow: [\"127.0.0.0/8\"]\n\
             clusters:\n  - {{name: region1, zone: cluster.region1, manifests: \"{}\"}}\n\
             forward:\n  - zone: loop.test\n    upstreams: [\"{upstream}\"]\n",
            local.display()
        )
    };
    let y_port = free_dns_port();
    let x = start_crossdns(
        dir.path(),
        "x",
        &zone_cfg(interop_support::loopback(y_port), 0),
    )
    .await;
    let y = start_crossdns(dir.path(), "y", &zone_cfg(x.dns[0], y_port)).await;

    for (i, name) in ["loop.test.", "www.loop.test."].iter().enumerate() {
        let t = Instant::now();
        let m = exchange(x.dns[0], name, A, Transport::Udp, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("query {i} ({name}): {e}"));
        let took = t.elapsed();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::ServFail,
            "{name}: {:?}",
            summarize(&m)
        );
        assert!(
            took < Duration::from_secs(1),
            "{name}: SERVFAIL took {took:?}"
        );
    }
    let loops: f64 = [&x, &y]
        .iter()
        .map(|r| must_metric(r, "crossdns_forward_loops_total", &[("zone", "loop.test")]))
        .sum();
    assert!(loops > 0.0, "crossdns_forward_loops_total stayed 0");
    // Not a timeout storm: every hop answered.
    for r in [&x, &y] {
        assert_eq!(
            must_metric(
                r,
                "crossdns_forward_upstream_failures_total",
                &[("zone", "loop.test")]
            ),
            0.0,
            "{}",
            r.metrics.encode()
        );
    }
}
