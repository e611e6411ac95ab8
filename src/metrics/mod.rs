//! Metrics: per-listener-thread query counters (plain relaxed atomics, so the
//! hot path takes no lock and shares no cache line), summed at scrape time by
//! a prometheus-client `Collector`, plus per-cluster sync state read from the
//! clusters' status. Owns no I/O; `admin` serves the text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::answer::Outcome;
use crate::answer::clusterset::ClustersetStats;
use crate::answer::wire::{qtype, rcode};
use crate::forward::Forwarder;
use crate::index::{ClusterHandle, FailureCause, Kind, unix_ms};

const QTYPES: [(u16, &str); 9] = [
    (qtype::A, "A"),
    (qtype::AAAA, "AAAA"),
    (qtype::SRV, "SRV"),
    (qtype::PTR, "PTR"),
    (qtype::TXT, "TXT"),
    (qtype::CNAME, "CNAME"),
    (qtype::SOA, "SOA"),
    (qtype::NS, "NS"),
    (qtype::ANY, "ANY"),
];
const QTYPE_SLOTS: usize = QTYPES.len() + 1;

const RCODES: [(u8, &str); 7] = [
    (rcode::NOERROR, "NOERROR"),
    (rcode::FORMERR, "FORMERR"),
    (rcode::SERVFAIL, "SERVFAIL"),
    (rcode::NXDOMAIN, "NXDOMAIN"),
    (rcode::NOTIMP, "NOTIMP"),
    (rcode::REFUSED, "REFUSED"),
    (rcode::BADVERS, "BADVERS"),
];
const RCODE_SLOTS: usize = RCODES.len() + 1;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 1.0,
];

fn qtype_slot(t: u16) -> usize {
    QTYPES
        .iter()
        .position(|(q, _)| *q == t)
        .unwrap_or(QTYPES.len())
}

fn rcode_slot(r: u8) -> usize {
    RCODES
        .iter()
        .position(|(c, _)| *c == r)
        .unwrap_or(RCODES.len())
}

/// Counters owned by one listener thread or task.
#[derive(Debug)]
pub struct WorkerStats {
    zones: usize,
    /// [zone (last = none)][qtype][rcode]
    queries: Box<[AtomicU64]>,
    truncated: AtomicU64,
    dropped: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_sum_ns: AtomicU64,
    latency_count: AtomicU64,
}

impl WorkerStats {
    fn new(zones: usize) -> Self {
        let n = (zones + 1) * QTYPE_SLOTS * RCODE_SLOTS;
        Self {
            zones,
            queries: (0..n).map(|_| AtomicU64::new(0)).collect(),
            truncated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            buckets: Default::default(),
            latency_sum_ns: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
        }
    }

    fn slot(&self, zone: usize, qt: usize, rc: usize) -> usize {
        (zone * QTYPE_SLOTS + qt) * RCODE_SLOTS + rc
    }

    pub fn record(&self, o: &Outcome, elapsed: Duration) {
        let zone = o
            .zone
            .map_or(self.zones, |z| usize::from(z).min(self.zones));
        let i = self.slot(zone, qtype_slot(o.qtype), rcode_slot(o.rcode));
        self.queries[i].fetch_add(1, Ordering::Relaxed);
        if o.truncated {
            self.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// A packet that got no reply (not a query, or too short).
    pub fn record_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

mod views;

#[derive(Debug)]
struct Inner {
    zone_names: Vec<String>,
    workers: Mutex<Vec<Arc<WorkerStats>>>,
    clusters: Vec<Arc<ClusterHandle>>,
    forwarder: Arc<Forwarder>,
    clusterset: Option<Arc<ClustersetStats>>,
}

/// The metrics of one running crossdns.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

impl Metrics {
    pub fn new(
        zone_names: Vec<String>,
        clusters: Vec<Arc<ClusterHandle>>,
        forwarder: Arc<Forwarder>,
        clusterset: Option<Arc<ClustersetStats>>,
    ) -> Self {
        Self(Arc::new(Inner {
            zone_names,
            workers: Mutex::new(Vec::new()),
            clusters,
            forwarder,
            clusterset,
        }))
    }

    /// Counters for a new listener thread or task.
    pub fn worker(&self) -> Arc<WorkerStats> {
        let w = Arc::new(WorkerStats::new(self.0.zone_names.len()));
        if let Ok(mut list) = self.0.workers.lock() {
            list.push(Arc::clone(&w));
        }
        w
    }

    /// The Prometheus/OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut registry = Registry::with_prefix("crossdns");
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    fn workers(&self) -> Vec<Arc<WorkerStats>> {
        self.0.workers.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, u64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(labels)?
            .encode_counter::<NoLabelSet, _, f64>(v, None)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, f64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

struct Histogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for Histogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> std::fmt::Result {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let workers = self.workers();
        let zones = self.0.zone_names.len();

        let mut rows = Vec::new();
        for z in 0..=zones {
            let zone = self
                .0
                .zone_names
                .get(z)
                .cloned()
                .unwrap_or_else(|| "none".to_owned());
            for qt in 0..QTYPE_SLOTS {
                for rc in 0..RCODE_SLOTS {
                    let total: u64 = workers
                        .iter()
                        .map(|w| w.queries[w.slot(z, qt, rc)].load(Ordering::Relaxed))
                        .sum();
                    if total == 0 {
                        continue;
                    }
                    let qtype = QTYPES.get(qt).map_or("other", |q| q.1);
                    let rcode = RCODES.get(rc).map_or("other", |r| r.1);
                    rows.push((
                        vec![
                            ("zone", zone.clone()),
                            ("qtype", qtype.to_owned()),
                            ("rcode", rcode.to_owned()),
                        ],
                        total,
                    ));
                }
            }
        }
        counter(
            &mut enc,
            "queries",
            "DNS queries answered, by zone, query type and response code.",
            &rows,
        )?;

        let sum = |f: fn(&WorkerStats) -> &AtomicU64| {
            workers
                .iter()
                .map(|w| f(w).load(Ordering::Relaxed))
                .sum::<u64>()
        };
        counter(
            &mut enc,
            "responses_truncated",
            "UDP responses sent with TC set.",
            &[(vec![], sum(|w| &w.truncated))],
        )?;
        counter(
            &mut enc,
            "packets_dropped",
            "Packets that got no reply (responses, runts).",
            &[(vec![], sum(|w| &w.dropped))],
        )?;

        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(BUCKETS.len());
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += workers
                .iter()
                .map(|w| w.buckets[i].load(Ordering::Relaxed))
                .sum::<u64>();
            buckets.push((*le, cumulative));
        }
        let count = sum(|w| &w.latency_count);
        buckets.push((f64::INFINITY, count));
        let hist = Histogram {
            sum: sum(|w| &w.latency_sum_ns) as f64 / 1e9,
            count,
            buckets,
        };
        let m = enc.encode_descriptor(
            "query_duration_seconds",
            "Time from receiving a query to handing its response to the socket.",
            None,
            MetricType::Histogram,
        )?;
        hist.encode(m)?;

        self.encode_clusters(&mut enc)?;
        self.encode_clusterset(&mut enc)?;
        self.encode_forward(&mut enc)
    }
}

impl Metrics {
    fn encode_clusters(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let now = unix_ms();
        let cl = |c: &ClusterHandle| vec![("cluster", c.spec.name.clone())];
        let clusters = &self.0.clusters;
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
                (
                    cl(c),
                    now.saturating_sub(c.status.last_event_ms()) as f64 / 1e3,
                )
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
                (
                    cl(c),
                    c.status
                        .failing_since_ms()
                        .map_or(0.0, |t| now.saturating_sub(t) as f64 / 1e3),
                )
            })
            .collect();
        gauge(
            enc,
            "cluster_failing_seconds",
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
        )?;
        Ok(())
    }
}
