//! Helpers shared by the fake-apiserver integration tests: kube clients, raw HTTPS, fixtures.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use fake_apiserver::FakeApiServer;
use futures::{Stream, StreamExt as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const CONTEXT: &str = "fake";

/// A kube client built from the server's generated kubeconfig, exactly as crossdns would.
pub async fn client(server: &FakeApiServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig(CONTEXT))
        .expect("kubeconfig parses");
    let opts = kube::config::KubeConfigOptions {
        context: Some(CONTEXT.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client builds")
}

pub fn service(ns: &str, name: &str, cluster_ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    })
}

/// Applies the Services `(namespace, name, cluster IP)` to `server`.
pub fn apply_services(server: &FakeApiServer, services: &[(&str, &str, &str)]) {
    for (ns, name, cluster_ip) in services {
        server
            .apply(service(ns, name, cluster_ip))
            .unwrap_or_else(|e| panic!("apply Service {ns}/{name}: {e:#}"));
    }
}

/// A started server holding the Services `(namespace, name, cluster IP)`.
pub async fn server_with(services: &[(&str, &str, &str)]) -> FakeApiServer {
    let server = FakeApiServer::start().await.expect("server starts");
    apply_services(&server, services);
    server
}

/// A raw HTTP response (body de-chunked when chunked).
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// GET `path` over a fresh TLS connection with `Connection: close`, reading until the server ends.
pub async fn raw_get(server: &FakeApiServer, path: &str, token: Option<&str>) -> Raw {
    let ca = CertificateDer::from_pem_slice(server.ca_pem().as_bytes()).expect("CA PEM parses");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("CA added");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("tcp connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake with generated CA");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Accept: application/json\r\nConnection: close\r\n\r\n",
        server.addr()
    );
    tls.write_all(req.as_bytes())
        .await
        .expect("request written");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf))
        .await
        .expect("server ends the response within 10s")
        .ok();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("response has a header block");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Raw {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Next item of `stream` satisfying `pred`, failing the test after `secs` seconds.
pub async fn next_matching<S, T>(
    stream: &mut S,
    secs: u64,
    what: &str,
    mut pred: impl FnMut(&T) -> bool,
) -> T
where
    S: Stream<Item = T> + Unpin,
    T: std::fmt::Debug,
{
    let fut = async {
        while let Some(item) = stream.next().await {
            if pred(&item) {
                return Some(item);
            }
        }
        None
    };
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("stream ended before {what}"),
        Err(_) => panic!("timed out after {secs}s waiting for {what}"),
    }
}

/// Poll `cond` every 50ms until true, failing after `secs` seconds.
pub async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
