//! Site mode (design.md §7, issue 9): each site's crossdns — the real
//! binary — watches only its own test apiserver, holding a kubeconfig for
//! it alone, and is the primary for its own zone (transfers allowed with the
//! TSIG key, NOTIFY to the other sites); it follows every other site's zone
//! with a `primary:` source over DNS over TLS, signed with the key. Every
//! site has the clusterset zone.
//!
//! Two sites answer every per-cluster and clusterset row alike; an endpoint
//! change at one site is answered at the other within the 1 s contract; an
//! endpoint made unready leaves the other site's clusterset answer within
//! 1 s; a killed site's names are still answered from the last transfer, it
//! leaves the clusterset after `stale_after` and is back within 1 s of its
//! return. With three sites, each apiserver serves one set of watches in
//! site mode and three when every site watches every apiserver.

mod xfr_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use hickory_proto::rr::RecordType;
use xfr_support::*;

const CS: &str = "clusterset.local";
const STALE_AFTER: Duration = Duration::from_secs(2);
/// The `primary:` sources' SOA check interval (the default).
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    /// Each site watches its own apiserver and follows the others by XFR.
    Site,
    /// Each site watches every apiserver.
    WatchAll,
}

/// One site: its apiserver, its crossdns's ports and files, and the
/// running crossdns (None while killed).
struct Site {
    n: usize,
    api: FakeApiServer,
    dns: u16,
    dot: u16,
    dir: PathBuf,
    crossdns: Option<Proc>,
}

impl Site {
    fn cluster(&self) -> String {
        format!("region{}", self.n)
    }

    fn zone(&self) -> String {
        format!("cluster.region{}", self.n)
    }

    fn addr(&self) -> SocketAddr {
        loopback(self.dns)
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join(format!("{}.kubeconfig", self.cluster()))
    }
}

/// `n` sites, each with its apiserver loaded with a demo region (region1's
/// data for site 1, region2's for the others), a server certificate for
/// `dns.region<n>` from `ca`, and the TSIG key file.
async fn sites(root: &Path, n: usize, ca: &TestCa) -> Vec<Site> {
    let mut out = Vec::new();
    for i in 1..=n {
        let dir = root.join(format!("site{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        init_tls();
        let api = FakeApiServer::start().await.expect("test apiserver");
        let demo = if i == 1 { "region1" } else { "region2" };
        api.apply_dir(&repo().join("examples/demo").join(demo))
            .expect("apply the demo");
        std::fs::write(dir.join("sites.key"), format!("{}\n", secret_b64())).expect("key");
        let site = Site {
            n: i,
            api,
            dns: free_dns_port(),
            dot: free_dns_port(),
            dir,
            crossdns: None,
        };
        site.api
            .write_kubeconfig(&site.kubeconfig(), &site.cluster())
            .expect("kubeconfig");
        let cert = ca.issue(
            &format!("dns-region{i}"),
            &[&format!("dns.region{i}")],
            false,
        );
        std::fs::copy(&cert.cert, site.dir.join("tls.crt")).expect("cert");
        std::fs::copy(&cert.key, site.dir.join("tls.key")).expect("key");
        std::fs::copy(&ca.cert, site.dir.join("ca.crt")).expect("ca");
        out.push(site);
    }
    out
}

/// The config of site `me`. Site mode: its own apiserver (the only
/// kubeconfig in its folder), transfers out with the key and NOTIFY to the
/// others, the others' zones from `tls://` primaries. Watch-all: a
/// kubeconfig for every apiserver, copied into its folder.
fn config(sites: &[Site], me: usize, topology: Topology) -> String {
    let site = &sites[me];
    let d = site.dir.display();
    let mut clusters = String::new();
    for (i, other) in sites.iter().enumerate() {
        let (name, zone) = (other.cluster(), other.zone());
        if i == me {
            clusters += &format!(
                "  - {{name: {name}, zone: {zone}, kubeconfig: {}, context: {name}}}\n",
                site.kubeconfig().display()
            );
        } else if topology == Topology::WatchAll {
            let kc = site.dir.join(format!("{name}.kubeconfig"));
            std::fs::copy(other.kubeconfig(), &kc).expect("copy kubeconfig");
            clusters += &format!(
                "  - {{name: {name}, zone: {zone}, kubeconfig: {}, context: {name}}}\n",
                kc.display()
            );
        } else {
            clusters += &format!(
                "  - name: {name}\n    zone: {zone}\n    primary: {{servers: [\"tls://127.0.0.1:{}#dns.{name}\"], \
                 key: {KEY}, poll: {}s, tls_ca: {d}/ca.crt}}\n",
                other.dot,
                POLL.as_secs()
            );
        }
    }
    let notify: Vec<String> = sites
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, s)| format!("\"127.0.0.1:{}\"", s.dns))
        .collect();
    let transfer = match topology {
        Topology::Site => format!(
            "tsig_keys: [{{name: {KEY}, algorithm: hmac-sha256, secret_file: {d}/sites.key}}]\n\
             transfer: {{allow: [\"127.0.0.0/8\"], key: {KEY}, notify: [{}]}}\n",
            notify.join(", ")
        ),
        Topology::WatchAll => String::new(),
    };
    format!(
        "dns:\n  listen: [\"127.0.0.1:{}\"]\n  ttl: 5\n  tls_listen: [\"127.0.0.1:{}\"]\n  \
         tls_cert: {d}/tls.crt\n  tls_key: {d}/tls.key\n\
         allow: [\"127.0.0.0/8\"]\n{transfer}clusters:\n{clusters}\
         clusterset: {{zone: {CS}, local: {}, policy: round-robin, stale_after: {}s}}\n",
        site.dns,
        site.dot,
        site.cluster(),
        STALE_AFTER.as_secs()
    )
}

/// Starts (or restarts, on the same ports) site `me`'s crossdns binary and
/// waits until it answers its own zone (synced from its apiserver).
async fn start(sites: &mut [Site], me: usize, topology: Topology) {
    let yaml = config(sites, me, topology);
    let site = &mut sites[me];
    let path = site.dir.join("crossdns.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let name = format!("crossdns-{}", site.cluster());
    let (proc, addr) = start_dns_daemon(
        &name,
        &site.dir,
        Some(site.dns),
        (CS, RecordType::SOA),
        |_| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_crossdns"));
            cmd.args(["serve", "--config"]).arg(&path).env(
                "CROSSDNS_LOG",
                std::env::var("CROSSDNS_LOG").unwrap_or_else(|_| "info".to_owned()),
            );
            cmd
        },
    )
    .await;
    site.crossdns = Some(proc);
    wait_soa(addr, &site.zone()).await;
}

/// Starts every site and waits until each answers every zone.
async fn start_all(sites: &mut [Site], topology: Topology) {
    for me in 0..sites.len() {
        start(sites, me, topology).await;
    }
    for s in sites.iter() {
        for z in sites.iter() {
            wait_soa(s.addr(), &z.zone()).await;
        }
    }
}

/// `n` sites in `topology`, every one answering every zone; their folder.
async fn running(n: usize, topology: Topology) -> (tempfile::TempDir, Vec<Site>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new(dir.path(), "sites");
    let mut s = sites(dir.path(), n, &ca).await;
    start_all(&mut s, topology).await;
    (dir, s)
}

/// The clusterset names (KEP-1645) of every owner in the AXFR of each
/// (cluster, zone): `<svc>.<ns>.svc.CS`, `<host>.<cluster>.<svc>.<ns>.svc.CS`,
/// `_<port>._<proto>.<svc>.<ns>.svc.CS`, the empty non-terminals,
/// `dns-version` and names that do not exist. Not the apex: each server
/// numbers its own clusterset SOA (the zone is never transferred).
async fn clusterset_names(server: SocketAddr, clusters: &[(String, String)]) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for (cluster, zone) in clusters {
        let axfr = transfer(server, &request(zone, None, None, 0), Some(&signer())).await;
        for name in table_names(zone, &axfr.records()) {
            let Some(rel) = name.strip_suffix(&format!("svc.{zone}.")) else {
                continue;
            };
            let labels: Vec<&str> = rel.split('.').filter(|l| !l.is_empty()).collect();
            if labels.contains(&"_crossdns") {
                continue;
            }
            let rel = match labels.as_slice() {
                [host, svc, ns] if !host.starts_with('_') => {
                    format!("{host}.{cluster}.{svc}.{ns}.")
                }
                _ => rel.to_owned(),
            };
            names.insert(format!("{rel}svc.{CS}."));
        }
    }
    for extra in [
        "dns-version.",
        "nope.",
        "nope.shop.svc.",
        "x.nope.web.shop.svc.",
    ] {
        names.insert(format!("{extra}{CS}."));
    }
    names.into_iter().collect()
}

/// Every per-cluster row and every clusterset row answers alike at `a`
/// and `b`.
async fn same_everywhere(a: SocketAddr, b: SocketAddr, clusters: &[(String, String)]) {
    same_tables(a, b).await;
    for server in [a, b] {
        let soa = query(server, &format!("{CS}."), RecordType::SOA, Transport::Udp).await;
        assert_eq!(summarize(&soa).answers.len(), 1, "{CS} SOA at {server}");
    }
    let names = clusterset_names(a, clusters).await;
    let (diffs, rows) = compare(a, b, CS, &names).await;
    assert!(rows > 100, "only {rows} clusterset rows asked");
    assert!(
        diffs.is_empty(),
        "{} of {rows} clusterset rows differ (first site, second site):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// The A answer of `name` at `server`, sorted.
async fn a_of(server: SocketAddr, name: &str) -> Vec<String> {
    summarize(&query(server, name, RecordType::A, Transport::Udp).await).answers
}

/// The demo's `web.shop` EndpointSlice of region1 with 10.1.1.5 ready or not.
fn web_slice(ready: bool) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-x1", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.1.1.5"], "conditions": {"ready": ready},
             "targetRef": {"kind": "Pod", "name": "web-7d4b9-abcde", "namespace": "shop"}},
            {"addresses": ["10.1.1.6"], "conditions": {"ready": false},
             "targetRef": {"kind": "Pod", "name": "web-7d4b9-fghij", "namespace": "shop"}}
        ]
    })
}

const WEB_CS: &str = "web.shop.svc.clusterset.local.";
const BOTH: [&str; 2] = ["10.101.0.30", "10.102.0.30"];
const CACHE1: &str = "cache.shop.svc.cluster.region1.";

/// Polls `server` until `name` A is exactly `want`; the time it took, or
/// a panic (with both sites' logs) after `limit`.
async fn must_answer(
    server: SocketAddr,
    name: &str,
    want: &[&str],
    limit: Duration,
    sites: &[Site],
) -> Duration {
    if let Some(t) = wait_a(server, name, want, limit).await {
        return t;
    }
    let logs: Vec<String> = sites
        .iter()
        .filter_map(|s| s.crossdns.as_ref().map(Proc::log))
        .collect();
    panic!(
        "{name} at {server}: {:?}, not {want:?}, after {limit:?}\n{}",
        a_of(server, name).await,
        logs.join("\n-----\n")
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_answer_alike_and_a_change_or_an_unready_endpoint_crosses_within_a_second() {
    let _serial = SERIAL.lock().await;
    let (_dir, s) = running(2, Topology::Site).await;
    let (a, b) = (s[0].addr(), s[1].addr());
    let clusters: Vec<(String, String)> = s.iter().map(|x| (x.cluster(), x.zone())).collect();
    must_answer(b, WEB_CS, &BOTH, Duration::from_secs(10), &s).await;
    same_everywhere(a, b, &clusters).await;

    // Changes at site A's apiserver, answered at site B; each from a quiet
    // zone (NOTIFYs to one target are spaced by 100 ms at least).
    let mut times = Vec::new();
    for i in 0..20u8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ip = format!("10.1.9.{}", 10 + i);
        let started = Instant::now();
        s[0].api.apply(cache_slice(&[&ip])).expect("apply");
        times.push(must_answer(b, CACHE1, &[&ip], Duration::from_secs(10), &s).await);
        let took = started.elapsed();
        assert!(
            took <= CONTRACT,
            "change {i} answered at site B after {took:?}"
        );
    }
    times.sort();
    eprintln!(
        "site A apiserver change -> site B answer, {} changes: p50 {:?}, p99 {:?}, max {:?}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    // And the other way: site B's apiserver, answered at site A.
    let started = Instant::now();
    s[1].api.apply(cache_slice(&["10.2.9.1"])).expect("apply");
    let cache2 = "cache.shop.svc.cluster.region2.";
    must_answer(a, cache2, &["10.2.9.1"], Duration::from_secs(10), &s).await;
    assert!(
        started.elapsed() <= CONTRACT,
        "B to A: {:?}",
        started.elapsed()
    );

    // Site A's only web endpoint goes unready: A leaves B's clusterset answer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    s[0].api.apply(web_slice(false)).expect("apply");
    must_answer(b, WEB_CS, &["10.102.0.30"], Duration::from_secs(10), &s).await;
    let gone = started.elapsed();
    eprintln!("site A endpoint unready -> out of site B's clusterset answer: {gone:?}");
    assert!(gone <= CONTRACT, "left B's clusterset after {gone:?}");
    let started = Instant::now();
    s[0].api.apply(web_slice(true)).expect("apply");
    must_answer(b, WEB_CS, &BOTH, Duration::from_secs(10), &s).await;
    assert!(
        started.elapsed() <= CONTRACT,
        "back after {:?}",
        started.elapsed()
    );
    same_everywhere(a, b, &clusters).await;
    // Each site also notifies the other of its copy of the other's zone:
    // refused there (that site is the zone's primary), and not retried.
    for site in &s {
        let log = site.crossdns.as_ref().expect("running").log();
        assert!(log.contains("NOTIFY refused"), "{log}");
        assert!(!log.contains("NOTIFY not acknowledged"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_site_is_answered_from_the_last_transfer_leaves_the_clusterset_and_comes_back() {
    let _serial = SERIAL.lock().await;
    let (_dir, mut s) = running(2, Topology::Site).await;
    let b = s[1].addr();
    must_answer(b, WEB_CS, &BOTH, Duration::from_secs(10), &s).await;
    let zone_a = s[0].zone();
    let axfr = transfer(b, &request(&zone_a, None, None, 0), Some(&signer())).await;
    let names = table_names(&zone_a, &axfr.records());
    let mut before = BTreeMap::new();
    for name in &names {
        let m = query(b, name, RecordType::A, Transport::Udp).await;
        before.insert(name.clone(), row(&m, &zone_a));
    }

    // SIGKILL: the site's crossdns goes away without a word.
    s[0].crossdns.as_mut().expect("running").kill();
    let killed = Instant::now();
    s[0].crossdns = None;
    let gone = must_answer(
        b,
        WEB_CS,
        &["10.102.0.30"],
        STALE_AFTER + POLL + Duration::from_secs(5),
        &s,
    )
    .await;
    eprintln!(
        "site A killed -> out of site B's clusterset after {gone:?} (stale_after {STALE_AFTER:?}, poll {POLL:?})"
    );
    assert!(
        gone >= STALE_AFTER,
        "A left B's clusterset {gone:?} after the kill, before stale_after"
    );
    assert!(
        gone <= STALE_AFTER + POLL + CONTRACT,
        "A left B's clusterset only {gone:?} after the kill"
    );
    // Its names are still answered at B as they were, from the last transfer.
    for name in &names {
        let m = query(b, name, RecordType::A, Transport::Udp).await;
        assert_eq!(row(&m, &zone_a), before[name], "{name} after A was killed");
    }
    assert!(killed.elapsed() > STALE_AFTER);

    // A returns on the same ports: back in B's clusterset within 1 s of
    // answering its own zone again.
    let restarted = Instant::now();
    start(&mut s, 0, Topology::Site).await;
    let serving = restarted.elapsed();
    let back = must_answer(b, WEB_CS, &BOTH, Duration::from_secs(10), &s).await;
    eprintln!(
        "site A restarted: answering its zone after {serving:?}, in site B's clusterset {back:?} after that ({:?} after the restart)",
        restarted.elapsed()
    );
    assert!(back <= CONTRACT, "A back in B's clusterset after {back:?}");
    // And a change at A crosses again.
    s[0].api.apply(cache_slice(&["10.1.9.99"])).expect("apply");
    let t = must_answer(b, CACHE1, &["10.1.9.99"], Duration::from_secs(10), &s).await;
    assert!(t <= CONTRACT, "a change after the restart crossed in {t:?}");
}

/// Every apiserver's open watches (by resource) once they have settled:
/// each resource is watched `want` times, the same resources everywhere.
async fn settled_watches(sites: &[Site], want: u64) -> Vec<BTreeMap<String, u64>> {
    let started = Instant::now();
    loop {
        let counts: Vec<BTreeMap<String, u64>> =
            sites.iter().map(|s| s.api.open_watches()).collect();
        let good = counts.iter().all(|c| {
            c.contains_key("services")
                && c.contains_key("endpointslices")
                && c.values().all(|v| *v == want)
                && c.keys().eq(counts[0].keys())
        });
        if good {
            return counts;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "open watches per apiserver: {counts:?}, not {want} per resource"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_sites_each_apiserver_serves_one_watcher_in_site_mode_and_three_otherwise() {
    let _serial = SERIAL.lock().await;
    let mut seen = Vec::new();
    for (topology, want) in [(Topology::Site, 1), (Topology::WatchAll, 3)] {
        let (_dir, s) = running(3, topology).await;
        settled_watches(&s, want).await;
        // Still so a while later (no relist or duplicate watch on the way).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let counts = settled_watches(&s, want).await;
        for z in &s {
            let name = format!("web.shop.svc.{}.", z.zone());
            for site in &s {
                assert!(
                    !a_of(site.addr(), &name).await.is_empty(),
                    "{name} at site {}",
                    site.n
                );
            }
        }
        eprintln!("N=3, {topology:?}: open watches per apiserver {counts:?}");
        seen.push(counts[0].values().sum::<u64>());
    }
    assert_eq!(
        seen[1],
        3 * seen[0],
        "watch-all holds three times the watches"
    );
}
