//! A cluster's sync state: synced, failing since when and why, counters
//! of its source and writer. Shared by the writer (watch), the answer engine
//! (staleness) and admin (`/readyz`, `/metrics`).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::Kind;

/// Why a cluster's source failed, as `/metrics` (`cause` label) and the
/// log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCause {
    /// No TCP connection (refused, reset, no route, connect timeout).
    Unreachable,
    /// The TLS handshake failed: the certificate is not trusted, expired or
    /// for another name.
    Tls,
    /// The apiserver refused the credentials (401) or the identity (403);
    /// a DNS primary answered REFUSED or NOTAUTH.
    Unauthorized,
    /// The apiserver asked to slow down (429, with its Retry-After).
    Throttled,
    /// The apiserver answered 5xx; a DNS primary answered SERVFAIL (or
    /// another error RCODE).
    ServerError,
    /// The apiserver sent something that is not JSON, or not the protocol.
    Garbage,
    /// Connected, but no answer in time (a stalled apiserver).
    Stalled,
    /// No credentials could be had: the kubeconfig does not load, or its
    /// exec plugin or token file fails.
    Credentials,
    /// A manifests folder could not be read.
    Unreadable,
    /// A DNS primary's response was not signed with the source's TSIG key,
    /// or its signature did not verify (RFC 8945).
    Tsig,
    /// Anything else (an unexpected HTTP status, say).
    Other,
}

impl FailureCause {
    pub const ALL: [FailureCause; 11] = [
        FailureCause::Unreachable,
        FailureCause::Tls,
        FailureCause::Unauthorized,
        FailureCause::Throttled,
        FailureCause::ServerError,
        FailureCause::Garbage,
        FailureCause::Stalled,
        FailureCause::Credentials,
        FailureCause::Unreadable,
        FailureCause::Tsig,
        FailureCause::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::Unreachable => "unreachable",
            FailureCause::Tls => "tls",
            FailureCause::Unauthorized => "unauthorized",
            FailureCause::Throttled => "throttled",
            FailureCause::ServerError => "server_error",
            FailureCause::Garbage => "garbage",
            FailureCause::Stalled => "stalled",
            FailureCause::Credentials => "credentials",
            FailureCause::Unreadable => "unreadable",
            FailureCause::Tsig => "tsig",
            FailureCause::Other => "other",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    fn from_slot(slot: u8) -> Option<Self> {
        slot.checked_sub(1)
            .and_then(|i| Self::ALL.get(usize::from(i)).copied())
    }

    fn slot(self) -> u8 {
        self.index() as u8 + 1
    }
}

/// Health counters of one cluster's sources, for `/readyz`, `/metrics` and
/// the clusterset's staleness rule.
#[derive(Debug, Default)]
pub struct ClusterStatus {
    pub(super) synced: AtomicBool,
    /// The published snapshot holds a complete list of StatefulSets (they
    /// do not gate `synced`: RBAC may refuse them).
    statefulsets_listed: AtomicBool,
    /// Unix milliseconds of the last event from the source.
    last_event_ms: AtomicU64,
    /// Since when the watch has been erroring; 0 when it is fine.
    watch_failing_since_ms: AtomicU64,
    /// Since the first unanswered apiserver probe, while probes fail; 0 when fine.
    probe_failing_since_ms: AtomicU64,
    pub watch_restarts: AtomicU64,
    pub skipped_objects: AtomicU64,
    pub publishes: AtomicU64,
    /// Services whose clusterset health (a ready endpoint) flipped.
    pub service_health_transitions: AtomicU64,
    objects: [AtomicU64; 5],
    /// Failed requests (watches, lists, probes), by `FailureCause` index.
    failures: [AtomicU64; 11],
    /// The cause of the current watch / probe failure (`FailureCause` slot,
    /// 0 for none).
    watch_cause: AtomicU8,
    probe_cause: AtomicU8,
    /// Complete lists delivered (the first sync and every relist).
    pub lists: AtomicU64,
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ClusterStatus {
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn statefulsets_listed(&self) -> bool {
        self.statefulsets_listed.load(Ordering::Acquire)
    }

    pub fn note_statefulsets_listed(&self) {
        self.statefulsets_listed.store(true, Ordering::Release);
    }

    /// The source delivered something.
    pub fn note_event(&self) {
        self.last_event_ms.store(unix_ms(), Ordering::Relaxed);
    }

    /// Every stream of the source works again.
    pub fn note_watch_ok(&self) {
        self.watch_failing_since_ms.store(0, Ordering::Relaxed);
        self.watch_cause.store(0, Ordering::Relaxed);
    }

    /// A watch or list failed with `cause`: counted, and the cause of the
    /// current failure until the source works again.
    pub fn note_failure(&self, cause: FailureCause) {
        self.note_watch_failure();
        self.count_failure(cause);
        self.watch_cause.store(cause.slot(), Ordering::Relaxed);
    }

    /// Counts a failed request that does not make the cluster failing (an
    /// optional kind's watch).
    pub fn count_failure(&self, cause: FailureCause) {
        self.failures[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed requests with `cause` so far.
    pub fn failures(&self, cause: FailureCause) -> u64 {
        self.failures[cause.index()].load(Ordering::Relaxed)
    }

    /// Why the source is failing now, if it is: the watch's cause, else the
    /// probe's.
    pub fn failing_cause(&self) -> Option<FailureCause> {
        let watch = (self.watch_failing_since_ms.load(Ordering::Relaxed) != 0)
            .then(|| FailureCause::from_slot(self.watch_cause.load(Ordering::Relaxed)))
            .flatten();
        let probe = (self.probe_failing_since_ms.load(Ordering::Relaxed) != 0)
            .then(|| FailureCause::from_slot(self.probe_cause.load(Ordering::Relaxed)))
            .flatten();
        watch.or(probe)
    }

    pub fn last_event_ms(&self) -> u64 {
        self.last_event_ms.load(Ordering::Relaxed)
    }

    /// The watch failed (keeps the earliest failure time).
    pub fn note_watch_failure(&self) {
        let _ = self.watch_failing_since_ms.compare_exchange(
            0,
            unix_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The apiserver answered a liveness probe.
    pub fn note_probe_ok(&self) {
        self.probe_failing_since_ms.store(0, Ordering::Relaxed);
        self.probe_cause.store(0, Ordering::Relaxed);
    }

    /// A probe sent at `sent_ms` got no answer. The failure is dated from
    /// that send (or a later event, if one arrived meanwhile): the apiserver
    /// was not known to be down before it, so a stall shorter than
    /// `stale_after` never makes the cluster stale, and a longer one does
    /// so at most one probe interval late.
    pub fn note_probe_failure(&self, sent_ms: u64, cause: FailureCause) {
        self.failures[cause.index()].fetch_add(1, Ordering::Relaxed);
        self.probe_cause.store(cause.slot(), Ordering::Relaxed);
        let since = sent_ms.max(self.last_event_ms());
        let _ = self.probe_failing_since_ms.compare_exchange(
            0,
            since,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Unix milliseconds since when the source has been failing, if it is.
    pub fn failing_since_ms(&self) -> Option<u64> {
        let w = self.watch_failing_since_ms.load(Ordering::Relaxed);
        let p = self.probe_failing_since_ms.load(Ordering::Relaxed);
        match (w, p) {
            (0, 0) => None,
            (0, t) | (t, 0) => Some(t),
            (a, b) => Some(a.min(b)),
        }
    }

    /// True when the source has been failing for longer than `after`.
    pub fn stale(&self, after: std::time::Duration, now_ms: u64) -> bool {
        self.failing_since_ms()
            .is_some_and(|t| now_ms.saturating_sub(t) > after.as_millis() as u64)
    }

    pub fn objects(&self, kind: Kind) -> u64 {
        self.objects[kind as usize].load(Ordering::Relaxed)
    }

    pub fn set_objects(&self, kind: Kind, n: usize) {
        self.objects[kind as usize].store(n as u64, Ordering::Relaxed);
    }
}
