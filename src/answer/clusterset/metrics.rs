//! The clusterset's health counters as a `MetricSource`.
//!
//! Encoded from the counters `health` keeps; `app` registers it.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::DescriptorEncoder;

use super::ClustersetStats;
use crate::index::unix_ms;
use crate::metrics::{Labels, MetricSource, counter, gauge};

impl MetricSource for ClustersetStats {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let now = unix_ms();
        let cl = |name: &str| -> Labels<'_> { vec![("cluster", name.to_owned())] };
        let fresh: Vec<_> = self
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (cl(&c.spec.name), f64::from(u8::from(self.fresh(i, now)))))
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
