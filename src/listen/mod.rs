//! Listeners: sockets in, engine, sockets out. UDP runs a lean blocking
//! receive → answer → send loop per thread on `SO_REUSEPORT` sockets (`udp`);
//! TCP and DNS over TLS share one stream loop on tokio (`stream`). Queries
//! for forward zones go to the forwarder. Listeners never write the index.

mod stream;
mod udp;

use std::sync::Arc;

use arc_swap::ArcSwap;

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

/// What the listeners serve with, behind one swappable pointer: a config
/// reload hands the running sockets the new engine, forwarder and metrics
/// instead of binding new ones, so no query queued in a socket is lost.
#[derive(Debug, Clone)]
pub struct Serving(Arc<ArcSwap<Shared>>);

impl Serving {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(shared)))
    }

    /// Every listener serves `shared` from its next query on.
    pub fn replace(&self, shared: Shared) {
        self.0.store(Arc::new(shared));
    }

    pub fn load(&self) -> Arc<Shared> {
        self.0.load_full()
    }

    /// A per-thread reader that costs a pointer compare while nothing changed.
    fn cache(&self) -> arc_swap::Cache<Arc<ArcSwap<Shared>>, Arc<Shared>> {
        arc_swap::Cache::new(Arc::clone(&self.0))
    }
}

/// A listener's query counters for the config it serves: the metrics of a
/// reloaded config start afresh, so they follow the shared state.
#[derive(Debug)]
struct Counters {
    of: Arc<Shared>,
    stats: Arc<crate::metrics::WorkerStats>,
}

impl Counters {
    fn new(of: &Arc<Shared>) -> Self {
        Self {
            of: Arc::clone(of),
            stats: of.metrics.worker(),
        }
    }

    /// The counters for `now`, new ones when the config changed.
    fn for_config(&mut self, now: &Arc<Shared>) -> &Arc<crate::metrics::WorkerStats> {
        if !Arc::ptr_eq(&self.of, now) {
            *self = Self::new(now);
        }
        &self.stats
    }
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
