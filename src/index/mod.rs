//! The index: plain data, no I/O. Kubernetes objects arrive here already cut
//! down to the minimal structs below (converted by `watch`); one writer per
//! cluster (`ClusterStore`) folds changes in and publishes immutable
//! `Snapshot`s through an `ArcSwap`, so readers never wait on writers.

pub mod apex;
mod build;
mod from_records;
mod journal;
pub mod meta;
mod object;
pub mod records;
mod rrset;
mod sharded;
mod snapshot;
mod status;
mod status_metrics;
mod store;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwapOption;

pub use from_records::TransferredZone;
pub use journal::{Entry, PodChange, ServiceChange, ZoneJournal, next_serial, serial_gt};
pub use object::*;
pub use rrset::{Node, QNAME_POINTER, Rrset, RrsetBuilder, push_rr_tail};
pub use sharded::ShardedMap;
pub use snapshot::{ClustersetRecords, ServiceRecords, Snapshot, SnapshotGuard};
pub use status::{ClusterStatus, FailureCause, unix_ms};
pub use status_metrics::{ClusterMetrics, encode_cluster_status};
pub use store::ClusterStore;

use crate::config::{ClusterSettings, PodsMode, ServiceAddress, Source};
use crate::dnsname::WireName;

/// What the snapshot builder needs to know about its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    pub zone: WireName,
    pub ttl: u32,
    pub namespaces: Vec<String>,
    pub service_address: ServiceAddress,
    pub pods: PodsMode,
    pub endpoint_pod_names: bool,
    /// The clusterset zone, when the config has one: services then also
    /// carry their clusterset records.
    pub clusterset: Option<WireName>,
    /// The zone is transferred to secondaries (`transfer:` is configured):
    /// services then also carry their metadata records (design.md §7).
    pub transfer: bool,
}

impl ClusterSpec {
    pub fn from_settings(c: &ClusterSettings, ttl: u32) -> Self {
        Self {
            name: c.name.clone(),
            zone: c.zone.clone(),
            ttl,
            namespaces: c.namespaces.clone(),
            service_address: c.service_address,
            // A transferred zone answers the pods its primary transferred,
            // whatever its `pods` mode was (design.md §7).
            pods: match c.source {
                Source::Primary(_) => PodsMode::Verified,
                _ => c.pods,
            },
            endpoint_pod_names: c.endpoint_pod_names,
            clusterset: None,
            transfer: false,
        }
    }

    /// Every configured cluster's spec, in config order, with the
    /// clusterset zone when there is one: what the server indexes.
    pub fn all(settings: &crate::config::Settings) -> Vec<Self> {
        let clusterset = settings.clusterset.as_ref().map(|cs| cs.zone.clone());
        settings
            .clusters
            .iter()
            .map(|c| Self {
                transfer: settings.transfer.is_some(),
                ..Self::from_settings(c, settings.dns.ttl).with_clusterset(clusterset.clone())
            })
            .collect()
    }

    /// Adds the clusterset zone (names under it are built too).
    pub fn with_clusterset(mut self, zone: Option<WireName>) -> Self {
        self.clusterset = zone;
        self
    }

    pub fn watches_namespace(&self, ns: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == ns)
    }
}

/// Where one cluster's snapshots are published, and its sync state: shared
/// by the writer (watch), the answer engine and admin.
#[derive(Debug)]
pub struct ClusterHandle {
    pub spec: Arc<ClusterSpec>,
    snapshot: ArcSwapOption<Snapshot>,
    pub status: ClusterStatus,
    /// The serial and changes of the cluster's zone (shared by every
    /// cluster of a shared zone).
    pub journal: Arc<ZoneJournal>,
    /// Asks the cluster's source to look for changes at once: a NOTIFY for
    /// a `primary:` zone was accepted (RFC 1996).
    pub refresh: tokio::sync::Notify,
}

impl ClusterHandle {
    pub fn new(spec: ClusterSpec) -> Self {
        Self::with_journal(spec, Arc::new(ZoneJournal::default()))
    }

    /// A cluster whose zone's serial and journal are `journal` (clusters
    /// sharing a zone share one).
    pub fn with_journal(spec: ClusterSpec, journal: Arc<ZoneJournal>) -> Self {
        Self {
            spec: Arc::new(spec),
            snapshot: ArcSwapOption::const_empty(),
            status: ClusterStatus::default(),
            journal,
            refresh: tokio::sync::Notify::new(),
        }
    }

    /// The current snapshot; `None` until the cluster has synced once.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    /// A cheap read guard for the hot path (no refcount traffic).
    pub fn load(&self) -> SnapshotGuard {
        self.snapshot.load()
    }

    /// Publishes a snapshot under the zone's next serial; the first publish
    /// marks the cluster synced.
    pub fn publish(&self, snap: Arc<Snapshot>) {
        self.publish_at(snap, None);
    }

    /// Publishes a snapshot under `serial` when the source dictates one (a
    /// transferred zone keeps its primary's), else the zone's next serial,
    /// and, when the zone is transferred out, journals what changed since
    /// the last one (the journal holds old Service records alive, up to
    /// `JOURNAL_WEIGHT`: nothing reads it without `transfer:`).
    pub fn publish_at(&self, mut snap: Arc<Snapshot>, serial: Option<u32>) {
        // Serial, journal and snapshot change together for readers that
        // hold the zone consistent (`ZoneJournal::consistent`).
        let _publishing = self.journal.publishing();
        let old = if self.spec.transfer {
            self.snapshot.load_full()
        } else {
            None
        };
        let serial = self.journal.record(old.as_deref(), &snap, serial);
        match Arc::get_mut(&mut snap) {
            Some(s) => s.serial = serial,
            None => {
                let mut s = Snapshot::clone(&snap);
                s.serial = serial;
                snap = Arc::new(s);
            }
        }
        self.snapshot.store(Some(snap));
        self.status.publishes.fetch_add(1, Ordering::Relaxed);
        self.status.synced.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PodsMode, ServiceAddress};
    use std::collections::HashSet;
    use std::time::Duration;

    /// A zone's publishes, one namespace added each, and whether the
    /// journal then leads from the first serial to the last.
    fn journals_with(transfer: bool) -> bool {
        let handle = ClusterHandle::new(ClusterSpec {
            name: "c".into(),
            zone: WireName::parse("cluster.c").expect("zone"),
            ttl: 5,
            namespaces: Vec::new(),
            service_address: ServiceAddress::ClusterIp,
            pods: PodsMode::Disabled,
            endpoint_pod_names: false,
            clusterset: None,
            transfer,
        });
        handle.publish(Arc::new(Snapshot::default()));
        let first = handle.journal.serial();
        for ns in ["a", "b"] {
            let mut next = Snapshot::clone(&handle.snapshot().expect("published"));
            let mut set = HashSet::clone(&next.namespaces);
            set.insert(Box::from(ns.as_bytes()));
            next.namespaces = Arc::new(set);
            handle.publish(Arc::new(next));
        }
        assert!(
            serial_gt(handle.journal.serial(), first),
            "serials rise either way"
        );
        handle.journal.since(first).is_some_and(|e| e.len() == 2)
    }

    #[test]
    fn only_a_zone_transferred_out_journals_its_changes() {
        assert!(journals_with(true));
        // Without `transfer:` nothing reads the journal, and it would hold
        // old Service records alive up to JOURNAL_WEIGHT.
        assert!(!journals_with(false));
    }

    #[test]
    fn a_failed_probe_dates_the_failure_from_its_send_not_from_the_last_success() {
        let s = ClusterStatus::default();
        s.note_probe_ok();
        let sent = unix_ms() + 400;
        s.note_probe_failure(sent, FailureCause::Stalled);
        assert_eq!(s.failing_since_ms(), Some(sent));
        // A later failure keeps the first date; an answer clears it.
        s.note_probe_failure(sent + 1000, FailureCause::Stalled);
        assert_eq!(s.failing_since_ms(), Some(sent));
        let after = Duration::from_secs(2);
        assert!(!s.stale(after, sent + 2000));
        assert!(s.stale(after, sent + 2001));
        s.note_probe_ok();
        assert_eq!(s.failing_since_ms(), None);
        assert!(!s.stale(after, sent + 10_000));
    }

    #[test]
    fn an_event_after_the_probe_was_sent_moves_the_failure_date_forward() {
        let s = ClusterStatus::default();
        s.note_event();
        let event = s.last_event_ms();
        s.note_probe_failure(event - 300, FailureCause::Stalled);
        assert_eq!(s.failing_since_ms(), Some(event));
    }

    #[test]
    fn watch_and_probe_failures_combine_to_the_earliest() {
        let s = ClusterStatus::default();
        let probe = unix_ms() + 5_000;
        s.note_probe_failure(probe, FailureCause::Unreachable);
        s.note_failure(FailureCause::Unauthorized);
        let watch = s.failing_since_ms().expect("failing");
        assert!(watch < probe);
        assert_eq!(s.failing_cause(), Some(FailureCause::Unauthorized));
        // A working watch clears only the watch's failure.
        s.note_watch_ok();
        assert_eq!(s.failing_since_ms(), Some(probe));
        assert_eq!(s.failing_cause(), Some(FailureCause::Unreachable));
        assert_eq!(s.failures(FailureCause::Unauthorized), 1);
        s.note_probe_ok();
        assert_eq!(s.failing_cause(), None);
    }
}
