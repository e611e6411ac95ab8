//! DNS over UDP: one blocking receive → answer → send loop per thread, each
//! on its own `SO_REUSEPORT` socket so the kernel spreads clients across
//! threads with no task wake-up per packet. Forward-zone queries are handed
//! to the tokio runtime and answered from there on the same socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::{Counters, Serving};

use crate::answer::{Outcome, Step, Transport};
use crate::forward::Early;

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

/// Binds `threads` sockets to `addr` (the first picks the port when it is 0)
/// and starts one answering thread per socket. Must be called inside a tokio
/// runtime (forwarded queries run on it). Returns the bound address.
pub fn spawn_udp(
    addr: SocketAddr,
    threads: usize,
    serving: &Serving,
) -> io::Result<(SocketAddr, UdpWorkers)> {
    let first = udp_socket(addr)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..threads.max(1) {
        sockets.push(udp_socket(bound)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Handle::current();
    let mut handles = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let worker = Worker {
            socket: Arc::new(socket),
            serving: serving.clone(),
            runtime: runtime.clone(),
        };
        let stop = Arc::clone(&stop);
        handles.push(
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || worker.run(&stop))?,
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

struct Worker {
    socket: Arc<UdpSocket>,
    serving: Serving,
    runtime: tokio::runtime::Handle,
}

impl Worker {
    fn run(&self, stop: &AtomicBool) {
        let mut buf = vec![0u8; 65_535];
        let mut out = Vec::with_capacity(4096);
        let mut current = self.serving.cache();
        let mut counters = Counters::new(current.load());
        while !stop.load(Ordering::Relaxed) {
            let (n, peer) = match self.socket.recv_from(&mut buf) {
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
            let shared = current.load();
            let stats = counters.for_config(shared);
            match shared
                .engine
                .step(&buf[..n], peer.ip(), Transport::Udp, &mut out)
            {
                Step::Reply(mut outcome) => {
                    // Secondaries sign the SOA queries they send before a transfer.
                    if outcome.qtype == crate::wire::qtype::SOA {
                        outcome = shared.transfers.sign_reply(&buf[..n], &mut out, outcome);
                    }
                    if let Err(e) = self.socket.send_to(&out, peer) {
                        tracing::debug!(%peer, error = %e, "udp send failed");
                    }
                    stats.record(super::answered(&outcome), started.elapsed());
                }
                Step::Drop => stats.record_dropped(),
                Step::Catalog { zone, limit } => {
                    let outcome = shared
                        .transfers
                        .catalog_query(&buf[..n], zone, limit, &mut out);
                    let _ = self.socket.send_to(&out, peer);
                    stats.record(super::answered(&outcome), started.elapsed());
                }
                Step::Notify { zone } => {
                    let outcome = shared.transfers.notified(&buf[..n], peer, zone, &mut out);
                    let _ = self.socket.send_to(&out, peer);
                    stats.record(super::answered(&outcome), started.elapsed());
                }
                // The engine sends transfers over UDP a REFUSED itself.
                Step::Transfer { .. } => stats.record_dropped(),
                Step::Forward { zone, limit, qtype } => {
                    let outcome = move |rcode| Outcome::forwarded(zone, qtype, rcode);
                    // Cache hits are answered here; only upstream work
                    // becomes a task.
                    match shared.forwarder.answer_early(zone, &buf[..n], limit) {
                        Early::Done(reply, rcode) => {
                            let _ = self.socket.send_to(&reply, peer);
                            stats.record(super::answered(&outcome(rcode)), started.elapsed());
                        }
                        Early::Upstream(req) => {
                            let socket = Arc::clone(&self.socket);
                            let stats = Arc::clone(stats);
                            let forwarder = Arc::clone(&shared.forwarder);
                            self.runtime.spawn(async move {
                                let (reply, rcode) =
                                    forwarder.resolve_upstream(zone, &req, limit).await;
                                let _ = socket.send_to(&reply, peer);
                                stats.record(super::answered(&outcome(rcode)), started.elapsed());
                            });
                        }
                    }
                }
            }
        }
    }
}
