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
