//! The listeners' query counters: one `WorkerStats` per listener thread or
//! task (plain relaxed atomics, so the hot path takes no lock and shares no
//! cache line), summed at scrape time. Labels come from `dnscode`'s tables
//! and the zone names `app` hands over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{AtomicHistogram, HistogramSnapshot, Labels, counter, seconds_histogram};
use crate::dnscode::{QTYPES, RCODES, qtype_index, rcode_index};

const QTYPE_SLOTS: usize = QTYPES.len() + 1;
const RCODE_SLOTS: usize = RCODES.len() + 1;

/// Upper bounds of the query-duration histogram, in seconds.
pub const DURATION_BUCKETS: [f64; 12] = [
    5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 1.0,
];

/// One answered query, as a listener reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// Index into the zone names `Metrics::new` was given (the zone's
    /// `ZoneId::index()`); `None` when the name was in no zone.
    pub zone: Option<usize>,
    pub qtype: u16,
    pub rcode: u8,
    /// A UDP response sent with TC set.
    pub truncated: bool,
}

/// Counters owned by one listener thread or task.
#[derive(Debug)]
pub struct WorkerStats {
    zones: usize,
    /// [zone (last = none)][qtype (last = other)][rcode (last = other)]
    queries: Box<[AtomicU64]>,
    truncated: AtomicU64,
    dropped: AtomicU64,
    duration: AtomicHistogram,
}

impl WorkerStats {
    fn new(zones: usize) -> Self {
        let n = (zones + 1) * QTYPE_SLOTS * RCODE_SLOTS;
        Self {
            zones,
            queries: (0..n).map(|_| AtomicU64::new(0)).collect(),
            truncated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            duration: AtomicHistogram::new(&DURATION_BUCKETS),
        }
    }

    fn slot(zone: usize, qt: usize, rc: usize) -> usize {
        (zone * QTYPE_SLOTS + qt) * RCODE_SLOTS + rc
    }

    /// Counts one answered query that took `elapsed`.
    pub fn record(&self, q: Answered, elapsed: Duration) {
        let zone = q.zone.map_or(self.zones, |z| z.min(self.zones));
        let qt = qtype_index(q.qtype).unwrap_or(QTYPES.len());
        let rc = rcode_index(q.rcode).unwrap_or(RCODES.len());
        self.queries[Self::slot(zone, qt, rc)].fetch_add(1, Ordering::Relaxed);
        if q.truncated {
            self.truncated.fetch_add(1, Ordering::Relaxed);
        }
        self.duration.observe(elapsed);
    }

    /// A packet that got no reply (not a query, or too short).
    pub fn record_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every listener's counters, and the zone names that label them.
#[derive(Debug)]
pub(super) struct Queries {
    zone_names: Vec<String>,
    workers: Mutex<Vec<Arc<WorkerStats>>>,
}

impl Queries {
    pub(super) fn new(zone_names: Vec<String>) -> Self {
        Self {
            zone_names,
            workers: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn worker(&self) -> Arc<WorkerStats> {
        let w = Arc::new(WorkerStats::new(self.zone_names.len()));
        if let Ok(mut list) = self.workers.lock() {
            list.push(Arc::clone(&w));
        }
        w
    }

    pub(super) fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let workers = self.workers.lock().map(|l| l.clone()).unwrap_or_default();
        let total = |f: &dyn Fn(&WorkerStats) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();

        let mut rows: Vec<(Labels<'_>, u64)> = Vec::new();
        for z in 0..=self.zone_names.len() {
            let zone = self.zone_names.get(z).map_or("none", String::as_str);
            for qt in 0..QTYPE_SLOTS {
                for rc in 0..RCODE_SLOTS {
                    let i = WorkerStats::slot(z, qt, rc);
                    let n = total(&|w| w.queries[i].load(Ordering::Relaxed));
                    if n == 0 {
                        continue;
                    }
                    let qtype = QTYPES.get(qt).map_or("other", |q| q.1);
                    let rcode = RCODES.get(rc).map_or("other", |r| r.1);
                    let labels = vec![
                        ("zone", zone.to_owned()),
                        ("qtype", qtype.to_owned()),
                        ("rcode", rcode.to_owned()),
                    ];
                    rows.push((labels, n));
                }
            }
        }
        counter(
            enc,
            "queries",
            "DNS queries answered, by zone, query type and response code.",
            &rows,
        )?;
        counter(
            enc,
            "responses_truncated",
            "UDP responses sent with TC set.",
            &[(vec![], total(&|w| w.truncated.load(Ordering::Relaxed)))],
        )?;
        counter(
            enc,
            "packets_dropped",
            "Packets that got no reply (responses, runts).",
            &[(vec![], total(&|w| w.dropped.load(Ordering::Relaxed)))],
        )?;
        let mut duration = HistogramSnapshot::empty(&DURATION_BUCKETS);
        for w in &workers {
            duration.add(&w.duration.snapshot());
        }
        seconds_histogram(
            enc,
            "query_duration",
            "Time from receiving a query to handing its response to the socket.",
            &[(vec![], duration)],
        )
    }
}
