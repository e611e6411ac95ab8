//! Config reload: the real binary picks up an edited config file (and
//! SIGHUP), serving the new zones once they have synced; unchanged clusters
//! keep their watch, changed ones are watched anew; a broken config is
//! refused with one clear log line and the running config keeps answering.

mod common;

use std::time::Duration;

use common::{Crossdns, query_udp, rcode, repo_root, wait_for};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn cluster(name: &str) -> String {
    format!(
        "  - {{name: {name}, zone: cluster.{name}, manifests: {}}}\n",
        repo_root().join("examples/demo").join(name).display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_config_is_reloaded_and_a_broken_one_keeps_the_running_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crossdns = Crossdns::start(
        dir.path(),
        &format!("allow: [127.0.0.0/8]\nclusters:\n{}", cluster("region1")),
    )
    .await;
    crossdns.wait_ready(Duration::from_secs(20)).await;
    let r1 = "cockroachdb-0.cockroachdb.default.svc.cluster.region1.";
    let r2 = "cockroachdb-0.cockroachdb.default.svc.cluster.region2.";
    assert_eq!(
        rcode(&query_udp(crossdns.dns, r1, RecordType::A).await),
        ResponseCode::NoError
    );
    assert_eq!(
        rcode(&query_udp(crossdns.dns, r2, RecordType::A).await),
        ResponseCode::Refused
    );

    // Add a cluster: served once the file change is noticed and it synced.
    let original = std::fs::read_to_string(&crossdns.config_path).expect("read config");
    std::fs::write(
        &crossdns.config_path,
        format!("{original}{}", cluster("region2")),
    )
    .expect("write");
    wait_for(Duration::from_secs(15), async || {
        rcode(&query_udp(crossdns.dns, r2, RecordType::A).await) == ResponseCode::NoError
    })
    .await
    .expect("the added cluster was never served");
    // The unchanged cluster kept its watch: no second first sync.
    let log = crossdns.stderr();
    assert!(
        log.contains("cluster unchanged; keeping its watch cluster=region1"),
        "{log}"
    );
    let synced = |c: &str| {
        log.matches(&format!("cluster synced; answering its zone cluster={c} "))
            .count()
    };
    assert_eq!((synced("region1"), synced("region2")), (1, 1), "{log}");
    assert_eq!(
        rcode(&query_udp(crossdns.dns, r1, RecordType::A).await),
        ResponseCode::NoError
    );
    // The old admin server closes its keep-alive connections: a client may
    // need a fresh one, as a scraper would.
    wait_for(Duration::from_secs(3), async || {
        matches!(crossdns.get("/readyz").await, Some((200, _)))
    })
    .await
    .expect("the new admin listener answers");

    // A broken config: refused, logged, and the running one keeps answering.
    std::fs::write(&crossdns.config_path, format!("{original}bogus_key: 1\n")).expect("write");
    wait_for(Duration::from_secs(10), async || {
        crossdns.stderr().contains("config reload failed")
    })
    .await
    .expect("the broken config was never reported");
    assert!(
        crossdns.stderr().contains("unknown field `bogus_key`"),
        "{}",
        crossdns.stderr()
    );
    for name in [r1, r2] {
        assert_eq!(
            rcode(&query_udp(crossdns.dns, name, RecordType::A).await),
            ResponseCode::NoError,
            "{name}"
        );
    }

    // SIGHUP reloads the file as it is: back to region1 alone.
    std::fs::write(&crossdns.config_path, &original).expect("write");
    wait_for(Duration::from_secs(15), async || {
        rcode(&query_udp(crossdns.dns, r2, RecordType::A).await) == ResponseCode::Refused
    })
    .await
    .expect("region2 was never dropped");
    let reloads = crossdns.stderr().matches("config reloaded").count();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &crossdns.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    wait_for(Duration::from_secs(15), async || {
        crossdns.stderr().matches("config reloaded").count() > reloads
    })
    .await
    .expect("SIGHUP did not reload");
    assert_eq!(
        rcode(&query_udp(crossdns.dns, r1, RecordType::A).await),
        ResponseCode::NoError
    );

    // A changed cluster gets a new watch: region1 limited to one namespace
    // syncs (and logs) a second time.
    let changed = original.replace("manifests:", "namespaces: [default], manifests:");
    assert_ne!(changed, original);
    std::fs::write(&crossdns.config_path, changed).expect("write");
    wait_for(Duration::from_secs(15), async || {
        crossdns
            .stderr()
            .matches("cluster synced; answering its zone cluster=region1 ")
            .count()
            == 2
    })
    .await
    .expect("the changed cluster was not watched anew");
    assert_eq!(
        rcode(&query_udp(crossdns.dns, r1, RecordType::A).await),
        ResponseCode::NoError
    );
}

/// Sends `name` from `senders` concurrent clients until `stop`, each
/// waiting up to 2 s for every reply; returns (answered, unanswered, TTLs
/// seen).
async fn flood(
    addr: std::net::SocketAddr,
    name: &'static str,
    senders: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u64, u64, std::collections::BTreeSet<u32>) {
    let mut tasks = Vec::new();
    for i in 0..senders {
        let stop = std::sync::Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let (mut ok, mut lost, mut ttls) = (0u64, 0u64, std::collections::BTreeSet::new());
            let mut id = (i as u16) << 10;
            let mut buf = vec![0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                id = id.wrapping_add(1);
                let mut q = common::make_query(name, RecordType::A, None);
                q.metadata.id = id;
                sock.send_to(&q.to_vec().expect("encode"), addr)
                    .await
                    .expect("send");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                loop {
                    match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                        Ok(Ok(n)) => {
                            let m = hickory_proto::op::Message::from_vec(&buf[..n]).expect("reply");
                            if m.metadata.id != id {
                                continue; // a late reply to an earlier query
                            }
                            ok += 1;
                            ttls.extend(m.answers.iter().map(|a| a.ttl));
                            break;
                        }
                        _ => {
                            lost += 1;
                            break;
                        }
                    }
                }
            }
            (ok, lost, ttls)
        }));
    }
    let mut total = (0, 0, std::collections::BTreeSet::new());
    for t in tasks {
        let (ok, lost, ttls) = t.await.expect("sender");
        total.0 += ok;
        total.1 += lost;
        total.2.extend(ttls);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_lose_no_query_because_the_sockets_are_handed_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crossdns = Crossdns::start(
        dir.path(),
        &format!("allow: [127.0.0.0/8]\nclusters:\n{}", cluster("region1")),
    )
    .await;
    crossdns.wait_ready(Duration::from_secs(20)).await;
    let name = "cockroachdb-0.cockroachdb.default.svc.cluster.region1.";
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(flood(crossdns.dns, name, 16, std::sync::Arc::clone(&stop)));
    let original = std::fs::read_to_string(&crossdns.config_path).expect("read config");
    // Three reloads under load, each with another TTL, each waited for.
    for (i, ttl) in [7, 8, 9].into_iter().enumerate() {
        std::fs::write(
            &crossdns.config_path,
            original.replace("ttl: 5", &format!("ttl: {ttl}")),
        )
        .expect("write");
        wait_for(Duration::from_secs(15), async || {
            crossdns.stderr().matches("config reloaded").count() > i
        })
        .await
        .expect("reloaded");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, lost, ttls) = load.await.expect("load");
    assert!(ok > 500, "too few queries to tell: {ok}");
    assert_eq!(
        lost,
        0,
        "{lost} of {} queries unanswered across 3 reloads",
        ok + lost
    );
    // The same sockets served every config in turn.
    assert!(
        ttls.is_superset(&[5, 7, 8, 9].into()),
        "TTLs seen: {ttls:?}"
    );
    assert_eq!(
        crossdns
            .stderr()
            .matches("serving DNS on udp and tcp")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_answering_through_the_lame_duck_period_with_readyz_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut crossdns = Crossdns::start(
        dir.path(),
        &format!("allow: [127.0.0.0/8]\nclusters:\n{}", cluster("region1")),
    )
    .await;
    crossdns.wait_ready(Duration::from_secs(20)).await;
    // admin.lameduck: rewrite the admin block the helper wrote.
    let text = std::fs::read_to_string(&crossdns.config_path).expect("read");
    let admin = format!("admin:\n  listen: \"{}\"\n", crossdns.admin);
    assert!(text.contains(&admin), "{text}");
    std::fs::write(
        &crossdns.config_path,
        text.replace(&admin, &format!("{admin}  lameduck: 2s\n")),
    )
    .expect("write");
    wait_for(Duration::from_secs(15), async || {
        crossdns.stderr().contains("config reloaded")
    })
    .await
    .expect("reloaded");
    let name = "cockroachdb-0.cockroachdb.default.svc.cluster.region1.";
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &crossdns.pid().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    wait_for(Duration::from_secs(1), async || {
        matches!(crossdns.get("/readyz").await, Some((503, _)))
    })
    .await
    .expect("/readyz says 503 during the lame-duck period");
    let (code, body) = crossdns.readyz().await;
    assert_eq!(code, 503);
    assert_eq!(body["shutting_down"], true, "{body}");
    // Still answering, a second into the period.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        rcode(&query_udp(crossdns.dns, name, RecordType::A).await),
        ResponseCode::NoError
    );
    crossdns.assert_alive();
    // Then it exits by itself, after about 2 s.
    wait_for(Duration::from_secs(5), async || crossdns.exited().is_some())
        .await
        .expect("exited after the lame-duck period");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_dns_waits_up_to_five_seconds_for_clusters_to_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A cluster whose apiserver never answers: the sockets open anyway
    // after the wait, and its zone answers SERVFAIL.
    let kubeconfig = dir.path().join("dead.kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: dead, context: {cluster: c, user: u}}]\ncurrent-context: dead\n",
    )
    .expect("kubeconfig");
    let started = std::time::Instant::now();
    let crossdns = Crossdns::start(
        dir.path(),
        &format!(
            "allow: [127.0.0.0/8]\nclusters:\n{}  - {{name: dead, zone: cluster.dead, kubeconfig: {}}}\n",
            cluster("region1"),
            kubeconfig.display()
        ),
    )
    .await;
    let opened = started.elapsed();
    assert!(
        opened >= Duration::from_millis(4500),
        "the sockets opened after {opened:?}, before the wait was over"
    );
    assert!(
        crossdns
            .stderr()
            .contains("serving before these clusters synced"),
        "{}",
        crossdns.stderr()
    );
    assert_eq!(
        rcode(&query_udp(crossdns.dns, "web.shop.svc.cluster.dead.", RecordType::A).await),
        ResponseCode::ServFail
    );
    assert_eq!(
        rcode(
            &query_udp(
                crossdns.dns,
                "cockroachdb-0.cockroachdb.default.svc.cluster.region1.",
                RecordType::A
            )
            .await
        ),
        ResponseCode::NoError
    );
}
