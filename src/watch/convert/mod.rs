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
use std::net::IpAddr;

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::Value;

mod shapes;

use shapes::{K8sNamespace, K8sPod, K8sPort, K8sService, K8sSlice, K8sStatefulSet, Meta};

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
mod tests;
