//! How a planned transfer goes out: one message, or a stream produced on a
//! blocking thread from the snapshots (or journal entries) it holds and
//! written to the connection as it comes, through a small channel, so a
//! slow secondary costs neither the writer nor the async workers anything
//! but that thread.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::message::{self, Header, Messages, Sent};
use super::metrics::XfrResult;
use super::zone::View;
use super::{Source, Zone, ixfr};
use crate::index::Entry;
use crate::tsig::primary::Signing;
use crate::wire::rcode;

/// How long one message of a transfer may take to go out before the
/// transfer is given up (a secondary that stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Finished messages waiting for the connection, per transfer.
const IN_FLIGHT: usize = 4;

/// What a transfer sends, produced on a blocking thread.
pub(super) enum Body {
    /// The whole zone (`None`: the catalog).
    Whole(Arc<Zone>, Option<View>),
    /// IXFR increments.
    Increments(Arc<Zone>, Vec<Entry>),
}

impl Body {
    fn write<S: message::Sink>(&self, m: &mut Messages<'_, S>) {
        match self {
            Body::Whole(zone, view) => match (&zone.source, view) {
                (Source::Cluster(c), Some(view)) => c.write_all(view, m),
                (Source::Catalog(c), _) => c.write_all(m),
                (Source::Cluster(_), None) => {}
            },
            Body::Increments(zone, entries) => {
                if let Source::Cluster(c) = &zone.source {
                    ixfr::write(c, entries, m);
                }
            }
        }
    }
}

/// How a request is answered.
pub(super) enum Plan {
    /// One message, and how the request counts.
    Reply(Vec<u8>, u8, XfrResult),
    /// A stream of messages.
    Stream(Body, Option<Signing>),
}

/// The current SOA alone (an IXFR from an up-to-date serial).
pub(super) fn current(
    header: Header,
    question: &[u8],
    zone: &Zone,
    serial: u32,
    signing: Option<Signing>,
    now: u64,
) -> Plan {
    let mut framed = Vec::new();
    let mut m = Messages::new(
        header,
        question,
        signing,
        |f: Vec<u8>| {
            framed = f;
            true
        },
        now,
    );
    let mut soa = crate::index::RrsetBuilder::new(6, zone.ttl());
    soa.push(&zone.soa_rdata(serial));
    if let Some(soa) = soa.finish() {
        m.rrset(zone.apex(), &soa);
    }
    m.finish();
    let msg = framed.get(2..).map(<[u8]>::to_vec).unwrap_or_default();
    Plan::Reply(msg, rcode::NOERROR, XfrResult::Ok)
}

pub(super) async fn write<W: AsyncWrite + Unpin>(out: &mut W, framed: &[u8]) -> io::Result<()> {
    out.write_all(framed).await?;
    out.flush().await
}

/// Produces `body` on a blocking thread and writes its messages to `out`
/// as they come; returns what was sent, and whether all of it went out.
pub(super) async fn stream<W: AsyncWrite + Unpin + Send>(
    body: Body,
    header: Header,
    question: Vec<u8>,
    signing: Option<Signing>,
    now: u64,
    out: &mut W,
) -> (Sent, io::Result<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let producer = tokio::task::spawn_blocking(move || {
        let sink = |framed: Vec<u8>| tx.blocking_send(framed).is_ok();
        let mut m = Messages::new(header, &question, signing, sink, now);
        body.write(&mut m);
        let closed = m.closed();
        (m.finish(), closed)
    });
    let mut result = Ok(());
    while let Some(framed) = rx.recv().await {
        match tokio::time::timeout(WRITE_TIMEOUT, out.write_all(&framed)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                result = Err(e);
                break;
            }
            Err(_) => {
                result = Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the secondary stopped reading the transfer",
                ));
                break;
            }
        }
    }
    // The producer sees the channel closed and stops.
    drop(rx);
    let (sent, closed) = producer.await.unwrap_or_default();
    if result.is_ok() && closed {
        result = Err(io::Error::other("the transfer stopped early"));
    }
    if result.is_ok() {
        result = out.flush().await;
    }
    (sent, result)
}
