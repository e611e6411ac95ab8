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

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use xfr_support::*;

const CACHE: &str = "cache.shop.svc.cluster.region1.";
/// The contract: a change at the apiserver is answered within 1 s.
const CONTRACT: Duration = Duration::from_secs(1);

async fn same_tables(primary: std::net::SocketAddr, secondary: std::net::SocketAddr) {
    for z in [Z1, Z2] {
        let axfr = transfer(primary, &request(z, None, None, 0), Some(&signer())).await;
        let names = table_names(z, &axfr.records());
        let (diffs, rows) = compare(primary, secondary, z, &names).await;
        assert!(rows > 150, "{z}: only {rows} rows asked");
        assert!(
            diffs.is_empty(),
            "{z}: {} of {rows} rows differ:\n{}",
            diffs.len(),
            diffs.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knotd_from_generate_knot_follows_by_axfr_then_ixfr_with_tsig_and_notify() {
    let Some(progs) = require(&["knotd"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let api = apiserver().await;
    let knot_addr = loopback(free_dns_port());
    let primary = start_primary(dir, &primary_yaml(dir, &api, &[knot_addr])).await;
    let dns = primary.dns[0];
    let fragment = generate(dir, "knot", dns);
    assert!(
        fragment.contains(&format!("secret: {}", secret_b64())),
        "{fragment}"
    );
    let knot_dir = dir.join("knot");
    std::fs::create_dir_all(&knot_dir).expect("mkdir");
    let knot = knot_secondary(&progs["knotd"], &knot_dir, knot_addr.port(), "", &fragment).await;

    // AXFR: knotd holds each zone at the primary's serial.
    for z in [Z1, Z2, CATALOG] {
        let want = serial(dns, z).await.expect("primary serial");
        wait_serial(knot_addr, z, want, Duration::from_secs(20), &knot).await;
    }
    same_tables(dns, knot_addr).await;
    for z in [Z1, Z2, CATALOG] {
        let ok = must_metric(
            &primary,
            "crossdns_transfer_requests_total",
            &[("zone", z), ("type", "axfr"), ("result", "ok")],
        );
        assert!(ok >= 1.0, "{z}: knotd's AXFR is not counted");
    }

    // A change at the apiserver: NOTIFY, then IXFR, within the contract
    // (knotd is up and has acknowledged the first NOTIFY, as in steady state).
    wait_metric(
        &primary,
        "crossdns_transfer_notify_acked_total",
        &[("zone", Z1)],
        |v| v >= 1.0,
        Duration::from_secs(10),
    )
    .await;
    let ixfr_before = must_metric(
        &primary,
        "crossdns_transfer_requests_total",
        &[("zone", Z1), ("type", "ixfr"), ("result", "ok")],
    );
    let acked_before = must_metric(
        &primary,
        "crossdns_transfer_notify_acked_total",
        &[("zone", Z1)],
    );
    let serial_before = serial(dns, Z1).await.expect("serial");
    let started = Instant::now();
    api.apply(cache_slice(&["10.1.2.70", "10.1.2.80"]))
        .expect("apply");
    let took = wait_a(
        knot_addr,
        CACHE,
        &["10.1.2.70", "10.1.2.80"],
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|| panic!("knotd never answered the change:\n{}", knot.log()));
    let seen = started.elapsed();
    eprintln!("apiserver change answered by knotd after {took:?} ({seen:?} from the apply)");
    assert!(
        seen <= CONTRACT,
        "knotd answered the change after {seen:?}, more than {CONTRACT:?}"
    );
    let serial_after = serial(dns, Z1).await.expect("serial");
    assert_ne!(serial_after, serial_before);
    wait_serial(knot_addr, Z1, serial_after, Duration::from_secs(5), &knot).await;
    wait_metric(
        &primary,
        "crossdns_transfer_requests_total",
        &[("zone", Z1), ("type", "ixfr"), ("result", "ok")],
        |v| v > ixfr_before,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        must_metric(
            &primary,
            "crossdns_transfer_ixfr_full_total",
            &[("zone", Z1)]
        ),
        0.0,
        "the IXFR was answered whole"
    );
    assert!(
        must_metric(
            &primary,
            "crossdns_transfer_notify_acked_total",
            &[("zone", Z1)]
        ) > acked_before
    );
    assert!(
        knot.log().contains("IXFR, incoming"),
        "knotd did not take an IXFR:\n{}",
        knot.log()
    );
    same_tables(dns, knot_addr).await;

    // More changes in a row: knotd ends at the last one, by IXFR.
    for i in 1..=5u8 {
        api.apply(cache_slice(&[&format!("10.1.3.{i}")]))
            .expect("apply");
    }
    wait_a(knot_addr, CACHE, &["10.1.3.5"], Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("knotd missed the last of five changes:\n{}", knot.log()));
    let last = serial(dns, Z1).await.expect("serial");
    wait_serial(knot_addr, Z1, last, Duration::from_secs(5), &knot).await;
    same_tables(dns, knot_addr).await;
    assert!(
        !knot.log().contains("error"),
        "knotd logged errors:\n{}",
        knot.log()
    );
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
    wait_rcode(
        dns,
        "cluster.region2",
        RecordType::SOA,
        ResponseCode::NoError,
        Duration::from_secs(20),
    )
    .await;

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
