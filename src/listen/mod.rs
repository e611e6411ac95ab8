//! Listeners: sockets in, engine, sockets out. UDP runs a lean blocking
//! receive → answer → send loop per thread on `SO_REUSEPORT` sockets (`udp`);
//! TCP and DNS over TLS share one stream loop on tokio (`stream`). Queries
//! for forward zones go to the forwarder. Listeners never write the index.

mod stream;
mod udp;

use std::sync::Arc;

pub use stream::{TlsAcceptor, serve_tcp, serve_tls, tls_acceptor, watch_tls_files};
pub use udp::{UdpWorkers, spawn_udp};

use crate::answer::{Engine, Outcome};
use crate::forward::Forwarder;
use crate::metrics::{Answered, Metrics};

/// What every listener shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub engine: Arc<Engine>,
    pub forwarder: Arc<Forwarder>,
    pub transfers: Arc<crate::transfer::Transfers>,
    pub metrics: Metrics,
}

/// What the metrics count of a query the engine (or forwarder) answered.
fn answered(o: &Outcome) -> Answered {
    Answered {
        zone: o.zone.map(crate::zones::ZoneId::index),
        qtype: o.qtype,
        rcode: o.rcode,
        truncated: o.truncated,
    }
}
