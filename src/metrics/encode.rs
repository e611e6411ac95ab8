//! The small helpers every `MetricSource` encodes with: labelled counter and
//! gauge families, and a lock-free histogram whose snapshot obeys the
//! OpenMetrics invariants by construction. Knows no metric of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// One series' labels: (name, value) pairs.
pub type Labels<'a> = Vec<(&'a str, String)>;

/// A counter family (`<name>_total` samples), one sample per row.
pub fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels<'_>, u64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        // No `{}` on a sample without labels.
        if labels.is_empty() {
            m.encode_counter::<NoLabelSet, _, f64>(v, None)?;
        } else {
            m.encode_family(labels)?
                .encode_counter::<NoLabelSet, _, f64>(v, None)?;
        }
    }
    Ok(())
}

/// A gauge family, one sample per row.
pub fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels<'_>, f64)],
) -> std::fmt::Result {
    gauge_in(enc, name, help, None, rows)
}

/// A gauge family in seconds: `name` without the unit, which the
/// encoder appends (`<name>_seconds`, with `# UNIT` in OpenMetrics).
pub fn seconds_gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels<'_>, f64)],
) -> std::fmt::Result {
    gauge_in(enc, name, help, Some(&Unit::Seconds), rows)
}

fn gauge_in(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: &[(Labels<'_>, f64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            m.encode_gauge(v)?;
        } else {
            m.encode_family(labels)?.encode_gauge(v)?;
        }
    }
    Ok(())
}

/// A histogram family in seconds (`name` without the unit), one labelled
/// series per row.
pub fn seconds_histogram(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels<'_>, HistogramSnapshot)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, h) in rows {
        if labels.is_empty() {
            h.encode_to(&mut m)?;
        } else {
            h.encode_to(&mut m.encode_family(labels)?)?;
        }
    }
    Ok(())
}

/// A histogram of durations that any number of threads observe into with
/// two relaxed atomic adds and no lock.
///
/// There is no separate count: the count is the sum of the buckets read in
/// the same pass, so `+Inf` equals `_count` even while observations race a
/// scrape (a separate counter, read a moment apart, would not).
#[derive(Debug)]
pub struct AtomicHistogram {
    /// Upper bounds in seconds, increasing.
    bounds: &'static [f64],
    /// One slot per bound (observations above the previous bound and at
    /// most this one), plus one for those above the last bound.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(self.bounds.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's values at one moment: per-bucket (not cumulative) counts.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum_ns: u64,
}

impl HistogramSnapshot {
    /// No observations yet.
    pub fn empty(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum_ns: 0,
        }
    }

    /// Adds another snapshot with the same bounds (another thread's).
    pub fn add(&mut self, other: &Self) {
        debug_assert_eq!(self.bounds, other.bounds);
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn encode_to(&self, encoder: &mut MetricEncoder<'_>) -> std::fmt::Result {
        // prometheus-client 0.25's text encoder cumulates the bucket counts
        // it is given (`encode_histogram` in encoding/text.rs), so it gets
        // one count per bucket; the last, for `+Inf`, holds the
        // observations above the last bound.
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect();
        let sum = self.sum_ns as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, self.count(), &buckets, None)
    }
}

impl EncodeMetric for HistogramSnapshot {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        self.encode_to(&mut encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
