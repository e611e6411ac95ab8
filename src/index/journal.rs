//! Serials and the change journal of one zone, for zone transfers (design.md
//! §7): every publish of a snapshot of the zone takes the next SOA serial
//! (RFC 1982 arithmetic), and what it changed is kept, bounded, so IXFR can
//! answer the difference since a serial (RFC 1995). Several clusters sharing
//! one zone share its journal. Plain data under a mutex; the writer holds it
//! for the length of one publish, readers for a copy of the entries.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::ServiceRecords;
use super::snapshot::Snapshot;

/// RFC 1982 §3.2: `a` is greater than `b` in serial number arithmetic.
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// The serial after `prev` at `now_ms`: the clock in milliseconds (modulo
/// 2^32), or `prev + 1` when that is not greater. Publishes are at least a
/// millisecond apart (the writer's batching), so a serial never runs ahead
/// of the clock for long, and a restarted crossdns starts above every serial
/// it handed out before: secondaries never see it go backwards (design.md
/// §7). The clock wraps every 49.7 days; RFC 1982 compares correctly across
/// the wrap for serials less than 24.8 days apart.
pub fn next_serial(prev: u32, now_ms: u64) -> u32 {
    let clock = now_ms as u32;
    if serial_gt(clock, prev) {
        clock
    } else {
        prev.wrapping_add(1)
    }
}

/// One service whose records a publish changed: its key (`<svc>.<ns>` wire)
/// and its records before and after (`None`: absent).
#[derive(Debug, Clone)]
pub struct ServiceChange {
    pub key: Box<[u8]>,
    pub old: Option<Arc<ServiceRecords>>,
    pub new: Option<Arc<ServiceRecords>>,
}

/// One pod address (`pods: verified`) whose namespaces changed.
#[derive(Debug, Clone)]
pub struct PodChange {
    pub ip: IpAddr,
    pub old: Option<Arc<[Box<str>]>>,
    pub new: Option<Arc<[Box<str>]>>,
}

/// A set of namespaces (lower-case names), as a snapshot holds it.
pub type Namespaces = Arc<HashSet<Box<[u8]>>>;

/// What one publish changed, from serial `from` to serial `to`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub from: u32,
    pub to: u32,
    pub services: Vec<ServiceChange>,
    /// The namespace set before and after, when it changed.
    pub namespaces: Option<(Namespaces, Namespaces)>,
    pub pods: Vec<PodChange>,
}

impl Entry {
    /// Service records this entry holds alive (what bounds the journal).
    fn weight(&self) -> usize {
        1 + self.services.len() + self.pods.len()
    }
}

/// How much the journal keeps: entries, weighted by the services they hold.
/// Past it, the oldest go, and an IXFR from before them is answered whole.
pub const JOURNAL_WEIGHT: usize = 20_000;

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<Entry>,
    weight: usize,
}

/// The serial and recent changes of one zone.
#[derive(Debug)]
pub struct ZoneJournal {
    serial: AtomicU32,
    /// Bumped on every publish, for waiters (NOTIFY senders) that poll.
    publishes: AtomicU64,
    inner: Mutex<Inner>,
    notify: tokio::sync::Notify,
    /// Held by a publish from its serial to the snapshot's store, and by
    /// readers that need the serial and every member's snapshot at one
    /// version (`consistent`): a shared zone's clusters publish one at a
    /// time, so a transfer never sees one member's change without the
    /// serial that carries it, or the other way round.
    publishing: Mutex<()>,
}

impl Default for ZoneJournal {
    fn default() -> Self {
        Self::new(next_serial(0, super::unix_ms()))
    }
}

impl ZoneJournal {
    pub fn new(serial: u32) -> Self {
        Self {
            serial: AtomicU32::new(serial),
            publishes: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
            notify: tokio::sync::Notify::new(),
            publishing: Mutex::new(()),
        }
    }

    /// The zone's current SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial.load(Ordering::Acquire)
    }

    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
    }

    /// Resolves at the next publish after the call (not after the first
    /// poll: check the serial after calling, then await, and no publish
    /// in between is missed).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Held across one publish (serial, journal entry and snapshot store).
    pub(super) fn publishing(&self) -> MutexGuard<'_, ()> {
        self.publishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` while no publish of this zone is under way: what `f` loads
    /// (the members' snapshots, `serial()`) belongs to one version. Held for
    /// as long as `f` runs, so `f` should only clone `Arc`s.
    pub fn consistent<R>(&self, f: impl FnOnce() -> R) -> R {
        let _publishing = self.publishing();
        f()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `new` replaces `old` (one cluster's snapshots of this
    /// zone) and returns the serial `new` carries: `serial`, when a source
    /// dictates it (a transferred zone keeps its primary's), else the next
    /// one.
    pub(super) fn record(
        &self,
        old: Option<&Snapshot>,
        new: &Snapshot,
        serial: Option<u32>,
    ) -> u32 {
        let mut inner = self.lock();
        let from = self.serial();
        let to = serial.unwrap_or_else(|| next_serial(from, super::unix_ms()));
        if let Some(old) = old {
            let entry = diff(from, to, old, new);
            inner.weight += entry.weight();
            inner.entries.push_back(entry);
            while inner.weight > JOURNAL_WEIGHT
                && let Some(gone) = inner.entries.pop_front()
            {
                inner.weight -= gone.weight();
            }
        } else if serial.is_some() {
            // A transferred zone's first (or a whole new) copy: what came
            // before is unknown, so nothing older can be answered by IXFR.
            inner.entries.clear();
            inner.weight = 0;
        }
        self.serial.store(to, Ordering::Release);
        self.publishes.fetch_add(1, Ordering::Relaxed);
        self.notify.notify_waiters();
        to
    }

    /// The entries that lead from serial `since` to the current one, oldest
    /// first, or `None` when the journal no longer reaches back that far
    /// (or `since` is not a serial this zone had): answer the whole zone.
    pub fn since(&self, since: u32) -> Option<Vec<Entry>> {
        let inner = self.lock();
        let current = self.serial();
        if since == current {
            return Some(Vec::new());
        }
        let start = inner.entries.iter().position(|e| e.from == since)?;
        let entries: Vec<Entry> = inner.entries.iter().skip(start).cloned().collect();
        // A publish that journals nothing (a cluster's first snapshot, say a
        // shared zone's second member or a watch restarted by a reload)
        // leaves a gap: entries across it do not lead from `since` to now.
        let chained = entries.windows(2).all(|w| w[0].to == w[1].from);
        let current_at_end = entries.last().is_some_and(|e| e.to == current);
        (chained && current_at_end).then_some(entries)
    }
}

/// What changed between two snapshots of one cluster: only the shards that
/// differ are looked at, so a one-service change costs one shard's scan.
fn diff(from: u32, to: u32, old: &Snapshot, new: &Snapshot) -> Entry {
    let services = old
        .services
        .diff(&new.services, Arc::ptr_eq)
        .map(|(key, old, new)| ServiceChange {
            key: key.clone(),
            old: old.cloned(),
            new: new.cloned(),
        })
        .collect();
    let pods = old
        .pod_ips
        .diff(&new.pod_ips, Arc::ptr_eq)
        .map(|(ip, old, new)| PodChange {
            ip: *ip,
            old: old.cloned(),
            new: new.cloned(),
        })
        .collect();
    let namespaces = (!Arc::ptr_eq(&old.namespaces, &new.namespaces)
        && old.namespaces != new.namespaces)
        .then(|| (Arc::clone(&old.namespaces), Arc::clone(&new.namespaces)));
    Entry {
        from,
        to,
        services,
        namespaces,
        pods,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_across_the_wrap_and_never_go_back() {
        assert!(serial_gt(2, 1));
        assert!(!serial_gt(1, 2));
        assert!(serial_gt(5, u32::MAX - 5), "past the wrap");
        assert!(!serial_gt(1, 1));
        // The clock, when it is ahead; else one more.
        assert_eq!(next_serial(100, 5_000), 5_000);
        assert_eq!(next_serial(5_000, 5_000), 5_001);
        assert_eq!(next_serial(9_000, 5_000), 9_001);
        let wrapped = (1u64 << 32) + 7;
        assert_eq!(next_serial(u32::MAX - 3, wrapped), 7);
    }

    #[test]
    fn since_answers_whole_zone_across_a_publish_that_journaled_nothing() {
        let j = ZoneJournal::new(100);
        let snap = Snapshot::default();
        let a = j.record(None, &snap, None);
        let b = j.record(Some(&snap), &snap, None);
        assert_eq!(j.since(a).map(|e| e.len()), Some(1));
        // Another cluster of the zone publishes its first snapshot: what
        // it brought is in no entry.
        let c = j.record(None, &snap, None);
        let d = j.record(Some(&snap), &snap, None);
        assert!(serial_gt(d, c) && serial_gt(c, b));
        assert!(j.since(a).is_none(), "entries across the gap were chained");
        assert!(j.since(b).is_none());
        let from_c = j.since(c).expect("after the gap");
        assert_eq!((from_c.len(), from_c[0].from, from_c[0].to), (1, c, d));
        assert_eq!(j.since(d).map(|e| e.len()), Some(0));
        assert!(j.since(12345).is_none());
    }
}
