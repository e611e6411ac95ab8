//! The index boundary: Kubernetes objects (as JSON) become the minimal index
//! structs here, and nothing bigger is kept. Objects are deserialized
//! straight into small borrowed structs that name only the fields DNS reads
//! (everything else, `managedFields` included, is skipped by the parser
//! without being allocated). An object that does not fit is an error for
//! that object only; the caller logs it and skips it.
//!
//! Entry points, all pure functions: [`convert_json`] (bytes of one object,
//! as a list item or watch event carries it), [`convert`] (a parsed
//! `serde_json::Value`, as the manifests source has it) and [`key_of`] (the
//! key of an object that did not convert, so it can be named and kept).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::dnsname::WireName;
use crate::index::{
    Endpoint, EndpointSlice, Kind, LbIngress, ObjKey, Object, Pod, Port, Protocol, Service,
    ServiceKind, StatefulSet,
};

/// The label the EndpointSlice controller sets to its Service's name.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Annotations the clusterset view reads; every other annotation is dropped.
pub const ANNOTATION_PREFIX: &str = "crossdns.io/";

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{kind} does not match the Kubernetes schema: {source}")]
    Schema {
        kind: &'static str,
        source: serde_json::Error,
    },
    #[error("{0} has no metadata.name")]
    NoName(&'static str),
    #[error("{0} has no metadata.namespace")]
    NoNamespace(&'static str),
    #[error("{what}: {value:?} {reason}")]
    Value {
        what: &'static str,
        value: String,
        reason: String,
    },
}

/// Which index kind an `apiVersion`/`kind` pair is, if crossdns reads it.
pub fn kind_of(api_version: &str, kind: &str) -> Option<Kind> {
    match (api_version, kind) {
        ("v1", "Service") => Some(Kind::Service),
        ("discovery.k8s.io/v1", "EndpointSlice") => Some(Kind::EndpointSlice),
        ("v1", "Pod") => Some(Kind::Pod),
        ("v1", "Namespace") => Some(Kind::Namespace),
        ("apps/v1", "StatefulSet") => Some(Kind::StatefulSet),
        _ => None,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Service => "Service",
        Kind::EndpointSlice => "EndpointSlice",
        Kind::Pod => "Pod",
        Kind::Namespace => "Namespace",
        Kind::StatefulSet => "StatefulSet",
    }
}

/// Converts one object of `kind` from its JSON text. `Ok(None)` means
/// "valid, but nothing DNS serves" (an EndpointSlice without a service-name
/// label).
pub fn convert_json(kind: Kind, json: &[u8]) -> Result<Option<Object>, ConvertError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let obj = from_deserializer(kind, &mut de)?;
    de.end().map_err(|source| ConvertError::Schema {
        kind: kind_name(kind),
        source,
    })?;
    Ok(obj)
}

/// Converts one object of `kind` from a parsed JSON value (the manifests
/// source); the same rules as [`convert_json`].
pub fn convert(kind: Kind, value: Value) -> Result<Option<Object>, ConvertError> {
    from_deserializer(kind, &value)
}

/// The key of an object of `kind` whose metadata parses, whatever the rest
/// holds: what a list that skips the object keeps of it.
pub fn key_of(kind: Kind, json: &[u8]) -> Option<ObjKey> {
    #[derive(Deserialize)]
    struct MetaOnly<'a> {
        #[serde(borrow)]
        metadata: Names<'a>,
    }
    #[derive(Deserialize)]
    struct Names<'a> {
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        namespace: Option<Cow<'a, str>>,
    }
    let m: MetaOnly<'_> = serde_json::from_slice(json).ok()?;
    let name = m.metadata.name?;
    Some(match kind {
        Kind::Namespace => ObjKey::new("", &*name),
        _ => ObjKey::new(&*m.metadata.namespace?, &*name),
    })
}

fn from_deserializer<'de, D>(kind: Kind, de: D) -> Result<Option<Object>, ConvertError>
where
    D: Deserializer<'de, Error: Into<serde_json::Error>>,
{
    fn parse<'de, T: Deserialize<'de>, D: Deserializer<'de, Error: Into<serde_json::Error>>>(
        kind: &'static str,
        de: D,
    ) -> Result<T, ConvertError> {
        T::deserialize(de).map_err(|e| ConvertError::Schema {
            kind,
            source: e.into(),
        })
    }
    Ok(match kind {
        Kind::Service => Some(Object::Service(service(parse("Service", de)?)?)),
        Kind::EndpointSlice => {
            endpoint_slice(parse("EndpointSlice", de)?)?.map(Object::EndpointSlice)
        }
        Kind::Pod => Some(Object::Pod(pod(parse("Pod", de)?)?)),
        Kind::Namespace => {
            let ns: K8sNamespace<'_> = parse("Namespace", de)?;
            Some(Object::Namespace(
                ns.metadata
                    .name
                    .ok_or(ConvertError::NoName("Namespace"))?
                    .into_owned(),
            ))
        }
        Kind::StatefulSet => Some(Object::StatefulSet(statefulset(parse("StatefulSet", de)?)?)),
    })
}

// ---------------------------------------------------------------------------
// The fields DNS reads, as the apiserver writes them. Strings borrow from the
// input where they can (`Cow`), maps keep only the entries DNS needs, and
// unknown fields are skipped.
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(default)]
    labels: Option<ServiceNameLabel>,
    #[serde(default)]
    annotations: Option<CrossdnsAnnotations>,
}

/// `metadata.labels`, of which only `kubernetes.io/service-name` is kept.
#[derive(Default)]
struct ServiceNameLabel(Option<String>);

/// `metadata.annotations`, of which only `crossdns.io/...` are kept.
#[derive(Default)]
struct CrossdnsAnnotations(Vec<(Box<str>, Box<str>)>);

/// A string-to-string map, visited entry by entry; `keep` decides per key.
struct FilteredMap<F>(F);

impl<'de, F: FnMut(&str, Cow<'de, str>)> Visitor<'de> for FilteredMap<F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value: Cow<'de, str> = map.next_value()?;
            (self.0)(&key, value);
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ServiceNameLabel {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let mut found = None;
        de.deserialize_map(FilteredMap(|k: &str, v: Cow<'de, str>| {
            if k == SERVICE_NAME_LABEL {
                found = Some(v.into_owned());
            }
        }))?;
        Ok(Self(found))
    }
}

impl<'de> Deserialize<'de> for CrossdnsAnnotations {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let mut kept = Vec::new();
        de.deserialize_map(FilteredMap(|k: &str, v: Cow<'de, str>| {
            if k.starts_with(ANNOTATION_PREFIX) {
                kept.push((k.into(), v.as_ref().into()));
            }
        }))?;
        kept.sort();
        Ok(Self(kept))
    }
}

#[derive(Deserialize)]
struct K8sService<'a> {
    #[serde(borrow)]
    metadata: Meta<'a>,
    #[serde(borrow, default)]
    spec: Option<ServiceSpec<'a>>,
    #[serde(borrow, default)]
    status: Option<ServiceStatus<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ServiceSpec<'a> {
    #[serde(borrow, default, rename = "type")]
    type_: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "clusterIP")]
    cluster_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "clusterIPs")]
    cluster_ips: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    external_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ports: Option<Vec<K8sPort<'a>>>,
    #[serde(default)]
    publish_not_ready_addresses: Option<bool>,
}

/// A Service port (`port` required) or an EndpointSlice port (optional).
#[derive(Deserialize)]
struct K8sPort<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    protocol: Option<Cow<'a, str>>,
    #[serde(default)]
    port: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceStatus<'a> {
    #[serde(borrow, default)]
    load_balancer: Option<LoadBalancerStatus<'a>>,
}

#[derive(Deserialize)]
struct LoadBalancerStatus<'a> {
    #[serde(borrow, default)]
    ingress: Option<Vec<K8sIngress<'a>>>,
}

#[derive(Deserialize)]
struct K8sIngress<'a> {
    #[serde(borrow, default)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    hostname: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct K8sSlice<'a> {
    #[serde(borrow)]
    metadata: Meta<'a>,
    #[serde(borrow)]
    address_type: Cow<'a, str>,
    #[serde(borrow, default)]
    ports: Option<Vec<K8sPort<'a>>>,
    #[serde(borrow, default)]
    endpoints: Option<Vec<K8sEndpoint<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct K8sEndpoint<'a> {
    #[serde(borrow)]
    addresses: Vec<Cow<'a, str>>,
    #[serde(default)]
    conditions: Option<Conditions>,
    #[serde(borrow, default)]
    hostname: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    target_ref: Option<TargetRef<'a>>,
}

#[derive(Deserialize)]
struct Conditions {
    #[serde(default)]
    ready: Option<bool>,
}

#[derive(Deserialize)]
struct TargetRef<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct K8sPod<'a> {
    #[serde(borrow)]
    metadata: Meta<'a>,
    #[serde(borrow, default)]
    status: Option<PodStatus<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus<'a> {
    #[serde(borrow, default, rename = "podIP")]
    pod_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "podIPs")]
    pod_ips: Option<Vec<PodIp<'a>>>,
}

#[derive(Deserialize)]
struct PodIp<'a> {
    #[serde(borrow)]
    ip: Cow<'a, str>,
}

#[derive(Deserialize)]
struct K8sNamespace<'a> {
    #[serde(borrow)]
    metadata: Meta<'a>,
}

#[derive(Deserialize)]
struct K8sStatefulSet<'a> {
    #[serde(borrow)]
    metadata: Meta<'a>,
    #[serde(borrow, default)]
    spec: Option<StatefulSetSpec<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StatefulSetSpec<'a> {
    #[serde(borrow, default)]
    service_name: Option<Cow<'a, str>>,
    #[serde(default)]
    replicas: Option<i32>,
}

// ---------------------------------------------------------------------------
// Minimal structs from the parsed fields.
// ---------------------------------------------------------------------------

fn key(kind: &'static str, meta: &Meta<'_>) -> Result<ObjKey, ConvertError> {
    let name = meta.name.as_deref().ok_or(ConvertError::NoName(kind))?;
    let namespace = meta
        .namespace
        .as_deref()
        .ok_or(ConvertError::NoNamespace(kind))?;
    Ok(ObjKey::new(namespace, name))
}

fn ip(what: &'static str, s: &str) -> Result<IpAddr, ConvertError> {
    s.parse().map_err(|_| ConvertError::Value {
        what,
        value: s.to_owned(),
        reason: "is not an IP address".to_owned(),
    })
}

fn protocol(p: Option<&str>) -> Result<Protocol, ConvertError> {
    match p.unwrap_or("TCP") {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "SCTP" => Ok(Protocol::Sctp),
        other => Err(ConvertError::Value {
            what: "port protocol",
            value: other.to_owned(),
            reason: "is not TCP, UDP or SCTP".to_owned(),
        }),
    }
}

fn port_number(n: i32) -> Result<u16, ConvertError> {
    u16::try_from(n).map_err(|_| ConvertError::Value {
        what: "port",
        value: n.to_string(),
        reason: "is not a port number".to_owned(),
    })
}

fn port(p: &K8sPort<'_>, n: i32) -> Result<Port, ConvertError> {
    Ok(Port {
        name: p.name.as_deref().unwrap_or_default().into(),
        protocol: protocol(p.protocol.as_deref())?,
        port: port_number(n)?,
    })
}

fn dns_name(what: &'static str, s: &str) -> Result<WireName, ConvertError> {
    WireName::parse(s).map_err(|e| ConvertError::Value {
        what,
        value: s.to_owned(),
        reason: format!("is not a DNS name: it {e}"),
    })
}

fn service(svc: K8sService<'_>) -> Result<Service, ConvertError> {
    let key = key("Service", &svc.metadata)?;
    let spec = svc.spec.unwrap_or_default();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec.external_name.as_deref().unwrap_or_default();
        ServiceKind::ExternalName(dns_name("spec.externalName", target)?)
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        // `clusterIPs` holds one VIP per family; older objects only `clusterIP`.
        let list: Vec<&str> = match (&spec.cluster_ips, &spec.cluster_ip) {
            (Some(ips), _) if !ips.is_empty() => ips.iter().map(AsRef::as_ref).collect(),
            (_, Some(one)) if !one.is_empty() => vec![one.as_ref()],
            _ => Vec::new(),
        };
        ServiceKind::ClusterIp(
            list.iter()
                .map(|s| ip("spec.clusterIPs", s))
                .collect::<Result<_, _>>()?,
        )
    };
    let mut ports = Vec::new();
    for p in spec.ports.iter().flatten() {
        let Some(n) = p.port else {
            return Err(ConvertError::Value {
                what: "spec.ports",
                value: p.name.as_deref().unwrap_or_default().to_owned(),
                reason: "has no port number".to_owned(),
            });
        };
        ports.push(port(p, n)?);
    }
    let mut lb_ingress = Vec::new();
    for ing in svc
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
    {
        match (ing.ip, ing.hostname) {
            (Some(a), _) => {
                lb_ingress.push(LbIngress::Ip(ip("status.loadBalancer.ingress.ip", &a)?))
            }
            (None, Some(h)) => lb_ingress.push(LbIngress::Hostname(dns_name(
                "status.loadBalancer.ingress.hostname",
                &h,
            )?)),
            (None, None) => {}
        }
    }
    Ok(Service {
        key,
        kind,
        ports: ports.into(),
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
        lb_ingress: lb_ingress.into(),
        annotations: svc.metadata.annotations.unwrap_or_default().0.into(),
    })
}

fn endpoint_slice(slice: K8sSlice<'_>) -> Result<Option<EndpointSlice>, ConvertError> {
    let key = key("EndpointSlice", &slice.metadata)?;
    let Some(service) = slice
        .metadata
        .labels
        .and_then(|l| l.0)
        .map(|name| ObjKey::new(key.namespace(), name))
    else {
        return Ok(None);
    };
    if slice.address_type == "FQDN" {
        return Ok(None); // deprecated, and not addresses DNS can serve
    }
    let mut ports = Vec::new();
    for p in slice.ports.iter().flatten() {
        let Some(n) = p.port else { continue };
        ports.push(port(p, n)?);
    }
    let list = slice.endpoints.unwrap_or_default();
    let mut endpoints = Vec::with_capacity(list.len());
    let mut more = Vec::new();
    for ep in list {
        let mut addresses = ep.addresses.iter().map(|a| ip("endpoints.addresses", a));
        // The API requires at least one address; an endpoint without any
        // names nothing.
        let Some(address) = addresses.next().transpose()? else {
            continue;
        };
        for extra in addresses {
            more.push((endpoints.len() as u32, extra?));
        }
        let pod_name = ep
            .target_ref
            .filter(|r| r.kind.as_deref() == Some("Pod"))
            .and_then(|r| r.name);
        let name_is_pod = ep.hostname.is_none() && pod_name.is_some();
        endpoints.push(Endpoint {
            address,
            // "nil should be interpreted as true" (EndpointConditions API).
            ready: ep.conditions.and_then(|c| c.ready).unwrap_or(true),
            name_is_pod,
            name: ep.hostname.or(pod_name).map(|n| n.as_ref().into()),
        });
    }
    Ok(Some(EndpointSlice {
        key,
        service,
        ports: ports.into(),
        endpoints: endpoints.into(),
        more_addresses: more.into(),
    }))
}

fn pod(p: K8sPod<'_>) -> Result<Pod, ConvertError> {
    let key = key("Pod", &p.metadata)?;
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(status) = p.status {
        for s in status
            .pod_ips
            .iter()
            .flatten()
            .map(|i| i.ip.as_ref())
            .chain(status.pod_ip.as_deref())
        {
            let a = ip("status.podIPs", s)?;
            if !ips.contains(&a) {
                ips.push(a);
            }
        }
    }
    Ok(Pod { key, ips })
}

fn statefulset(s: K8sStatefulSet<'_>) -> Result<StatefulSet, ConvertError> {
    let key = key("StatefulSet", &s.metadata)?;
    let spec = s.spec.unwrap_or_default();
    Ok(StatefulSet {
        key,
        service_name: spec.service_name.map(Cow::into_owned).unwrap_or_default(),
        replicas: spec.replicas.unwrap_or(1).max(0) as u32,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn headless_service_keeps_named_ports_and_publish_not_ready() {
        let obj = convert(
            Kind::Service,
            json!({"metadata": {"name": "db", "namespace": "default", "annotations": {"crossdns.io/policy": "failover", "other": "x"}},
                   "spec": {"clusterIP": "None", "publishNotReadyAddresses": true,
                            "ports": [{"name": "grpc", "port": 26257}]}}),
        )
        .expect("converts");
        let Some(Object::Service(svc)) = obj else {
            panic!("a service")
        };
        assert_eq!(svc.kind, ServiceKind::Headless);
        assert!(svc.publish_not_ready);
        assert_eq!(
            *svc.ports,
            [Port {
                name: "grpc".into(),
                protocol: Protocol::Tcp,
                port: 26257
            }]
        );
        assert_eq!(
            *svc.annotations,
            [("crossdns.io/policy".into(), "failover".into())]
        );
    }

    #[test]
    fn dual_stack_cluster_ips_are_all_kept() {
        let Some(Object::Service(svc)) = convert(
            Kind::Service,
            json!({"metadata": {"name": "w", "namespace": "n"}, "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1"]}}),
        )
        .expect("converts") else {
            panic!("a service")
        };
        assert_eq!(
            svc.kind,
            ServiceKind::ClusterIp(
                [
                    "10.0.0.1".parse().expect("ip"),
                    "fd00::1".parse().expect("ip")
                ]
                .into()
            )
        );
    }

    #[test]
    fn garbage_fields_are_an_error_for_that_object() {
        let err = convert(
            Kind::Service,
            json!({"metadata": {"name": "w", "namespace": "n"}, "spec": {"ports": "lots"}}),
        )
        .expect_err("ports must be a list");
        assert!(
            err.to_string()
                .contains("Service does not match the Kubernetes schema"),
            "{err}"
        );
        let err = convert(Kind::Service, json!({"metadata": {"name": "w", "namespace": "n"}, "spec": {"clusterIP": "10.0.0.999"}}))
            .expect_err("bad IP");
        assert!(
            err.to_string()
                .contains("\"10.0.0.999\" is not an IP address"),
            "{err}"
        );
    }

    #[test]
    fn endpoint_without_ready_condition_counts_as_ready() {
        let Some(Object::EndpointSlice(s)) = convert(
            Kind::EndpointSlice,
            json!({"metadata": {"name": "s", "namespace": "n", "labels": {"kubernetes.io/service-name": "web"}},
                   "addressType": "IPv4",
                   "endpoints": [{"addresses": ["10.0.0.5"], "targetRef": {"kind": "Pod", "name": "web-1"}}]}),
        )
        .expect("converts") else {
            panic!("a slice")
        };
        assert!(s.endpoints[0].ready);
        assert_eq!(s.endpoints[0].name.as_deref(), Some("web-1"));
        assert!(s.endpoints[0].name_is_pod);
        assert_eq!(s.service, ObjKey::new("n", "web"));
    }

    #[test]
    fn endpoint_addresses_beyond_the_first_are_kept_and_an_empty_endpoint_is_dropped() {
        let Some(Object::EndpointSlice(s)) = convert(
            Kind::EndpointSlice,
            json!({"metadata": {"name": "s", "namespace": "n", "labels": {"kubernetes.io/service-name": "web"}},
                   "addressType": "IPv4",
                   "endpoints": [{"addresses": ["10.0.0.5", "10.0.0.6"], "hostname": "a"},
                                 {"addresses": []}]}),
        )
        .expect("converts") else {
            panic!("a slice")
        };
        assert_eq!(s.endpoints.len(), 1);
        let ep = &s.endpoints[0];
        assert_eq!(
            s.addresses_of(0).map(|a| a.to_string()).collect::<Vec<_>>(),
            ["10.0.0.5", "10.0.0.6"]
        );
        assert_eq!(s.addresses_of(1).count(), 0);
        assert_eq!(s.all_addresses().count(), 2);
        assert_eq!((ep.label(false), ep.name_is_pod), (Some("a"), false));
    }

    #[test]
    fn slice_without_service_label_is_ignored() {
        let out = convert(
            Kind::EndpointSlice,
            json!({"metadata": {"name": "s", "namespace": "n"}, "addressType": "IPv4", "endpoints": []}),
        )
        .expect("valid");
        assert!(out.is_none());
    }
}
