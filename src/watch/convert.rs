//! The index boundary: Kubernetes objects (as JSON) become the minimal index
//! structs here, and nothing bigger is kept. An object that does not fit is
//! an error for that object only; the caller logs it and skips it.

use std::net::IpAddr;

use k8s_openapi::api::apps::v1::StatefulSet as K8sStatefulSet;
use k8s_openapi::api::core::v1::{Namespace as K8sNamespace, Pod as K8sPod, Service as K8sService};
use k8s_openapi::api::discovery::v1::EndpointSlice as K8sSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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

/// Converts one object of `kind`. `Ok(None)` means "valid, but nothing DNS
/// serves" (an EndpointSlice without a service-name label).
pub fn convert(kind: Kind, value: Value) -> Result<Option<Object>, ConvertError> {
    fn parse<T: serde::de::DeserializeOwned>(
        kind: &'static str,
        value: Value,
    ) -> Result<T, ConvertError> {
        serde_json::from_value(value).map_err(|source| ConvertError::Schema { kind, source })
    }
    Ok(match kind {
        Kind::Service => Some(Object::Service(service(parse("Service", value)?)?)),
        Kind::EndpointSlice => {
            endpoint_slice(parse("EndpointSlice", value)?)?.map(Object::EndpointSlice)
        }
        Kind::Pod => Some(Object::Pod(pod(parse("Pod", value)?)?)),
        Kind::Namespace => {
            let ns: K8sNamespace = parse("Namespace", value)?;
            Some(Object::Namespace(
                ns.metadata.name.ok_or(ConvertError::NoName("Namespace"))?,
            ))
        }
        Kind::StatefulSet => Some(Object::StatefulSet(statefulset(parse(
            "StatefulSet",
            value,
        )?)?)),
    })
}

fn key(kind: &'static str, meta: &ObjectMeta) -> Result<ObjKey, ConvertError> {
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

fn dns_name(what: &'static str, s: &str) -> Result<WireName, ConvertError> {
    WireName::parse(s).map_err(|e| ConvertError::Value {
        what,
        value: s.to_owned(),
        reason: format!("is not a DNS name: it {e}"),
    })
}

pub fn service(svc: K8sService) -> Result<Service, ConvertError> {
    let key = key("Service", &svc.metadata)?;
    let spec = svc.spec.unwrap_or_default();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec.external_name.as_deref().unwrap_or_default();
        ServiceKind::ExternalName(dns_name("spec.externalName", target)?)
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        // `clusterIPs` holds one VIP per family; older objects only `clusterIP`.
        let list = match (&spec.cluster_ips, &spec.cluster_ip) {
            (Some(ips), _) if !ips.is_empty() => ips.clone(),
            (_, Some(one)) if !one.is_empty() => vec![one.clone()],
            _ => Vec::new(),
        };
        ServiceKind::ClusterIp(
            list.iter()
                .map(|s| ip("spec.clusterIPs", s))
                .collect::<Result<_, _>>()?,
        )
    };
    let mut ports = Vec::new();
    for p in spec.ports.unwrap_or_default() {
        ports.push(Port {
            name: p.name.unwrap_or_default().into(),
            protocol: protocol(p.protocol.as_deref())?,
            port: port_number(p.port)?,
        });
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
    let annotations = svc
        .metadata
        .annotations
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    Ok(Service {
        key,
        kind,
        ports: ports.into(),
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
        lb_ingress: lb_ingress.into(),
        annotations,
    })
}

pub fn endpoint_slice(slice: K8sSlice) -> Result<Option<EndpointSlice>, ConvertError> {
    let key = key("EndpointSlice", &slice.metadata)?;
    let Some(service) = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .map(|name| ObjKey::new(key.namespace(), name))
    else {
        return Ok(None);
    };
    if slice.address_type == "FQDN" {
        return Ok(None); // deprecated, and not addresses DNS can serve
    }
    let mut ports = Vec::new();
    for p in slice.ports.unwrap_or_default() {
        let Some(n) = p.port else { continue };
        ports.push(Port {
            name: p.name.unwrap_or_default().into(),
            protocol: protocol(p.protocol.as_deref())?,
            port: port_number(n)?,
        });
    }
    let mut endpoints = Vec::with_capacity(slice.endpoints.len());
    let mut more = Vec::new();
    for ep in slice.endpoints {
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
            name: ep.hostname.or(pod_name).map(Into::into),
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

pub fn pod(p: K8sPod) -> Result<Pod, ConvertError> {
    let key = key("Pod", &p.metadata)?;
    let status = p.status.unwrap_or_default();
    let mut ips: Vec<IpAddr> = Vec::new();
    for s in status
        .pod_ips
        .unwrap_or_default()
        .iter()
        .map(|i| i.ip.as_str())
        .chain(status.pod_ip.as_deref())
    {
        let a = ip("status.podIPs", s)?;
        if !ips.contains(&a) {
            ips.push(a);
        }
    }
    Ok(Pod { key, ips })
}

pub fn statefulset(s: K8sStatefulSet) -> Result<StatefulSet, ConvertError> {
    let key = key("StatefulSet", &s.metadata)?;
    let spec = s.spec.unwrap_or_default();
    Ok(StatefulSet {
        key,
        service_name: spec.service_name.unwrap_or_default(),
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
