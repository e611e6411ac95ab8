//! knotd as a secondary of crossdns (design.md §7). knotd is configured
//! from `crossdns generate knot` output and follows both cluster zones and
//! the catalog: first by AXFR, then, on each change at the test apiserver,
//! told by a signed NOTIFY, by IXFR, all of it TSIG-signed. The answer
//! table asked of knotd equals crossdns's, before and after the change,
//! and the change is answered by knotd within the contract's 1 s. A knotd
//! that interprets the catalog (RFC 9432) picks up a cluster a config
//! reload adds.

mod xfr_support;

use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use xfr_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knotd_from_generate_knot_follows_by_axfr_then_ixfr_with_tsig_and_notify() {
    let Some(progs) = require(&["knotd"]) else {
        return;
    };
    let knotd = &progs["knotd"];
    let followed = follows(
        "knot",
        async |dir: &std::path::Path, port, fragment: String| {
            assert!(
                fragment.contains(&format!("secret: {}", secret_b64())),
                "{fragment}"
            );
            knot_secondary(knotd, dir, port, "", &fragment).await
        },
    )
    .await;
    let log = followed.secondary.log();
    assert!(log.contains("IXFR, incoming"), "knotd took no IXFR:\n{log}");
    assert!(!log.contains("error"), "knotd logged errors:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knotd_interpreting_the_catalog_picks_up_a_cluster_that_a_reload_adds() {
    let Some(progs) = require(&["knotd"]) else {
        return;
    };
    init_tls();
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let knot_addr = loopback(free_dns_port());
    let dns = loopback(free_dns_port());
    let key = dir.join("sites.key");
    std::fs::write(&key, secret_b64()).expect("key");
    let golden = repo().join("tests/golden/clusters");
    let config = |clusters: &[&str]| {
        let list: String = clusters
            .iter()
            .map(|c| {
                format!(
                    "  - {{name: {c}, zone: cluster.{c}, manifests: {}}}\n",
                    golden.join(c).display()
                )
            })
            .collect();
        format!(
            "dns:\n  listen: [\"{dns}\"]\n  advertise: [\"127.0.0.1\"]\nallow: [\"127.0.0.0/8\"]\n\
             tsig_keys: [{{name: {KEY}, algorithm: hmac-sha256, secret_file: {}}}]\n\
             transfer: {{allow: [\"127.0.0.0/8\"], key: {KEY}, notify: [\"{knot_addr}\"], catalog: {CATALOG}}}\n\
             clusters:\n{list}",
            key.display()
        )
    };
    let path = dir.join("primary.yaml");
    std::fs::write(&path, config(&["region2"])).expect("config");
    let settings = crossdns::config::Settings::load(&path).expect("valid config");
    let server = tokio::spawn(crossdns::app::serve(settings));
    wait_soa(dns, "cluster.region2").await;

    // knotd knows crossdns and the catalog only; the members come from it.
    let fragment = generate(dir, "knot", dns);
    let head = &fragment[..fragment.find("\nzone:").expect("zone section")];
    let knot_dir = dir.join("knot");
    std::fs::create_dir_all(&knot_dir).expect("mkdir");
    let d = knot_dir.display();
    // Templates refer to the remote and acl, so they come after them.
    let zones = format!(
        "{head}\ntemplate:\n  - id: members\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
         zonefile-load: none\n    master: crossdns\n    acl: crossdns-notify\n\
         zone:\n  - domain: {CATALOG}\n    master: crossdns\n    acl: crossdns-notify\n    \
         catalog-role: interpret\n    catalog-template: members\n"
    );
    let knot = knot_secondary(&progs["knotd"], &knot_dir, knot_addr.port(), "", &zones).await;
    // (knotd does not answer queries for a catalog it interprets.)
    let first = serial(dns, CATALOG).await.expect("catalog serial");
    let r2 = serial(dns, "cluster.region2").await.expect("serial");
    wait_serial(
        knot_addr,
        "cluster.region2",
        r2,
        Duration::from_secs(20),
        &knot,
    )
    .await;
    assert_eq!(
        serial(knot_addr, "cluster.region3").await,
        None,
        "region3 is not configured yet"
    );

    // The reload adds region3: the catalog's serial rises, its NOTIFY
    // brings knotd the new member, which knotd then transfers.
    std::fs::write(&path, config(&["region2", "region3"])).expect("config");
    let started = Instant::now();
    let mut r3 = None;
    while r3.is_none() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        r3 = serial(knot_addr, "cluster.region3").await;
    }
    assert!(
        r3.is_some(),
        "knotd never picked up region3 from the catalog:\n{}",
        knot.log()
    );
    // (Until the old config's sockets close, a query may still reach it.)
    let mut second = first;
    for _ in 0..100 {
        second = serial(dns, CATALOG).await.expect("catalog serial");
        if second != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        second.wrapping_sub(first) < (1 << 31) && second != first,
        "the catalog serial did not rise: {first} then {second}"
    );
    let want = serial(dns, "cluster.region3").await.expect("serial");
    wait_serial(
        knot_addr,
        "cluster.region3",
        want,
        Duration::from_secs(10),
        &knot,
    )
    .await;
    let web = query(
        knot_addr,
        "web.default.svc.cluster.region3.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(
        summarize(&web).answers,
        ["web.default.svc.cluster.region3. A 10.103.0.30"]
    );
    server.abort();
}
