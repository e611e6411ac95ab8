//! Wires the stages in data-flow order: config → watch → index → answer →
//! listeners, with forward and admin beside them. `start` returns once everything is
//! bound, so tests can run a whole server in-process on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use crate::answer::Engine;
use crate::config::Settings;
use crate::forward::Forwarder;
use crate::index::{ClusterHandle, ClusterSpec};
use crate::listen::{self, Shared, TlsAcceptor, UdpWorkers};
use crate::metrics::Metrics;
use crate::watch::{self, ClusterTasks};

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
    _watch: Vec<ClusterTasks>,
    _udp: Vec<UdpWorkers>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
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

pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    // watch → index: one handle (publication point) and task set per cluster.
    let clusters: Vec<Arc<ClusterHandle>> = settings
        .clusters
        .iter()
        .map(|c| {
            let spec = ClusterSpec::from_settings(c, settings.dns.ttl)
                .with_clusterset(settings.clusterset.as_ref().map(|cs| cs.zone.clone()));
            Arc::new(ClusterHandle::new(spec))
        })
        .collect();
    let watch = settings
        .clusters
        .iter()
        .zip(&clusters)
        .map(|(c, h)| watch::spawn_cluster(c, Arc::clone(h)))
        .collect();

    // answer, with forward beside it, then the listeners that feed them.
    let engine = Arc::new(Engine::new(&settings, &clusters));
    let forwarder = Arc::new(Forwarder::new(&settings.forward)?);
    let metrics = Metrics::new(
        engine.zone_names(),
        clusters.clone(),
        Arc::clone(&forwarder),
        engine.clusterset_stats(),
    );
    let shared = Shared {
        engine: Arc::clone(&engine),
        forwarder: Arc::clone(&forwarder),
        metrics: metrics.clone(),
    };
    let mut tasks = vec![tokio::spawn(Arc::clone(&forwarder).probe_forever())];
    if let Some(cs) = engine.clusterset_stats() {
        tasks.push(tokio::spawn(cs.monitor()));
    }
    let mut dns = Vec::new();
    let mut udp = Vec::new();
    for addr in &settings.dns.listen {
        let (bound, workers, tcp) = bind_dns(*addr, &shared).await?;
        tasks.push(tokio::spawn(listen::serve_tcp(tcp, shared.clone())));
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
            tasks.push(tokio::spawn(listen::serve_tls(
                listener,
                Arc::clone(&acceptor),
                shared.clone(),
            )));
            tracing::info!(%bound, mutual_tls = tls.client_ca.is_some(), "serving DNS over TLS");
            dot.push(bound);
        }
        tasks.push(tokio::spawn(listen::watch_tls_files(tls.clone(), acceptor)));
    }

    let admin = match settings.admin {
        None => None,
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on admin {addr}"))?;
            let bound = listener.local_addr()?;
            tasks.push(tokio::spawn(crate::admin::serve(
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
        _watch: watch,
        _udp: udp,
        tasks,
    })
}

/// Runs until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let running = start(settings).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    drop(running);
    Ok(())
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
