//! Zone transfers over TLS (XoT, RFC 9103) for a `primary:` source with a
//! `tls://IP:PORT#name` server: the SOA check and the transfers go over TLS,
//! offering ALPN `dot`, trusting `tls_ca` and showing `tls_cert` to a
//! primary that requires client certificates. knotd 3.2 has no TLS, so a
//! TLS terminator written here (tokio-rustls) stands in front of it and
//! relays the bytes. A certificate for another name, or no client
//! certificate where one is required, fails with cause `tls`.

mod interop_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossdns::app::Running;
use hickory_proto::rr::RecordType;
use interop_support::knot_primary::{KnotPrimary, KnotPrimaryOptions, TsigKey};
use interop_support::{
    TestCa, Transport, expect_servfail, free_dns_port, init_tls, query, require, start_crossdns,
    summarize, wait_metric, wait_rcode,
};
use tokio::net::{TcpListener, TcpStream};

const ZONE: &str = "cluster.lab";
const SECRET: &str = "c2l0ZXMtc2VjcmV0LWtleS0xMjM0NTY3ODkwYWJjZA==";

fn zone_file() -> String {
    format!(
        "$ORIGIN {ZONE}.\n$TTL 30\n@ SOA ns hostmaster 7 3600 600 86400 30\n@ NS ns\nns A 127.0.0.1\n\
         web.shop.svc A 10.9.0.1\n"
    )
}

/// A TLS terminator for `backend` that requires client certificates from
/// `ca`; counts the handshakes that negotiated ALPN `dot`.
async fn terminator(ca: &TestCa, backend: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let server = ca.issue("primary", &["dns.lab"], false);
    let config = crossdns::tls::server_config(&server.cert, &server.key, Some(&ca.cert))
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dot = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&dot);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if tls.get_ref().1.alpn_protocol() == Some(b"dot") {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                let Ok(mut knot) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut knot).await;
            });
        }
    });
    (addr, dot)
}

async fn secondary(dir: &std::path::Path, server: &str, client_cert: bool, ca: &TestCa) -> Running {
    TsigKey::sha256("sites", SECRET).write_secret(dir);
    let client = if client_cert {
        let c = ca.issue("secondary", &["secondary.lab"], true);
        format!(
            ", tls_cert: {}, tls_key: {}",
            c.cert.display(),
            c.key.display()
        )
    } else {
        String::new()
    };
    let yaml = format!(
        "dns: {{listen: [\"127.0.0.1:{}\"]}}\n\
         tsig_keys: [{{name: sites, algorithm: hmac-sha256, secret_file: sites.key}}]\n\
         clusters:\n  - name: lab\n    zone: {ZONE}\n    primary: {{servers: [\"{server}\"], key: sites, poll: 200ms, tls_ca: {}{client}}}\n",
        free_dns_port(),
        ca.cert.display(),
    );
    start_crossdns(dir, "xot", &yaml).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_behind_tls_is_followed_over_xot_with_a_client_certificate() {
    let Some(p) = require(&["knotd"]) else { return };
    init_tls();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = KnotPrimaryOptions {
        key: Some(TsigKey::sha256("sites", SECRET)),
        notify: None,
    };
    let knot = KnotPrimary::start(&p["knotd"], dir.path(), ZONE, &zone_file(), opts).await;
    let ca = TestCa::new(dir.path(), "sites");
    let (tls, dot) = terminator(&ca, knot.addr).await;
    let running = secondary(dir.path(), &format!("tls://{tls}#dns.lab"), true, &ca).await;
    let name = format!("web.shop.svc.{ZONE}.");
    let m = wait_rcode(
        running.dns[0],
        &name,
        RecordType::A,
        hickory_proto::op::ResponseCode::NoError,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        summarize(&m),
        summarize(&query(knot.addr, &name, RecordType::A, Transport::Udp).await)
    );
    assert!(knot.log().contains("AXFR, outgoing"), "{}", knot.log());
    // The SOA check and the transfer each went over TLS with ALPN "dot".
    assert!(
        dot.load(Ordering::Relaxed) >= 2,
        "{} TLS connections with ALPN dot",
        dot.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_or_no_client_certificate_fails_with_cause_tls() {
    let Some(p) = require(&["knotd"]) else { return };
    init_tls();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = KnotPrimaryOptions {
        key: Some(TsigKey::sha256("sites", SECRET)),
        notify: None,
    };
    let knot = KnotPrimary::start(&p["knotd"], dir.path(), ZONE, &zone_file(), opts).await;
    let ca = TestCa::new(dir.path(), "sites");
    let (tls, _) = terminator(&ca, knot.addr).await;
    for (server, client_cert) in [
        (format!("tls://{tls}#other.lab"), true),
        (format!("tls://{tls}#dns.lab"), false),
    ] {
        let d = tempfile::tempdir_in(dir.path()).expect("tempdir");
        let running = secondary(d.path(), &server, client_cert, &ca).await;
        let cause = [("cluster", "lab"), ("cause", "tls")];
        wait_metric(
            &running,
            "crossdns_cluster_failing",
            &cause,
            |v| v == 1.0,
            Duration::from_secs(5),
        )
        .await;
        let name = format!("web.shop.svc.{ZONE}.");
        expect_servfail(
            running.dns[0],
            &name,
            RecordType::A,
            Duration::from_secs(2),
            &server,
        )
        .await;
    }
}
