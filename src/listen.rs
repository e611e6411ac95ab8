//! Listeners: sockets in, engine, sockets out. UDP runs a lean blocking
//! receive → answer → send loop per thread on `SO_REUSEPORT` sockets (the
//! kernel spreads clients across threads, no task wake-ups per packet); TCP
//! runs on tokio with RFC 7766 framing, idle timeouts and a connection cap.
//! Listeners never write the index.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::answer::{Engine, Transport};
use crate::metrics::{Metrics, WorkerStats};

/// RFC 7766 §6.2.3: servers may close idle connections; a few seconds keeps
/// pipelining clients happy without letting idle peers hold sockets.
const TCP_IDLE: Duration = Duration::from_secs(10);
const TCP_MAX_CONNECTIONS: usize = 1024;
const UDP_RECV_BUFFER: usize = 4 << 20;

/// UDP worker threads; stops them when dropped.
#[derive(Debug)]
pub struct UdpWorkers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for UdpWorkers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    // Lets the thread notice `stop` while idle.
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(socket)
}

/// Binds `threads` sockets to `addr` (the first one picks the port when it
/// is 0) and starts one answering thread per socket. Returns the bound address.
pub fn spawn_udp(
    addr: SocketAddr,
    threads: usize,
    engine: Arc<Engine>,
    metrics: &Metrics,
) -> io::Result<(SocketAddr, UdpWorkers)> {
    let first = udp_socket(addr)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..threads.max(1) {
        sockets.push(udp_socket(bound)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let engine = Arc::clone(&engine);
        let stats = metrics.worker();
        let stop = Arc::clone(&stop);
        handles.push(
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || udp_loop(&socket, &engine, &stats, &stop))?,
        );
    }
    Ok((
        bound,
        UdpWorkers {
            stop,
            threads: handles,
        },
    ))
}

fn udp_loop(socket: &UdpSocket, engine: &Engine, stats: &WorkerStats, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        let started = Instant::now();
        match engine.respond(&buf[..n], peer.ip(), Transport::Udp, &mut out) {
            Some(outcome) => {
                if let Err(e) = socket.send_to(&out, peer) {
                    tracing::debug!(%peer, error = %e, "udp send failed");
                }
                stats.record(&outcome, started.elapsed());
            }
            None => stats.record_dropped(),
        }
    }
}

/// Serves DNS over TCP on `listener` until the task is aborted.
pub async fn serve_tcp(listener: TcpListener, engine: Arc<Engine>, metrics: Metrics) {
    let limit = Arc::new(Semaphore::new(TCP_MAX_CONNECTIONS));
    let stats = metrics.worker();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::debug!(%peer, "tcp connection limit reached; closing");
            continue;
        };
        let engine = Arc::clone(&engine);
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = tcp_conn(stream, peer, &engine, &stats).await {
                tracing::debug!(%peer, error = %e, "tcp connection ended");
            }
        });
    }
}

/// One connection: length-prefixed messages (RFC 1035 §4.2.2), answered in
/// order, until the peer closes or idles out.
async fn tcp_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    engine: &Engine,
    stats: &WorkerStats,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut msg = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(4096);
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()), // idle
        };
        msg.resize(len, 0);
        // A peer that announces more than it sends is cut off, not waited for.
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "message body did not arrive")
            })??;
        let started = Instant::now();
        let Some(outcome) = engine.respond(&msg, peer.ip(), Transport::Tcp, &mut out) else {
            stats.record_dropped();
            return Ok(());
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        stream.write_all(&framed).await?;
        stats.record(&outcome, started.elapsed());
    }
}
