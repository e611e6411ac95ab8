//! Zone distribution (design.md §7), beside the answer engine: zone
//! transfers out (AXFR per RFC 5936, IXFR per RFC 1995, over TCP and TLS),
//! TSIG (RFC 8945), NOTIFY in and out (RFC 1996) and the catalog zone
//! (RFC 9432). Reads snapshots and journals; never writes the index (the
//! `primary:` source in `watch` does, for transfers in).
//!
//! NOT BUILT YET on this branch: every transfer and every NOTIFY is
//! REFUSED, as with no `transfer:` configured.

mod notify_in;

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::answer::Outcome;
use crate::wire::{self, ResponseWriter, rcode};
use crate::zones::ZoneId;

/// What the listeners hand zone transfers and NOTIFYs to.
#[derive(Debug, Default)]
pub struct Transfers {
    notify_in: notify_in::NotifyInbox,
}

impl Transfers {
    /// The transfer side of one config: its transferable zones (every
    /// cluster zone in `zones`, and the catalog), their clusters' handles
    /// (`clusters[i]` belongs to `settings.clusters[i]`), keys and peers.
    pub fn new(
        settings: &crate::config::Settings,
        zones: &crate::zones::ZoneTable,
        clusters: &[std::sync::Arc<crate::index::ClusterHandle>],
    ) -> Self {
        Self {
            notify_in: notify_in::NotifyInbox::new(settings, zones, clusters),
        }
    }

    /// Answers an AXFR/IXFR request for `zone` that arrived over TCP (or
    /// TLS, `tls`) from `peer`, writing one or more length-prefixed
    /// messages to `out`.
    pub async fn serve<W: AsyncWrite + Unpin + Send>(
        &self,
        request: &[u8],
        peer: SocketAddr,
        tls: bool,
        zone: ZoneId,
        out: &mut W,
    ) -> io::Result<Outcome> {
        let _ = (peer, tls);
        let mut reply = Vec::new();
        let outcome = refuse(request, Some(zone), &mut reply);
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        out.write_all(&framed).await?;
        out.flush().await?;
        Ok(outcome)
    }

    /// Answers a NOTIFY for `zone` from `peer` into `out`.
    pub fn notified(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        zone: Option<ZoneId>,
        out: &mut Vec<u8>,
    ) -> Outcome {
        self.notify_in.answer(packet, peer, zone, out)
    }
}

fn refuse(packet: &[u8], zone: Option<ZoneId>, out: &mut Vec<u8>) -> Outcome {
    let qtype = match wire::parse(packet) {
        Ok(q) => {
            ResponseWriter::new(out, &q).finish(&q, rcode::REFUSED, false, false);
            q.qtype
        }
        Err(_) => 0,
    };
    Outcome {
        rcode: rcode::REFUSED,
        qtype,
        zone,
        truncated: false,
    }
}
