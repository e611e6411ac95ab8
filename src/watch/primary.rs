//! The `primary:` source (design.md §7): the zone as another DNS server
//! serves it. Every `poll`, and at once when a NOTIFY for the zone was
//! accepted (`ClusterHandle::refresh`), the servers are asked for the
//! zone's SOA in order; a newer serial is fetched by IXFR from the serial
//! held (RFC 1995), by AXFR (RFC 5936) the first time or when the server
//! cannot give the difference. The records become the cluster's snapshot
//! (`index::TransferredZone`), published under the primary's serial.
//!
//! Like the other sources: synced after the first complete transfer; while
//! no server answers, failing (dated from the first check that got no
//! answer), keeping the last data; failures counted by cause.

mod client;
mod metrics;

pub use metrics::{PrimaryMetrics, PrimaryStats, TransferKind, Trigger};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use client::{Client, ClientError};

use crate::config::{PrimarySettings, Upstream};
use crate::index::{ClusterHandle, FailureCause, Kind, TransferredZone, serial_gt, unix_ms};
use crate::watch::xfr::{Ask, Transfer};

/// How long a source whose settings cannot work (a TLS file that does not
/// load) waits before it tries them again.
const SETUP_RETRY: Duration = Duration::from_secs(30);

/// Runs the source of one cluster until aborted.
pub async fn run(settings: PrimarySettings, handle: Arc<ClusterHandle>, stats: Arc<PrimaryStats>) {
    let zone = handle.spec.zone.to_hickory();
    let client = loop {
        match Client::new(zone.clone(), &settings) {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(cluster = %handle.spec.name, error = %e, "primary: source cannot start");
                handle.status.note_probe_failure(unix_ms(), e.cause());
                tokio::time::sleep(SETUP_RETRY).await;
            }
        }
    };
    let mut source = Source {
        zone: Some(TransferredZone::new(Arc::clone(&handle.spec))),
        settings,
        handle,
        stats,
        client,
        held: None,
        generation: 0,
        failing: None,
        warned_older: false,
    };
    let mut trigger = Trigger::Poll;
    loop {
        let next = tokio::time::Instant::now() + source.settings.poll;
        source.check(trigger).await;
        trigger = tokio::select! {
            () = tokio::time::sleep_until(next) => Trigger::Poll,
            () = source.handle.refresh.notified() => Trigger::Notify,
        };
    }
}

struct Source {
    settings: PrimarySettings,
    handle: Arc<ClusterHandle>,
    stats: Arc<PrimaryStats>,
    client: Client,
    /// `None` only while a transfer is applied off the async workers.
    zone: Option<TransferredZone>,
    /// The primary's serial of the data published.
    held: Option<u32>,
    generation: u64,
    /// The cause of the current failure, while every server fails.
    failing: Option<FailureCause>,
    warned_older: bool,
}

impl Source {
    fn name(&self) -> &str {
        &self.handle.spec.name
    }

    /// One check: the servers in order, until one answers.
    async fn check(&mut self, trigger: Trigger) {
        self.stats.count_check(trigger);
        let sent = unix_ms();
        let mut errors: Vec<(Upstream, ClientError)> = Vec::new();
        let servers = self.settings.servers.clone();
        for server in &servers {
            match self.check_server(server).await {
                Ok(()) => {
                    for (s, e) in &errors {
                        self.handle.status.count_failure(e.cause());
                        tracing::debug!(cluster = %self.name(), server = %s, error = %e, "primary server failed; a later one answered");
                    }
                    self.answered();
                    return;
                }
                Err(e) => errors.push((server.clone(), e)),
            }
        }
        self.all_failed(sent, errors);
    }

    fn answered(&mut self) {
        let status = &self.handle.status;
        status.note_probe_ok();
        status.note_event();
        self.stats.note_check();
        if self.failing.take().is_some() {
            tracing::info!(cluster = %self.name(), "primary answers again");
        }
    }

    fn all_failed(&mut self, sent_ms: u64, errors: Vec<(Upstream, ClientError)>) {
        let mut errors = errors.into_iter();
        let Some((server, first)) = errors.next() else {
            return;
        };
        for (_, e) in errors.as_slice() {
            self.handle.status.count_failure(e.cause());
        }
        let cause = first.cause();
        self.handle.status.note_probe_failure(sent_ms, cause);
        let others: Vec<String> = errors.map(|(s, e)| format!("{s}: {e}")).collect();
        if self.failing.replace(cause) == Some(cause) {
            tracing::debug!(cluster = %self.name(), %server, cause = cause.as_str(), error = %first, ?others, "primary still failing");
        } else {
            tracing::warn!(cluster = %self.name(), %server, cause = cause.as_str(), error = %first, ?others, "primary failing; keeping the last transferred data");
        }
    }

    /// Checks one server's SOA and transfers what is new.
    async fn check_server(&mut self, server: &Upstream) -> Result<(), ClientError> {
        let serial = self.client.soa_serial(server).await?;
        if let Some(held) = self.held {
            if serial == held {
                return Ok(());
            }
            if !serial_gt(serial, held) {
                // RFC 1982: an older serial is not followed (as a standard
                // secondary would not).
                if !std::mem::replace(&mut self.warned_older, true) {
                    tracing::warn!(cluster = %self.name(), %server, serial, held, "primary's serial is older than the one held; not following it back");
                }
                return Ok(());
            }
        }
        self.warned_older = false;
        let started = Instant::now();
        let (ask, transfer) = match self.held {
            None => (Ask::Axfr, self.client.transfer(server, Ask::Axfr).await?),
            Some(held) => {
                let ask = Ask::Ixfr { serial: held };
                match self.client.transfer(server, ask).await {
                    Err(e) if e.try_axfr() => {
                        tracing::debug!(cluster = %self.name(), %server, error = %e, "IXFR did not work; asking for AXFR");
                        (Ask::Axfr, self.client.transfer(server, Ask::Axfr).await?)
                    }
                    r => (ask, r?),
                }
            }
        };
        self.apply(server, ask, transfer, started).await;
        Ok(())
    }

    /// Folds a transfer into the zone and publishes it.
    async fn apply(&mut self, server: &Upstream, ask: Ask, transfer: Transfer, started: Instant) {
        let serial = transfer.serial();
        let (kind, work) = match transfer {
            // The SOA changed between the check and the transfer.
            Transfer::UpToDate { .. } => return,
            Transfer::Full { records, .. } if ask == Ask::Axfr => {
                (TransferKind::Axfr, Work::Full(records))
            }
            Transfer::Full { records, .. } => (TransferKind::IxfrFull, Work::Full(records)),
            Transfer::Incremental { diffs, .. } => (
                TransferKind::Ixfr,
                Work::Diffs(diffs.into_iter().map(|d| (d.deleted, d.added)).collect()),
            ),
        };
        let Some(mut zone) = self.zone.take() else {
            return;
        };
        let generation = self.generation + 1;
        // A large zone takes a while to fold in: off the async workers.
        let folded = tokio::task::spawn_blocking(move || {
            let full = matches!(work, Work::Full(_));
            let skipped = match work {
                Work::Full(records) => zone.replace(records),
                Work::Diffs(diffs) => diffs
                    .into_iter()
                    .flat_map(|(deleted, added)| zone.apply(deleted, added))
                    .collect(),
            };
            let snap = zone.publish(generation);
            if full {
                super::give_back_free_memory();
            }
            (zone, snap, skipped)
        })
        .await;
        let (zone, snap, skipped) = match folded {
            Ok(done) => done,
            Err(e) => {
                // Start over with a whole transfer.
                tracing::error!(cluster = %self.name(), error = %e, "applying a transfer failed");
                self.zone = Some(TransferredZone::new(Arc::clone(&self.handle.spec)));
                self.held = None;
                return;
            }
        };
        let mut zone = zone;
        let first = !self.handle.status.synced();
        self.handle.publish_at(snap, Some(serial));
        self.generation = generation;
        self.held = Some(serial);
        let status = &self.handle.status;
        status.note_event();
        status.set_objects(Kind::Service, zone.services());
        status.set_objects(Kind::Pod, zone.pods());
        status
            .service_health_transitions
            .fetch_add(zone.take_health_flips(), Ordering::Relaxed);
        self.stats.note_transfer(kind, serial, zone.skipped_names());
        if !skipped.is_empty() {
            tracing::warn!(cluster = %self.name(), count = skipped.len(), first = ?&skipped[..skipped.len().min(5)], "names outside the Kubernetes DNS grammar are skipped, not served");
        }
        let ms = started.elapsed().as_millis() as u64;
        if first {
            tracing::info!(cluster = %self.name(), %server, serial, services = zone.services(), ms, "cluster synced; answering its zone");
        } else {
            tracing::debug!(cluster = %self.name(), %server, serial, kind = kind.as_str(), ms, "transfer applied");
        }
        self.zone = Some(zone);
    }
}

enum Work {
    Full(Vec<hickory_proto::rr::Record>),
    Diffs(
        Vec<(
            Vec<hickory_proto::rr::Record>,
            Vec<hickory_proto::rr::Record>,
        )>,
    ),
}
