//! Every manifest in configs/kubernetes/ parses as its k8s-openapi type with
//! no field k8s-openapi does not know (a re-serialized round trip must give
//! back the input), the embedded crossdns config passes strict validation,
//! and the files agree with each other (names, labels, ports, paths).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::Value;

use crossdns::config::{Settings, Source};
use k8s_support::{documents, strict};

mod k8s_support;

/// Files that are deliberately not in kustomization.yaml.
const OPTIONAL: &[&str] = &["service-internal-lb.yaml"];
const KUBECONFIG_DIR: &str = "/etc/crossdns/kubeconfigs/";
const CONFIG_PATH: &str = "/etc/crossdns/config.yaml";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/kubernetes")
}

fn yaml_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("configs/kubernetes exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[derive(Default)]
struct Manifests {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    deployments: Vec<Deployment>,
    services: Vec<(String, Service)>,
    pdbs: Vec<PodDisruptionBudget>,
    network_policies: Vec<NetworkPolicy>,
}

fn load() -> Manifests {
    let mut m = Manifests::default();
    for path in yaml_files() {
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if file == "kustomization.yaml" {
            continue;
        }
        let docs = documents(&path);
        assert!(!docs.is_empty(), "{file}: no documents");
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            match kind.as_str() {
                "Namespace" => m.namespaces.push(strict(&file, &doc)),
                "ServiceAccount" => m.service_accounts.push(strict(&file, &doc)),
                "ClusterRole" => m.cluster_roles.push(strict(&file, &doc)),
                "ClusterRoleBinding" => m.bindings.push(strict(&file, &doc)),
                "ConfigMap" => m.config_maps.push(strict(&file, &doc)),
                "Secret" => m.secrets.push(strict(&file, &doc)),
                "Deployment" => m.deployments.push(strict(&file, &doc)),
                "Service" => m.services.push((file.clone(), strict(&file, &doc))),
                "PodDisruptionBudget" => m.pdbs.push(strict(&file, &doc)),
                "NetworkPolicy" => m.network_policies.push(strict(&file, &doc)),
                other => panic!("{file}: unexpected kind {other:?}"),
            }
        }
    }
    m
}

fn one<'a, T>(what: &str, v: &'a [T]) -> &'a T {
    assert_eq!(v.len(), 1, "expected exactly one {what}");
    &v[0]
}

#[test]
fn every_manifest_parses_strictly_and_every_kind_is_there() {
    let m = load();
    one("Namespace", &m.namespaces);
    one("ServiceAccount", &m.service_accounts);
    one("ClusterRole", &m.cluster_roles);
    one("ClusterRoleBinding", &m.bindings);
    one("ConfigMap", &m.config_maps);
    one("Secret", &m.secrets);
    one("Deployment", &m.deployments);
    one("PodDisruptionBudget", &m.pdbs);
    one("NetworkPolicy", &m.network_policies);
    assert_eq!(
        m.services.len(),
        2,
        "service.yaml and service-internal-lb.yaml"
    );
}

#[test]
fn the_round_trip_check_catches_a_misspelled_field() {
    let doc: Value = serde_yaml_ng::from_str(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n",
    )
    .expect("yaml");
    let result = std::panic::catch_unwind(|| strict::<Service>("typo.yaml", &doc));
    assert!(result.is_err(), "a typo in a field name must fail");
}

#[test]
fn kustomization_lists_every_file_but_the_optional_ones() {
    let k: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dir().join("kustomization.yaml")).expect("read"),
    )
    .expect("yaml");
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect();
    let present: BTreeSet<String> = yaml_files()
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .filter(|f| f != "kustomization.yaml" && !OPTIONAL.contains(&f.as_str()))
        .collect();
    assert_eq!(listed, present);
}

/// The ConfigMap's crossdns config, with the Secret's kubeconfigs written to
/// a temporary folder in place of /etc/crossdns/kubeconfigs.
struct EmbeddedConfig {
    text: String,
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn embedded_config(m: &Manifests) -> EmbeddedConfig {
    let cm = one("ConfigMap", &m.config_maps);
    let text = cm.data.as_ref().expect("data")["config.yaml"].clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let kc_dir = dir.path().join("kubeconfigs");
    std::fs::create_dir(&kc_dir).expect("mkdir");
    let secret = one("Secret", &m.secrets);
    for (name, kubeconfig) in secret.string_data.as_ref().expect("stringData") {
        std::fs::write(kc_dir.join(name), kubeconfig).expect("write kubeconfig");
    }
    let text = text.replace(KUBECONFIG_DIR, &format!("{}/", kc_dir.display()));
    let path = dir.path().join("config.yaml");
    EmbeddedConfig {
        text,
        _dir: dir,
        path,
    }
}

#[test]
fn configmap_holds_a_valid_crossdns_config() {
    let m = load();
    let c = embedded_config(&m);
    let settings = Settings::from_yaml(&c.text, &c.path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settings.dns.listen, ["0.0.0.0:53".parse().expect("addr")]);
    assert_eq!(settings.admin, Some("0.0.0.0:9153".parse().expect("addr")));
    // Exactly one cluster is in-cluster (the one the Deployment runs in);
    // every other reads a kubeconfig from the Secret, one key per name.
    let secret = one("Secret", &m.secrets);
    let keys: BTreeSet<&String> = secret
        .string_data
        .as_ref()
        .expect("stringData")
        .keys()
        .collect();
    let mut in_cluster = 0;
    let mut remote = BTreeSet::new();
    for cl in &settings.clusters {
        match &cl.source {
            Source::Kube {
                kubeconfig: None, ..
            } => in_cluster += 1,
            Source::Kube {
                kubeconfig: Some(p),
                ..
            } => {
                assert_eq!(p.file_name().expect("file").to_string_lossy(), cl.name);
                remote.insert(&cl.name);
            }
            Source::Manifests(_) => panic!("cluster {} reads a folder", cl.name),
            Source::Primary(_) => panic!("cluster {} is transferred", cl.name),
        }
    }
    assert_eq!(in_cluster, 1);
    assert_eq!(remote, keys, "Secret keys must be the remote cluster names");
}

#[test]
fn configmap_config_validation_is_strict() {
    let m = load();
    let c = embedded_config(&m);
    // An unknown key, at the top and nested, must be refused.
    let bad = format!("{}bogus: true\n", c.text);
    let e = Settings::from_yaml(&bad, &c.path).expect_err("unknown top-level key");
    assert!(e.to_string().contains("bogus"), "{e}");
    assert!(c.text.contains("stale_after:"));
    let bad = c.text.replace("stale_after:", "stale_afterr:");
    let e = Settings::from_yaml(&bad, &c.path).expect_err("misspelled nested key");
    assert!(e.to_string().contains("stale_afterr"), "{e}");
    // And the kubeconfig paths are really checked: at the in-pod paths (which
    // do not exist here) the config is refused.
    let cm = one("ConfigMap", &m.config_maps);
    let original = &cm.data.as_ref().expect("data")["config.yaml"];
    if original.contains(KUBECONFIG_DIR) && !Path::new(KUBECONFIG_DIR).exists() {
        assert!(Settings::from_yaml(original, &c.path).is_err());
    }
}

fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_owned(), "crossdns".to_owned())])
}

#[test]
fn deployment_runs_the_config_safely() {
    let m = load();
    let d = one("Deployment", &m.deployments);
    let spec = d.spec.as_ref().expect("spec");
    assert!(spec.replicas.unwrap_or(1) >= 2);
    assert_eq!(
        spec.selector.match_labels.as_ref(),
        Some(&selector_labels())
    );
    let pod = spec.template.spec.as_ref().expect("pod spec");
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .expect("labels");
    assert_eq!(
        labels.get("app.kubernetes.io/name").map(String::as_str),
        Some("crossdns")
    );
    assert_eq!(
        pod.service_account_name.as_deref(),
        one("ServiceAccount", &m.service_accounts)
            .metadata
            .name
            .as_deref()
    );
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("preferred pod anti-affinity");
    assert_eq!(
        anti[0].pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    assert_eq!(
        pod.security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root),
        Some(true)
    );

    let c = one("container", &pod.containers);
    assert_eq!(
        c.args.as_deref(),
        Some(
            &[
                "serve".to_owned(),
                "--config".to_owned(),
                CONFIG_PATH.to_owned()
            ][..]
        )
    );
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert_eq!(
        caps.add.as_deref(),
        Some(&["NET_BIND_SERVICE".to_owned()][..])
    );

    let res = c.resources.as_ref().expect("resources");
    let req = res.requests.as_ref().expect("requests");
    assert_eq!(req["memory"].0, "128Mi");
    assert_eq!(req["cpu"].0, "100m");
    assert_eq!(res.limits.as_ref().expect("limits")["memory"].0, "256Mi");

    // Probes hit the admin port the config listens on.
    let settings_port = 9153;
    let port_of = |name: &str| {
        c.ports
            .as_ref()
            .expect("ports")
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
    };
    assert_eq!(port_of("metrics"), Some(settings_port));
    for (probe, path) in [
        (&c.readiness_probe, "/readyz"),
        (&c.liveness_probe, "/healthz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("httpGet probe");
        assert_eq!(get.path.as_deref(), Some(path));
        match &get.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(n) => {
                assert_eq!(port_of(n), Some(settings_port));
            }
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => {
                assert_eq!(*n, settings_port);
            }
        }
    }

    // Volumes: the ConfigMap at the config path, the Secret at the
    // kubeconfig folder, the optional TLS Secret.
    let volumes = pod.volumes.as_ref().expect("volumes");
    let mounts = c.volume_mounts.as_ref().expect("mounts");
    let mount_of = |vol: &str| {
        mounts
            .iter()
            .find(|m| m.name == vol)
            .unwrap_or_else(|| panic!("no mount for volume {vol}"))
    };
    for v in volumes {
        let m_ = mount_of(&v.name);
        assert_eq!(m_.read_only, Some(true), "{} is mounted read-only", v.name);
        if let Some(cm) = &v.config_map {
            assert_eq!(
                Some(&cm.name),
                one("ConfigMap", &m.config_maps).metadata.name.as_ref()
            );
            assert_eq!(m_.mount_path, CONFIG_PATH);
            assert_eq!(m_.sub_path.as_deref(), Some("config.yaml"));
        } else if let Some(s) = &v.secret {
            if s.optional == Some(true) {
                assert_eq!(m_.mount_path, "/etc/crossdns/tls");
            } else {
                assert_eq!(s.secret_name, one("Secret", &m.secrets).metadata.name);
                assert_eq!(format!("{}/", m_.mount_path), KUBECONFIG_DIR);
            }
        }
    }
    assert_eq!(volumes.len(), 3, "config, kubeconfigs, tls");
}

#[test]
fn services_pdb_and_networkpolicy_select_the_deployment() {
    let m = load();
    for (file, svc) in &m.services {
        let spec = svc.spec.as_ref().expect("spec");
        assert_eq!(spec.selector.as_ref(), Some(&selector_labels()), "{file}");
        let ports: BTreeSet<(i32, String)> = spec
            .ports
            .as_ref()
            .expect("ports")
            .iter()
            .map(|p| (p.port, p.protocol.clone().unwrap_or_default()))
            .collect();
        let want: BTreeSet<(i32, String)> = [(53, "UDP"), (53, "TCP"), (853, "TCP")]
            .map(|(p, s)| (p, s.to_owned()))
            .into();
        assert_eq!(ports, want, "{file}");
    }
    let pdb = one("PodDisruptionBudget", &m.pdbs)
        .spec
        .as_ref()
        .expect("spec");
    assert_eq!(
        pdb.min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(
        pdb.selector.as_ref().and_then(|s| s.match_labels.as_ref()),
        Some(&selector_labels())
    );
    let np = one("NetworkPolicy", &m.network_policies)
        .spec
        .as_ref()
        .expect("spec");
    assert_eq!(
        np.pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref()),
        Some(&selector_labels())
    );
}

#[test]
fn networkpolicy_admits_dns_only_from_the_configs_allow_list() {
    let m = load();
    let c = embedded_config(&m);
    let settings = Settings::from_yaml(&c.text, &c.path).expect("valid");
    let np = one("NetworkPolicy", &m.network_policies)
        .spec
        .as_ref()
        .expect("spec");
    let rules = np.ingress.as_ref().expect("ingress");
    let mut dns_rule = false;
    let mut metrics_rule = false;
    for rule in rules {
        let ports: BTreeSet<i32> = rule
            .ports
            .as_ref()
            .expect("ports")
            .iter()
            .filter_map(|p| match &p.port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => Some(*n),
                _ => None,
            })
            .collect();
        let from = rule.from.as_ref().expect("from");
        if ports.contains(&53) {
            dns_rule = true;
            assert_eq!(ports, BTreeSet::from([53, 853]));
            for peer in from {
                let cidr: ipnet::IpNet = peer
                    .ip_block
                    .as_ref()
                    .expect("DNS peers are ipBlocks")
                    .cidr
                    .parse()
                    .expect("a CIDR");
                assert!(
                    settings.allow.nets().iter().any(|n| n.contains(&cidr)),
                    "{cidr} is not in the config's allow list"
                );
            }
        } else {
            metrics_rule = true;
            assert_eq!(ports, BTreeSet::from([9153]));
            let ns = from[0]
                .namespace_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .expect("namespaceSelector");
            assert_eq!(
                ns.get("kubernetes.io/metadata.name").map(String::as_str),
                Some("monitoring")
            );
        }
    }
    assert!(dns_rule && metrics_rule);
}

#[test]
fn rbac_is_read_only_on_exactly_what_crossdns_watches() {
    let m = load();
    let role = one("ClusterRole", &m.cluster_roles);
    let mut granted = BTreeSet::new();
    for rule in role.rules.as_ref().expect("rules") {
        let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
        assert_eq!(verbs, BTreeSet::from(["get", "list", "watch"]));
        for group in rule.api_groups.as_ref().expect("apiGroups") {
            for res in rule.resources.as_ref().expect("resources") {
                granted.insert(format!("{group}/{res}"));
            }
        }
    }
    let want: BTreeSet<String> = [
        "/services",
        "/namespaces",
        "/pods",
        "discovery.k8s.io/endpointslices",
        "apps/statefulsets",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(granted, want);
    let binding = one("ClusterRoleBinding", &m.bindings);
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let sa = one("ServiceAccount", &m.service_accounts);
    let subject = &binding.subjects.as_ref().expect("subjects")[0];
    assert_eq!(Some(&subject.name), sa.metadata.name.as_ref());
    assert_eq!(subject.namespace, sa.metadata.namespace);
    assert_eq!(
        sa.metadata.namespace,
        one("Namespace", &m.namespaces).metadata.name
    );
}
