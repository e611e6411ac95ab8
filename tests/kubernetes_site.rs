//! Site mode (design.md §7) as shipped in configs/kubernetes-site/: the
//! overlay builds with the real `kubectl kustomize` (skipped loudly where no
//! kubectl is installed), every resource parses strictly, and the files
//! agree: the site watches only its own apiserver, every other zone comes
//! from a `primary:` over TLS signed with the transfer key, no kubeconfig is
//! mounted, the TSIG Secret is mounted where the config reads it, and the
//! NetworkPolicy admits NOTIFY and transfers from exactly the peers the
//! config allows.

mod k8s_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use crossdns::config::{Settings, Source, Upstream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_support::{documents, documents_of, strict};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/kubernetes-site")
}

fn one<T: serde::de::DeserializeOwned + serde::Serialize>(file: &str) -> T {
    let docs = documents(&dir().join(file));
    assert_eq!(docs.len(), 1, "{file}: one document");
    strict(file, &docs[0])
}

/// The site config with its files (TSIG secret from the Secret, TLS
/// placeholders) written to a temporary folder.
fn site_settings() -> (Settings, tempfile::TempDir) {
    let cm: ConfigMap = one("configmap.yaml");
    let secret: Secret = one("secret-tsig.yaml");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut text = cm.data.as_ref().expect("data")["config.yaml"].clone();
    for (name, value) in secret.string_data.as_ref().expect("stringData") {
        std::fs::write(tmp.path().join(name), value).expect("write secret");
    }
    for f in ["tls.crt", "tls.key", "ca.crt"] {
        std::fs::write(tmp.path().join(f), "placeholder").expect("write");
    }
    for from in ["/etc/crossdns/tsig/", "/etc/crossdns/tls/"] {
        text = text.replace(from, &format!("{}/", tmp.path().display()));
    }
    let settings = Settings::from_yaml(&text, &tmp.path().join("config.yaml"))
        .unwrap_or_else(|e| panic!("the site config does not validate: {e}"));
    (settings, tmp)
}

#[test]
fn the_site_config_watches_only_its_own_apiserver_and_transfers_the_rest() {
    let (s, _tmp) = site_settings();
    let transfer = s.transfer.as_ref().expect("transfer: configured");
    let key = transfer.key.as_ref().expect("transfers are signed");
    assert!(s.dns.tls.is_some(), "XoT needs dns.tls_listen");
    assert!(!transfer.notify.is_empty() && !transfer.allow.nets().is_empty());
    assert!(transfer.catalog.is_some());
    let mut own = 0;
    for c in &s.clusters {
        match &c.source {
            Source::Kube {
                kubeconfig: None, ..
            } => own += 1,
            Source::Primary(p) => {
                assert_eq!(
                    p.key.as_ref().map(|k| &k.name),
                    Some(&key.name),
                    "{}",
                    c.name
                );
                assert!(p.tls.ca.is_some(), "{}: the sites' CA is trusted", c.name);
                for server in &p.servers {
                    let Upstream::Tls { addr, .. } = server else {
                        panic!("{}: {server} is not tls://", c.name);
                    };
                    // The peer we transfer from is one we NOTIFY.
                    assert!(
                        transfer.notify.iter().any(|n| n.ip() == addr.ip()),
                        "{}: {addr} is not in transfer.notify",
                        c.name
                    );
                }
            }
            other => panic!("{}: site mode reads no {other}", c.name),
        }
    }
    assert_eq!(own, 1, "exactly one cluster, the site's own, is watched");
}

#[test]
fn the_networkpolicy_admits_notify_and_transfers_from_the_allowed_peers() {
    let (s, _tmp) = site_settings();
    let policy: NetworkPolicy = one("networkpolicy.yaml");
    let allowed: Vec<String> = s
        .transfer
        .as_ref()
        .expect("transfer")
        .allow
        .nets()
        .iter()
        .map(ToString::to_string)
        .collect();
    let ingress = policy.spec.expect("spec").ingress.expect("ingress");
    for cidr in &allowed {
        let rule = ingress
            .iter()
            .find(|r| {
                r.from
                    .iter()
                    .flatten()
                    .any(|p| p.ip_block.as_ref().is_some_and(|b| b.cidr == *cidr))
            })
            .unwrap_or_else(|| panic!("no ingress rule from {cidr}"));
        let ports: Vec<(String, String)> = rule
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.protocol.clone().unwrap_or_default(),
                    serde_json::to_string(&p.port).expect("port"),
                )
            })
            .collect();
        for want in [("UDP", "53"), ("TCP", "853")] {
            assert!(
                ports
                    .iter()
                    .any(|(proto, port)| proto == want.0 && port == want.1),
                "{cidr}: {want:?} not admitted ({ports:?})"
            );
        }
    }
    let svc: Service = one("service-transfer.yaml");
    let ports: Vec<i32> = svc
        .spec
        .expect("spec")
        .ports
        .expect("ports")
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [53, 853]);
}

#[test]
fn the_overlay_builds_with_kubectl_and_mounts_the_key_not_the_kubeconfigs() {
    let Ok(out) = Command::new("kubectl")
        .args(["kustomize"])
        .arg(dir())
        .output()
    else {
        eprintln!("\n!!!!!!!! SKIPPED: no kubectl to build configs/kubernetes-site !!!!!!!!\n");
        return;
    };
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let docs = documents_of(&text, "kustomize output");
    let (s, _tmp) = site_settings();
    let mut deployment = None;
    let mut secrets = Vec::new();
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        match kind {
            "Deployment" => deployment = Some(strict::<Deployment>("Deployment", doc)),
            "Secret" => secrets.push(strict::<Secret>("Secret", doc)),
            "ConfigMap" => {
                let cm = strict::<ConfigMap>("ConfigMap", doc);
                assert!(cm.data.expect("data")["config.yaml"].contains("primary:"));
            }
            _ => {}
        }
    }
    let names: Vec<String> = secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        ["crossdns-tsig"],
        "no kubeconfigs Secret in site mode"
    );
    let spec = deployment
        .expect("a Deployment")
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec");
    let volumes = spec.volumes.expect("volumes");
    assert!(
        volumes.iter().all(|v| v.name != "kubeconfigs"),
        "{volumes:?}"
    );
    let tsig = volumes
        .iter()
        .find(|v| v.name == "tsig")
        .expect("tsig volume");
    assert_eq!(
        tsig.secret.as_ref().and_then(|s| s.secret_name.as_deref()),
        Some("crossdns-tsig")
    );
    let mounts = spec.containers[0].volume_mounts.clone().expect("mounts");
    let key_dir = s.tsig_keys[0].secret_file.parent().expect("dir").to_owned();
    let mounted = mounts
        .iter()
        .find(|m| m.name == "tsig")
        .expect("tsig mounted");
    // The config read the key from /etc/crossdns/tsig/ (rewritten to the
    // temporary folder above): the Secret must be mounted there.
    assert_eq!(mounted.mount_path, "/etc/crossdns/tsig");
    assert!(key_dir.join("sites.key").is_file());
    let tls = volumes
        .iter()
        .find(|v| v.name == "tls")
        .expect("tls volume");
    assert_eq!(tls.secret.as_ref().and_then(|s| s.optional), Some(false));
}
