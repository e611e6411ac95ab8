//! Helpers shared by the zone-transfer tests (`xfr_*.rs`): a crossdns
//! primary over the test apiserver (the demo's region1) and a manifests
//! folder (region2), with a TSIG key, NOTIFY to a secondary and a catalog;
//! knotd and named as secondaries from a base config plus the fragment
//! `crossdns generate knot|bind` prints; AXFR with every message's TSIG
//! verified (hickory's chained verifier); and the answer table that a
//! secondary must give exactly as crossdns does.
#![allow(dead_code)]

#[path = "../interop_support/mod.rs"]
mod interop_support;
pub use interop_support::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use crossdns::app::Running;
use fake_apiserver::FakeApiServer;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub const Z1: &str = "cluster.region1";
pub const Z2: &str = "cluster.region2";
pub const CATALOG: &str = "catalog.crossdns";
pub const KEY: &str = "sites";
/// The secret of `KEY` (32 bytes), as `tsig-keygen` would print it.
pub const SECRET: [u8; 32] = *b"crossdns-test-secret-0123456789!";

pub fn secret_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(SECRET)
}

pub fn signer() -> TSigner {
    TSigner::new(
        SECRET.to_vec(),
        TsigAlgorithm::HmacSha256,
        Name::from_ascii(KEY).expect("key name"),
        300,
    )
    .expect("signer")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The test apiserver, loaded with the demo's region1.
pub async fn apiserver() -> FakeApiServer {
    init_tls();
    let api = FakeApiServer::start().await.expect("test apiserver");
    api.apply_dir(&repo().join("examples/demo/region1"))
        .expect("apply the demo");
    api
}

/// The config of a crossdns primary: region1 from `api`, region2 from the
/// demo's manifests, TSIG key `sites`, NOTIFY to `notify`, the catalog.
/// `extra` is appended (more `transfer` keys go in `transfer_extra`).
pub fn primary_yaml(dir: &Path, api: &FakeApiServer, notify: &[SocketAddr]) -> String {
    let kc = dir.join("region1.kubeconfig");
    api.write_kubeconfig(&kc, "region1").expect("kubeconfig");
    let key = dir.join("sites.key");
    std::fs::write(&key, format!("{}\n", secret_b64())).expect("write key");
    let notify: Vec<String> = notify.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\n  ttl: 5\n  advertise: [\"127.0.0.1\"]\n\
         allow: [\"127.0.0.0/8\"]\n\
         tsig_keys:\n  - {{name: {KEY}, algorithm: hmac-sha256, secret_file: {}}}\n\
         transfer:\n  allow: [\"127.0.0.0/8\"]\n  key: {KEY}\n  notify: [{}]\n  catalog: {CATALOG}\n\
         clusters:\n  - {{name: region1, zone: {Z1}, kubeconfig: {}, context: region1}}\n  \
         - {{name: region2, zone: {Z2}, manifests: {}}}\n\
         clusterset: {{zone: clusterset.local, local: region1}}\n",
        key.display(),
        notify.join(", "),
        kc.display(),
        repo().join("examples/demo/region2").display(),
    )
}

/// Starts the primary and waits until both zones answer.
pub async fn start_primary(dir: &Path, yaml: &str) -> Running {
    let running = start_crossdns(dir, "primary", yaml).await;
    for z in [Z1, Z2] {
        wait_soa(running.dns[0], z).await;
    }
    running
}

/// `crossdns generate <what> --config <dir>/primary.yaml --address <addr>`.
pub fn generate(dir: &Path, what: &str, addr: SocketAddr) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_crossdns"))
        .args(["generate", what, "--config"])
        .arg(dir.join("primary.yaml"))
        .args(["--address", &addr.to_string()])
        .env("CROSSDNS_LOG", "warn")
        .output()
        .expect("run crossdns generate");
    assert!(
        out.status.success(),
        "generate {what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

// ---------------------------------------------------------------------------
// Secondaries
// ---------------------------------------------------------------------------

/// knotd on `port` with its storage in `dir`, configured by `fragment`
/// (`generate knot` output, or a hand-written zone section); `templates`
/// are more `template` list items after the default one.
pub async fn knot_secondary(
    knotd: &Path,
    dir: &Path,
    port: u16,
    templates: &str,
    fragment: &str,
) -> Proc {
    let d = dir.display();
    let conf = format!(
        "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}\"\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    zonefile-load: none\n    journal-content: changes\n\
         {templates}{fragment}"
    );
    std::fs::write(dir.join("knot.conf"), conf).expect("write knot.conf");
    let (proc, _) = start_dns_daemon("knotd", dir, Some(port), (".", RecordType::SOA), |_| {
        let mut cmd = Command::new(knotd);
        cmd.arg("-c").arg(dir.join("knot.conf"));
        cmd
    })
    .await;
    proc
}

/// named on `port` with its files in `dir`, including `fragment`
/// (`generate bind` output) after its own `options`.
pub async fn named_secondary(named: &Path, dir: &Path, port: u16, fragment: &str) -> Proc {
    let d = dir.display();
    std::fs::write(dir.join("crossdns.conf"), fragment).expect("write fragment");
    let conf = format!(
        "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  \
         managed-keys-directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
         recursion no;\n  allow-query {{ any; }};\n  dnssec-validation no;\n}};\n\
         controls {{ }};\n\
         logging {{\n  channel out {{ stderr; severity info; print-time yes; }};\n  category default {{ out; }};\n  \
         category xfer-in {{ out; }};\n  category notify {{ out; }};\n}};\n\
         include \"{d}/crossdns.conf\";\n"
    );
    std::fs::write(dir.join("named.conf"), conf).expect("write named.conf");
    let (proc, _) = start_dns_daemon("named", dir, Some(port), (".", RecordType::SOA), |_| {
        let mut cmd = Command::new(named);
        cmd.args(["-g", "-4", "-n", "1", "-c"])
            .arg(dir.join("named.conf"));
        cmd
    })
    .await;
    proc
}

/// The SOA serial `server` answers for `zone` (over UDP), if it does.
pub async fn serial(server: SocketAddr, zone: &str) -> Option<u32> {
    let m = exchange(
        server,
        zone,
        RecordType::SOA,
        Transport::Udp,
        Duration::from_millis(500),
    )
    .await
    .ok()?;
    m.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// Polls `server` until `zone`'s serial is `want`; returns how long it took.
pub async fn wait_serial(
    server: SocketAddr,
    zone: &str,
    want: u32,
    within: Duration,
    log: &Proc,
) -> Duration {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < within {
        last = serial(server, zone).await;
        if last == Some(want) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{zone} at {server}: serial {last:?}, not {want}, after {within:?}\n{}",
        log.log()
    );
}

// ---------------------------------------------------------------------------
// Transfers
// ---------------------------------------------------------------------------

/// A transfer request for `zone`, signed with `signer` when given; IXFR
/// when `ixfr_from` is (the secondary's serial in the authority section).
pub fn request(zone: &str, ixfr_from: Option<u32>, signer: Option<&TSigner>, time: u64) -> Message {
    let name = Name::from_ascii(format!("{zone}.")).expect("zone");
    let qtype = if ixfr_from.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    let mut m = Message::new(fastrand::u16(..), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name.clone(), qtype));
    if let Some(serial) = ixfr_from {
        let soa =
            hickory_proto::rr::rdata::SOA::new(name.clone(), name.clone(), serial, 0, 0, 0, 0);
        m.add_authority(Record::from_rdata(name, 0, RData::SOA(soa)));
    }
    if let Some(s) = signer {
        // The verifier is rebuilt by `transfer` from the signed bytes.
        m.finalize(s, time).expect("sign");
    }
    m
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a transfer returned: every message, decoded, and their sizes.
#[derive(Debug)]
pub struct Transfer {
    pub messages: Vec<Message>,
    pub bytes: usize,
}

impl Transfer {
    /// Every answer record, TSIGs aside, in order.
    pub fn records(&self) -> Vec<Record> {
        self.messages
            .iter()
            .flat_map(|m| m.answers.clone())
            .collect()
    }

    pub fn rcode(&self) -> ResponseCode {
        self.messages[0].metadata.response_code
    }
}

/// Sends `req` over a new TCP connection (or `stream`) and reads messages
/// until the transfer ends (RFC 5936 §2.2: the second SOA; one SOA alone
/// for an up-to-date IXFR; any error RCODE). With `signer`, every message
/// must verify (RFC 8945 §5.3.1) with hickory's chained verifier.
pub async fn transfer(server: SocketAddr, req: &Message, signer: Option<&TSigner>) -> Transfer {
    let mut req = req.clone();
    let verifier = signer.map(|s| req.finalize(s, now()).expect("sign").expect("verifier"));
    let mut s = TcpStream::connect(server).await.expect("connect");
    transfer_on(&mut s, &req, verifier).await
}

pub async fn transfer_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    req: &Message,
    mut verifier: Option<hickory_proto::rr::TSigVerifier>,
) -> Transfer {
    let bytes = req.to_vec().expect("encode");
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).await.expect("write request");
    let ixfr = req.queries[0].query_type() == RecordType::IXFR;
    let mut out = Transfer {
        messages: Vec::new(),
        bytes: 0,
    };
    let mut soas = 0;
    loop {
        let len = tokio::time::timeout(Duration::from_secs(30), s.read_u16())
            .await
            .expect("transfer stalled")
            .expect("read length");
        let mut buf = vec![0u8; usize::from(len)];
        s.read_exact(&mut buf).await.expect("read message");
        out.bytes += buf.len();
        if let Some(v) = verifier.as_mut() {
            v.verify(&buf)
                .unwrap_or_else(|e| panic!("message {} does not verify: {e}", out.messages.len()));
        }
        let m = Message::from_vec(&buf).expect("decode message");
        let done = m.metadata.response_code != ResponseCode::NoError;
        soas += m
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
        let single_soa = ixfr && out.messages.is_empty() && m.answers.len() == 1 && soas == 1;
        out.messages.push(m);
        let first_serial = out.messages[0].answers.first().and_then(soa_serial);
        let closed = out
            .messages
            .last()
            .and_then(|m| m.answers.last())
            .and_then(soa_serial);
        if done || single_soa || (soas >= 2 && closed == first_serial && closed.is_some()) {
            return out;
        }
    }
}

pub fn soa_serial(r: &Record) -> Option<u32> {
    match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The answer table
// ---------------------------------------------------------------------------

/// The names a secondary must answer as crossdns does: every owner of the
/// zone's AXFR, each name between an owner and the apex (empty
/// non-terminals), and names that do not exist (one label more, a headless
/// Service without endpoints, pod names of `pods: disabled`).
pub fn table_names(zone: &str, records: &[Record]) -> Vec<String> {
    let apex = Name::from_ascii(format!("{zone}.")).expect("zone");
    let mut names = std::collections::BTreeSet::new();
    for r in records {
        let mut n = r.name.to_lowercase();
        while n.num_labels() >= apex.num_labels() && apex.zone_of(&n) {
            names.insert(n.to_string());
            n = n.base_name();
        }
    }
    for missing in [
        "nope.svc",
        "nope.shop.svc",
        "batch.shop.svc",
        "x.web.shop.svc",
        "_nope._tcp.web.shop.svc",
        "10-1-0-10.default.pod",
        "nope.dns",
        "nope",
    ] {
        names.insert(format!("{missing}.{zone}."));
    }
    names.into_iter().collect()
}

pub const TABLE_TYPES: [RecordType; 7] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::TXT,
    RecordType::CNAME,
    RecordType::SOA,
    RecordType::NS,
];

/// One row as two servers must agree on it: RCODE and the answer records
/// owned inside `zone` (a CNAME's target in another zone is chased by
/// crossdns, which serves it, and by no secondary: that is query-time
/// work, not zone data).
pub fn row(m: &Message, zone: &str) -> Summary {
    let apex = Name::from_ascii(format!("{zone}.")).expect("zone");
    let mut kept = m.clone();
    kept.answers.retain(|r| apex.zone_of(&r.name));
    summarize(&kept)
}

/// Asks `a` and `b` every (name, type) of the table; returns the rows that
/// differ (empty: the same table) and the number of rows asked.
pub async fn compare(
    a: SocketAddr,
    b: SocketAddr,
    zone: &str,
    names: &[String],
) -> (Vec<String>, usize) {
    let mut diffs = Vec::new();
    let mut rows = 0;
    for name in names {
        for t in TABLE_TYPES {
            rows += 1;
            let x = row(&query(a, name, t, Transport::Udp).await, zone);
            let y = row(&query(b, name, t, Transport::Udp).await, zone);
            if x != y {
                diffs.push(format!("{name} {t}: crossdns {x:?}, secondary {y:?}"));
            }
        }
    }
    (diffs, rows)
}

/// Both cluster zones' tables at `primary` and `secondary` are the same.
pub async fn same_tables(primary: SocketAddr, secondary: SocketAddr) {
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

/// A secondary after `follows`: its process, and the folder of its files.
pub struct Followed {
    pub secondary: Proc,
    _dir: tempfile::TempDir,
}

/// The contract: a change at the apiserver is answered within 1 s.
pub const CONTRACT: Duration = Duration::from_secs(1);
const CACHE: &str = "cache.shop.svc.cluster.region1.";

/// What every secondary of crossdns must do (design.md §7): started by
/// `start(dir, port, fragment)` from `crossdns generate <generator>`
/// output, it holds both cluster zones and the catalog at the primary's
/// serials (AXFR) and answers their table as crossdns does; a change at
/// the test apiserver reaches it by NOTIFY and IXFR within the contract,
/// and five more in a row leave it at the last. TSIG throughout.
pub async fn follows(
    generator: &str,
    start: impl AsyncFnOnce(&Path, u16, String) -> Proc,
) -> Followed {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = apiserver().await;
    let addr = loopback(free_dns_port());
    let primary = start_primary(dir.path(), &primary_yaml(dir.path(), &api, &[addr])).await;
    let dns = primary.dns[0];
    let fragment = generate(dir.path(), generator, dns);
    let own = dir.path().join("secondary");
    std::fs::create_dir_all(&own).expect("mkdir");
    let secondary = start(&own, addr.port(), fragment).await;

    for z in [Z1, Z2, CATALOG] {
        let want = serial(dns, z).await.expect("primary serial");
        wait_serial(addr, z, want, Duration::from_secs(20), &secondary).await;
        let axfr = [("zone", z), ("type", "axfr"), ("result", "ok")];
        assert!(
            must_metric(&primary, "crossdns_transfer_requests_total", &axfr) >= 1.0,
            "{z}: AXFR not counted"
        );
    }
    same_tables(dns, addr).await;

    // Steady state: the secondary is up and has acknowledged a NOTIFY.
    let acked = [("zone", Z1)];
    wait_metric(
        &primary,
        "crossdns_transfer_notify_acked_total",
        &acked,
        |v| v >= 1.0,
        Duration::from_secs(10),
    )
    .await;
    let ixfr = [("zone", Z1), ("type", "ixfr"), ("result", "ok")];
    let ixfr_before = must_metric(&primary, "crossdns_transfer_requests_total", &ixfr);
    let acked_before = must_metric(&primary, "crossdns_transfer_notify_acked_total", &acked);
    let started = Instant::now();
    api.apply(cache_slice(&["10.1.2.70", "10.1.2.80"]))
        .expect("apply");
    wait_a(
        addr,
        CACHE,
        &["10.1.2.70", "10.1.2.80"],
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "the secondary never answered the change:\n{}",
            secondary.log()
        )
    });
    let seen = started.elapsed();
    eprintln!(
        "{generator}: an apiserver change was answered by the secondary {seen:?} after the apply"
    );
    assert!(
        seen <= CONTRACT,
        "the secondary answered the change after {seen:?}, more than {CONTRACT:?}"
    );
    let now = serial(dns, Z1).await.expect("serial");
    wait_serial(addr, Z1, now, Duration::from_secs(5), &secondary).await;
    wait_metric(
        &primary,
        "crossdns_transfer_requests_total",
        &ixfr,
        |v| v > ixfr_before,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        must_metric(&primary, "crossdns_transfer_ixfr_full_total", &acked),
        0.0,
        "an IXFR was answered whole"
    );
    assert!(must_metric(&primary, "crossdns_transfer_notify_acked_total", &acked) > acked_before);
    same_tables(dns, addr).await;

    for i in 1..=5u8 {
        api.apply(cache_slice(&[&format!("10.1.3.{i}")]))
            .expect("apply");
    }
    wait_a(addr, CACHE, &["10.1.3.5"], Duration::from_secs(5))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the secondary missed the last of five changes:\n{}",
                secondary.log()
            )
        });
    let last = serial(dns, Z1).await.expect("serial");
    wait_serial(addr, Z1, last, Duration::from_secs(5), &secondary).await;
    same_tables(dns, addr).await;
    Followed {
        secondary,
        _dir: dir,
    }
}

/// Waits until `zone` answers its SOA at `server` (synced).
pub async fn wait_soa(server: SocketAddr, zone: &str) {
    wait_rcode(
        server,
        zone,
        RecordType::SOA,
        ResponseCode::NoError,
        Duration::from_secs(20),
    )
    .await;
}

/// Polls until `name` A at `server` is exactly `want`; returns the time.
pub async fn wait_a(
    server: SocketAddr,
    name: &str,
    want: &[&str],
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    while started.elapsed() < within {
        if let Ok(m) = exchange(
            server,
            name,
            RecordType::A,
            Transport::Udp,
            Duration::from_millis(300),
        )
        .await
        {
            let mut got: Vec<String> = m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.to_string()),
                    _ => None,
                })
                .collect();
            got.sort();
            if got == want {
                return Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// The demo's headless `cache.shop` EndpointSlice in region1, with `ready`
/// as its ready addresses (one more, 10.1.2.9, stays not ready). Its A
/// answer, its dashed host names, its SRV and its metadata all change.
pub fn cache_slice(ready: &[&str]) -> serde_json::Value {
    let mut endpoints: Vec<serde_json::Value> = ready
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            serde_json::json!({"addresses": [ip], "conditions": {"ready": true},
                 "targetRef": {"kind": "Pod", "name": format!("cache-{i}"), "namespace": "shop"}})
        })
        .collect();
    endpoints.push(
        serde_json::json!({"addresses": ["10.1.2.9"], "conditions": {"ready": false},
        "targetRef": {"kind": "Pod", "name": "cache-nr", "namespace": "shop"}}),
    );
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "cache-k2", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "cache"}},
        "addressType": "IPv4",
        "ports": [{"name": "redis", "port": 6379, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}
