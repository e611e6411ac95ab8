//! Cluster zones: what a parsed name under a cluster zone holds, read from
//! the snapshot of the cluster that serves its namespace (design.md §1,
//! Kubernetes DNS spec 1.1.0 §2). Allocation-free: the hot path of every
//! in-cluster query.

use std::net::IpAddr;
use std::sync::Arc;

use super::Found;
use crate::config::{PodsMode, Settings, Source};
use crate::dnsname::WireName;
use crate::grammar::{self, ClusterName};
use crate::index::{ClusterHandle, Node, Snapshot, SnapshotGuard};

/// A cluster serving (part of) a zone: all namespaces, or only these.
#[derive(Debug)]
struct Member {
    namespaces: Vec<Box<[u8]>>,
    cluster: Arc<ClusterHandle>,
}

impl Member {
    fn serves(&self, ns: &[u8]) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n.as_ref() == ns)
    }
}

/// One cluster zone and the clusters that serve it (several when they
/// share the zone with disjoint namespaces).
#[derive(Debug)]
pub(super) struct ClusterZone {
    members: Vec<Member>,
    /// The TXT of a namespace mark (`_crossdns.<ns>.svc|pod.<zone>`), when
    /// the zone is transferred out or in (design.md §7).
    marker: Option<Node>,
}

impl ClusterZone {
    /// The zone `apex`'s members: every configured cluster with that zone
    /// (`clusters[i]` belongs to `settings.clusters[i]`).
    pub(super) fn new(
        apex: &WireName,
        settings: &Settings,
        clusters: &[Arc<ClusterHandle>],
    ) -> Self {
        let members = settings
            .clusters
            .iter()
            .zip(clusters)
            .filter(|(c, _)| c.zone == *apex)
            .map(|(c, handle)| Member {
                namespaces: c.namespaces.iter().map(|n| n.as_bytes().into()).collect(),
                cluster: Arc::clone(handle),
            })
            .collect();
        // Marks are answered where the zone is transferred out, and where it
        // was transferred in: a copy answers as its primary does.
        let transferred_in = settings
            .clusters
            .iter()
            .any(|c| c.zone == *apex && matches!(c.source, Source::Primary(_)));
        let marker = (settings.transfer.is_some() || transferred_in)
            .then(|| crate::index::meta::namespace_marker(settings.dns.ttl));
        Self { members, marker }
    }

    /// The zone's journal (its serial), shared by its members.
    pub(super) fn journal(&self) -> Option<Arc<crate::index::ZoneJournal>> {
        self.members.first().map(|m| Arc::clone(&m.cluster.journal))
    }

    /// What `name` holds; the answer may borrow the snapshot loaded into
    /// `guard`.
    pub(super) fn lookup<'g>(
        &'g self,
        name: ClusterName<'_>,
        guard: &'g mut Option<SnapshotGuard>,
    ) -> Found<'g> {
        let Some(ns) = name.namespace() else {
            // Names above every namespace answer once every cluster of the
            // zone has synced: before that SERVFAIL, never NXDOMAIN.
            if !self.members.iter().all(|m| m.cluster.status.synced()) {
                return Found::Servfail;
            }
            return match name {
                ClusterName::Apex => Found::Apex,
                ClusterName::DnsVersion => Found::DnsVersion,
                ClusterName::Ns => Found::NsAddresses,
                ClusterName::Dns | ClusterName::Svc | ClusterName::Pods => Found::Nodata,
                _ => Found::Nxdomain,
            };
        };
        // The namespace label picks the cluster (shared zones, design.md §1).
        let Some(member) = self.members.iter().find(|m| m.serves(ns)) else {
            return Found::Nxdomain;
        };
        let guard: &'g SnapshotGuard = guard.insert(member.cluster.load());
        let Some(snap) = guard.as_deref() else {
            return Found::Servfail;
        };
        let exists = |present: bool| {
            if present {
                Found::Nodata
            } else {
                Found::Nxdomain
            }
        };
        match name {
            ClusterName::Namespace(ns) | ClusterName::PodNamespace(ns) => {
                exists(snap.has_namespace(ns))
            }
            ClusterName::Pod { ip, namespace } => {
                pod(member.cluster.spec.pods, snap, ip, namespace)
            }
            ClusterName::Service(s) => snap
                .service(s.key)
                .map_or(Found::Nxdomain, |svc| Found::Node(&svc.own)),
            ClusterName::Host { host, service } => snap
                .service(service.key)
                .and_then(|svc| svc.hosts.get(host))
                .map_or(Found::Nxdomain, Found::Node),
            ClusterName::Proto { proto, service } => exists(
                snap.service(service.key)
                    .is_some_and(|svc| svc.is_proto_label(proto)),
            ),
            ClusterName::ServiceMeta { name, namespace } => {
                let mut buf = [0u8; 128];
                grammar::service_key_into(&mut buf, name, namespace)
                    .and_then(|key| snap.service_meta(key))
                    .map_or(Found::Nxdomain, Found::Node)
            }
            ClusterName::NamespaceMeta(ns) => match &self.marker {
                Some(marker) if snap.has_namespace(ns) => Found::Node(marker),
                _ => Found::Nxdomain,
            },
            ClusterName::Srv { key, service } => snap
                .service(service.key)
                .and_then(|svc| svc.srv.get(key))
                .map_or(Found::Nxdomain, Found::Node),
            _ => Found::Nxdomain,
        }
    }
}

/// `<a-b-c-d>.<ns>.pod.<zone>` per the cluster's `pods` mode (spec §2.5 is
/// silent; CoreDNS's `pods` modes): never in `disabled`; in `insecure` any
/// well-formed address in a namespace that exists; in `verified` only where
/// a pod with that IP runs in that namespace.
fn pod<'s>(mode: PodsMode, snap: &'s Snapshot, ip: IpAddr, ns: &[u8]) -> Found<'s> {
    let exists = match mode {
        PodsMode::Disabled => false,
        PodsMode::Insecure => snap.has_namespace(ns),
        PodsMode::Verified => snap.pod_exists(ip, ns),
    };
    if exists {
        Found::Address(ip)
    } else {
        Found::Nxdomain
    }
}
