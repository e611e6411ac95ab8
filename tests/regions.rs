//! The mission end to end (`examples/regions/run.sh`): a real etcd cluster across three
//! simulated regions (network namespaces joined by a delayed WAN), each region with its own
//! test apiserver, two crossdns replicas and kube-dns's dnsmasq, every member named by crossdns
//! and certified with the SANs `crossdns generate sans` prints. The script makes every check
//! itself and prints `PASS <check>: ...` lines and a report; this test runs it and requires
//! each check below to have passed, so a check that silently stopped running fails here too.
//! It runs twice: every crossdns watching every apiserver (`--mode watch-all`), and site mode
//! (`--mode site`: each region's crossdns watches its own apiserver and follows the others by
//! zone transfer over TLS).
//!
//! Skips (loudly, passing) only where network namespaces cannot be created (not root, or no
//! permission); anything else missing or failing is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every check the script makes, in order: the four parts and what they rest on.
const CHECKS: &[&str] = &[
    "apiservers",
    "crossdns-ready",
    "kube-dns-config",
    "wan-delay",
    "certificates",
    "join-list",
    // 1. the cluster forms
    "formation",
    "member-list",
    "tls-verify",
    "key-across-regions",
    // 2. a pod moves and keeps its name
    "name-follow",
    "rejoin",
    "quorum-during-move",
    // 3. a region is cut off
    "clusterset-stale",
    "last-state",
    "quorum-during-cut",
    "restore",
    // 4. a region's crossdns is restarted
    "crossdns-restart",
    // over the whole run
    "pod-queries",
];

/// A run takes about a minute and a half here; this only stops a hung run.
const LIMIT: Duration = Duration::from_secs(15 * 60);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Why network namespaces cannot be made here, if they cannot.
fn netns_unavailable() -> Option<String> {
    let name = format!("crossdns-regions-probe-{}", std::process::id());
    let added = Command::new("ip").args(["netns", "add", &name]).output();
    match added {
        Err(e) => Some(format!("cannot run `ip` ({e})")),
        Ok(out) if !out.status.success() => Some(format!(
            "`ip netns add` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => {
            let _ = Command::new("ip").args(["netns", "delete", &name]).status();
            None
        }
    }
}

/// The fake-apiserver binary of this build, beside the test's own target directory
/// (`target/<profile>/fake-apiserver`). `cargo test --workspace` has just built it and it is
/// used as it is; when it is missing or older than its sources (`cargo test --test regions`
/// after an edit), `cargo build -p fake-apiserver` makes it first. (Building it every time would
/// rebuild it with `-p`'s feature set, which differs from the workspace's.)
fn fake_apiserver() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/regions-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable under target/<profile>/deps");
    let bin = profile_dir.join("fake-apiserver");
    let sources = root().join("tests/fake-apiserver");
    let newest_source = [
        sources.join("src"),
        sources.join("Cargo.toml"),
        root().join("Cargo.lock"),
    ]
    .iter()
    .filter_map(|p| newest_mtime(p))
    .max();
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(newest)) = (built, newest_source)
        && built >= newest
    {
        eprintln!("using {} (newer than its sources)", bin.display());
        return bin;
    }
    let mut build = Command::new(env!("CARGO"));
    build.current_dir(root()).args([
        "build",
        "--locked",
        "-p",
        "fake-apiserver",
        "--bin",
        "fake-apiserver",
    ]);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    eprintln!(
        "{} is missing or older than its sources: {build:?}",
        bin.display()
    );
    let status = build.status().expect("running cargo build");
    assert!(status.success(), "cargo build -p fake-apiserver: {status}");
    assert!(bin.is_file(), "{} missing after the build", bin.display());
    bin
}

/// The newest modification time of a file, or of any file under a folder.
fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

/// The last lines of every log the script kept, for a failed run.
fn log_tails(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = String::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(12)..];
        out.push_str(&format!(
            "---- {} (last {} lines)\n",
            f.display(),
            tail.len()
        ));
        for l in tail {
            out.push_str(&l.chars().take(400).collect::<String>());
            out.push('\n');
        }
    }
    out
}

/// One run at a time: runs share the machine's namespaces prefix and CPU.
static ONE_RUN: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn etcd_across_three_regions_forms_follows_a_moved_pod_survives_a_cut_region_and_crossdns_restarts()
{
    run_checks("watch-all");
}

/// The same run and checks in site mode (design.md §7): each region's crossdns watches only its
/// own apiserver and follows the other regions' zones by IXFR over DNS over TLS with a TSIG key.
#[test]
fn in_site_mode_etcd_across_three_regions_passes_the_same_checks_with_zone_transfers_between_regions()
 {
    run_checks("site");
}

/// Runs `run.sh --mode MODE` and requires every check of `CHECKS` to have passed.
fn run_checks(mode: &str) {
    let _one = ONE_RUN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(why) = netns_unavailable() {
        eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("SKIPPED: network namespaces cannot be created here: {why}");
        eprintln!("(examples/regions/run.sh needs root; CI runs it as root)");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
        return;
    }
    let fake = fake_apiserver();
    let logs = tempfile::tempdir().expect("tempdir");
    let out_path = logs.path().join("run.out");
    let out_file = std::fs::File::create(&out_path).expect("create run.out");
    let mut child = Command::new("bash")
        .arg(root().join("examples/regions/run.sh"))
        .args(["--mode", mode])
        .arg("--keep-logs")
        .arg(logs.path().join("logs"))
        .env("CROSSDNS", env!("CARGO_BIN_EXE_crossdns"))
        .env("FAKE_APISERVER", &fake)
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().expect("clone"))
        .stderr(out_file)
        .spawn()
        .expect("starting examples/regions/run.sh");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > LIMIT {
            // SIGTERM: the script tears its namespaces down on the way out.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            panic!(
                "run.sh did not finish in {LIMIT:?}:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&out_path).expect("read run.out");
    let took = started.elapsed();
    let missing: Vec<&str> = CHECKS
        .iter()
        .copied()
        .filter(|c| {
            !output
                .lines()
                .any(|l| l.starts_with(&format!("PASS {c}: ")))
        })
        .collect();
    if !status.success() || !missing.is_empty() {
        panic!(
            "run.sh --mode {mode} {status}; checks that did not pass: {missing:?}\n\n{output}\n\nlogs:\n{}",
            log_tails(&logs.path().join("logs"))
        );
    }
    assert!(
        output.contains("==== crossdns regions demo: report ===="),
        "no report in:\n{output}"
    );
    assert!(
        output.contains(&format!(", mode {mode}, ")),
        "not a {mode} run:\n{output}"
    );
    // Shown with --nocapture (and kept in CI logs when run that way).
    println!(
        "{output}\nrun.sh --mode {mode} took {:.1} s",
        took.as_secs_f64()
    );
}
