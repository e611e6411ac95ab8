//! The clusterset's health counters as a `MetricSource`.
//!
//! TEMPORARY HOME: the only file of `metrics` that reads another module's
//! types. It belongs beside the clusterset health module in `answer`, which
//! is being restructured; there it needs only `use crate::metrics::{...}`
//! and this file moves unchanged otherwise. Until then it names no `index`
//! item (so `index` → `metrics` stays one-way): the clock is read here; use
//! `index::unix_ms` once it has moved.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::DescriptorEncoder;

use super::{Labels, MetricSource, counter, gauge};
use crate::answer::clusterset::ClustersetStats;

impl MetricSource for ClustersetStats {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let cl = |name: &str| -> Labels<'_> { vec![("cluster", name.to_owned())] };
        let fresh: Vec<_> = self
            .clusters
            .iter()
            .map(|c| {
                let healthy = c.status.synced() && !c.status.stale(self.stale_after, now);
                (cl(&c.spec.name), f64::from(u8::from(healthy)))
            })
            .collect();
        gauge(
            enc,
            "clusterset_cluster_fresh",
            "1 while the cluster is synced and not stale (failing for less than stale_after).",
            &fresh,
        )?;
        let transitions: Vec<_> = self
            .clusters
            .iter()
            .zip(&self.transitions)
            .map(|(c, t)| (cl(&c.spec.name), t.load(Ordering::Relaxed)))
            .collect();
        counter(
            enc,
            "clusterset_cluster_transitions",
            "Clusters going stale or fresh again.",
            &transitions,
        )?;
        let flips: Vec<_> = self
            .clusters
            .iter()
            .map(|c| {
                let n = c.status.service_health_transitions.load(Ordering::Relaxed);
                (cl(&c.spec.name), n)
            })
            .collect();
        counter(
            enc,
            "clusterset_service_health_transitions",
            "Services whose ready-endpoint health flipped in a cluster.",
            &flips,
        )?;
        counter(
            enc,
            "clusterset_failovers",
            "Clusterset answers where the preferred cluster was unhealthy and others answered.",
            &[(vec![], self.failovers.load(Ordering::Relaxed))],
        )?;
        counter(
            enc,
            "clusterset_all_down",
            "Clusterset queries for a service with no healthy cluster (answered per all_down).",
            &[(vec![], self.all_down.load(Ordering::Relaxed))],
        )
    }
}
