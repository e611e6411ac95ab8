//! The forwarder's counters (per zone and per upstream) and their encoding:
//! `Forwarder` is a `MetricSource`. The hot paths only add to atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::DescriptorEncoder;

use super::{ForwardZone, Forwarder};
use crate::metrics::{AtomicHistogram, Labels, MetricSource, counter, gauge, seconds_histogram};

/// Upper bounds of the round-trip histogram, in seconds.
pub const RTT_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// Per-zone counters.
#[derive(Debug, Default)]
pub struct ZoneStats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub stale_served: AtomicU64,
    pub loops: AtomicU64,
}

/// Per-upstream counters.
#[derive(Debug)]
pub struct UpstreamStats {
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    /// Round trips of answered queries.
    pub rtt: AtomicHistogram,
}

impl Default for UpstreamStats {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rtt: AtomicHistogram::new(&RTT_BUCKETS),
        }
    }
}

impl MetricSource for Forwarder {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        if self.zones.is_empty() {
            return Ok(());
        }
        encode_upstreams(&self.zones, enc)?;
        encode_zones(&self.zones, enc)
    }
}

fn encode_upstreams(zones: &[ForwardZone], enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let mut up = Vec::new();
    let mut failures = Vec::new();
    let mut requests = Vec::new();
    let mut rtt = Vec::new();
    for z in zones {
        for u in &z.upstreams {
            let labels: Labels<'_> = vec![
                ("zone", z.apex.to_string()),
                ("upstream", u.target.to_string()),
            ];
            up.push((labels.clone(), f64::from(u8::from(u.is_up()))));
            failures.push((labels.clone(), u.stats.failures.load(Ordering::Relaxed)));
            requests.push((labels.clone(), u.stats.requests.load(Ordering::Relaxed)));
            rtt.push((labels, u.stats.rtt.snapshot()));
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
    seconds_histogram(
        enc,
        "forward_upstream_rtt",
        "Round-trip time of answered upstream queries.",
        &rtt,
    )
}

fn encode_zones(zones: &[ForwardZone], enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let zl = |z: &ForwardZone| -> Labels<'_> { vec![("zone", z.apex.to_string())] };
    let per_zone = |f: fn(&ZoneStats) -> &AtomicU64| -> Vec<_> {
        zones
            .iter()
            .map(|z| (zl(z), f(&z.stats).load(Ordering::Relaxed)))
            .collect()
    };
    counter(
        enc,
        "forward_cache_hits",
        "Forwarded queries answered from the cache.",
        &per_zone(|s| &s.cache_hits),
    )?;
    counter(
        enc,
        "forward_cache_misses",
        "Forwarded queries that went upstream.",
        &per_zone(|s| &s.cache_misses),
    )?;
    counter(
        enc,
        "forward_stale_served",
        "Expired answers served because no upstream answered (RFC 8767).",
        &per_zone(|s| &s.stale_served),
    )?;
    counter(
        enc,
        "forward_loops",
        "Queries refused with SERVFAIL because they had been forwarded too often.",
        &per_zone(|s| &s.loops),
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
