//! named (BIND 9) as a secondary of crossdns, loaded from `crossdns
//! generate bind` output (design.md §7): it follows both cluster zones and
//! the catalog by AXFR, then by IXFR on each change at the test apiserver
//! (told by a signed NOTIFY), TSIG-signed throughout; its answer table
//! equals crossdns's before and after, and the change is answered within
//! the contract's 1 s.

mod xfr_support;

use std::time::{Duration, Instant};

use xfr_support::*;

const CACHE: &str = "cache.shop.svc.cluster.region1.";
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
async fn named_from_generate_bind_follows_by_axfr_then_ixfr_with_tsig_and_notify() {
    let Some(progs) = require(&["named"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let api = apiserver().await;
    let named_addr = loopback(free_dns_port());
    let primary = start_primary(dir, &primary_yaml(dir, &api, &[named_addr])).await;
    let dns = primary.dns[0];
    let fragment = generate(dir, "bind", dns);
    assert!(
        fragment.contains(&format!("secret \"{}\";", secret_b64())),
        "{fragment}"
    );
    let statements = fragment
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"));
    for l in statements {
        assert!(
            !l.starts_with("options") && !l.starts_with("server"),
            "a fragment has no options or server statement: {l:?}\n{fragment}"
        );
    }
    let named_dir = dir.join("named");
    std::fs::create_dir_all(&named_dir).expect("mkdir");
    let named = named_secondary(&progs["named"], &named_dir, named_addr.port(), &fragment).await;

    for z in [Z1, Z2, CATALOG] {
        let want = serial(dns, z).await.expect("primary serial");
        wait_serial(named_addr, z, want, Duration::from_secs(20), &named).await;
    }
    same_tables(dns, named_addr).await;
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
    let started = Instant::now();
    api.apply(cache_slice(&["10.1.2.70", "10.1.2.80"]))
        .expect("apply");
    wait_a(
        named_addr,
        CACHE,
        &["10.1.2.70", "10.1.2.80"],
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|| panic!("named never answered the change:\n{}", named.log()));
    let seen = started.elapsed();
    eprintln!("apiserver change answered by named {seen:?} after the apply");
    assert!(seen <= CONTRACT, "named answered the change after {seen:?}");
    let now = serial(dns, Z1).await.expect("serial");
    wait_serial(named_addr, Z1, now, Duration::from_secs(5), &named).await;
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
        0.0
    );
    same_tables(dns, named_addr).await;

    for i in 1..=5u8 {
        api.apply(cache_slice(&[&format!("10.1.3.{i}")]))
            .expect("apply");
    }
    wait_a(named_addr, CACHE, &["10.1.3.5"], Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("named missed the last of five changes:\n{}", named.log()));
    let last = serial(dns, Z1).await.expect("serial");
    wait_serial(named_addr, Z1, last, Duration::from_secs(5), &named).await;
    same_tables(dns, named_addr).await;
    let log = named.log();
    for bad in [
        "tsig verify failure",
        "expected a TSIG",
        "bad sig",
        "failed while receiving",
    ] {
        assert!(!log.contains(bad), "named logged {bad:?}:\n{log}");
    }
}
