//! The `primary:` source (design.md §7): the zone as another DNS server
//! serves it, kept by SOA checks, IXFR/AXFR and NOTIFY.
//!
//! NOT BUILT YET on this branch: the source reports itself failing, so its
//! zone answers SERVFAIL and `/readyz` names it (never a wrong answer).

use std::sync::Arc;
use std::time::Duration;

use crate::config::PrimarySettings;
use crate::index::ClusterHandle;

pub async fn run(settings: PrimarySettings, handle: Arc<ClusterHandle>) {
    loop {
        tracing::error!(cluster = %handle.spec.name, servers = ?settings.servers, "primary: sources are not implemented in this build");
        handle.status.note_watch_failure();
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}
