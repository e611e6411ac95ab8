//! The apiserver fault matrix: the real `crossdns` binary against a test
//! apiserver (real list/watch over TLS), one test per fault, each while
//! queries flow. For each: the last good answers are kept (every query of
//! the flow gets them), `/metrics` and the log name the failing cluster and
//! the cause, and a change made during the fault answers within 2 s of the
//! fault ending. Plus a token file rotated on disk, picked up without a
//! restart.
//!
//! Tests run one at a time (`common::SERIAL`): the 2 s bar is measured on a
//! shared 2-core machine.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Crossdns, make_query, udp_raw, wait_for};
use fake_apiserver::{FakeApiServer, Fault, Options};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde_json::{Value, json};
use tempfile::TempDir;

const SYNC: Duration = Duration::from_secs(30);
/// The bar: answers recover within 2 s of the fault ending.
const RECOVERY: Duration = Duration::from_secs(2);
/// Names of the demo whose answers must never change during a fault.
const KEPT: [(&str, &str); 2] = [
    (
        "cockroachdb-public.default.svc.cluster.region1",
        "10.101.0.20",
    ),
    (
        "cockroachdb-0.cockroachdb.default.svc.cluster.region1",
        "10.1.0.10",
    ),
];
const DURING: &str = "during.default.svc.cluster.region1";
const DURING_IP: &str = "10.101.0.77";

struct Rig {
    server: FakeApiServer,
    crossdns: Crossdns,
    _dir: TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// A test apiserver with region1's demo objects and crossdns watching it
/// through the kubeconfig `kubeconfig` writes (default: the server's own).
async fn rig_with(
    opts: Options,
    kubeconfig: impl FnOnce(&FakeApiServer, &std::path::Path) -> PathBuf,
) -> Rig {
    let serial = common::SERIAL.lock().await;
    common::init_tls();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FakeApiServer::start_with(opts).await.expect("apiserver");
    server
        .apply_dir(&common::repo_root().join("examples/demo/region1"))
        .expect("apply the demo");
    let kc = kubeconfig(&server, dir.path());
    let rest = format!(
        "allow: [\"127.0.0.0/8\"]\nclusters:\n  - name: region1\n    zone: cluster.region1\n    kubeconfig: {}\n",
        kc.display()
    );
    let crossdns = Crossdns::start(dir.path(), &rest).await;
    crossdns.wait_ready(SYNC).await;
    Rig {
        server,
        crossdns,
        _dir: dir,
        _serial: serial,
    }
}

async fn rig(opts: Options) -> Rig {
    rig_with(opts, |server, dir| {
        let path = dir.join("region1.kubeconfig");
        server
            .write_kubeconfig(&path, "region1")
            .expect("kubeconfig");
        path
    })
    .await
}

fn service(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80}]},
    })
}

/// The A addresses of `name`, or why there are none (never panics).
async fn a_of(dns: SocketAddr, name: &str) -> Result<Vec<IpAddr>, String> {
    let q = make_query(name, RecordType::A, Some(1232));
    let bytes = q.to_vec().map_err(|e| e.to_string())?;
    let raw = udp_raw(dns, &bytes, Duration::from_secs(2))
        .await
        .ok_or_else(|| "timeout".to_owned())?;
    let m = Message::from_vec(&raw).map_err(|e| e.to_string())?;
    if m.metadata.response_code != ResponseCode::NoError {
        return Err(m.metadata.response_code.to_string());
    }
    Ok(m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect())
}

/// Queries for the `KEPT` names, every 20 ms until stopped; counts every
/// answer that is not the last good one.
struct Flow {
    started: Instant,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl Flow {
    fn start(dns: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut total = 0u64;
            let mut bad = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                for (name, want) in KEPT {
                    total += 1;
                    match a_of(dns, name).await {
                        Ok(got) if got == [want.parse::<IpAddr>().expect("ip")] => {}
                        other => bad.push(format!("{name}: {other:?}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (total, bad)
        });
        Self {
            started: Instant::now(),
            stop,
            task,
        }
    }

    /// Stops the flow and asserts every answer was the last good one.
    async fn assert_all_good(self, what: &str) {
        // At least a second of queries, however fast the recovery was.
        let min = Duration::from_secs(1);
        tokio::time::sleep(min.saturating_sub(self.started.elapsed())).await;
        self.stop.store(true, Ordering::Relaxed);
        let (total, bad) = self.task.await.expect("flow task");
        assert!(total > 20, "{what}: only {total} queries flowed");
        assert!(
            bad.is_empty(),
            "{what}: {} of {total} answers were not the last good ones: {:?}",
            bad.len(),
            &bad[..bad.len().min(10)]
        );
        eprintln!(
            "{what}: {total} queries during the fault, all answered from the last good snapshot"
        );
    }
}

impl Rig {
    fn dns(&self) -> SocketAddr {
        self.crossdns.dns
    }

    async fn metric(&self, sample: &str) -> f64 {
        self.crossdns.metric(sample).await.unwrap_or(0.0)
    }

    /// Waits (up to 15 s) until `/metrics` says region1 is failing with
    /// `cause` now, and the log has a line naming region1 and `cause`.
    async fn assert_failing_with(&self, cause: &str) {
        let gauge = format!("crossdns_cluster_failing{{cluster=\"region1\",cause=\"{cause}\"}}");
        let seen = wait_for(Duration::from_secs(15), async || {
            self.metric(&gauge).await == 1.0
        })
        .await;
        assert!(
            seen.is_some(),
            "{gauge} never 1:\n{}",
            self.crossdns.metrics().await
        );
        self.assert_counted_and_logged(cause).await;
    }

    /// The failure was counted under `cause` and logged with the cluster.
    async fn assert_counted_and_logged(&self, cause: &str) {
        let counter =
            format!("crossdns_cluster_failures_total{{cluster=\"region1\",cause=\"{cause}\"}}");
        let counted = wait_for(Duration::from_secs(15), async || {
            self.metric(&counter).await >= 1.0
        })
        .await;
        assert!(counted.is_some(), "{counter} never counted");
        let log = self.crossdns.stderr();
        assert!(
            log.lines().any(|l| l.contains("failing")
                && l.contains("cluster=region1")
                && l.contains(&format!("cause={cause}"))),
            "no log line names region1 failing with cause={cause}:\n{log}"
        );
    }

    /// Asserts the change made during the fault is not answered yet.
    async fn assert_during_not_seen(&self) {
        assert_eq!(
            a_of(self.dns(), DURING).await,
            Err(ResponseCode::NXDomain.to_string()),
            "the change made during the fault cannot have arrived"
        );
    }

    /// Polls until the change made during the fault answers; asserts it did
    /// within `RECOVERY` of `since`.
    async fn assert_recovers_from(&self, since: Instant, what: &str) {
        let want: Vec<IpAddr> = vec![DURING_IP.parse().expect("ip")];
        let dns = self.dns();
        wait_for(Duration::from_secs(15), async || {
            a_of(dns, DURING).await.as_ref() == Ok(&want)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{what}: {DURING} never answered:\n{}",
                self.crossdns.stderr()
            )
        });
        let took = since.elapsed();
        eprintln!("{what}: the change made during the fault answered {took:?} after it ended");
        assert!(
            took <= RECOVERY,
            "{what}: answers recovered {took:?} after the fault ended; the bar is {RECOVERY:?}"
        );
        let clear = wait_for(Duration::from_secs(10), async || {
            self.crossdns
                .metrics()
                .await
                .lines()
                .filter(|l| l.starts_with("crossdns_cluster_failing{"))
                .all(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(0.0))
        })
        .await;
        let metrics = self.crossdns.metrics().await;
        assert!(
            clear.is_some(),
            "{what}: still failing after recovery:\n{}\n{}",
            metrics
                .lines()
                .filter(|l| l.starts_with("crossdns_cluster_failing"))
                .collect::<Vec<_>>()
                .join("\n"),
            self.crossdns.stderr()
        );
        let (status, body) = self.crossdns.readyz().await;
        assert_eq!(status, 200, "{what}: {body}");
    }
}

/// The common shape: start the flow, inject, change, check the metrics and
/// the log, hold the fault, clear it, check recovery and the flow.
async fn fault_case(
    opts: Options,
    cause: &str,
    inject: impl AsyncFnOnce(&FakeApiServer),
    clear: impl AsyncFnOnce(&FakeApiServer),
) {
    let rig = rig(opts).await;
    let flow = Flow::start(rig.dns());
    inject(&rig.server).await;
    rig.server
        .apply(service("during", DURING_IP))
        .expect("apply during the fault");
    rig.assert_failing_with(cause).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.assert_during_not_seen().await;
    clear(&rig.server).await;
    let ended = Instant::now();
    rig.assert_recovers_from(ended, cause).await;
    flow.assert_all_good(cause).await;
    assert!(
        !rig.crossdns.stderr().contains("panicked"),
        "crossdns panicked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_apiserver_keeps_the_last_answers_and_recovers_within_2s() {
    fault_case(
        Options::default(),
        "stalled",
        async |s| s.set_fault(Fault::Stall),
        async |s| s.set_fault(Fault::None),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_keep_the_last_answers_and_recover_within_2s() {
    fault_case(
        Options::default(),
        "server_error",
        async |s| s.set_fault(Fault::ServerError),
        async |s| s.set_fault(Fault::None),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_is_retried_after_retry_after_and_recovers_within_2s() {
    fault_case(
        Options::default(),
        "throttled",
        async |s| {
            s.set_fault(Fault::TooManyRequests {
                retry_after_secs: 1,
            });
            s.drop_watches();
        },
        async |s| s.set_fault(Fault::None),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_keeps_the_last_answers_and_recovers_within_2s() {
    fault_case(
        Options::default(),
        "tls",
        async |s| s.rotate_to_untrusted_cert().await.expect("rotate"),
        async |s| s.restore_cert().await.expect("restore"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_keeps_the_last_answers_and_recovers_within_2s() {
    fault_case(
        Options::default(),
        "unauthorized",
        async |s| {
            s.set_token("revoked-and-replaced");
            s.drop_watches();
        },
        // The token of the kubeconfig is accepted again.
        async |s| s.set_token(s.token()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_watch_event_relists_and_the_change_answers_within_2s() {
    let rig = rig(Options::default()).await;
    let flow = Flow::start(rig.dns());
    let lists = rig
        .metric("crossdns_cluster_lists_total{cluster=\"region1\"}")
        .await;
    rig.server.garbage_next_watch_event();
    // The event of this change is the garbage line: lost unless relisted.
    let sent = Instant::now();
    rig.server
        .apply(service("during", DURING_IP))
        .expect("apply");
    rig.assert_recovers_from(sent, "garbage watch event").await;
    rig.assert_counted_and_logged("garbage").await;
    assert!(
        rig.metric("crossdns_cluster_lists_total{cluster=\"region1\"}")
            .await
            > lists,
        "a lost event is recovered by a relist"
    );
    flow.assert_all_good("garbage watch event").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_list_page_keeps_the_last_answers_and_the_next_list_recovers_within_2s() {
    // An apiserver without streaming lists, so relists are paginated.
    let rig = rig(Options {
        watch_list: false,
        ..Options::default()
    })
    .await;
    let flow = Flow::start(rig.dns());
    let pages = rig.server.stats().lists;
    rig.server.garbage_next_list_page();
    rig.server.compact(); // every watch gets 410 and relists
    rig.server
        .apply(service("during", DURING_IP))
        .expect("apply");
    let served = wait_for(Duration::from_secs(10), async || {
        rig.server.stats().lists > pages
    })
    .await;
    assert!(served.is_some(), "no relist after the compaction");
    let garbage_served = Instant::now();
    rig.assert_recovers_from(garbage_served, "garbage list page")
        .await;
    rig.assert_counted_and_logged("garbage").await;
    flow.assert_all_good("garbage list page").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_compaction_relists_every_kind_and_the_change_answers_within_2s() {
    let rig = rig(Options::default()).await;
    let flow = Flow::start(rig.dns());
    let lists = rig
        .metric("crossdns_cluster_lists_total{cluster=\"region1\"}")
        .await;
    rig.server.compact();
    let compacted = Instant::now();
    rig.server
        .apply(service("during", DURING_IP))
        .expect("apply");
    rig.assert_recovers_from(compacted, "410 compaction").await;
    let relisted = wait_for(Duration::from_secs(10), async || {
        rig.metric("crossdns_cluster_lists_total{cluster=\"region1\"}")
            .await
            >= lists + 4.0
    })
    .await;
    assert!(
        relisted.is_some(),
        "services, slices, statefulsets and namespaces are relisted"
    );
    let log = rig.crossdns.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("410 Gone") && l.contains("cluster=region1")),
        "the relist is logged with the cluster:\n{log}"
    );
    flow.assert_all_good("410 compaction").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_rotated_on_disk_is_picked_up_without_a_restart() {
    let token_path = Arc::new(std::sync::Mutex::new(PathBuf::new()));
    let slot = Arc::clone(&token_path);
    let rig = rig_with(Options::default(), move |server, dir| {
        let token = dir.join("token");
        std::fs::write(&token, server.accepted_token()).expect("token file");
        let kc = dir.join("region1.kubeconfig");
        let text = server.kubeconfig("region1").replace(
            &format!("token: {}", server.accepted_token()),
            &format!("tokenFile: {}", token.display()),
        );
        assert!(text.contains("tokenFile"), "{text}");
        std::fs::write(&kc, text).expect("kubeconfig");
        *slot.lock().expect("slot") = token;
        kc
    })
    .await;
    let pid = rig.crossdns.pid();
    let flow = Flow::start(rig.dns());
    // Rotate as the kubelet does a projected token: the file gets the new
    // token, and the apiserver accepts only that one from now on.
    let path = token_path.lock().expect("slot").clone();
    std::fs::write(&path, "rotated-token-2").expect("rotate the file");
    rig.server.set_token("rotated-token-2");
    rig.server.drop_watches();
    let rotated = Instant::now();
    rig.server
        .apply(service("during", DURING_IP))
        .expect("apply");
    rig.assert_recovers_from(rotated, "token file rotation")
        .await;
    assert_eq!(rig.crossdns.pid(), pid, "no restart");
    flow.assert_all_good("token file rotation").await;
}
