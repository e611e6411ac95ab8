//! Time from a watch event at the apiserver to the changed DNS answer.
//!
//!     CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench propagation
//!
//! A fake apiserver (real list/watch over TLS) holds one headless Service
//! `db.bench` with host `db-0` (plus `PROP_SERVICES` background services,
//! default 1,000, each with a 10-endpoint slice, so snapshots are not
//! trivially small). crossdns runs in-process, watching it. Each iteration
//! applies an EndpointSlice that gives `db-0` a new IP at t0, then polls
//! `db-0.db.bench.svc.cluster.bench A` over UDP every 1 ms until the new IP
//! is answered (t1), and records t1 - t0. Env: `PROP_ITERATIONS` (200).
//! Bounded: 5 s per iteration, 180 s in total.

mod prop_support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use prop_support::{ask, db_ip, env_usize, pct, slice};

const ZONE: &str = "cluster.bench";
const PER_ITERATION: Duration = Duration::from_secs(5);
const TOTAL: Duration = Duration::from_secs(180);

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; ignore arguments.
    let iterations = env_usize("PROP_ITERATIONS", 200).clamp(1, 10_000);
    let background = env_usize("PROP_SERVICES", 1_000).min(50_000) as u32;
    let prop_support::Bench {
        rt,
        api,
        dir: _dir,
        kubeconfig,
    } = prop_support::start(background)?;
    let _guard = rt.enter();
    let yaml = format!(
        "dns:\n  listen: [\"127.0.0.1:0\"]\nallow: [\"127.0.0.0/8\"]\nclusters:\n  - name: bench\n    zone: {ZONE}\n    kubeconfig: {}\n    context: ctx\n",
        kubeconfig.display()
    );
    let settings = crossdns::config::Settings::from_yaml(&yaml, Path::new("propagation.yaml"))?;
    let running = rt.block_on(crossdns::app::start(settings))?;
    let server: SocketAddr = running.dns[0];

    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(server)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_str(&format!("db-0.db.bench.svc.{ZONE}."))?,
        RecordType::A,
    ));
    let mut query = m.to_vec()?;
    let mut id: u16 = 0;

    // Synced: the first answer is there.
    let started = Instant::now();
    let sync_deadline = started + Duration::from_secs(60);
    loop {
        id = id.wrapping_add(1);
        if ask(&sock, &mut query, id).is_some_and(|a| a == [db_ip(0)]) {
            break;
        }
        if Instant::now() > sync_deadline {
            bail!("crossdns did not sync within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "synced after {:.0} ms ({} background services); {iterations} iterations",
        started.elapsed().as_secs_f64() * 1e3,
        background
    );

    let run_deadline = Instant::now() + TOTAL;
    let mut samples: Vec<f64> = Vec::with_capacity(iterations);
    let mut failures = 0usize;
    let mut polls = 0u64;
    for k in 1..=iterations {
        if Instant::now() > run_deadline {
            println!("stopping after {} iterations: {TOTAL:?} budget used", k - 1);
            break;
        }
        let new_ip = db_ip(k);
        let doc = slice("bench", "db", &[new_ip], true);
        let t0 = Instant::now();
        api.apply(doc).context("apply")?;
        let deadline = t0 + PER_ITERATION;
        let seen = loop {
            id = id.wrapping_add(1);
            polls += 1;
            if ask(&sock, &mut query, id).is_some_and(|a| a == [new_ip]) {
                break Some(t0.elapsed());
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        match seen {
            Some(d) => samples.push(d.as_secs_f64() * 1e3),
            None => {
                failures += 1;
                eprintln!("iteration {k}: {new_ip} not answered within {PER_ITERATION:?}");
            }
        }
    }
    drop(running);
    if samples.is_empty() {
        bail!("no successful iteration");
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "propagation (apiserver apply -> new A answer), {} samples, {failures} failed, {polls} polls:",
        samples.len()
    );
    println!(
        "  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  min {:.2} ms  mean {:.2} ms",
        pct(&samples, 0.50),
        pct(&samples, 0.90),
        pct(&samples, 0.99),
        samples[samples.len() - 1],
        samples[0],
        mean
    );
    println!(
        "  (includes the writer's {} ms quiet wait before it publishes and up to 1 ms poll granularity)",
        crossdns::watch::BATCH_QUIET.as_millis()
    );
    if failures > 0 {
        bail!("{failures} iterations did not see the change within {PER_ITERATION:?}");
    }
    Ok(())
}
