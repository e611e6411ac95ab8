//! Helpers for the `/metrics` tests (`metrics.rs`, `dashboard.rs`): the real
//! binary with a cluster, a clusterset and a forward zone (whose upstream is
//! a second real crossdns), scrapes with a chosen `Accept`, a sample parser,
//! the histogram invariants, and the official consumers of the text
//! (`promtool check metrics`, the Python `prometheus_client` parsers).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::Crossdns;

/// The `Accept` header Prometheus 2.x sends (scrape.go `scrapeAcceptHeader`).
pub const ACCEPT_PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// Asks for the Prometheus text format 0.0.4 only.
pub const ACCEPT_TEXT: &str = "text/plain;version=0.0.4";
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The zones of `start`'s server.
pub const CLUSTER_ZONE: &str = "cluster.region1";
pub const CLUSTERSET_ZONE: &str = "clusterset.local";
pub const FORWARD_ZONE: &str = "cluster.region2";

/// The server under test and the upstream of its forward zone.
#[derive(Debug)]
pub struct Servers {
    pub crossdns: Crossdns,
    pub upstream: Crossdns,
}

/// Starts region2 (the upstream) and the server under test: region1 from
/// `examples/demo`, the clusterset zone, and `cluster.region2` forwarded
/// to the upstream; returns once both are ready.
pub async fn start(dir: &Path) -> Servers {
    let demo = crate::common::repo_root().join("examples/demo");
    let upstream_dir = dir.join("upstream");
    std::fs::create_dir_all(&upstream_dir).expect("create the upstream's folder");
    let upstream = Crossdns::start(
        &upstream_dir,
        &format!(
            "clusters:\n  - name: region2\n    zone: {FORWARD_ZONE}\n    manifests: {}/region2/\n",
            demo.display()
        ),
    )
    .await;
    let crossdns = Crossdns::start(
        dir,
        &format!(
            "clusters:\n  - name: region1\n    zone: {CLUSTER_ZONE}\n    manifests: {}/region1/\n    pods: insecure\n\
             clusterset:\n  zone: {CLUSTERSET_ZONE}\n  local: region1\n\
             forward:\n  - zone: {FORWARD_ZONE}\n    upstreams: [\"{}\"]\n",
            demo.display(),
            upstream.dns
        ),
    )
    .await;
    upstream
        .wait_ready(std::time::Duration::from_secs(20))
        .await;
    crossdns
        .wait_ready(std::time::Duration::from_secs(20))
        .await;
    Servers { crossdns, upstream }
}

/// One `/metrics` response.
#[derive(Debug)]
pub struct Scrape {
    pub content_type: String,
    pub text: String,
}

/// GET `/metrics` with `accept` (none when `None`).
pub async fn scrape(server: &Crossdns, accept: Option<&str>) -> Scrape {
    let client = reqwest::Client::new();
    let mut req = client.get(format!("http://{}/metrics", server.admin));
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let resp = req.send().await.expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200, "/metrics status");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.expect("/metrics body");
    Scrape { content_type, text }
}

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of an exposition (OpenMetrics or 0.0.4 text), in order.
/// Panics on a line it cannot read: crossdns writes no timestamps or
/// exemplars, so every sample line is `name{labels} value`.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| parse_sample(line).unwrap_or_else(|| panic!("unreadable sample line {line:?}")))
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        loop {
            let (start, c) = chars.next()?;
            if c == '}' {
                rest = &body[start + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = start + body[start..].find('=')?;
            let key = body[start..eq].to_owned();
            while chars.next()?.0 < eq + 1 {}
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            }
            labels.insert(key, value);
        }
    }
    let value = rest.strip_prefix(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Family name → type, from the `# TYPE` lines.
pub fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|r| r.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

/// The value of the sample `name` with exactly `labels`; 0 when absent
/// (a labelled counter series appears once it is non-zero).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map_or(0.0, |s| s.value)
}

/// Sum of every sample named `name` whose labels include `labels`.
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The histogram invariants (OpenMetrics 1.0 "Histogram"): for every series
/// of every histogram family, buckets in increasing `le`, cumulative counts
/// that never decrease, a `+Inf` bucket, and `+Inf` = `_count`. Returns
/// the histogram families checked.
pub fn check_histograms(text: &str) -> Result<Vec<String>, String> {
    let all = samples(text);
    let mut checked = Vec::new();
    for (family, _) in types(text).iter().filter(|(_, t)| *t == "histogram") {
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in all.iter().filter(|s| s.name == format!("{family}_bucket")) {
            let mut labels = s.labels.clone();
            let le = labels
                .remove("le")
                .ok_or(format!("{family}: bucket without le"))?;
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().map_err(|_| format!("{family}: bad le {le:?}"))?
            };
            series.entry(labels).or_default().push((le, s.value));
        }
        for (labels, buckets) in &series {
            if !buckets.windows(2).all(|w| w[0].0 < w[1].0) {
                return Err(format!(
                    "{family}{labels:?}: le not increasing: {buckets:?}"
                ));
            }
            if !buckets.windows(2).all(|w| w[0].1 <= w[1].1) {
                return Err(format!(
                    "{family}{labels:?}: buckets not cumulative: {buckets:?}"
                ));
            }
            let inf = buckets
                .last()
                .filter(|b| b.0 == f64::INFINITY)
                .ok_or(format!("{family}{labels:?}: no +Inf bucket"))?
                .1;
            let count = value_of(&all, &format!("{family}_count"), labels)
                .ok_or(format!("{family}{labels:?}: no _count"))?;
            if inf != count {
                return Err(format!(
                    "{family}{labels:?}: +Inf bucket {inf} != _count {count}"
                ));
            }
        }
        checked.push(family.clone());
    }
    Ok(checked)
}

fn value_of(all: &[Sample], name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
    all.iter()
        .find(|s| s.name == name && s.labels == *labels)
        .map(|s| s.value)
}

// ---------------------------------------------------------------------------
// The official consumers
// ---------------------------------------------------------------------------

/// Where `program` is: `$PATH`, then the sbin folders.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Prints a loud skip line, or panics in CI (env `CI` set), where `.ci/run`
/// has installed every tool.
fn missing(tool: &str) {
    if std::env::var_os("CI").is_some() {
        panic!(
            "{tool} is missing and CI is set: .ci/run installs it (apt-get install prometheus python3-prometheus-client)"
        );
    }
    eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("SKIPPED: {tool} not installed; this check did not run");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
}

/// Runs `program args` with `input` on stdin: (success, stdout, stderr).
fn run_with_stdin(program: &Path, args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    child
        .stdin
        .take()
        .expect("child stdin")
        .write_all(input.as_bytes())
        .expect("write child stdin");
    let out = child.wait_with_output().expect("wait for child");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `promtool check metrics` on `text`: `Some(problems)` (empty when it
/// passed, lint findings included), `None` when promtool is absent.
pub fn promtool_problems(text: &str) -> Option<String> {
    let Some(promtool) = find_program("promtool") else {
        missing("promtool (Debian package prometheus)");
        return None;
    };
    let (ok, out, err) = run_with_stdin(&promtool, &["check", "metrics"], text);
    Some(if ok && out.trim().is_empty() && err.trim().is_empty() {
        String::new()
    } else {
        format!("promtool check metrics failed:\n{out}{err}")
    })
}

/// `promtool check rules FILE`: `Some("")` when Prometheus' parser accepts
/// every rule, `Some(problems)` otherwise, `None` when promtool is absent.
pub fn promtool_rules_problems(file: &Path) -> Option<String> {
    let Some(promtool) = find_program("promtool") else {
        missing("promtool (Debian package prometheus)");
        return None;
    };
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(file)
        .output()
        .expect("run promtool check rules");
    Some(if out.status.success() {
        String::new()
    } else {
        format!(
            "promtool check rules failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A Python that can import `prometheus_client`: `python3` on PATH, then
/// Debian's (python3-prometheus-client installs into /usr/bin/python3's path).
fn python() -> Option<PathBuf> {
    [
        find_program("python3"),
        Some(PathBuf::from("/usr/bin/python3")),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        Command::new(p)
            .args(["-c", "import prometheus_client"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Which parser of the Python `prometheus_client` to run.
#[derive(Debug, Clone, Copy)]
pub enum PyParser {
    /// `prometheus_client.openmetrics.parser` (strict: checks histograms,
    /// `# EOF`, counter suffixes).
    OpenMetrics,
    /// `prometheus_client.parser` (text format 0.0.4).
    Text,
}

const PY_SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
from prometheus_client.parser import text_string_to_metric_families as text
parse = om if sys.argv[1] == "openmetrics" else text
for family in parse(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps([family.type, s.name, s.labels, repr(float(s.value))]))
"#;

/// Parses `text` with the chosen Python parser: `Some(Ok(samples))` with
/// every (family type, sample) it read, `Some(Err(message))` when it refused
/// the text, `None` when the Python package is absent.
pub fn python_parse(text: &str, parser: PyParser) -> Option<Result<Vec<(String, Sample)>, String>> {
    let Some(python) = python() else {
        missing("python3 prometheus_client (Debian package python3-prometheus-client)");
        return None;
    };
    let which = match parser {
        PyParser::OpenMetrics => "openmetrics",
        PyParser::Text => "text",
    };
    let (ok, out, err) = run_with_stdin(&python, &["-c", PY_SCRIPT, which], text);
    if !ok {
        return Some(Err(err));
    }
    Some(Ok(out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("parser output is JSON");
            let labels = v[2]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let value: f64 = v[3].as_str().and_then(|t| t.parse().ok()).expect("value");
            let sample = Sample {
                name: v[1].as_str().unwrap_or_default().to_owned(),
                labels,
                value,
            };
            (v[0].as_str().unwrap_or_default().to_owned(), sample)
        })
        .collect()))
}
