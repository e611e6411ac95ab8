//! The clusterset view (Multi-Cluster Services DNS, KEP-1645 naming):
//! `<svc>.<ns>.svc.<cs>` answers with the healthy clusters by policy,
//! `<host>.<cluster>.<svc>.<ns>.svc.<cs>` with that pod, SRV merged. Health
//! is "a ready endpoint there, and the cluster not stale" (design.md §1–§2).
//! Reads snapshots and cluster status; never sees Kubernetes types.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use super::lookup::Found;
use super::wire::{QName, qtype};
use crate::config::{AllDown, ClustersetPolicy, ClustersetSettings};
use crate::index::{ClusterHandle, ClustersetRecords, Snapshot, unix_ms};

/// TTL of `last-healthy` answers: short, so clients come back soon.
pub const LAST_HEALTHY_TTL: u32 = 2;
/// Bytes of one pre-encoded A / AAAA answer record (pointer owner).
const A_RECORD: usize = 16;
const AAAA_RECORD: usize = 28;

/// Counters for `/metrics`, shared with the health monitor.
#[derive(Debug)]
pub struct ClustersetStats {
    pub stale_after: Duration,
    pub clusters: Vec<Arc<ClusterHandle>>,
    /// Answers where the preferred cluster (local, or first in order) was
    /// unhealthy and others answered.
    pub failovers: AtomicU64,
    /// Answers given under `all_down`, by mode.
    pub all_down: AtomicU64,
    /// Per cluster: healthy ↔ stale flips, seen by the monitor or by an
    /// answer, whichever noticed first.
    pub transitions: Vec<AtomicU64>,
    /// Per cluster: whether it was stale when last looked at.
    was_stale: Vec<AtomicBool>,
}

impl ClustersetStats {
    /// Whether cluster `i` is stale at `now_ms`; a change since the last
    /// look is logged and counted once. Answers call this too, so even a
    /// flip shorter than the monitor's period is recorded; the common case
    /// costs one relaxed load.
    pub fn stale(&self, i: usize, now_ms: u64) -> bool {
        let c = &self.clusters[i];
        let stale = c.status.stale(self.stale_after, now_ms);
        if self.was_stale[i].load(Ordering::Relaxed) != stale
            && self.was_stale[i]
                .compare_exchange(!stale, stale, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.transitions[i].fetch_add(1, Ordering::Relaxed);
            if stale {
                tracing::warn!(cluster = %c.spec.name, stale_after = ?self.stale_after, "cluster is stale: its source has failed for longer than stale_after; the clusterset leaves it out");
            } else {
                tracing::info!(cluster = %c.spec.name, "cluster is fresh again; back in the clusterset");
            }
        }
        stale
    }

    /// Looks at every cluster every 100 ms, so transitions are logged and
    /// counted without queries; runs until aborted.
    pub async fn monitor(self: Arc<Self>) {
        loop {
            let now = unix_ms();
            for i in 0..self.clusters.len() {
                self.stale(i, now);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[derive(Debug)]
struct Member {
    /// The cluster name, the label in `<host>.<cluster>.<svc>...`.
    label: Box<[u8]>,
    cluster: Arc<ClusterHandle>,
}

#[derive(Debug)]
pub struct ClustersetZone {
    members: Vec<Member>,
    local: Option<usize>,
    policy: ClustersetPolicy,
    all_down: AllDown,
    /// Per service (`<svc>.<ns>` wire): the clusters that were healthy last.
    last_healthy: DashMap<Box<[u8]>, Box<[usize]>>,
    rotation: AtomicUsize,
    pub stats: Arc<ClustersetStats>,
}

/// Answer bytes assembled at query time from several clusters.
#[derive(Debug, Default)]
pub struct Merged {
    pub count: u16,
    pub answer: Vec<u8>,
    pub extra_count: u16,
    pub extra: Vec<u8>,
}

impl ClustersetZone {
    pub fn new(cs: &ClustersetSettings, clusters: &[Arc<ClusterHandle>]) -> Self {
        let members: Vec<Member> = clusters
            .iter()
            .map(|c| Member {
                label: c.spec.name.as_bytes().into(),
                cluster: Arc::clone(c),
            })
            .collect();
        let local = cs
            .local
            .as_ref()
            .and_then(|l| clusters.iter().position(|c| &c.spec.name == l));
        Self {
            members,
            local,
            policy: cs.policy,
            all_down: cs.all_down,
            last_healthy: DashMap::new(),
            rotation: AtomicUsize::new(0),
            stats: Arc::new(ClustersetStats {
                stale_after: cs.stale_after,
                clusters: clusters.to_vec(),
                failovers: AtomicU64::new(0),
                all_down: AtomicU64::new(0),
                transitions: clusters.iter().map(|_| AtomicU64::new(0)).collect(),
                was_stale: clusters.iter().map(|_| AtomicBool::new(false)).collect(),
            }),
        }
    }

    /// The answer for a name the clusterset does not have: SERVFAIL while
    /// some cluster has not synced (it may yet have it), else NXDOMAIN.
    fn absent(&self) -> Found<'static> {
        if self.members.iter().any(|m| !m.cluster.status.synced()) {
            Found::Servfail
        } else {
            Found::Nxdomain
        }
    }

    /// Looks up `name` (labels `0..k` relative to the clusterset zone).
    pub fn lookup<R>(
        &self,
        name: &QName,
        k: usize,
        want: u16,
        f: impl FnOnce(Found<'_>) -> R,
    ) -> R {
        if k == 0 {
            return f(Found::Apex);
        }
        if name.label(k - 1) != b"svc" {
            return f(self.absent());
        }
        let guards: Vec<_> = self.members.iter().map(|m| m.cluster.load()).collect();
        let snaps: Vec<Option<&Snapshot>> = guards.iter().map(|g| g.as_deref()).collect();
        if snaps.iter().all(Option::is_none) {
            return f(Found::Servfail);
        }
        match k {
            1 => f(Found::Nodata),
            2 => {
                let ns = name.label(0);
                f(if snaps.iter().flatten().any(|s| s.has_namespace(ns)) {
                    Found::Nodata
                } else {
                    self.absent()
                })
            }
            3 => self.service_addresses(&snaps, name.span(0, 2), want, f),
            4 => {
                // `<cluster>.<svc>.<ns>.svc` must not exist (KEP-1645); `_tcp.` is an ENT.
                let key = name.span(1, 3);
                let first = name.label(0);
                let ent = snaps
                    .iter()
                    .flatten()
                    .filter_map(|s| s.clusterset_service(key))
                    .any(|(svc, cs)| {
                        first.starts_with(b"_") && (svc.is_proto_label(first) || !cs.srv.is_empty())
                    });
                f(if ent { Found::Nodata } else { self.absent() })
            }
            5 if name.label(0).starts_with(b"_") => self.srv(&snaps, name, want, f),
            5 => {
                // `<host>.<cluster>.<svc>.<ns>.svc`: that pod, healthy or not.
                let Some(i) = self
                    .members
                    .iter()
                    .position(|m| m.label.as_ref() == name.label(1))
                else {
                    return f(Found::Nxdomain);
                };
                let Some(snap) = snaps[i] else {
                    return f(Found::Servfail);
                };
                let node = snap
                    .clusterset_service(name.span(2, 4))
                    .and_then(|(svc, _)| svc.hosts.get(name.label(0)));
                f(node.map_or(Found::Nxdomain, Found::Node))
            }
            _ => f(self.absent()),
        }
    }

    /// Exported service entries per cluster, and which are healthy.
    fn entries<'s>(
        &self,
        snaps: &[Option<&'s Snapshot>],
        key: &[u8],
    ) -> (Vec<(usize, &'s ClustersetRecords)>, Vec<usize>) {
        let now = unix_ms();
        let entries: Vec<(usize, &ClustersetRecords)> = snaps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.and_then(|s| s.clusterset_service(key))
                    .map(|(_, cs)| (i, cs))
            })
            .collect();
        let healthy = entries
            .iter()
            .filter(|(i, cs)| cs.ready && !self.stats.stale(*i, now))
            .map(|(i, _)| *i)
            .collect();
        (entries, healthy)
    }

    /// No cluster is healthy for `key`: per `all_down`, the clusters that
    /// were healthy last, or the negative answer to give.
    fn when_all_down(&self, key: &[u8]) -> Result<Vec<usize>, Found<'static>> {
        self.stats.all_down.fetch_add(1, Ordering::Relaxed);
        match self.all_down {
            AllDown::Servfail => Err(Found::Servfail),
            AllDown::Nxdomain => Err(Found::Nxdomain),
            AllDown::LastHealthy => self
                .last_healthy
                .get(key)
                .map(|l| l.to_vec())
                .ok_or(Found::Servfail),
        }
    }

    fn service_addresses<R>(
        &self,
        snaps: &[Option<&Snapshot>],
        key: &[u8],
        want: u16,
        f: impl FnOnce(Found<'_>) -> R,
    ) -> R {
        let (entries, healthy) = self.entries(snaps, key);
        if entries.is_empty() {
            return f(self.absent());
        }
        // Annotations come from the local cluster's Service, else the first.
        let source = entries
            .iter()
            .find(|(i, _)| Some(*i) == self.local)
            .unwrap_or(&entries[0])
            .1;
        let policy = source.policy.unwrap_or(self.policy);
        let (chosen, ttl) = if healthy.is_empty() {
            match self.when_all_down(key) {
                Ok(last) => (last, Some(LAST_HEALTHY_TTL)),
                Err(negative) => return f(negative),
            }
        } else {
            if self.last_healthy.get(key).is_none_or(|l| **l != *healthy) {
                self.last_healthy.insert(key.into(), healthy.clone().into());
            }
            (self.choose(policy, source, &healthy), None)
        };
        tracing::debug!(
            service = %crate::dnsname::Labels::new(key).map(String::from_utf8_lossy).collect::<Vec<_>>().join("."),
            ?policy,
            healthy = ?healthy.iter().map(|i| &self.members[*i].cluster.spec.name).collect::<Vec<_>>(),
            chosen = ?chosen.iter().map(|i| &self.members[*i].cluster.spec.name).collect::<Vec<_>>(),
            "clusterset answer"
        );
        let mut out = Merged::default();
        let types: &[u16] = if want == qtype::ANY {
            &[qtype::A, qtype::AAAA]
        } else {
            &[want]
        };
        for t in types {
            let start = out.answer.len();
            let mut n = 0u16;
            for i in &chosen {
                let Some((_, cs)) = entries.iter().find(|(j, _)| j == i) else {
                    continue;
                };
                // Last-healthy answers fall back to not-ready endpoints.
                let set = match ttl {
                    Some(_) => cs.addrs.get(*t).or_else(|| cs.fallback.get(*t)),
                    None => cs.addrs.get(*t),
                };
                if let Some(set) = set {
                    out.answer.extend_from_slice(set.answer());
                    n += set.count;
                }
            }
            out.count += n;
            let size = match *t {
                qtype::A => A_RECORD,
                qtype::AAAA => AAAA_RECORD,
                _ => continue,
            };
            let records = &mut out.answer[start..];
            if let Some(ttl) = ttl {
                for rec in records.chunks_exact_mut(size) {
                    rec[6..10].copy_from_slice(&ttl.to_be_bytes());
                }
            }
            // Round-robin rotates the records themselves, per query.
            if policy == ClustersetPolicy::RoundRobin && n > 1 {
                let by = self.rotation.fetch_add(1, Ordering::Relaxed) % usize::from(n);
                records.rotate_left(by * size);
            }
        }
        if out.count == 0 {
            return f(Found::Nodata);
        }
        f(Found::Merged(out))
    }

    /// Picks the clusters that answer, among `healthy` (non-empty).
    fn choose(
        &self,
        policy: ClustersetPolicy,
        source: &ClustersetRecords,
        healthy: &[usize],
    ) -> Vec<usize> {
        let name = |i: usize| self.members[i].cluster.spec.name.as_str();
        match policy {
            ClustersetPolicy::LocalFirst => match self.local {
                Some(l) if healthy.contains(&l) => vec![l],
                Some(_) => {
                    self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                    healthy.to_vec()
                }
                None => healthy.to_vec(),
            },
            ClustersetPolicy::Failover => {
                // The annotation's order, then config order for the rest.
                let mut order: Vec<usize> = source
                    .failover_order
                    .iter()
                    .filter_map(|n| self.members.iter().position(|m| m.cluster.spec.name == *n))
                    .collect();
                let rest: Vec<usize> = (0..self.members.len())
                    .filter(|i| !order.contains(i))
                    .collect();
                order.extend(rest);
                let pick = order
                    .iter()
                    .copied()
                    .find(|i| healthy.contains(i))
                    .unwrap_or(healthy[0]);
                if order.first() != Some(&pick) {
                    self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                }
                vec![pick]
            }
            ClustersetPolicy::RoundRobin => healthy.to_vec(),
            ClustersetPolicy::Weighted => {
                // One cluster per answer, drawn by weight: a caching resolver
                // that reorders records cannot undo the split.
                let weight = |i: usize| -> u64 {
                    if source.weights.is_empty() {
                        1
                    } else {
                        source
                            .weights
                            .iter()
                            .find(|(n, _)| n == name(i))
                            .map_or(0, |(_, w)| u64::from(*w))
                    }
                };
                let total: u64 = healthy.iter().map(|i| weight(*i)).sum();
                if total == 0 {
                    return healthy.to_vec();
                }
                let mut ticket = fastrand::u64(0..total);
                for &i in healthy {
                    let w = weight(i);
                    if ticket < w {
                        return vec![i];
                    }
                    ticket -= w;
                }
                healthy.to_vec()
            }
        }
    }

    /// SRV merged across every healthy cluster (not only the policy's pick:
    /// SRV clients choose by priority and weight themselves).
    fn srv<R>(
        &self,
        snaps: &[Option<&Snapshot>],
        name: &QName,
        want: u16,
        f: impl FnOnce(Found<'_>) -> R,
    ) -> R {
        let key = name.span(2, 4);
        let srv_key = name.span(0, 2);
        let (entries, healthy) = self.entries(snaps, key);
        if entries.is_empty() {
            return f(self.absent());
        }
        if !matches!(want, qtype::SRV | qtype::ANY) {
            let exists = entries.iter().any(|(_, cs)| cs.srv.contains_key(srv_key));
            return f(if exists {
                Found::Nodata
            } else {
                Found::Nxdomain
            });
        }
        let pick: Vec<usize> = if healthy.is_empty() {
            match self.when_all_down(key) {
                Ok(last) => last,
                Err(negative) => return f(negative),
            }
        } else {
            healthy
        };
        let mut out = Merged::default();
        let mut seen: Vec<&[u8]> = Vec::new();
        for i in pick {
            let Some((_, cs)) = entries.iter().find(|(j, _)| *j == i) else {
                continue;
            };
            let Some(set) = cs.srv.get(srv_key).and_then(|n| n.get(qtype::SRV)) else {
                continue;
            };
            // ClusterIP services give the same record from every cluster.
            if seen.contains(&set.answer()) {
                continue;
            }
            seen.push(set.answer());
            out.answer.extend_from_slice(set.answer());
            out.count += set.count;
            out.extra.extend_from_slice(set.extra());
            out.extra_count += set.extra_count;
        }
        if out.count == 0 {
            let exists = entries.iter().any(|(_, cs)| cs.srv.contains_key(srv_key));
            return f(if exists {
                Found::Nodata
            } else {
                Found::Nxdomain
            });
        }
        f(Found::Merged(out))
    }
}
