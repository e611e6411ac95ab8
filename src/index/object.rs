//! The minimal structs Kubernetes objects are cut down to at the index
//! boundary (`watch` converts them), and the changes a source delivers.

use std::net::IpAddr;
use std::sync::Arc;

use crate::dnsname::WireName;

/// `namespace/name` of an object (cluster-scoped objects: empty namespace).
///
/// One shared allocation: the store files a key in several maps (by kind,
/// by source, by service), so a clone is a reference count rather than two
/// strings, which is most of what an index of 100,000s of objects would
/// otherwise spend on keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjKey {
    /// `namespace/name`.
    full: Arc<str>,
    namespace_len: u32,
}

impl ObjKey {
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        let (namespace, name) = (namespace.as_ref(), name.as_ref());
        Self {
            full: format!("{namespace}/{name}").into(),
            namespace_len: namespace.len() as u32,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.full[..self.namespace_len as usize]
    }

    pub fn name(&self) -> &str {
        &self.full[self.namespace_len as usize + 1..]
    }
}

impl Ord for ObjKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.namespace(), self.name()).cmp(&(other.namespace(), other.name()))
    }
}

impl PartialOrd for ObjKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

impl std::fmt::Debug for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjKey({:?})", &*self.full)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The SRV label without its underscore (RFC 2782 `_proto`).
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Empty for unnamed ports, which get no SRV records.
    pub name: Box<str>,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// Has a virtual IP per family (`spec.clusterIPs`); may be empty while
    /// the apiserver has not allocated one.
    ClusterIp(Box<[IpAddr]>),
    /// `clusterIP: None`: answered from endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(WireName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbIngress {
    Ip(IpAddr),
    Hostname(WireName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ObjKey,
    pub kind: ServiceKind,
    pub ports: Box<[Port]>,
    pub publish_not_ready: bool,
    pub lb_ingress: Box<[LbIngress]>,
    /// Only the `crossdns.io/` annotations; everything else is dropped.
    pub annotations: Box<[(Box<str>, Box<str>)]>,
}

impl Service {
    /// The load-balancer ingress IPs, in status order.
    pub fn lb_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.lb_ingress.iter().filter_map(|i| match i {
            LbIngress::Ip(ip) => Some(*ip),
            LbIngress::Hostname(_) => None,
        })
    }

    /// The first load-balancer ingress hostname.
    pub fn lb_hostname(&self) -> Option<&WireName> {
        self.lb_ingress.iter().find_map(|i| match i {
            LbIngress::Hostname(h) => Some(h),
            LbIngress::Ip(_) => None,
        })
    }
}

/// One endpoint of an EndpointSlice, cut to what DNS needs. An index holds
/// hundreds of thousands of these (40 bytes each), so the first address is
/// inline; the EndpointSlice controller always writes exactly one, and any
/// others live in the slice's `more_addresses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: IpAddr,
    /// `conditions.ready`; nil counts as ready (EndpointSlice API).
    pub ready: bool,
    /// `name` is `targetRef.name` of a Pod rather than `hostname`; such a
    /// name labels the endpoint only with `endpoint_pod_names`.
    pub name_is_pod: bool,
    /// `hostname`, else the Pod's name (see `name_is_pod`).
    pub name: Option<Box<str>>,
}

// 100,000s of these are held: keep them small.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<Endpoint>() == 40);

impl Endpoint {
    /// The label of `<label>.<svc>.<ns>.svc.<zone>`, if it is not the
    /// dashed address: the hostname, or the Pod's name with
    /// `endpoint_pod_names`.
    pub fn label(&self, endpoint_pod_names: bool) -> Option<&str> {
        self.name
            .as_deref()
            .filter(|_| !self.name_is_pod || endpoint_pod_names)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    pub key: ObjKey,
    /// The Service it belongs to: the `kubernetes.io/service-name` label,
    /// in the slice's namespace.
    pub service: ObjKey,
    pub ports: Box<[Port]>,
    pub endpoints: Box<[Endpoint]>,
    /// Addresses after an endpoint's first (rare): (index in `endpoints`,
    /// address), in endpoint order.
    pub more_addresses: Box<[(u32, IpAddr)]>,
}

impl EndpointSlice {
    /// The key of the Service this slice belongs to.
    pub fn service_key(&self) -> &ObjKey {
        &self.service
    }

    /// Every address of endpoint `i`.
    pub fn addresses_of(&self, i: usize) -> impl Iterator<Item = IpAddr> + '_ {
        let first = self.endpoints.get(i).map(|ep| ep.address);
        let more = self
            .more_addresses
            .iter()
            .filter(move |(at, _)| *at as usize == i)
            .map(|(_, ip)| *ip);
        first.into_iter().chain(more)
    }

    /// Every address of every endpoint, ready or not.
    pub fn all_addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let more = self.more_addresses.iter().map(|(_, ip)| *ip);
        self.endpoints.iter().map(|ep| ep.address).chain(more)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub key: ObjKey,
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSet {
    pub key: ObjKey,
    pub service_name: String,
    pub replicas: u32,
}

/// The kinds of object the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    EndpointSlice,
    Pod,
    Namespace,
    StatefulSet,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
        Kind::Namespace,
        Kind::StatefulSet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::EndpointSlice => "endpointslice",
            Kind::Pod => "pod",
            Kind::Namespace => "namespace",
            Kind::StatefulSet => "statefulset",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Service(Service),
    EndpointSlice(EndpointSlice),
    Pod(Pod),
    Namespace(String),
    StatefulSet(StatefulSet),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Pod(_) => Kind::Pod,
            Object::Namespace(_) => Kind::Namespace,
            Object::StatefulSet(_) => Kind::StatefulSet,
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Object::Service(s) => s.key.namespace(),
            Object::EndpointSlice(s) => s.key.namespace(),
            Object::Pod(p) => p.key.namespace(),
            Object::Namespace(n) => n,
            Object::StatefulSet(s) => s.key.namespace(),
        }
    }
}

/// One change from a source, in the order the source saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Apply(Object),
    Delete(Kind, ObjKey),
    /// A (re)list of one kind begins, in one namespace or (`None`) all of
    /// them. Its objects follow one by one as `Apply` (or `Keep`), and are
    /// folded in as they come, so a relist never holds a second copy of the
    /// kind; nothing is deleted before its `ListEnd`.
    ListStart(Kind, Option<String>),
    /// Listed, but it did not convert: keep its last good version (if any)
    /// through this list rather than delete it.
    Keep(Kind, ObjKey),
    /// The list that began with `ListStart` is complete: every object of
    /// that kind and scope neither applied nor kept since then is gone.
    ListEnd(Kind, Option<String>),
    /// Everything one source (a manifest file) holds now: what it delivered
    /// before and no longer lists is gone, unless another source lists it.
    ResetSource(String, Vec<Object>),
}
