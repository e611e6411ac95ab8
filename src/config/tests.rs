//! Every validation rule, with the message the operator sees.

use std::path::Path;

use super::*;

fn load(yaml: &str) -> Result<Settings, ConfigError> {
    Settings::from_yaml(yaml, Path::new("/nonexistent/crossdns.yaml"))
}

fn error(yaml: &str) -> String {
    match load(yaml) {
        Ok(s) => panic!("config should be refused, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn manifests_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/region1").to_owned()
}

fn one_cluster(extra: &str) -> String {
    format!(
        "clusters:\n  - name: region1\n    zone: cluster.region1\n    manifests: {}\n{extra}",
        manifests_dir()
    )
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let s = load(&one_cluster("")).expect("valid");
    assert_eq!(s.dns.listen, vec!["0.0.0.0:53".parse().expect("addr")]);
    assert_eq!(s.dns.ttl, 5);
    assert!(s.admin.is_none());
    assert!(s.allow.allows("10.1.2.3".parse().expect("ip")));
    assert!(!s.allow.allows("8.8.8.8".parse().expect("ip")));
    let c = &s.clusters[0];
    assert_eq!(c.zone.to_string(), "cluster.region1");
    assert_eq!(c.service_address, ServiceAddress::ClusterIp);
    assert_eq!(c.pods, PodsMode::Disabled);
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let e = error(&one_cluster("    zonee: x\n"));
    assert!(e.contains("unknown field `zonee`"), "{e}");
}

#[test]
fn bad_zone_name_is_refused_with_key_and_value() {
    let e = error(&format!(
        "clusters:\n  - name: a\n    zone: \"cluster..region1\"\n    manifests: {}\n",
        manifests_dir()
    ));
    assert!(
        e.contains("clusters[0].zone: \"cluster..region1\" is not a valid DNS zone name"),
        "{e}"
    );
}

#[test]
fn duplicate_cluster_names_are_refused() {
    let d = manifests_dir();
    let e = error(&format!(
        "clusters:\n  - {{name: a, zone: z1, manifests: {d}}}\n  - {{name: a, zone: z2, manifests: {d}}}\n"
    ));
    assert!(
        e.contains("clusters[1].name: \"a\" is already used by clusters[0]"),
        "{e}"
    );
}

#[test]
fn cluster_name_must_be_a_dns_label() {
    let e = error(&format!(
        "clusters:\n  - {{name: Region_1, zone: z, manifests: {}}}\n",
        manifests_dir()
    ));
    assert!(
        e.contains("clusters[0].name: \"Region_1\" must be a DNS label"),
        "{e}"
    );
}

#[test]
fn shared_zone_with_unrestricted_namespaces_is_refused() {
    let d = manifests_dir();
    let e = error(&format!(
        "clusters:\n  - {{name: a, zone: cluster.local, manifests: {d}, namespaces: [us-east1]}}\n  - {{name: b, zone: cluster.local, manifests: {d}}}\n"
    ));
    assert!(
        e.contains("clusters[1].namespaces") && e.contains("share zone cluster.local"),
        "{e}"
    );
}

#[test]
fn shared_zone_with_overlapping_namespaces_is_refused() {
    let d = manifests_dir();
    let e = error(&format!(
        "clusters:\n  - {{name: a, zone: cluster.local, manifests: {d}, namespaces: [us-east1, shared]}}\n  - {{name: b, zone: cluster.local, manifests: {d}, namespaces: [us-west1, shared]}}\n"
    ));
    assert!(e.contains("namespace \"shared\" is in both"), "{e}");
}

#[test]
fn shared_zone_with_disjoint_namespaces_is_accepted() {
    let d = manifests_dir();
    let s = load(&format!(
        "clusters:\n  - {{name: a, zone: cluster.local, manifests: {d}, namespaces: [us-east1]}}\n  - {{name: b, zone: cluster.local, manifests: {d}, namespaces: [us-west1]}}\n"
    ))
    .expect("disjoint namespaces may share a zone");
    assert_eq!(s.clusters.len(), 2);
}

#[test]
fn missing_kubeconfig_file_is_refused() {
    let e = error("clusters:\n  - {name: a, zone: z, kubeconfig: /nonexistent/kc}\n");
    assert!(
        e.contains("clusters[0].kubeconfig: \"/nonexistent/kc\" does not exist"),
        "{e}"
    );
}

#[test]
fn missing_kubeconfig_context_is_refused_and_lists_known_contexts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kc");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: real, context: {cluster: c, user: u}}]\ncurrent-context: real\n",
    )
    .expect("write kubeconfig");
    let e = error(&format!(
        "clusters:\n  - {{name: a, zone: z, kubeconfig: {}, context: nope}}\n",
        kc.display()
    ));
    assert!(
        e.contains("clusters[0].context: \"nope\" is not a context") && e.contains("[\"real\"]"),
        "{e}"
    );
    let ok = load(&format!(
        "clusters:\n  - {{name: a, zone: z, kubeconfig: {}, context: real}}\n",
        kc.display()
    ));
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn bad_cidr_is_refused() {
    let e = error(&format!("allow: [\"10.0.0.0/33\"]\n{}", one_cluster("")));
    assert!(e.contains("allow[0]: \"10.0.0.0/33\" is not a CIDR"), "{e}");
}

#[test]
fn bad_listen_address_is_refused() {
    let e = error(&format!(
        "dns:\n  listen: [\"localhost:53\"]\n{}",
        one_cluster("")
    ));
    assert!(
        e.contains("dns.listen[0]: \"localhost:53\" is not an IP:port address"),
        "{e}"
    );
    let e = error(&format!("admin:\n  listen: \"9153\"\n{}", one_cluster("")));
    assert!(
        e.contains("admin.listen: \"9153\" is not an IP:port address"),
        "{e}"
    );
}

#[test]
fn unknown_enum_values_are_refused_with_the_choices() {
    let e = error(&one_cluster("    service_address: nodeport\n"));
    assert!(
        e.contains("unknown variant `nodeport`") && e.contains("cluster-ip"),
        "{e}"
    );
    let e = error(&one_cluster("    pods: yes-please\n"));
    assert!(
        e.contains("unknown variant `yes-please`") && e.contains("verified"),
        "{e}"
    );
}

#[test]
fn manifests_must_be_a_folder_and_exclusive_with_kubeconfig() {
    let e = error("clusters:\n  - {name: a, zone: z, manifests: /nonexistent/dir}\n");
    assert!(
        e.contains("clusters[0].manifests: \"/nonexistent/dir\" is not a folder"),
        "{e}"
    );
    let e = error(&format!(
        "clusters:\n  - {{name: a, zone: z, manifests: {}, kubeconfig: /x}}\n",
        manifests_dir()
    ));
    assert!(e.contains("cannot be used together with kubeconfig"), "{e}");
}

#[test]
fn clusterset_local_must_name_a_cluster() {
    let e = error(&format!(
        "{}clusterset:\n  zone: clusterset.local\n  local: nowhere\n",
        one_cluster("")
    ));
    assert!(
        e.contains("clusterset.local: \"nowhere\" is not a cluster name"),
        "{e}"
    );
}

#[test]
fn durations_and_upstreams_are_parsed_or_refused() {
    let s = load(&format!(
        "{}clusterset: {{zone: clusterset.local, local: region1, stale_after: 45s}}\nforward:\n  - {{zone: cluster.region3, upstreams: [\"192.0.2.10\", \"tls://192.0.2.11:853#dns.region3\"], stale_for: 10m}}\n",
        one_cluster("")
    ))
    .expect("valid");
    let cs = s.clusterset.expect("clusterset");
    assert_eq!(cs.stale_after.as_secs(), 45);
    let fw = &s.forward[0];
    assert_eq!(
        fw.upstreams[0],
        Upstream::Plain("192.0.2.10:53".parse().expect("addr"))
    );
    assert_eq!(
        fw.upstreams[1],
        Upstream::Tls {
            addr: "192.0.2.11:853".parse().expect("addr"),
            server_name: "dns.region3".to_owned()
        }
    );
    assert_eq!(fw.stale_for.as_secs(), 600);

    let e = error(&format!(
        "{}clusterset: {{zone: cs.local, stale_after: soon}}\n",
        one_cluster("")
    ));
    assert!(
        e.contains("clusterset.stale_after: \"soon\" is not a duration"),
        "{e}"
    );
    let e = error(&format!(
        "{}forward:\n  - {{zone: z3, upstreams: [\"dns.example:53\"]}}\n",
        one_cluster("")
    ));
    assert!(
        e.contains("forward[0].upstreams[0]: \"dns.example:53\" is not IP"),
        "{e}"
    );
}

#[test]
fn a_zone_cannot_be_both_served_and_forwarded() {
    let e = error(&format!(
        "{}forward:\n  - {{zone: cluster.region1, upstreams: [\"192.0.2.1\"]}}\n",
        one_cluster("")
    ));
    assert!(
        e.contains("forward[0].zone: \"cluster.region1\" is served by crossdns itself"),
        "{e}"
    );
}

#[test]
fn tls_listener_requires_cert_and_key() {
    let e = error(&format!(
        "dns:\n  tls_listen: [\"127.0.0.1:853\"]\n{}",
        one_cluster("")
    ));
    assert!(
        e.contains("dns.tls_cert: \"\" is required when dns.tls_listen is set"),
        "{e}"
    );
}

#[test]
fn zone_table_lists_every_zone() {
    let s = load(&one_cluster("    pods: insecure\n")).expect("valid");
    let table = s.zone_table();
    assert!(table.starts_with("ZONE"), "{table}");
    assert!(
        table.contains("cluster.region1")
            && table.contains("cluster region1")
            && table.contains("pods=insecure"),
        "{table}"
    );
}
