//! Turns a parsed `RawConfig` into `Settings`, refusing anything wrong with one
//! message that names the key and the value.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::raw::{RawCluster, RawClusterset, RawConfig, RawForward};
use super::{
    AllowList, ClusterSettings, ClustersetSettings, ConfigError, DnsSettings, ForwardSettings,
    Settings, Source, TlsSettings, Upstream, UpstreamTls,
};
use crate::dnsname::{WireName, is_rfc1123_label};

/// Collects the file path so every error can name it.
pub(super) struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn err(
        &self,
        key: impl Into<String>,
        value: impl std::fmt::Debug,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.into(),
            value: format!("{value:?}"),
            reason: reason.into(),
        }
    }

    /// Relative paths are read against the config file's folder first (as
    /// kubectl does for kubeconfigs), then against the working directory.
    pub(super) fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_owned();
        }
        if let Some(dir) = self.path.parent() {
            let beside = dir.join(p);
            if beside.exists() {
                return beside;
            }
        }
        p.to_owned()
    }
}

pub(super) fn validate(raw: RawConfig, path: &Path) -> Result<Settings, ConfigError> {
    let cx = Ctx { path };

    let listen = socket_addrs(&cx, "dns.listen", &raw.dns.listen)?;
    if listen.is_empty() {
        return Err(cx.err(
            "dns.listen",
            &raw.dns.listen,
            "must name at least one address",
        ));
    }
    if raw.dns.ttl > i32::MAX as u32 {
        return Err(cx.err(
            "dns.ttl",
            raw.dns.ttl,
            "must be at most 2147483647 (RFC 2181 §8)",
        ));
    }
    let tls = tls_settings(&cx, &raw)?;
    let advertise = raw
        .dns
        .advertise
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpAddr>().map_err(|_| {
                cx.err(
                    format!("dns.advertise[{i}]"),
                    s,
                    "is not an IP address (10.0.0.53, fd00::53)",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let allow = match &raw.allow {
        None => AllowList::private_default(),
        Some(list) => {
            let mut nets = Vec::with_capacity(list.len());
            for (i, s) in list.iter().enumerate() {
                nets.push(parse_net(s).ok_or_else(|| {
                    cx.err(
                        format!("allow[{i}]"),
                        s,
                        "is not a CIDR (10.0.0.0/8) or an IP address",
                    )
                })?);
            }
            AllowList::new(nets)
        }
    };

    let admin = match &raw.admin {
        None => None,
        Some(a) => Some(a.listen.parse::<SocketAddr>().map_err(|_| {
            cx.err(
                "admin.listen",
                &a.listen,
                "is not an IP:port address (127.0.0.1:9153)",
            )
        })?),
    };

    let tsig_keys = super::transfer::tsig_keys(&cx, &raw.tsig_keys)?;
    if raw.clusters.is_empty() {
        return Err(cx.err("clusters", "[]", "must list at least one cluster"));
    }
    let mut clusters = Vec::with_capacity(raw.clusters.len());
    for (i, rc) in raw.clusters.iter().enumerate() {
        clusters.push(cluster(&cx, i, rc, &tsig_keys)?);
    }
    check_cluster_names_and_zones(&cx, &clusters)?;

    let clusterset = match &raw.clusterset {
        None => None,
        Some(cs) => Some(clusterset(&cx, cs, &clusters)?),
    };

    let mut forward = Vec::with_capacity(raw.forward.len());
    for (i, f) in raw.forward.iter().enumerate() {
        forward.push(forward_zone(&cx, i, f)?);
    }
    check_zone_overlaps(&cx, &clusters, clusterset.as_ref(), &forward)?;
    let transfer = raw
        .transfer
        .as_ref()
        .map(|t| super::transfer::transfer(&cx, t, &tsig_keys))
        .transpose()?;
    if let Some(catalog) = transfer.as_ref().and_then(|t| t.catalog.as_ref()) {
        let taken = clusters.iter().any(|c| c.zone == *catalog)
            || clusterset.as_ref().is_some_and(|cs| cs.zone == *catalog)
            || forward.iter().any(|f| f.zone == *catalog);
        if taken {
            return Err(cx.err(
                "transfer.catalog",
                catalog.to_string(),
                "is already a cluster, clusterset or forward zone",
            ));
        }
    }

    Ok(Settings {
        path: path.to_owned(),
        dns: DnsSettings {
            listen,
            ttl: raw.dns.ttl,
            advertise,
            tls,
        },
        allow,
        admin,
        clusters,
        clusterset,
        forward,
        tsig_keys,
        transfer,
    })
}

fn socket_addrs(cx: &Ctx<'_>, key: &str, list: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<SocketAddr>().map_err(|_| {
                cx.err(
                    format!("{key}[{i}]"),
                    s,
                    "is not an IP:port address (0.0.0.0:53, [::]:53)",
                )
            })
        })
        .collect()
}

fn tls_settings(cx: &Ctx<'_>, raw: &RawConfig) -> Result<Option<TlsSettings>, ConfigError> {
    let dns = &raw.dns;
    if dns.tls_listen.is_empty() {
        for (key, v) in [
            ("dns.tls_cert", &dns.tls_cert),
            ("dns.tls_key", &dns.tls_key),
            ("dns.tls_client_ca", &dns.tls_client_ca),
        ] {
            if let Some(p) = v {
                return Err(cx.err(key, p, "is set but dns.tls_listen is empty"));
            }
        }
        return Ok(None);
    }
    let listen = socket_addrs(cx, "dns.tls_listen", &dns.tls_listen)?;
    let file = |key: &str, p: &Option<PathBuf>| -> Result<PathBuf, ConfigError> {
        let p = p
            .as_ref()
            .ok_or_else(|| cx.err(key, "", "is required when dns.tls_listen is set"))?;
        let resolved = cx.resolve(p);
        if !resolved.is_file() {
            return Err(cx.err(key, p, "is not a readable file"));
        }
        Ok(resolved)
    };
    let cert = file("dns.tls_cert", &dns.tls_cert)?;
    let key = file("dns.tls_key", &dns.tls_key)?;
    let client_ca = match &dns.tls_client_ca {
        None => None,
        some => Some(file("dns.tls_client_ca", some)?),
    };
    Ok(Some(TlsSettings {
        listen,
        cert,
        key,
        client_ca,
    }))
}

pub(super) fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

pub(super) fn zone_name(cx: &Ctx<'_>, key: String, value: &str) -> Result<WireName, ConfigError> {
    WireName::parse(value)
        .map_err(|e| cx.err(key, value, format!("is not a valid DNS zone name: it {e}")))
}

fn cluster(
    cx: &Ctx<'_>,
    i: usize,
    rc: &RawCluster,
    tsig_keys: &[super::TsigKey],
) -> Result<ClusterSettings, ConfigError> {
    let key = |k: &str| format!("clusters[{i}].{k}");
    if !is_rfc1123_label(&rc.name) {
        return Err(cx.err(
            key("name"),
            &rc.name,
            "must be a DNS label: lowercase letters, digits and '-', at most 63",
        ));
    }
    let zone = zone_name(cx, key("zone"), &rc.zone)?;
    for (j, ns) in rc.namespaces.iter().enumerate() {
        if !is_rfc1123_label(ns) {
            return Err(cx.err(
                format!("clusters[{i}].namespaces[{j}]"),
                ns,
                "is not a valid namespace name",
            ));
        }
    }
    if let (Some(_), Some(ctx)) = (&rc.manifests, &rc.context) {
        return Err(cx.err(key("context"), ctx, "cannot be used with manifests"));
    }
    if let Some(p) = &rc.primary {
        // A transferred zone is the primary's, whole: no other source, and
        // no namespace filter (it cannot share its zone).
        for (k, set) in [
            ("kubeconfig", rc.kubeconfig.is_some()),
            ("context", rc.context.is_some()),
            ("manifests", rc.manifests.is_some()),
            ("namespaces", !rc.namespaces.is_empty()),
        ] {
            if set {
                return Err(cx.err(
                    key(k),
                    &rc.name,
                    "cannot be used with primary: the zone comes whole from its primary",
                ));
            }
        }
        return Ok(ClusterSettings {
            name: rc.name.clone(),
            zone,
            source: Source::Primary(super::transfer::primary(cx, i, p, tsig_keys)?),
            namespaces: Vec::new(),
            service_address: rc.service_address,
            pods: rc.pods,
            endpoint_pod_names: rc.endpoint_pod_names,
        });
    }
    let source = match (&rc.manifests, &rc.kubeconfig) {
        (Some(dir), Some(_)) => {
            return Err(cx.err(
                key("manifests"),
                dir,
                "cannot be used together with kubeconfig: pick one source",
            ));
        }
        (Some(dir), None) => {
            let resolved = cx.resolve(dir);
            if !resolved.is_dir() {
                return Err(cx.err(key("manifests"), dir, "is not a folder"));
            }
            Source::Manifests(resolved)
        }
        (None, Some(kc)) => {
            let resolved = cx.resolve(kc);
            check_kubeconfig(cx, i, kc, &resolved, rc.context.as_deref())?;
            Source::Kube {
                kubeconfig: Some(resolved),
                context: rc.context.clone(),
            }
        }
        (None, None) => {
            // In-cluster or $KUBECONFIG: a named context must exist in $KUBECONFIG.
            if let Some(ctx) = &rc.context {
                match std::env::var_os("KUBECONFIG") {
                    Some(kc) if !kc.is_empty() => {
                        let kc = PathBuf::from(kc);
                        check_kubeconfig(cx, i, &kc, &kc, Some(ctx))?;
                    }
                    _ => {
                        return Err(cx.err(
                            key("context"),
                            ctx,
                            "needs a kubeconfig: set clusters[].kubeconfig or $KUBECONFIG",
                        ));
                    }
                }
            }
            Source::Kube {
                kubeconfig: None,
                context: rc.context.clone(),
            }
        }
    };
    Ok(ClusterSettings {
        name: rc.name.clone(),
        zone,
        source,
        namespaces: rc.namespaces.clone(),
        service_address: rc.service_address,
        pods: rc.pods,
        endpoint_pod_names: rc.endpoint_pod_names,
    })
}

fn check_kubeconfig(
    cx: &Ctx<'_>,
    i: usize,
    shown: &Path,
    path: &Path,
    context: Option<&str>,
) -> Result<(), ConfigError> {
    let key = format!("clusters[{i}].kubeconfig");
    if !path.is_file() {
        return Err(cx.err(key, shown, "does not exist or is not a file"));
    }
    let kc = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| cx.err(key, shown, format!("is not a valid kubeconfig: {e}")))?;
    if let Some(ctx) = context
        && !kc.contexts.iter().any(|c| c.name == ctx)
    {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(cx.err(
            format!("clusters[{i}].context"),
            ctx,
            format!("is not a context in {} (it has {known:?})", shown.display()),
        ));
    }
    Ok(())
}

fn check_cluster_names_and_zones(
    cx: &Ctx<'_>,
    clusters: &[ClusterSettings],
) -> Result<(), ConfigError> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, c) in clusters.iter().enumerate() {
        if let Some(first) = names.insert(&c.name, i) {
            return Err(cx.err(
                format!("clusters[{i}].name"),
                &c.name,
                format!("is already used by clusters[{first}]"),
            ));
        }
    }
    // Two clusters may share a zone only when the namespace label picks one
    // of them unambiguously (design.md §1): both restricted, and disjoint.
    for (i, c) in clusters.iter().enumerate() {
        for (j, other) in clusters.iter().enumerate().take(i) {
            if c.zone != other.zone {
                continue;
            }
            if c.namespaces.is_empty() || other.namespaces.is_empty() {
                let unrestricted = if c.namespaces.is_empty() { i } else { j };
                return Err(cx.err(
                    format!("clusters[{unrestricted}].namespaces"),
                    "[] (all namespaces)",
                    format!(
                        "overlaps: clusters[{j}] ({}) and clusters[{i}] ({}) share zone {} so each must list its own namespaces",
                        other.name, c.name, c.zone
                    ),
                ));
            }
            let a: BTreeSet<&String> = other.namespaces.iter().collect();
            if let Some(ns) = c.namespaces.iter().find(|ns| a.contains(ns)) {
                return Err(cx.err(
                    format!("clusters[{i}].namespaces"),
                    &c.namespaces,
                    format!("overlaps clusters[{j}] ({}) in shared zone {}: namespace {ns:?} is in both", other.name, c.zone),
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn duration(
    cx: &Ctx<'_>,
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some("0") => Ok(Duration::ZERO),
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| cx.err(key, s, format!("is not a duration like 30s or 1h: {e}"))),
    }
}

fn clusterset(
    cx: &Ctx<'_>,
    cs: &RawClusterset,
    clusters: &[ClusterSettings],
) -> Result<ClustersetSettings, ConfigError> {
    let zone = zone_name(cx, "clusterset.zone".to_owned(), &cs.zone)?;
    if let Some(local) = &cs.local
        && !clusters.iter().any(|c| &c.name == local)
    {
        let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        return Err(cx.err(
            "clusterset.local",
            local,
            format!("is not a cluster name (clusters are {names:?})"),
        ));
    }
    Ok(ClustersetSettings {
        zone,
        local: cs.local.clone(),
        policy: cs.policy,
        stale_after: duration(
            cx,
            "clusterset.stale_after",
            cs.stale_after.as_deref(),
            Duration::from_secs(30),
        )?,
        all_down: cs.all_down,
    })
}

fn forward_zone(cx: &Ctx<'_>, i: usize, f: &RawForward) -> Result<ForwardSettings, ConfigError> {
    let zone = zone_name(cx, format!("forward[{i}].zone"), &f.zone)?;
    if f.upstreams.is_empty() {
        return Err(cx.err(
            format!("forward[{i}].upstreams"),
            "[]",
            "must list at least one upstream",
        ));
    }
    let mut upstreams = Vec::with_capacity(f.upstreams.len());
    for (j, u) in f.upstreams.iter().enumerate() {
        upstreams.push(parse_upstream(u).ok_or_else(|| {
            cx.err(
                format!("forward[{i}].upstreams[{j}]"),
                u,
                "is not IP, IP:port or tls://IP:port#server-name",
            )
        })?);
    }
    if f.max_fails == 0 {
        return Err(cx.err(
            format!("forward[{i}].max_fails"),
            f.max_fails,
            "must be at least 1",
        ));
    }
    let tls = upstream_tls(
        cx,
        &format!("forward[{i}]"),
        [&f.tls_ca, &f.tls_cert, &f.tls_key],
    )?;
    Ok(ForwardSettings {
        zone,
        upstreams,
        policy: f.policy,
        max_fails: f.max_fails,
        stale_for: duration(
            cx,
            &format!("forward[{i}].stale_for"),
            f.stale_for.as_deref(),
            Duration::from_secs(3600),
        )?,
        tls,
    })
}

pub(super) fn parse_upstream(s: &str) -> Option<Upstream> {
    fn addr(s: &str, default_port: u16) -> Option<SocketAddr> {
        s.parse::<SocketAddr>().ok().or_else(|| {
            s.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, default_port))
        })
    }
    match s.strip_prefix("tls://") {
        Some(rest) => {
            let (a, name) = match rest.split_once('#') {
                Some((a, n)) if !n.is_empty() => (a, n.to_owned()),
                Some(_) => return None,
                None => (rest, String::new()),
            };
            let addr = addr(a, 853)?;
            let server_name = if name.is_empty() {
                addr.ip().to_string()
            } else {
                name
            };
            Some(Upstream::Tls { addr, server_name })
        }
        None => addr(s, 53).map(Upstream::Plain),
    }
}

fn check_zone_overlaps(
    cx: &Ctx<'_>,
    clusters: &[ClusterSettings],
    clusterset: Option<&ClustersetSettings>,
    forward: &[ForwardSettings],
) -> Result<(), ConfigError> {
    let cluster_zones: BTreeSet<&WireName> = clusters.iter().map(|c| &c.zone).collect();
    if let Some(cs) = clusterset
        && cluster_zones.contains(&cs.zone)
    {
        return Err(cx.err(
            "clusterset.zone",
            cs.zone.to_string(),
            "is also a cluster zone",
        ));
    }
    let mut seen: BTreeSet<&WireName> = BTreeSet::new();
    for (i, f) in forward.iter().enumerate() {
        if cluster_zones.contains(&f.zone) || clusterset.is_some_and(|cs| cs.zone == f.zone) {
            return Err(cx.err(
                format!("forward[{i}].zone"),
                f.zone.to_string(),
                "is served by crossdns itself; it cannot also be forwarded",
            ));
        }
        if !seen.insert(&f.zone) {
            return Err(cx.err(
                format!("forward[{i}].zone"),
                f.zone.to_string(),
                "is forwarded twice",
            ));
        }
    }
    Ok(())
}

/// The `tls_ca`, `tls_cert` and `tls_key` of an upstream list (`prefix` is
/// its key, `forward[0]`): files that must exist; cert and key go together.
pub(super) fn upstream_tls(
    cx: &Ctx<'_>,
    prefix: &str,
    [ca, cert, key]: [&Option<PathBuf>; 3],
) -> Result<UpstreamTls, ConfigError> {
    let file = |k: &str, p: &PathBuf| -> Result<PathBuf, ConfigError> {
        let resolved = cx.resolve(p);
        if resolved.is_file() {
            Ok(resolved)
        } else {
            Err(cx.err(format!("{prefix}.{k}"), p, "is not a readable file"))
        }
    };
    let ca = ca.as_ref().map(|p| file("tls_ca", p)).transpose()?;
    let client_cert = match (cert, key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((file("tls_cert", c)?, file("tls_key", k)?)),
        (Some(c), None) => {
            return Err(cx.err(format!("{prefix}.tls_cert"), c, "needs tls_key too"));
        }
        (None, Some(k)) => {
            return Err(cx.err(format!("{prefix}.tls_key"), k, "needs tls_cert too"));
        }
    };
    Ok(UpstreamTls { ca, client_cert })
}
