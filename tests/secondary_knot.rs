//! crossdns as a secondary of knotd serving a plain zone file (design.md §7,
//! the `primary:` source): transfers signed with a TSIG key, the zone's
//! names answered as knotd answers them, changes followed by IXFR, a
//! NOTIFY acted on within the 1 s bound, and the source semantics of the
//! other sources: never synced → SERVFAIL and `/readyz` 503 naming the
//! cluster; a killed primary → the last data kept, failing by cause, stale
//! after `stale_after`, fresh again once it is back.

mod interop_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crossdns::app::Running;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use interop_support::knot_primary::{KnotPrimary, KnotPrimaryOptions, TsigKey};
use interop_support::{
    Summary, Transport, expect_servfail, free_dns_port, metric, must_metric, query, require,
    start_crossdns, summarize, wait_metric,
};

const ZONE: &str = "cluster.lab";
const SECRET: &str = "c2l0ZXMtc2VjcmV0LWtleS0xMjM0NTY3ODkwYWJjZA==";

/// A zone file of Kubernetes names (no crossdns metadata), as an operator
/// would keep one in knotd or BIND, with a name outside the grammar.
fn zone_file(serial: u32, web: &str) -> String {
    format!(
        "$ORIGIN {ZONE}.\n$TTL 30\n@ SOA ns hostmaster {serial} 3600 600 86400 30\n@ NS ns\nns A 127.0.0.1\n\
         www A 192.0.2.1\n\
         web.shop.svc A {web}\nweb.shop.svc AAAA fd00::1\n_http._tcp.web.shop.svc SRV 0 100 80 web.shop.svc\n\
         db.shop.svc 60 A 10.9.1.1\ndb.shop.svc 60 A 10.9.1.2\ndb-0.db.shop.svc A 10.9.1.1\ndb-1.db.shop.svc A 10.9.1.2\n\
         _pg._tcp.db.shop.svc SRV 0 50 5432 db-0.db.shop.svc\n_pg._tcp.db.shop.svc SRV 0 50 5432 db-1.db.shop.svc\n\
         alias.shop.svc CNAME example.com.\n\
         10-9-2-1.shop.pod A 10.9.2.1\n"
    )
}

fn key() -> TsigKey {
    TsigKey::sha256("sites", SECRET)
}

/// In-process crossdns on `port` following `servers` with `key` (the
/// secret file holds `secret`), a clusterset over the zone.
async fn secondary(
    dir: &Path,
    port: u16,
    servers: &[SocketAddr],
    secret: &str,
    poll: &str,
) -> Running {
    let k = TsigKey::sha256("sites", secret);
    k.write_secret(dir);
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    let yaml = format!(
        "dns: {{listen: [\"127.0.0.1:{port}\"], ttl: 5}}\n\
         admin: {{listen: \"127.0.0.1:0\"}}\n\
         tsig_keys: [{{name: sites, algorithm: hmac-sha256, secret_file: sites.key}}]\n\
         clusters:\n  - name: lab\n    zone: {ZONE}\n    primary: {{servers: [{}], key: sites, poll: {poll}}}\n\
         clusterset: {{zone: clusterset.local, stale_after: 2s, all_down: servfail}}\n",
        servers.join(", ")
    );
    start_crossdns(dir, "secondary", &yaml).await
}

fn fqdn(name: &str) -> String {
    format!("{name}.{ZONE}.")
}

/// Polls until `name` `qtype` at `server` summarizes as `want`.
async fn wait_answer(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    want: &Summary,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let got = summarize(&query(server, name, qtype, Transport::Udp).await);
        if got == *want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{name} {qtype}: {got:?}, not {want:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The names of the zone file and their neighbours: what knotd answers
/// from the file, crossdns must answer from the transfer.
const TABLE: &[(&str, RecordType)] = &[
    ("web.shop.svc", RecordType::A),
    ("web.shop.svc", RecordType::AAAA),
    ("web.shop.svc", RecordType::TXT),
    ("_http._tcp.web.shop.svc", RecordType::SRV),
    ("_tcp.web.shop.svc", RecordType::SRV),
    ("db.shop.svc", RecordType::A),
    ("db-0.db.shop.svc", RecordType::A),
    ("db-1.db.shop.svc", RecordType::AAAA),
    ("_pg._tcp.db.shop.svc", RecordType::SRV),
    ("alias.shop.svc", RecordType::CNAME),
    ("alias.shop.svc", RecordType::A),
    ("10-9-2-1.shop.pod", RecordType::A),
    ("shop.svc", RecordType::A),
    ("nope.shop.svc", RecordType::A),
    ("nope.db.shop.svc", RecordType::A),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_of_knotd_answers_its_zone_file_and_follows_changes_by_ixfr() {
    let Some(p) = require(&["knotd", "knotc"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = KnotPrimaryOptions {
        key: Some(key()),
        notify: None,
    };
    let knot = KnotPrimary::start(
        &p["knotd"],
        dir.path(),
        ZONE,
        &zone_file(1, "10.9.0.1"),
        opts,
    )
    .await;
    let port = free_dns_port();
    let running = secondary(dir.path(), port, &[knot.addr], SECRET, "200ms").await;
    let dns = running.dns[0];
    let web = summarize(
        &query(
            knot.addr,
            &fqdn("web.shop.svc"),
            RecordType::A,
            Transport::Udp,
        )
        .await,
    );
    wait_answer(
        dns,
        &fqdn("web.shop.svc"),
        RecordType::A,
        &web,
        Duration::from_secs(10),
    )
    .await;
    for (name, qtype) in TABLE {
        for transport in [Transport::Udp, Transport::Tcp] {
            let want = summarize(&query(knot.addr, &fqdn(name), *qtype, transport).await);
            let got = summarize(&query(dns, &fqdn(name), *qtype, transport).await);
            assert_eq!(
                got, want,
                "{name} {qtype} over {transport:?}: crossdns vs knotd"
            );
        }
    }
    // TTLs as transferred; the serial is the primary's.
    let db = query(dns, &fqdn("db.shop.svc"), RecordType::A, Transport::Udp).await;
    assert!(db.answers.iter().all(|r| r.ttl == 60), "{:?}", db.answers);
    let soa = query(dns, &format!("{ZONE}."), RecordType::SOA, Transport::Udp).await;
    let serials: Vec<u32> = soa
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::SOA(s) => Some(s.serial),
            _ => None,
        })
        .collect();
    assert_eq!(serials, [1], "the primary's serial");
    // Names outside the Kubernetes grammar are not served (and counted).
    let www = query(dns, &fqdn("www"), RecordType::A, Transport::Udp).await;
    assert_eq!(www.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        must_metric(
            &running,
            "crossdns_primary_skipped_names",
            &[("cluster", "lab")]
        ),
        2.0
    );
    // PTR from the transferred addresses: hosts name themselves.
    let ptr = summarize(
        &query(
            dns,
            "1.1.9.10.in-addr.arpa.",
            RecordType::PTR,
            Transport::Udp,
        )
        .await,
    );
    assert_eq!(
        ptr.answers,
        ["1.1.9.10.in-addr.arpa. PTR db-0.db.shop.svc.cluster.lab."]
    );
    // The clusterset takes the plain zone's Services as exported.
    let cs = summarize(
        &query(
            dns,
            "web.shop.svc.clusterset.local.",
            RecordType::A,
            Transport::Udp,
        )
        .await,
    );
    assert_eq!(cs.answers, ["web.shop.svc.clusterset.local. A 10.9.0.1"]);

    // A change to the zone file reaches crossdns as an IXFR.
    knot.reload(&zone_file(2, "10.9.0.2"));
    let web = summarize(
        &query(
            knot.addr,
            &fqdn("web.shop.svc"),
            RecordType::A,
            Transport::Udp,
        )
        .await,
    );
    assert_eq!(web.answers, ["web.shop.svc.cluster.lab. A 10.9.0.2"]);
    wait_answer(
        dns,
        &fqdn("web.shop.svc"),
        RecordType::A,
        &web,
        Duration::from_secs(5),
    )
    .await;
    let ixfr = [("cluster", "lab"), ("type", "ixfr")];
    wait_metric(
        &running,
        "crossdns_primary_transfers_total",
        &ixfr,
        |v| v >= 1.0,
        Duration::from_secs(2),
    )
    .await;
    let axfr = [("cluster", "lab"), ("type", "axfr")];
    assert_eq!(
        must_metric(&running, "crossdns_primary_transfers_total", &axfr),
        1.0,
        "one AXFR, then IXFR"
    );
    assert_eq!(
        must_metric(&running, "crossdns_primary_serial", &[("cluster", "lab")]),
        2.0
    );
    assert!(
        knot.log().contains("IXFR, outgoing"),
        "knotd served IXFR:\n{}",
        knot.log()
    );
    let cs = summarize(
        &query(
            dns,
            "web.shop.svc.clusterset.local.",
            RecordType::A,
            Transport::Udp,
        )
        .await,
    );
    assert_eq!(cs.answers, ["web.shop.svc.clusterset.local. A 10.9.0.2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_from_knotd_is_acted_on_within_a_second() {
    let Some(p) = require(&["knotd", "knotc"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_dns_port();
    let opts = KnotPrimaryOptions {
        key: Some(key()),
        notify: Some(SocketAddr::from(([127, 0, 0, 1], port))),
    };
    let knot = KnotPrimary::start(
        &p["knotd"],
        dir.path(),
        ZONE,
        &zone_file(1, "10.9.0.1"),
        opts,
    )
    .await;
    // Polls an hour apart: only a NOTIFY makes it check again soon.
    let running = secondary(dir.path(), port, &[knot.addr], SECRET, "1h").await;
    let dns = running.dns[0];
    let name = fqdn("web.shop.svc");
    let web = summarize(&query(knot.addr, &name, RecordType::A, Transport::Udp).await);
    wait_answer(dns, &name, RecordType::A, &web, Duration::from_secs(10)).await;
    for (serial, ip) in [(2, "10.9.0.2"), (3, "10.9.0.3")] {
        // knotc returns once knotd has loaded the change and journaled it.
        knot.reload(&zone_file(serial, ip));
        let loaded = Instant::now();
        let want = Summary {
            rcode: ResponseCode::NoError,
            answers: vec![format!("{name} A {ip}")],
        };
        wait_answer(dns, &name, RecordType::A, &want, Duration::from_secs(1)).await;
        eprintln!(
            "serial {serial}: answered {:?} after knotd loaded it",
            loaded.elapsed()
        );
    }
    let notified = [("cluster", "lab"), ("trigger", "notify")];
    assert!(must_metric(&running, "crossdns_primary_checks_total", &notified) >= 2.0);
    assert_eq!(
        must_metric(
            &running,
            "crossdns_primary_checks_total",
            &[("cluster", "lab"), ("trigger", "poll")]
        ),
        1.0,
        "only the first check was polled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_never_answered_leaves_its_zone_servfail_and_readyz_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens there; and a key that knotd would refuse.
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_dns_port()));
    let running = secondary(dir.path(), free_dns_port(), &[nobody], SECRET, "200ms").await;
    let dns = running.dns[0];
    let unreachable = [("cluster", "lab"), ("cause", "unreachable")];
    wait_metric(
        &running,
        "crossdns_cluster_failures_total",
        &unreachable,
        |v| v >= 2.0,
        Duration::from_secs(5),
    )
    .await;
    for name in ["web.shop.svc", "shop.svc", ""] {
        let n = if name.is_empty() {
            format!("{ZONE}.")
        } else {
            fqdn(name)
        };
        expect_servfail(
            dns,
            &n,
            RecordType::A,
            Duration::from_secs(2),
            "never synced",
        )
        .await;
    }
    expect_servfail(
        dns,
        "web.shop.svc.clusterset.local.",
        RecordType::A,
        Duration::from_secs(2),
        "no cluster synced",
    )
    .await;
    let admin = running.admin.expect("admin");
    let resp = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(resp.status().as_u16(), 503);
    let body = resp.text().await.expect("body");
    assert!(body.contains("\"not_synced\":[\"lab\"]"), "{body}");
    assert_eq!(
        must_metric(&running, "crossdns_cluster_failing", &unreachable),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_by_knotd_and_named_as_the_cause() {
    let Some(p) = require(&["knotd"]) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = KnotPrimaryOptions {
        key: Some(key()),
        notify: None,
    };
    let knot = KnotPrimary::start(
        &p["knotd"],
        dir.path(),
        ZONE,
        &zone_file(1, "10.9.0.1"),
        opts,
    )
    .await;
    let other = "b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmctMTIz";
    let running = secondary(dir.path(), free_dns_port(), &[knot.addr], other, "200ms").await;
    let refused = [("cluster", "lab"), ("cause", "unauthorized")];
    wait_metric(
        &running,
        "crossdns_cluster_failing",
        &refused,
        |v| v == 1.0,
        Duration::from_secs(5),
    )
    .await;
    expect_servfail(
        running.dns[0],
        &fqdn("web.shop.svc"),
        RecordType::A,
        Duration::from_secs(2),
        "knotd refuses the key",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_knotd_leaves_the_last_data_goes_stale_and_comes_back() {
    let Some(p) = require(&["knotd"]) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = KnotPrimaryOptions {
        key: Some(key()),
        notify: None,
    };
    let mut knot = KnotPrimary::start(
        &p["knotd"],
        dir.path(),
        ZONE,
        &zone_file(1, "10.9.0.1"),
        opts,
    )
    .await;
    // A second server that is never there: tried after the first, in order.
    let spare = SocketAddr::from(([127, 0, 0, 1], free_dns_port()));
    let running = secondary(
        dir.path(),
        free_dns_port(),
        &[knot.addr, spare],
        SECRET,
        "200ms",
    )
    .await;
    let dns = running.dns[0];
    let name = fqdn("web.shop.svc");
    let web = summarize(&query(knot.addr, &name, RecordType::A, Transport::Udp).await);
    wait_answer(dns, &name, RecordType::A, &web, Duration::from_secs(10)).await;
    let cs_name = "web.shop.svc.clusterset.local.";
    let cs = summarize(&query(dns, cs_name, RecordType::A, Transport::Udp).await);
    assert_eq!(cs.answers, ["web.shop.svc.clusterset.local. A 10.9.0.1"]);
    let fresh = [("cluster", "lab")];

    knot.kill();
    let killed = Instant::now();
    let failing = [("cluster", "lab"), ("cause", "unreachable")];
    wait_metric(
        &running,
        "crossdns_cluster_failing",
        &failing,
        |v| v == 1.0,
        Duration::from_secs(3),
    )
    .await;
    // The zone keeps answering from the last transfer.
    for (n, t) in TABLE {
        let got = query(dns, &fqdn(n), *t, Transport::Udp).await;
        assert_ne!(
            got.metadata.response_code,
            ResponseCode::ServFail,
            "{n} {t} after the kill"
        );
    }
    assert_eq!(
        summarize(&query(dns, &name, RecordType::A, Transport::Udp).await),
        web
    );
    // Until stale_after (2 s) the clusterset still answers from it; then
    // the cluster is out of the clusterset (its only member: SERVFAIL).
    assert_eq!(
        must_metric(&running, "crossdns_clusterset_cluster_fresh", &fresh),
        1.0
    );
    let waited = wait_metric(
        &running,
        "crossdns_clusterset_cluster_fresh",
        &fresh,
        |v| v == 0.0,
        Duration::from_secs(6),
    )
    .await;
    assert!(
        killed.elapsed() >= Duration::from_secs(2),
        "stale after {:?}",
        killed.elapsed()
    );
    eprintln!(
        "stale {:?} after the kill ({waited:?} waited)",
        killed.elapsed()
    );
    expect_servfail(
        dns,
        cs_name,
        RecordType::A,
        Duration::from_secs(2),
        "the only cluster is stale",
    )
    .await;
    assert!(
        metric(
            &running.metrics.encode(),
            "crossdns_cluster_failing_seconds",
            &fresh
        )
        .is_some_and(|s| s >= 2.0)
    );

    knot.restart().await;
    let back = Instant::now();
    let answered = wait_answer(dns, cs_name, RecordType::A, &cs, Duration::from_secs(2)).await;
    eprintln!(
        "clusterset answered again {answered:?} after knotd was back ({:?})",
        back.elapsed()
    );
    assert_eq!(
        must_metric(&running, "crossdns_cluster_failing", &failing),
        0.0
    );
}
