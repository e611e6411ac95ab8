//! NOTIFY out under churn (issue 9 §1, RFC 1996): a zone that publishes
//! every 10 ms tells an acknowledging target at most once per 100 ms
//! (`MIN_SPACING`), and the last NOTIFY it sends carries the zone's final
//! serial, so a secondary never misses the latest change however fast the
//! zone moves.

mod interop_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::RData;
use interop_support::{free_dns_port, start_crossdns};

/// Acknowledges every NOTIFY it gets; returns when and with which SOA
/// serial each came.
fn acknowledging_target(socket: tokio::net::UdpSocket) -> Arc<Mutex<Vec<(Instant, u32)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if m.metadata.op_code != OpCode::Notify {
                continue;
            }
            let serial = m.answers.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            });
            log.lock()
                .expect("log")
                .push((Instant::now(), serial.expect("a NOTIFY with the SOA")));
            let mut ack = Message::new(m.metadata.id, MessageType::Response, OpCode::Notify);
            ack.metadata.authoritative = true;
            for q in &m.queries {
                ack.add_query(q.clone());
            }
            let _ = socket.send_to(&ack.to_vec().expect("encode"), peer).await;
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_churn_notifies_are_spaced_and_the_last_carries_the_final_serial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target_addr = target.local_addr().expect("addr");
    let seen = acknowledging_target(target);
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/region1");
    let running = start_crossdns(
        dir.path(),
        "primary",
        &format!(
            "dns: {{listen: [\"127.0.0.1:{}\"]}}\n\
             transfer: {{allow: [127.0.0.0/8], notify: [\"{target_addr}\"]}}\n\
             clusters: [{{name: region1, zone: cluster.region1, manifests: {}}}]\n",
            free_dns_port(),
            demo.display()
        ),
    )
    .await;
    let handle = Arc::clone(&running.clusters[0]);
    let synced = Instant::now();
    while handle.snapshot().is_none() {
        assert!(synced.elapsed() < Duration::from_secs(10), "never synced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first NOTIFY (the zone synced) is acknowledged before the churn.
    let first = Instant::now();
    while seen.lock().expect("log").is_empty() {
        assert!(
            first.elapsed() < Duration::from_secs(5),
            "no NOTIFY after sync"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = seen.lock().expect("log").len();

    // 100 publishes, one every 10 ms: each a new serial.
    let churn = Instant::now();
    for _ in 0..100 {
        let snap = handle.snapshot().expect("published");
        handle.publish(Arc::new(crossdns::index::Snapshot::clone(&snap)));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let churned = churn.elapsed();
    let last = handle.journal.serial();
    let settle = Instant::now();
    loop {
        let notified = seen.lock().expect("log").last().map(|(_, s)| *s);
        if notified == Some(last) {
            break;
        }
        assert!(
            settle.elapsed() < Duration::from_secs(2),
            "the final serial {last} was never notified: {:?}",
            seen.lock()
                .expect("log")
                .iter()
                .map(|(_, s)| s)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = seen.lock().expect("log").clone();
    let during = &log[before..];
    // At most one per 100 ms across the churn and the settling after it.
    let span = churned + settle.elapsed();
    let allowed = (span.as_millis() / 100) as usize + 1;
    assert!(
        during.len() <= allowed,
        "{} NOTIFYs in {span:?}, more than one per 100 ms",
        during.len()
    );
    assert!(
        during.len() >= 2,
        "100 changes folded into {} NOTIFY",
        during.len()
    );
    // (Arrival gaps are not asserted: a receiver scheduled late reads two
    // spaced sends back to back; the count above is what spacing bounds.)
    for pair in during.windows(2) {
        assert!(
            crossdns::index::serial_gt(pair[1].1, pair[0].1),
            "serials went back: {} after {}",
            pair[1].1,
            pair[0].1
        );
    }
    eprintln!(
        "{} NOTIFYs for 100 changes in {churned:?}; the final serial {:?} after the last change",
        during.len(),
        log.last()
            .map(|(t, _)| t.saturating_duration_since(churn).saturating_sub(churned))
    );
}
