//! The clusterset and forwarding parts of `/metrics`: encoded from the
//! engine's clusterset counters and the forwarder's per-upstream state.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;

use super::{Histogram, Metrics, counter, gauge};
use crate::forward::RTT_BUCKETS;
use crate::index::unix_ms;

impl Metrics {
    pub(super) fn encode_clusterset(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some(cs) = &self.0.clusterset else {
            return Ok(());
        };
        let now = unix_ms();
        let fresh: Vec<_> = cs
            .clusters
            .iter()
            .map(|c| {
                let healthy = c.status.synced() && !c.status.stale(cs.stale_after, now);
                (
                    vec![("cluster", c.spec.name.clone())],
                    f64::from(u8::from(healthy)),
                )
            })
            .collect();
        gauge(
            enc,
            "clusterset_cluster_fresh",
            "1 while the cluster is synced and not stale (failing for less than stale_after).",
            &fresh,
        )?;
        let transitions: Vec<_> = cs
            .clusters
            .iter()
            .zip(&cs.transitions)
            .map(|(c, t)| {
                (
                    vec![("cluster", c.spec.name.clone())],
                    t.load(Ordering::Relaxed),
                )
            })
            .collect();
        counter(
            enc,
            "clusterset_cluster_transitions",
            "Clusters going stale or fresh again.",
            &transitions,
        )?;
        let flips: Vec<_> = cs
            .clusters
            .iter()
            .map(|c| {
                (
                    vec![("cluster", c.spec.name.clone())],
                    c.status.service_health_transitions.load(Ordering::Relaxed),
                )
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
            &[(vec![], cs.failovers.load(Ordering::Relaxed))],
        )?;
        counter(
            enc,
            "clusterset_all_down",
            "Clusterset queries for a service with no healthy cluster (answered per all_down).",
            &[(vec![], cs.all_down.load(Ordering::Relaxed))],
        )
    }
}

impl Metrics {
    pub(super) fn encode_forward(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let zones = &self.0.forwarder.zones;
        if zones.is_empty() {
            return Ok(());
        }
        let zl = |z: &crate::forward::ForwardZone| vec![("zone", z.apex.to_string())];
        let mut up = Vec::new();
        let mut failures = Vec::new();
        let mut requests = Vec::new();
        for z in zones {
            for u in &z.upstreams {
                let labels = vec![
                    ("zone", z.apex.to_string()),
                    ("upstream", u.target.to_string()),
                ];
                up.push((labels.clone(), f64::from(u8::from(u.is_up()))));
                failures.push((labels.clone(), u.stats.failures.load(Ordering::Relaxed)));
                requests.push((labels, u.stats.requests.load(Ordering::Relaxed)));
            }
        }
        gauge(
            enc,
            "forward_upstream_up",
            "1 while the upstream is in rotation; 0 after max_fails failures in a row.",
            &up,
        )?;
        counter(
            enc,
            "forward_upstream_failures",
            "Upstream timeouts and connection errors.",
            &failures,
        )?;
        counter(
            enc,
            "forward_upstream_requests",
            "Queries sent to the upstream.",
            &requests,
        )?;
        {
            let mut m = enc.encode_descriptor(
                "forward_upstream_rtt_seconds",
                "Round-trip time of answered upstream queries.",
                None,
                MetricType::Histogram,
            )?;
            for z in zones {
                for u in &z.upstreams {
                    let labels = vec![
                        ("zone", z.apex.to_string()),
                        ("upstream", u.target.to_string()),
                    ];
                    let mut cumulative = 0;
                    let mut buckets: Vec<(f64, u64)> = RTT_BUCKETS
                        .iter()
                        .zip(&u.stats.rtt_buckets)
                        .map(|(le, n)| {
                            cumulative += n.load(Ordering::Relaxed);
                            (*le, cumulative)
                        })
                        .collect();
                    let count = u.stats.rtt_count.load(Ordering::Relaxed);
                    buckets.push((f64::INFINITY, count));
                    let h = Histogram {
                        sum: u.stats.rtt_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
                        count,
                        buckets,
                    };
                    h.encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let per_zone = |f: fn(&crate::forward::ForwardZone) -> u64| -> Vec<_> {
            zones.iter().map(|z| (zl(z), f(z))).collect()
        };
        counter(
            enc,
            "forward_cache_hits",
            "Forwarded queries answered from the cache.",
            &per_zone(|z| z.stats.cache_hits.load(Ordering::Relaxed)),
        )?;
        counter(
            enc,
            "forward_cache_misses",
            "Forwarded queries that went upstream.",
            &per_zone(|z| z.stats.cache_misses.load(Ordering::Relaxed)),
        )?;
        counter(
            enc,
            "forward_stale_served",
            "Expired answers served because no upstream answered (RFC 8767).",
            &per_zone(|z| z.stats.stale_served.load(Ordering::Relaxed)),
        )?;
        counter(
            enc,
            "forward_loops",
            "Queries refused with SERVFAIL because they had been forwarded too often.",
            &per_zone(|z| z.stats.loops.load(Ordering::Relaxed)),
        )?;
        let entries: Vec<_> = zones
            .iter()
            .map(|z| (zl(z), z.cache_len() as f64))
            .collect();
        gauge(
            enc,
            "forward_cache_entries",
            "Answers held in the forward cache.",
            &entries,
        )
    }
}
