//! The fields DNS reads of each kind, as the apiserver writes them: small
//! borrowed structs for serde. Strings borrow from the input where they can
//! (`Cow`), maps keep only the entries DNS needs, and unknown fields are
//! skipped by the parser without being allocated.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use super::{ANNOTATION_PREFIX, SERVICE_NAME_LABEL};

#[derive(Deserialize)]
pub(super) struct Meta<'a> {
    #[serde(borrow, default)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) namespace: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) labels: Option<ServiceNameLabel>,
    #[serde(default)]
    pub(super) annotations: Option<CrossdnsAnnotations>,
}

/// `metadata.labels`, of which only `kubernetes.io/service-name` is kept.
#[derive(Default)]
pub(super) struct ServiceNameLabel(pub(super) Option<String>);

/// `metadata.annotations`, of which only `crossdns.io/...` are kept.
#[derive(Default)]
pub(super) struct CrossdnsAnnotations(pub(super) Vec<(Box<str>, Box<str>)>);

/// A string-to-string map, visited entry by entry; `keep` decides per key.
pub(super) struct FilteredMap<F>(F);

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
pub(super) struct K8sService<'a> {
    #[serde(borrow)]
    pub(super) metadata: Meta<'a>,
    #[serde(borrow, default)]
    pub(super) spec: Option<ServiceSpec<'a>>,
    #[serde(borrow, default)]
    pub(super) status: Option<ServiceStatus<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServiceSpec<'a> {
    #[serde(borrow, default, rename = "type")]
    pub(super) type_: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "clusterIP")]
    pub(super) cluster_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "clusterIPs")]
    pub(super) cluster_ips: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    pub(super) external_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) ports: Option<Vec<K8sPort<'a>>>,
    #[serde(default)]
    pub(super) publish_not_ready_addresses: Option<bool>,
}

/// A Service port (`port` required) or an EndpointSlice port (optional).
#[derive(Deserialize)]
pub(super) struct K8sPort<'a> {
    #[serde(borrow, default)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) protocol: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) port: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServiceStatus<'a> {
    #[serde(borrow, default)]
    pub(super) load_balancer: Option<LoadBalancerStatus<'a>>,
}

#[derive(Deserialize)]
pub(super) struct LoadBalancerStatus<'a> {
    #[serde(borrow, default)]
    pub(super) ingress: Option<Vec<K8sIngress<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct K8sIngress<'a> {
    #[serde(borrow, default)]
    pub(super) ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) hostname: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct K8sSlice<'a> {
    #[serde(borrow)]
    pub(super) metadata: Meta<'a>,
    #[serde(borrow)]
    pub(super) address_type: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) ports: Option<Vec<K8sPort<'a>>>,
    #[serde(borrow, default)]
    pub(super) endpoints: Option<Vec<K8sEndpoint<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct K8sEndpoint<'a> {
    #[serde(borrow)]
    pub(super) addresses: Vec<Cow<'a, str>>,
    #[serde(default)]
    pub(super) conditions: Option<Conditions>,
    #[serde(borrow, default)]
    pub(super) hostname: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) target_ref: Option<TargetRef<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Conditions {
    #[serde(default)]
    pub(super) ready: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct TargetRef<'a> {
    #[serde(borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct K8sPod<'a> {
    #[serde(borrow)]
    pub(super) metadata: Meta<'a>,
    #[serde(borrow, default)]
    pub(super) status: Option<PodStatus<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PodStatus<'a> {
    #[serde(borrow, default, rename = "podIP")]
    pub(super) pod_ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "podIPs")]
    pub(super) pod_ips: Option<Vec<PodIp<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct PodIp<'a> {
    #[serde(borrow)]
    pub(super) ip: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(super) struct K8sNamespace<'a> {
    #[serde(borrow)]
    pub(super) metadata: Meta<'a>,
}

#[derive(Deserialize)]
pub(super) struct K8sStatefulSet<'a> {
    #[serde(borrow)]
    pub(super) metadata: Meta<'a>,
    #[serde(borrow, default)]
    pub(super) spec: Option<StatefulSetSpec<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatefulSetSpec<'a> {
    #[serde(borrow, default)]
    pub(super) service_name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) replicas: Option<i32>,
}

// ---------------------------------------------------------------------------
// Minimal structs from the parsed fields.
// ---------------------------------------------------------------------------
