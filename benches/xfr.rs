//! Zone transfers of a zone of 110,000 objects, through the path users run
//! (a test apiserver, real list/watch): AXFR time and size, and IXFR time
//! and size for one moved endpoint, each against knotd serving the same
//! zone in the same run (knotd loads crossdns's AXFR as its zone file; the
//! records the IXFR changes are changed at knotd with `knotc zone-set`).
//!
//!     cargo bench --bench xfr
//!
//! Env: `XFR_SERVICES` (10,000), `XFR_ENDPOINTS` per Service (10),
//! `XFR_RUNS` (5). Every transfer is TSIG-signed (hmac-sha256) and read by
//! the same client: a blocking TCP reader that walks records without
//! decoding them (so the client costs both servers the same, and little).
//! Times are wall clock on loopback, the median of `XFR_RUNS`.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};
use serde_json::{Value, json};

const ZONE: &str = "cluster.bench";
const SECRET: &[u8] = b"crossdns-bench-secret-0123456789";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn signer() -> TSigner {
    TSigner::new(
        SECRET.to_vec(),
        TsigAlgorithm::HmacSha256,
        Name::from_ascii("bench").expect("name"),
        300,
    )
    .expect("signer")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Service `i` and its EndpointSlice: every tenth Service headless (its
/// endpoints named), the others ClusterIP.
fn objects(i: usize, endpoints: usize) -> (Value, Value) {
    let (ns, name) = (format!("ns-{}", i % 20), format!("svc-{i}"));
    let headless = i.is_multiple_of(10);
    let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i as u32).to_string();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": if headless { "None".to_owned() } else { vip.clone() },
                 "clusterIPs": if headless { json!(null) } else { json!([vip]) },
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}});
    let eps: Vec<Value> = (0..endpoints)
        .map(|j| {
            let ip = Ipv4Addr::from(
                u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (i * endpoints + j) as u32,
            );
            let mut ep = json!({"addresses": [ip.to_string()], "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": format!("{name}-{j}"), "namespace": ns}});
            if headless {
                ep["hostname"] = json!(format!("{name}-{j}"));
            }
            ep
        })
        .collect();
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-abcde"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}], "endpoints": eps});
    (svc, slice)
}

/// What one transfer took.
#[derive(Debug, Clone, Copy, Default)]
struct Xfr {
    secs: f64,
    bytes: usize,
    messages: usize,
    records: usize,
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

fn skip_name(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *b.get(at)?;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xC0 == 0xC0 {
            return Some(at + 2);
        }
        at += 1 + usize::from(len);
    }
}

/// The message's answer count; pushes the serial of each SOA in it.
fn walk(msg: &[u8], soas: &mut Vec<u32>) -> Option<usize> {
    let (qd, an) = (be16(msg, 4)?, be16(msg, 6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at)? + 4;
    }
    for _ in 0..an {
        at = skip_name(msg, at)?;
        let (rtype, rdlen) = (be16(msg, at)?, be16(msg, at + 8)?);
        let rdata = at + 10;
        if rtype == 6 {
            let serial_at = skip_name(msg, skip_name(msg, rdata)?)?;
            let s = msg.get(serial_at..serial_at + 4)?;
            soas.push(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
        }
        at = rdata + rdlen;
    }
    Some(an)
}

/// One signed AXFR, or IXFR from `from`, read to its end (RFC 5936 §2.2,
/// RFC 1995 §4); the messages too when `keep`.
fn xfr(server: SocketAddr, from: Option<u32>, keep: bool) -> anyhow::Result<(Xfr, Vec<Vec<u8>>)> {
    let zone = Name::from_ascii(format!("{ZONE}."))?;
    let qtype = if from.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    let mut m = Message::new(fastrand::u16(..), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(zone.clone(), qtype));
    if let Some(s) = from {
        let soa = SOA::new(zone.clone(), zone.clone(), s, 0, 0, 0, 0);
        m.add_authority(Record::from_rdata(zone, 0, RData::SOA(soa)));
    }
    m.finalize(&signer(), now())?;
    let req = m.to_vec()?;
    let started = Instant::now();
    let mut s = TcpStream::connect(server)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut framed = (req.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&req);
    s.write_all(&framed)?;
    let (mut soas, mut out, mut kept) = (Vec::new(), Xfr::default(), Vec::new());
    loop {
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf)?;
        if buf.get(3).is_some_and(|b| b & 0x0F != 0) {
            bail!("{server} answered RCODE {}", buf[3] & 0x0F);
        }
        out.records += walk(&buf, &mut soas).context("malformed message")?;
        out.bytes += buf.len();
        out.messages += 1;
        if keep {
            kept.push(buf);
        }
        let n = soas.len();
        let ended = match from {
            None => n >= 2,
            // Up to date; the whole zone (its SOA twice); increments (the
            // new serial again, closing an even count).
            Some(_) => {
                (n == 1 && out.records == 1)
                    || (n == 2 && soas[1] == soas[0])
                    || (n >= 4 && n.is_multiple_of(2) && soas[n - 1] == soas[0])
            }
        };
        if ended {
            out.secs = started.elapsed().as_secs_f64();
            return Ok((out, kept));
        }
    }
}

fn median(mut v: Vec<Xfr>) -> Xfr {
    v.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    v[v.len() / 2]
}

/// The zone's serial, from a SOA query over UDP.
fn soa_serial(server: SocketAddr) -> anyhow::Result<u32> {
    let mut m = Message::new(fastrand::u16(..), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii(format!("{ZONE}."))?,
        RecordType::SOA,
    ));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    sock.send_to(&m.to_vec()?, server)?;
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf)?;
    Message::from_vec(&buf[..n])?
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .context("no SOA")
}

/// A record as a zone file (and `knotc zone-set`) spells it.
fn zone_line(r: &Record) -> String {
    let data = match &r.data {
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|s| format!("\"{}\"", String::from_utf8_lossy(s)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    format!("{} {} {} {data}", r.name, r.ttl, r.record_type())
}

fn records(msgs: &[Vec<u8>]) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend(Message::from_vec(m)?.answers);
    }
    Ok(out)
}

/// knotd, killed when dropped.
struct Knot(Child);

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn knot_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    let secret = base64::engine::general_purpose::STANDARD.encode(SECRET);
    format!(
        "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{port}\n  udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\n\
         log:\n  - target: stderr\n    any: warning\n\
         database:\n  storage: \"{d}\"\n\
         key:\n  - id: bench\n    algorithm: hmac-sha256\n    secret: {secret}\n\
         acl:\n  - id: xfr\n    address: 127.0.0.1\n    key: bench\n    action: transfer\n\
         zone:\n  - domain: {ZONE}\n    file: \"{d}/{ZONE}.zone\"\n    storage: \"{d}\"\n    acl: xfr\n    \
         zonefile-sync: -1\n    journal-content: changes\n"
    )
}

fn report(what: &str, ours: Xfr, theirs: Xfr) {
    println!("{what}:");
    for (who, x) in [("crossdns", ours), ("knotd", theirs)] {
        println!(
            "  {who:<8} {:9.2} ms {:>10} bytes {:>5} messages {:>8} records",
            x.secs * 1e3,
            x.bytes,
            x.messages,
            x.records
        );
    }
    println!(
        "  crossdns/knotd: time {:.2}, bytes {:.2}",
        ours.secs / theirs.secs,
        ours.bytes as f64 / theirs.bytes as f64
    );
}

fn main() -> anyhow::Result<()> {
    let services = env_usize("XFR_SERVICES", 10_000);
    let endpoints = env_usize("XFR_ENDPOINTS", 10).max(1);
    let runs = env_usize("XFR_RUNS", 5).max(1);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let _guard = rt.enter();
    let api = rt.block_on(fake_apiserver::FakeApiServer::start())?;
    for i in 0..services {
        let (svc, slice) = objects(i, endpoints);
        api.apply(svc)?;
        api.apply(slice)?;
    }
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "ctx")?;
    let key = dir.path().join("bench.key");
    std::fs::write(
        &key,
        base64::engine::general_purpose::STANDARD.encode(SECRET),
    )?;
    let yaml = format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\n  advertise: [\"127.0.0.1\"]\nallow: [\"127.0.0.0/8\"]\n\
         tsig_keys: [{{name: bench, algorithm: hmac-sha256, secret_file: {}}}]\n\
         transfer: {{allow: [\"127.0.0.0/8\"], key: bench}}\n\
         clusters:\n  - {{name: bench, zone: {ZONE}, kubeconfig: {}, context: ctx}}\n",
        key.display(),
        kubeconfig.display()
    );
    let settings = crossdns::config::Settings::from_yaml(&yaml, Path::new("xfr.yaml"))?;
    let running = rt.block_on(crossdns::app::start(settings))?;
    let ours_addr = running.dns[0];
    let started = Instant::now();
    while !running.clusters.iter().all(|c| c.status.synced()) {
        if started.elapsed() > Duration::from_secs(300) {
            bail!("crossdns did not sync within 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "zone {ZONE}: {services} Services with {} endpoints ({} objects), synced in {:.1} s",
        services * endpoints,
        services * (1 + endpoints),
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_millis(500));

    // knotd serves crossdns's AXFR as its zone file.
    let (_, msgs) = xfr(ours_addr, None, true)?;
    let mut zone = records(&msgs)?;
    zone.pop(); // the closing SOA
    let kdir = dir.path().join("knot");
    std::fs::create_dir_all(&kdir)?;
    let text: String = zone.iter().map(|r| zone_line(r) + "\n").collect();
    std::fs::write(kdir.join(format!("{ZONE}.zone")), text)?;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    std::fs::write(kdir.join("knot.conf"), knot_conf(&kdir, port))?;
    let knot = Knot(
        Command::new("/usr/sbin/knotd")
            .arg("-c")
            .arg(kdir.join("knot.conf"))
            .stdout(Stdio::null())
            .spawn()
            .context("start knotd")?,
    );
    let knot_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    while xfr(knot_addr, None, false).is_err() {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("knotd did not load the zone");
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(xfr(ours_addr, None, false)?.0);
        theirs.push(xfr(knot_addr, None, false)?.0);
    }
    report(
        &format!("AXFR (median of {runs}, TSIG-signed, loopback)"),
        median(ours),
        median(theirs),
    );

    // One endpoint of one headless Service moves, `runs` times; knotd gets
    // the same record changes through a zone transaction.
    let knotc = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new("/usr/sbin/knotc")
            .arg("-c")
            .arg(kdir.join("knot.conf"))
            .args(args)
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() || text.contains("error") {
            bail!("knotc {args:?}: {text}");
        }
        Ok(())
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for k in 1..=runs {
        let from = soa_serial(ours_addr)?;
        let (_, mut slice) = objects(10, endpoints);
        slice["endpoints"][0]["addresses"] = json!([format!("10.200.0.{k}")]);
        api.apply(slice)?;
        let t0 = Instant::now();
        while soa_serial(ours_addr)? == from {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("the change did not publish");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (x, msgs) = xfr(ours_addr, Some(from), true)?;
        ours.push(x);
        let changed = records(&msgs)?;
        let knot_from = soa_serial(knot_addr)?;
        knotc(&["zone-begin", ZONE])?;
        let mut deleting = false;
        for r in &changed[1..changed.len() - 1] {
            if r.record_type() == RecordType::SOA {
                deleting = !deleting;
                continue;
            }
            let (owner, ttl, rtype) = (
                r.name.to_string(),
                r.ttl.to_string(),
                r.record_type().to_string(),
            );
            let line = zone_line(r);
            let data = line.splitn(4, ' ').nth(3).unwrap_or_default().to_owned();
            if deleting {
                knotc(&["zone-unset", ZONE, &owner, &rtype, &data])?;
            } else {
                knotc(&["zone-set", ZONE, &owner, &ttl, &rtype, &data])?;
            }
        }
        knotc(&["zone-commit", ZONE])?;
        let t0 = Instant::now();
        while soa_serial(knot_addr)? == knot_from && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        theirs.push(xfr(knot_addr, Some(knot_from), false)?.0);
    }
    report(
        &format!("IXFR of one moved endpoint (median of {runs})"),
        median(ours),
        median(theirs),
    );
    drop(knot);
    drop(running);
    Ok(())
}
