//! One upstream DNS server: its connections (hickory-net `DnsExchange`s over
//! UDP, TCP or DNS over TLS), its health (consecutive failures, up/down) and
//! its counters. Knows nothing of zones, caches or clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsExchange, DnsHandle};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::sync::Mutex;

use super::UpstreamStats;
use crate::config::Upstream as Target;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Net(#[from] hickory_net::NetError),
    #[error("connection closed without a response")]
    NoResponse,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("bad TLS server name {0:?}")]
    ServerName(String),
}

pub struct Upstream {
    pub target: Target,
    tls: Option<Arc<ClientConfig>>,
    /// Owns the connections' background tasks; lives as long as the upstream.
    provider: TokioRuntimeProvider,
    udp: Mutex<Option<DnsExchange<TokioRuntimeProvider>>>,
    stream: Mutex<Option<DnsExchange<TokioRuntimeProvider>>>,
    consecutive_failures: AtomicU32,
    up: AtomicBool,
    pub stats: UpstreamStats,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("target", &self.target)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    pub fn new(target: Target, tls: Option<Arc<ClientConfig>>) -> Self {
        Self {
            target,
            tls,
            provider: TokioRuntimeProvider::new(),
            udp: Mutex::new(None),
            stream: Mutex::new(None),
            consecutive_failures: AtomicU32::new(0),
            up: AtomicBool::new(true),
            stats: UpstreamStats::default(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records a success: the upstream is up again.
    pub fn note_success(&self, zone: &str) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!(zone, upstream = %self.target, "upstream answers again; marked up");
        }
    }

    /// Records a timeout or connection error; after `max_fails` in a row
    /// the upstream is marked down (and probed in the background).
    pub fn note_failure(&self, zone: &str, max_fails: u32, error: &UpstreamError) {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= max_fails && self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(zone, upstream = %self.target, failures = n, %error, "upstream marked down");
        } else {
            tracing::debug!(zone, upstream = %self.target, failures = n, %error, "upstream failed");
        }
    }

    /// Sends one query and waits for its response. UDP for plain upstreams
    /// unless `tcp` (e.g. after a truncated reply); DoT upstreams always use
    /// their TLS connection.
    pub async fn exchange(
        &self,
        msg: Message,
        tcp: bool,
        timeout: Duration,
    ) -> Result<Message, UpstreamError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, self.send(msg, tcp, timeout)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout(timeout)),
        };
        match &result {
            Ok(_) => self.stats.rtt.observe(started.elapsed()),
            // A broken stream is rebuilt on the next query.
            Err(_) => *self.stream.lock().await = None,
        }
        result
    }

    async fn send(
        &self,
        msg: Message,
        tcp: bool,
        timeout: Duration,
    ) -> Result<Message, UpstreamError> {
        let use_stream = tcp || matches!(self.target, Target::Tls { .. });
        let exchange = if use_stream {
            self.stream_exchange(timeout).await?
        } else {
            self.udp_exchange().await
        };
        let mut options = DnsRequestOptions::default();
        options.use_edns = msg.edns.is_some();
        options.recursion_desired = msg.metadata.recursion_desired;
        let mut responses = exchange.send(DnsRequest::new(msg, options));
        match responses.next().await {
            Some(Ok(resp)) => Ok(resp.into_message()),
            Some(Err(e)) => Err(e.into()),
            None => Err(UpstreamError::NoResponse),
        }
    }

    async fn udp_exchange(&self) -> DnsExchange<TokioRuntimeProvider> {
        let mut guard = self.udp.lock().await;
        if let Some(ex) = guard.as_ref() {
            return ex.clone();
        }
        let addr = match &self.target {
            Target::Plain(a) | Target::Tls { addr: a, .. } => *a,
        };
        let ex = UdpClientStream::builder(addr, self.provider.clone())
            // The zone-level timeout bounds the whole exchange; one try here.
            .with_max_retries(0)
            .exchange();
        *guard = Some(ex.clone());
        ex
    }

    async fn stream_exchange(
        &self,
        timeout: Duration,
    ) -> Result<DnsExchange<TokioRuntimeProvider>, UpstreamError> {
        let mut guard = self.stream.lock().await;
        if let Some(ex) = guard.as_ref() {
            return Ok(ex.clone());
        }
        // The exchange's background task lives in the provider's task set:
        // a provider dropped here would cancel the connection (hickory-net 0.26).
        let provider = self.provider.clone();
        let ex = match &self.target {
            Target::Plain(addr) => {
                TcpClientStream::exchange(*addr, None, timeout, None, provider).await?
            }
            Target::Tls { addr, server_name } => {
                let name = ServerName::try_from(server_name.clone())
                    .map_err(|_| UpstreamError::ServerName(server_name.clone()))?;
                let config = match self.tls.as_deref() {
                    Some(c) => c.clone(),
                    None => crate::tls::client_config(None, None)
                        .map_err(|e| UpstreamError::Tls(e.to_string()))?,
                };
                hickory_net::tls::tls_exchange(*addr, name, config, timeout, None, provider).await?
            }
        };
        *guard = Some(ex.clone());
        Ok(ex)
    }
}
