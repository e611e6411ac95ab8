//! Every crossdns config shipped in `configs/` and `examples/` parses and
//! validates, and every Kubernetes manifest folder a config points at loads
//! through the manifests source without a skipped object. A typo in a
//! shipped file fails CI here, not on a user's machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use crossdns::config::{Settings, Source};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// A crossdns config is a YAML mapping with a top-level `clusters` key.
fn is_crossdns_config(text: &str) -> bool {
    serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
        .ok()
        .and_then(|v| v.get("clusters").cloned())
        .is_some()
}

fn shipped() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    yaml_files(&root.join("configs"), &mut files);
    yaml_files(&root.join("examples"), &mut files);
    files.sort();
    files
}

#[test]
fn every_shipped_crossdns_config_validates() {
    let mut configs = 0;
    for path in shipped() {
        let text = std::fs::read_to_string(&path).expect("read");
        if !is_crossdns_config(&text) {
            continue;
        }
        configs += 1;
        let settings = Settings::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for c in &settings.clusters {
            if let Source::Manifests(dir) = &c.source {
                assert!(
                    dir.is_dir(),
                    "{}: cluster {} manifests {}",
                    path.display(),
                    c.name,
                    dir.display()
                );
            }
        }
    }
    assert!(configs >= 1, "configs/demo.yaml at least");
}

#[test]
fn every_shipped_kubernetes_manifest_loads() {
    // Kubernetes YAML (not crossdns configs, not the deployment manifests,
    // which tests/kubernetes_manifests.rs checks against k8s-openapi).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    let mut objects = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        if is_crossdns_config(&text) {
            continue;
        }
        let parsed = crossdns::watch::parse_documents(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            parsed.skipped.is_empty(),
            "{}: {:?}",
            path.display(),
            parsed.skipped
        );
        objects += parsed.objects.len();
    }
    assert!(
        objects > 10,
        "the demo ships a real set of objects, got {objects}"
    );
}

#[test]
fn check_prints_the_zone_table_and_exits_zero_for_the_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_crossdns"))
        .args(["check", "--config"])
        .arg(root.join("configs/demo.yaml"))
        .output()
        .expect("run crossdns check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("cluster.region1") && stdout.contains("cluster.region2"),
        "{stdout}"
    );
}

#[test]
fn check_names_the_bad_key_and_exits_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "clusters:\n  - {name: a, zone: \"bad zone\", manifests: .}\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_crossdns"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("run crossdns check");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("clusters[0].zone: \"bad zone\""),
        "{stderr}"
    );
}
