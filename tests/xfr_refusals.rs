//! Who gets a zone transfer, and what the others get (design.md §7,
//! Refusals; RFC 8945 §5.2, RFC 5936 §4.2): no `transfer:` section →
//! REFUSED; over UDP → REFUSED; outside `transfer.allow` → REFUSED, signed
//! or not; unsigned where a key is required → NOTAUTH; an unknown key →
//! NOTAUTH + BADKEY and a wrong secret → NOTAUTH + BADSIG, both unsigned;
//! a time outside the fudge → NOTAUTH + BADTIME, signed; a zone not yet
//! synced → SERVFAIL, signed. Sent with hickory-proto and with dig/kdig.

mod xfr_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::{Name, TSigner};
use xfr_support::*;

const ZONE: &str = "cluster.region2";

/// A crossdns serving the demo's region2 from manifests; `transfer` is the
/// YAML of its `transfer:` section (`None`: none), `more` more clusters.
async fn crossdns(dir: &Path, transfer: Option<&str>, more: &str) -> crossdns::app::Running {
    let key = dir.join("sites.key");
    std::fs::write(&key, secret_b64()).expect("key");
    let transfer = transfer.map_or(String::new(), |t| format!("transfer: {t}\n"));
    let yaml = format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\nallow: [\"127.0.0.0/8\"]\n\
         tsig_keys: [{{name: {KEY}, algorithm: hmac-sha256, secret_file: {}}}]\n{transfer}\
         clusters:\n  - {{name: region2, zone: {ZONE}, manifests: {}}}\n{more}",
        key.display(),
        repo().join("examples/demo/region2").display()
    );
    let running = start_crossdns(dir, "refusals", &yaml).await;
    wait_rcode(
        running.dns[0],
        ZONE,
        hickory_proto::rr::RecordType::SOA,
        ResponseCode::NoError,
        Duration::from_secs(20),
    )
    .await;
    running
}

fn other_signer(name: &str, secret: &[u8]) -> TSigner {
    TSigner::new(
        secret.to_vec(),
        TsigAlgorithm::HmacSha256,
        Name::from_ascii(name).expect("name"),
        300,
    )
    .expect("signer")
}

/// The TSIG error of a response, and whether it carries a MAC.
fn tsig_error(t: &Transfer) -> Option<(Option<TsigError>, bool)> {
    t.messages[0]
        .signature()
        .map(|s| (s.data.error, !s.data.mac.is_empty()))
}

const SIGNED: &str = "{allow: [\"127.0.0.0/8\"], key: sites}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_transfer_section_every_transfer_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = crossdns(dir.path(), None, "").await;
    let dns = running.dns[0];
    for ixfr in [None, Some(1)] {
        let t = transfer(dns, &request(ZONE, ixfr, None, 0), None).await;
        assert_eq!(t.rcode(), ResponseCode::Refused, "{ixfr:?}");
        let t = transfer(dns, &request(ZONE, ixfr, Some(&signer()), now()), None).await;
        assert_eq!(t.rcode(), ResponseCode::Refused, "signed, {ixfr:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_udp_axfr_and_ixfr_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = crossdns(dir.path(), Some(SIGNED), "").await;
    for ixfr in [None, Some(1)] {
        let req = request(ZONE, ixfr, Some(&signer()), now());
        let m = exchange_message(running.dns[0], &req, Transport::Udp, DNS_TIMEOUT)
            .await
            .expect("an answer over UDP");
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{ixfr:?}");
        assert!(m.answers.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_failures_get_notauth_with_badkey_badsig_or_badtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = crossdns(dir.path(), Some(SIGNED), "").await;
    let dns = running.dns[0];

    // Signed with the key: the whole zone, every message verified.
    let ok = transfer(dns, &request(ZONE, None, None, 0), Some(&signer())).await;
    assert_eq!(ok.rcode(), ResponseCode::NoError);
    assert!(ok.records().len() > 20);

    // Unsigned where a key is required (RFC 8945 §5.2: NOTAUTH), no TSIG.
    let t = transfer(dns, &request(ZONE, None, None, 0), None).await;
    assert_eq!((t.rcode(), tsig_error(&t)), (ResponseCode::NotAuth, None));

    // An unknown key, a wrong secret: unsigned errors (§5.2.1, §5.2.2).
    let stranger = other_signer("stranger", &SECRET);
    let t = transfer(dns, &request(ZONE, None, Some(&stranger), now()), None).await;
    assert_eq!(
        (t.rcode(), tsig_error(&t)),
        (
            ResponseCode::NotAuth,
            Some((Some(TsigError::BadKey), false))
        )
    );
    let forger = other_signer(KEY, b"not the secret, but as long as it");
    let t = transfer(dns, &request(ZONE, Some(1), Some(&forger), now()), None).await;
    assert_eq!(
        (t.rcode(), tsig_error(&t)),
        (
            ResponseCode::NotAuth,
            Some((Some(TsigError::BadSig), false))
        )
    );

    // Signed an hour ago: BADTIME, signed with the key (§5.2.3), carrying
    // the request's time and the server's in Other Data.
    let then = now() - 3600;
    let mut req = request(ZONE, None, None, 0);
    let verifier = req
        .finalize(&signer(), then)
        .expect("sign")
        .expect("verifier");
    let mut s = tokio::net::TcpStream::connect(dns).await.expect("connect");
    let t = transfer_on(&mut s, &req, Some(verifier)).await;
    let tsig = t.messages[0].signature().expect("a TSIG").data.clone();
    assert_eq!(
        (t.rcode(), tsig.error),
        (ResponseCode::NotAuth, Some(TsigError::BadTime))
    );
    assert_eq!(tsig.time, then);
    let mut server_time = [0u8; 8];
    server_time[2..].copy_from_slice(&tsig.other);
    assert!(
        u64::from_be_bytes(server_time).abs_diff(now()) < 60,
        "{tsig:?}"
    );

    // A refusal is counted before it is written; a streamed transfer once
    // its last message is out, so that count may trail the client a little
    // (its producer thread is the last to finish).
    let count = |result: &str| {
        must_metric(
            &running,
            "crossdns_transfer_requests_total",
            &[("zone", ZONE), ("result", result)],
        )
    };
    assert_eq!(count("notauth"), 4.0);
    wait_metric(
        &running,
        "crossdns_transfer_requests_total",
        &[("zone", ZONE), ("result", "ok")],
        |v| v == 1.0,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_from_outside_transfer_allow_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = crossdns(
        dir.path(),
        Some("{allow: [\"10.0.0.0/8\"], key: sites}"),
        "",
    )
    .await;
    for ixfr in [None, Some(1)] {
        let t = transfer(
            running.dns[0],
            &request(ZONE, ixfr, Some(&signer()), now()),
            None,
        )
        .await;
        assert_eq!(t.rcode(), ResponseCode::Refused, "{ixfr:?}");
    }
    assert_eq!(
        must_metric(
            &running,
            "crossdns_transfer_requests_total",
            &[("zone", ZONE), ("result", "refused")]
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_that_has_not_synced_answers_servfail_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An apiserver nobody listens on: region9 never syncs.
    let kc = dir.path().join("dead.kubeconfig");
    let api = fake_apiserver::FakeApiServer::start()
        .await
        .expect("apiserver");
    api.write_kubeconfig(&kc, "dead").expect("kubeconfig");
    drop(api);
    let more = format!(
        "  - {{name: region9, zone: cluster.region9, kubeconfig: {}, context: dead}}\n",
        kc.display()
    );
    let running = crossdns(dir.path(), Some(SIGNED), &more).await;
    let t = transfer(
        running.dns[0],
        &request("cluster.region9", None, None, 0),
        Some(&signer()),
    )
    .await;
    assert_eq!(t.rcode(), ResponseCode::ServFail);
    assert!(t.records().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_and_kdig_read_the_refusals_and_the_signed_soa() {
    let Some(progs) = require(&["dig", "kdig"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let running = crossdns(dir.path(), Some(SIGNED), "").await;
    let dns = running.dns[0];
    let run = |prog: &str, args: &[String]| {
        let (status, out, err) = run_bounded(
            Command::new(&progs[prog]).args(args),
            Duration::from_secs(20),
        );
        (status, format!("{out}{err}"))
    };
    let server = |p: &str| {
        vec![
            format!("@{}", dns.ip()),
            p.to_owned(),
            dns.port().to_string(),
        ]
    };
    let good = format!("hmac-sha256:{KEY}:{}", secret_b64());
    let forged = format!("hmac-sha256:{KEY}:{}", secret_b64().replace('Y', "Z"));

    // kdig: signed AXFR works; unsigned is NOTAUTH; a wrong secret BADSIG.
    let mut args = server("-p");
    args.extend([
        "-y".to_owned(),
        good.clone(),
        "AXFR".to_owned(),
        ZONE.to_owned(),
    ]);
    let (_, out) = run("kdig", &args);
    assert!(
        out.contains("IN\tSOA") && !out.contains(";; ERROR"),
        "{out}"
    );
    let mut args = server("-p");
    args.extend(["AXFR".to_owned(), ZONE.to_owned()]);
    let (_, out) = run("kdig", &args);
    assert!(out.contains("NOTAUTH"), "{out}");
    let mut args = server("-p");
    args.extend([
        "-y".to_owned(),
        forged.clone(),
        "AXFR".to_owned(),
        ZONE.to_owned(),
    ]);
    let (_, out) = run("kdig", &args);
    assert!(out.contains("BADSIG"), "{out}");

    // dig: an unknown key gets BADKEY; a signed SOA query a signed answer.
    let mut args = server("-p");
    args.extend([
        "-y".to_owned(),
        format!("hmac-sha256:stranger:{}", secret_b64()),
        ZONE.to_owned(),
        "AXFR".to_owned(),
    ]);
    let (_, out) = run("dig", &args);
    assert!(out.contains("BADKEY"), "{out}");
    let mut args = server("-p");
    args.extend(["-y".to_owned(), good, ZONE.to_owned(), "SOA".to_owned()]);
    let (_, out) = run("dig", &args);
    assert!(
        out.contains("status: NOERROR") && out.contains("TSIG") && !out.contains("failure"),
        "{out}"
    );
    let mut args = server("-p");
    args.extend(["-y".to_owned(), forged, ZONE.to_owned(), "SOA".to_owned()]);
    let (_, out) = run("dig", &args);
    assert!(out.contains("BADSIG") || out.contains("NOTAUTH"), "{out}");
}
