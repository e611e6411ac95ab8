//! Watch: the only code that reads clusters. Per cluster, source tasks (kube
//! watchers, or a manifests folder) send `SourceEvent`s to one writer task,
//! which owns the cluster's `ClusterStore`, batches a burst of changes into
//! one publish, and never lets one cluster's trouble reach another.

pub mod convert;
mod kube;
mod manifests;
mod primary;

pub use manifests::{Parsed, parse_documents};

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{ClusterSettings, PodsMode, Source};
use crate::index::{Change, ClusterHandle, ClusterStore, Kind};

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
    /// The source could not reach or read its cluster.
    Failing(String),
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
            return ClusterTasks(vec![CancelOnDrop(tokio::spawn(primary::run(
                p.clone(),
                handle,
            )))]);
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
    ClusterTasks(tasks.into_iter().map(CancelOnDrop).collect())
}

/// The tasks of one cluster; aborted when dropped.
#[derive(Debug)]
pub struct ClusterTasks(
    #[allow(dead_code, reason = "held only to abort the tasks on drop")] Vec<CancelOnDrop>,
);

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
    // Scopes whose first complete list has not arrived yet.
    let mut pending: HashSet<Scope> = scopes.into_iter().collect();
    let mut generation = 0u64;
    while let Some(first) = rx.recv().await {
        let deadline = Instant::now() + BATCH_WINDOW;
        let mut events = 1usize;
        apply(&handle, &mut store, &mut pending, first);
        // Gather the rest of a burst so it costs one publish.
        while let Ok(Some(ev)) =
            tokio::time::timeout_at(deadline.min(Instant::now() + BATCH_QUIET), rx.recv()).await
        {
            apply(&handle, &mut store, &mut pending, ev);
            events += 1;
        }
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
    }
}

fn apply(
    handle: &ClusterHandle,
    store: &mut ClusterStore,
    pending: &mut HashSet<Scope>,
    ev: SourceEvent,
) {
    match ev {
        SourceEvent::Change(change) => {
            handle.status.note_event();
            store.apply(change);
        }
        SourceEvent::Synced(scope) => {
            handle.status.note_event();
            pending.remove(&scope);
        }
        SourceEvent::Failing(why) => {
            if handle.status.failing_since_ms().is_none() {
                tracing::warn!(cluster = %handle.spec.name, error = %why, "cluster source failing; keeping the last snapshot");
            }
            handle.status.note_watch_failure();
            handle.status.watch_restarts.fetch_add(1, Ordering::Relaxed);
        }
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
