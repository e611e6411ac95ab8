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
    /// `_<port>._<proto>.<svc>...`.
    pub srv: SrvTable,
    /// The name does not exist in the cluster's own zone (a headless Service
    /// with no published endpoints) but the Service exists for the clusterset.
    pub nxdomain: bool,
    /// This cluster's part of `<svc>.<ns>.svc.<clusterset>`; `None` when
    /// there is no clusterset or the Service opted out (`crossdns.io/export`).
    pub clusterset: Option<Box<ClustersetRecords>>,
    /// `<svc>._crossdns.<ns>.svc.<zone>` TXT: what another server's
    /// clusterset needs of this Service beyond its records (design.md §7,
    /// `index::meta`). Empty unless the zone is transferable.
    pub meta: Node,
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
    pub srv: SrvTable,
    /// Annotation overrides (`crossdns.io/policy`, `failover-order`, `weights`).
    pub policy: Option<crate::config::ClustersetPolicy>,
    pub failover_order: Box<[String]>,
    pub weights: Box<[(String, u32)]>,
}

impl ServiceRecords {
    /// Whether `<label>.<svc>...` is an empty non-terminal `_<proto>`.
    pub fn is_proto_label(&self, label: &[u8]) -> bool {
        self.srv.has_proto(label)
    }
}

/// The `_<port>._<proto>` names of one service, sorted by key (the two
/// labels in wire form). A service has a handful of named ports, so a
/// sorted boxed slice costs a fraction of a hash table's memory and
/// searches as fast.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SrvTable(Box<[(Box<[u8]>, Node)]>);

impl SrvTable {
    pub fn get(&self, key: &[u8]) -> Option<&Node> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every (key, node), in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.0.iter().map(|(k, n)| (k.as_ref(), n))
    }

    /// Whether some entry's second label (bare) is `label`.
    pub fn has_proto(&self, label: &[u8]) -> bool {
        self.0
            .iter()
            .any(|(k, _)| crate::grammar::srv_key_proto(k) == Some(label))
    }
}

impl FromIterator<(Box<[u8]>, Node)> for SrvTable {
    /// Later entries win over earlier ones with the same key.
    fn from_iter<I: IntoIterator<Item = (Box<[u8]>, Node)>>(iter: I) -> Self {
        let mut v: Vec<_> = iter.into_iter().collect();
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0)); // stable: the latest first
        v.dedup_by(|later, first| later.0 == first.0);
        Self(v.into_boxed_slice())
    }
}

/// A cheap read guard on a cluster's current snapshot (`ClusterHandle::load`):
/// what the answer engine holds while it copies records out.
pub type SnapshotGuard = arc_swap::Guard<Option<Arc<Snapshot>>>;

/// One cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub generation: u64,
    /// The zone's SOA serial when this snapshot was published (design.md §7).
    pub serial: u32,
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

    /// The Service's metadata records (`index::meta`), if it has any: also
    /// for a Service whose own name does not exist.
    pub fn service_meta(&self, svc_ns_wire: &[u8]) -> Option<&Node> {
        self.services
            .get(svc_ns_wire)
            .map(|s| &s.meta)
            .filter(|m| !m.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnsname::WireName;

    fn key(port: &str, proto: &str) -> Box<[u8]> {
        WireName::from_labels([port, proto])
            .expect("labels")
            .as_bytes()
            .into()
    }

    #[test]
    fn srv_table_finds_keys_and_protocol_labels_and_keeps_the_latest_duplicate() {
        let node = |ttl: u32| {
            let mut b = crate::index::RrsetBuilder::new(1, ttl);
            b.push(&hickory_proto::rr::RData::A(
                std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
            ));
            Node::new([b.finish()])
        };
        let table: SrvTable = [
            (key("_http", "_tcp"), node(1)),
            (key("_dns", "_udp"), node(2)),
            (key("_http", "_tcp"), node(3)),
        ]
        .into_iter()
        .collect();
        assert_eq!(table.0.len(), 2);
        assert_eq!(table.get(&key("_http", "_tcp")), Some(&node(3)));
        assert_ne!(node(1), node(3));
        assert!(table.contains_key(&key("_dns", "_udp")));
        assert!(!table.contains_key(&key("_dns", "_tcp")));
        assert!(table.has_proto(b"_tcp") && table.has_proto(b"_udp"));
        assert!(!table.has_proto(b"_sctp") && !table.has_proto(b"_http"));
        assert!(SrvTable::default().is_empty() && !table.is_empty());
    }
}
