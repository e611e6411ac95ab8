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
