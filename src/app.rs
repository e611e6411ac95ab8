//! Wires the stages in data-flow order: config → watch → index → answer →
//! listeners, with forward and admin beside them. `start` returns once everything is
//! bound, so tests can run a whole server in-process on `127.0.0.1:0`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpSocket};

use crate::answer::Engine;
use crate::config::{ClusterSettings, Settings, Source};
use crate::dnsname::WireName;
use crate::forward::Forwarder;
use crate::index::{ClusterHandle, ClusterMetrics, ClusterSpec, ZoneJournal};
use crate::listen::{self, Shared, TlsAcceptor, UdpWorkers};
use crate::metrics::{MetricSource, Metrics};
use crate::transfer::Transfers;
use crate::watch::{self, CancelOnDrop, ClusterTasks};
use crate::zones::ZoneTable;

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
    pub metrics: Metrics,
    watched: Vec<Watched>,
    _udp: Vec<UdpWorkers>,
    _tasks: Vec<CancelOnDrop>,
}

/// UDP answering threads per listen address: one per core we may run on.
fn udp_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16)
}

async fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // A reloaded config binds beside the running one before it goes away.
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Binds UDP and TCP on the same address. With port 0 the kernel picks the
/// UDP port, which some other socket may already hold for TCP: then try
/// again with a new port rather than fail.
async fn bind_dns(
    addr: SocketAddr,
    shared: &Shared,
) -> anyhow::Result<(SocketAddr, UdpWorkers, TcpListener)> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let (bound, workers) = listen::spawn_udp(addr, udp_threads(), shared)
            .with_context(|| format!("cannot listen on udp {addr}"))?;
        match bind_tcp(bound).await {
            Ok(tcp) => return Ok((bound, workers, tcp)),
            Err(e) => {
                last = Some(anyhow::Error::new(e).context(format!("cannot listen on tcp {bound}")))
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("cannot listen on {addr}")))
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
/// running config's) share its watch and index instead of starting over.
fn prepare(settings: Settings, keep: &[Watched]) -> anyhow::Result<Prepared> {
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
    let transfers = Arc::new(Transfers::new(&settings, &zones, &clusters));
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

/// Binds every listener and starts serving. On error, whatever was bound
/// is released again.
pub async fn listen_on(p: Prepared) -> anyhow::Result<Running> {
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
    let mut tasks = vec![spawn(Arc::clone(&forwarder).probe_forever())];
    if let Some(cs) = engine.clusterset_stats() {
        tasks.push(spawn(cs.monitor()));
    }
    let mut dns = Vec::new();
    let mut udp = Vec::new();
    for addr in &settings.dns.listen {
        let (bound, workers, tcp) = bind_dns(*addr, &shared).await?;
        tasks.push(spawn(listen::serve_tcp(tcp, shared.clone())));
        tracing::info!(%bound, "serving DNS on udp and tcp");
        dns.push(bound);
        udp.push(workers);
    }
    let mut dot = Vec::new();
    if let Some(tls) = &settings.dns.tls {
        let acceptor: TlsAcceptor = Arc::new(ArcSwap::from_pointee(listen::tls_acceptor(tls)?));
        for addr in &tls.listen {
            let listener = bind_tcp(*addr)
                .await
                .with_context(|| format!("cannot listen on tls {addr}"))?;
            let bound = listener.local_addr()?;
            tasks.push(spawn(listen::serve_tls(
                listener,
                Arc::clone(&acceptor),
                shared.clone(),
            )));
            tracing::info!(%bound, mutual_tls = tls.client_ca.is_some(), "serving DNS over TLS");
            dot.push(bound);
        }
        tasks.push(spawn(listen::watch_tls_files(tls.clone(), acceptor)));
    }
    let admin = match settings.admin {
        None => None,
        Some(addr) => {
            let listener = bind_tcp(addr)
                .await
                .with_context(|| format!("cannot listen on admin {addr}"))?;
            let bound = listener.local_addr()?;
            tasks.push(spawn(crate::admin::serve(
                listener,
                clusters.clone(),
                metrics.clone(),
            )));
            tracing::info!(%bound, "serving /healthz /readyz /metrics");
            Some(bound)
        }
    };
    Ok(Running {
        dns,
        dot,
        admin,
        clusters,
        engine,
        forwarder,
        metrics,
        watched,
        _udp: udp,
        _tasks: tasks,
    })
}

/// Spawns a task that is aborted when the returned guard is dropped.
fn spawn(f: impl Future<Output = ()> + Send + 'static) -> CancelOnDrop {
    CancelOnDrop(tokio::spawn(f))
}

/// Starts everything and returns once every listener is bound.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    listen_on(prepare(settings, &[])?).await
}

/// How long a reloaded config's clusters may take to sync before it
/// replaces the running one anyway (their zones then answer SERVFAIL).
const RELOAD_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the config file is checked for changes (a ConfigMap update
/// arrives as a file change, with no signal).
const CONFIG_POLL: Duration = Duration::from_secs(2);

/// Runs until SIGINT or SIGTERM, reloading the config on SIGHUP or when
/// its file changes. A reload that fails keeps the running config.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let path = settings.path.clone();
    let mut last = std::fs::read(&path).ok();
    let mut running = start(settings).await?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut poll = tokio::time::interval(CONFIG_POLL);
    loop {
        let asked = tokio::select! {
            _ = &mut shutdown => break,
            _ = hangup.recv() => true,
            _ = poll.tick() => false,
        };
        let text = std::fs::read(&path).ok();
        if !asked && text == last {
            continue;
        }
        last = text;
        if let Some(next) = reload(&path, &running.watched).await {
            let old = std::mem::replace(&mut running, next);
            // Stopping UDP threads joins them: off the async workers.
            tokio::task::spawn_blocking(move || drop(old));
        }
    }
    tracing::info!("shutting down");
    tokio::task::spawn_blocking(move || drop(running)).await?;
    Ok(())
}

/// Loads, starts and syncs a new config beside the running one (sharing
/// the watches of unchanged clusters); `None` (with an error logged) when it
/// is wrong or cannot serve.
async fn reload(path: &std::path::Path, running: &[Watched]) -> Option<Running> {
    let settings = match Settings::load(path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "config reload failed; keeping the running config");
            return None;
        }
    };
    tracing::info!(config = %path.display(), "reloading the config");
    let prepared = match prepare(settings, running) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "config reload failed; keeping the running config"
            );
            return None;
        }
    };
    // Listeners are bound only once the new clusters have synced, so no
    // query sees a zone of the new config before it can answer.
    let deadline = std::time::Instant::now() + RELOAD_SYNC_TIMEOUT;
    while !prepared.clusters.iter().all(|c| c.status.synced())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unsynced: Vec<&str> = prepared
        .clusters
        .iter()
        .filter(|c| !c.status.synced())
        .map(|c| c.spec.name.as_str())
        .collect();
    if !unsynced.is_empty() {
        tracing::warn!(
            ?unsynced,
            "reloaded config serves before these clusters synced"
        );
    }
    match listen_on(prepared).await {
        Ok(next) => {
            tracing::info!("config reloaded");
            Some(next)
        }
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "reloaded config cannot serve; keeping the running config"
            );
            None
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
