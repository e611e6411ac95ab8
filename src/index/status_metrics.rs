//! The clusters' sync state as a `MetricSource`: what each `ClusterStatus`
//! holds, encoded at scrape time. One function, `encode_cluster_status`,
//! writes every per-cluster family; a new `ClusterStatus` counter is encoded
//! there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::DescriptorEncoder;

use super::{ClusterHandle, FailureCause, Kind, unix_ms};
use crate::metrics::{Labels, MetricSource, counter, gauge, seconds_gauge};

/// Every configured cluster's status, for `/metrics`.
#[derive(Debug)]
pub struct ClusterMetrics(pub Vec<Arc<ClusterHandle>>);

impl MetricSource for ClusterMetrics {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        encode_cluster_status(&self.0, enc)
    }
}

/// The `crossdns_cluster_*` families.
pub fn encode_cluster_status(
    clusters: &[Arc<ClusterHandle>],
    enc: &mut DescriptorEncoder<'_>,
) -> std::fmt::Result {
    let now = unix_ms();
    let cl = |c: &ClusterHandle| -> Labels<'_> { vec![("cluster", c.spec.name.clone())] };
    let rows: Vec<_> = clusters
        .iter()
        .map(|c| (cl(c), f64::from(u8::from(c.status.synced()))))
        .collect();
    gauge(
        enc,
        "cluster_synced",
        "1 once the cluster's sources have delivered a complete first list.",
        &rows,
    )?;
    let rows: Vec<_> = clusters
        .iter()
        .filter(|c| c.status.last_event_ms() > 0)
        .map(|c| {
            let ms = now.saturating_sub(c.status.last_event_ms());
            (cl(c), ms as f64 / 1e3)
        })
        .collect();
    gauge(
        enc,
        "cluster_seconds_since_last_event",
        "Seconds since the cluster's sources last delivered anything.",
        &rows,
    )?;
    let rows: Vec<_> = clusters
        .iter()
        .map(|c| {
            let failing = c.status.failing_since_ms();
            let ms = failing.map_or(0, |t| now.saturating_sub(t));
            (cl(c), ms as f64 / 1e3)
        })
        .collect();
    seconds_gauge(
        enc,
        "cluster_failing",
        "Seconds the cluster's source has been failing; 0 when healthy.",
        &rows,
    )?;
    let mut rows = Vec::new();
    for c in clusters {
        for kind in Kind::ALL {
            let mut labels = cl(c);
            labels.push(("kind", kind.as_str().to_owned()));
            rows.push((labels, c.status.objects(kind) as f64));
        }
    }
    gauge(
        enc,
        "cluster_objects",
        "Objects held in the cluster's index, by kind.",
        &rows,
    )?;
    let load = |f: fn(&ClusterHandle) -> &AtomicU64| -> Vec<_> {
        clusters
            .iter()
            .map(|c| (cl(c), f(c).load(Ordering::Relaxed)))
            .collect()
    };
    counter(
        enc,
        "cluster_watch_restarts",
        "Watch errors after which the source backed off and retried.",
        &load(|c| &c.status.watch_restarts),
    )?;
    counter(
        enc,
        "cluster_skipped_objects",
        "Objects skipped because they did not parse.",
        &load(|c| &c.status.skipped_objects),
    )?;
    counter(
        enc,
        "cluster_snapshot_publishes",
        "Snapshots published for the cluster.",
        &load(|c| &c.status.publishes),
    )?;
    counter(
        enc,
        "cluster_lists",
        "Complete lists of a kind delivered (first sync and every relist).",
        &load(|c| &c.status.lists),
    )?;
    let by_cause = |f: &dyn Fn(&ClusterHandle, FailureCause) -> f64| -> Vec<_> {
        let mut rows = Vec::new();
        for c in clusters {
            for cause in FailureCause::ALL {
                let mut labels = cl(c);
                labels.push(("cause", cause.as_str().to_owned()));
                rows.push((labels, f(c, cause)));
            }
        }
        rows
    };
    let failures: Vec<_> = by_cause(&|c, cause| c.status.failures(cause) as f64)
        .into_iter()
        .map(|(l, v)| (l, v as u64))
        .collect();
    counter(
        enc,
        "cluster_failures",
        "Failed requests to the cluster's source (lists, watches, probes), by cause.",
        &failures,
    )?;
    gauge(
        enc,
        "cluster_failing",
        "1 for the cause of the cluster source's current failure; 0 otherwise.",
        &by_cause(&|c, cause| f64::from(u8::from(c.status.failing_cause() == Some(cause)))),
    )
}
