//! crossdns → crossdns: instance A forwards `cluster.region3` to instance B,
//! which watches a folder of manifests as `cluster.region3` and also listens
//! for DNS over TLS (RFC 7858) with a certificate for `dns.region3` and
//! 127.0.0.1 from a test CA. The hop is plain UDP, TCP after a truncated UDP
//! answer, DoT, and DoT with client certificates (mutual TLS); wrong
//! certificates are refused. B's DoT listener also answers a plain
//! hickory-net TLS client.

mod interop_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crossdns::app::Running;
use futures::StreamExt as _;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::xfer::DnsHandle as _;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message, ResponseCode};
use hickory_proto::rr::RecordType;
use interop_support::{
    CertFiles, TestCa, Transport, expect_servfail, init_tls, must_metric, query, start_crossdns,
    summarize, wait_rcode,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

const A: RecordType = RecordType::A;
const ZONE: &str = "cluster.region3";
const POD: &str = "db-0.db.default.svc.cluster.region3.";
const BIG: &str = "big.default.svc.cluster.region3.";
const BIG_ENDPOINTS: usize = 100;

/// B's manifests: a StatefulSet-style pod `db-0` (10.3.0.10) and a headless
/// Service `big` with 100 ready endpoints (10.3.1.1 ... 10.3.1.100), whose A
/// answer (about 1.7 kB) does not fit a 1232-byte UDP response.
fn write_manifests(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir manifests");
    let mut big_endpoints = String::new();
    for i in 1..=BIG_ENDPOINTS {
        big_endpoints.push_str(&format!(
            "  - addresses: [\"10.3.1.{i}\"]\n    conditions: {{ready: true}}\n"
        ));
    }
    let text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: db, namespace: default}}\n\
         spec:\n  clusterIP: None\n  ports:\n    - {{name: grpc, port: 26257, protocol: TCP}}\n\
         ---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: db-1, namespace: default, labels: {{kubernetes.io/service-name: db}}}}\n\
         addressType: IPv4\nports:\n  - {{name: grpc, port: 26257, protocol: TCP}}\n\
         endpoints:\n  - addresses: [\"10.3.0.10\"]\n    hostname: db-0\n    conditions: {{ready: true}}\n\
         ---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: big, namespace: default}}\n\
         spec:\n  clusterIP: None\n  ports:\n    - {{name: http, port: 80, protocol: TCP}}\n\
         ---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: big-1, namespace: default, labels: {{kubernetes.io/service-name: big}}}}\n\
         addressType: IPv4\nports:\n  - {{name: http, port: 80, protocol: TCP}}\n\
         endpoints:\n{big_endpoints}"
    );
    std::fs::write(dir.join("region3.yaml"), text).expect("write manifests");
}

/// The test PKI: the CA B's certificate comes from (also the client CA),
/// B's server certificate, a good client certificate, and a client
/// certificate from another CA.
struct Pki {
    ca: TestCa,
    server: CertFiles,
    client: CertFiles,
    rogue_client: CertFiles,
}

fn pki(dir: &Path) -> Pki {
    let ca = TestCa::new(dir, "sites");
    let server = ca.issue("dns-region3", &["dns.region3", "127.0.0.1"], false);
    let client = ca.issue("region1-client", &["crossdns.region1"], true);
    let rogue = TestCa::new(dir, "rogue");
    let rogue_client = rogue.issue("rogue-client", &["crossdns.region1"], true);
    Pki {
        ca,
        server,
        client,
        rogue_client,
    }
}

/// Instance B: `cluster.region3` from manifests; DoT with the server
/// certificate; client certificates from `client_ca` required when given.
async fn start_b(dir: &Path, pki: &Pki, client_ca: Option<&Path>) -> Running {
    let manifests = dir.join("region3");
    write_manifests(&manifests);
    let client_ca = client_ca
        .map(|p| format!("  tls_client_ca: \"{}\"\n", p.display()))
        .unwrap_or_default();
    let yaml = format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\n  tls_listen: [\"127.0.0.1:0\"]\n\
         \x20 tls_cert: \"{}\"\n  tls_key: \"{}\"\n{client_ca}\
         allow: [\"127.0.0.0/8\"]\n\
         clusters:\n  - {{name: region3, zone: {ZONE}, manifests: \"{}\"}}\n",
        pki.server.cert.display(),
        pki.server.key.display(),
        manifests.display()
    );
    let name = if client_ca.is_empty() { "b" } else { "b-mtls" };
    let b = start_crossdns(dir, name, &yaml).await;
    assert_eq!(b.dot.len(), 1, "B listens for DNS over TLS");
    wait_rcode(
        b.dns[0],
        POD,
        A,
        ResponseCode::NoError,
        Duration::from_secs(15),
    )
    .await;
    wait_rcode(
        b.dns[0],
        BIG,
        A,
        ResponseCode::NoError,
        Duration::from_secs(15),
    )
    .await;
    b
}

/// Instance A: its own cluster (empty) and `cluster.region3` forwarded to
/// `upstream` with the given extra forward keys (`tls_ca`, ...).
async fn start_a(dir: &Path, name: &str, upstream: &str, extra: &str) -> Running {
    let local = dir.join(format!("{name}-region1"));
    std::fs::create_dir_all(&local).expect("mkdir");
    let yaml = format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\n\
         allow: [\"127.0.0.0/8\"]\n\
         clusters:\n  - {{name: region1, zone: cluster.region1, manifests: \"{}\"}}\n\
         forward:\n  - zone: {ZONE}\n    upstreams: [\"{upstream}\"]\n    stale_for: \"0\"\n{extra}",
        local.display()
    );
    start_crossdns(dir, name, &yaml).await
}

fn tls_upstream(b: &Running) -> String {
    format!("tls://{}#dns.region3", b.dot[0])
}

fn a_records(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter(|r| r.record_type() == A)
        .map(|r| r.data.to_string())
        .collect();
    v.sort();
    v
}

fn upstream_labels(upstream: &str) -> [(&str, &str); 2] {
    [("zone", ZONE), ("upstream", upstream)]
}

/// `crossdns_forward_upstream_<what>` (`up`, `requests_total`,
/// `failures_total`) of `upstream` in `r`'s metrics; panics if absent.
fn upstream_metric(r: &Running, what: &str, upstream: &str) -> f64 {
    must_metric(
        r,
        &format!("crossdns_forward_upstream_{what}"),
        &upstream_labels(upstream),
    )
}

/// A's forward keys to trust the test CA and present `client`'s certificate.
fn mtls_keys(ca: &TestCa, client: &CertFiles) -> String {
    format!(
        "    tls_ca: \"{}\"\n    tls_cert: \"{}\"\n    tls_key: \"{}\"\n",
        ca.cert.display(),
        client.cert.display(),
        client.key.display()
    )
}

/// A forwards `POD` and must answer SERVFAIL (B refused, or was refused).
async fn assert_pod_servfail(a: &Running, why: &str) -> Message {
    expect_servfail(a.dns[0], POD, A, Duration::from_secs(6), why).await
}

/// A through A equals B direct, for the pod and for an NXDOMAIN.
async fn assert_forwarded_like_b(a: SocketAddr, b: SocketAddr) {
    for (name, rcode) in [
        (POD, ResponseCode::NoError),
        (
            "nosuch.default.svc.cluster.region3.",
            ResponseCode::NXDomain,
        ),
    ] {
        let via = query(a, name, A, Transport::Udp).await;
        let direct = query(b, name, A, Transport::Udp).await;
        assert_eq!(
            via.metadata.response_code,
            rcode,
            "{name}: {:?}",
            summarize(&via)
        );
        assert_eq!(
            summarize(&via),
            summarize(&direct),
            "{name} through A vs B direct"
        );
    }
    let via = query(a, POD, A, Transport::Udp).await;
    assert_eq!(a_records(&via), ["10.3.0.10"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_over_plain_udp_answers_like_the_upstream_crossdns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let b = start_b(dir.path(), &pki, None).await;
    let upstream = b.dns[0].to_string();
    let a = start_a(dir.path(), "a-udp", &upstream, "").await;
    assert_forwarded_like_b(a.dns[0], b.dns[0]).await;
    assert_eq!(upstream_metric(&a, "up", &upstream), 1.0);
    assert_eq!(upstream_metric(&a, "failures_total", &upstream), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_udp_answer_from_the_upstream_is_retried_over_tcp_and_served_whole_over_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let b = start_b(dir.path(), &pki, None).await;
    let upstream = b.dns[0].to_string();
    let a = start_a(dir.path(), "a-tcp", &upstream, "").await;

    // B itself truncates the big answer over UDP, and sends it whole over TCP.
    let direct_udp = query(b.dns[0], BIG, A, Transport::Udp).await;
    assert!(
        direct_udp.metadata.truncation,
        "B over UDP: {:?}",
        summarize(&direct_udp)
    );
    let direct_tcp = query(b.dns[0], BIG, A, Transport::Tcp).await;
    assert_eq!(a_records(&direct_tcp).len(), BIG_ENDPOINTS);
    let requests_before = upstream_metric(&a, "requests_total", &upstream);

    // A's client over UDP: too big for it too, so TC; A fetched it whole
    // from B (UDP, truncated, then TCP).
    let via_udp = query(a.dns[0], BIG, A, Transport::Udp).await;
    assert_eq!(via_udp.metadata.response_code, ResponseCode::NoError);
    assert!(
        via_udp.metadata.truncation,
        "A over UDP: {:?}",
        summarize(&via_udp)
    );
    let requests = upstream_metric(&a, "requests_total", &upstream) - requests_before;
    assert_eq!(requests, 2.0, "one UDP query, then the TCP retry");

    // The client retries over TCP and gets all 100 addresses.
    let via_tcp = query(a.dns[0], BIG, A, Transport::Tcp).await;
    assert_eq!(via_tcp.metadata.response_code, ResponseCode::NoError);
    assert!(!via_tcp.metadata.truncation);
    let expected: Vec<String> = {
        let mut v: Vec<String> = (1..=BIG_ENDPOINTS).map(|i| format!("10.3.1.{i}")).collect();
        v.sort();
        v
    };
    assert_eq!(a_records(&via_tcp), expected);
    assert_eq!(summarize(&via_tcp), summarize(&direct_tcp));

    // A fresh client over TCP on a cold A: also whole (UDP → TC → TCP upstream).
    let a2 = start_a(dir.path(), "a-tcp-cold", &upstream, "").await;
    let cold = query(a2.dns[0], BIG, A, Transport::Tcp).await;
    assert_eq!(a_records(&cold), expected);
    assert_eq!(upstream_metric(&a2, "failures_total", &upstream), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_over_dns_over_tls_verifies_the_server_name_against_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let b = start_b(dir.path(), &pki, None).await;
    let upstream = tls_upstream(&b);
    let extra = format!("    tls_ca: \"{}\"\n", pki.ca.cert.display());
    let a = start_a(dir.path(), "a-dot", &upstream, &extra).await;
    assert_forwarded_like_b(a.dns[0], b.dns[0]).await;

    // Over DoT the big answer needs no retry: one request, whole answer.
    let before = upstream_metric(&a, "requests_total", &upstream);
    let big = query(a.dns[0], BIG, A, Transport::Tcp).await;
    assert_eq!(a_records(&big).len(), BIG_ENDPOINTS);
    let after = upstream_metric(&a, "requests_total", &upstream);
    assert_eq!(after - before, 1.0, "one DoT request for the big answer");
    assert_eq!(upstream_metric(&a, "failures_total", &upstream), 0.0);

    // The same upstream under a name its certificate does not carry: refused.
    let wrong = format!("tls://{}#dns.region4", b.dot[0]);
    let a_wrong = start_a(dir.path(), "a-dot-wrong-name", &wrong, &extra).await;
    assert_pod_servfail(&a_wrong, "a name the certificate does not carry").await;
    assert!(upstream_metric(&a_wrong, "failures_total", &wrong) >= 1.0);

    // Without tls_ca (system roots), the test CA is not trusted: refused.
    let a_untrusted = start_a(dir.path(), "a-dot-untrusted", &upstream, "").await;
    assert_pod_servfail(&a_untrusted, "the test CA is not a system root").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_the_right_client_certificate_and_refuses_a_wrong_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let b = start_b(dir.path(), &pki, Some(&pki.ca.cert)).await;
    let upstream = tls_upstream(&b);

    // Right client certificate: answers.
    let good = mtls_keys(&pki.ca, &pki.client);
    let a = start_a(dir.path(), "a-mtls", &upstream, &good).await;
    assert_forwarded_like_b(a.dns[0], b.dns[0]).await;
    assert_eq!(upstream_metric(&a, "failures_total", &upstream), 0.0);

    // A client certificate from another CA: B refuses the handshake, A
    // answers SERVFAIL and counts a failure.
    let rogue = mtls_keys(&pki.ca, &pki.rogue_client);
    let a_rogue = start_a(dir.path(), "a-rogue", &upstream, &rogue).await;
    let before = upstream_metric(&a_rogue, "failures_total", &upstream);
    let m = assert_pod_servfail(&a_rogue, "a client certificate from another CA").await;
    assert!(m.answers.is_empty());
    let after = upstream_metric(&a_rogue, "failures_total", &upstream);
    assert!(after > before, "failures went from {before} to {after}");

    // No client certificate at all: refused the same way.
    let none = format!("    tls_ca: \"{}\"\n", pki.ca.cert.display());
    let a_none = start_a(dir.path(), "a-no-cert", &upstream, &none).await;
    assert_pod_servfail(&a_none, "no client certificate").await;
    assert!(upstream_metric(&a_none, "failures_total", &upstream) >= 1.0);
}

/// A DoT query with hickory-net's own TLS client, trusting only `ca`.
async fn hickory_dot_query(
    addr: SocketAddr,
    ca: &Path,
    name: &str,
    qtype: RecordType,
) -> Result<Message, String> {
    init_tls();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = ServerName::try_from("dns.region3".to_owned()).map_err(|e| e.to_string())?;
    // The provider owns the JoinSet that runs the connection's background
    // task: it must outlive the exchange, or the task is aborted.
    let provider = TokioRuntimeProvider::new();
    let exchange = hickory_net::tls::tls_exchange(
        addr,
        server_name,
        config,
        Duration::from_secs(5),
        None,
        provider.clone(),
    )
    .await
    .map_err(|e| format!("tls connect: {e}"))?;
    let msg = interop_support::query_message(name, qtype);
    let mut options = DnsRequestOptions::default();
    options.use_edns = true;
    options.recursion_desired = true;
    let mut responses = exchange.send(DnsRequest::new(msg, options));
    let result = tokio::time::timeout(Duration::from_secs(5), responses.next()).await;
    drop(provider);
    match result {
        Ok(Some(Ok(r))) => Ok(r.into_message()),
        Ok(Some(Err(e))) => Err(format!("exchange: {e}")),
        Ok(None) => Err("no response".to_owned()),
        Err(_) => Err("timed out".to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dot_listener_answers_a_hickory_net_tls_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let b = start_b(dir.path(), &pki, None).await;
    let m = hickory_dot_query(b.dot[0], &pki.ca.cert, POD, A)
        .await
        .expect("DoT query to B");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), ["10.3.0.10"]);
    let direct = query(b.dns[0], POD, A, Transport::Udp).await;
    assert_eq!(summarize(&m), summarize(&direct));

    // The whole big answer over TLS, no truncation.
    let m = hickory_dot_query(b.dot[0], &pki.ca.cert, BIG, A)
        .await
        .expect("DoT query to B");
    assert!(!m.metadata.truncation);
    assert_eq!(a_records(&m).len(), BIG_ENDPOINTS);

    // A client that trusts another CA refuses B's certificate.
    let other = TestCa::new(dir.path(), "other");
    assert!(
        hickory_dot_query(b.dot[0], &other.cert, POD, A)
            .await
            .is_err(),
        "a client trusting another CA must not get an answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dot_certificate_is_reloaded_when_its_files_change_and_a_bad_one_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let b = start_b(dir.path(), &pki, None).await;
    assert!(
        hickory_dot_query(b.dot[0], &pki.ca.cert, POD, A)
            .await
            .is_ok()
    );

    // Rotate: a certificate from a new CA, written over the files B serves.
    let rotated = TestCa::new(dir.path(), "rotated");
    let next = rotated.issue("dns-region3-next", &["dns.region3", "127.0.0.1"], false);
    std::fs::copy(&next.key, &pki.server.key).expect("write key");
    std::fs::copy(&next.cert, &pki.server.cert).expect("write cert");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hickory_dot_query(b.dot[0], &rotated.cert, POD, A)
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        hickory_dot_query(b.dot[0], &pki.ca.cert, POD, A)
            .await
            .is_err(),
        "new connections no longer get the old certificate"
    );

    // Files that do not load keep the running certificate.
    std::fs::write(&pki.server.cert, "not a certificate").expect("write garbage");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = hickory_dot_query(b.dot[0], &rotated.cert, POD, A)
        .await
        .expect("still serving the last good certificate");
    assert_eq!(a_records(&m), ["10.3.0.10"]);
}
