//! The clusterset view (Multi-Cluster Services DNS, KEP-1645 naming):
//! `<svc>.<ns>.svc.<cs>` answers with the healthy clusters by policy,
//! `<host>.<cluster>.<svc>.<ns>.svc.<cs>` with that pod, SRV merged. Health
//! lives in `health`, the choice in `policy` (pure), the bytes in `merge`.
//! Reads snapshots and cluster status; never sees Kubernetes types.

mod health;
mod merge;
mod metrics;
pub mod policy;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use super::Found;
use crate::config::{ClustersetPolicy, ClustersetSettings};
use crate::grammar::{ClustersetName, ServiceRef};
use crate::index::{ClusterHandle, ClustersetRecords, Snapshot, SnapshotGuard, unix_ms};
use crate::wire::qtype;
pub use health::ClustersetStats;
use merge::{Entry, Shape};
use policy::{Fallback, Input};

/// TTL of `last-healthy` answers: short, so clients come back soon.
pub const LAST_HEALTHY_TTL: u32 = 2;

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
    all_down: crate::config::AllDown,
    /// Per service (`<svc>.<ns>` wire): the clusters that were healthy last.
    last_healthy: DashMap<Box<[u8]>, Box<[usize]>>,
    rotation: AtomicUsize,
    pub stats: Arc<ClustersetStats>,
}

/// Every member's current snapshot, loaded once per query.
struct Snaps {
    guards: Vec<SnapshotGuard>,
}

impl Snaps {
    fn get(&self, i: usize) -> Option<&Snapshot> {
        self.guards.get(i).and_then(|g| g.as_deref())
    }

    fn all(&self) -> impl Iterator<Item = (usize, &Snapshot)> {
        (0..self.guards.len()).filter_map(|i| self.get(i).map(|s| (i, s)))
    }

    /// Each cluster's exported records for `service`, in member order.
    fn entries(&self, service: &ServiceRef<'_>) -> Vec<Entry<'_>> {
        self.all()
            .filter_map(|(i, s)| s.clusterset_service(service.key).map(|(_, cs)| (i, cs)))
            .collect()
    }
}

impl ClustersetZone {
    pub fn new(cs: &ClustersetSettings, clusters: &[Arc<ClusterHandle>]) -> Self {
        let members = clusters
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
            stats: Arc::new(ClustersetStats::new(cs.stale_after, clusters)),
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

    fn exists(&self, present: bool) -> Found<'static> {
        if present {
            Found::Nodata
        } else {
            self.absent()
        }
    }

    /// What `name` holds for a query of type `want`.
    pub(super) fn lookup(&self, name: ClustersetName<'_>, want: u16) -> Found<'static> {
        match name {
            ClustersetName::Apex => return Found::Apex,
            ClustersetName::DnsVersion => return Found::DnsVersion,
            ClustersetName::Dns => return Found::Nodata,
            ClustersetName::Ns => return Found::NsAddresses,
            ClustersetName::Nonexistent => return self.absent(),
            _ => {}
        }
        let snaps = Snaps {
            guards: self.members.iter().map(|m| m.cluster.load()).collect(),
        };
        if snaps.all().next().is_none() {
            return Found::Servfail;
        }
        match name {
            ClustersetName::Svc => Found::Nodata,
            ClustersetName::Namespace(ns) => {
                self.exists(snaps.all().any(|(_, s)| s.has_namespace(ns)))
            }
            ClustersetName::Service(service) => self.service_addresses(&snaps, &service, want),
            ClustersetName::Proto { proto, service } => self.exists(
                snaps
                    .entries(&service)
                    .iter()
                    .any(|(_, cs)| cs.srv.has_proto(proto)),
            ),
            ClustersetName::Cluster { cluster, service } => {
                // No records of its own (KEP-1645 §2.4.4), but it exists
                // above that cluster's host names (RFC 8020).
                match self.member_snapshot(&snaps, cluster) {
                    Err(negative) => negative,
                    Ok(snap) => self.exists(
                        snap.clusterset_service(service.key)
                            .is_some_and(|(svc, _)| !svc.hosts.is_empty()),
                    ),
                }
            }
            ClustersetName::ClusterHost {
                host,
                cluster,
                service,
            } => match self.member_snapshot(&snaps, cluster) {
                Err(negative) => negative,
                // That pod, healthy or not.
                Ok(snap) => snap
                    .clusterset_service(service.key)
                    .and_then(|(svc, _)| svc.hosts.get(host))
                    .map_or(Found::Nxdomain, |node| {
                        let merged = merge::node(node, want);
                        if merged.count == 0 {
                            Found::Nodata
                        } else {
                            Found::Merged(merged)
                        }
                    }),
            },
            ClustersetName::Srv { key, service } => self.srv(&snaps, &service, key, want),
            _ => self.absent(),
        }
    }

    /// The snapshot of the member labelled `cluster`, or the answer when
    /// there is none.
    fn member_snapshot<'s>(
        &self,
        snaps: &'s Snaps,
        cluster: &[u8],
    ) -> Result<&'s Snapshot, Found<'static>> {
        let i = self
            .members
            .iter()
            .position(|m| m.label.as_ref() == cluster)
            .ok_or(Found::Nxdomain)?;
        snaps.get(i).ok_or(Found::Servfail)
    }

    /// Which clusters are healthy for the Service among `entries`.
    fn healthy(&self, entries: &[Entry<'_>]) -> Vec<usize> {
        let now = unix_ms();
        entries
            .iter()
            .filter(|(i, cs)| self.stats.healthy(*i, cs, now))
            .map(|(i, _)| *i)
            .collect()
    }

    /// No cluster is healthy for `key`: what `all_down` says to answer.
    fn when_all_down(&self, key: &[u8]) -> Result<Vec<usize>, Found<'static>> {
        self.stats.all_down.fetch_add(1, Ordering::Relaxed);
        let last = self.last_healthy.get(key);
        match policy::all_down(self.all_down, last.as_deref().map(|l| &**l)) {
            Fallback::Servfail => Err(Found::Servfail),
            Fallback::Nxdomain => Err(Found::Nxdomain),
            Fallback::Clusters(c) => Ok(c),
        }
    }

    fn policy_input<'a>(
        &self,
        source: &'a ClustersetRecords,
        healthy: &'a [usize],
        order: &'a [usize],
        weights: &'a [(usize, u32)],
    ) -> Input<'a> {
        Input {
            policy: source.policy.unwrap_or(self.policy),
            healthy,
            local: self.local,
            order,
            weights,
            draw: fastrand::u64(..),
        }
    }

    fn member_index(&self, name: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.cluster.spec.name == name)
    }

    fn service_addresses(
        &self,
        snaps: &Snaps,
        service: &ServiceRef<'_>,
        want: u16,
    ) -> Found<'static> {
        let entries = snaps.entries(service);
        if entries.is_empty() {
            return self.absent();
        }
        let healthy = self.healthy(&entries);
        // Annotations come from the local cluster's Service, else the first.
        let source = entries
            .iter()
            .find(|(i, _)| Some(*i) == self.local)
            .unwrap_or(&entries[0])
            .1;
        let key = service.key;
        let (chosen, shape) = if healthy.is_empty() {
            match self.when_all_down(key) {
                Ok(last) => (
                    last,
                    Shape {
                        last_healthy_ttl: Some(LAST_HEALTHY_TTL),
                        rotate_by: None,
                    },
                ),
                Err(negative) => return negative,
            }
        } else {
            if self.last_healthy.get(key).is_none_or(|l| **l != *healthy) {
                self.last_healthy.insert(key.into(), healthy.clone().into());
            }
            let order: Vec<usize> = source
                .failover_order
                .iter()
                .filter_map(|n| self.member_index(n))
                .collect();
            let weights: Vec<(usize, u32)> = source
                .weights
                .iter()
                .filter_map(|(n, w)| self.member_index(n).map(|i| (i, *w)))
                .collect();
            let input = self.policy_input(source, &healthy, &order, &weights);
            let selection = policy::choose(&input);
            if selection.failover {
                self.stats.failovers.fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(
                service = %crate::dnsname::Labels::new(key).map(String::from_utf8_lossy).collect::<Vec<_>>().join("."),
                policy = ?input.policy,
                healthy = ?healthy.iter().map(|i| &self.members[*i].cluster.spec.name).collect::<Vec<_>>(),
                chosen = ?selection.clusters.iter().map(|i| &self.members[*i].cluster.spec.name).collect::<Vec<_>>(),
                "clusterset answer"
            );
            let rotate_by = selection
                .rotate
                .then(|| self.rotation.fetch_add(1, Ordering::Relaxed));
            (
                selection.clusters,
                Shape {
                    last_healthy_ttl: None,
                    rotate_by,
                },
            )
        };
        let merged = merge::addresses(&entries, &chosen, want, shape);
        if merged.count == 0 {
            return Found::Nodata;
        }
        Found::Merged(merged)
    }

    /// SRV merged across every healthy cluster (not only the policy's pick:
    /// SRV clients choose by priority and weight themselves).
    fn srv(
        &self,
        snaps: &Snaps,
        service: &ServiceRef<'_>,
        key: &[u8],
        want: u16,
    ) -> Found<'static> {
        let entries = snaps.entries(service);
        if entries.is_empty() {
            return self.absent();
        }
        let exists = || {
            if entries.iter().any(|(_, cs)| cs.srv.contains_key(key)) {
                Found::Nodata
            } else {
                Found::Nxdomain
            }
        };
        if !matches!(want, qtype::SRV | qtype::ANY) {
            return exists();
        }
        let healthy = self.healthy(&entries);
        let pick = if healthy.is_empty() {
            match self.when_all_down(service.key) {
                Ok(last) => last,
                Err(negative) => return negative,
            }
        } else {
            healthy
        };
        let merged = merge::srv(&entries, &pick, key);
        if merged.count == 0 {
            return exists();
        }
        Found::Merged(merged)
    }
}
