//! Live apiserver sources: the kube client per cluster (built from its
//! kubeconfig, in-cluster config or `$KUBECONFIG`), one list/watch stream
//! per (kind, namespace) scope (`listwatch`), and a liveness probe. Errors
//! are classified into a `FailureCause` for `/metrics` and the log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::mpsc;

use super::listwatch::ScopeWatch;
use super::{Failure, Scope, SourceEvent};
use crate::index::{ClusterHandle, FailureCause};

/// Reads on an open connection (a watch included) time out after this
/// long without a byte; watches are re-opened every 25 s, and bookmarks
/// keep them busy, so only a dead or stalled connection is cut.
const READ_TIMEOUT: Duration = Duration::from_secs(35);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Watch retries: exponential from 250 ms with jitter, capped at 1 s, so a
/// recovered apiserver is answered again within about a second (kube's
/// default grows to 30 s, which would keep a recovered cluster stale that
/// long); reset by every success. A 429's Retry-After replaces it.
#[derive(Debug, Default)]
pub(super) struct Exponential {
    attempt: u32,
}

impl Exponential {
    pub(super) fn next_delay(&mut self) -> Duration {
        const MIN_MS: u64 = 250;
        const MAX_MS: u64 = 1_000;
        let ms = MIN_MS.saturating_mul(1 << self.attempt.min(10)).min(MAX_MS);
        self.attempt = self.attempt.saturating_add(1);
        // Full jitter on the upper half, so clusters do not retry in step.
        Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2))
    }

    pub(super) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The cause of a request that got no HTTP answer, and its message.
pub(super) fn classify(e: &(dyn std::error::Error + 'static)) -> (FailureCause, String) {
    let mut message = e.to_string();
    let mut cause = None;
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        if cause.is_none() {
            if s.downcast_ref::<rustls::Error>().is_some() {
                cause = Some(FailureCause::Tls);
            } else if let Some(io) = s.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::*;
                cause = match io.kind() {
                    ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
                    | AddrNotAvailable | HostUnreachable | NetworkUnreachable => {
                        Some(FailureCause::Unreachable)
                    }
                    TimedOut => Some(FailureCause::Stalled),
                    _ if io
                        .get_ref()
                        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
                    {
                        Some(FailureCause::Tls)
                    }
                    _ => None,
                };
            }
        }
        source = s.source();
    }
    let lower = message.to_ascii_lowercase();
    let cause = cause.unwrap_or(if lower.contains("certificate") || lower.contains("tls") {
        FailureCause::Tls
    } else if lower.contains("timed out") || lower.contains("elapsed") {
        FailureCause::Stalled
    } else if lower.contains("connect") {
        FailureCause::Unreachable
    } else if lower.contains("auth") || lower.contains("exec") || lower.contains("token") {
        FailureCause::Credentials
    } else {
        FailureCause::Other
    });
    (cause, message)
}

/// The cluster's kube client, rebuilt from its kubeconfig when the
/// apiserver refuses the credentials: a token file or exec plugin that has
/// been rotated is then read again at once, not at kube's next scheduled
/// refresh (a minute for token files).
pub(super) struct ClientCell {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    current: std::sync::Mutex<(kube::Client, u64)>,
    rebuild: tokio::sync::Mutex<()>,
}

impl ClientCell {
    /// The current client and its generation.
    pub(super) fn get(&self) -> (kube::Client, u64) {
        self.current
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Rebuilds the client after generation `seen` was refused; a rebuild
    /// another stream already made is reused (and the streams' backoff
    /// keeps rebuilds to about one a second).
    pub(super) async fn renew(&self, seen: u64) {
        let _one = self.rebuild.lock().await;
        if self.get().1 != seen {
            return;
        }
        match client(self.kubeconfig.as_ref(), self.context.as_deref()).await {
            Ok(c) => {
                if let Ok(mut cur) = self.current.lock() {
                    *cur = (c, seen + 1);
                }
            }
            Err(e) => tracing::debug!(error = format!("{e:#}"), "rebuilding the client failed"),
        }
    }
}

/// Runs every watcher of one cluster until the task is aborted.
pub(super) async fn run(
    cluster: String,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    scopes: Vec<Scope>,
    handle: Arc<ClusterHandle>,
    tx: mpsc::Sender<SourceEvent>,
) {
    let client = loop {
        match client(kubeconfig.as_ref(), context.as_deref()).await {
            Ok(c) => break c,
            Err(e) => {
                let failure = Failure {
                    scope: None,
                    cause: FailureCause::Credentials,
                    message: format!("cannot build a client: {e:#}"),
                };
                let _ = tx.send(SourceEvent::Failing(failure)).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let _ = tx.send(SourceEvent::Healthy(None)).await;
    let clients = Arc::new(ClientCell {
        kubeconfig,
        context,
        current: std::sync::Mutex::new((client, 0)),
        rebuild: tokio::sync::Mutex::new(()),
    });
    let mut tasks = vec![tokio::spawn(probe(
        Arc::clone(&clients),
        Arc::clone(&handle),
    ))];
    for scope in scopes {
        let watch = ScopeWatch {
            cluster: cluster.clone(),
            clients: Arc::clone(&clients),
            scope,
            handle: Arc::clone(&handle),
            tx: tx.clone(),
        };
        tasks.push(tokio::spawn(watch.run()));
    }
    // Hold the watchers; aborting this task aborts them too.
    let _guard: Vec<super::CancelOnDrop> = tasks.into_iter().map(super::CancelOnDrop).collect();
    std::future::pending::<()>().await;
}

/// How often the apiserver is asked whether it is alive: a stalled
/// apiserver sends no watch error, so silence alone must be noticed.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

async fn probe(clients: Arc<ClientCell>, handle: Arc<ClusterHandle>) {
    let name = handle.spec.name.clone();
    loop {
        let (client, _) = clients.get();
        let sent = crate::index::unix_ms();
        match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => {
                if handle.status.failing_since_ms().is_some() {
                    tracing::debug!(cluster = %name, "apiserver answers its probe");
                }
                handle.status.note_probe_ok();
            }
            // An HTTP error or an odd body still means the apiserver is up
            // (some test apiservers have no /version): only a failed or
            // timed-out connection counts against the cluster.
            Ok(Err(
                kube::Error::Api(_) | kube::Error::SerdeError(_) | kube::Error::FromUtf8(_),
            )) => {
                handle.status.note_probe_ok();
            }
            Ok(Err(e)) => {
                let (cause, message) = classify(&e);
                probe_failed(&handle, sent, cause, &message);
            }
            Err(_) => {
                let message = format!("no answer to /version within {PROBE_TIMEOUT:?}");
                probe_failed(&handle, sent, FailureCause::Stalled, &message);
            }
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Notes a failed probe; the first of a run is logged (as a warning).
fn probe_failed(handle: &ClusterHandle, sent: u64, cause: FailureCause, message: &str) {
    let first = handle.status.failing_cause().is_none();
    handle.status.note_probe_failure(sent, cause);
    if first {
        tracing::warn!(cluster = %handle.spec.name, cause = %cause.as_str(), error = %message, "apiserver probe failing; keeping the last snapshot");
    } else {
        tracing::debug!(cluster = %handle.spec.name, cause = %cause.as_str(), error = %message, "apiserver probe failed");
    }
}

async fn client(
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let mut config = match kubeconfig {
        Some(path) => {
            kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    config.read_timeout = Some(READ_TIMEOUT);
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    // 429s and 503s are retried (honouring Retry-After) by the watch loop,
    // which can then say the cluster is being throttled; kube's own retry
    // layer would hide that for up to 15 attempts.
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}
