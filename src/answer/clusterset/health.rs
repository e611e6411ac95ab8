//! Health, in one place: a cluster is healthy for a Service when the
//! Service has at least one ready endpoint there and the cluster is not
//! stale, that is, its source has not been failing for longer than
//! `stale_after` (design.md §1–§2). Flips are logged and counted once, by
//! the monitor or by the answer that saw them first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::index::{ClusterHandle, ClustersetRecords, unix_ms};

/// Staleness per cluster, and the clusterset's counters for `/metrics`.
#[derive(Debug)]
pub struct ClustersetStats {
    pub stale_after: Duration,
    pub clusters: Vec<Arc<ClusterHandle>>,
    /// Answers where the preferred cluster (local, or first in order) was
    /// unhealthy and others answered.
    pub failovers: AtomicU64,
    /// Answers given under `all_down`.
    pub all_down: AtomicU64,
    /// Per cluster: healthy ↔ stale flips, seen by the monitor or by an
    /// answer, whichever noticed first.
    pub transitions: Vec<AtomicU64>,
    /// Per cluster: whether it was stale when last looked at.
    was_stale: Vec<AtomicBool>,
}

impl ClustersetStats {
    pub fn new(stale_after: Duration, clusters: &[Arc<ClusterHandle>]) -> Self {
        Self {
            stale_after,
            clusters: clusters.to_vec(),
            failovers: AtomicU64::new(0),
            all_down: AtomicU64::new(0),
            transitions: clusters.iter().map(|_| AtomicU64::new(0)).collect(),
            was_stale: clusters.iter().map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Whether cluster `i` is stale at `now_ms`; a change since the last
    /// look is logged and counted once. Answers call this too, so even a
    /// flip shorter than the monitor's period is recorded; the common case
    /// costs one relaxed load.
    pub fn stale(&self, i: usize, now_ms: u64) -> bool {
        let c = &self.clusters[i];
        let stale = c.status.stale(self.stale_after, now_ms);
        if self.was_stale[i].load(Ordering::Relaxed) != stale
            && self.was_stale[i]
                .compare_exchange(!stale, stale, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.transitions[i].fetch_add(1, Ordering::Relaxed);
            if stale {
                tracing::warn!(cluster = %c.spec.name, stale_after = ?self.stale_after, "cluster is stale: its source has failed for longer than stale_after; the clusterset leaves it out");
            } else {
                tracing::info!(cluster = %c.spec.name, "cluster is fresh again; back in the clusterset");
            }
        }
        stale
    }

    /// Whether cluster `i` can take part in answers at all: synced and not
    /// stale (the `crossdns_clusterset_cluster_fresh` gauge).
    pub fn fresh(&self, i: usize, now_ms: u64) -> bool {
        self.clusters[i].status.synced() && !self.stale(i, now_ms)
    }

    /// Whether cluster `i` is healthy for the Service whose records in that
    /// cluster are `entry`.
    pub fn healthy(&self, i: usize, entry: &ClustersetRecords, now_ms: u64) -> bool {
        entry.ready && !self.stale(i, now_ms)
    }

    /// Looks at every cluster every 100 ms, so transitions are logged and
    /// counted without queries; runs until aborted.
    pub async fn monitor(self: Arc<Self>) {
        loop {
            let now = unix_ms();
            for i in 0..self.clusters.len() {
                self.stale(i, now);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
