//! The zones one config serves or forwards, each with a typed id: built once
//! per config, read by the answer engine (routing), the forwarder and metrics
//! (labels). Nothing else names a zone by its position in a list.

use std::fmt;

use crate::config::Settings;
use crate::dnsname::WireName;

/// One zone of a running config. Ids are dense (`0..len`), so tables keyed
/// by zone can be arrays; only this module hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneId(u16);

impl ZoneId {
    /// The id's slot in a table of `ZoneTable::len()` entries.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zone#{}", self.0)
    }
}

/// The address family of a reverse zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `in-addr.arpa` (RFC 1035 §3.5).
    V4,
    /// `ip6.arpa` (RFC 3596 §2.5).
    V6,
}

/// What crossdns does with names under a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// One or more clusters' names (Kubernetes DNS spec); several clusters
    /// share a zone when their namespaces are disjoint.
    Cluster,
    /// PTR for every watched cluster's addresses.
    Reverse(Family),
    /// The merged view (KEP-1645).
    Clusterset,
    /// A stub zone: sent to upstreams.
    Forward,
    /// The RFC 9432 catalog of transferable zones (`transfer.catalog`).
    Catalog,
}

#[derive(Debug, Clone)]
pub struct Zone {
    pub id: ZoneId,
    pub apex: WireName,
    pub role: Role,
}

/// Every zone of one config, in a stable order (cluster zones in config
/// order, the reverse zones, the clusterset, the forward zones).
#[derive(Debug, Clone, Default)]
pub struct ZoneTable {
    zones: Vec<Zone>,
}

impl ZoneTable {
    pub fn new(settings: &Settings) -> Self {
        let mut t = Self::default();
        for c in &settings.clusters {
            t.add(&c.zone, Role::Cluster);
        }
        for (apex, family) in [("in-addr.arpa", Family::V4), ("ip6.arpa", Family::V6)] {
            if let Ok(apex) = WireName::parse(apex) {
                t.add(&apex, Role::Reverse(family));
            }
        }
        if let Some(cs) = &settings.clusterset {
            t.add(&cs.zone, Role::Clusterset);
        }
        for f in &settings.forward {
            t.add(&f.zone, Role::Forward);
        }
        if let Some(catalog) = settings.transfer.as_ref().and_then(|t| t.catalog.as_ref()) {
            t.add(catalog, Role::Catalog);
        }
        t
    }

    /// Adds a zone unless one with that apex exists (shared cluster zones;
    /// validation refuses every other duplicate).
    fn add(&mut self, apex: &WireName, role: Role) {
        if self.get(apex).is_none() && self.zones.len() < usize::from(u16::MAX) {
            let id = ZoneId(self.zones.len() as u16);
            self.zones.push(Zone {
                id,
                apex: apex.clone(),
                role,
            });
        }
    }

    /// The zone whose apex is exactly `apex`.
    pub fn get(&self, apex: &WireName) -> Option<ZoneId> {
        self.zones.iter().find(|z| z.apex == *apex).map(|z| z.id)
    }

    pub fn zone(&self, id: ZoneId) -> &Zone {
        &self.zones[id.index()]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_cluster_zones_get_one_id_and_every_role_is_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("m")).expect("mkdir");
        let yaml = "clusters:\n\
            - {name: a, zone: cluster.local, manifests: m, namespaces: [x]}\n\
            - {name: b, zone: cluster.local, manifests: m, namespaces: [y]}\n\
            - {name: c, zone: cluster.c, manifests: m}\n\
            clusterset: {zone: clusterset.local}\n\
            forward: [{zone: cluster.far, upstreams: ['127.0.0.1:53']}]\n";
        let s = Settings::from_yaml(yaml, &dir.path().join("c.yaml")).expect("valid");
        let t = ZoneTable::new(&s);
        let roles: Vec<(String, Role)> = t.iter().map(|z| (z.apex.to_string(), z.role)).collect();
        assert_eq!(
            roles,
            [
                ("cluster.local".to_owned(), Role::Cluster),
                ("cluster.c".to_owned(), Role::Cluster),
                ("in-addr.arpa".to_owned(), Role::Reverse(Family::V4)),
                ("ip6.arpa".to_owned(), Role::Reverse(Family::V6)),
                ("clusterset.local".to_owned(), Role::Clusterset),
                ("cluster.far".to_owned(), Role::Forward),
            ]
        );
        let far = WireName::parse("cluster.far").expect("name");
        let id = t.get(&far).expect("forward zone");
        assert_eq!(t.zone(id).apex, far);
        assert_eq!(id.index(), 5);
        assert!(
            t.get(&WireName::parse("cluster.none").expect("name"))
                .is_none()
        );
    }
}
