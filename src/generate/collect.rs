//! The live half of `generate join` / `generate sans`: starts every
//! cluster's sources exactly as `serve` does, waits for them to sync, and
//! reads the StatefulSet (and its `-public` Service) from the snapshots.
//! It never answers DNS and keeps nothing once it returns.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Found, GenerateError, StatefulSetRef};
use crate::config::{ClusterSettings, Settings, Source};
use crate::dnsname::WireName;
use crate::index::{ClusterHandle, ClusterSpec, Snapshot};
use crate::watch;

/// How long every cluster gets to sync before the command gives up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// StatefulSets do not gate a cluster's sync (watch/mod.rs: a cluster whose
/// RBAC refuses them still serves DNS). A cluster whose StatefulSets are
/// listed is answered at once; one whose StatefulSet watch has not
/// delivered (refused, or slow) gets this much longer.
const STATEFULSET_GRACE: Duration = Duration::from_secs(2);

const POLL: Duration = Duration::from_millis(25);

/// Every copy of `want` in every cluster, clusters in config order, copies
/// in namespace order. Errors when a cluster cannot sync in `timeout`, and
/// at once for a `primary:` cluster: a zone transfer has no StatefulSets,
/// so its replicas would be missing from the output without a word.
pub async fn collect(
    settings: &Settings,
    want: &StatefulSetRef,
    timeout: Duration,
) -> Result<Vec<Found>, GenerateError> {
    if let Some(c) = settings
        .clusters
        .iter()
        .find(|c| matches!(c.source, Source::Primary(_)))
    {
        return Err(GenerateError::Transferred(c.name.clone()));
    }
    let handles: Vec<Arc<ClusterHandle>> = ClusterSpec::all(settings)
        .into_iter()
        .map(|spec| Arc::new(ClusterHandle::new(spec)))
        .collect();
    // Dropping the guards at return stops the sources.
    let _tasks: Vec<watch::ClusterTasks> = settings
        .clusters
        .iter()
        .zip(&handles)
        .map(|(c, h)| watch::spawn_cluster(c, Arc::clone(h)))
        .collect();

    let deadline = Instant::now() + timeout;
    loop {
        let waiting: Vec<&ClusterSettings> = settings
            .clusters
            .iter()
            .zip(&handles)
            .filter(|(_, h)| !h.status.synced())
            .map(|(c, _)| c)
            .collect();
        if waiting.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(GenerateError::NotSynced {
                cluster: waiting
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                source_desc: waiting
                    .iter()
                    .map(|c| c.source.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
                timeout,
            });
        }
        tokio::time::sleep(POLL).await;
    }

    let grace = Instant::now() + STATEFULSET_GRACE;
    loop {
        let mut found = Vec::new();
        let mut complete = true;
        for (c, h) in settings.clusters.iter().zip(&handles) {
            // The flag first: it is set after the snapshot holding the list
            // is published.
            let listed = h.status.statefulsets_listed();
            let here = h
                .snapshot()
                .map(|snap| found_in(c, &snap, want))
                .unwrap_or_default();
            complete &= listed || !here.is_empty();
            found.extend(here);
        }
        if complete || Instant::now() >= grace {
            return Ok(found);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The copies of `want` in one cluster's snapshot.
fn found_in(cluster: &ClusterSettings, snap: &Snapshot, want: &StatefulSetRef) -> Vec<Found> {
    snap.statefulsets
        .values()
        .filter(|sts| want.matches(&sts.key))
        .map(|sts| {
            // Snapshot services are keyed `<svc>.<ns>` in lower-case wire
            // labels. The Service object is what counts, not whether its
            // name answers right now.
            let ns = sts.key.namespace();
            let public = format!("{}-public", sts.key.name());
            let key = |name: &str| WireName::from_labels([name, ns]).ok();
            let exists =
                |name: &str| key(name).is_some_and(|k| snap.services.get(k.as_bytes()).is_some());
            let exported = |name: &str| {
                key(name).is_some_and(|k| snap.clusterset_service(k.as_bytes()).is_some())
            };
            Found {
                cluster: cluster.name.clone(),
                zone: cluster.zone.clone(),
                statefulset: sts.clone(),
                has_public: exists(&public),
                exported: exported(&sts.service_name),
                public_exported: exported(&public),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STS: &str = "
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: db}]}}
---
apiVersion: v1
kind: Service
metadata: {name: db-public, namespace: default}
spec: {clusterIP: 10.0.0.1, clusterIPs: [10.0.0.1], ports: [{port: 1, protocol: TCP}]}
";

    #[tokio::test]
    async fn collects_the_statefulset_from_clusters_that_have_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("a")).expect("mkdir");
        std::fs::create_dir(dir.path().join("b")).expect("mkdir");
        std::fs::write(dir.path().join("a/db.yaml"), STS).expect("write");
        let settings = Settings::from_yaml(
            "clusters:\n  - {name: a, zone: cluster.a, manifests: a}\n  - {name: b, zone: cluster.b, manifests: b}\n",
            &dir.path().join("c.yaml"),
        )
        .expect("valid");
        let want: StatefulSetRef = "default/db".parse().expect("ref");
        let found = collect(&settings, &want, Duration::from_secs(10))
            .await
            .expect("collected");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].cluster, "a");
        assert_eq!(found[0].statefulset.replicas, 2);
        assert!(found[0].has_public);
    }

    #[tokio::test]
    async fn a_transferred_cluster_is_refused_by_name_not_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("a")).expect("mkdir");
        std::fs::write(dir.path().join("a/db.yaml"), STS).expect("write");
        let settings = Settings::from_yaml(
            "clusters:\n  - {name: a, zone: cluster.a, manifests: a}\n  - {name: b, zone: cluster.b, primary: {servers: [\"127.0.0.1:9\"]}}\n",
            &dir.path().join("c.yaml"),
        )
        .expect("valid");
        let want: StatefulSetRef = "default/db".parse().expect("ref");
        let err = collect(&settings, &want, Duration::from_secs(10))
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, GenerateError::Transferred(c) if c == "b"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("cluster b comes from a `primary:` source"),
            "{err}"
        );
    }
}
