//! An immutable view of one cluster, as the answer engine reads it: hash
//! lookups from lower-cased wire labels to pre-encoded records. No scans.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use super::rrset::Node;
use super::sharded::{Hasher, ShardedMap};
use super::{ObjKey, StatefulSet};
use crate::dnsname::WireName;

/// Everything DNS knows under `<svc>.<ns>.svc.<zone>`.
#[derive(Debug, Clone, Default)]
pub struct ServiceRecords {
    /// Records at the service name itself.
    pub own: Node,
    /// `<host>.<svc>...`: key is the bare lower-case label.
    pub hosts: HashMap<Box<[u8]>, Node, Hasher>,
    /// `_<port>._<proto>.<svc>...`: key is the two labels in wire form.
    pub srv: HashMap<Box<[u8]>, Node, Hasher>,
    /// The `_<proto>` labels (bare) that exist as empty non-terminals.
    pub protos: Box<[Box<[u8]>]>,
    /// The name does not exist in the cluster's own zone (a headless Service
    /// with no published endpoints) but the Service exists for the clusterset.
    pub nxdomain: bool,
    /// This cluster's part of `<svc>.<ns>.svc.<clusterset>`; `None` when
    /// there is no clusterset or the Service opted out (`crossdns.io/export`).
    pub clusterset: Option<Box<ClustersetRecords>>,
}

/// One cluster's contribution to a Service's clusterset names.
#[derive(Debug, Clone, Default)]
pub struct ClustersetRecords {
    /// At least one ready endpoint (ClusterIP services included): the
    /// service-level half of "healthy" (design.md §1, issue rules).
    pub ready: bool,
    /// A/AAAA this cluster adds to `<svc>.<ns>.svc.<clusterset>`.
    pub addrs: Node,
    /// Every endpoint address, ready or not, where `addrs` depends on
    /// readiness (headless, `service_address: endpoints`): what
    /// `all_down: last-healthy` answers once no endpoint is ready.
    pub fallback: Node,
    /// SRV records (and target addresses) this cluster adds, keyed like
    /// `ServiceRecords::srv`; headless targets carry the cluster label.
    pub srv: HashMap<Box<[u8]>, Node, Hasher>,
    /// Annotation overrides (`crossdns.io/policy`, `failover-order`, `weights`).
    pub policy: Option<crate::config::ClustersetPolicy>,
    pub failover_order: Box<[String]>,
    pub weights: Box<[(String, u32)]>,
}

impl ServiceRecords {
    pub fn is_proto_label(&self, label: &[u8]) -> bool {
        self.protos.iter().any(|p| p.as_ref() == label)
    }
}

/// One cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub generation: u64,
    /// Namespaces that exist (lower-case names).
    pub namespaces: Arc<HashSet<Box<[u8]>>>,
    /// Key: `<svc>.<ns>` as lower-case wire labels.
    pub services: ShardedMap<Box<[u8]>, Arc<ServiceRecords>>,
    /// Reverse names: the full names an address answers to.
    pub ptr: ShardedMap<IpAddr, Arc<[WireName]>>,
    /// Pod IPs and the namespaces holding a pod with that IP (`pods: verified`).
    pub pod_ips: ShardedMap<IpAddr, Arc<[Box<str>]>>,
    /// StatefulSets by `namespace/name` (for `generate join` and `sans`).
    pub statefulsets: Arc<BTreeMap<ObjKey, StatefulSet>>,
}

impl Snapshot {
    /// The service's records in the cluster's own zone.
    pub fn service(&self, svc_ns_wire: &[u8]) -> Option<&ServiceRecords> {
        self.services
            .get(svc_ns_wire)
            .map(AsRef::as_ref)
            .filter(|s| !s.nxdomain)
    }

    /// The service as the clusterset sees it (exists even when the cluster
    /// zone says NXDOMAIN), if exported.
    pub fn clusterset_service(
        &self,
        svc_ns_wire: &[u8],
    ) -> Option<(&ServiceRecords, &ClustersetRecords)> {
        let s = self.services.get(svc_ns_wire)?;
        s.clusterset.as_deref().map(|cs| (s.as_ref(), cs))
    }

    pub fn has_namespace(&self, ns: &[u8]) -> bool {
        self.namespaces.contains(ns)
    }

    pub fn pod_exists(&self, ip: IpAddr, ns: &[u8]) -> bool {
        self.pod_ips
            .get(&ip)
            .is_some_and(|list| list.iter().any(|n| n.as_bytes() == ns))
    }
}
