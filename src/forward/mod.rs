//! Forwarding (stub domains): zones crossdns does not serve itself are sent
//! to upstream DNS servers, with a policy, health tracking, a TTL-honouring
//! cache and serve-stale, and loop detection. Beside the answer engine: the
//! engine decides *that* a query is forwarded, this module does it.

mod cache;
mod metrics;
mod reply;
pub mod upstream;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

use crate::config::{ForwardPolicy, ForwardSettings};
use crate::dnsname::WireName;
use crate::zones::{ZoneId, ZoneTable};
use cache::{Cache, Key, cache_ttl};
pub use metrics::{RTT_BUCKETS, UpstreamStats, ZoneStats};
use reply::{TtlRule, capped_ttls, reply_error, respond, respond_entry, usable_rcode};
pub use upstream::{Upstream, UpstreamError};

/// Our EDNS option (local/experimental range, RFC 6891 §9): how many
/// crossdns forwarders a query has already passed through.
pub const HOP_OPTION: u16 = 65_401;
/// A query that has been forwarded this many times is in a loop.
pub const MAX_HOPS: u8 = 4;
/// How long one upstream may take before the next one is tried.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
/// RFC 8767 §4: the TTL on stale answers.
pub const STALE_TTL: u32 = 30;
const CACHE_CAPACITY: usize = 10_000;
/// How often upstreams that are down are probed, and how long a probe waits.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct ForwardZone {
    pub apex: WireName,
    pub upstreams: Vec<Arc<Upstream>>,
    policy: ForwardPolicy,
    max_fails: u32,
    cache: Cache,
    next: AtomicUsize,
    pub stats: ZoneStats,
}

/// Every forward zone; shared by the listeners.
#[derive(Debug, Default)]
pub struct Forwarder {
    pub zones: Vec<ForwardZone>,
    /// `ZoneId::index()` → the slot in `zones` of that forward zone.
    by_id: Vec<Option<usize>>,
}

/// Why a forward zone could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("forward zone {zone}: {source}")]
pub struct SetupError {
    zone: String,
    source: crate::tls::TlsError,
}

impl Forwarder {
    /// The forward zones of `settings`, each under its id in `table`.
    pub fn new(settings: &[ForwardSettings], table: &ZoneTable) -> Result<Self, SetupError> {
        let mut zones = Vec::with_capacity(settings.len());
        let mut by_id = vec![None; table.len()];
        for f in settings {
            let needs_tls = f
                .upstreams
                .iter()
                .any(|u| matches!(u, crate::config::Upstream::Tls { .. }));
            let tls = if needs_tls {
                let client = f
                    .tls
                    .client_cert
                    .as_ref()
                    .map(|(c, k)| (c.as_path(), k.as_path()));
                let config =
                    crate::tls::client_config(f.tls.ca.as_deref(), client).map_err(|source| {
                        SetupError {
                            zone: f.zone.to_string(),
                            source,
                        }
                    })?;
                Some(Arc::new(config))
            } else {
                None
            };
            if let Some(id) = table.get(&f.zone) {
                by_id[id.index()] = Some(zones.len());
            }
            zones.push(ForwardZone {
                apex: f.zone.clone(),
                upstreams: f
                    .upstreams
                    .iter()
                    .map(|u| Arc::new(Upstream::new(u.clone(), tls.clone())))
                    .collect(),
                policy: f.policy,
                max_fails: f.max_fails,
                cache: Cache::new(CACHE_CAPACITY, f.stale_for),
                next: AtomicUsize::new(0),
                stats: ZoneStats::default(),
            });
        }
        Ok(Self { zones, by_id })
    }

    fn zone(&self, id: ZoneId) -> Option<&ForwardZone> {
        let slot = (*self.by_id.get(id.index())?)?;
        self.zones.get(slot)
    }

    /// Probes upstreams that are down until the task is aborted; one that
    /// answers anything is marked up again.
    pub async fn probe_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            // Every down upstream at once: N dead upstreams must not take
            // N probe timeouts to notice that one came back.
            let probes = self.zones.iter().flat_map(|zone| {
                zone.upstreams
                    .iter()
                    .filter(|u| !u.is_up())
                    .map(move |u| async move {
                        let apex = zone.apex.to_string();
                        let Ok(name) = Name::from_ascii(format!("{apex}.")) else {
                            return;
                        };
                        let mut probe = Message::new(rand_id(), MessageType::Query, OpCode::Query);
                        probe.metadata.recursion_desired = true;
                        probe.add_query(Query::query(name, RecordType::SOA));
                        if u.exchange(probe, false, PROBE_TIMEOUT).await.is_ok() {
                            u.note_success(&apex);
                        }
                    })
            });
            futures::future::join_all(probes).await;
        }
    }

    /// Resolves `query` (already validated by the engine) through zone
    /// `zone`'s upstreams and returns the response for the client, which
    /// takes at most `limit` bytes.
    pub async fn resolve(
        &self,
        zone: ZoneId,
        query: &[u8],
        limit: usize,
    ) -> (Vec<u8>, ResponseCode) {
        match self.answer_early(zone, query, limit) {
            Early::Done(reply, rcode) => (reply, rcode),
            Early::Upstream(req) => self.resolve_upstream(zone, &req, limit).await,
        }
    }

    /// The synchronous half: answers what needs no upstream (cache hits,
    /// loops, bad messages) at once, so a listener thread can reply without
    /// a task; otherwise hands back the parsed query for `resolve_upstream`.
    pub fn answer_early(&self, zone: ZoneId, query: &[u8], limit: usize) -> Early {
        let Ok(req) = Message::from_vec(query) else {
            let (reply, rcode) = reply_error(query, ResponseCode::FormErr);
            return Early::Done(reply, rcode);
        };
        match self.zone(zone) {
            Some(zone) => zone.early(req, limit),
            None => {
                let (reply, rcode) =
                    respond(&req, ResponseCode::ServFail, &[], &[], &[], None, limit);
                Early::Done(reply, rcode)
            }
        }
    }

    /// The asynchronous half: asks the upstreams (a query `answer_early`
    /// handed back).
    pub async fn resolve_upstream(
        &self,
        zone: ZoneId,
        req: &Message,
        limit: usize,
    ) -> (Vec<u8>, ResponseCode) {
        match self.zone(zone) {
            Some(zone) => zone.upstream(req, limit).await,
            None => respond(req, ResponseCode::ServFail, &[], &[], &[], None, limit),
        }
    }
}

/// What `Forwarder::answer_early` decided.
#[derive(Debug)]
pub enum Early {
    /// The reply, ready to send.
    Done(Vec<u8>, ResponseCode),
    /// Needs an upstream: the parsed query.
    Upstream(Message),
}

fn cache_key(q: &Query, dnssec_ok: bool) -> Key {
    (
        q.name().to_lowercase().to_ascii(),
        u16::from(q.query_type()),
        u16::from(q.query_class()),
        dnssec_ok,
    )
}

fn dnssec_ok(req: &Message) -> bool {
    req.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)
}

/// A random query ID for upstream queries (RFC 5452 §9.2), and the random
/// policy's pick.
fn rand_id() -> u16 {
    fastrand::u16(..)
}

fn hops(req: &Message) -> u8 {
    req.edns
        .as_ref()
        .and_then(|e| e.option(EdnsCode::Unknown(HOP_OPTION)))
        .and_then(|o| match o {
            EdnsOption::Unknown(_, v) => v.first().copied(),
            _ => None,
        })
        .unwrap_or(0)
}

impl ForwardZone {
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    fn name(&self) -> String {
        self.apex.to_string()
    }

    /// Upstreams to try, in policy order; those marked down are left out.
    fn order(&self) -> Vec<&Arc<Upstream>> {
        let n = self.upstreams.len();
        let start = match self.policy {
            ForwardPolicy::Sequential => 0,
            ForwardPolicy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n.max(1),
            ForwardPolicy::Random => usize::from(rand_id()) % n.max(1),
        };
        (0..n)
            .map(|i| &self.upstreams[(start + i) % n])
            .filter(|u| u.is_up())
            .collect()
    }

    /// Loops, bad questions and fresh cache hits; anything else goes upstream.
    fn early(&self, req: Message, limit: usize) -> Early {
        let Some(q) = req.queries.first() else {
            let (reply, rcode) = respond(&req, ResponseCode::FormErr, &[], &[], &[], None, limit);
            return Early::Done(reply, rcode);
        };
        let hop = hops(&req);
        if hop >= MAX_HOPS {
            self.stats.loops.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(zone = %self.name(), name = %q.name(), hops = hop, "forwarding loop detected; answering SERVFAIL");
            let (reply, rcode) = respond(&req, ResponseCode::ServFail, &[], &[], &[], None, limit);
            return Early::Done(reply, rcode);
        }
        if let Some((reply, rcode)) = self.cached(&req, limit, Instant::now(), false) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Early::Done(reply, rcode);
        }
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
        Early::Upstream(req)
    }

    /// The cached answer to `req` at `now`, rewritten for the client: a
    /// fresh entry with its TTLs aged, or (`stale`) an entry expired less
    /// than `stale_for` ago with every TTL at `STALE_TTL` (RFC 8767 §4).
    /// No I/O: the fuzz target drives it with arbitrary cached replies.
    pub fn cached(
        &self,
        req: &Message,
        limit: usize,
        now: Instant,
        stale: bool,
    ) -> Option<(Vec<u8>, ResponseCode)> {
        let key = cache_key(req.queries.first()?, dnssec_ok(req));
        if stale {
            let e = self.cache.stale(&key, now)?;
            return Some(respond_entry(req, &e, TtlRule::Fixed(STALE_TTL), limit));
        }
        let e = self.cache.fresh(&key, now)?;
        Some(respond_entry(req, &e, TtlRule::Age(e.age_secs(now)), limit))
    }

    /// What an upstream's reply `m` to `req` becomes: it is cached for as
    /// long as its TTLs allow (NOERROR and NXDOMAIN only), and its records
    /// go to the client under the client's ID and question, cut to `limit`.
    /// No I/O: the fuzz target drives it with arbitrary upstream bytes.
    pub fn accept(
        &self,
        req: &Message,
        m: &Message,
        limit: usize,
        now: Instant,
    ) -> (Vec<u8>, ResponseCode) {
        let Some(rcode) = usable_rcode(m) else {
            return respond(req, ResponseCode::ServFail, &[], &[], &[], None, limit);
        };
        let capped;
        let m = match capped_ttls(m) {
            Some(c) => {
                capped = c;
                &capped
            }
            None => m,
        };
        if let (Some(q), Some(ttl)) = (req.queries.first(), cache_ttl(m)) {
            self.cache.insert(cache_key(q, dnssec_ok(req)), m, ttl, now);
        }
        respond(
            req,
            rcode,
            &m.answers,
            &m.authorities,
            &m.additionals,
            None,
            limit,
        )
    }

    /// Asks the upstreams in policy order; serves stale when none answers.
    async fn upstream(&self, req: &Message, limit: usize) -> (Vec<u8>, ResponseCode) {
        let Some(q) = req.queries.first() else {
            return respond(req, ResponseCode::FormErr, &[], &[], &[], None, limit);
        };
        let hop = hops(req);
        let upstream_req = upstream_message(req, q, hop + 1, dnssec_ok(req));
        let mut servfail: Option<Message> = None;
        for u in self.order() {
            let mut result = u
                .exchange(upstream_req.clone(), false, ATTEMPT_TIMEOUT)
                .await;
            if let Ok(m) = &result
                && m.metadata.truncation
                && matches!(u.target, crate::config::Upstream::Plain(_))
            {
                result = u
                    .exchange(upstream_req.clone(), true, ATTEMPT_TIMEOUT)
                    .await;
            }
            match result {
                Ok(m) if usable_rcode(&m).is_none_or(|rc| rc == ResponseCode::ServFail) => {
                    // Answered, so healthy; but another upstream may do better.
                    u.note_success(&self.name());
                    servfail = Some(m);
                }
                Ok(m) => {
                    u.note_success(&self.name());
                    return self.accept(req, &m, limit, Instant::now());
                }
                Err(e) => u.note_failure(&self.name(), self.max_fails, &e),
            }
        }
        if let Some(stale) = self.cached(req, limit, Instant::now(), true) {
            self.stats.stale_served.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(zone = %self.name(), name = %q.name(), "no upstream answered; serving stale (RFC 8767)");
            return stale;
        }
        match servfail {
            // Not cached: `cache_ttl` keeps only NOERROR and NXDOMAIN.
            Some(m) => self.accept(req, &m, limit, Instant::now()),
            None => respond(req, ResponseCode::ServFail, &[], &[], &[], None, limit),
        }
    }
}

/// The query as sent upstream: same question, RD set, EDNS with our hop count.
fn upstream_message(req: &Message, q: &Query, hops: u8, dnssec_ok: bool) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.checking_disabled = req.metadata.checking_disabled;
    m.add_query(q.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(crate::wire::EDNS_UDP);
    edns.set_dnssec_ok(dnssec_ok);
    edns.options_mut()
        .insert(EdnsOption::Unknown(HOP_OPTION, vec![hops]));
    m.set_edns(edns);
    m
}
