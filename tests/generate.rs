//! `crossdns generate ...` end to end: the real binary against the configs
//! and manifests folders in tests/golden/, compared with golden files.
//! `UPDATE_GOLDEN=1 cargo test --test generate` rewrites the goldens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::ConfigMap;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn crossdns(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crossdns"))
        .args(args)
        .env("CROSSDNS_LOG", "warn")
        .output()
        .expect("run crossdns")
}

/// Runs `crossdns generate <args>`, which must succeed, and returns stdout.
fn generate(args: &[&str]) -> String {
    let mut all = vec!["generate"];
    all.extend_from_slice(args);
    let out = crossdns(&all);
    assert!(
        out.status.success(),
        "crossdns {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `crossdns generate <args>`, which must fail with exit 1, and returns stderr.
fn generate_fails(args: &[&str]) -> String {
    let mut all = vec!["generate"];
    all.extend_from_slice(args);
    let out = crossdns(&all);
    assert_eq!(
        out.status.code(),
        Some(1),
        "crossdns {all:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "a failure prints nothing to stdout");
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

fn config(name: &str) -> String {
    golden_dir().join(name).display().to_string()
}

/// `<sub> --config <config> --cluster <cluster> --address <address>`
/// (`coredns` or `kube-dns`).
fn for_cluster<'a>(
    sub: &'a str,
    config: &'a str,
    cluster: &'a str,
    address: &'a str,
) -> Vec<&'a str> {
    vec![
        sub,
        "--config",
        config,
        "--cluster",
        cluster,
        "--address",
        address,
    ]
}

/// `<sub> --config <config> --statefulset <statefulset> <extra...>` (`join`
/// or `sans`).
fn for_statefulset<'a>(
    sub: &'a str,
    config: &'a str,
    statefulset: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![sub, "--config", config, "--statefulset", statefulset];
    args.extend_from_slice(extra);
    args
}

/// A temporary copy of the golden `config.yaml` and its `clusters/`, to be
/// changed by the test; returns the folder and the config's path.
fn golden_copy() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&golden_dir().join("clusters"), &dir.path().join("clusters"));
    let cfg = dir.path().join("config.yaml");
    std::fs::copy(golden_dir().join("config.yaml"), &cfg).expect("copy config");
    let cfg = cfg.display().to_string();
    (dir, cfg)
}

fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        actual,
        want,
        "output differs from {} (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

fn stub_domains(configmap_yaml: &str) -> BTreeMap<String, Vec<String>> {
    let cm: ConfigMap = serde_yaml_ng::from_str(configmap_yaml).expect("a ConfigMap");
    assert_eq!(cm.metadata.name.as_deref(), Some("kube-dns"));
    assert_eq!(cm.metadata.namespace.as_deref(), Some("kube-system"));
    let data = cm.data.expect("data");
    serde_json::from_str(&data["stubDomains"]).expect("stubDomains is a JSON object")
}

#[test]
fn coredns_forwards_every_other_zone() {
    let c = config("config.yaml");
    let out = generate(&for_cluster("coredns", &c, "region1", "10.0.0.53"));
    check_golden("coredns.txt", &out);
}

#[test]
fn coredns_force_tcp_adds_the_option_to_every_block() {
    let c = config("config.yaml");
    let mut args = for_cluster("coredns", &c, "region1", "10.0.0.53:5353");
    args.push("--force-tcp");
    let out = generate(&args);
    check_golden("coredns-force-tcp.txt", &out);
}

#[test]
fn coredns_over_tls_names_the_server() {
    let c = config("config.yaml");
    let out = generate(&for_cluster(
        "coredns",
        &c,
        "region2",
        "tls://10.0.0.53:853#crossdns.example.com",
    ));
    check_golden("coredns-tls.txt", &out);
}

#[test]
fn kube_dns_configmap_lists_every_other_zone() {
    let c = config("config.yaml");
    let out = generate(&for_cluster("kube-dns", &c, "region1", "10.0.0.53"));
    check_golden("kube-dns.yaml", &out);
    let stubs = stub_domains(&out);
    assert_eq!(
        stubs.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "cluster.region2",
            "cluster.region3",
            "clusterset.local",
            "corp.example"
        ]
    );
    assert!(stubs.values().all(|v| v == &["10.0.0.53"]));
}

#[test]
fn kube_dns_refuses_dns_over_tls() {
    let c = config("config.yaml");
    let err = generate_fails(&for_cluster(
        "kube-dns",
        &c,
        "region1",
        "tls://10.0.0.53:853#x.example",
    ));
    assert!(err.contains("kube-dns") && err.contains("TLS"), "{err}");
}

#[test]
fn unknown_cluster_is_an_error_naming_it() {
    let c = config("config.yaml");
    for sub in ["coredns", "kube-dns"] {
        let err = generate_fails(&for_cluster(sub, &c, "region9", "10.0.0.53"));
        assert!(err.contains("region9") && err.contains("region1"), "{err}");
    }
}

#[test]
fn bad_address_is_an_error() {
    let c = config("config.yaml");
    let err = generate_fails(&for_cluster("coredns", &c, "region1", "dns.example"));
    assert!(
        err.contains("--address") && err.contains("dns.example"),
        "{err}"
    );
}

#[test]
fn join_lists_every_replica_per_cluster_as_bare_names_or_with_a_port() {
    let c = config("config.yaml");
    let bare = generate(&for_statefulset("join", &c, "default/cockroachdb", &[]));
    check_golden("join.txt", &bare);
    assert!(!bare.contains(':'), "no port without --port: {bare}");
    let with_port = generate(&for_statefulset(
        "join",
        &c,
        "default/cockroachdb",
        &["--port", "26257"],
    ));
    let want: Vec<String> = bare
        .trim_end()
        .split(',')
        .map(|n| format!("{n}:26257"))
        .collect();
    assert_eq!(with_port, format!("{}\n", want.join(",")));
}

#[test]
fn join_in_clusterset_style_with_a_custom_port() {
    let c = config("config.yaml");
    let out = generate(&for_statefulset(
        "join",
        &c,
        "default/cockroachdb",
        &["--port", "26258", "--zone-style", "clusterset"],
    ));
    check_golden("join-clusterset.txt", &out);
}

#[test]
fn join_clusterset_style_without_a_clusterset_zone_fails() {
    let c = config("shared.yaml");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(&c).expect("read");
    let cut = text.find("clusterset:").expect("clusterset in shared.yaml");
    let no_cs = dir.path().join("shared.yaml");
    std::fs::write(&no_cs, &text[..cut]).expect("write");
    copy_dir(&golden_dir().join("clusters"), &dir.path().join("clusters"));
    let err = generate_fails(&for_statefulset(
        "join",
        &no_cs.display().to_string(),
        "*/cockroachdb",
        &["--zone-style", "clusterset"],
    ));
    assert!(err.contains("clusterset.zone"), "{err}");
}

#[test]
fn unknown_statefulset_is_an_error_naming_it() {
    let c = config("config.yaml");
    let err = generate_fails(&for_statefulset("join", &c, "default/nope", &[]));
    assert!(err.contains("default/nope"), "{err}");
    let err = generate_fails(&for_statefulset("sans", &c, "default/nope", &[]));
    assert!(err.contains("default/nope"), "{err}");
    let err = generate_fails(&for_statefulset("join", &c, "nope", &[]));
    assert!(err.contains("NAMESPACE/NAME"), "{err}");
}

#[test]
fn sans_cover_replicas_services_and_clusterset_names() {
    let c = config("config.yaml");
    let out = generate(&for_statefulset("sans", &c, "default/cockroachdb", &[]));
    check_golden("sans.txt", &out);
    let lines: Vec<&str> = out.lines().collect();
    let mut unique = lines.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "SANs are deduplicated");
}

#[test]
fn shared_zone_forwards_the_other_clusters_namespaces() {
    let c = config("shared.yaml");
    let out = generate(&for_cluster("coredns", &c, "us-east1", "10.0.0.53"));
    check_golden("shared-coredns.txt", &out);
    assert!(
        !out.contains("\ncluster.local:53"),
        "the shared zone itself stays local: {out}"
    );
    let out = generate(&for_cluster("kube-dns", &c, "us-west1", "10.0.0.53"));
    check_golden("shared-kube-dns.yaml", &out);
    assert_eq!(
        stub_domains(&out)
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["clusterset.local", "us-east1.svc.cluster.local"]
    );
}

#[test]
fn shared_zone_join_and_sans_span_the_namespaces() {
    let c = config("shared.yaml");
    let out = generate(&for_statefulset("join", &c, "*/cockroachdb", &[]));
    check_golden("shared-join.txt", &out);
    let out = generate(&for_statefulset("sans", &c, "*/cockroachdb", &[]));
    check_golden("shared-sans.txt", &out);
    // One namespace names one cluster's copy only.
    let out = generate(&for_statefulset(
        "join",
        &c,
        "us-west1/cockroachdb",
        &["--port", "26257"],
    ));
    assert_eq!(out.trim_end().split(',').count(), 3, "{out}");
    assert!(
        out.contains("cockroachdb-0.cockroachdb.us-west1.svc.cluster.local:26257"),
        "{out}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn join_follows_a_scaled_statefulset() {
    let (dir, cfg) = golden_copy();
    let per_cluster = |out: &str, zone: &str| {
        out.trim_end()
            .split(',')
            .filter(|n| n.contains(zone))
            .count()
    };

    let port = ["--port", "26257"];
    let before = generate(&for_statefulset("join", &cfg, "default/cockroachdb", &port));
    assert_eq!(per_cluster(&before, ".cluster.region1:"), 3);
    assert_eq!(per_cluster(&before, ".cluster.region2:"), 3);

    for region in ["region1", "region2"] {
        let file = dir
            .path()
            .join(format!("clusters/{region}/cockroachdb.yaml"));
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(text.contains("replicas: 3"));
        std::fs::write(&file, text.replace("replicas: 3", "replicas: 5")).expect("write");
    }
    let after = generate(&for_statefulset("join", &cfg, "default/cockroachdb", &port));
    assert_eq!(per_cluster(&after, ".cluster.region1:"), 5, "{after}");
    assert_eq!(per_cluster(&after, ".cluster.region2:"), 5, "{after}");
    assert!(
        after.contains("cockroachdb-4.cockroachdb.default.svc.cluster.region2:26257"),
        "{after}"
    );
    let sans = generate(&for_statefulset("sans", &cfg, "default/cockroachdb", &[]));
    assert!(
        sans.contains("\ncockroachdb-4.region1.cockroachdb.default.svc.clusterset.local\n"),
        "{sans}"
    );
}

#[test]
fn a_service_opted_out_of_the_clusterset_gets_no_clusterset_names() {
    let (dir, cfg) = golden_copy();
    let file = dir.path().join("clusters/region2/cockroachdb.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    let governing = "metadata: {name: cockroachdb, namespace: default}\nspec:\n  clusterIP: None";
    assert!(text.contains(governing), "{text}");
    let opted_out = governing.replace(
        "namespace: default}",
        "namespace: default, annotations: {crossdns.io/export: \"false\"}}",
    );
    std::fs::write(&file, text.replace(governing, &opted_out)).expect("write");

    let sans = generate(&for_statefulset("sans", &cfg, "default/cockroachdb", &[]));
    assert!(
        sans.contains("\ncockroachdb-0.cockroachdb.default.svc.cluster.region2\n"),
        "per-cluster names stay: {sans}"
    );
    assert!(
        sans.contains("\ncockroachdb-0.region1.cockroachdb.default.svc.clusterset.local\n"),
        "{sans}"
    );
    assert!(
        !sans.contains(".region2.cockroachdb.default.svc.clusterset.local"),
        "region2's replicas have no clusterset names: {sans}"
    );
    let join = generate(&for_statefulset(
        "join",
        &cfg,
        "default/cockroachdb",
        &["--zone-style", "clusterset"],
    ));
    assert!(!join.contains(".region2."), "{join}");
    assert!(join.contains("cockroachdb-2.region1."), "{join}");
}

#[test]
fn unreachable_cluster_times_out_naming_the_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Port 1 on loopback: nothing listens, so every connect is refused.
    let kubeconfig = "apiVersion: v1
kind: Config
clusters: [{name: far, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: far, context: {cluster: far, user: u}}]
current-context: far
";
    std::fs::write(dir.path().join("far.kubeconfig"), kubeconfig).expect("write");
    copy_dir(&golden_dir().join("clusters"), &dir.path().join("clusters"));
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "clusters:
  - {name: region1, zone: cluster.region1, manifests: clusters/region1/}
  - {name: faraway, zone: cluster.faraway, kubeconfig: far.kubeconfig}
",
    )
    .expect("write config");
    let started = std::time::Instant::now();
    let err = generate_fails(&for_statefulset(
        "join",
        &cfg.display().to_string(),
        "default/cockroachdb",
        &["--timeout", "2s"],
    ));
    assert!(
        err.contains("faraway") && err.contains("did not sync"),
        "{err}"
    );
    assert!(
        !err.contains("region1 "),
        "only the unreachable cluster is named: {err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
