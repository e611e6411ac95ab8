//! Watch: the only code that reads clusters. Per cluster, source tasks (kube
//! watchers, or a manifests folder) send `SourceEvent`s to one writer task,
//! which owns the cluster's `ClusterStore`, batches a burst of changes into
//! one publish, and never lets one cluster's trouble reach another.

pub mod convert;
mod kube;
mod listwatch;
mod manifests;
mod primary;
pub mod xfr;

pub use manifests::{Parsed, parse_documents};
pub use primary::{PrimaryMetrics, PrimaryStats};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{ClusterSettings, PodsMode, Source};
use crate::index::{Change, ClusterHandle, ClusterStore, FailureCause, Kind};

/// The writer publishes once no event has arrived for `BATCH_QUIET`, or
/// `BATCH_WINDOW` after the first event of a burst, whichever is first: a
/// single change is visible about a millisecond after it arrives, and a
/// burst (a relist) still costs one publish per window.
pub const BATCH_QUIET: Duration = Duration::from_millis(1);
pub const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// One stream of one kind, in one namespace (`None`: all namespaces).
pub type Scope = (Kind, Option<String>);

/// What a source tells its cluster's writer.
#[derive(Debug)]
pub enum SourceEvent {
    Change(Change),
    /// The initial list of this stream is complete.
    Synced(Scope),
    /// This stream works (again): its watch opened, its folder was read.
    /// `None`: the whole source.
    Healthy(Option<Scope>),
    /// This stream (`None`: the whole source) could not reach or read its
    /// cluster.
    Failing(Failure),
}

/// One failure of a source, with its cause for `/metrics` and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub scope: Option<Scope>,
    pub cause: FailureCause,
    pub message: String,
}

/// The kinds a cluster's sources deliver, per its config.
pub fn kinds_for(c: &ClusterSettings) -> Vec<Kind> {
    let mut kinds = vec![Kind::Service, Kind::EndpointSlice, Kind::StatefulSet];
    if c.namespaces.is_empty() {
        kinds.push(Kind::Namespace);
    }
    if c.pods == PodsMode::Verified {
        kinds.push(Kind::Pod);
    }
    kinds
}

/// Starts the sources and writer of one cluster. Dropping the returned
/// guard stops them.
pub fn spawn_cluster(settings: &ClusterSettings, handle: Arc<ClusterHandle>) -> ClusterTasks {
    let (tx, rx) = mpsc::channel(4096);
    let kinds = kinds_for(settings);
    let scopes: Vec<Scope> = match &settings.source {
        // A transferred zone is synced by its first complete transfer.
        Source::Primary(_) => Vec::new(),
        Source::Manifests(_) => kinds.iter().map(|k| (*k, None)).collect(),
        Source::Kube { .. } if settings.namespaces.is_empty() => {
            kinds.iter().map(|k| (*k, None)).collect()
        }
        Source::Kube { .. } => kinds
            .iter()
            .filter(|k| **k != Kind::Namespace)
            .flat_map(|k| settings.namespaces.iter().map(|ns| (*k, Some(ns.clone()))))
            .collect(),
    };
    let mut tasks = Vec::new();
    match &settings.source {
        Source::Primary(p) => {
            // The primary source publishes snapshots itself (they are built
            // from records, not objects): no object writer.
            let stats = Arc::new(PrimaryStats::new(&settings.name));
            let task = tokio::spawn(primary::run(p.clone(), handle, Arc::clone(&stats)));
            return ClusterTasks {
                tasks: vec![CancelOnDrop(task)],
                primary: Some(stats),
            };
        }
        Source::Manifests(dir) => {
            tasks.push(tokio::spawn(manifests::run(dir.clone(), kinds, tx)));
        }
        Source::Kube {
            kubeconfig,
            context,
        } => {
            tasks.push(tokio::spawn(kube::run(
                settings.name.clone(),
                kubeconfig.clone(),
                context.clone(),
                scopes.clone(),
                Arc::clone(&handle),
                tx,
            )));
        }
    }
    tasks.push(tokio::spawn(writer(handle, scopes, rx)));
    ClusterTasks {
        tasks: tasks.into_iter().map(CancelOnDrop).collect(),
        primary: None,
    }
}

/// The tasks of one cluster; aborted when dropped.
#[derive(Debug)]
pub struct ClusterTasks {
    #[allow(dead_code, reason = "held only to abort the tasks on drop")]
    tasks: Vec<CancelOnDrop>,
    primary: Option<Arc<PrimaryStats>>,
}

impl ClusterTasks {
    /// The counters of a `primary:` source, for `/metrics`.
    pub fn primary_stats(&self) -> Option<Arc<PrimaryStats>> {
        self.primary.clone()
    }
}

/// Namespaces and StatefulSets are read when allowed, but a cluster whose
/// RBAC refuses them still syncs: they add to DNS, they do not gate it.
fn gates_sync((kind, _): &Scope) -> bool {
    matches!(kind, Kind::Service | Kind::EndpointSlice | Kind::Pod)
}

/// The single writer of one cluster's index.
async fn writer(
    handle: Arc<ClusterHandle>,
    scopes: Vec<Scope>,
    mut rx: mpsc::Receiver<SourceEvent>,
) {
    let name = handle.spec.name.clone();
    let mut store = ClusterStore::new(Arc::clone(&handle.spec));
    let mut state = WriterState {
        pending: scopes.into_iter().collect(),
        failing: HashMap::new(),
        lists_ended: false,
    };
    let mut generation = 0u64;
    while let Some(first) = rx.recv().await {
        let deadline = Instant::now() + BATCH_WINDOW;
        let mut events = 1usize;
        state.apply(&handle, &mut store, first);
        // Gather the rest of a burst so it costs one publish.
        while let Ok(Some(ev)) =
            tokio::time::timeout_at(deadline.min(Instant::now() + BATCH_QUIET), rx.recv()).await
        {
            state.apply(&handle, &mut store, ev);
            events += 1;
        }
        let pending = &state.pending;
        let gated = pending.iter().any(gates_sync);
        if !gated && (store.is_dirty() || !handle.status.synced()) {
            generation += 1;
            let started = std::time::Instant::now();
            let snap = store.publish(generation);
            let first_sync = !handle.status.synced();
            handle.publish(snap);
            for kind in Kind::ALL {
                handle.status.set_objects(kind, store.count(kind));
            }
            for (service, ready) in store.take_health_flips() {
                handle
                    .status
                    .service_health_transitions
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(cluster = %name, %service, ready, "service health for the clusterset changed");
            }
            if first_sync {
                tracing::info!(
                    cluster = %name,
                    services = store.count(Kind::Service),
                    endpointslices = store.count(Kind::EndpointSlice),
                    "cluster synced; answering its zone"
                );
            }
            tracing::debug!(cluster = %name, generation, events, build_us = started.elapsed().as_micros() as u64, "published snapshot");
        }
        if !gated && !pending.iter().any(|(k, _)| *k == Kind::StatefulSet) {
            // Every StatefulSet listed is in the published snapshot.
            handle.status.note_statefulsets_listed();
        }
        if !gated && std::mem::take(&mut state.lists_ended) {
            // A (re)list leaves the parser's garbage spread over the heap;
            // hand the free pages back, off the async workers.
            tokio::task::spawn_blocking(give_back_free_memory);
        }
    }
}

/// What the writer tracks about its sources besides the store.
struct WriterState {
    /// Scopes whose first complete list has not arrived yet.
    pending: HashSet<Scope>,
    /// Streams failing now, with their cause (`None`: the whole source).
    failing: HashMap<Option<Scope>, FailureCause>,
    /// A list ended since the last publish.
    lists_ended: bool,
}

impl WriterState {
    fn apply(&mut self, handle: &ClusterHandle, store: &mut ClusterStore, ev: SourceEvent) {
        let cluster = &handle.spec.name;
        match ev {
            SourceEvent::Change(change) => {
                handle.status.note_event();
                if let Change::ListEnd(..) = &change {
                    handle.status.lists.fetch_add(1, Ordering::Relaxed);
                    self.lists_ended = true;
                }
                store.apply(change);
            }
            SourceEvent::Synced(scope) => {
                handle.status.note_event();
                if self.pending.remove(&scope) {
                    // The first complete list (a manifests folder's too).
                    self.lists_ended = true;
                }
            }
            SourceEvent::Healthy(scope) => {
                if self.failing.remove(&scope).is_some() && self.failing.is_empty() {
                    tracing::info!(cluster = %cluster, "cluster source works again");
                    handle.status.note_watch_ok();
                }
            }
            SourceEvent::Failing(f) => {
                let kind = f.scope.as_ref().map_or("source", |(k, _)| k.as_str());
                if self.failing.insert(f.scope.clone(), f.cause) != Some(f.cause) {
                    tracing::warn!(cluster = %cluster, kind = %kind, cause = %f.cause.as_str(), error = %f.message, "cluster source failing; keeping the last snapshot");
                } else {
                    tracing::debug!(cluster = %cluster, kind = %kind, cause = %f.cause.as_str(), error = %f.message, "cluster source still failing");
                }
                handle.status.note_failure(f.cause);
                handle.status.watch_restarts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Returns free heap pages to the kernel (glibc's `malloc_trim`), so that a
/// relist's transient garbage does not stay resident.
#[allow(unsafe_code)]
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free
    // lists; it takes the arena locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A task that is aborted when its owner drops it.
#[derive(Debug)]
pub struct CancelOnDrop(pub JoinHandle<()>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
