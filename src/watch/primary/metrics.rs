//! The `primary:` sources' own counters, as a `MetricSource`: checks by
//! what triggered them, transfers by type, the serial held, the age of the
//! last answered check and of the last transfer, and the names skipped.
//! Failures by cause are the cluster's (`crossdns_cluster_failures_total`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::DescriptorEncoder;

use crate::index::unix_ms;
use crate::metrics::{Labels, MetricSource, counter, gauge, seconds_gauge};

/// What started a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The `poll` interval (and the first check).
    Poll,
    /// An accepted NOTIFY.
    Notify,
}

impl Trigger {
    const ALL: [Trigger; 2] = [Trigger::Poll, Trigger::Notify];

    fn as_str(self) -> &'static str {
        match self {
            Trigger::Poll => "poll",
            Trigger::Notify => "notify",
        }
    }
}

/// How a transfer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    Axfr,
    /// IXFR, as differences.
    Ixfr,
    /// IXFR answered with the whole zone (RFC 1995 §4).
    IxfrFull,
}

impl TransferKind {
    const ALL: [TransferKind; 3] = [
        TransferKind::Axfr,
        TransferKind::Ixfr,
        TransferKind::IxfrFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Axfr => "axfr",
            TransferKind::Ixfr => "ixfr",
            TransferKind::IxfrFull => "ixfr_full",
        }
    }
}

/// One `primary:` source's counters.
#[derive(Debug)]
pub struct PrimaryStats {
    pub cluster: String,
    checks: [AtomicU64; 2],
    transfers: [AtomicU64; 3],
    /// Unix ms of the last answered check / applied transfer; 0: never.
    last_check_ms: AtomicU64,
    last_transfer_ms: AtomicU64,
    /// The serial held plus one; 0 before the first transfer.
    serial: AtomicU64,
    skipped_names: AtomicU64,
}

impl PrimaryStats {
    pub fn new(cluster: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            checks: Default::default(),
            transfers: Default::default(),
            last_check_ms: AtomicU64::new(0),
            last_transfer_ms: AtomicU64::new(0),
            serial: AtomicU64::new(0),
            skipped_names: AtomicU64::new(0),
        }
    }

    pub fn count_check(&self, trigger: Trigger) {
        self.checks[trigger as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn note_check(&self) {
        self.last_check_ms.store(unix_ms(), Ordering::Relaxed);
    }

    pub fn note_transfer(&self, kind: TransferKind, serial: u32, skipped_names: usize) {
        self.transfers[kind as usize].fetch_add(1, Ordering::Relaxed);
        self.last_transfer_ms.store(unix_ms(), Ordering::Relaxed);
        self.serial.store(u64::from(serial) + 1, Ordering::Relaxed);
        self.skipped_names
            .store(skipped_names as u64, Ordering::Relaxed);
    }

    /// Checks started by `trigger` so far.
    pub fn checks(&self, trigger: Trigger) -> u64 {
        self.checks[trigger as usize].load(Ordering::Relaxed)
    }

    /// Transfers of `kind` applied so far.
    pub fn transfers(&self, kind: TransferKind) -> u64 {
        self.transfers[kind as usize].load(Ordering::Relaxed)
    }
}

/// Every `primary:` source's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct PrimaryMetrics(pub Vec<Arc<PrimaryStats>>);

impl MetricSource for PrimaryMetrics {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        let now = unix_ms();
        let cl = |s: &PrimaryStats| -> Labels<'_> { vec![("cluster", s.cluster.clone())] };
        let mut checks = Vec::new();
        let mut transfers = Vec::new();
        for s in &self.0 {
            for t in Trigger::ALL {
                let mut l = cl(s);
                l.push(("trigger", t.as_str().to_owned()));
                checks.push((l, s.checks(t)));
            }
            for k in TransferKind::ALL {
                let mut l = cl(s);
                l.push(("type", k.as_str().to_owned()));
                transfers.push((l, s.transfers(k)));
            }
        }
        counter(
            enc,
            "primary_checks",
            "SOA checks of the primary servers, by what started them.",
            &checks,
        )?;
        counter(
            enc,
            "primary_transfers",
            "Zone transfers applied, by type (ixfr_full: an IXFR answered with the whole zone).",
            &transfers,
        )?;
        let age = |f: fn(&PrimaryStats) -> &AtomicU64| -> Vec<_> {
            self.0
                .iter()
                .filter_map(|s| {
                    let at = f(s).load(Ordering::Relaxed);
                    (at > 0).then(|| (cl(s), now.saturating_sub(at) as f64 / 1e3))
                })
                .collect()
        };
        seconds_gauge(
            enc,
            "primary_last_check_age",
            "Seconds since a primary server last answered an SOA check.",
            &age(|s| &s.last_check_ms),
        )?;
        seconds_gauge(
            enc,
            "primary_last_transfer_age",
            "Seconds since the last zone transfer was applied.",
            &age(|s| &s.last_transfer_ms),
        )?;
        let rows: Vec<_> = self
            .0
            .iter()
            .filter_map(|s| {
                let v = s.serial.load(Ordering::Relaxed);
                (v > 0).then(|| (cl(s), (v - 1) as f64))
            })
            .collect();
        gauge(
            enc,
            "primary_serial",
            "The primary's SOA serial of the data held.",
            &rows,
        )?;
        let rows: Vec<_> = self
            .0
            .iter()
            .map(|s| (cl(s), s.skipped_names.load(Ordering::Relaxed) as f64))
            .collect();
        gauge(
            enc,
            "primary_skipped_names",
            "Names transferred that lie outside the Kubernetes DNS grammar (not served).",
            &rows,
        )
    }
}
