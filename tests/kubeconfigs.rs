//! The kubeconfigs users have, each against a test apiserver with the real
//! `crossdns` binary: an exec credential plugin whose token expires (a
//! stand-in for `aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`),
//! client certificates inline and in files (kubeadm), `tokenFile` with a
//! `certificate-authority` file and `tls-server-name`, and an in-cluster
//! service account. A kubeconfig that cannot work gets one clear error from
//! `crossdns check`, naming the cluster and the cause.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::{Crossdns, addresses, ip, query_udp, wait_for};
use fake_apiserver::{FakeApiServer, Options};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const SYNC: Duration = Duration::from_secs(30);

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn service(name: &str, addr: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": addr, "clusterIPs": [addr], "ports": [{"name": "http", "port": 80}]},
    })
}

/// A kubeconfig (YAML via JSON) with one cluster and user named `name`.
fn kubeconfig(name: &str, cluster: Value, user: Value) -> String {
    let doc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    });
    serde_yaml_ng::to_string(&doc).expect("yaml")
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_path_buf()
}

/// The config body for clusters `(name, kubeconfig path)`, zone `cluster.NAME`.
fn clusters(list: &[(&str, &Path)]) -> String {
    let mut rest = "allow: [\"127.0.0.0/8\"]\nclusters:\n".to_owned();
    for (name, kc) in list {
        rest.push_str(&format!(
            "  - name: {name}\n    zone: cluster.{name}\n    kubeconfig: {}\n",
            kc.display()
        ));
    }
    rest
}

async fn until_answers(dns: std::net::SocketAddr, name: &str, want: &str, within: Duration) {
    let want = vec![ip(want)];
    let mut last = Vec::new();
    let ok = wait_for(within, async || {
        last = addresses(&query_udp(dns, name, RecordType::A).await);
        last == want
    })
    .await;
    assert!(
        ok.is_some(),
        "{name} never answered {want:?} within {within:?}; last {last:?}"
    );
}

fn check(config: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crossdns"))
        .args(["check", "--config"])
        .arg(config)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run crossdns check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A stand-in exec credential plugin: prints an ExecCredential
/// (client.authentication.k8s.io/v1) with the token in `token` and an
/// expiry `valid_secs` from now, and appends a line to `calls` each run.
fn exec_plugin(dir: &Path, valid_secs: u32) -> PathBuf {
    let script = format!(
        r#"#!/bin/sh
echo run >> "{dir}/calls"
exp=$(date -u -d "+{valid_secs} seconds" +%Y-%m-%dT%H:%M:%SZ)
printf '{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"%s","expirationTimestamp":"%s"}}}}\n' "$(cat "{dir}/token")" "$exp"
"#,
        dir = dir.display()
    );
    let path = write(&dir.join("get-token"), &script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn calls(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("calls"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_plugin_token_is_refreshed_when_it_expires() {
    let _serial = common::SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FakeApiServer::start().await.expect("apiserver");
    server.apply(service("web", "10.1.0.1")).expect("apply");
    write(&dir.path().join("token"), &server.accepted_token());
    // Expiring 61 s out: kube refreshes a token in its last 60 s, so every
    // request after the first second runs the plugin again.
    let plugin = exec_plugin(dir.path(), 61);
    let kc = write(
        &dir.path().join("eks.kubeconfig"),
        &kubeconfig(
            "eks",
            json!({"server": server.url(), "certificate-authority-data": b64(server.ca_pem())}),
            json!({"exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": plugin.display().to_string(),
                "args": ["eks", "get-token", "--cluster-name", "test"],
                "interactiveMode": "Never",
            }}),
        ),
    );
    let config = write(&dir.path().join("check.yaml"), &clusters(&[("eks", &kc)]));
    let (ok, err) = check(&config);
    assert!(ok, "a working exec kubeconfig passes check: {err}");
    let crossdns = Crossdns::start(dir.path(), &clusters(&[("eks", &kc)])).await;
    crossdns.wait_ready(SYNC).await;
    until_answers(
        crossdns.dns,
        "web.default.svc.cluster.eks",
        "10.1.0.1",
        SYNC,
    )
    .await;
    // Expiry, not refusal, drives the refresh: the plugin runs again while
    // the apiserver has refused nothing.
    let first = calls(dir.path());
    let refreshed = wait_for(Duration::from_secs(15), async || {
        calls(dir.path()) >= first + 2
    })
    .await;
    assert!(
        refreshed.is_some(),
        "the plugin ran {} times; an expiring token must be refreshed",
        calls(dir.path())
    );
    assert_eq!(
        server.stats().auth_failures,
        0,
        "no request was refused on the way"
    );
    // The plugin now hands out a new token and the old one is revoked: the
    // next refresh carries it, and changes keep arriving.
    write(&dir.path().join("token"), "rotated-by-the-plugin");
    server.set_token("rotated-by-the-plugin");
    server.drop_watches();
    server.apply(service("after", "10.1.0.2")).expect("apply");
    until_answers(
        crossdns.dns,
        "after.default.svc.cluster.eks",
        "10.1.0.2",
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_inline_and_in_files_authenticate() {
    let _serial = common::SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FakeApiServer::start().await.expect("apiserver");
    server.apply(service("web", "10.1.0.1")).expect("apply");
    let (cert, key) = server.client_cert("kubernetes-admin").expect("client cert");
    let inline = write(
        &dir.path().join("inline.kubeconfig"),
        &kubeconfig(
            "inline",
            json!({"server": server.url(), "certificate-authority-data": b64(server.ca_pem())}),
            json!({"client-certificate-data": b64(&cert), "client-key-data": b64(&key)}),
        ),
    );
    write(&dir.path().join("admin.crt"), &cert);
    write(&dir.path().join("admin.key"), &key);
    write(&dir.path().join("ca.crt"), server.ca_pem());
    // Relative paths are read against the kubeconfig's folder.
    let files = write(
        &dir.path().join("files.kubeconfig"),
        &kubeconfig(
            "files",
            json!({"server": server.url(), "certificate-authority": "ca.crt"}),
            json!({"client-certificate": "admin.crt", "client-key": "admin.key"}),
        ),
    );
    let rest = clusters(&[("inline", &inline), ("files", &files)]);
    let (ok, err) = check(&write(&dir.path().join("check.yaml"), &rest));
    assert!(ok, "{err}");
    let crossdns = Crossdns::start(dir.path(), &rest).await;
    crossdns.wait_ready(SYNC).await;
    for zone in ["inline", "files"] {
        until_answers(
            crossdns.dns,
            &format!("web.default.svc.cluster.{zone}"),
            "10.1.0.1",
            SYNC,
        )
        .await;
    }
    assert_eq!(server.stats().auth_failures, 0, "no token was needed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_with_a_ca_file_and_tls_server_name_works_and_without_the_name_tls_fails() {
    let _serial = common::SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A certificate for the in-cluster name only, not for 127.0.0.1.
    let server = FakeApiServer::start_with(Options {
        cert_names: Some(vec!["kubernetes.default.svc".to_owned()]),
        ..Options::default()
    })
    .await
    .expect("apiserver");
    server.apply(service("web", "10.1.0.1")).expect("apply");
    write(&dir.path().join("token"), &server.accepted_token());
    write(&dir.path().join("ca.crt"), server.ca_pem());
    let named = write(
        &dir.path().join("named.kubeconfig"),
        &kubeconfig(
            "named",
            json!({"server": server.url(), "certificate-authority": dir.path().join("ca.crt"),
                   "tls-server-name": "kubernetes.default.svc"}),
            json!({"tokenFile": dir.path().join("token")}),
        ),
    );
    let unnamed = write(
        &dir.path().join("unnamed.kubeconfig"),
        &kubeconfig(
            "unnamed",
            json!({"server": server.url(), "certificate-authority": dir.path().join("ca.crt")}),
            json!({"tokenFile": dir.path().join("token")}),
        ),
    );
    let crossdns = Crossdns::start(
        dir.path(),
        &clusters(&[("named", &named), ("unnamed", &unnamed)]),
    )
    .await;
    until_answers(
        crossdns.dns,
        "web.default.svc.cluster.named",
        "10.1.0.1",
        SYNC,
    )
    .await;
    let tls = wait_for(Duration::from_secs(15), async || {
        crossdns
            .metric("crossdns_cluster_failing{cluster=\"unnamed\",cause=\"tls\"}")
            .await
            == Some(1.0)
    })
    .await;
    assert!(
        tls.is_some(),
        "without tls-server-name the certificate does not match:\n{}",
        crossdns.metrics().await
    );
    let m = query_udp(
        crossdns.dns,
        "web.default.svc.cluster.unnamed",
        RecordType::A,
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "never synced: {m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_cluster_service_account_is_used_when_no_kubeconfig_is_given() {
    let _serial = common::SERIAL.lock().await;
    // The service account files live at a fixed path; a private mount
    // namespace with a tmpfs on /run puts them there for crossdns alone.
    let probe = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run",
        ])
        .stdin(Stdio::null())
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED: an_in_cluster_service_account...: cannot make a private mount namespace here (needs root and unshare)"
        );
        return;
    }
    common::init_tls();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FakeApiServer::start().await.expect("apiserver");
    server.apply(service("web", "10.1.0.1")).expect("apply");
    write(&dir.path().join("token"), &server.accepted_token());
    write(&dir.path().join("ca.crt"), server.ca_pem());
    write(&dir.path().join("namespace"), "crossdns");
    let dns_port = common::free_dns_port();
    let admin_port = common::free_tcp_port();
    let config = write(
        &dir.path().join("crossdns.yaml"),
        &format!(
            "dns:\n  listen: [\"127.0.0.1:{dns_port}\"]\nadmin:\n  listen: \"127.0.0.1:{admin_port}\"\nallow: [\"127.0.0.0/8\"]\nclusters:\n  - name: local\n    zone: cluster.local\n"
        ),
    );
    let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
    let sa = "/run/secrets/kubernetes.io/serviceaccount";
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs tmpfs /run && mkdir -p {sa} && cp \"$0\"/token \"$0\"/ca.crt \"$0\"/namespace {sa}/ && exec \"$1\" serve --config \"$2\""
        ))
        .arg(dir.path())
        .arg(env!("CARGO_BIN_EXE_crossdns"))
        .arg(&config)
        .env_remove("KUBECONFIG")
        .env("HOME", dir.path())
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", server.addr().port().to_string())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn crossdns in a mount namespace");
    let dns = std::net::SocketAddr::from(([127, 0, 0, 1], dns_port));
    let answered = wait_for(SYNC, async || {
        addresses(&query_udp(dns, "web.default.svc.cluster.local", RecordType::A).await)
            == vec![ip("10.1.0.1")]
    })
    .await;
    let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        answered.is_some(),
        "in-cluster crossdns never answered:\n{log}"
    );
}

#[tokio::test]
async fn check_names_the_cluster_and_the_cause_of_a_kubeconfig_that_cannot_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let server = "https://127.0.0.1:1";
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "eks",
            json!({"server": server, "certificate-authority-data": b64(ca)}),
            json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws-no-such-binary",
                            "args": ["eks", "get-token"], "installHint": "install the AWS CLI", "interactiveMode": "Never"}}),
            "exec credential plugin \"aws-no-such-binary\" is not an executable file on PATH (install the AWS CLI)",
        ),
        (
            "tokenfile",
            json!({"server": server, "certificate-authority-data": b64(ca)}),
            json!({"tokenFile": dir.path().join("no-such-token").display().to_string()}),
            "tokenFile",
        ),
        (
            "cafile",
            json!({"server": server, "certificate-authority": dir.path().join("no-such-ca.crt").display().to_string()}),
            json!({"token": "t"}),
            "certificate-authority",
        ),
        (
            "certs",
            json!({"server": server, "certificate-authority-data": b64(ca)}),
            json!({"client-certificate": "missing.crt", "client-key": "missing.key"}),
            "client-certificate",
        ),
    ];
    for (name, cluster, user, cause) in cases {
        let kc = write(
            &dir.path().join(format!("{name}.kubeconfig")),
            &kubeconfig(name, cluster, user),
        );
        let config = write(
            &dir.path().join(format!("{name}.yaml")),
            &clusters(&[(name, &kc)]),
        );
        let (ok, err) = check(&config);
        assert!(!ok, "{name}: check must fail");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: one clear error, got:\n{err}");
        assert!(
            lines[0].starts_with(&format!(
                "error: cluster {name}: kubeconfig {}",
                kc.display()
            )),
            "{name}: names the cluster and the kubeconfig: {err}"
        );
        assert!(
            lines[0].contains(cause),
            "{name}: names the cause ({cause}): {err}"
        );
    }
}
