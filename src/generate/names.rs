//! `generate join` and `generate sans`: the stable DNS names of every replica
//! of one StatefulSet across clusters (design.md §1), as a `--join` list or
//! as certificate SANs. Pure text from already-collected data.

use super::{GenerateError, StatefulSetRef};
use crate::config::Settings;
use crate::dnsname::{NameError, WireName};
use crate::grammar;
use crate::index::StatefulSet;

/// Which names a join list uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ZoneStyle {
    /// `<sts>-<i>.<svc>.<ns>.svc.<cluster zone>`.
    #[default]
    PerCluster,
    /// `<sts>-<i>.<cluster>.<svc>.<ns>.svc.<clusterset zone>` (KEP-1645).
    Clusterset,
}

/// One cluster's copy of the StatefulSet, as read from its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The cluster's name (config order is kept by the caller).
    pub cluster: String,
    pub zone: WireName,
    pub statefulset: StatefulSet,
    /// A Service named `<sts>-public` exists beside it (the CockroachDB
    /// recipes' client-facing Service).
    pub has_public: bool,
    /// The governing Service has names in the clusterset zone: one is
    /// configured and the Service does not opt out (`crossdns.io/export:
    /// "false"`). Its replicas' clusterset names exist only then.
    pub exported: bool,
    /// Likewise for `<sts>-public`.
    pub public_exported: bool,
}

/// A name from the grammar, as text, or the error naming what was wrong.
fn dotted(
    cluster: &str,
    what: impl FnOnce() -> String,
    name: Result<WireName, NameError>,
) -> Result<String, GenerateError> {
    name.map(|w| w.to_string())
        .map_err(|e| GenerateError::BadName {
            cluster: cluster.to_owned(),
            name: what(),
            reason: e.to_string(),
        })
}

/// `<svc>.<ns>.svc.<zone>` of one cluster's copy.
fn service(f: &Found, zone: &WireName, svc: &str) -> Result<String, GenerateError> {
    let ns = f.statefulset.key.namespace();
    dotted(
        &f.cluster,
        || format!("{svc}.{ns}.svc.{zone}"),
        grammar::service_name(zone, ns, svc),
    )
}

fn not_found(settings: &Settings, key: &StatefulSetRef) -> GenerateError {
    GenerateError::StatefulSetNotFound {
        key: key.clone(),
        clusters: settings.clusters.iter().map(|c| c.name.clone()).collect(),
    }
}

/// Per-replica names, clusters in the given order, replicas ascending.
fn replica_names(
    settings: &Settings,
    found: &[Found],
    style: ZoneStyle,
) -> Result<Vec<String>, GenerateError> {
    let cs_zone = match style {
        ZoneStyle::PerCluster => None,
        ZoneStyle::Clusterset => Some(
            &settings
                .clusterset
                .as_ref()
                .ok_or(GenerateError::NoClusterset)?
                .zone,
        ),
    };
    let mut out = Vec::new();
    // Clusterset names exist only where the governing Service is exported.
    for f in found.iter().filter(|f| cs_zone.is_none() || f.exported) {
        let sts = &f.statefulset;
        let (ns, svc) = (sts.key.namespace(), sts.service_name.as_str());
        for i in 0..sts.replicas {
            let host = grammar::replica_host(sts.key.name(), i);
            let name = match cs_zone {
                None => grammar::service_name(&f.zone, ns, svc)
                    .and_then(|s| grammar::host_name(&s, &host)),
                Some(cs) => grammar::clusterset_host_name(cs, &f.cluster, ns, svc, &host),
            };
            let zone = cs_zone.unwrap_or(&f.zone);
            out.push(dotted(
                &f.cluster,
                || format!("{host}.{svc}.{ns}.svc.{zone}"),
                name,
            )?);
        }
    }
    Ok(out)
}

/// The comma-separated `--join` list: every replica in every cluster that
/// has the StatefulSet, as bare names, or each with `:port` when a port is
/// given (design.md §3).
pub fn join(
    settings: &Settings,
    key: &StatefulSetRef,
    found: &[Found],
    port: Option<u16>,
    style: ZoneStyle,
) -> Result<String, GenerateError> {
    if found.is_empty() {
        return Err(not_found(settings, key));
    }
    let names = replica_names(settings, found, style)?;
    if names.is_empty() && style == ZoneStyle::Clusterset {
        return Err(GenerateError::NotExported(key.clone()));
    }
    let list: Vec<String> = match port {
        Some(port) => names.iter().map(|n| format!("{n}:{port}")).collect(),
        None => names,
    };
    Ok(format!("{}\n", list.join(",")))
}

/// Certificate SANs, one per line, deduplicated in a stable order:
/// `localhost` and `127.0.0.1` (every CockroachDB node-cert recipe includes
/// them: `cockroach` talks to its own node over loopback), then per cluster
/// the replica names, the governing Service and `<sts>-public`, then the same
/// in the clusterset zone when one is configured, for the Services exported
/// to it.
pub fn sans(
    settings: &Settings,
    key: &StatefulSetRef,
    found: &[Found],
) -> Result<String, GenerateError> {
    if found.is_empty() {
        return Err(not_found(settings, key));
    }
    let mut out: Vec<String> = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let mut push = |name: String| {
        if !out.contains(&name) {
            out.push(name);
        }
    };
    // (governing Service, `<sts>-public`) names of `f` in `zone`.
    let service_names = |f: &Found,
                         zone: &WireName,
                         (governing, public): (bool, bool)|
     -> Result<Vec<String>, GenerateError> {
        let public_name = format!("{}-public", f.statefulset.key.name());
        let mut v = Vec::new();
        if governing {
            v.push(service(f, zone, &f.statefulset.service_name)?);
        }
        if public {
            v.push(service(f, zone, &public_name)?);
        }
        Ok(v)
    };
    for f in found {
        for n in replica_names(settings, std::slice::from_ref(f), ZoneStyle::PerCluster)? {
            push(n);
        }
        for n in service_names(f, &f.zone, (true, f.has_public))? {
            push(n);
        }
    }
    if let Some(cs) = &settings.clusterset {
        for n in replica_names(settings, found, ZoneStyle::Clusterset)? {
            push(n);
        }
        for f in found {
            for n in service_names(f, &cs.zone, (f.exported, f.public_exported))? {
                push(n);
            }
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ObjKey;

    fn settings(clusterset: bool) -> Settings {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("m")).expect("mkdir");
        let mut yaml = "clusters:\n  - {name: region1, zone: cluster.region1, manifests: m}\n  - {name: region2, zone: cluster.region2, manifests: m}\n".to_owned();
        if clusterset {
            yaml.push_str("clusterset: {zone: clusterset.local}\n");
        }
        Settings::from_yaml(&yaml, &dir.path().join("c.yaml")).expect("valid")
    }

    fn found(cluster: &str, zone: &str, replicas: u32, has_public: bool) -> Found {
        found_in("default", cluster, zone, replicas, has_public)
    }

    fn found_in(ns: &str, cluster: &str, zone: &str, replicas: u32, has_public: bool) -> Found {
        Found {
            cluster: cluster.to_owned(),
            zone: WireName::parse(zone).expect("zone"),
            statefulset: StatefulSet {
                key: ObjKey::new(ns, "cockroachdb"),
                service_name: "cockroachdb".to_owned(),
                replicas,
            },
            has_public,
            exported: true,
            public_exported: has_public,
        }
    }

    fn key() -> StatefulSetRef {
        "default/cockroachdb".parse().expect("ref")
    }

    #[test]
    fn join_lists_every_replica_per_cluster_in_order() {
        let s = settings(false);
        let f = [
            found("region1", "cluster.region1", 2, true),
            found("region2", "cluster.region2", 1, true),
        ];
        assert_eq!(
            join(&s, &key(), &f, Some(26257), ZoneStyle::PerCluster).expect("join"),
            "cockroachdb-0.cockroachdb.default.svc.cluster.region1:26257,\
             cockroachdb-1.cockroachdb.default.svc.cluster.region1:26257,\
             cockroachdb-0.cockroachdb.default.svc.cluster.region2:26257\n"
        );
    }

    #[test]
    fn join_without_a_port_prints_bare_names() {
        let s = settings(false);
        let f = [found("region1", "cluster.region1", 2, false)];
        assert_eq!(
            join(&s, &key(), &f, None, ZoneStyle::PerCluster).expect("join"),
            "cockroachdb-0.cockroachdb.default.svc.cluster.region1,\
             cockroachdb-1.cockroachdb.default.svc.cluster.region1\n"
        );
    }

    #[test]
    fn join_clusterset_style_names_the_cluster() {
        let s = settings(true);
        let f = [
            found("region1", "cluster.region1", 1, false),
            found("region2", "cluster.region2", 1, false),
        ];
        assert_eq!(
            join(&s, &key(), &f, Some(26258), ZoneStyle::Clusterset).expect("join"),
            "cockroachdb-0.region1.cockroachdb.default.svc.clusterset.local:26258,\
             cockroachdb-0.region2.cockroachdb.default.svc.clusterset.local:26258\n"
        );
    }

    #[test]
    fn join_clusterset_style_needs_a_clusterset_zone() {
        let s = settings(false);
        let f = [found("region1", "cluster.region1", 1, false)];
        assert!(matches!(
            join(&s, &key(), &f, Some(26257), ZoneStyle::Clusterset),
            Err(GenerateError::NoClusterset)
        ));
    }

    #[test]
    fn nothing_found_is_an_error_naming_the_statefulset() {
        let s = settings(false);
        let e = join(&s, &key(), &[], None, ZoneStyle::PerCluster).expect_err("none");
        assert!(e.to_string().contains("default/cockroachdb"), "{e}");
        assert!(sans(&s, &key(), &[]).is_err());
    }

    #[test]
    fn sans_cover_replicas_services_and_the_clusterset() {
        let s = settings(true);
        let f = [
            found("region1", "cluster.region1", 1, true),
            found("region2", "cluster.region2", 1, false),
        ];
        let got = sans(&s, &key(), &f).expect("sans");
        assert_eq!(
            got.lines().collect::<Vec<_>>(),
            [
                "localhost",
                "127.0.0.1",
                "cockroachdb-0.cockroachdb.default.svc.cluster.region1",
                "cockroachdb.default.svc.cluster.region1",
                "cockroachdb-public.default.svc.cluster.region1",
                "cockroachdb-0.cockroachdb.default.svc.cluster.region2",
                "cockroachdb.default.svc.cluster.region2",
                "cockroachdb-0.region1.cockroachdb.default.svc.clusterset.local",
                "cockroachdb-0.region2.cockroachdb.default.svc.clusterset.local",
                "cockroachdb.default.svc.clusterset.local",
                "cockroachdb-public.default.svc.clusterset.local",
            ]
        );
    }

    #[test]
    fn services_opted_out_of_the_clusterset_get_no_clusterset_names() {
        let s = settings(true);
        let mut hidden = found("region2", "cluster.region2", 1, true);
        hidden.exported = false;
        let mut public_hidden = found("region1", "cluster.region1", 1, true);
        public_hidden.public_exported = false;
        let f = [public_hidden, hidden.clone()];
        let got = sans(&s, &key(), &f).expect("sans");
        let clusterset: Vec<&str> = got
            .lines()
            .filter(|l| l.ends_with("clusterset.local"))
            .collect();
        assert_eq!(
            clusterset,
            [
                "cockroachdb-0.region1.cockroachdb.default.svc.clusterset.local",
                "cockroachdb.default.svc.clusterset.local",
                "cockroachdb-public.default.svc.clusterset.local",
            ],
            "region2 opted out entirely; region1 only its public Service"
        );
        // Per-cluster names do not depend on export.
        assert!(got.contains("\ncockroachdb-public.default.svc.cluster.region1\n"));
        assert!(got.contains("\ncockroachdb-0.cockroachdb.default.svc.cluster.region2\n"));
        assert_eq!(
            join(&s, &key(), &f, Some(1), ZoneStyle::Clusterset).expect("join"),
            "cockroachdb-0.region1.cockroachdb.default.svc.clusterset.local:1\n"
        );
        assert!(matches!(
            join(&s, &key(), &[hidden], Some(1), ZoneStyle::Clusterset),
            Err(GenerateError::NotExported(_))
        ));
    }

    #[test]
    fn shared_zone_names_differ_by_namespace() {
        let s = settings(true);
        let any: StatefulSetRef = "*/cockroachdb".parse().expect("ref");
        let f = [
            found_in("us-east1", "region1", "cluster.local", 1, true),
            found_in("us-west1", "region2", "cluster.local", 1, true),
        ];
        assert_eq!(
            join(&s, &any, &f, Some(26257), ZoneStyle::PerCluster).expect("join"),
            "cockroachdb-0.cockroachdb.us-east1.svc.cluster.local:26257,\
             cockroachdb-0.cockroachdb.us-west1.svc.cluster.local:26257\n"
        );
        let got = sans(&s, &any, &f).expect("sans");
        assert!(
            got.contains("\ncockroachdb-public.us-west1.svc.cluster.local\n"),
            "{got}"
        );
        assert!(
            got.contains("\ncockroachdb-public.us-east1.svc.clusterset.local\n"),
            "{got}"
        );
    }
}
