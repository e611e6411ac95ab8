//! NOTIFY out (RFC 1996): tells each `transfer.notify` target that a
//! transferable zone changed, signed with `transfer.key`. One loop per
//! (zone, target): once the zone has synced, and after every publish, it
//! sends a NOTIFY for the current serial and retries, backing off, until
//! the target acknowledges (NOERROR; RFC 1996 §3.6). Changes that arrive
//! while a NOTIFY is outstanding, or within `MIN_SPACING` of the last one,
//! fold into the next: a target sees at most one NOTIFY per `MIN_SPACING`
//! however fast the zone churns, and always one for the latest serial.
//! A target that refuses the NOTIFY (REFUSED: it does not follow
//! this zone from this server, as a site's crossdns answers for its own
//! zone in site mode, where every site notifies every other one) has
//! answered: it is told again at the next change, not retried.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType, TSigner};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::Zone;

/// The first wait for an acknowledgement; doubled per retry up to `MAX_WAIT`.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Up to this wait, a change resends at once rather than after the wait.
const EAGER_WAIT: Duration = Duration::from_secs(2);
/// The least time between two NOTIFYs to one target.
const MIN_SPACING: Duration = Duration::from_millis(100);

/// Runs the NOTIFY loop of `zone` to `target` forever.
pub(super) async fn run(
    zone: Arc<Zone>,
    target: SocketAddr,
    signer: Option<TSigner>,
    source: Option<IpAddr>,
) {
    let socket = match bind(target, source).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(zone = %zone.apex(), %target, error = %e, "cannot open a socket for NOTIFY");
            return;
        }
    };
    let mut acked: Option<u32> = None;
    let mut last_sent: Option<Instant> = None;
    let mut refused_before = false;
    loop {
        // Registered before the serial is read: no publish goes unseen.
        let changed = zone.changed();
        match zone.notify_serial() {
            Some(serial) if acked != Some(serial) => {
                let answered =
                    notify_until_acked(&zone, &socket, target, signer.as_ref(), &mut last_sent)
                        .await;
                if let Some(why) = &answered.refused {
                    if refused_before {
                        tracing::debug!(zone = %zone.apex(), %target, why, "NOTIFY refused");
                    } else {
                        tracing::info!(zone = %zone.apex(), %target, why, "NOTIFY refused: the target does not follow this zone from here; told again at the next change");
                    }
                }
                refused_before = answered.refused.is_some();
                acked = Some(answered.serial);
            }
            _ => match changed {
                Some(changed) => changed.await,
                None => std::future::pending().await,
            },
        }
    }
}

async fn bind(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<UdpSocket> {
    let any: IpAddr = if target.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    // From the address secondaries know crossdns by, where it listens on one.
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == target.is_ipv4() && !ip.is_unspecified())
        && let Ok(s) = UdpSocket::bind((ip, 0)).await
    {
        return Ok(s);
    }
    UdpSocket::bind((any, 0)).await
}

/// How the target answered the NOTIFYs for `serial`.
struct Answered {
    serial: u32,
    /// Why it refused them; `None`: acknowledged.
    refused: Option<String>,
}

/// Sends NOTIFYs for the zone's latest serial until one is acknowledged
/// or refused.
async fn notify_until_acked(
    zone: &Zone,
    socket: &UdpSocket,
    target: SocketAddr,
    signer: Option<&TSigner>,
    last_sent: &mut Option<Instant>,
) -> Answered {
    let mut wait = FIRST_WAIT;
    let mut failing = false;
    loop {
        if let Some(t) = *last_sent {
            tokio::time::sleep_until(t + MIN_SPACING).await;
        }
        let serial = zone.notify_serial().unwrap_or_default();
        let (bytes, id, verifier) = match message(zone, serial, signer) {
            Some(m) => m,
            None => {
                tracing::error!(zone = %zone.apex(), "cannot build a NOTIFY");
                return Answered {
                    serial,
                    refused: None,
                };
            }
        };
        *last_sent = Some(Instant::now());
        zone.stats.notify_sent(target);
        if let Err(e) = socket.send_to(&bytes, target).await {
            tracing::debug!(zone = %zone.apex(), %target, error = %e, "NOTIFY send failed");
        }
        // A change while the first answers are awaited goes out at once
        // (a target that has missed a few is waited for, not flooded).
        let changed = async {
            match zone.changed() {
                Some(c) if wait <= EAGER_WAIT => c.await,
                _ => std::future::pending().await,
            }
        };
        let answer = tokio::select! {
            r = tokio::time::timeout(wait, reply(socket, target, id)) => r.ok(),
            () = changed => continue,
        };
        match answer {
            Some(reply) => match check(&reply, verifier) {
                Ok(()) => {
                    zone.stats.notify_acked(target);
                    if failing {
                        tracing::info!(zone = %zone.apex(), %target, serial, "NOTIFY acknowledged again");
                    }
                    return Answered {
                        serial,
                        refused: None,
                    };
                }
                Err(Reject::Refused(why)) => {
                    return Answered {
                        serial,
                        refused: Some(why),
                    };
                }
                Err(Reject::Bad(why)) if !failing => {
                    failing = true;
                    tracing::warn!(zone = %zone.apex(), %target, why, "NOTIFY not acknowledged; retrying");
                }
                Err(_) => {}
            },
            None if !failing => {
                failing = true;
                tracing::warn!(zone = %zone.apex(), %target, ?wait, "NOTIFY unanswered; retrying");
            }
            None => {}
        }
        wait = (wait * 2).min(MAX_WAIT);
    }
}

/// A NOTIFY for `zone` at `serial` (RFC 1996 §3.7: the SOA in the answer
/// section), signed when a key is configured.
fn message(
    zone: &Zone,
    serial: u32,
    signer: Option<&TSigner>,
) -> Option<(Vec<u8>, u16, Option<hickory_proto::rr::TSigVerifier>)> {
    let id = fastrand::u16(..);
    let mut m = Message::new(id, MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    let apex = zone.apex().to_hickory();
    let mut q = Query::query(apex.clone(), RecordType::SOA);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m.add_answer(Record::from_rdata(apex, zone.ttl(), zone.soa_rdata(serial)));
    let verifier = match signer {
        Some(s) => Some(crate::tsig::primary::sign_request(
            &mut m,
            s,
            crate::index::unix_ms() / 1000,
        )?),
        None => None,
    };
    Some((m.to_vec().ok()?, id, verifier))
}

/// The next response from `target` to NOTIFY `id` (others are ignored).
async fn reply(socket: &UdpSocket, target: SocketAddr, id: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let bytes = &buf[..n];
        if from == target
            && n >= 12
            && u16::from_be_bytes([bytes[0], bytes[1]]) == id
            && bytes[2] & 0x80 != 0
        {
            return bytes.to_vec();
        }
    }
}

/// A response that is not an acknowledgement.
enum Reject {
    /// REFUSED: the target will not take this NOTIFY from us (NOTAUTH,
    /// a key problem, is retried).
    Refused(String),
    /// Anything else (retried).
    Bad(String),
}

/// An acknowledgement: a NOTIFY response with NOERROR, whose TSIG (when
/// the target signed it) verifies.
fn check(reply: &[u8], verifier: Option<hickory_proto::rr::TSigVerifier>) -> Result<(), Reject> {
    let m =
        Message::from_vec(reply).map_err(|e| Reject::Bad(format!("unreadable response: {e}")))?;
    if m.metadata.op_code != OpCode::Notify {
        return Err(Reject::Bad(format!(
            "response opcode {:?}",
            m.metadata.op_code
        )));
    }
    match m.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::Refused => {
            return Err(Reject::Refused("answered REFUSED".to_owned()));
        }
        rc => return Err(Reject::Bad(format!("answered {rc}"))),
    }
    if let (Some(mut v), Some(_)) = (verifier, m.signature()) {
        v.verify(reply)
            .map_err(|e| Reject::Bad(format!("response signature does not verify: {e}")))?;
    }
    Ok(())
}
