//! NOTIFY in (RFC 1996), for zones fed by a `primary:` source: accepted
//! (NOERROR, AA, the question echoed) only from the address of one of that
//! zone's configured servers, and only signed with the source's key when
//! it has one (RFC 8945); the source then checks the zone's SOA at once
//! (`ClusterHandle::refresh`). Everything else is REFUSED, or NOTAUTH with
//! the TSIG error (BADKEY, BADSIG, BADTIME; RFC 8945 §5.2) for a signature
//! that does not verify. Answers are signed when the NOTIFY was (§5.3).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{TSigResponseContext, TSigner};

use crate::answer::Outcome;
use crate::config::{Settings, Source, Upstream};
use crate::index::ClusterHandle;
use crate::tsig::{self, TsigFailure};
use crate::wire::{self, ResponseWriter, qtype, rcode};
use crate::zones::{ZoneId, ZoneTable};

/// One zone that takes NOTIFYs: its source, who may send them, and the key
/// they must be signed with.
struct Primary {
    zone: ZoneId,
    cluster: Arc<ClusterHandle>,
    servers: Vec<IpAddr>,
    signer: Option<TSigner>,
}

/// The zones this server follows as a secondary, for NOTIFYs.
#[derive(Default)]
pub struct NotifyInbox {
    primaries: Vec<Primary>,
}

impl std::fmt::Debug for NotifyInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.primaries
                    .iter()
                    .map(|p| (&p.cluster.spec.name, &p.servers)),
            )
            .finish()
    }
}

impl NotifyInbox {
    /// `clusters[i]` belongs to `settings.clusters[i]`.
    pub fn new(settings: &Settings, zones: &ZoneTable, clusters: &[Arc<ClusterHandle>]) -> Self {
        let mut primaries = Vec::new();
        for (c, handle) in settings.clusters.iter().zip(clusters) {
            let Source::Primary(p) = &c.source else {
                continue;
            };
            let Some(zone) = zones.get(&c.zone) else {
                continue;
            };
            let signer = match p.key.as_ref().map(tsig::signer).transpose() {
                Ok(s) => s,
                Err(e) => {
                    // Then no NOTIFY verifies; polling still works.
                    tracing::error!(cluster = %c.name, error = %e, "NOTIFYs cannot be checked");
                    continue;
                }
            };
            primaries.push(Primary {
                zone,
                cluster: Arc::clone(handle),
                servers: p
                    .servers
                    .iter()
                    .map(|s| match s {
                        Upstream::Plain(a) | Upstream::Tls { addr: a, .. } => a.ip(),
                    })
                    .collect(),
                signer,
            });
        }
        Self { primaries }
    }

    /// Answers a NOTIFY for `zone` (`None`: no zone served) from `peer`.
    pub fn answer(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        zone: Option<ZoneId>,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let q = match wire::parse(packet) {
            Ok(q) => q,
            Err(wire::Reject::Reply { id, flags, rcode }) => {
                wire::write_header_only(out, id, flags, rcode);
                return outcome(rcode, 0, zone);
            }
            Err(wire::Reject::Drop) => {
                out.clear();
                return outcome(rcode::FORMERR, 0, zone);
            }
        };
        let simple = |out: &mut Vec<u8>, code: u8, aa: bool| {
            ResponseWriter::new(out, &q).finish(&q, code, aa, false);
            outcome(code, q.qtype, zone)
        };
        // Mapped addresses (a dual-stack socket) compare as IPv4.
        let from = peer.ip().to_canonical();
        let Some(primary) = zone.and_then(|z| self.primaries.iter().find(|p| p.zone == z)) else {
            tracing::debug!(%peer, "NOTIFY for a zone this server does not follow: REFUSED");
            return simple(out, rcode::REFUSED, false);
        };
        let name = &primary.cluster.spec.name;
        if !primary.servers.iter().any(|s| s.to_canonical() == from) {
            tracing::debug!(cluster = %name, %peer, "NOTIFY from an address that is not a primary of the zone: REFUSED");
            return simple(out, rcode::REFUSED, false);
        }
        if q.qtype != qtype::SOA {
            return simple(out, rcode::NOTIMP, false);
        }
        let Ok(msg) = Message::from_vec(packet) else {
            return simple(out, rcode::FORMERR, false);
        };
        let now = tsig::now();
        let signed = match (&primary.signer, msg.signature()) {
            (None, None) => None,
            (Some(_), None) => {
                tracing::warn!(cluster = %name, %peer, "unsigned NOTIFY where the zone has a key: REFUSED");
                return simple(out, rcode::REFUSED, false);
            }
            (None, Some(sig)) => {
                tracing::warn!(cluster = %name, %peer, key = %sig.name, "signed NOTIFY where the zone has no key: NOTAUTH (BADKEY)");
                let ctx = TSigResponseContext::unknown_key(msg.metadata.id, now, sig.name.clone());
                return signed_reply(&msg, ResponseCode::NotAuth, ctx, out, zone, q.qtype);
            }
            (Some(signer), Some(sig)) => match tsig::verify_request(signer, packet, sig, now) {
                Ok(mac) => Some(TSigResponseContext::new(
                    msg.metadata.id,
                    now,
                    signer.clone(),
                    mac,
                    None,
                )),
                Err(e) => {
                    tracing::warn!(cluster = %name, %peer, error = %e, "NOTIFY signature does not verify: NOTAUTH");
                    let id = msg.metadata.id;
                    let ctx = match e {
                        TsigFailure::WrongKey(_) => {
                            TSigResponseContext::unknown_key(id, now, sig.name.clone())
                        }
                        TsigFailure::BadTime { .. } => TSigResponseContext::new(
                            id,
                            now,
                            signer.clone(),
                            sig.data.mac.clone(),
                            Some(TsigError::BadTime),
                        ),
                        _ => TSigResponseContext::bad_signature(id, now, signer.clone()),
                    };
                    return signed_reply(&msg, ResponseCode::NotAuth, ctx, out, zone, q.qtype);
                }
            },
        };
        tracing::debug!(cluster = %name, %peer, "NOTIFY accepted; checking the primary now");
        primary.cluster.refresh.notify_one();
        match signed {
            None => simple(out, rcode::NOERROR, true),
            Some(ctx) => signed_reply(&msg, ResponseCode::NoError, ctx, out, zone, q.qtype),
        }
    }
}

fn outcome(rcode: u8, qtype: u16, zone: Option<ZoneId>) -> Outcome {
    Outcome {
        rcode,
        qtype,
        zone,
        truncated: false,
    }
}

/// The answer to `req` with a TSIG record from `ctx` (signed, or carrying
/// the TSIG error unsigned, as the context says).
fn signed_reply(
    req: &Message,
    code: ResponseCode,
    ctx: TSigResponseContext,
    out: &mut Vec<u8>,
    zone: Option<ZoneId>,
    qtype: u16,
) -> Outcome {
    let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Notify);
    m.metadata.authoritative = code == ResponseCode::NoError;
    m.metadata.response_code = code;
    m.add_queries(req.queries.clone());
    let encoded = m.to_vec().and_then(|bytes| {
        m.set_signature(ctx.sign(&bytes)?);
        m.to_vec()
    });
    match encoded {
        Ok(bytes) => {
            *out = bytes;
            outcome(u16::from(code) as u8, qtype, zone)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a NOTIFY answer");
            out.clear();
            wire::write_header_only(out, req.metadata.id, [0x20, 0], rcode::SERVFAIL);
            outcome(rcode::SERVFAIL, qtype, zone)
        }
    }
}
