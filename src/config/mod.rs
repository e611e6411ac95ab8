//! Configuration: the strict YAML schema (`raw`), turned by `validate` into
//! typed `Settings` that the rest of crossdns trusts. Reads files; starts nothing.

pub mod kubeconfig;
mod network;
mod raw;
mod transfer;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use raw::{AllDown, ClustersetPolicy, ForwardPolicy, PodsMode, ServiceAddress};
pub use transfer::{PrimarySettings, TransferSettings, TsigAlgorithm, TsigKey};

use crate::dnsname::WireName;

/// Everything that can be wrong with a config file. The message names the key
/// and the value, so the operator can fix it without reading code.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {key}: {value} {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        value: String,
        reason: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub dns: DnsSettings,
    pub allow: AllowList,
    pub admin: Option<SocketAddr>,
    /// `admin.lameduck`: after SIGTERM, answer this long with `/readyz` at
    /// 503 before closing the sockets (0: close at once).
    pub lameduck: Duration,
    pub clusters: Vec<ClusterSettings>,
    pub clusterset: Option<ClustersetSettings>,
    pub forward: Vec<ForwardSettings>,
    /// `tsig_keys` (design.md §7).
    pub tsig_keys: Vec<TsigKey>,
    /// `transfer`: crossdns as a primary; `None` refuses every transfer.
    pub transfer: Option<TransferSettings>,
}

#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub listen: Vec<SocketAddr>,
    pub ttl: u32,
    /// What `ns.dns.<zone>` answers; empty: NODATA.
    pub advertise: Vec<IpAddr>,
    pub tls: Option<TlsSettings>,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub listen: Vec<SocketAddr>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub name: String,
    pub zone: WireName,
    pub source: Source,
    /// Empty means every namespace.
    pub namespaces: Vec<String>,
    pub service_address: ServiceAddress,
    pub pods: PodsMode,
    pub endpoint_pod_names: bool,
}

/// Where a cluster's objects come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A live apiserver. `kubeconfig: None` means in-cluster or `$KUBECONFIG`.
    Kube {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
    /// A folder of Kubernetes YAML, re-read when it changes.
    Manifests(PathBuf),
    /// The zone as another DNS server serves it, by zone transfer.
    Primary(PrimarySettings),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Kube {
                kubeconfig,
                context,
            } => {
                match kubeconfig {
                    Some(p) => write!(f, "kubeconfig {}", p.display())?,
                    None => f.write_str("in-cluster/$KUBECONFIG")?,
                }
                if let Some(c) = context {
                    write!(f, " (context {c})")?;
                }
                Ok(())
            }
            Source::Manifests(p) => write!(f, "manifests {}", p.display()),
            Source::Primary(p) => {
                let servers: Vec<String> = p.servers.iter().map(ToString::to_string).collect();
                write!(f, "primary {}", servers.join(","))?;
                if let Some(k) = &p.key {
                    write!(f, " (key {})", k.name)?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClustersetSettings {
    pub zone: WireName,
    pub local: Option<String>,
    pub policy: ClustersetPolicy,
    pub stale_after: Duration,
    pub all_down: AllDown,
}

#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub zone: WireName,
    pub upstreams: Vec<Upstream>,
    pub policy: ForwardPolicy,
    pub max_fails: u32,
    pub stale_for: Duration,
    pub tls: UpstreamTls,
}

/// How a forward zone's DoT upstreams are trusted and authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Trusted CA bundle; `None` means the system's roots.
    pub ca: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Plain(SocketAddr),
    Tls {
        addr: SocketAddr,
        server_name: String,
    },
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Plain(a) => write!(f, "{a}"),
            Upstream::Tls { addr, server_name } => write!(f, "tls://{addr}#{server_name}"),
        }
    }
}

/// Who may query. Everyone else gets REFUSED.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Loopback and the private ranges (RFC 1918, RFC 6598, RFC 4193): the
    /// default when `allow` is omitted, so a fresh install is never an open
    /// server on a public address.
    pub fn private_default() -> Self {
        let nets = [
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "::1/128",
            "fc00::/7",
        ];
        Self(nets.iter().filter_map(|n| n.parse().ok()).collect())
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }
}

impl Settings {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Parses and validates config text; `path` names the file in errors and
    /// anchors relative paths.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        validate::validate(raw, path)
    }

    /// The zone table `crossdns check` prints.
    pub fn zone_table(&self) -> String {
        let mut rows = vec![[
            "ZONE".to_owned(),
            "KIND".to_owned(),
            "SOURCE".to_owned(),
            "NAMESPACES".to_owned(),
            "DETAILS".to_owned(),
        ]];
        for c in &self.clusters {
            rows.push([
                c.zone.to_string(),
                format!("cluster {}", c.name),
                c.source.to_string(),
                if c.namespaces.is_empty() {
                    "all".to_owned()
                } else {
                    c.namespaces.join(",")
                },
                format!(
                    "service_address={} pods={} endpoint_pod_names={}",
                    kebab(c.service_address),
                    kebab(c.pods),
                    c.endpoint_pod_names
                ),
            ]);
        }
        if let Some(cs) = &self.clusterset {
            rows.push([
                cs.zone.to_string(),
                "clusterset".to_owned(),
                format!("{} clusters", self.clusters.len()),
                "all".to_owned(),
                format!(
                    "policy={} local={} stale_after={}s all_down={}",
                    kebab(cs.policy),
                    cs.local.as_deref().unwrap_or("-"),
                    cs.stale_after.as_secs(),
                    kebab(cs.all_down)
                ),
            ]);
        }
        for fw in &self.forward {
            rows.push([
                fw.zone.to_string(),
                "forward".to_owned(),
                fw.upstreams
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                "-".to_owned(),
                format!(
                    "policy={} max_fails={} stale_for={}s",
                    kebab(fw.policy),
                    fw.max_fails,
                    fw.stale_for.as_secs()
                ),
            ]);
        }
        let mut widths = [0usize; 5];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let mut out = String::new();
        for row in &rows {
            let line = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The config spelling of an enum value (`cluster-ip`), from its Debug name.
fn kebab(value: impl fmt::Debug) -> String {
    let name = format!("{value:?}");
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests;
