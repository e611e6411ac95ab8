//! NOTIFY into a `primary:` zone (RFC 1996, design.md §7): accepted —
//! NOERROR, AA, the question echoed, the answer signed — only from a
//! configured primary's address and signed with the zone's key when it has
//! one; a stranger, an unsigned NOTIFY where a key is set, and a zone this
//! server does not follow get REFUSED; a signature that does not verify gets
//! NOTAUTH with its TSIG error (RFC 8945 §5.2). An accepted NOTIFY starts a
//! check at once.

mod interop_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crossdns::app::Running;
use crossdns::config::{TsigAlgorithm, TsigKey as Key};
use crossdns::tsig;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{Name, RecordType};
use interop_support::knot_primary::TsigKey;
use interop_support::{DNS_TIMEOUT, free_dns_port, must_metric, start_crossdns, wait_metric};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

const SECRET: &str = "c2l0ZXMtc2VjcmV0LWtleS0xMjM0NTY3ODkwYWJjZA==";

fn key(name: &str, secret: &[u8]) -> Key {
    Key {
        name: name.into(),
        algorithm: TsigAlgorithm::HmacSha256,
        secret: secret.to_vec(),
        secret_file: "-".into(),
    }
}

fn sites() -> Key {
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(SECRET)
        .expect("base64");
    key("sites", &secret)
}

/// crossdns following `cluster.lab` (signed, from 127.0.0.1) and
/// `cluster.open` (no key), and watching `cluster.region1` itself. No
/// primary answers: the NOTIFY handling is what is tested.
async fn start(dir: &std::path::Path) -> Running {
    TsigKey::sha256("sites", SECRET).write_secret(dir);
    let nobody = |p: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/region1");
    let yaml = format!(
        "dns: {{listen: [\"127.0.0.1:0\"]}}\n\
         tsig_keys: [{{name: sites, algorithm: hmac-sha256, secret_file: sites.key}}]\n\
         clusters:\n\
         \x20 - {{name: lab, zone: cluster.lab, primary: {{servers: [\"{}\"], key: sites, poll: 1h}}}}\n\
         \x20 - {{name: open, zone: cluster.open, primary: {{servers: [\"{}\"], poll: 1h}}}}\n\
         \x20 - {{name: region1, zone: cluster.region1, manifests: {demo}}}\n",
        nobody(free_dns_port()),
        nobody(free_dns_port()),
    );
    start_crossdns(dir, "notified", &yaml).await
}

/// A NOTIFY for `zone`, signed with `key` at `time` (seconds) when given.
fn notify(zone: &str, signed: Option<(&Key, u64)>) -> (Message, Vec<u8>, Option<Vec<u8>>) {
    let mut m = Message::new(fastrand::u16(..), MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    m.add_query(Query::query(
        Name::from_ascii(zone).expect("zone"),
        RecordType::SOA,
    ));
    let mac = signed.map(|(k, time)| {
        let signer = tsig::signer(k).expect("signer");
        m.finalize(&signer, time).expect("sign");
        m.signature().expect("signed").data.mac.clone()
    });
    let bytes = m.to_vec().expect("encode");
    (m, bytes, mac)
}

async fn over_udp(from: Ipv4Addr, to: SocketAddr, bytes: &[u8]) -> (Vec<u8>, Message) {
    let sock = UdpSocket::bind((from, 0)).await.expect("bind");
    sock.send_to(bytes, to).await.expect("send");
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(DNS_TIMEOUT, sock.recv_from(&mut buf))
        .await
        .expect("an answer")
        .expect("recv");
    buf.truncate(n);
    let m = Message::from_vec(&buf).expect("parse");
    (buf, m)
}

async fn over_tcp(to: SocketAddr, bytes: &[u8]) -> (Vec<u8>, Message) {
    let mut s = TcpStream::connect(to).await.expect("connect");
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).await.expect("write");
    let len = s.read_u16().await.expect("length");
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await.expect("body");
    let m = Message::from_vec(&buf).expect("parse");
    (buf, m)
}

fn tsig_error(m: &Message) -> Option<TsigError> {
    m.signature().and_then(|s| s.data.error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_is_accepted_only_from_a_configured_primary_signed_with_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(dir.path()).await;
    let dns = running.dns[0];
    let local = Ipv4Addr::LOCALHOST;
    let now = tsig::now();
    let notified = [("cluster", "lab"), ("trigger", "notify")];
    assert_eq!(
        must_metric(&running, "crossdns_primary_checks_total", &notified),
        0.0
    );

    // The primary's address, signed with the zone's key: accepted, and
    // the answer is signed over the NOTIFY's MAC.
    let k = sites();
    for tcp in [false, true] {
        let (req, bytes, mac) = notify("Cluster.Lab.", Some((&k, now)));
        let (raw, resp) = if tcp {
            over_tcp(dns, &bytes).await
        } else {
            over_udp(local, dns, &bytes).await
        };
        assert_eq!(
            resp.metadata.response_code,
            ResponseCode::NoError,
            "tcp {tcp}"
        );
        assert!(resp.metadata.authoritative && resp.metadata.message_type == MessageType::Response);
        assert_eq!(resp.metadata.op_code, OpCode::Notify);
        assert_eq!(resp.metadata.id, req.metadata.id);
        assert_eq!(
            resp.queries[0].name().to_ascii(),
            "Cluster.Lab.",
            "question echoed as asked"
        );
        let mut v =
            tsig::ResponseVerifier::new(tsig::signer(&k).expect("signer"), mac.expect("mac"));
        v.verify(&raw, &resp)
            .expect("the answer is signed with the key");
    }
    // ... and it starts a check at once (the poll is an hour).
    wait_metric(
        &running,
        "crossdns_primary_checks_total",
        &notified,
        |v| v >= 1.0,
        Duration::from_secs(2),
    )
    .await;

    // A stranger (another loopback address), signed or not: REFUSED.
    for signed in [None, Some((&k, now))] {
        let (_, bytes, _) = notify("cluster.lab.", signed);
        let (_, resp) = over_udp(Ipv4Addr::new(127, 0, 0, 2), dns, &bytes).await;
        assert_eq!(resp.metadata.response_code, ResponseCode::Refused);
    }
    // Unsigned, where the zone has a key: REFUSED.
    let (_, bytes, _) = notify("cluster.lab.", None);
    assert_eq!(
        over_udp(local, dns, &bytes).await.1.metadata.response_code,
        ResponseCode::Refused
    );
    // Signatures that do not verify: NOTAUTH with the TSIG error.
    let wrong_secret = key("sites", b"not-the-secret-of-the-zone-1234");
    let another_key = key("other", b"0123456789abcdef0123456789abcdef");
    for (signed, error) in [
        ((&wrong_secret, now), TsigError::BadSig),
        ((&another_key, now), TsigError::BadKey),
        ((&k, now - 3600), TsigError::BadTime),
    ] {
        let (_, bytes, _) = notify("cluster.lab.", Some(signed));
        let (_, resp) = over_udp(local, dns, &bytes).await;
        assert_eq!(
            resp.metadata.response_code,
            ResponseCode::NotAuth,
            "{error:?}"
        );
        assert_eq!(tsig_error(&resp), Some(error));
    }
    // Zones this server does not follow: REFUSED.
    for zone in [
        "cluster.region1.",
        "example.com.",
        "web.shop.svc.cluster.lab.",
    ] {
        let (_, bytes, _) = notify(zone, None);
        assert_eq!(
            over_udp(local, dns, &bytes).await.1.metadata.response_code,
            ResponseCode::Refused,
            "{zone}"
        );
    }
    // A zone without a key takes unsigned NOTIFYs from its primary, and
    // cannot check a signed one (BADKEY).
    let (_, bytes, _) = notify("cluster.open.", None);
    let (_, resp) = over_udp(local, dns, &bytes).await;
    assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
    let (_, bytes, _) = notify("cluster.open.", Some((&k, now)));
    let (_, resp) = over_udp(local, dns, &bytes).await;
    assert_eq!(
        (resp.metadata.response_code, tsig_error(&resp)),
        (ResponseCode::NotAuth, Some(TsigError::BadKey))
    );
    let open = [("cluster", "open"), ("trigger", "notify")];
    wait_metric(
        &running,
        "crossdns_primary_checks_total",
        &open,
        |v| v == 1.0,
        Duration::from_secs(2),
    )
    .await;
    // Only the accepted NOTIFYs started checks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(must_metric(&running, "crossdns_primary_checks_total", &notified) <= 2.0);
}
