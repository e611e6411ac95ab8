//! The index: plain data, no I/O. Kubernetes objects arrive here already cut
//! down to the minimal structs below (converted by `watch`); one writer per
//! cluster (`ClusterStore`) folds changes in and publishes immutable
//! `Snapshot`s through an `ArcSwap`, so readers never wait on writers.

pub mod apex;
mod build;
mod from_records;
mod journal;
pub mod meta;
pub mod records;
mod rrset;
mod sharded;
mod snapshot;
mod status_metrics;
mod store;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

pub use from_records::TransferredZone;
pub use journal::{Entry, PodChange, ServiceChange, ZoneJournal, next_serial, serial_gt};
pub use rrset::{Node, QNAME_POINTER, Rrset, RrsetBuilder, push_rr_tail};
pub use sharded::ShardedMap;
pub use snapshot::{ClustersetRecords, ServiceRecords, Snapshot, SnapshotGuard};
pub use status_metrics::{ClusterMetrics, encode_cluster_status};
pub use store::ClusterStore;

use crate::config::{ClusterSettings, PodsMode, ServiceAddress, Source};
use crate::dnsname::WireName;

/// `namespace/name` of an object (cluster-scoped objects: empty namespace).
///
/// One shared allocation: the store files a key in several maps (by kind,
/// by source, by service), so a clone is a reference count rather than two
/// strings, which is most of what an index of 100,000s of objects would
/// otherwise spend on keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjKey {
    /// `namespace/name`.
    full: Arc<str>,
    namespace_len: u32,
}

impl ObjKey {
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        let (namespace, name) = (namespace.as_ref(), name.as_ref());
        Self {
            full: format!("{namespace}/{name}").into(),
            namespace_len: namespace.len() as u32,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.full[..self.namespace_len as usize]
    }

    pub fn name(&self) -> &str {
        &self.full[self.namespace_len as usize + 1..]
    }
}

impl Ord for ObjKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.namespace(), self.name()).cmp(&(other.namespace(), other.name()))
    }
}

impl PartialOrd for ObjKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

impl std::fmt::Debug for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjKey({:?})", &*self.full)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The SRV label without its underscore (RFC 2782 `_proto`).
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Empty for unnamed ports, which get no SRV records.
    pub name: Box<str>,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// Has a virtual IP per family (`spec.clusterIPs`); may be empty while
    /// the apiserver has not allocated one.
    ClusterIp(Box<[IpAddr]>),
    /// `clusterIP: None`: answered from endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(WireName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbIngress {
    Ip(IpAddr),
    Hostname(WireName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ObjKey,
    pub kind: ServiceKind,
    pub ports: Box<[Port]>,
    pub publish_not_ready: bool,
    pub lb_ingress: Box<[LbIngress]>,
    /// Only the `crossdns.io/` annotations; everything else is dropped.
    pub annotations: Box<[(Box<str>, Box<str>)]>,
}

/// One endpoint of an EndpointSlice, cut to what DNS needs. An index holds
/// hundreds of thousands of these (40 bytes each), so the first address is
/// inline; the EndpointSlice controller always writes exactly one, and any
/// others live in the slice's `more_addresses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: IpAddr,
    /// `conditions.ready`; nil counts as ready (EndpointSlice API).
    pub ready: bool,
    /// `name` is `targetRef.name` of a Pod rather than `hostname`; such a
    /// name labels the endpoint only with `endpoint_pod_names`.
    pub name_is_pod: bool,
    /// `hostname`, else the Pod's name (see `name_is_pod`).
    pub name: Option<Box<str>>,
}

// 100,000s of these are held: keep them small.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<Endpoint>() == 40);

impl Endpoint {
    /// The label of `<label>.<svc>.<ns>.svc.<zone>`, if it is not the
    /// dashed address: the hostname, or the Pod's name with
    /// `endpoint_pod_names`.
    pub fn label(&self, endpoint_pod_names: bool) -> Option<&str> {
        self.name
            .as_deref()
            .filter(|_| !self.name_is_pod || endpoint_pod_names)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    pub key: ObjKey,
    /// The Service it belongs to: the `kubernetes.io/service-name` label,
    /// in the slice's namespace.
    pub service: ObjKey,
    pub ports: Box<[Port]>,
    pub endpoints: Box<[Endpoint]>,
    /// Addresses after an endpoint's first (rare): (index in `endpoints`,
    /// address), in endpoint order.
    pub more_addresses: Box<[(u32, IpAddr)]>,
}

impl EndpointSlice {
    /// The key of the Service this slice belongs to.
    pub fn service_key(&self) -> &ObjKey {
        &self.service
    }

    /// Every address of endpoint `i`.
    pub fn addresses_of(&self, i: usize) -> impl Iterator<Item = IpAddr> + '_ {
        let first = self.endpoints.get(i).map(|ep| ep.address);
        let more = self
            .more_addresses
            .iter()
            .filter(move |(at, _)| *at as usize == i)
            .map(|(_, ip)| *ip);
        first.into_iter().chain(more)
    }

    /// Every address of every endpoint, ready or not.
    pub fn all_addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let more = self.more_addresses.iter().map(|(_, ip)| *ip);
        self.endpoints.iter().map(|ep| ep.address).chain(more)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub key: ObjKey,
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSet {
    pub key: ObjKey,
    pub service_name: String,
    pub replicas: u32,
}

/// The kinds of object the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    EndpointSlice,
    Pod,
    Namespace,
    StatefulSet,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
        Kind::Namespace,
        Kind::StatefulSet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::EndpointSlice => "endpointslice",
            Kind::Pod => "pod",
            Kind::Namespace => "namespace",
            Kind::StatefulSet => "statefulset",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Service(Service),
    EndpointSlice(EndpointSlice),
    Pod(Pod),
    Namespace(String),
    StatefulSet(StatefulSet),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Pod(_) => Kind::Pod,
            Object::Namespace(_) => Kind::Namespace,
            Object::StatefulSet(_) => Kind::StatefulSet,
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Object::Service(s) => s.key.namespace(),
            Object::EndpointSlice(s) => s.key.namespace(),
            Object::Pod(p) => p.key.namespace(),
            Object::Namespace(n) => n,
            Object::StatefulSet(s) => s.key.namespace(),
        }
    }
}

/// One change from a source, in the order the source saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Apply(Object),
    Delete(Kind, ObjKey),
    /// A (re)list of one kind begins, in one namespace or (`None`) all of
    /// them. Its objects follow one by one as `Apply` (or `Keep`), and are
    /// folded in as they come, so a relist never holds a second copy of the
    /// kind; nothing is deleted before its `ListEnd`.
    ListStart(Kind, Option<String>),
    /// Listed, but it did not convert: keep its last good version (if any)
    /// through this list rather than delete it.
    Keep(Kind, ObjKey),
    /// The list that began with `ListStart` is complete: every object of
    /// that kind and scope neither applied nor kept since then is gone.
    ListEnd(Kind, Option<String>),
    /// Everything one source (a manifest file) holds now: what it delivered
    /// before and no longer lists is gone, unless another source lists it.
    ResetSource(String, Vec<Object>),
}

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
    synced: AtomicBool,
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
    /// and journals what changed since the last one.
    pub fn publish_at(&self, mut snap: Arc<Snapshot>, serial: Option<u32>) {
        // Serial, journal and snapshot change together for readers that
        // hold the zone consistent (`ZoneJournal::consistent`).
        let _publishing = self.journal.publishing();
        let old = self.snapshot.load_full();
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
    use std::time::Duration;

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
