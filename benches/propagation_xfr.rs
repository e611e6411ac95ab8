//! Time from a watch event at the apiserver to a secondary's changed
//! answer, through zone transfers (design.md §7), against the primary's own
//! answer to the same event in the same iteration:
//!
//!     cargo bench --bench propagation_xfr
//!
//! A test apiserver (real list/watch over TLS) holds `PROP_SERVICES`
//! background Services (default 1,000, 10 endpoints each) and the headless
//! `db.bench` with host `db-0`. A crossdns primary (in-process, as in
//! `benches/propagation.rs`) watches it and sends a TSIG-signed NOTIFY on
//! each change to two secondaries, separate processes on loopback:
//!   - crossdns (the release binary, `serve`) with a `primary:` source;
//!   - knotd, configured from `crossdns generate knot` output.
//!
//! Each iteration gives `db-0` a new IP at the apiserver at t0, then polls
//! `db-0.db.bench.svc.cluster.bench A` at all three servers over UDP (one
//! round of three queries, then 1 ms) until each answers the new IP.
//! Iterations are `PROP_GAP_MS` apart (default 250 ms, more than the
//! primary's 100 ms least spacing between two NOTIFYs to one target, so
//! each change is told at once; 0 measures back-to-back changes, whose
//! NOTIFYs that spacing folds). Env: `PROP_ITERATIONS` (200), `PROP_KEEP`
//! (set: keep the folder with the configs and the secondaries' logs).
//! Bounded: 5 s per iteration, 300 s in all.

mod prop_support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use prop_support::{ask, db_ip, env_usize, pct, slice};

const ZONE: &str = "cluster.bench";
const SECRET: &[u8] = b"crossdns-bench-secret-0123456789";
const PER_ITERATION: Duration = Duration::from_secs(5);
const TOTAL: Duration = Duration::from_secs(300);
const WHO: [&str; 3] = ["primary (direct)", "crossdns secondary", "knotd secondary"];

/// A child process, killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Daemon> {
    let out = std::fs::File::create(log)?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("start {cmd:?}"))?;
    Ok(Daemon(child))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A client socket asking `server` for `db-0`.
struct Poller {
    sock: UdpSocket,
    query: Vec<u8>,
    id: u16,
}

impl Poller {
    fn new(server: SocketAddr) -> anyhow::Result<Self> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.connect(server)?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut m = Message::new(0, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_str(&format!("db-0.db.bench.svc.{ZONE}."))?,
            RecordType::A,
        ));
        Ok(Self {
            sock,
            query: m.to_vec()?,
            id: fastrand::u16(..),
        })
    }

    fn answers(&mut self, ip: Ipv4Addr) -> bool {
        self.id = self.id.wrapping_add(1);
        ask(&self.sock, &mut self.query, self.id).is_some_and(|a| a == [ip])
    }
}

/// The sum of every sample of `name` whose labels contain `label`.
fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() -> anyhow::Result<()> {
    let iterations = env_usize("PROP_ITERATIONS", 200).clamp(1, 10_000);
    let background = env_usize("PROP_SERVICES", 1_000).min(50_000) as u32;
    let gap = Duration::from_millis(env_usize("PROP_GAP_MS", 250) as u64);
    let prop_support::Bench {
        rt,
        api,
        dir,
        kubeconfig,
    } = prop_support::start(background)?;
    let _guard = rt.enter();
    let d = dir.path();
    let key = d.join("bench.key");
    std::fs::write(
        &key,
        base64::engine::general_purpose::STANDARD.encode(SECRET),
    )?;
    let (p_port, s_port, k_port) = (free_port()?, free_port()?, free_port()?);
    let keys = format!(
        "tsig_keys: [{{name: bench, algorithm: hmac-sha256, secret_file: {}}}]\n",
        key.display()
    );
    let primary_yaml = d.join("primary.yaml");
    std::fs::write(
        &primary_yaml,
        format!(
            "dns:\n  listen: [\"127.0.0.1:{p_port}\"]\n  advertise: [\"127.0.0.1\"]\nallow: [\"127.0.0.0/8\"]\n{keys}\
             transfer: {{allow: [\"127.0.0.0/8\"], key: bench, notify: [\"127.0.0.1:{s_port}\", \"127.0.0.1:{k_port}\"]}}\n\
             clusters:\n  - {{name: bench, zone: {ZONE}, kubeconfig: {}, context: ctx}}\n",
            kubeconfig.display()
        ),
    )?;
    let settings = crossdns::config::Settings::load(&primary_yaml)?;
    let running = rt.block_on(crossdns::app::start(settings))?;
    let primary: SocketAddr = running.dns[0];

    // The crossdns secondary: the release binary, a `primary:` source.
    let secondary_yaml = d.join("secondary.yaml");
    std::fs::write(
        &secondary_yaml,
        format!(
            "dns:\n  listen: [\"127.0.0.1:{s_port}\"]\nallow: [\"127.0.0.0/8\"]\n{keys}\
             clusters:\n  - {{name: bench, zone: {ZONE}, primary: {{servers: [\"{primary}\"], key: bench}}}}\n"
        ),
    )?;
    let crossdns = env!("CARGO_BIN_EXE_crossdns");
    let _secondary = spawn(
        Command::new(crossdns)
            .args(["serve", "--config"])
            .arg(&secondary_yaml)
            .env("CROSSDNS_LOG", "warn"),
        &d.join("secondary.log"),
    )?;

    // knotd, from `crossdns generate knot`.
    let out = Command::new(crossdns)
        .args(["generate", "knot", "--config"])
        .arg(&primary_yaml)
        .args(["--address", &primary.to_string()])
        .env("CROSSDNS_LOG", "warn")
        .output()?;
    if !out.status.success() {
        bail!("generate knot: {}", String::from_utf8_lossy(&out.stderr));
    }
    let kdir = d.join("knot");
    std::fs::create_dir_all(&kdir)?;
    let kd = kdir.display();
    std::fs::write(
        kdir.join("knot.conf"),
        format!(
            "server:\n  rundir: \"{kd}\"\n  listen: 127.0.0.1@{k_port}\n  udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n  storage: \"{kd}\"\n\
             template:\n  - id: default\n    storage: \"{kd}\"\n    zonefile-sync: -1\n    zonefile-load: none\n    journal-content: changes\n\
             {}",
            String::from_utf8(out.stdout)?
        ),
    )?;
    let _knot = spawn(
        Command::new("/usr/sbin/knotd")
            .arg("-c")
            .arg(kdir.join("knot.conf")),
        &kdir.join("knotd.log"),
    )?;

    let servers = [
        primary,
        SocketAddr::from((Ipv4Addr::LOCALHOST, s_port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, k_port)),
    ];
    let mut pollers = servers
        .iter()
        .map(|s| Poller::new(*s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    for (i, p) in pollers.iter_mut().enumerate() {
        while !p.answers(db_ip(0)) {
            if started.elapsed() > Duration::from_secs(180) {
                bail!("{} did not answer db-0 within 180 s", WHO[i]);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    println!(
        "all three answer after {:.1} s ({background} background services); {iterations} iterations {} ms apart",
        started.elapsed().as_secs_f64(),
        gap.as_millis()
    );
    std::thread::sleep(Duration::from_secs(1));
    let before = running.metrics.encode();

    let run_deadline = Instant::now() + TOTAL;
    let mut samples: [Vec<f64>; 3] = Default::default();
    let mut failures = [0usize; 3];
    for k in 1..=iterations {
        if Instant::now() > run_deadline {
            println!("stopping after {} iterations: {TOTAL:?} budget used", k - 1);
            break;
        }
        std::thread::sleep(gap);
        let new_ip = db_ip(k);
        let doc = slice("bench", "db", &[new_ip], true);
        let t0 = Instant::now();
        api.apply(doc).context("apply")?;
        let mut seen: [Option<f64>; 3] = [None; 3];
        while seen.iter().any(Option::is_none) && t0.elapsed() < PER_ITERATION {
            for (i, p) in pollers.iter_mut().enumerate() {
                if seen[i].is_none() && p.answers(new_ip) {
                    seen[i] = Some(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 0..3 {
            match seen[i] {
                Some(ms) => samples[i].push(ms),
                None => {
                    failures[i] += 1;
                    eprintln!(
                        "iteration {k}: {} did not answer {new_ip} within {PER_ITERATION:?}",
                        WHO[i]
                    );
                }
            }
        }
    }
    let after = running.metrics.encode();
    let served = |t: &str| {
        let l = format!("type=\"{t}\"");
        metric_sum(&after, "crossdns_transfer_requests_total", &l)
            - metric_sum(&before, "crossdns_transfer_requests_total", &l)
    };
    let (ixfr, axfr) = (served("ixfr"), served("axfr"));
    let full = metric_sum(&after, "crossdns_transfer_ixfr_full_total", "")
        - metric_sum(&before, "crossdns_transfer_ixfr_full_total", "");
    drop(running);
    if std::env::var_os("PROP_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }

    println!("propagation (apiserver apply -> new A answer) to each server, same iterations:");
    let mut p50 = [0.0; 3];
    for i in 0..3 {
        let s = &mut samples[i];
        if s.is_empty() {
            bail!("{}: no successful iteration", WHO[i]);
        }
        s.sort_by(f64::total_cmp);
        p50[i] = pct(s, 0.50);
        println!(
            "  {:<19} p50 {:6.2} ms  p90 {:6.2} ms  p99 {:6.2} ms  max {:7.2} ms  ({} samples, {} failed)",
            WHO[i],
            p50[i],
            pct(s, 0.90),
            pct(s, 0.99),
            s[s.len() - 1],
            s.len(),
            failures[i]
        );
    }
    for i in 1..3 {
        println!(
            "  {} / direct: p50 {:.2}x, p99 {:.2}x",
            WHO[i],
            p50[i] / p50[0],
            pct(&samples[i], 0.99) / pct(&samples[0], 0.99)
        );
    }
    println!(
        "  transfers served by the primary meanwhile: {ixfr} IXFR ({full} answered whole), {axfr} AXFR"
    );
    println!(
        "  (each includes the primary's {} ms quiet wait before it publishes, and a poll round of about 1 ms)",
        crossdns::watch::BATCH_QUIET.as_millis()
    );
    let failed: usize = failures.iter().sum();
    if failed > 0 {
        bail!("{failed} answers did not see the change within {PER_ITERATION:?}");
    }
    Ok(())
}
