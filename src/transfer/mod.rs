//! Zone distribution (design.md §7), beside the answer engine: crossdns as
//! a primary. Zone transfers out (AXFR per RFC 5936, IXFR per RFC 1995 from
//! the zone's journal, over TCP and TLS, RFC 9103), TSIG (RFC 8945) on
//! transfers and on the SOA queries secondaries sign, `transfer.allow`,
//! NOTIFY out and in (RFC 1996; in for `primary:` zones), the catalog zone
//! (RFC 9432) and the per-zone metrics. Reads snapshots and journals; never
//! writes the index (the `primary:` source in `watch` does, for transfers
//! in).
//!
//! A transfer is produced on a blocking thread from snapshots held for its
//! length (`zone::View`, or the journal's entries for IXFR) and streamed
//! through a small channel to the connection, so a slow secondary costs
//! neither the writer nor the async workers anything but that thread.

mod catalog;
mod ixfr;
mod message;
mod metrics;
mod notify_in;
mod notify_out;
mod send;
mod zone;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::rr::RData;
use prometheus_client::encoding::DescriptorEncoder;
use tokio::io::AsyncWrite;

use crate::answer::Outcome;
use crate::config::{Settings, TransferSettings};
use crate::index::{ClusterHandle, serial_gt, unix_ms};
use crate::metrics::MetricSource;
use crate::tsig::primary::{self as tsig, Check, Keys, Signing};
use crate::wire::{self, Query, ResponseWriter, qtype, rcode};
use crate::zones::{Role, ZoneId, ZoneTable};
use catalog::Catalog;
pub use catalog::member_id;
use message::{Header, Sent};
use metrics::{XfrResult, ZoneStats};
use send::{Body, Plan, current, stream, write};
use zone::ClusterZone;

/// What the listeners hand zone transfers, NOTIFYs, queries to the catalog
/// and signed SOA queries to.
#[derive(Debug)]
pub struct Transfers {
    /// `None`: no `transfer:` configured; every transfer is REFUSED.
    transfer: Option<TransferSettings>,
    keys: Keys,
    /// Signs NOTIFYs (`transfer.key`).
    notify_signer: Option<tsig::Signer>,
    zones: Vec<Arc<Zone>>,
    /// Set by `announce`: NOTIFYs may go out.
    announced: tokio::sync::Notify,
    /// NOTIFYs from the primaries of `primary:` clusters.
    notify_in: notify_in::NotifyInbox,
}

/// One transferable zone.
#[derive(Debug)]
pub(crate) struct Zone {
    id: ZoneId,
    source: Source,
    stats: ZoneStats,
}

#[derive(Debug)]
enum Source {
    Cluster(ClusterZone),
    Catalog(Catalog),
}

impl Zone {
    fn apex(&self) -> &crate::dnsname::WireName {
        match &self.source {
            Source::Cluster(c) => &c.apex.name,
            Source::Catalog(c) => &c.apex,
        }
    }

    fn ttl(&self) -> u32 {
        match &self.source {
            Source::Cluster(c) => c.apex.ttl,
            Source::Catalog(c) => c.ttl,
        }
    }

    fn soa_rdata(&self, serial: u32) -> RData {
        match &self.source {
            Source::Cluster(c) => c.apex.soa_rdata(serial),
            Source::Catalog(c) => c.soa_rdata(serial),
        }
    }

    /// The serial to announce, once the zone can be transferred.
    fn notify_serial(&self) -> Option<u32> {
        match &self.source {
            Source::Cluster(c) => c.notify_serial(),
            Source::Catalog(c) => Some(c.serial()),
        }
    }

    /// Resolves at the zone's next change (`None`: it never changes).
    fn changed(&self) -> Option<tokio::sync::futures::Notified<'_>> {
        match &self.source {
            Source::Cluster(c) => Some(c.journal.changed()),
            Source::Catalog(_) => None,
        }
    }

    fn serial(&self) -> u32 {
        match &self.source {
            Source::Cluster(c) => c.journal.serial(),
            Source::Catalog(c) => c.serial(),
        }
    }
}

fn now_secs() -> u64 {
    unix_ms() / 1000
}

impl Transfers {
    /// The transfer side of one config: its transferable zones (every
    /// cluster zone in `zones`, and the catalog), their clusters' handles
    /// (`clusters[i]` belongs to `settings.clusters[i]`), keys and peers.
    pub fn new(settings: &Settings, zones: &ZoneTable, clusters: &[Arc<ClusterHandle>]) -> Self {
        let transfer = settings.transfer.clone();
        let targets = transfer.as_ref().map_or(&[][..], |t| &t.notify[..]);
        let members: Vec<_> = zones
            .iter()
            .filter(|z| z.role == Role::Cluster)
            .map(|z| z.apex.clone())
            .collect();
        let mut list = Vec::new();
        for z in zones.iter() {
            let source = match z.role {
                Role::Cluster => ClusterZone::new(&z.apex, settings, clusters).map(Source::Cluster),
                Role::Catalog => Some(Source::Catalog(Catalog::new(
                    &z.apex,
                    members.clone(),
                    settings.dns.ttl,
                ))),
                _ => None,
            };
            if let Some(source) = source {
                list.push(Arc::new(Zone {
                    id: z.id,
                    source,
                    stats: ZoneStats::new(targets),
                }));
            }
        }
        let key = transfer.as_ref().and_then(|t| t.key.as_ref());
        Self {
            keys: Keys::new(key, &settings.tsig_keys),
            notify_signer: key
                .and_then(|k| crate::tsig::signer(k).ok())
                .map(tsig::Signer),
            transfer,
            zones: list,
            announced: tokio::sync::Notify::new(),
            notify_in: notify_in::NotifyInbox::new(settings, zones, clusters),
        }
    }

    /// Lets NOTIFYs go out (`notify_forever` waits for it): once this
    /// config serves alone, so a secondary told of a change cannot ask a
    /// config being replaced and find nothing new.
    pub fn announce(&self) {
        self.announced.notify_one();
    }

    /// After a reload: keeps the running config's catalog serial when its
    /// members did not change.
    pub fn carry_over(&self, running: &Transfers) {
        for z in &self.zones {
            if let Source::Catalog(c) = &z.source
                && let Some(Source::Catalog(old)) = running
                    .zones
                    .iter()
                    .find(|o| o.apex() == z.apex())
                    .map(|o| &o.source)
            {
                c.carry_over(old);
            }
        }
    }

    fn zone(&self, id: ZoneId) -> Option<&Arc<Zone>> {
        self.zones.iter().find(|z| z.id == id)
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
        let started = Instant::now();
        let q = match wire::parse(request) {
            Ok(q) => q,
            Err(_) => {
                let mut reply = Vec::new();
                let o = refuse(request, Some(zone), &mut reply);
                write(out, &message::frame(&reply)).await?;
                return Ok(o);
            }
        };
        let ixfr = q.qtype == qtype::IXFR;
        let header = Header {
            id: q.id,
            rd: q.rd(),
            edns: q.edns.is_some(),
        };
        let now = now_secs();
        let outcome = |rcode| Outcome {
            rcode,
            qtype: q.qtype,
            zone: Some(zone),
            truncated: false,
        };
        let Some(z) = self.zone(zone).cloned() else {
            let reply = message::error(header, q.question, rcode::REFUSED, None, None, now);
            write(out, &message::frame(&reply)).await?;
            return Ok(outcome(rcode::REFUSED));
        };
        let kind = if ixfr { "ixfr" } else { "axfr" };
        match self.plan(&q, request, peer, &z, now) {
            Plan::Reply(reply, rc, result) => {
                if result == XfrResult::Ok {
                    tracing::debug!(zone = %z.apex(), %peer, kind, "transfer: secondary is up to date");
                } else {
                    tracing::info!(zone = %z.apex(), %peer, kind, result = result.as_str(), "transfer refused");
                }
                let sent = Sent {
                    messages: 1,
                    records: 0,
                    bytes: reply.len() as u64,
                };
                // Counted before it goes out: whoever reads the reply and
                // then /metrics sees it counted.
                z.stats.record(ixfr, result, sent);
                write(out, &message::frame(&reply))
                    .await
                    .map(|()| outcome(rc))
            }
            Plan::Stream(body, signing) => {
                let (sent, done) =
                    stream(body, header, q.question.to_vec(), signing, now, out).await;
                let result = if done.is_ok() {
                    XfrResult::Ok
                } else {
                    XfrResult::Aborted
                };
                z.stats.record(ixfr, result, sent);
                tracing::debug!(
                    zone = %z.apex(), %peer, kind, tls, messages = sent.messages, records = sent.records,
                    bytes = sent.bytes, took = ?started.elapsed(), result = result.as_str(), "transfer served"
                );
                done.map(|()| outcome(rcode::NOERROR))
            }
        }
    }

    /// Decides how a transfer request is answered (design.md §7,
    /// Refusals): REFUSED without `transfer:` or outside `transfer.allow`;
    /// NOTAUTH for a bad signature (with its TSIG error) or a missing one
    /// where a key is required; SERVFAIL for a zone not yet synced.
    fn plan(
        &self,
        q: &Query<'_>,
        request: &[u8],
        peer: SocketAddr,
        zone: &Arc<Zone>,
        now: u64,
    ) -> Plan {
        let header = Header {
            id: q.id,
            rd: q.rd(),
            edns: q.edns.is_some(),
        };
        let reply =
            |rc: u8, result, signing: Option<&mut Signing>, failure: Option<&tsig::Failure>| {
                Plan::Reply(
                    message::error(header, q.question, rc, signing, failure, now),
                    rc,
                    result,
                )
            };
        let Some(transfer) = &self.transfer else {
            return reply(rcode::REFUSED, XfrResult::Refused, None, None);
        };
        if !transfer.allow.allows(peer.ip()) {
            return reply(rcode::REFUSED, XfrResult::Refused, None, None);
        }
        let mut signing = match self.keys.check(request, now) {
            Check::Malformed => return reply(rcode::FORMERR, XfrResult::FormErr, None, None),
            Check::Invalid(f) => {
                tracing::info!(zone = %zone.apex(), %peer, error = ?f.error(), "transfer request with a bad TSIG");
                return reply(rcode::NOTAUTH, XfrResult::NotAuth, None, Some(&f));
            }
            Check::Unsigned if self.keys.required() => {
                return reply(rcode::NOTAUTH, XfrResult::NotAuth, None, None);
            }
            Check::Unsigned => None,
            Check::Valid(s) => Some(s),
        };
        let ixfr = q.qtype == qtype::IXFR;
        let client = if ixfr {
            match ixfr_serial(request) {
                Some(s) => Some(s),
                None => return reply(rcode::FORMERR, XfrResult::FormErr, signing.as_mut(), None),
            }
        } else {
            None
        };
        let c = match &zone.source {
            Source::Catalog(c) => {
                if client.is_some_and(|s| !serial_gt(c.serial(), s)) {
                    return current(header, q.question, zone, c.serial(), signing, now);
                }
                return Plan::Stream(Body::Whole(Arc::clone(zone), None), signing);
            }
            Source::Cluster(c) => c,
        };
        let Some(view) = c.view() else {
            return reply(rcode::SERVFAIL, XfrResult::ServFail, signing.as_mut(), None);
        };
        let Some(client) = client else {
            return Plan::Stream(Body::Whole(Arc::clone(zone), Some(view)), signing);
        };
        if !serial_gt(view.serial, client) {
            // RFC 1995 §2: as new or newer: the current SOA alone.
            return current(header, q.question, zone, view.serial, signing, now);
        }
        match c.journal.since(client) {
            // Increments, unless they would outweigh the zone itself.
            Some(entries)
                if !entries.is_empty() && ixfr::weight(&entries) <= view.services().max(64) =>
            {
                Plan::Stream(Body::Increments(Arc::clone(zone), entries), signing)
            }
            _ => {
                zone.stats.count_ixfr_full();
                Plan::Stream(Body::Whole(Arc::clone(zone), Some(view)), signing)
            }
        }
    }

    /// Answers a NOTIFY for `zone` from `peer` into `out`. crossdns as a
    /// secondary (`primary:` sources) accepts NOTIFYs in `notify_in`.
    pub fn notified(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        zone: Option<ZoneId>,
        out: &mut Vec<u8>,
    ) -> Outcome {
        self.notify_in.answer(packet, peer, zone, out)
    }

    /// Answers a query for a name in the catalog zone `zone` (within
    /// `limit` bytes), signed when the query was.
    pub fn catalog_query(
        &self,
        packet: &[u8],
        zone: ZoneId,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let Ok(q) = wire::parse(packet) else {
            return refuse(packet, Some(zone), out);
        };
        let Some(Source::Catalog(c)) = self.zone(zone).map(|z| &z.source) else {
            return refuse(packet, Some(zone), out);
        };
        let (rcode, truncated) = c.answer(&q, limit, out);
        let outcome = Outcome {
            rcode,
            qtype: q.qtype,
            zone: Some(zone),
            truncated,
        };
        self.sign_reply(packet, out, outcome)
    }

    /// Signs the reply `out` to `request` when the request carries a valid
    /// TSIG, or replaces it with NOTAUTH and the TSIG error when the TSIG
    /// is bad (RFC 8945 §5.2): secondaries sign the SOA queries they send
    /// before a transfer and drop unsigned answers to them.
    pub fn sign_reply(&self, request: &[u8], out: &mut Vec<u8>, mut outcome: Outcome) -> Outcome {
        let now = now_secs();
        match self.keys.check(request, now) {
            Check::Unsigned | Check::Malformed => {}
            Check::Valid(mut s) => {
                if let Some(record) = s.sign(out, now) {
                    tsig::append(out, &record);
                }
            }
            Check::Invalid(f) => {
                if let Ok(q) = wire::parse(request) {
                    let header = Header {
                        id: q.id,
                        rd: q.rd(),
                        edns: q.edns.is_some(),
                    };
                    *out = message::error(header, q.question, rcode::NOTAUTH, None, Some(&f), now);
                    outcome.rcode = rcode::NOTAUTH;
                }
            }
        }
        outcome
    }

    /// Sends NOTIFYs for every transferable zone to every `transfer.notify`
    /// target, forever (`source`: the address to send them from).
    pub async fn notify_forever(self: Arc<Self>, source: Option<IpAddr>) {
        let Some(transfer) = &self.transfer else {
            return;
        };
        self.announced.notified().await;
        let loops = self.zones.iter().flat_map(|z| {
            transfer.notify.iter().map(|t| {
                notify_out::run(
                    Arc::clone(z),
                    *t,
                    self.notify_signer.clone().map(|s| s.0),
                    source,
                )
            })
        });
        futures::future::join_all(loops).await;
    }
}

/// The serial of the SOA in an IXFR request's authority section (RFC 1995 §3).
fn ixfr_serial(request: &[u8]) -> Option<u32> {
    let m = hickory_proto::op::Message::from_vec(request).ok()?;
    m.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
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

impl MetricSource for Transfers {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        if self.transfer.is_none() {
            return Ok(());
        }
        let rows: Vec<metrics::ZoneRow<'_>> = self
            .zones
            .iter()
            .map(|z| metrics::ZoneRow {
                zone: z.apex().to_string(),
                serial: z.serial(),
                stats: &z.stats,
            })
            .collect();
        metrics::encode(&rows, enc)
    }
}
