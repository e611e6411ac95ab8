//! The other direction of the grammar: the names and keys that the index
//! builder, the answer engine and the generators write. A new name shape is
//! added here and in `parse_*`, nowhere else.

use std::net::IpAddr;

use crate::dnsname::{NameError, WireName, dashed_ip};

/// `dns-version.<zone>` of a cluster zone: the Kubernetes DNS schema
/// version (spec §2.1).
pub const CLUSTER_SCHEMA_VERSION: &str = "1.1.0";
/// `dns-version.<clusterset zone>`: the Multi-Cluster Services DNS schema
/// version (KEP-1645 specification §1, §2.2).
pub const CLUSTERSET_SCHEMA_VERSION: &str = "1.0.0";

fn under(labels: &[&str], zone: &WireName) -> Result<WireName, NameError> {
    WireName::from_labels(labels.iter().copied())?.join(zone)
}

/// `<svc>.<ns>` in wire form: how a snapshot keys its services, and what
/// `ServiceRef::key` holds for a parsed question.
pub fn service_key(namespace: &str, service: &str) -> Option<Box<[u8]>> {
    WireName::from_labels([service, namespace])
        .ok()
        .map(|w| w.as_bytes().into())
}

/// `<svc>.<ns>.svc.<zone>` (a cluster zone or the clusterset zone).
pub fn service_name(
    zone: &WireName,
    namespace: &str,
    service: &str,
) -> Result<WireName, NameError> {
    under(&[service, namespace, "svc"], zone)
}

/// `<host>.<svc>.<ns>.svc.<zone>`, from the service's name.
pub fn host_name(service_name: &WireName, host: &str) -> Result<WireName, NameError> {
    WireName::from_labels([host])?.join(service_name)
}

/// `<host>.<cluster>.<svc>.<ns>.svc.<clusterset zone>` (KEP-1645 §2.4.1).
pub fn clusterset_host_name(
    clusterset_zone: &WireName,
    cluster: &str,
    namespace: &str,
    service: &str,
    host: &str,
) -> Result<WireName, NameError> {
    under(&[host, cluster, service, namespace, "svc"], clusterset_zone)
}

/// The SRV table key of `_<port>._<proto>`: the two labels in wire form,
/// from the bare port name and protocol label (`http`, `tcp`).
pub fn srv_key(port_name: &str, proto: &str) -> Option<Box<[u8]>> {
    let port = format!("_{port_name}");
    let proto = format!("_{proto}");
    WireName::from_labels([port.as_str(), proto.as_str()])
        .ok()
        .map(|w| w.as_bytes().into())
}

/// The protocol label of an SRV key (`_tcp` of `_http._tcp`).
pub fn srv_key_proto(key: &[u8]) -> Option<&[u8]> {
    let at = 1 + usize::from(*key.first()?);
    key.get(at + 1..)
}

/// `<ns>.svc.<zone>`: the part of a shared zone one cluster answers.
pub fn namespace_zone(zone: &WireName, namespace: &str) -> Result<WireName, NameError> {
    under(&[namespace, "svc"], zone)
}

/// `ns.dns.<zone>`: the apex NS target, and the SOA MNAME.
pub fn ns_name(zone: &WireName) -> Result<WireName, NameError> {
    under(&["ns", "dns"], zone)
}

/// `hostmaster.<zone>`: the SOA RNAME.
pub fn hostmaster_name(zone: &WireName) -> Result<WireName, NameError> {
    under(&["hostmaster"], zone)
}

/// The label of an endpoint without a hostname: its dashed address, which
/// is always a valid host name (`dnsname::dashed_ip`).
pub fn endpoint_label(ip: IpAddr) -> String {
    dashed_ip(ip)
}

/// `<sts>-<i>`: the hostname of a StatefulSet's replica `i`.
pub fn replica_host(statefulset: &str, i: u32) -> String {
    format!("{statefulset}-{i}")
}

/// `<a-b-c-d>.<ns>.pod.<zone>`.
pub fn pod_name(zone: &WireName, namespace: &str, ip: IpAddr) -> Result<WireName, NameError> {
    under(&[&endpoint_label(ip), namespace, "pod"], zone)
}

/// `<svc>._crossdns.<ns>.svc.<zone>`: the Service's metadata (`index::meta`).
pub fn service_meta_name(
    zone: &WireName,
    namespace: &str,
    service: &str,
) -> Result<WireName, NameError> {
    under(&[service, super::META, namespace, "svc"], zone)
}

/// `_crossdns.<ns>.svc.<zone>` and `_crossdns.<ns>.pod.<zone>`: the marks of
/// a namespace that exists.
pub fn namespace_meta_names(zone: &WireName, namespace: &str) -> Result<[WireName; 2], NameError> {
    Ok([
        under(&[super::META, namespace, "svc"], zone)?,
        under(&[super::META, namespace, "pod"], zone)?,
    ])
}

/// `<svc>.<ns>` in wire form, written into `buf` from the two bare labels
/// (the question has them apart, `<svc>._crossdns.<ns>`); `None` when they
/// do not fit.
pub fn service_key_into<'b>(
    buf: &'b mut [u8; 128],
    name: &[u8],
    namespace: &[u8],
) -> Option<&'b [u8]> {
    let len = 2 + name.len() + namespace.len();
    if len > buf.len() || name.len() > 63 || namespace.len() > 63 {
        return None;
    }
    buf[0] = name.len() as u8;
    buf[1..1 + name.len()].copy_from_slice(name);
    let at = 1 + name.len();
    buf[at] = namespace.len() as u8;
    buf[at + 1..len].copy_from_slice(namespace);
    Some(&buf[..len])
}

/// `<svc>.<ns>.svc.<zone>` from a snapshot's service key (`service_key`).
pub fn service_name_of_key(zone: &WireName, key: &[u8]) -> Result<WireName, NameError> {
    let labels: Vec<&str> = crate::dnsname::Labels::new(key)
        .map(|l| std::str::from_utf8(l).unwrap_or(""))
        .collect();
    match labels[..] {
        [service, namespace] => service_name(zone, namespace, service),
        _ => Err(NameError::Empty),
    }
}

/// `<svc>._crossdns.<ns>.svc.<zone>` from a snapshot's service key.
pub fn service_meta_name_of_key(zone: &WireName, key: &[u8]) -> Result<WireName, NameError> {
    let labels: Vec<&str> = crate::dnsname::Labels::new(key)
        .map(|l| std::str::from_utf8(l).unwrap_or(""))
        .collect();
    match labels[..] {
        [service, namespace] => service_meta_name(zone, namespace, service),
        _ => Err(NameError::Empty),
    }
}
