//! The fuzz targets' checks under plain `cargo test`: every committed seed
//! and every saved crash input (`fuzz/seeds/TARGET/`, `fuzz/regressions/
//! TARGET/`) goes through the same `check` libFuzzer runs (fuzz/src,
//! included by path), so what the fuzzer once found stays fixed without
//! nightly or cargo-fuzz. Crash inputs that were fixed also have a test of
//! their own below, named for the bug.

#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::path::Path;

use crossdns::answer::Transport;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// Runs `check` on every file under fuzz/{seeds,regressions}/`target`;
/// names the file that fails.
fn every_input(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seen = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).expect("read a fuzz input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            seen += 1;
        }
    }
    assert!(seen > 0, "no seeds for fuzz target {target}");
}

/// One saved input of `target`, by file name.
fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_query_seed_and_regression_passes_the_round_trip_check() {
    every_input("query", fuzz::query::check);
}

#[test]
fn every_upstream_reply_seed_and_regression_passes_the_forwarder_check() {
    every_input("upstream_reply", fuzz::upstream_reply::check);
}

#[test]
fn every_apiserver_json_seed_and_regression_converts_or_errs_cleanly() {
    every_input("apiserver_json", fuzz::apiserver_json::check);
}

#[test]
fn every_manifests_yaml_seed_and_regression_parses_or_errs_cleanly() {
    every_input("manifests_yaml", fuzz::manifests_yaml::check);
}

#[test]
fn every_config_yaml_seed_and_regression_validates_or_names_the_file() {
    every_input("config_yaml", fuzz::config_yaml::check);
}

#[test]
fn every_transfer_response_seed_and_regression_reads_or_errs_and_round_trips() {
    every_input("transfer_response", fuzz::transfer_response::check);
}

/// An upstream's extended RCODE (here 3330: OPT high bits 0xd0) reached the
/// client as a different RCODE than the forwarder reported; it is SERVFAIL now.
#[test]
fn an_extended_rcode_from_an_upstream_reaches_the_client_as_servfail() {
    fuzz::upstream_reply::check(&regression("upstream_reply", "extended-rcode-3330"));
}

/// `pod.<zone>` (one label under the zone) underflowed `k - 2` in the name
/// grammar; it is an empty non-terminal: NODATA with the SOA, in every
/// `pods` mode (design.md §1).
#[test]
fn pod_label_alone_under_a_cluster_zone_is_nodata_not_an_underflow() {
    fuzz::query::check(&regression("query", "pod-label-alone-under-zone"));
    for zone in ["cluster.region1", "cluster.region2"] {
        let m = answer(&format!("pod.{zone}."), RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{zone}");
        assert!(m.answers.is_empty(), "{zone}");
        assert_eq!(m.authorities.len(), 1, "{zone}: the SOA");
    }
}

/// The engine's answer to `name`/`rtype` over UDP, decoded.
fn answer(name: &str, rtype: RecordType) -> Message {
    let mut q = Message::new(7, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    let packet = q.to_vec().expect("encode");
    let mut out = Vec::new();
    fuzz::world::get()
        .engine
        .respond(&packet, fuzz::world::CLIENT, Transport::Udp, &mut out)
        .expect("a reply");
    Message::from_vec(&out).expect("decode")
}

/// An upstream TTL with the top bit set (3222011906) was cached for a
/// century and passed on; RFC 2181 §8 reads it as zero.
#[test]
fn an_upstream_ttl_above_2_pow_31_is_read_as_zero() {
    fuzz::upstream_reply::check(&regression("upstream_reply", "ttl-with-top-bit-set"));
}

/// An UPDATE-opcode "reply" with QR unset, whose empty-RDATA records hickory
/// accepts only in UPDATE messages, was passed on inside a QUERY response
/// that no client can decode; it is SERVFAIL now.
#[test]
fn an_upstream_reply_that_is_not_a_query_response_becomes_servfail() {
    fuzz::upstream_reply::check(&regression("upstream_reply", "update-opcode-empty-rdata"));
}
