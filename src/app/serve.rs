//! The life of `crossdns serve`: reloads on SIGHUP or a changed config file
//! (a reload that fails keeps the running config), and shutdown, with a
//! lame-duck period on SIGTERM so that resolvers in front of crossdns move
//! to another replica before its sockets close.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Prepared, Running, listen_on, prepare};
use crate::config::Settings;

/// How long a reloaded config's clusters may take to sync before it
/// replaces the running one anyway (their zones then answer SERVFAIL).
const RELOAD_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the config file is checked for changes (a ConfigMap update
/// arrives as a file change, with no signal).
const CONFIG_POLL: Duration = Duration::from_secs(2);
/// At start, how long the sockets wait for every cluster to sync before they
/// open anyway (unsynced zones then answer SERVFAIL), as CoreDNS's
/// kubernetes plugin waits: a replica that answers before it has data
/// sends resolvers that reach it directly SERVFAILs they need not see.
const STARTUP_SYNC_WAIT: Duration = Duration::from_secs(5);

/// How the process was asked to stop.
enum Stop {
    /// SIGINT: at once.
    Interrupt,
    /// SIGTERM (Kubernetes deleting the pod): after the lame-duck period.
    Terminate,
}

/// Runs until SIGINT or SIGTERM, reloading the config on SIGHUP or when its
/// file changes.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let path = settings.path.clone();
    let mut lameduck = settings.lameduck;
    let mut last = std::fs::read(&path).ok();
    let prepared = prepare(settings, &[], None)?;
    wait_for_sync(
        &prepared,
        STARTUP_SYNC_WAIT,
        "serving before these clusters synced",
    )
    .await;
    let (mut running, _) = listen_on(prepared, None).await.map_err(|(e, _)| e)?;
    running.transfers.announce();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut poll = tokio::time::interval(CONFIG_POLL);
    let stop = loop {
        let asked = tokio::select! {
            _ = tokio::signal::ctrl_c() => break Stop::Interrupt,
            _ = term.recv() => break Stop::Terminate,
            _ = hangup.recv() => true,
            _ = poll.tick() => false,
        };
        let text = std::fs::read(&path).ok();
        if !asked && text == last {
            continue;
        }
        last = text;
        if let Some((next, next_lameduck)) = reload(&path, &mut running).await {
            lameduck = next_lameduck;
            let old = std::mem::replace(&mut running, next);
            let transfers = Arc::clone(&running.transfers);
            tokio::spawn(async move {
                // Stopping UDP threads joins them: off the async workers.
                let _ = tokio::task::spawn_blocking(move || drop(old)).await;
                // Only now can no secondary reach the old config's answers.
                transfers.announce();
            });
        }
    };
    if matches!(stop, Stop::Terminate) && !lameduck.is_zero() {
        // CoreDNS's `health { lameduck }`: not ready, still answering.
        running.draining.store(true, Ordering::Relaxed);
        tracing::info!(
            ?lameduck,
            "SIGTERM: /readyz now says 503; still answering DNS for the lame-duck period"
        );
        tokio::select! {
            _ = tokio::time::sleep(lameduck) => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    tracing::info!("shutting down");
    tokio::task::spawn_blocking(move || drop(running)).await?;
    Ok(())
}

/// Waits until every cluster of `prepared` has synced, or `within`; logs
/// `what` with the clusters that had not.
async fn wait_for_sync(prepared: &Prepared, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while !prepared.clusters.iter().all(|c| c.status.synced()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unsynced: Vec<&str> = prepared
        .clusters
        .iter()
        .filter(|c| !c.status.synced())
        .map(|c| c.spec.name.as_str())
        .collect();
    if !unsynced.is_empty() {
        tracing::warn!(?unsynced, "{what}");
    }
}

/// Loads, starts and syncs a new config beside the running one (sharing the
/// watches of unchanged clusters and the sockets of addresses it listens on
/// again); `None` (with an error logged) when it is wrong or cannot serve,
/// and the running config goes on untouched.
async fn reload(path: &Path, running: &mut Running) -> Option<(Running, Duration)> {
    let settings = match Settings::load(path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "config reload failed; keeping the running config");
            return None;
        }
    };
    tracing::info!(config = %path.display(), "reloading the config");
    let lameduck = settings.lameduck;
    let prepared = match prepare(settings, &running.watched, Some(&running.transfers)) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "config reload failed; keeping the running config"
            );
            return None;
        }
    };
    // The sockets switch only once the new clusters have synced, so no
    // query sees a zone of the new config before it can answer.
    wait_for_sync(
        &prepared,
        RELOAD_SYNC_TIMEOUT,
        "reloaded config serves before these clusters synced",
    )
    .await;
    match listen_on(prepared, running.listeners.take()).await {
        Ok((next, closed)) => {
            tracing::info!("config reloaded");
            tokio::task::spawn_blocking(move || drop(closed));
            Some((next, lameduck))
        }
        Err((e, previous)) => {
            running.listeners = previous;
            tracing::error!(
                error = format!("{e:#}"),
                "reloaded config cannot serve; keeping the running config"
            );
            None
        }
    }
}
