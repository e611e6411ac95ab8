//! Helpers shared by the interop tests (`forward_interop.rs`, `dot.rs`):
//! real DNS programs (dnsmasq, unbound, knotd) as child processes that are
//! killed when dropped, in-process crossdns instances (`app::start`), DNS
//! exchanges over UDP and TCP, answer summaries that ignore TTLs and flags,
//! `/metrics` text parsing, and a small test PKI made with rcgen.
//!
//! Kept apart from `tests/common/` (owned by the end-to-end tests), but for
//! the few helpers both need, which come from there.
#![allow(dead_code)]

pub mod knot_primary;

#[path = "../common/mod.rs"]
mod common;
#[allow(unused_imports, reason = "used by some of the test binaries only")]
pub use common::SERIAL;
pub use common::{free_dns_port, init_tls};

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crossdns::app::Running;
use crossdns::config::Settings;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// One DNS exchange's default time limit.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------

/// Where `program` is installed: `$PATH`, then the sbin folders (dnsmasq,
/// unbound and knotd live in /usr/sbin, which is not on every user's PATH).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The programs a test needs, or `None` when one is missing: then the test
/// must return early. In CI (env `CI` set) a missing program fails the test.
pub fn require(programs: &[&str]) -> Option<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    for p in programs {
        match find_program(p) {
            Some(path) => {
                found.insert((*p).to_owned(), path);
            }
            None if std::env::var_os("CI").is_some() => {
                panic!(
                    "{p} is not installed, and CI is set: install it (apt-get install dnsmasq unbound knot bind9-dnsutils)"
                )
            }
            None => {
                eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
                eprintln!("SKIPPED: {p} not installed");
                eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
                return None;
            }
        }
    }
    Some(found)
}

/// A child process whose stdout and stderr go to a log file. Killed (SIGKILL)
/// and reaped when dropped, also while a test panics; then its log is printed.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Self {
        let out = File::create(&log).expect("create the child's log file");
        let err = out.try_clone().expect("clone the log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap; no-op if already killed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `Some(status)` once the process has exited by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait on a child"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}\n----- end of {} log -----",
                self.name,
                self.log.display(),
                self.log(),
                self.name
            );
        }
    }
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Starts a DNS daemon on a free loopback port (`make(port)` builds its
/// command) and waits until it answers anything to `probe` over UDP. A
/// daemon that exits early (a port taken in between) is retried on a new
/// port, up to 5 times; `fixed` pins the port (restarts).
pub async fn start_dns_daemon(
    name: &str,
    dir: &Path,
    fixed: Option<u16>,
    probe: (&str, RecordType),
    mut make: impl FnMut(u16) -> Command,
) -> (Proc, SocketAddr) {
    let mut last = String::new();
    for attempt in 0..5 {
        let port = fixed.unwrap_or_else(free_dns_port);
        let addr = loopback(port);
        let log = dir.join(format!("{name}-{port}-{attempt}.log"));
        let mut proc = Proc::spawn(name, &mut make(port), log);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Some(status) = proc.exited() {
                last = format!("{name} exited with {status}:\n{}", proc.log());
                break;
            }
            if exchange(
                addr,
                probe.0,
                probe.1,
                Transport::Udp,
                Duration::from_millis(300),
            )
            .await
            .is_ok()
            {
                return (proc, addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if last.is_empty() {
            panic!(
                "{name} did not answer on {addr} within 15 s:\n{}",
                proc.log()
            );
        }
        if fixed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} did not start: {last}");
}

// ---------------------------------------------------------------------------
// knotd
// ---------------------------------------------------------------------------

/// A zone file: SOA (negative TTL = `ttl`), NS, and `names` (relative
/// owner, IPv4) as A records, all with TTL `ttl`.
pub fn zone_file(zone: &str, ttl: u32, names: &[(String, String)]) -> String {
    let mut z = format!(
        "$ORIGIN {zone}.\n$TTL {ttl}\n@ SOA ns hostmaster 1 3600 600 86400 {ttl}\n@ NS ns\nns A 127.0.0.1\n"
    );
    for (owner, ip) in names {
        z.push_str(&format!("{owner} A {ip}\n"));
    }
    z
}

/// knotd serving one zone from a zone file, with its rundir and storage in
/// its own folder.
#[derive(Debug)]
pub struct Knot {
    proc: Proc,
    pub addr: SocketAddr,
    dir: PathBuf,
    knotd: PathBuf,
    zone: String,
}

impl Knot {
    pub async fn start(knotd: &Path, dir: &Path, id: &str, zone: &str, zonefile: &str) -> Self {
        let dir = dir.join(id);
        std::fs::create_dir_all(&dir).expect("create knotd folder");
        std::fs::write(dir.join(format!("{zone}.zone")), zonefile).expect("write zone file");
        let (proc, addr) = Self::spawn(knotd, &dir, zone, None).await;
        Self {
            proc,
            addr,
            dir,
            knotd: knotd.to_owned(),
            zone: zone.to_owned(),
        }
    }

    async fn spawn(knotd: &Path, dir: &Path, zone: &str, port: Option<u16>) -> (Proc, SocketAddr) {
        start_dns_daemon("knotd", dir, port, (zone, RecordType::SOA), |port| {
            let conf = dir.join("knot.conf");
            std::fs::write(&conf, knot_conf(dir, zone, port)).expect("write knot.conf");
            let mut cmd = Command::new(knotd);
            cmd.arg("-c").arg(&conf);
            cmd
        })
        .await
    }

    /// SIGKILL: no goodbye, as when a site drops off the network.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Starts knotd again on the same port.
    pub async fn restart(&mut self) {
        self.proc.kill();
        let (proc, _) =
            Self::spawn(&self.knotd, &self.dir, &self.zone, Some(self.addr.port())).await;
        self.proc = proc;
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
}

fn knot_conf(dir: &Path, zone: &str, port: u16) -> String {
    let d = dir.display();
    format!(
        "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}\"\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: none\n\
         zone:\n  - domain: {zone}\n    file: \"{d}/{zone}.zone\"\n"
    )
}

/// crossdns's logs in the test output (shown for failing tests), filtered
/// by `CROSSDNS_LOG` (default `info`).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CROSSDNS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------
// In-process crossdns
// ---------------------------------------------------------------------------

/// Writes `yaml` as `dir/<name>.yaml` and starts crossdns on it in-process.
/// Listen on `127.0.0.1:0` in the YAML and read `Running::dns` for the port.
pub async fn start_crossdns(dir: &Path, name: &str, yaml: &str) -> Running {
    init_tls();
    init_logs();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("write crossdns config");
    let settings = Settings::from_yaml(yaml, &path)
        .unwrap_or_else(|e| panic!("config {name} is refused: {e}\n{yaml}"));
    crossdns::app::start(settings)
        .await
        .unwrap_or_else(|e| panic!("crossdns {name} does not start: {e:#}"))
}

/// Polls `server` until `name`/`qtype` answers with `rcode`; panics after `within`.
pub async fn wait_rcode(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    rcode: ResponseCode,
    within: Duration,
) -> Message {
    let started = Instant::now();
    let mut last = String::from("no answer");
    while started.elapsed() < within {
        match exchange(
            server,
            name,
            qtype,
            Transport::Udp,
            Duration::from_millis(500),
        )
        .await
        {
            Ok(m) if m.metadata.response_code == rcode => return m,
            Ok(m) => last = format!("{:?}", summarize(&m)),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} {qtype} at {server}: no {rcode} within {within:?}; last: {last}");
}

// ---------------------------------------------------------------------------
// DNS exchanges
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A recursive query with EDNS (payload 1232), as stub resolvers send.
pub fn query_message(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(fastrand::u16(..), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad name {name}: {e}"));
    m.add_query(Query::query(name, qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

/// One query, one attempt, at most `timeout`.
pub async fn exchange(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    transport: Transport,
    timeout: Duration,
) -> Result<Message, String> {
    let q = query_message(name, qtype);
    exchange_message(server, &q, transport, timeout).await
}

pub async fn exchange_message(
    server: SocketAddr,
    q: &Message,
    transport: Transport,
    timeout: Duration,
) -> Result<Message, String> {
    let bytes = q.to_vec().map_err(|e| format!("encode: {e}"))?;
    let fut = async {
        match transport {
            Transport::Udp => {
                let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                sock.connect(server)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                sock.send(&bytes).await.map_err(|e| format!("send: {e}"))?;
                let mut buf = vec![0u8; 65_535];
                loop {
                    let n = sock
                        .recv(&mut buf)
                        .await
                        .map_err(|e| format!("recv: {e}"))?;
                    let m = Message::from_vec(&buf[..n]).map_err(|e| format!("decode: {e}"))?;
                    if m.metadata.id == q.metadata.id {
                        return Ok(m);
                    }
                }
            }
            Transport::Tcp => {
                let mut s = TcpStream::connect(server)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&bytes);
                s.write_all(&framed)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                let len = s.read_u16().await.map_err(|e| format!("read: {e}"))?;
                let mut buf = vec![0u8; usize::from(len)];
                s.read_exact(&mut buf)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                Message::from_vec(&buf).map_err(|e| format!("decode: {e}"))
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer from {server} within {timeout:?}")),
    }
}

/// One query over UDP, one attempt of at most `timeout`, that must be
/// answered (not silence) with SERVFAIL; `why` is said on failure.
pub async fn expect_servfail(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    timeout: Duration,
    why: &str,
) -> Message {
    let m = exchange(server, name, qtype, Transport::Udp, timeout)
        .await
        .unwrap_or_else(|e| {
            panic!("{name} {qtype} at {server}: SERVFAIL expected, not silence: {e}")
        });
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "{name} {qtype} at {server}: {why}: {:?}",
        summarize(&m)
    );
    m
}

/// A query that must be answered: up to 3 attempts of `DNS_TIMEOUT`.
pub async fn query(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    transport: Transport,
) -> Message {
    let mut last = String::new();
    for _ in 0..3 {
        match exchange(server, name, qtype, transport, DNS_TIMEOUT).await {
            Ok(m) => return m,
            Err(e) => last = e,
        }
    }
    panic!("{name} {qtype} at {server} over {transport:?}: {last}");
}

/// What two resolvers must agree on: the RCODE and the answer section's
/// records (owner, type, data; lower-cased, sorted). TTLs and header flags
/// (AA, RA, ...) are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rcode: ResponseCode,
    pub answers: Vec<String>,
}

pub fn summarize(m: &Message) -> Summary {
    let mut answers: Vec<String> = m
        .answers
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.name.to_lowercase(),
                r.record_type(),
                r.data.to_string().to_lowercase()
            )
        })
        .collect();
    answers.sort();
    Summary {
        rcode: m.metadata.response_code,
        answers,
    }
}

/// The smallest TTL in the answer section.
pub fn min_ttl(m: &Message) -> Option<u32> {
    m.answers.iter().map(|r| r.ttl).min()
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// The sum of every sample of `name` whose labels include all of `labels`
/// (exact `key="value"` matches); `None` when no sample matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric_name, label_text) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric_name != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
            && let Ok(v) = value.parse::<f64>()
        {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

/// Like `metric`, but panics (showing the text) when nothing matches.
pub fn must_metric(running: &Running, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = running.metrics.encode();
    metric(&text, name, labels)
        .unwrap_or_else(|| panic!("no sample of {name} with {labels:?} in:\n{text}"))
}

/// Polls a metric until `pred` holds; returns how long it took.
pub async fn wait_metric(
    running: &Running,
    name: &str,
    labels: &[(&str, &str)],
    pred: impl Fn(f64) -> bool,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let text = running.metrics.encode();
        if metric(&text, name, labels).is_some_and(&pred) {
            return started.elapsed();
        }
        if started.elapsed() > within {
            panic!("{name} {labels:?} did not reach the expected value within {within:?}:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// Test PKI
// ---------------------------------------------------------------------------

/// A certificate authority for tests: signs server and client certificates
/// into PEM files.
pub struct TestCa {
    pub cert: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
    name: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let path = dir.join(format!("{name}-ca.crt"));
        std::fs::write(&path, cert.pem()).expect("write CA cert");
        Self {
            cert: path,
            issuer: rcgen::Issuer::new(params, key),
            dir: dir.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A leaf certificate for `sans` (DNS names or IPs), for a server
    /// (`client == false`) or a client.
    pub fn issue(&self, file_stem: &str, sans: &[&str], client: bool) -> CertFiles {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, file_stem);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        let files = CertFiles {
            cert: self.dir.join(format!("{file_stem}.crt")),
            key: self.dir.join(format!("{file_stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write leaf cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write leaf key");
        files
    }
}

/// Runs a command to completion within `limit` (killed after that); returns
/// (status, stdout, stderr). For commands with small output (pipes are read
/// after the exit).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (ExitStatus, String, String) {
    use std::io::Read as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (status, out, err)
}
