//! Clusterset metadata in DNS form (design.md §7): what another server's
//! clusterset view needs of a Service beyond its §1 records, as TXT at
//! `<svc>._crossdns.<ns>.svc.<zone>`, so it travels in a zone transfer as
//! ordinary DNS data. Other secondaries (BIND, knot) hold it without any
//! change to their answers for §1 names: the name sits below `_crossdns`,
//! never below the Service's own name, so a headless Service with no
//! endpoints still does not exist (NXDOMAIN). `_crossdns.<ns>.svc.<zone>`
//! and `_crossdns.<ns>.pod.<zone>` mark a namespace that exists, so its
//! empty non-terminals exist in a copy too.
//!
//! Format (version 1): one or more TXT records, each a list of
//! `key=value` strings (at most 255 octets each); list values are
//! comma-separated and may repeat their key to continue:
//!
//! | key | value |
//! |---|---|
//! | `v` | `1` (first string of every record) |
//! | `kind` | `cluster-ip` or `headless` |
//! | `ready` | `1` when some endpoint is ready, else `0` |
//! | `vip` | ClusterIPs |
//! | `ep` | published endpoint addresses (ready, or all with `publishNotReadyAddresses`) |
//! | `nr` | the other endpoint addresses (not ready) |
//! | `lb` | load-balancer ingress IPs |
//! | `lbhost` | a load-balancer ingress hostname |
//! | `policy`, `order`, `weights` | the `crossdns.io/` annotations, as written |
//! | `export` | `0` for a Service opted out (`crossdns.io/export: "false"`); absent otherwise |
//!
//! ExternalNames have none. A Service opted out has metadata too, with
//! `export=0`, so that a copy knows its kind and VIPs (its reverse names,
//! and that its name exists while it has no address); in a zone with
//! metadata, a Service without any is not exported either.

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::TXT;

use super::build::{
    ANNOTATION_EXPORT, ANNOTATION_FAILOVER_ORDER, ANNOTATION_POLICY, ANNOTATION_WEIGHTS,
    annotation, parse_policy, parse_weights,
};
use super::rrset::{Node, RrsetBuilder};
use super::{EndpointSlice, Service, ServiceKind};
use crate::config::ClustersetPolicy;
use crate::dnsname::WireName;

const VERSION: &str = "1";
/// RFC 1035 §3.3: a character-string holds at most 255 octets.
const MAX_STRING: usize = 255;
/// Strings per TXT record: keeps each record well under a UDP answer.
const STRINGS_PER_RECORD: usize = 4;
const TYPE_TXT: u16 = 16;

/// What the clusterset needs of one Service in one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceMeta {
    /// Takes part in clustersets (`crossdns.io/export` is not "false").
    pub exported: bool,
    pub headless: bool,
    pub ready: bool,
    pub vips: Vec<IpAddr>,
    pub endpoints: Vec<IpAddr>,
    pub not_ready: Vec<IpAddr>,
    pub lb: Vec<IpAddr>,
    pub lb_host: Option<WireName>,
    pub policy: Option<ClustersetPolicy>,
    pub failover_order: Vec<String>,
    pub weights: Vec<(String, u32)>,
    /// The annotations as written (kept so a copy re-encodes identically).
    raw_policy: Option<String>,
    raw_order: Option<String>,
    raw_weights: Option<String>,
}

/// Why a metadata record was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("metadata version {0:?} is not 1")]
    Version(String),
    #[error("metadata string {0:?} is not key=value")]
    Shape(String),
    #[error("metadata {key}: {value:?} is not an IP address")]
    Address { key: String, value: String },
    #[error("metadata has no kind")]
    NoKind,
}

impl ServiceMeta {
    /// The metadata of `svc` with its `slices` (`None` for an ExternalName).
    pub fn of(svc: &Service, slices: &[&EndpointSlice]) -> Option<Self> {
        let exported = annotation(svc, ANNOTATION_EXPORT) != Some("false");
        let (headless, vips) = match &svc.kind {
            ServiceKind::ExternalName(_) => return None,
            ServiceKind::Headless => (true, Vec::new()),
            ServiceKind::ClusterIp(v) => (false, v.to_vec()),
        };
        let mut published = BTreeSet::new();
        let mut others = BTreeSet::new();
        let mut ready = false;
        for slice in slices {
            for (i, ep) in slice.endpoints.iter().enumerate() {
                ready |= ep.ready;
                let set = if ep.ready || svc.publish_not_ready {
                    &mut published
                } else {
                    &mut others
                };
                set.extend(slice.addresses_of(i));
            }
        }
        others.retain(|ip| !published.contains(ip));
        let lb = svc.lb_ips().collect();
        let lb_host = svc.lb_hostname().cloned();
        let raw = |k: &str| annotation(svc, k).map(str::to_owned);
        let mut meta = Self {
            exported,
            headless,
            ready,
            vips,
            endpoints: published.into_iter().collect(),
            not_ready: others.into_iter().collect(),
            lb,
            lb_host,
            raw_policy: raw(ANNOTATION_POLICY),
            raw_order: raw(ANNOTATION_FAILOVER_ORDER),
            raw_weights: raw(ANNOTATION_WEIGHTS),
            ..Self::default()
        };
        meta.derive_annotations();
        Some(meta)
    }

    fn derive_annotations(&mut self) {
        self.policy = self.raw_policy.as_deref().and_then(parse_policy);
        self.failover_order = self
            .raw_order
            .as_deref()
            .map(|s| {
                s.split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        self.weights = self
            .raw_weights
            .as_deref()
            .map(parse_weights)
            .unwrap_or_default();
    }

    /// The `key=value` strings, in a stable order.
    fn strings(&self) -> Vec<String> {
        let kind = if self.headless {
            "headless"
        } else {
            "cluster-ip"
        };
        let mut out = vec![
            format!("kind={kind}"),
            format!("ready={}", u8::from(self.ready)),
        ];
        let ips = |v: &[IpAddr]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        for (key, values) in [
            ("vip", ips(&self.vips)),
            ("ep", ips(&self.endpoints)),
            ("nr", ips(&self.not_ready)),
            ("lb", ips(&self.lb)),
        ] {
            push_list(&mut out, key, &values);
        }
        if let Some(h) = &self.lb_host {
            out.push(format!("lbhost={h}"));
        }
        if !self.exported {
            out.push("export=0".to_owned());
        }
        for (key, v) in [
            ("policy", &self.raw_policy),
            ("order", &self.raw_order),
            ("weights", &self.raw_weights),
        ] {
            if let Some(v) = v {
                out.push(truncate(format!("{key}={v}")));
            }
        }
        out
    }

    /// The TXT records, each starting with `v=1`.
    pub fn to_node(&self, ttl: u32) -> Node {
        let mut b = RrsetBuilder::new(TYPE_TXT, ttl);
        for chunk in self.strings().chunks(STRINGS_PER_RECORD) {
            let mut strings = vec![format!("v={VERSION}")];
            strings.extend_from_slice(chunk);
            b.push(&RData::TXT(TXT::new(strings)));
        }
        Node::new([b.finish()])
    }

    /// Reads the metadata back from its TXT records' strings.
    pub fn parse<'a, R, S>(records: R) -> Result<Self, MetaError>
    where
        R: IntoIterator<Item = S>,
        S: IntoIterator<Item = &'a [u8]>,
    {
        let mut meta = Self {
            exported: true,
            ..Self::default()
        };
        let mut kind = None;
        for record in records {
            for (i, raw) in record.into_iter().enumerate() {
                let text = String::from_utf8_lossy(raw);
                let (key, value) = text
                    .split_once('=')
                    .ok_or_else(|| MetaError::Shape(text.to_string()))?;
                if i == 0 {
                    if key != "v" || value != VERSION {
                        return Err(MetaError::Version(text.to_string()));
                    }
                    continue;
                }
                let ips = |list: &mut Vec<IpAddr>| -> Result<(), MetaError> {
                    for v in value.split(',').filter(|v| !v.is_empty()) {
                        list.push(v.parse().map_err(|_| MetaError::Address {
                            key: key.to_owned(),
                            value: v.to_owned(),
                        })?);
                    }
                    Ok(())
                };
                match key {
                    "kind" => kind = Some(value == "headless"),
                    "ready" => meta.ready = value == "1",
                    "vip" => ips(&mut meta.vips)?,
                    "ep" => ips(&mut meta.endpoints)?,
                    "nr" => ips(&mut meta.not_ready)?,
                    "lb" => ips(&mut meta.lb)?,
                    "lbhost" => meta.lb_host = WireName::parse(value).ok(),
                    "policy" => meta.raw_policy = Some(value.to_owned()),
                    "order" => meta.raw_order = Some(value.to_owned()),
                    "weights" => meta.raw_weights = Some(value.to_owned()),
                    "export" => meta.exported = value != "0",
                    // Keys of later versions are skipped, not refused.
                    _ => {}
                }
            }
        }
        meta.headless = kind.ok_or(MetaError::NoKind)?;
        meta.derive_annotations();
        Ok(meta)
    }
}

/// `key=a,b,c`, split into strings of at most 255 octets (addresses are
/// never split).
fn push_list(out: &mut Vec<String>, key: &str, values: &[String]) {
    let mut current = String::new();
    for v in values {
        if !current.is_empty() && current.len() + 1 + v.len() > MAX_STRING {
            out.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current = format!("{key}={v}");
        } else {
            current.push(',');
            current.push_str(v);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_STRING {
        let mut end = MAX_STRING;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The TXT at a namespace marker (`_crossdns.<ns>.svc|pod.<zone>`).
pub fn namespace_marker(ttl: u32) -> Node {
    let mut b = RrsetBuilder::new(TYPE_TXT, ttl);
    b.push(&RData::TXT(TXT::new(vec![format!("v={VERSION}")])));
    Node::new([b.finish()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Endpoint, LbIngress, ObjKey};

    fn svc(kind: ServiceKind, annotations: &[(&str, &str)]) -> Service {
        Service {
            key: ObjKey::new("shop", "web"),
            kind,
            ports: Box::default(),
            publish_not_ready: false,
            lb_ingress: [LbIngress::Ip("203.0.113.2".parse().expect("ip"))].into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (Box::from(*k), Box::from(*v)))
                .collect(),
        }
    }

    fn slice(n: u8, ready_every: u8) -> EndpointSlice {
        EndpointSlice {
            key: ObjKey::new("shop", "web-1"),
            service: ObjKey::new("shop", "web"),
            ports: Box::default(),
            endpoints: (0..n)
                .map(|i| Endpoint {
                    address: IpAddr::from([10, 0, 0, i]),
                    ready: i % ready_every == 0,
                    name_is_pod: false,
                    name: None,
                })
                .collect(),
            more_addresses: Box::default(),
        }
    }

    /// The TXT strings of `node` as the parser reads them.
    fn strings(node: &Node) -> Vec<Vec<Vec<u8>>> {
        let set = node.get(TYPE_TXT).expect("TXT");
        let mut out = Vec::new();
        let bytes = set.answer();
        let mut at = 0;
        while at + 12 <= bytes.len() {
            let rdlen = usize::from(u16::from_be_bytes([bytes[at + 10], bytes[at + 11]]));
            let rdata = &bytes[at + 12..at + 12 + rdlen];
            let mut strs = Vec::new();
            let mut i = 0;
            while i < rdata.len() {
                let l = usize::from(rdata[i]);
                strs.push(rdata[i + 1..i + 1 + l].to_vec());
                i += 1 + l;
            }
            out.push(strs);
            at += 12 + rdlen;
        }
        out
    }

    #[test]
    fn metadata_round_trips_through_its_txt_records() {
        let vip: IpAddr = "10.96.0.10".parse().expect("ip");
        let s = svc(
            ServiceKind::ClusterIp([vip].into()),
            &[
                ("crossdns.io/policy", "failover"),
                ("crossdns.io/failover-order", "b,a"),
                ("crossdns.io/weights", "a=3,b=1"),
            ],
        );
        // 200 endpoints: the lists span several strings and records.
        let sl = slice(200, 3);
        let meta = ServiceMeta::of(&s, &[&sl]).expect("exported");
        assert!(meta.ready && !meta.headless);
        assert_eq!(meta.vips, [vip]);
        assert_eq!(meta.endpoints.len() + meta.not_ready.len(), 200);
        assert_eq!(meta.policy, Some(ClustersetPolicy::Failover));
        let node = meta.to_node(5);
        let records = strings(&node);
        assert!(records.len() > 1, "split into records");
        assert!(records.iter().flatten().all(|s| s.len() <= MAX_STRING));
        let back = ServiceMeta::parse(records.iter().map(|r| r.iter().map(Vec::as_slice)))
            .expect("parses");
        assert_eq!(back, meta);
        assert_eq!(back.failover_order, ["b", "a"]);
        assert_eq!(back.weights, [("a".to_owned(), 3), ("b".to_owned(), 1)]);
    }

    #[test]
    fn opted_out_services_say_so_and_external_names_have_no_metadata() {
        let out = svc(ServiceKind::Headless, &[("crossdns.io/export", "false")]);
        let meta = ServiceMeta::of(&out, &[]).expect("metadata");
        assert!(!meta.exported);
        let back = ServiceMeta::parse(
            strings(&meta.to_node(5))
                .iter()
                .map(|r| r.iter().map(Vec::as_slice)),
        )
        .expect("parses");
        assert_eq!(back, meta);
        let ext = svc(
            ServiceKind::ExternalName(WireName::parse("a.example").expect("name")),
            &[],
        );
        assert!(ServiceMeta::of(&ext, &[]).is_none());
        let empty = ServiceMeta::of(&svc(ServiceKind::Headless, &[]), &[]).expect("exported");
        assert!(empty.exported && !empty.ready && empty.endpoints.is_empty());
    }

    #[test]
    fn bad_metadata_is_refused_with_a_reason() {
        fn rec<'a>(s: &[&'a str]) -> Vec<Vec<&'a [u8]>> {
            vec![s.iter().map(|x| x.as_bytes()).collect()]
        }
        assert_eq!(
            ServiceMeta::parse(rec(&["v=2", "kind=headless"])),
            Err(MetaError::Version("v=2".into()))
        );
        assert!(matches!(
            ServiceMeta::parse(rec(&["v=1", "kind=headless", "ep=10.0.0.x"])),
            Err(MetaError::Address { .. })
        ));
        assert_eq!(
            ServiceMeta::parse(rec(&["v=1", "ready=1"])),
            Err(MetaError::NoKind)
        );
        assert!(ServiceMeta::parse(rec(&["v=1", "kind=cluster-ip", "future=x"])).is_ok());
    }
}
