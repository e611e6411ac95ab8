//! Zone transfers on the wire (RFC 5936, RFC 1995, RFC 8945, RFC 9103,
//! RFC 9432): a large zone goes in many messages, each under 64 KiB and
//! each TSIG-signed; XFR over TLS gives what TCP gives (kdig as the
//! client); an IXFR applied to the old AXFR gives the new AXFR; a stalled
//! transfer holds its snapshot while the zone moves on; a shared zone
//! transfers the union of its clusters; the catalog lists every cluster
//! zone and answers queries.

mod xfr_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Record, RecordType};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use xfr_support::*;

const BIG: &str = "cluster.big";

/// `services` headless Services in namespace `big`, each with 10 named
/// endpoints: 30+ records per Service.
fn big_manifests(dir: &Path, services: usize) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut items =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "big"}})];
    for i in 0..services {
        let name = format!("svc-{i}");
        items.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "big"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}));
        let endpoints: Vec<_> = (0..10)
            .map(|j| json!({"addresses": [format!("10.{}.{}.{j}", 50 + i / 250, i % 250)], "hostname": format!("pod-{j}"),
                             "conditions": {"ready": true}}))
            .collect();
        items.push(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-1"), "namespace": "big", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}], "endpoints": endpoints}));
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    std::fs::write(
        dir.join("big.yaml"),
        serde_json::to_string(&list).expect("json"),
    )
    .expect("write");
}

/// crossdns with `clusters` (YAML list items) and transfers signed with `sites`.
async fn crossdns(dir: &Path, clusters: &str, extra: &str) -> crossdns::app::Running {
    let key = dir.join("sites.key");
    std::fs::write(&key, secret_b64()).expect("key");
    let yaml = format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\n{extra}allow: [\"127.0.0.0/8\"]\n\
         tsig_keys: [{{name: {KEY}, algorithm: hmac-sha256, secret_file: {}}}]\n\
         transfer: {{allow: [\"127.0.0.0/8\"], key: {KEY}, catalog: {CATALOG}}}\nclusters:\n{clusters}",
        key.display()
    );
    start_crossdns(dir, "protocol", &yaml).await
}

/// Records as comparable text: owner, type, data, TTL.
fn text(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.name.to_lowercase(),
                r.ttl,
                r.record_type(),
                r.data
            )
        })
        .collect()
}

/// The zone's records as a set, the two SOAs aside.
fn zone_set(t: &Transfer) -> BTreeSet<String> {
    let records = t.records();
    assert_eq!(
        records.first().map(Record::record_type),
        Some(RecordType::SOA)
    );
    assert_eq!(
        records.last().map(Record::record_type),
        Some(RecordType::SOA)
    );
    text(&records[1..records.len() - 1]).into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_zone_goes_in_many_signed_messages_and_over_tls_the_same() {
    let Some(progs) = require(&["kdig"]) else {
        return;
    };
    init_tls();
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    big_manifests(&dir.join("big"), 600);
    let ca = TestCa::new(dir, "xot");
    let cert = ca.issue("dns", &["dns.test", "127.0.0.1"], false);
    let tls = format!(
        "  tls_listen: [\"127.0.0.1:0\"]\n  tls_cert: {}\n  tls_key: {}\n",
        cert.cert.display(),
        cert.key.display()
    );
    let clusters = format!(
        "  - {{name: big, zone: {BIG}, manifests: {}}}\n",
        dir.join("big").display()
    );
    let running = crossdns(dir, &clusters, &tls).await;
    let dns = running.dns[0];
    wait_soa(dns, BIG).await;

    let t = transfer(dns, &request(BIG, None, None, 0), Some(&signer())).await;
    let records = t.records();
    assert!(t.messages.len() >= 10, "{} messages", t.messages.len());
    assert!(records.len() > 600 * 30, "{} records", records.len());
    assert_eq!(
        records
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count(),
        2
    );
    assert!(
        t.messages.iter().all(|m| m.signature().is_some()),
        "a message went unsigned"
    );
    assert_eq!(
        t.messages.iter().filter(|m| !m.queries.is_empty()).count(),
        1,
        "question only in the first"
    );
    eprintln!(
        "{} records in {} messages, {} bytes",
        records.len(),
        t.messages.len(),
        t.bytes
    );
    assert!(t.bytes / t.messages.len() < 65_535);
    let want = zone_set(&t);

    // XFR over TLS (RFC 9103) with kdig, which checks every TSIG itself.
    // Its output is large: read while it runs, off the async workers.
    let (kdig, dot, ca_file) = (progs["kdig"].clone(), running.dot[0], ca.cert.clone());
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            Command::new(kdig)
                .arg(format!("@{}", dot.ip()))
                .args(["-p", &dot.port().to_string()])
                .arg(format!("+tls-ca={}", ca_file.display()))
                .arg("+tls-hostname=dns.test")
                .args([
                    "-y",
                    &format!("hmac-sha256:{KEY}:{}", secret_b64()),
                    "AXFR",
                    BIG,
                ])
                .output()
        }),
    )
    .await
    .expect("kdig finished within 60 s")
    .expect("join")
    .expect("run kdig");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success() && !out.contains(";; ERROR") && !err.contains("ERROR"),
        "kdig over TLS: {err}{}",
        out.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("\tTSIG\t"))
        .collect();
    assert_eq!(
        lines.len(),
        want.len() + 2,
        "kdig over TLS got another record count"
    );
    assert!(
        out.contains(&format!("({} messages", t.messages.len())),
        "{}",
        out.lines().last().unwrap_or("")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ixfr_applied_to_the_old_zone_gives_the_new_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let api = apiserver().await;
    let kc = dir.join("region1.kubeconfig");
    api.write_kubeconfig(&kc, "region1").expect("kubeconfig");
    let clusters = format!(
        "  - {{name: region1, zone: {Z1}, kubeconfig: {}, context: region1}}\n",
        kc.display()
    );
    let running = crossdns(dir, &clusters, "").await;
    let dns = running.dns[0];
    wait_soa(dns, Z1).await;
    let old = transfer(dns, &request(Z1, None, None, 0), Some(&signer())).await;
    let from = old.records().first().and_then(soa_serial).expect("serial");

    // Endpoints move, a Service comes in a new namespace, one goes: each
    // its own version of the zone.
    let mut last = from;
    let changes: [&dyn Fn(); 3] = [
        &|| {
            api.apply(cache_slice(&["10.1.2.70"])).expect("apply");
        },
        &|| {
            api.apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}),
            )
            .expect("ns");
            api.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "new", "namespace": "extra"},
                "spec": {"clusterIP": "10.101.9.9", "clusterIPs": ["10.101.9.9"], "ports": [{"name": "http", "port": 80}]}}))
                .expect("svc");
        },
        &|| {
            assert!(
                api.delete("v1", "Service", Some("shop"), "web"),
                "web was there"
            )
        },
    ];
    for change in changes {
        change();
        let started = std::time::Instant::now();
        while serial(dns, Z1).await == Some(last) && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        last = serial(dns, Z1).await.expect("serial");
    }
    wait_rcode(
        dns,
        "new.extra.svc.cluster.region1.",
        RecordType::A,
        ResponseCode::NoError,
        Duration::from_secs(10),
    )
    .await;
    wait_rcode(
        dns,
        "web.shop.svc.cluster.region1.",
        RecordType::A,
        ResponseCode::NXDomain,
        Duration::from_secs(10),
    )
    .await;
    let new = transfer(dns, &request(Z1, None, None, 0), Some(&signer())).await;
    let to = new.records().first().and_then(soa_serial).expect("serial");

    let ixfr = transfer(dns, &request(Z1, Some(from), None, 0), Some(&signer())).await;
    let records = ixfr.records();
    assert_eq!(records.first().and_then(soa_serial), Some(to));
    assert_eq!(
        records.get(1).and_then(soa_serial),
        Some(from),
        "not incremental: {:?}",
        text(&records)
    );
    let mut zone = zone_set(&old);
    // RFC 1995 §4: (old SOA, deletions, new SOA, additions)*, then the SOA.
    let body = &records[1..records.len() - 1];
    let mut deleting = false;
    let mut versions = 0;
    for r in body {
        if r.record_type() == RecordType::SOA {
            deleting = !deleting;
            versions += usize::from(deleting);
            continue;
        }
        let line = text(std::slice::from_ref(r)).remove(0);
        if !deleting {
            assert!(zone.insert(line.clone()), "added twice: {line}");
        } else {
            assert!(zone.remove(&line), "deleted but absent: {line}");
        }
    }
    assert!(versions >= 3, "{versions} versions");
    assert_eq!(
        zone,
        zone_set(&new),
        "IXFR applied to the old zone is not the new zone"
    );
    assert!(
        ixfr.bytes < new.bytes,
        "the IXFR is not smaller than the zone"
    );

    // Up to date: the SOA alone. Unknown serial: the whole zone (AXFR-style).
    let same = transfer(dns, &request(Z1, Some(to), None, 0), Some(&signer())).await;
    assert_eq!(text(&same.records()), text(&new.records()[..1]));
    let unknown = transfer(
        dns,
        &request(Z1, Some(from.wrapping_sub(1000)), None, 0),
        Some(&signer()),
    )
    .await;
    assert_eq!(zone_set(&unknown), zone_set(&new));
    assert_eq!(
        must_metric(
            &running,
            "crossdns_transfer_ixfr_full_total",
            &[("zone", Z1)]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_transfer_keeps_its_snapshot_while_the_zone_moves_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let folder = dir.join("big");
    big_manifests(&folder, 600);
    let clusters = format!(
        "  - {{name: big, zone: {BIG}, manifests: {}}}\n",
        folder.display()
    );
    let running = crossdns(dir, &clusters, "").await;
    let dns = running.dns[0];
    wait_soa(dns, BIG).await;
    let before = serial(dns, BIG).await.expect("serial");

    // Ask, read the first message's length, then stop reading.
    let mut stalled = tokio::net::TcpStream::connect(dns).await.expect("connect");
    let req = request(BIG, None, Some(&signer()), now())
        .to_vec()
        .expect("encode");
    let mut framed = (req.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&req);
    stalled.write_all(&framed).await.expect("write");
    let first = stalled.read_u16().await.expect("the first message begins");

    // The zone changes and answers as if nobody were transferring it.
    big_manifests(&folder, 601);
    wait_rcode(
        dns,
        "svc-600.big.svc.cluster.big.",
        RecordType::A,
        ResponseCode::NoError,
        Duration::from_secs(10),
    )
    .await;
    let after = serial(dns, BIG).await.expect("serial");
    assert_ne!(before, after);
    let fresh = transfer(dns, &request(BIG, None, None, 0), Some(&signer())).await;
    assert_eq!(fresh.records().first().and_then(soa_serial), Some(after));

    // The stalled transfer, read on, is the zone as it was when asked.
    let mut len = first;
    let mut records = Vec::new();
    loop {
        let mut buf = vec![0u8; usize::from(len)];
        stalled.read_exact(&mut buf).await.expect("read");
        let m = hickory_proto::op::Message::from_vec(&buf).expect("decode");
        records.extend(m.answers);
        if records.len() > 1 && records.last().map(Record::record_type) == Some(RecordType::SOA) {
            break;
        }
        len = stalled.read_u16().await.expect("next message");
    }
    assert_eq!(records.first().and_then(soa_serial), Some(before));
    assert_eq!(records.last().and_then(soa_serial), Some(before));
    assert!(
        !records
            .iter()
            .any(|r| r.name.to_string().starts_with("svc-600."))
    );
    // One Service more: 10 A, 10 hosts, 10 SRV and its metadata TXT.
    assert_eq!(records.len() + 31, fresh.records().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_zone_transfers_both_clusters_and_the_catalog_lists_every_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let golden = repo().join("tests/golden/clusters");
    let clusters = format!(
        "  - {{name: us-east1, zone: cluster.local, namespaces: [us-east1], manifests: {}}}\n  \
         - {{name: us-west1, zone: cluster.local, namespaces: [us-west1], manifests: {}}}\n  \
         - {{name: region3, zone: cluster.region3, manifests: {}}}\n",
        golden.join("us-east1").display(),
        golden.join("us-west1").display(),
        golden.join("region3").display()
    );
    let running = crossdns(dir, &clusters, "").await;
    let dns = running.dns[0];
    wait_soa(dns, "cluster.local").await;
    let t = transfer(
        dns,
        &request("cluster.local", None, None, 0),
        Some(&signer()),
    )
    .await;
    let owners: BTreeSet<String> = t.records().iter().map(|r| r.name.to_string()).collect();
    for ns in ["us-east1", "us-west1"] {
        let name = format!("cockroachdb-public.{ns}.svc.cluster.local.");
        assert!(owners.contains(&name), "{name} missing from {owners:?}");
        assert!(owners.contains(&format!("_crossdns.{ns}.svc.cluster.local.")));
    }

    let catalog = transfer(dns, &request(CATALOG, None, None, 0), Some(&signer())).await;
    let lines = text(&catalog.records());
    assert!(
        lines.contains(&format!("version.{CATALOG}. 5 TXT 2"))
            || lines
                .iter()
                .any(|l| l.starts_with(&format!("version.{CATALOG}.")) && l.ends_with("TXT 2")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{CATALOG}.")) && l.contains(" NS invalid.")),
        "{lines:?}"
    );
    for zone in ["cluster.local", "cluster.region3"] {
        let id =
            crossdns::transfer::member_id(&crossdns::dnsname::WireName::parse(zone).expect("name"));
        let owner = format!("{id}.zones.{CATALOG}.");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&owner) && l.ends_with(&format!("PTR {zone}."))),
            "{owner} {lines:?}"
        );
    }
    assert_eq!(
        lines.iter().filter(|l| l.contains(" PTR ")).count(),
        2,
        "one member per zone: {lines:?}"
    );

    // Queries: SOA (as secondaries check it), PTR, NODATA, NXDOMAIN.
    let soa = query(dns, CATALOG, RecordType::SOA, Transport::Udp).await;
    assert_eq!(
        soa.answers.first().and_then(soa_serial),
        catalog.records().first().and_then(soa_serial)
    );
    let id = crossdns::transfer::member_id(
        &crossdns::dnsname::WireName::parse("cluster.region3").expect("name"),
    );
    let ptr = query(
        dns,
        &format!("{id}.zones.{CATALOG}"),
        RecordType::PTR,
        Transport::Udp,
    )
    .await;
    assert_eq!(
        summarize(&ptr).answers,
        [format!("{id}.zones.{CATALOG}. PTR cluster.region3.")]
    );
    let ent = query(
        dns,
        &format!("zones.{CATALOG}"),
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(
        (
            ent.metadata.response_code,
            ent.answers.len(),
            ent.authorities.len()
        ),
        (ResponseCode::NoError, 0, 1)
    );
    let none = query(
        dns,
        &format!("nope.{CATALOG}"),
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(none.metadata.response_code, ResponseCode::NXDomain);
}
