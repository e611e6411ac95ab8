//! Real kubectl (oldest and newest versioned binaries found beside `kubectl`) against the fake.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, service};
use fake_apiserver::FakeApiServer;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

/// `kubectl.1.N` files beside the resolved `kubectl`, sorted by minor version.
fn versioned_kubectls() -> Vec<(u32, PathBuf)> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    let Some(kubectl) = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
    else {
        return Vec::new();
    };
    let Some(dir) = std::fs::canonicalize(&kubectl)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let minor = name.strip_prefix("kubectl.1.")?.parse().ok()?;
                    Some((minor, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(Duration::from_secs(30), self.command(args).output())
            .await
            .expect("kubectl finishes within 30s")
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `kubectl wait <condition> <object> -n default --timeout=20s`
    /// and returns once it has opened its watch on `server`, so that a change
    /// made next happens while kubectl is actually waiting.
    async fn start_wait(&self, server: &FakeApiServer, condition: &str, object: &str) -> Child {
        let watches = server.stats().watches_started;
        let child = self
            .command(&["wait", condition, object, "-n", "default", "--timeout=20s"])
            .spawn()
            .expect("kubectl wait starts");
        eventually(15, "kubectl wait opens a watch", || {
            server.stats().watches_started > watches
        })
        .await;
        child
    }

    async fn expect_success(&self, child: Child, what: &str) {
        let out = tokio::time::timeout(Duration::from_secs(25), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{what}: kubectl did not finish"))
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "{what} with {} failed: {}{}",
            self.bin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every JSON value in a (possibly partial) concatenated stream.
fn json_values(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .collect()
}

fn has_event(text: &str, kind: &str, name: &str, cluster_ip: &str) -> bool {
    json_values(text).iter().any(|e| {
        e["type"] == kind
            && e["object"]["metadata"]["name"] == name
            && e["object"]["spec"]["clusterIP"] == cluster_ip
    })
}

async fn check_one(minor: u32, bin: &Path) {
    eprintln!(
        "checking fake-apiserver against kubectl 1.{minor} ({})",
        bin.display()
    );
    let server = common::server_with(&[
        ("default", "x", "10.0.0.1"),
        ("kube-system", "dns", "10.0.0.10"),
        ("default", "gone", "10.0.0.2"),
    ])
    .await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let kubectl = Kubectl {
        bin: bin.to_path_buf(),
        kubeconfig: tmp.path().join("kubeconfig"),
        home: tmp.path().join("home"),
    };
    std::fs::create_dir(&kubectl.home).expect("home dir");
    server
        .write_kubeconfig(&kubectl.kubeconfig, "fake")
        .expect("kubeconfig written");

    // (a) list across namespaces.
    let out = kubectl
        .run(&[
            "get",
            "services",
            "-A",
            "-o",
            "json",
            "--request-timeout=10s",
        ])
        .await;
    let list: Value = serde_json::from_str(&out).expect("kubectl prints JSON");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["gone", "x", "dns"],
        "kubectl 1.{minor} lists every Service"
    );

    // (b) watch with events.
    let mut child = kubectl
        .command(&[
            "get",
            "services",
            "-n",
            "default",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .spawn()
        .expect("kubectl watch starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let seen = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&seen);
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let text = || seen.lock().expect("lock").clone();
    eventually(15, "kubectl watch prints the initial ADDED x", || {
        has_event(&text(), "ADDED", "x", "10.0.0.1")
    })
    .await;
    server
        .apply(service("default", "x", "10.0.0.5"))
        .expect("modify x");
    eventually(10, "kubectl watch prints MODIFIED x", || {
        has_event(&text(), "MODIFIED", "x", "10.0.0.5")
    })
    .await;
    child.start_kill().expect("kill kubectl watch");
    let _ = child.wait().await;
    reader.abort();

    // (c) wait --for=delete, while kubectl is actually waiting.
    let wait_delete = kubectl
        .start_wait(&server, "--for=delete", "service/gone")
        .await;
    assert!(server.delete("v1", "Service", Some("default"), "gone"));
    kubectl
        .expect_success(wait_delete, "wait --for=delete")
        .await;

    // (c) wait --for=jsonpath, satisfied by a change made while waiting.
    let wait_ip = kubectl
        .start_wait(
            &server,
            "--for=jsonpath={.spec.clusterIP}=10.0.0.9",
            "service/x",
        )
        .await;
    server
        .apply(service("default", "x", "10.0.0.9"))
        .expect("modify x");
    kubectl.expect_success(wait_ip, "wait --for=jsonpath").await;

    // (d) writes in the REST shape: create, replace, merge patch, delete.
    let file = tmp.path().join("made.json");
    let made = |ip: &str| serde_json::to_string(&service("default", "made", ip)).expect("json");
    std::fs::write(&file, made("10.0.0.21")).expect("write manifest");
    let path = file.display().to_string();
    kubectl
        .run(&["create", "-f", &path, "--validate=false"])
        .await;
    let ip_of = || {
        server
            .get("v1", "Service", Some("default"), "made")
            .map(|s| s["spec"]["clusterIP"].clone())
    };
    assert_eq!(
        ip_of(),
        Some(Value::from("10.0.0.21")),
        "kubectl 1.{minor} create"
    );
    std::fs::write(&file, made("10.0.0.22")).expect("write manifest");
    kubectl
        .run(&["replace", "-f", &path, "--validate=false"])
        .await;
    assert_eq!(
        ip_of(),
        Some(Value::from("10.0.0.22")),
        "kubectl 1.{minor} replace"
    );
    kubectl
        .run(&[
            "patch",
            "service",
            "made",
            "-n",
            "default",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"patched":"yes"}}}"#,
        ])
        .await;
    let labels = server
        .get("v1", "Service", Some("default"), "made")
        .map(|s| s["metadata"]["labels"].clone());
    assert_eq!(
        labels,
        Some(serde_json::json!({"app": "made", "patched": "yes"})),
        "kubectl 1.{minor} patch --type=merge"
    );
    kubectl
        .run(&["delete", "service", "made", "-n", "default"])
        .await;
    assert_eq!(ip_of(), None, "kubectl 1.{minor} delete");
}

#[tokio::test]
async fn oldest_and_newest_real_kubectl_list_watch_and_wait_against_the_fake() {
    let found = versioned_kubectls();
    let (Some(oldest), Some(newest)) = (found.first(), found.last()) else {
        eprintln!(
            "SKIPPED: no kubectl.1.* binaries found beside kubectl; fake-apiserver was not checked against real kubectl"
        );
        return;
    };
    check_one(oldest.0, &oldest.1).await;
    if newest.0 != oldest.0 {
        check_one(newest.0, &newest.1).await;
    }
}
