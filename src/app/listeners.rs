//! The DNS sockets of a running crossdns, kept across config reloads: a
//! reload that listens on an address again takes over its sockets and
//! swaps what they serve (`listen::Serving`), so queries queued in them are
//! answered, not dropped; only new addresses are bound and only removed
//! ones closed.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpSocket};

use super::spawn;
use crate::config::Settings;
use crate::listen::{self, Serving, Shared, TlsAcceptor, UdpWorkers};
use crate::watch::CancelOnDrop;

/// UDP answering threads per listen address: one per core we may run on.
fn udp_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16)
}

pub(super) async fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // A reloaded config may bind beside the running one before it goes away.
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Binds UDP and TCP on the same address. With port 0 the kernel picks the
/// UDP port, which some other socket may already hold for TCP: then try
/// again with a new port rather than fail.
async fn bind_dns(
    addr: SocketAddr,
    serving: &Serving,
) -> anyhow::Result<(SocketAddr, UdpWorkers, TcpListener)> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let (bound, workers) = listen::spawn_udp(addr, udp_threads(), serving)
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

/// UDP and TCP on one configured address.
#[derive(Debug)]
struct DnsListener {
    configured: SocketAddr,
    bound: SocketAddr,
    _udp: UdpWorkers,
    _tcp: CancelOnDrop,
}

/// DNS over TLS on one configured address.
#[derive(Debug)]
struct DotListener {
    configured: SocketAddr,
    bound: SocketAddr,
    _task: CancelOnDrop,
}

/// Every DNS socket, what they serve, and the TLS certificate they present.
pub(super) struct Listeners {
    serving: Serving,
    /// Shared by every DoT listener; reloaded when its files change.
    acceptor: Option<TlsAcceptor>,
    dns: Vec<DnsListener>,
    dot: Vec<DotListener>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("dns", &self.dns)
            .field("dot", &self.dot)
            .field("tls", &self.acceptor.is_some())
            .finish_non_exhaustive()
    }
}

/// Sockets a reload no longer listens on; close them off the async workers
/// (stopping UDP threads joins them).
#[derive(Debug, Default)]
pub(super) struct Closed(
    #[allow(dead_code, reason = "held only to close the sockets when dropped")] Vec<DnsListener>,
    #[allow(dead_code, reason = "held only to close the sockets when dropped")] Vec<DotListener>,
);

impl Listeners {
    pub(super) fn dns(&self) -> Vec<SocketAddr> {
        self.dns.iter().map(|l| l.bound).collect()
    }

    pub(super) fn dot(&self) -> Vec<SocketAddr> {
        self.dot.iter().map(|l| l.bound).collect()
    }

    pub(super) fn acceptor(&self) -> Option<&TlsAcceptor> {
        self.acceptor.as_ref()
    }

    /// Listens on `settings`' DNS and DoT addresses and serves `shared` on
    /// them, taking over `previous`'s sockets on addresses configured again.
    /// Nothing of `previous` changes unless every new address binds: on
    /// error it comes back whole.
    pub(super) async fn open(
        settings: &Settings,
        shared: Shared,
        previous: Option<Listeners>,
    ) -> Result<(Listeners, Closed), (anyhow::Error, Option<Listeners>)> {
        let (serving, acceptor_cell, mut old_dns, mut old_dot) = match previous {
            Some(p) => (p.serving, p.acceptor, p.dns, p.dot),
            None => (Serving::new(shared.clone()), None, Vec::new(), Vec::new()),
        };
        let give_back = |serving: Serving, acceptor, dns, dot, e| {
            Err((
                e,
                Some(Listeners {
                    serving,
                    acceptor,
                    dns,
                    dot,
                }),
            ))
        };
        // Everything that can fail first: new binds and the certificate.
        // (taken over from `previous`, listener), in config order.
        let mut dns: Vec<(bool, DnsListener)> = Vec::new();
        for addr in &settings.dns.listen {
            if let Some(i) = old_dns.iter().position(|l| l.configured == *addr) {
                dns.push((true, old_dns.remove(i)));
                continue;
            }
            match bind_dns(*addr, &serving).await {
                Ok((bound, udp, tcp)) => {
                    tracing::info!(%bound, "serving DNS on udp and tcp");
                    dns.push((
                        false,
                        DnsListener {
                            configured: *addr,
                            bound,
                            _udp: udp,
                            _tcp: spawn(listen::serve_tcp(tcp, serving.clone())),
                        },
                    ));
                }
                Err(e) => {
                    // The new ones close; the taken-over ones go back.
                    old_dns.extend(dns.into_iter().filter(|(taken, _)| *taken).map(|(_, l)| l));
                    return give_back(serving, acceptor_cell, old_dns, old_dot, e);
                }
            }
        }
        let mut dot: Vec<(bool, DotListener)> = Vec::new();
        let mut new_acceptor = None;
        if let Some(tls) = &settings.dns.tls {
            let acceptor = match listen::tls_acceptor(tls) {
                Ok(a) => a,
                Err(e) => {
                    old_dns.extend(dns.into_iter().filter(|(taken, _)| *taken).map(|(_, l)| l));
                    return give_back(serving, acceptor_cell, old_dns, old_dot, e.into());
                }
            };
            let cell: TlsAcceptor = acceptor_cell
                .clone()
                .unwrap_or_else(|| Arc::new(ArcSwap::from_pointee(acceptor.clone())));
            for addr in &tls.listen {
                if let Some(i) = old_dot.iter().position(|l| l.configured == *addr) {
                    dot.push((true, old_dot.remove(i)));
                    continue;
                }
                let bound = match bind_tcp(*addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        let e =
                            anyhow::Error::new(e).context(format!("cannot listen on tls {addr}"));
                        old_dns.extend(dns.into_iter().filter(|(taken, _)| *taken).map(|(_, l)| l));
                        old_dot.extend(dot.into_iter().filter(|(taken, _)| *taken).map(|(_, l)| l));
                        return give_back(serving, acceptor_cell, old_dns, old_dot, e);
                    }
                };
                let at = bound.local_addr().unwrap_or(*addr);
                tracing::info!(bound = %at, mutual_tls = tls.client_ca.is_some(), "serving DNS over TLS");
                dot.push((
                    false,
                    DotListener {
                        configured: *addr,
                        bound: at,
                        _task: spawn(listen::serve_tls(bound, Arc::clone(&cell), serving.clone())),
                    },
                ));
            }
            new_acceptor = Some((cell, acceptor));
        }
        // Then the switch, which cannot fail: every socket serves the new
        // config from its next query on.
        serving.replace(shared);
        let acceptor = new_acceptor.map(|(cell, acceptor)| {
            cell.store(Arc::new(acceptor));
            cell
        });
        Ok((
            Listeners {
                serving,
                acceptor,
                dns: dns.into_iter().map(|(_, l)| l).collect(),
                dot: dot.into_iter().map(|(_, l)| l).collect(),
            },
            Closed(old_dns, old_dot),
        ))
    }
}
