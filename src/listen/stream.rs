//! DNS over TCP (RFC 7766) and over TLS (RFC 7858): length-prefixed messages
//! answered in order on one connection, with idle timeouts and a connection
//! cap. The TLS certificate is re-read when its files change.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{Counters, Serving, Shared};
use crate::answer::{Outcome, Step, Transport};
use crate::metrics::WorkerStats;

/// RFC 7766 §6.2.3: servers may close idle connections; a few seconds keeps
/// pipelining clients happy without letting idle peers hold sockets.
const IDLE: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 1024;
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How often the TLS files are checked for changes.
const TLS_RELOAD_POLL: Duration = Duration::from_secs(2);

/// The current TLS acceptor; swapped when the certificate files change.
pub type TlsAcceptor = Arc<ArcSwap<tokio_rustls::TlsAcceptor>>;

async fn accept_loop<F, Fut>(listener: TcpListener, what: &'static str, mut handle: F)
where
    F: FnMut(tokio::net::TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "{what} accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::debug!(%peer, "{what} connection limit reached; closing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = handle(stream, peer);
        tokio::spawn(async move {
            let _permit = permit;
            conn.await;
        });
    }
}

/// Serves DNS over TCP until the task is aborted; each connection serves
/// the config current when it was accepted.
pub async fn serve_tcp(listener: TcpListener, serving: Serving) {
    let mut counters = Counters::new(&serving.load());
    accept_loop(listener, "tcp", |stream, peer| {
        let shared = serving.load();
        let stats = Arc::clone(counters.for_config(&shared));
        async move {
            if let Err(e) = conn(stream, peer, false, &shared, &stats).await {
                tracing::debug!(%peer, error = %e, "tcp connection ended");
            }
        }
    })
    .await;
}

/// Serves DNS over TLS until the task is aborted.
pub async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, serving: Serving) {
    let mut counters = Counters::new(&serving.load());
    accept_loop(listener, "tls", |stream, peer| {
        let shared = serving.load();
        let stats = Arc::clone(counters.for_config(&shared));
        let acceptor = acceptor.load_full();
        async move {
            let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "tls handshake refused");
                    return;
                }
                Err(_) => return,
            };
            if let Err(e) = conn(tls, peer, true, &shared, &stats).await {
                tracing::debug!(%peer, error = %e, "tls connection ended");
            }
        }
    })
    .await;
}

/// One connection: length-prefixed messages (RFC 1035 §4.2.2) answered in
/// order, until the peer closes or idles out.
async fn conn<S: AsyncRead + AsyncWrite + Unpin + Send>(
    mut stream: S,
    peer: SocketAddr,
    tls: bool,
    shared: &Shared,
    stats: &WorkerStats,
) -> io::Result<()> {
    let mut msg = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(4096);
    loop {
        let len = match tokio::time::timeout(IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()), // idle
        };
        msg.resize(len, 0);
        // A peer that announces more than it sends is cut off, not waited for.
        tokio::time::timeout(IDLE, stream.read_exact(&mut msg))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "message body did not arrive")
            })??;
        let started = Instant::now();
        let outcome = match shared
            .engine
            .step(&msg, peer.ip(), Transport::Tcp, &mut out)
        {
            // Secondaries sign the SOA queries they send before a transfer.
            Step::Reply(outcome) if outcome.qtype == crate::wire::qtype::SOA => {
                shared.transfers.sign_reply(&msg, &mut out, outcome)
            }
            Step::Reply(outcome) => outcome,
            Step::Catalog { zone, limit } => {
                shared.transfers.catalog_query(&msg, zone, limit, &mut out)
            }
            Step::Drop => {
                stats.record_dropped();
                return Ok(());
            }
            Step::Forward { zone, limit, qtype } => {
                let (reply, rcode) = shared.forwarder.resolve(zone, &msg, limit).await;
                out = reply;
                Outcome::forwarded(zone, qtype, rcode)
            }
            Step::Notify { zone } => shared.transfers.notified(&msg, peer, zone, &mut out),
            Step::Transfer { zone, .. } => {
                // Many messages, written by the transfer itself.
                let outcome = shared
                    .transfers
                    .serve(&msg, peer, tls, zone, &mut stream)
                    .await?;
                stats.record(super::answered(&outcome), started.elapsed());
                continue;
            }
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        stream.write_all(&framed).await?;
        stream.flush().await?;
        stats.record(super::answered(&outcome), started.elapsed());
    }
}

/// Builds the acceptor from the configured files.
pub fn tls_acceptor(
    tls: &crate::config::TlsSettings,
) -> Result<tokio_rustls::TlsAcceptor, crate::tls::TlsError> {
    let config = crate::tls::server_config(&tls.cert, &tls.key, tls.client_ca.as_deref())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Re-reads the certificate, key and client CA when any of them changes;
/// a set of files that does not load keeps the running acceptor.
pub async fn watch_tls_files(tls: crate::config::TlsSettings, acceptor: TlsAcceptor) {
    let files: Vec<PathBuf> = [
        Some(tls.cert.clone()),
        Some(tls.key.clone()),
        tls.client_ca.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let stamp = |files: &[PathBuf]| -> Vec<Option<SystemTime>> {
        files
            .iter()
            .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .collect()
    };
    let mut last = stamp(&files);
    loop {
        tokio::time::sleep(TLS_RELOAD_POLL).await;
        let now = stamp(&files);
        if now == last {
            continue;
        }
        last = now;
        match tls_acceptor(&tls) {
            Ok(a) => {
                acceptor.store(Arc::new(a));
                tracing::info!(cert = %tls.cert.display(), "reloaded the DNS-over-TLS certificate");
            }
            Err(e) => {
                tracing::error!(error = %e, "new TLS files do not load; keeping the running certificate")
            }
        }
    }
}
