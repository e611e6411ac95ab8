//! crossdns as a secondary of another crossdns (design.md §7, site mode's
//! building block): the primary watches region1 (a manifests folder) and
//! serves it by AXFR/IXFR with a TSIG key, sending NOTIFY on each change;
//! the secondary follows it with a `primary:` source. Every name of the
//! zone answers alike at both (metadata included), the secondary's
//! clusterset takes region1's Services from the metadata, and a change at
//! the primary is answered by the secondary within 1 s.

mod interop_support;

use std::path::Path;
use std::time::{Duration, Instant};

use crossdns::index::{meta, records::snapshot_records};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use interop_support::knot_primary::TsigKey;
use interop_support::{Transport, free_dns_port, query, start_crossdns, summarize, wait_rcode};

const SECRET: &str = "c2l0ZXMtc2VjcmV0LWtleS0xMjM0NTY3ODkwYWJjZA==";

fn copy_demo(to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/region1");
    for f in std::fs::read_dir(demo).expect("demo") {
        let f = f.expect("entry").path();
        std::fs::copy(&f, to.join(f.file_name().expect("name"))).expect("copy");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_of_crossdns_answers_its_zone_and_follows_a_change_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    TsigKey::sha256("sites", SECRET).write_secret(dir.path());
    let manifests = dir.path().join("region1");
    copy_demo(&manifests);
    let (p_port, s_port) = (free_dns_port(), free_dns_port());
    let keys = "tsig_keys: [{name: sites, algorithm: hmac-sha256, secret_file: sites.key}]\n";
    let primary = start_crossdns(
        dir.path(),
        "primary",
        &format!(
            "dns: {{listen: [\"127.0.0.1:{p_port}\"]}}\n{keys}\
             clusters: [{{name: region1, zone: cluster.region1, manifests: {}}}]\n\
             transfer: {{allow: [127.0.0.0/8], key: sites, notify: [\"127.0.0.1:{s_port}\"]}}\n",
            manifests.display()
        ),
    )
    .await;
    let secondary = start_crossdns(
        dir.path(),
        "secondary",
        &format!(
            "dns: {{listen: [\"127.0.0.1:{s_port}\"]}}\n{keys}\
             clusters: [{{name: region1, zone: cluster.region1, service_address: endpoints, \
             primary: {{servers: [\"127.0.0.1:{p_port}\"], key: sites, poll: 1h}}}}]\n\
             clusterset: {{zone: clusterset.local}}\n"
        ),
    )
    .await;
    let (p, s) = (primary.dns[0], secondary.dns[0]);
    let web = "web.shop.svc.cluster.region1.";
    wait_rcode(
        s,
        web,
        RecordType::A,
        ResponseCode::NoError,
        Duration::from_secs(10),
    )
    .await;

    // Every name the primary's snapshot holds, at both.
    let handle = &primary.clusters[0];
    let snap = handle.snapshot().expect("synced");
    let mut names = vec!["cluster.region1.".to_owned()];
    snapshot_records(
        &handle.spec,
        &snap,
        Some(&meta::namespace_marker(5)),
        &mut |o, _| names.push(format!("{o}.")),
    );
    names.dedup();
    assert!(names.len() > 20, "{names:?}");
    for name in &names {
        for t in [
            RecordType::TXT,
            RecordType::A,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::CNAME,
        ] {
            let want = summarize(&query(p, name, t, Transport::Tcp).await);
            let got = summarize(&query(s, name, t, Transport::Tcp).await);
            assert_eq!(got, want, "{name} {t}");
        }
    }
    let ptr = "30.0.101.10.in-addr.arpa.";
    assert_eq!(
        summarize(&query(s, ptr, RecordType::PTR, Transport::Udp).await),
        summarize(&query(p, ptr, RecordType::PTR, Transport::Udp).await)
    );
    // The clusterset answers region1's ready endpoints (service_address).
    let cs = summarize(
        &query(
            s,
            "web.shop.svc.clusterset.local.",
            RecordType::A,
            Transport::Udp,
        )
        .await,
    );
    assert_eq!(cs.answers, ["web.shop.svc.clusterset.local. A 10.1.1.5"]);

    // A change at the primary crosses by NOTIFY and IXFR within 1 s.
    let shop = manifests.join("shop.yaml");
    let text = std::fs::read_to_string(&shop).expect("read");
    std::fs::write(&shop, text.replace("10.101.0.30", "10.101.0.31")).expect("write");
    let started = Instant::now();
    wait_answer(p, web, "10.101.0.31", Duration::from_secs(5)).await;
    let at_primary = started.elapsed();
    wait_answer(s, web, "10.101.0.31", at_primary + Duration::from_secs(1)).await;
    eprintln!(
        "primary {at_primary:?}, secondary {:?} after the file changed",
        started.elapsed()
    );
}

async fn wait_answer(server: std::net::SocketAddr, name: &str, ip: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let m = summarize(&query(server, name, RecordType::A, Transport::Udp).await);
        if m.answers.iter().any(|a| a.ends_with(ip)) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{name} at {server}: {m:?}, not {ip} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
