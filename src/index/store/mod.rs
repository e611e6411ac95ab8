//! The single writer of one cluster's index: holds the minimal objects, folds
//! in `Change`s (`apply`), and publishes a new `Snapshot` that rebuilds only
//! the services touched since the last publish.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::build::{build_service, service_fqdn, service_key_wire};
use super::snapshot::{ServiceRecords, Snapshot};
use super::{Change, ClusterSpec, EndpointSlice, Kind, ObjKey, Object, Pod, Service, StatefulSet};
use crate::config::PodsMode;
use crate::dnsname::WireName;

#[derive(Debug)]
pub struct ClusterStore {
    spec: Arc<ClusterSpec>,
    services: HashMap<ObjKey, Service>,
    slices: HashMap<ObjKey, EndpointSlice>,
    /// Service key -> keys of its EndpointSlices, sorted (answers list
    /// endpoints in a stable order).
    slices_by_service: HashMap<ObjKey, Vec<ObjKey>>,
    pods: HashMap<ObjKey, Pod>,
    /// Pod IP -> pods holding it (`pods: verified` only).
    pods_by_ip: HashMap<IpAddr, BTreeSet<ObjKey>>,
    namespace_objects: BTreeSet<String>,
    statefulsets: HashMap<ObjKey, StatefulSet>,
    /// Per source (manifest file): the objects it delivered last.
    sources: HashMap<String, Vec<(Kind, ObjKey)>>,
    /// How many sources deliver each object.
    owners: HashMap<(Kind, ObjKey), u32>,
    /// Reverse addresses each service contributed to the last snapshot.
    ptr_of: HashMap<ObjKey, Vec<IpAddr>>,
    /// Lists in progress (`ListStart` .. `ListEnd`), per kind and scope:
    /// the keys listed so far (clones of the stored keys, so they share
    /// their allocation).
    listing: HashMap<(Kind, Option<String>), HashSet<ObjKey>>,

    dirty_services: HashSet<ObjKey>,
    /// Services whose clusterset health flipped in the last publish.
    health_flips: Vec<(ObjKey, bool)>,
    namespaces_dirty: bool,
    statefulsets_dirty: bool,
    dirty_pod_ips: HashSet<IpAddr>,
    changed: bool,

    next: Snapshot,
}

impl ClusterStore {
    pub fn new(spec: Arc<ClusterSpec>) -> Self {
        Self {
            spec,
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_by_service: HashMap::new(),
            pods: HashMap::new(),
            pods_by_ip: HashMap::new(),
            namespace_objects: BTreeSet::new(),
            statefulsets: HashMap::new(),
            sources: HashMap::new(),
            owners: HashMap::new(),
            ptr_of: HashMap::new(),
            listing: HashMap::new(),
            dirty_services: HashSet::new(),
            health_flips: Vec::new(),
            namespaces_dirty: true,
            statefulsets_dirty: true,
            dirty_pod_ips: HashSet::new(),
            changed: true,
            next: Snapshot::default(),
        }
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// True when something changed since the last `publish`.
    pub fn is_dirty(&self) -> bool {
        self.changed
    }

    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Service => self.services.len(),
            Kind::EndpointSlice => self.slices.len(),
            Kind::Pod => self.pods.len(),
            Kind::Namespace => self.namespace_objects.len(),
            Kind::StatefulSet => self.statefulsets.len(),
        }
    }

    pub fn statefulsets(&self) -> impl Iterator<Item = &StatefulSet> {
        self.statefulsets.values()
    }

    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Apply(obj) => self.upsert(obj),
            Change::Delete(kind, key) => self.remove(kind, &key),
            Change::ListStart(kind, scope) => {
                self.listing.insert((kind, scope), HashSet::new());
            }
            Change::Keep(kind, key) => self.mark_listed(kind, &key),
            Change::ListEnd(kind, scope) => self.end_list(kind, scope),
            Change::ResetSource(source, objects) => self.reset_source(source, objects),
        }
    }

    /// Notes `key` as listed by every open list of `kind` covering it.
    fn mark_listed(&mut self, kind: Kind, key: &ObjKey) {
        if self.listing.is_empty() {
            return;
        }
        // Share the stored key's allocation where there is one.
        let stored = match kind {
            Kind::Service => self.services.get_key_value(key).map(|(k, _)| k),
            Kind::EndpointSlice => self.slices.get_key_value(key).map(|(k, _)| k),
            Kind::Pod => self.pods.get_key_value(key).map(|(k, _)| k),
            Kind::StatefulSet => self.statefulsets.get_key_value(key).map(|(k, _)| k),
            Kind::Namespace => None,
        }
        .unwrap_or(key)
        .clone();
        for ((k, scope), seen) in &mut self.listing {
            if *k == kind && scope.as_deref().is_none_or(|ns| ns == key.namespace()) {
                seen.insert(stored.clone());
            }
        }
    }

    /// Completes a list: what it did not name is gone.
    fn end_list(&mut self, kind: Kind, scope: Option<String>) {
        let Some(seen) = self.listing.remove(&(kind, scope.clone())) else {
            return;
        };
        let stale = |k: &&ObjKey| {
            !seen.contains(*k) && scope.as_deref().is_none_or(|ns| k.namespace() == ns)
        };
        let gone: Vec<ObjKey> = match kind {
            Kind::Service => self.services.keys().filter(stale).cloned().collect(),
            Kind::EndpointSlice => self.slices.keys().filter(stale).cloned().collect(),
            Kind::Pod => self.pods.keys().filter(stale).cloned().collect(),
            Kind::StatefulSet => self.statefulsets.keys().filter(stale).cloned().collect(),
            Kind::Namespace => self
                .namespace_objects
                .iter()
                .map(|n| ObjKey::new(String::new(), n.clone()))
                .filter(|k| !seen.contains(k))
                .collect(),
        };
        for key in gone {
            self.remove(kind, &key);
        }
    }

    fn upsert(&mut self, obj: Object) {
        if !self.spec.watches_namespace(obj.namespace()) {
            return;
        }
        let kind = obj.kind();
        let key = object_key(&obj);
        self.upsert_changed(obj);
        self.mark_listed(kind, &key);
    }

    /// Folds one object in; an object equal to the stored one changes nothing.
    fn upsert_changed(&mut self, obj: Object) {
        match obj {
            Object::Service(svc) => {
                let key = svc.key.clone();
                if self.services.get(&key) != Some(&svc) {
                    self.changed = true;
                    if !self.services.contains_key(&key) {
                        self.namespaces_dirty = true;
                    }
                    self.services.insert(key.clone(), svc);
                    self.dirty_services.insert(key);
                }
            }
            Object::EndpointSlice(mut slice) => {
                if !self.spec.endpoint_pod_names {
                    for ep in slice.endpoints.iter_mut().filter(|ep| ep.name_is_pod) {
                        ep.name = None;
                    }
                }
                if self.slices.get(&slice.key) == Some(&slice) {
                    return; // unchanged: do not dirty its service
                }
                self.changed = true;
                // Share the Service's key allocation where it is known.
                if let Some((k, _)) = self.services.get_key_value(&slice.service) {
                    slice.service = k.clone();
                }
                let key = slice.key.clone();
                if let Some(old) = self.slices.remove(&key) {
                    self.unlink_slice(&old);
                }
                let svc_key = slice.service_key().clone();
                let keys = self.slices_by_service.entry(svc_key.clone()).or_default();
                if let Err(at) = keys.binary_search(&key) {
                    keys.insert(at, key.clone());
                }
                self.dirty_services.insert(svc_key);
                self.slices.insert(key, slice);
            }
            Object::Pod(pod) => {
                if self.spec.pods != PodsMode::Verified || self.pods.get(&pod.key) == Some(&pod) {
                    return;
                }
                self.changed = true;
                self.forget_pod(&pod.key);
                for ip in &pod.ips {
                    self.pods_by_ip
                        .entry(*ip)
                        .or_default()
                        .insert(pod.key.clone());
                    self.dirty_pod_ips.insert(*ip);
                }
                self.pods.insert(pod.key.clone(), pod);
            }
            Object::Namespace(name) => {
                if self.namespace_objects.insert(name) {
                    self.changed = true;
                    self.namespaces_dirty = true;
                }
            }
            Object::StatefulSet(sts) => {
                if self.statefulsets.get(&sts.key) != Some(&sts) {
                    self.changed = true;
                    self.statefulsets.insert(sts.key.clone(), sts);
                    self.statefulsets_dirty = true;
                }
            }
        }
    }

    fn forget_pod(&mut self, key: &ObjKey) {
        let Some(old) = self.pods.remove(key) else {
            return;
        };
        for ip in old.ips {
            if let Some(keys) = self.pods_by_ip.get_mut(&ip) {
                keys.remove(key);
                if keys.is_empty() {
                    self.pods_by_ip.remove(&ip);
                }
            }
            self.dirty_pod_ips.insert(ip);
        }
    }

    fn unlink_slice(&mut self, old: &EndpointSlice) {
        let svc_key = old.service_key();
        if let Some(keys) = self.slices_by_service.get_mut(svc_key) {
            keys.retain(|k| *k != old.key);
            if keys.is_empty() {
                self.slices_by_service.remove(svc_key);
            }
        }
        self.dirty_services.insert(svc_key.clone());
    }

    fn remove(&mut self, kind: Kind, key: &ObjKey) {
        self.changed = true;
        match kind {
            Kind::Service => {
                if self.services.remove(key).is_some() {
                    self.dirty_services.insert(key.clone());
                    self.namespaces_dirty = true;
                }
            }
            Kind::EndpointSlice => {
                if let Some(old) = self.slices.remove(key) {
                    self.unlink_slice(&old);
                }
            }
            Kind::Pod => self.forget_pod(key),
            Kind::Namespace => {
                if self.namespace_objects.remove(key.name()) {
                    self.namespaces_dirty = true;
                }
            }
            Kind::StatefulSet => {
                if self.statefulsets.remove(key).is_some() {
                    self.statefulsets_dirty = true;
                }
            }
        }
    }

    /// Replaces what one source delivers. Objects it no longer lists go,
    /// unless another source still lists them; unchanged ones cost nothing.
    fn reset_source(&mut self, source: String, objects: Vec<Object>) {
        self.changed = true;
        let new: Vec<(Kind, ObjKey)> = objects.iter().map(|o| (o.kind(), object_key(o))).collect();
        for key in self.sources.remove(&source).unwrap_or_default() {
            let left = self.owners.get_mut(&key).map(|n| {
                *n -= 1;
                *n
            });
            if left == Some(0) {
                self.owners.remove(&key);
                if !new.contains(&key) {
                    self.remove(key.0, &key.1);
                }
            }
        }
        for key in &new {
            *self.owners.entry(key.clone()).or_insert(0) += 1;
        }
        for obj in objects {
            self.upsert(obj);
        }
        self.sources.insert(source, new);
    }

    /// Builds the next snapshot from what changed, and returns it.
    pub fn publish(&mut self, generation: u64) -> Arc<Snapshot> {
        let dirty: Vec<ObjKey> = self.dirty_services.drain().collect();
        for key in dirty {
            self.rebuild_service(&key);
        }
        if self.namespaces_dirty {
            let mut set: HashSet<Box<[u8]>> = HashSet::new();
            let names = self
                .namespace_objects
                .iter()
                .map(String::as_str)
                .chain(self.services.keys().map(ObjKey::namespace))
                .chain(self.spec.namespaces.iter().map(String::as_str));
            for ns in names {
                if self.spec.watches_namespace(ns) {
                    set.insert(ns.to_ascii_lowercase().into_bytes().into_boxed_slice());
                }
            }
            self.next.namespaces = Arc::new(set);
            self.namespaces_dirty = false;
        }
        let pod_ips: Vec<IpAddr> = self.dirty_pod_ips.drain().collect();
        for ip in pod_ips {
            let namespaces: BTreeSet<&str> = self
                .pods_by_ip
                .get(&ip)
                .into_iter()
                .flatten()
                .map(ObjKey::namespace)
                .collect();
            if namespaces.is_empty() {
                self.next.pod_ips.remove(&ip);
            } else {
                let list: Arc<[Box<str>]> = namespaces.into_iter().map(Box::from).collect();
                self.next.pod_ips.insert(ip, list);
            }
        }
        if self.statefulsets_dirty {
            self.next.statefulsets = Arc::new(
                self.statefulsets
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
            self.statefulsets_dirty = false;
        }
        self.next.generation = generation;
        self.changed = false;
        Arc::new(self.next.clone())
    }

    fn rebuild_service(&mut self, key: &ObjKey) {
        let Some(wire_key) = service_key_wire(key.namespace(), key.name()) else {
            return;
        };
        // Withdraw the reverse names this service gave last time.
        if let Some(old_ips) = self.ptr_of.remove(key)
            && let Some(fqdn) = service_fqdn(&self.spec, key.namespace(), key.name())
        {
            for ip in old_ips {
                self.withdraw_ptr(ip, &fqdn);
            }
        }
        let built = self.services.get(key).and_then(|svc| {
            let slices: Vec<&EndpointSlice> = self
                .slices_by_service
                .get(key)
                .into_iter()
                .flatten()
                .filter_map(|k| self.slices.get(k))
                .collect();
            build_service(&self.spec, svc, &slices)
        });
        let ready =
            |r: Option<&ServiceRecords>| r.and_then(|r| r.clusterset.as_ref()).map(|c| c.ready);
        let was = ready(self.next.services.get(&wire_key).map(AsRef::as_ref));
        let now = ready(built.as_ref().map(|b| &b.records));
        if let (Some(was), Some(now)) = (was, now)
            && was != now
        {
            self.health_flips.push((key.clone(), now));
        }
        match built {
            None => {
                self.next.services.remove(&wire_key);
            }
            Some(built) => {
                let mut ips = Vec::with_capacity(built.ptrs.len());
                for (ip, name) in built.ptrs {
                    self.add_ptr(ip, name);
                    ips.push(ip);
                }
                self.ptr_of.insert(key.clone(), ips);
                self.next.services.insert(wire_key, Arc::new(built.records));
            }
        }
    }

    /// Services whose clusterset health (a ready endpoint) flipped since the
    /// last call, with their new state.
    pub fn take_health_flips(&mut self) -> Vec<(ObjKey, bool)> {
        std::mem::take(&mut self.health_flips)
    }

    fn add_ptr(&mut self, ip: IpAddr, name: WireName) {
        add_ptr(&mut self.next.ptr, ip, name);
    }

    fn withdraw_ptr(&mut self, ip: IpAddr, service_fqdn: &WireName) {
        withdraw_ptr(&mut self.next.ptr, ip, service_fqdn);
    }
}

/// Reverse names by address, as a snapshot holds them.
pub(super) type PtrMap = super::ShardedMap<IpAddr, Arc<[WireName]>>;

/// Adds `name` to the reverse names of `ip` (kept sorted, no duplicates).
pub(super) fn add_ptr(ptr: &mut PtrMap, ip: IpAddr, name: WireName) {
    let mut names: Vec<WireName> = ptr.get(&ip).map(|n| n.to_vec()).unwrap_or_default();
    if !names.contains(&name) {
        names.push(name);
        names.sort();
        ptr.insert(ip, names.into());
    }
}

/// Removes the names under `service_fqdn` (label-aligned) from `ip`.
pub(super) fn withdraw_ptr(ptr: &mut PtrMap, ip: IpAddr, service_fqdn: &WireName) {
    let Some(names) = ptr.get(&ip) else {
        return;
    };
    let kept: Vec<WireName> = names
        .iter()
        .filter(|n| !is_label_suffix(n.as_bytes(), service_fqdn.as_bytes()))
        .cloned()
        .collect();
    if kept.is_empty() {
        ptr.remove(&ip);
    } else if kept.len() != names.len() {
        ptr.insert(ip, kept.into());
    }
}

fn object_key(obj: &Object) -> ObjKey {
    match obj {
        Object::Service(s) => s.key.clone(),
        Object::EndpointSlice(s) => s.key.clone(),
        Object::Pod(p) => p.key.clone(),
        Object::Namespace(n) => ObjKey::new(String::new(), n.clone()),
        Object::StatefulSet(s) => s.key.clone(),
    }
}

/// True when `suffix` is `name` or a label-aligned tail of it.
fn is_label_suffix(name: &[u8], suffix: &[u8]) -> bool {
    let mut at = 0;
    while at <= name.len() {
        if &name[at..] == suffix {
            return true;
        }
        match name.get(at) {
            Some(&len) => at += usize::from(len) + 1,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests;
