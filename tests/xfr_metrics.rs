//! The zone-distribution metrics of the real binary (`crossdns_transfer_*`):
//! per zone its serial, transfers by type and result (counted exactly),
//! the time of the last complete one, bytes and messages, NOTIFYs sent and
//! acknowledged per target; both `/metrics` formats pass `promtool check
//! metrics` and the Python `prometheus_client` parsers with them in.

mod common;
mod metrics_support;

use std::net::SocketAddr;
use std::time::Duration;

use common::Crossdns;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RecordType, TSigner};
use metrics_support::{ACCEPT_PROMETHEUS, ACCEPT_TEXT, PyParser};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ZONE: &str = "cluster.region1";
const SECRET: &[u8] = b"crossdns-test-secret-0123456789!";

/// One AXFR over TCP (signed when `signed`); returns the RCODE of the
/// first message after reading the whole transfer.
async fn axfr(dns: SocketAddr, signed: bool) -> u8 {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii(format!("{ZONE}.")).expect("name"),
        RecordType::AXFR,
    ));
    if signed {
        let s = TSigner::new(
            SECRET.to_vec(),
            TsigAlgorithm::HmacSha256,
            Name::from_ascii("sites").expect("key"),
            300,
        )
        .expect("signer");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        m.finalize(&s, now).expect("sign");
    }
    let bytes = m.to_vec().expect("encode");
    let mut s = tokio::net::TcpStream::connect(dns).await.expect("connect");
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).await.expect("write");
    let mut soas = 0;
    let mut first = None;
    loop {
        let len = s.read_u16().await.expect("length");
        let mut buf = vec![0u8; usize::from(len)];
        s.read_exact(&mut buf).await.expect("message");
        let m = Message::from_vec(&buf).expect("decode");
        let rcode = u16::from(m.metadata.response_code) as u8;
        first.get_or_insert(rcode);
        soas += m
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
        if rcode != 0 || soas >= 2 {
            return first.unwrap_or(rcode);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_metrics_count_exactly_and_pass_the_official_parsers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("sites.key");
    std::fs::write(&key, base64_secret()).expect("key");
    // A NOTIFY target nobody answers: sent counts, acknowledged stays 0.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let target = silent.local_addr().expect("addr");
    let demo = common::repo_root().join("examples/demo/region1");
    let server = Crossdns::start(
        dir.path(),
        &format!(
            "allow: [\"127.0.0.0/8\"]\n\
             tsig_keys: [{{name: sites, algorithm: hmac-sha256, secret_file: {}}}]\n\
             transfer: {{allow: [\"127.0.0.0/8\"], key: sites, notify: [\"{target}\"], catalog: catalog.crossdns}}\n\
             clusters:\n  - {{name: region1, zone: {ZONE}, manifests: {}}}\n",
            key.display(),
            demo.display()
        ),
    )
    .await;
    server.wait_ready(Duration::from_secs(20)).await;
    assert_eq!(axfr(server.dns, true).await, 0);
    assert_eq!(axfr(server.dns, true).await, 0);
    assert_eq!(axfr(server.dns, false).await, 9, "unsigned: NOTAUTH");
    // The first NOTIFY and its first retry (after 1 s) have gone out.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let scrape = metrics_support::scrape(&server, Some(ACCEPT_PROMETHEUS)).await;
    let s = metrics_support::samples(&scrape.text);
    let v = |name: &str, labels: &[(&str, &str)]| metrics_support::value(&s, name, labels);
    let axfr = |result: &str| {
        v(
            "crossdns_transfer_requests_total",
            &[("zone", ZONE), ("type", "axfr"), ("result", result)],
        )
    };
    assert_eq!(
        (axfr("ok"), axfr("notauth"), axfr("refused")),
        (2.0, 1.0, 0.0)
    );
    assert_eq!(
        v(
            "crossdns_transfer_requests_total",
            &[("zone", ZONE), ("type", "ixfr"), ("result", "ok")]
        ),
        0.0
    );
    let serial = v("crossdns_transfer_zone_serial", &[("zone", ZONE)]);
    assert!(serial > 0.0);
    assert!(
        v(
            "crossdns_transfer_zone_serial",
            &[("zone", "catalog.crossdns")]
        ) > 0.0
    );
    let last = v(
        "crossdns_transfer_last_served_timestamp_seconds",
        &[("zone", ZONE)],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (now - last).abs() < 30.0,
        "last transfer at {last}, now {now}"
    );
    assert!(v("crossdns_transfer_messages_total", &[("zone", ZONE)]) >= 3.0);
    assert!(v("crossdns_transfer_bytes_total", &[("zone", ZONE)]) > 2000.0);
    let t = target.to_string();
    let sent = v(
        "crossdns_transfer_notify_sent_total",
        &[("zone", ZONE), ("target", &t)],
    );
    assert!(sent >= 2.0, "NOTIFY was not retried: {sent}");
    assert_eq!(
        v(
            "crossdns_transfer_notify_acked_total",
            &[("zone", ZONE), ("target", &t)]
        ),
        0.0
    );
    let mut buf = [0u8; 512];
    silent
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let (n, _) = silent.recv_from(&mut buf).expect("a NOTIFY arrived");
    let notify = Message::from_vec(&buf[..n]).expect("a NOTIFY parses");
    assert_eq!(notify.metadata.op_code, OpCode::Notify);
    assert!(
        notify.signature().is_some(),
        "NOTIFY unsigned although transfer.key is set"
    );

    let text = metrics_support::scrape(&server, Some(ACCEPT_TEXT))
        .await
        .text;
    if let Some(problems) = metrics_support::promtool_problems(&text) {
        assert_eq!(problems, "", "0.0.4 text:\n{text}");
    }
    for (parser, input) in [
        (PyParser::OpenMetrics, &scrape.text),
        (PyParser::Text, &text),
    ] {
        if let Some(parsed) = metrics_support::python_parse(input, parser) {
            let parsed =
                parsed.unwrap_or_else(|e| panic!("{parser:?} parser refused the scrape: {e}"));
            assert!(
                parsed
                    .iter()
                    .any(|(_, s)| s.name == "crossdns_transfer_requests_total"),
                "{parser:?}: no transfer samples"
            );
        }
    }
}

fn base64_secret() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(SECRET)
}
