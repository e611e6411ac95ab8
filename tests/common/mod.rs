//! Helpers shared by the end-to-end and bad-input tests: the real `crossdns`
//! binary on free loopback ports, DNS exchanges over UDP and TCP (hickory-proto
//! for encoding, plus the real hickory-net client), admin HTTP, and polling.
#![allow(dead_code)]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// How long one DNS exchange may take before it is retried or given up.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);
/// The contract's bar for a watched change to reach answers.
pub const CHANGE_DEADLINE: Duration = Duration::from_secs(1);

/// Installs ring as rustls' process-wide provider (kube, reqwest in-process).
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serializes tests that measure propagation time, so that tests in the same
/// binary do not steal the (shared, 2-core) CPU from each other.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------

/// A UDP+TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_dns_port() -> u16 {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind udp :0");
        let port = udp.local_addr().expect("udp local addr").port();
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP after 100 tries");
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind tcp :0")
        .local_addr()
        .expect("tcp local addr")
        .port()
}

/// A running `crossdns serve`; killed when dropped. If the test is
/// panicking, the server's stderr is printed.
#[derive(Debug)]
pub struct Crossdns {
    child: Child,
    pub dns: SocketAddr,
    pub admin: SocketAddr,
    pub config_path: PathBuf,
    stderr_path: PathBuf,
    http: reqwest::Client,
}

impl Drop for Crossdns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- crossdns stderr ({}) -----\n{}\n----- end of crossdns stderr -----",
                self.stderr_path.display(),
                self.stderr()
            );
        }
    }
}

impl Crossdns {
    /// Writes a config to `dir` — `dns.listen` and `admin.listen` on free
    /// loopback ports, then `rest` (YAML for `allow`, `clusters`, ...) — and
    /// starts `crossdns serve --config` on it. Returns once the admin port
    /// accepts connections (not necessarily ready). Retries with new ports if
    /// a port was taken in between.
    pub async fn start(dir: &Path, rest: &str) -> Self {
        init_tls();
        let mut last_err = String::new();
        for attempt in 0..5 {
            let dns_port = free_dns_port();
            let admin_port = free_tcp_port();
            let config = format!(
                "dns:\n  listen: [\"127.0.0.1:{dns_port}\"]\n  ttl: 5\nadmin:\n  listen: \"127.0.0.1:{admin_port}\"\n{rest}"
            );
            let config_path = dir.join(format!("crossdns-{attempt}.yaml"));
            std::fs::write(&config_path, &config).expect("write config");
            let stderr_path = dir.join(format!("crossdns-{attempt}.stderr"));
            let stderr = File::create(&stderr_path).expect("create stderr file");
            let child = Command::new(env!("CARGO_BIN_EXE_crossdns"))
                .arg("serve")
                .arg("--config")
                .arg(&config_path)
                .env(
                    "CROSSDNS_LOG",
                    std::env::var("CROSSDNS_LOG").unwrap_or_else(|_| "info".to_owned()),
                )
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(stderr))
                .spawn()
                .expect("spawn crossdns");
            let mut server = Self {
                child,
                dns: SocketAddr::from((Ipv4Addr::LOCALHOST, dns_port)),
                admin: SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port)),
                config_path,
                stderr_path,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("http client"),
            };
            let started = Instant::now();
            loop {
                if let Some(status) = server.child.try_wait().expect("try_wait") {
                    last_err = format!("crossdns exited with {status}:\n{}", server.stderr());
                    break;
                }
                if TcpStream::connect(server.admin).await.is_ok() {
                    return server;
                }
                if started.elapsed() > Duration::from_secs(20) {
                    panic!(
                        "crossdns admin port never opened in 20 s:\n{}",
                        server.stderr()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !last_err.contains("listen") {
                // Not a port race: retrying will not help.
                break;
            }
            drop(server);
        }
        panic!("crossdns did not start: {last_err}");
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Panics if the process has exited or any thread has panicked.
    /// The exit status, once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("crossdns exited with {status}:\n{}", self.stderr());
        }
        let log = self.stderr();
        assert!(!log.contains("panicked"), "crossdns panicked:\n{log}");
    }

    /// GET an admin path; (status, body).
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = self
            .http
            .get(format!("http://{}{path}", self.admin))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    /// Waits until `/readyz` is 200; panics with the last body after `within`.
    pub async fn wait_ready(&self, within: Duration) -> Duration {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < within {
            last = self.get("/readyz").await;
            if matches!(&last, Some((200, _))) {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "/readyz not 200 within {within:?}: last {last:?}\n{}",
            self.stderr()
        );
    }

    /// The readiness JSON (status, body).
    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        let (status, body) = self.get("/readyz").await.expect("GET /readyz");
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/readyz body is not JSON ({e}): {body}"));
        (status, json)
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await.expect("GET /metrics");
        assert_eq!(status, 200, "/metrics: {body}");
        body
    }

    /// The value of one sample of `/metrics`, e.g.
    /// `crossdns_cluster_watch_restarts_total{cluster="region1"}`.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        metric_value(&self.metrics().await, sample)
    }
}

/// Finds `sample` (name plus exact label set as printed) in metrics text.
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(sample)?;
        let value = rest.strip_prefix(' ')?.split(' ').next()?;
        value.parse().ok()
    })
}

// ---------------------------------------------------------------------------
// DNS
// ---------------------------------------------------------------------------

/// A recursive-desired query with EDNS (payload `edns`) when given.
pub fn make_query(name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(
        Name::from_ascii(name).unwrap_or_else(|e| panic!("bad name {name}: {e}")),
        rtype,
    ));
    m.metadata.recursion_desired = true;
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

/// Sends raw bytes over UDP and returns the first reply (whatever its ID),
/// or None if nothing arrives within `wait`.
pub async fn udp_raw(addr: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind udp client");
    sock.send_to(packet, addr).await.expect("udp send");
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// Exchanges one message over UDP: 2 s timeout, sent once more on silence;
/// replies with a different ID are ignored. Returns the raw reply.
pub async fn udp_exchange_raw(addr: SocketAddr, msg: &Message) -> Vec<u8> {
    let bytes = msg.to_vec().expect("encode query");
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind udp client");
    let mut buf = vec![0u8; 65_535];
    for _attempt in 0..2 {
        sock.send_to(&bytes, addr).await.expect("udp send");
        let until = tokio::time::Instant::now() + DNS_TIMEOUT;
        while let Ok(Ok((n, _))) = tokio::time::timeout_at(until, sock.recv_from(&mut buf)).await {
            if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == msg.metadata.id {
                return buf[..n].to_vec();
            }
        }
    }
    panic!(
        "no UDP reply from {addr} to {:?} after 2 tries",
        msg.queries
    );
}

pub async fn udp_exchange(addr: SocketAddr, msg: &Message) -> Message {
    let raw = udp_exchange_raw(addr, msg).await;
    Message::from_vec(&raw).unwrap_or_else(|e| panic!("undecodable UDP reply ({e}): {raw:02x?}"))
}

/// `name` `rtype` over UDP with EDNS (1232).
pub async fn query_udp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    udp_exchange(addr, &make_query(name, rtype, Some(1232))).await
}

/// Writes one length-prefixed message to a stream.
pub async fn tcp_send(stream: &mut TcpStream, bytes: &[u8]) {
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.expect("tcp write");
}

/// Reads one length-prefixed message; None on close or after `DNS_TIMEOUT`.
pub async fn tcp_recv(stream: &mut TcpStream) -> Option<Vec<u8>> {
    tokio::time::timeout(DNS_TIMEOUT, async {
        let len = stream.read_u16().await.ok()?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.ok()?;
        Some(buf)
    })
    .await
    .ok()
    .flatten()
}

pub async fn tcp_connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(DNS_TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("tcp connect timed out")
        .expect("tcp connect")
}

/// One raw message over a fresh TCP connection; None if no reply.
pub async fn tcp_raw(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let mut stream = tcp_connect(addr).await;
    tcp_send(&mut stream, packet).await;
    tcp_recv(&mut stream).await
}

pub async fn tcp_exchange(addr: SocketAddr, msg: &Message) -> Message {
    let bytes = msg.to_vec().expect("encode query");
    let raw = tcp_raw(addr, &bytes)
        .await
        .unwrap_or_else(|| panic!("no TCP reply from {addr} to {:?}", msg.queries));
    let reply = Message::from_vec(&raw)
        .unwrap_or_else(|e| panic!("undecodable TCP reply ({e}): {raw:02x?}"));
    assert_eq!(reply.metadata.id, msg.metadata.id, "TCP reply ID");
    reply
}

/// `name` `rtype` over TCP with EDNS (1232).
pub async fn query_tcp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    tcp_exchange(addr, &make_query(name, rtype, Some(1232))).await
}

/// A query through the real hickory-net client over UDP.
pub async fn query_hickory_client(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    use hickory_net::client::{Client, ClientHandle as _};
    use hickory_net::runtime::TokioRuntimeProvider;
    use hickory_net::udp::UdpClientStream;
    use hickory_proto::rr::DNSClass;

    let conn = UdpClientStream::builder(addr, TokioRuntimeProvider::default()).build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    let bg = tokio::spawn(bg);
    let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad name {name}: {e}"));
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.query(name, DNSClass::IN, rtype),
    )
    .await
    .expect("hickory client timed out")
    .expect("hickory client query");
    bg.abort();
    response.into_message()
}

pub fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}

/// The A/AAAA addresses of the answer section, sorted.
pub fn addresses(m: &Message) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The SRV targets of the answer section (lower-case, no trailing dot), sorted.
pub fn srv_targets(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(dotless(&s.target.to_string())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The CNAME / PTR targets of the answer section (lower-case, no trailing dot).
pub fn name_targets(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(c) => Some(dotless(&c.0.to_string())),
            RData::PTR(p) => Some(dotless(&p.0.to_string())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn dotless(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// True when the authority section carries an SOA.
pub fn has_soa(m: &Message) -> bool {
    m.authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("bad IP {s}: {e}"))
}

// ---------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------

/// Polls `cond` every 20 ms until it holds or `deadline` passes; returns the
/// time it took, or None if it never held.
pub async fn wait_for<F>(deadline: Duration, mut cond: F) -> Option<Duration>
where
    F: AsyncFnMut() -> bool,
{
    let started = Instant::now();
    loop {
        if cond().await {
            return Some(started.elapsed());
        }
        if started.elapsed() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The repository root (for `examples/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
