//! A cluster's snapshot from DNS records (design.md §7): the zone as a
//! `primary:` source transfers it. Records are grouped by what the name
//! grammar (`grammar::parse_cluster`) says their owner is: a Service's own
//! name, its hosts, its SRV names and its metadata (`index::meta`) make one
//! group; namespace marks and verified pods are kept apart. A group is
//! rebuilt into `ServiceRecords` (with its PTR entries and clusterset
//! records, `from_records::service`) only when its records changed, so an
//! IXFR costs what it touches. Names outside the grammar are skipped and
//! reported once. Plain data, no I/O, like the rest of the index.
//!
//! The records of a group are not kept twice: a group about to change is
//! read back from the snapshot's pre-encoded RRsets, which hold exactly what
//! was transferred (one TTL per RRset, RFC 2181 §5.2).

mod service;
mod sets;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{DNSClass, Name, RData, Record};

use super::ClusterSpec;
use super::snapshot::{ServiceRecords, Snapshot};
use super::store::{add_ptr, withdraw_ptr};
use crate::dnsname::{Labels, QName, WireName};
use crate::grammar::{self, ClusterName};
use sets::{Sets, add, decode_group, remove};

/// Everything transferred under one Service: `<svc>.<ns>.svc.Z`, its hosts,
/// its `_<port>._<proto>` names and `<svc>._crossdns.<ns>.svc.Z`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Group {
    own: Sets,
    hosts: BTreeMap<Box<[u8]>, Sets>,
    srv: BTreeMap<Box<[u8]>, Sets>,
    meta: Sets,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.own.is_empty() && self.hosts.is_empty() && self.srv.is_empty() && self.meta.is_empty()
    }

    fn slot(&mut self, slot: Slot) -> &mut Sets {
        match slot {
            Slot::Own => &mut self.own,
            Slot::Host(l) => self.hosts.entry(l).or_default(),
            Slot::Srv(k) => self.srv.entry(k).or_default(),
            Slot::Meta => &mut self.meta,
        }
    }

    /// Drops names left without records.
    fn prune(&mut self) {
        self.hosts.retain(|_, s| !s.is_empty());
        self.srv.retain(|_, s| !s.is_empty());
    }
}

enum Slot {
    Own,
    Host(Box<[u8]>),
    Srv(Box<[u8]>),
    Meta,
}

/// Where one record goes.
enum Place {
    Service {
        key: Box<[u8]>,
        slot: Slot,
    },
    /// `_crossdns.<ns>.svc|pod.Z` (`owner` in wire form): the namespace
    /// exists.
    NamespaceMark {
        ns: Box<[u8]>,
        owner: Box<[u8]>,
    },
    Pod {
        ip: IpAddr,
        namespace: Box<str>,
    },
    /// The apex, `dns-version`, `dns`, `ns.dns`: the engine synthesizes
    /// them (the SOA's serial is the transfer's).
    Zone,
    /// Outside the grammar (or the zone): reported, not served.
    Skip,
}

type Marks = HashMap<Box<[u8]>, HashSet<(Box<[u8]>, RData)>>;

/// Adds a mark record; false when it was there already.
fn mark(marks: &mut Marks, ns: Box<[u8]>, owner: Box<[u8]>, data: RData) -> bool {
    marks.entry(ns).or_default().insert((owner, data))
}

/// The most skipped names remembered (so each is reported once).
const MAX_SKIPPED: usize = 10_000;

/// One cluster zone built from transferred records.
#[derive(Debug)]
pub struct TransferredZone {
    spec: Arc<ClusterSpec>,
    next: Snapshot,
    /// Groups touched since the last publish: (as published, as now).
    work: HashMap<Box<[u8]>, (Group, Group)>,
    /// Reverse addresses each group gave in the last snapshot.
    ptr_of: HashMap<Box<[u8]>, Vec<IpAddr>>,
    /// Namespace marks held (owner, data), per namespace.
    marks: Marks,
    pods: HashMap<IpAddr, BTreeSet<Box<str>>>,
    dirty_pods: HashSet<IpAddr>,
    namespaces_dirty: bool,
    /// Records at `_crossdns` names: a zone with none (a plain zone file)
    /// takes part in the clusterset from its records alone.
    meta_records: usize,
    /// `meta_records == 0` at the last publish.
    was_plain: Option<bool>,
    skipped: HashSet<Box<str>>,
    health_flips: u64,
}

impl TransferredZone {
    pub fn new(spec: Arc<ClusterSpec>) -> Self {
        Self {
            spec,
            next: Snapshot::default(),
            work: HashMap::new(),
            ptr_of: HashMap::new(),
            marks: HashMap::new(),
            pods: HashMap::new(),
            dirty_pods: HashSet::new(),
            namespaces_dirty: true,
            meta_records: 0,
            was_plain: None,
            skipped: HashSet::new(),
            health_flips: 0,
        }
    }

    /// Replaces the whole zone with `records` (an AXFR, or an IXFR answered
    /// whole). Groups whose records did not change are not rebuilt. Returns
    /// the names outside the grammar not reported before.
    pub fn replace(&mut self, records: Vec<Record>) -> Vec<String> {
        let mut groups: HashMap<Box<[u8]>, Group> = HashMap::new();
        let mut marks = Marks::new();
        let mut pods: HashMap<IpAddr, BTreeSet<Box<str>>> = HashMap::new();
        let mut meta_records = 0;
        let mut skipped = Vec::new();
        for r in records {
            match self.place(&r) {
                Place::Service { key, slot } => {
                    let is_meta = matches!(slot, Slot::Meta);
                    if add(groups.entry(key).or_default().slot(slot), r) && is_meta {
                        meta_records += 1;
                    }
                }
                Place::NamespaceMark { ns, owner } => {
                    meta_records += usize::from(mark(&mut marks, ns, owner, r.data));
                }
                Place::Pod { ip, namespace } => {
                    pods.entry(ip).or_default().insert(namespace);
                }
                Place::Zone => {}
                Place::Skip => self.note_skipped(&r.name, &mut skipped),
            }
        }
        let gone: Vec<Box<[u8]>> = self
            .next
            .services
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !groups.contains_key(k))
            .collect();
        for key in gone {
            self.set_group(key, Group::default());
        }
        for (key, group) in groups {
            self.set_group(key, group);
        }
        for ip in self.pods.keys().chain(pods.keys()) {
            if self.pods.get(ip) != pods.get(ip) {
                self.dirty_pods.insert(*ip);
            }
        }
        self.namespaces_dirty |= self.pods != pods || self.marks != marks;
        self.pods = pods;
        self.marks = marks;
        self.meta_records = meta_records;
        skipped
    }

    /// Applies one IXFR difference (RFC 1995): `deleted`, then `added`.
    /// A deleted record that is not held is ignored. Returns the names
    /// outside the grammar not reported before.
    pub fn apply(&mut self, deleted: Vec<Record>, added: Vec<Record>) -> Vec<String> {
        let mut skipped = Vec::new();
        for r in deleted {
            match self.place(&r) {
                Place::Service { key, slot } => {
                    let is_meta = matches!(slot, Slot::Meta);
                    let group = self.group_mut(&key);
                    let removed = remove(group.slot(slot), &r);
                    group.prune();
                    if removed && is_meta {
                        self.meta_records -= 1;
                    }
                }
                Place::NamespaceMark { ns, owner } => {
                    if let Some(set) = self.marks.get_mut(&ns)
                        && set.remove(&(owner, r.data))
                    {
                        self.meta_records -= 1;
                        if set.is_empty() {
                            self.marks.remove(&ns);
                            self.namespaces_dirty = true;
                        }
                    }
                }
                Place::Pod { ip, namespace } => {
                    if let Some(set) = self.pods.get_mut(&ip)
                        && set.remove(&namespace)
                    {
                        if set.is_empty() {
                            self.pods.remove(&ip);
                        }
                        self.dirty_pods.insert(ip);
                        self.namespaces_dirty = true;
                    }
                }
                Place::Zone | Place::Skip => {}
            }
        }
        for r in added {
            match self.place(&r) {
                Place::Service { key, slot } => {
                    let is_meta = matches!(slot, Slot::Meta);
                    if add(self.group_mut(&key).slot(slot), r) && is_meta {
                        self.meta_records += 1;
                    }
                }
                Place::NamespaceMark { ns, owner } => {
                    if mark(&mut self.marks, ns, owner, r.data) {
                        self.meta_records += 1;
                        self.namespaces_dirty = true;
                    }
                }
                Place::Pod { ip, namespace } => {
                    if self.pods.entry(ip).or_default().insert(namespace) {
                        self.dirty_pods.insert(ip);
                        self.namespaces_dirty = true;
                    }
                }
                Place::Zone => {}
                Place::Skip => self.note_skipped(&r.name, &mut skipped),
            }
        }
        skipped
    }

    /// Builds the next snapshot from what changed since the last one.
    pub fn publish(&mut self, generation: u64) -> Arc<Snapshot> {
        let plain = self.meta_records == 0;
        let everything = self.was_plain.is_some_and(|was| was != plain);
        if everything {
            // The zone gained its first, or lost its last, metadata: every
            // Service's clusterset records change source.
            let keys: Vec<Box<[u8]>> = self.next.services.iter().map(|(k, _)| k.clone()).collect();
            for key in keys {
                self.group_mut(&key);
            }
        }
        self.was_plain = Some(plain);
        for (key, (before, now)) in std::mem::take(&mut self.work) {
            if everything || before != now {
                self.rebuild(&key, &now, plain);
            }
        }
        for ip in std::mem::take(&mut self.dirty_pods) {
            match self.pods.get(&ip) {
                Some(set) => {
                    let list: Arc<[Box<str>]> = set.iter().cloned().collect();
                    self.next.pod_ips.insert(ip, list);
                }
                None => {
                    self.next.pod_ips.remove(&ip);
                }
            }
        }
        if std::mem::take(&mut self.namespaces_dirty) {
            let mut set: HashSet<Box<[u8]>> = self.marks.keys().cloned().collect();
            for (key, _) in self.next.services.iter() {
                if let Some(ns) = Labels::new(key).nth(1) {
                    set.insert(ns.into());
                }
            }
            for namespaces in self.pods.values() {
                set.extend(namespaces.iter().map(|n| Box::from(n.as_bytes())));
            }
            if *self.next.namespaces != set {
                self.next.namespaces = Arc::new(set);
            }
        }
        self.next.generation = generation;
        Arc::new(self.next.clone())
    }

    /// Services held (also those whose own name does not exist).
    pub fn services(&self) -> usize {
        self.next.services.len()
    }

    /// Pod addresses held (`<a-b-c-d>.<ns>.pod.Z`).
    pub fn pods(&self) -> usize {
        self.pods.len()
    }

    /// Names outside the grammar seen so far (at most `MAX_SKIPPED`).
    pub fn skipped_names(&self) -> usize {
        self.skipped.len()
    }

    /// Services whose clusterset health flipped, since the last call.
    pub fn take_health_flips(&mut self) -> u64 {
        std::mem::take(&mut self.health_flips)
    }

    /// The group `key` as it is now, read from the snapshot the first time
    /// it is touched after a publish.
    fn group_mut(&mut self, key: &[u8]) -> &mut Group {
        if !self.work.contains_key(key) {
            let published = self
                .next
                .services
                .get(key)
                .map(|s| decode_group(s))
                .unwrap_or_default();
            self.work.insert(key.into(), (published.clone(), published));
        }
        match self.work.get_mut(key) {
            Some((_, now)) => now,
            None => unreachable!("inserted above"),
        }
    }

    /// Sets the group `key` to `group` (a whole transfer's): kept for the
    /// next publish only when it differs from the published one, so a
    /// whole transfer holds no second copy of what did not change.
    fn set_group(&mut self, key: Box<[u8]>, group: Group) {
        if let Some((_, now)) = self.work.get_mut(&key) {
            *now = group;
            return;
        }
        let published = self
            .next
            .services
            .get(&key)
            .map(|s| decode_group(s))
            .unwrap_or_default();
        if published != group {
            self.work.insert(key, (published, group));
        }
    }

    fn rebuild(&mut self, key: &[u8], group: &Group, plain: bool) {
        let Ok(fqdn) = grammar::service_name_of_key(&self.spec.zone, key) else {
            return;
        };
        for ip in self.ptr_of.remove(key).unwrap_or_default() {
            withdraw_ptr(&mut self.next.ptr, ip, &fqdn);
        }
        let ready =
            |s: Option<&ServiceRecords>| s.and_then(|s| s.clusterset.as_ref()).map(|c| c.ready);
        let was = ready(self.next.services.get(key).map(AsRef::as_ref));
        match service::build(&self.spec, &fqdn, key, group, plain) {
            None => {
                if self.next.services.remove(key).is_some() {
                    self.namespaces_dirty = true;
                }
            }
            Some(built) => {
                if let (Some(was), Some(now)) = (was, ready(Some(&built.records)))
                    && was != now
                {
                    self.health_flips += 1;
                }
                let mut ips = Vec::with_capacity(built.ptrs.len());
                for (ip, name) in built.ptrs {
                    add_ptr(&mut self.next.ptr, ip, name);
                    ips.push(ip);
                }
                self.ptr_of.insert(key.into(), ips);
                if self.next.services.get(key).is_none() {
                    self.namespaces_dirty = true;
                }
                self.next
                    .services
                    .insert(key.into(), Arc::new(built.records));
            }
        }
    }

    fn note_skipped(&mut self, name: &Name, out: &mut Vec<String>) {
        let text = name.to_ascii().to_ascii_lowercase();
        if self.skipped.len() < MAX_SKIPPED && self.skipped.insert(text.as_str().into()) {
            out.push(text);
        }
    }

    /// Where `r` belongs, per the grammar of the cluster zone.
    fn place(&self, r: &Record) -> Place {
        if r.dns_class != DNSClass::IN {
            return Place::Skip;
        }
        let Some(owner) = qname_of(&r.name) else {
            return Place::Skip;
        };
        let zone = self.spec.zone.as_bytes();
        let zone_labels = Labels::new(zone).count();
        let Some(k) = owner.label_count().checked_sub(zone_labels) else {
            return Place::Skip;
        };
        if owner.suffix(k) != zone {
            return Place::Skip;
        }
        let service = |key: &[u8], slot| Place::Service {
            key: key.into(),
            slot,
        };
        match grammar::parse_cluster(&owner, k) {
            ClusterName::Apex | ClusterName::DnsVersion | ClusterName::Dns | ClusterName::Ns => {
                Place::Zone
            }
            ClusterName::Service(s) => service(s.key, Slot::Own),
            ClusterName::Host { host, service: s } => service(s.key, Slot::Host(host.into())),
            ClusterName::Srv { key, service: s } => service(s.key, Slot::Srv(key.into())),
            ClusterName::ServiceMeta { name, namespace } => {
                let mut buf = [0u8; 128];
                match grammar::service_key_into(&mut buf, name, namespace) {
                    Some(key) => service(key, Slot::Meta),
                    None => Place::Skip,
                }
            }
            ClusterName::NamespaceMeta(ns) => Place::NamespaceMark {
                ns: ns.into(),
                owner: owner.wire().into(),
            },
            ClusterName::Pod { ip, namespace } if address_of(&r.data) == Some(ip) => Place::Pod {
                ip,
                namespace: String::from_utf8_lossy(namespace).into(),
            },
            _ => Place::Skip,
        }
    }
}

/// The owner as the grammar reads it, if every label is one a Kubernetes
/// DNS name can hold (letters, digits, `-`, `_`; no wildcards).
fn qname_of(name: &Name) -> Option<QName> {
    let mut q = QName::new();
    for label in name.iter() {
        if !label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
            || !q.push_label(label)
        {
            return None;
        }
    }
    Some(q)
}

fn address_of(rdata: &RData) -> Option<IpAddr> {
    match rdata {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// A cluster name from owner labels that the grammar accepted.
fn wire_of(name: &Name) -> Option<WireName> {
    let labels: Option<Vec<&str>> = name.iter().map(|l| std::str::from_utf8(l).ok()).collect();
    WireName::from_labels(labels?).ok()
}

#[cfg(test)]
mod tests;
