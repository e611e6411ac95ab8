//! The counters of zone distribution, per transferable zone: its serial,
//! transfers served by type and result, their messages and bytes, the time
//! of the last complete one, and NOTIFYs sent and acknowledged per target.
//! The transfer and NOTIFY paths only add to atomics; `Transfers` encodes
//! them as a `MetricSource` at scrape time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::DescriptorEncoder;

use super::message::Sent;
use crate::metrics::{Labels, counter, gauge};

/// How a transfer request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XfrResult {
    /// Sent in full (whole zone, increments, or "up to date").
    Ok,
    /// REFUSED: no `transfer:`, or outside `transfer.allow`.
    Refused,
    /// NOTAUTH: unsigned where a key is required, or a bad signature.
    NotAuth,
    /// SERVFAIL: the zone has not synced.
    ServFail,
    /// FORMERR: an IXFR without its SOA, or an unreadable TSIG.
    FormErr,
    /// The peer went away (or stalled) before the last message.
    Aborted,
}

impl XfrResult {
    pub const ALL: [XfrResult; 6] = [
        XfrResult::Ok,
        XfrResult::Refused,
        XfrResult::NotAuth,
        XfrResult::ServFail,
        XfrResult::FormErr,
        XfrResult::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            XfrResult::Ok => "ok",
            XfrResult::Refused => "refused",
            XfrResult::NotAuth => "notauth",
            XfrResult::ServFail => "servfail",
            XfrResult::FormErr => "formerr",
            XfrResult::Aborted => "aborted",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// AXFR (0) or IXFR (1).
pub const TYPES: [&str; 2] = ["axfr", "ixfr"];

/// One zone's counters.
#[derive(Debug)]
pub struct ZoneStats {
    requests: [[AtomicU64; 6]; 2],
    /// IXFRs answered with the whole zone (serial older than the journal).
    ixfr_full: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    /// Unix milliseconds of the last transfer sent in full; 0: none yet.
    last_ok_ms: AtomicU64,
    /// Per `transfer.notify` target, in config order.
    notify: Box<[(SocketAddr, AtomicU64, AtomicU64)]>,
}

impl ZoneStats {
    pub fn new(targets: &[SocketAddr]) -> Self {
        Self {
            requests: Default::default(),
            ixfr_full: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            last_ok_ms: AtomicU64::new(0),
            notify: targets
                .iter()
                .map(|t| (*t, AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
        }
    }

    /// A request of type `ixfr` (else AXFR) ended with `result` after
    /// sending `sent`.
    pub fn record(&self, ixfr: bool, result: XfrResult, sent: Sent) {
        self.requests[usize::from(ixfr)][result.index()].fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(sent.messages, Ordering::Relaxed);
        self.bytes.fetch_add(sent.bytes, Ordering::Relaxed);
        if result == XfrResult::Ok {
            self.last_ok_ms
                .store(crate::index::unix_ms(), Ordering::Relaxed);
        }
    }

    pub fn count_ixfr_full(&self) {
        self.ixfr_full.fetch_add(1, Ordering::Relaxed);
    }

    fn target(&self, target: SocketAddr) -> Option<&(SocketAddr, AtomicU64, AtomicU64)> {
        self.notify.iter().find(|(t, _, _)| *t == target)
    }

    pub fn notify_sent(&self, target: SocketAddr) {
        if let Some((_, sent, _)) = self.target(target) {
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn notify_acked(&self, target: SocketAddr) {
        if let Some((_, _, acked)) = self.target(target) {
            acked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One zone as the encoder sees it.
#[derive(Debug)]
pub struct ZoneRow<'a> {
    pub zone: String,
    pub serial: u32,
    pub stats: &'a ZoneStats,
}

/// The `crossdns_transfer_*` families.
pub fn encode(rows: &[ZoneRow<'_>], enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let zl = |r: &ZoneRow<'_>| -> Labels<'_> { vec![("zone", r.zone.clone())] };
    let serials: Vec<_> = rows.iter().map(|r| (zl(r), f64::from(r.serial))).collect();
    gauge(
        enc,
        "transfer_zone_serial",
        "The zone's SOA serial, as transfers and SOA queries give it.",
        &serials,
    )?;
    let mut requests = Vec::new();
    for r in rows {
        for (t, name) in TYPES.iter().enumerate() {
            for result in XfrResult::ALL {
                let mut labels = zl(r);
                labels.push(("type", (*name).to_owned()));
                labels.push(("result", result.as_str().to_owned()));
                let v = r.stats.requests[t][result.index()].load(Ordering::Relaxed);
                requests.push((labels, v));
            }
        }
    }
    counter(
        enc,
        "transfer_requests",
        "Zone transfer requests served, by type (axfr, ixfr) and result.",
        &requests,
    )?;
    let per_zone = |f: fn(&ZoneStats) -> &AtomicU64| -> Vec<_> {
        rows.iter()
            .map(|r| (zl(r), f(r.stats).load(Ordering::Relaxed)))
            .collect()
    };
    counter(
        enc,
        "transfer_ixfr_full",
        "IXFR requests answered with the whole zone: the serial was older than the journal.",
        &per_zone(|s| &s.ixfr_full),
    )?;
    counter(
        enc,
        "transfer_messages",
        "DNS messages sent in transfer responses.",
        &per_zone(|s| &s.messages),
    )?;
    counter(
        enc,
        "transfer_bytes",
        "Bytes of DNS messages sent in transfer responses.",
        &per_zone(|s| &s.bytes),
    )?;
    let last: Vec<_> = rows
        .iter()
        .filter(|r| r.stats.last_ok_ms.load(Ordering::Relaxed) > 0)
        .map(|r| {
            let ms = r.stats.last_ok_ms.load(Ordering::Relaxed);
            (zl(r), ms as f64 / 1e3)
        })
        .collect();
    crate::metrics::seconds_gauge(
        enc,
        "transfer_last_served_timestamp",
        "Unix time of the zone's last transfer sent in full.",
        &last,
    )?;
    let mut sent = Vec::new();
    let mut acked = Vec::new();
    for r in rows {
        for (target, s, a) in r.stats.notify.iter() {
            let mut labels = zl(r);
            labels.push(("target", target.to_string()));
            sent.push((labels.clone(), s.load(Ordering::Relaxed)));
            acked.push((labels, a.load(Ordering::Relaxed)));
        }
    }
    counter(
        enc,
        "transfer_notify_sent",
        "NOTIFY messages sent (RFC 1996), retries included.",
        &sent,
    )?;
    counter(
        enc,
        "transfer_notify_acked",
        "NOTIFY messages the target acknowledged.",
        &acked,
    )
}
