//! Wires the stages in data-flow order: config → watch → index → answer →
//! listeners, with forward and admin beside them. `start` returns once everything is
//! bound, so tests can run a whole server in-process on `127.0.0.1:0`.

mod listeners;
mod serve;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::AtomicBool;

use crate::answer::Engine;
use crate::config::{ClusterSettings, Settings, Source};
use crate::dnsname::WireName;
use crate::forward::Forwarder;
use crate::index::{ClusterHandle, ClusterMetrics, ClusterSpec, ZoneJournal};
use crate::listen::{self, Shared};
use crate::metrics::{MetricSource, Metrics};
use crate::transfer::Transfers;
use crate::watch::{self, CancelOnDrop, ClusterTasks};
use crate::zones::ZoneTable;
use listeners::{Closed, Listeners, bind_tcp};
pub use serve::serve;

/// A running crossdns. Dropping it stops everything.
#[derive(Debug)]
pub struct Running {
    /// Bound DNS addresses (UDP and TCP share each).
    pub dns: Vec<SocketAddr>,
    /// Bound DNS-over-TLS addresses.
    pub dot: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub clusters: Vec<Arc<ClusterHandle>>,
    pub engine: Arc<Engine>,
    pub forwarder: Arc<Forwarder>,
    pub transfers: Arc<Transfers>,
    pub metrics: Metrics,
    watched: Vec<Watched>,
    /// `None` only while a reload has taken them over.
    listeners: Option<Listeners>,
    /// Set during the lame-duck period before shutdown: `/readyz` is 503.
    pub draining: Arc<AtomicBool>,
    _tasks: Vec<CancelOnDrop>,
}

/// One cluster's watch and index, shared by a running config and the one
/// a reload prepares when the cluster's settings did not change: the watch
/// goes on without a relist, and stops when neither holds it any more.
#[derive(Debug, Clone)]
struct Watched {
    settings: ClusterSettings,
    /// The kubeconfig's bytes when the watch started: a rotated credential
    /// under the same path is a change.
    kubeconfig: Option<Vec<u8>>,
    handle: Arc<ClusterHandle>,
    #[allow(dead_code, reason = "held only to keep the watch running")]
    tasks: Arc<ClusterTasks>,
}

impl Watched {
    fn kubeconfig_bytes(settings: &ClusterSettings) -> Option<Vec<u8>> {
        let path = match &settings.source {
            Source::Kube {
                kubeconfig: Some(p),
                ..
            } => p.clone(),
            Source::Kube {
                kubeconfig: None, ..
            } => std::env::var_os("KUBECONFIG")?.into(),
            Source::Manifests(_) | Source::Primary(_) => return None,
        };
        std::fs::read(path).ok()
    }

    /// This cluster's watch, if it serves `settings`, `spec` and the
    /// kubeconfig bytes `kubeconfig` unchanged.
    fn reusable_for(
        &self,
        settings: &ClusterSettings,
        spec: &ClusterSpec,
        kubeconfig: &Option<Vec<u8>>,
    ) -> bool {
        self.settings == *settings && *self.handle.spec == *spec && self.kubeconfig == *kubeconfig
    }
}

/// The stages before any socket: watch, index, answer and forward, started
/// and wired, but not yet serving. Dropping it stops the watchers it alone
/// holds.
#[derive(Debug)]
pub struct Prepared {
    settings: Settings,
    pub clusters: Vec<Arc<ClusterHandle>>,
    watched: Vec<Watched>,
    engine: Arc<Engine>,
    forwarder: Arc<Forwarder>,
    transfers: Arc<Transfers>,
    metrics: Metrics,
}

/// Starts watching every cluster and builds the answer engine. Must run
/// inside a tokio runtime. Clusters whose settings match one in `keep` (the
/// running config's) share its watch and index instead of starting over;
/// the catalog zone keeps `running`'s serial when its members are the same.
fn prepare(
    settings: Settings,
    keep: &[Watched],
    running: Option<&Transfers>,
) -> anyhow::Result<Prepared> {
    // watch → index: one handle (publication point) and task set per cluster.
    let mut journals: std::collections::HashMap<WireName, Arc<ZoneJournal>> =
        std::collections::HashMap::new();
    let watched: Vec<Watched> = settings
        .clusters
        .iter()
        .zip(ClusterSpec::all(&settings))
        .map(|(c, spec)| {
            let kubeconfig = Watched::kubeconfig_bytes(c);
            if let Some(w) = keep.iter().find(|w| w.reusable_for(c, &spec, &kubeconfig)) {
                tracing::info!(cluster = %c.name, "cluster unchanged; keeping its watch");
                return w.clone();
            }
            // Clusters sharing a zone share its serial and journal.
            let journal = journals
                .entry(spec.zone.clone())
                .or_insert_with(|| {
                    keep.iter()
                        .find(|w| w.handle.spec.zone == spec.zone)
                        .map_or_else(Arc::default, |w| Arc::clone(&w.handle.journal))
                })
                .clone();
            let handle = Arc::new(ClusterHandle::with_journal(spec, journal));
            Watched {
                settings: c.clone(),
                kubeconfig,
                tasks: Arc::new(watch::spawn_cluster(c, Arc::clone(&handle))),
                handle,
            }
        })
        .collect();
    let clusters: Vec<Arc<ClusterHandle>> = watched.iter().map(|w| Arc::clone(&w.handle)).collect();
    // answer, with forward beside it, over one typed zone table.
    let zones = ZoneTable::new(&settings);
    let engine = Arc::new(Engine::new(&settings, &zones, &clusters));
    let forwarder = Arc::new(Forwarder::new(&settings.forward, &zones)?);
    // Zone transfers and NOTIFY, beside the engine.
    let transfers = Transfers::new(&settings, &zones, &clusters);
    if let Some(running) = running {
        transfers.carry_over(running);
    }
    let transfers = Arc::new(transfers);
    // Each stage owns its counters; metrics encodes them in this order.
    let mut sources: Vec<Arc<dyn MetricSource>> = vec![Arc::new(ClusterMetrics(clusters.clone()))];
    let primaries: Vec<_> = watched
        .iter()
        .filter_map(|w| w.tasks.primary_stats())
        .collect();
    if !primaries.is_empty() {
        sources.push(Arc::new(watch::PrimaryMetrics(primaries)));
    }
    if let Some(cs) = engine.clusterset_stats() {
        sources.push(cs);
    }
    sources.push(Arc::clone(&forwarder) as Arc<dyn MetricSource>);
    sources.push(Arc::clone(&transfers) as Arc<dyn MetricSource>);
    let metrics = Metrics::new(zones.iter().map(|z| z.apex.to_string()).collect(), sources);
    Ok(Prepared {
        settings,
        clusters,
        watched,
        engine,
        forwarder,
        transfers,
        metrics,
    })
}

/// Binds every listener and starts serving, taking over the sockets of
/// `previous` (the running config's) on addresses configured again. On
/// error, whatever was newly bound is released and `previous` comes back
/// unchanged.
async fn listen_on(
    p: Prepared,
    previous: Option<Listeners>,
) -> Result<(Running, Closed), (anyhow::Error, Option<Listeners>)> {
    let Prepared {
        settings,
        clusters,
        watched,
        engine,
        forwarder,
        transfers,
        metrics,
    } = p;
    let shared = Shared {
        engine: Arc::clone(&engine),
        forwarder: Arc::clone(&forwarder),
        transfers: Arc::clone(&transfers),
        metrics: metrics.clone(),
    };
    // Admin first: it is the one listener that is bound anew every time.
    let draining = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let admin = match settings.admin {
        None => None,
        Some(addr) => {
            let listener = match bind_tcp(addr).await {
                Ok(l) => l,
                Err(e) => {
                    let e = anyhow::Error::new(e).context(format!("cannot listen on admin {addr}"));
                    return Err((e, previous));
                }
            };
            let bound = listener.local_addr().unwrap_or(addr);
            tasks.push(spawn(crate::admin::serve(
                listener,
                clusters.clone(),
                metrics.clone(),
                Arc::clone(&draining),
            )));
            tracing::info!(%bound, "serving /healthz /readyz /metrics");
            Some(bound)
        }
    };
    let (listeners, closed) = Listeners::open(&settings, shared, previous).await?;
    tasks.push(spawn(Arc::clone(&forwarder).probe_forever()));
    if let Some(cs) = engine.clusterset_stats() {
        tasks.push(spawn(cs.monitor()));
    }
    // NOTIFYs go out from the first DNS address, which secondaries know.
    let notify_from = settings.dns.listen.first().map(SocketAddr::ip);
    tasks.push(spawn(Arc::clone(&transfers).notify_forever(notify_from)));
    if let (Some(tls), Some(acceptor)) = (&settings.dns.tls, listeners.acceptor()) {
        tasks.push(spawn(listen::watch_tls_files(
            tls.clone(),
            Arc::clone(acceptor),
        )));
    }
    Ok((
        Running {
            dns: listeners.dns(),
            dot: listeners.dot(),
            admin,
            clusters,
            engine,
            forwarder,
            transfers,
            metrics,
            watched,
            listeners: Some(listeners),
            draining,
            _tasks: tasks,
        },
        closed,
    ))
}

/// Spawns a task that is aborted when the returned guard is dropped.
fn spawn(f: impl Future<Output = ()> + Send + 'static) -> CancelOnDrop {
    CancelOnDrop(tokio::spawn(f))
}

/// Starts everything and returns once every listener is bound.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let (running, _closed) = listen_on(prepare(settings, &[], None)?, None)
        .await
        .map_err(|(e, _)| e)?;
    running.transfers.announce();
    Ok(running)
}
