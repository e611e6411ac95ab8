//! The YAML schema of design.md §2, parsed strictly (`deny_unknown_fields`).
//! Only shapes live here; every rule about values is in `validate`.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub dns: RawDns,
    pub allow: Option<Vec<String>>,
    pub admin: Option<RawAdmin>,
    pub clusters: Vec<RawCluster>,
    pub clusterset: Option<RawClusterset>,
    #[serde(default)]
    pub forward: Vec<RawForward>,
    #[serde(default)]
    pub tsig_keys: Vec<RawTsigKey>,
    pub transfer: Option<RawTransfer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// The addresses `ns.dns.<zone>` answers (the apex NS target).
    #[serde(default)]
    pub advertise: Vec<String>,
    #[serde(default)]
    pub tls_listen: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
}

impl Default for RawDns {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            ttl: default_ttl(),
            advertise: Vec::new(),
            tls_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

fn default_listen() -> Vec<String> {
    vec!["0.0.0.0:53".to_owned()]
}

fn default_ttl() -> u32 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: String,
    /// After SIGTERM, keep answering this long with `/readyz` at 503.
    pub lameduck: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: String,
    pub zone: String,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    pub manifests: Option<PathBuf>,
    #[serde(default)]
    pub service_address: ServiceAddress,
    #[serde(default)]
    pub pods: PodsMode,
    #[serde(default)]
    pub endpoint_pod_names: bool,
    /// The zone as another DNS server serves it (design.md §7).
    pub primary: Option<RawPrimary>,
}

/// Which addresses answer `<svc>.<ns>.svc.<zone>` for a Service with a VIP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceAddress {
    /// The ClusterIP(s): reachable only inside that cluster.
    #[default]
    ClusterIp,
    /// The ready endpoint IPs (needs routable pod networks).
    Endpoints,
    /// `status.loadBalancer.ingress` IPs, or a CNAME to an ingress hostname.
    LoadBalancer,
}

/// Kubernetes DNS spec pod records (`<a-b-c-d>.<ns>.pod.<zone>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodsMode {
    #[default]
    Disabled,
    /// Answer any well-formed dashed IP without checking (CoreDNS `pods insecure`).
    Insecure,
    /// Answer only when a pod with that IP exists in that namespace (watches Pods).
    Verified,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterset {
    pub zone: String,
    pub local: Option<String>,
    #[serde(default)]
    pub policy: ClustersetPolicy,
    pub stale_after: Option<String>,
    #[serde(default)]
    pub all_down: AllDown,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClustersetPolicy {
    #[default]
    LocalFirst,
    Failover,
    RoundRobin,
    Weighted,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllDown {
    #[default]
    Servfail,
    Nxdomain,
    LastHealthy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    pub zone: String,
    pub upstreams: Vec<String>,
    #[serde(default)]
    pub policy: ForwardPolicy,
    #[serde(default = "default_max_fails")]
    pub max_fails: u32,
    pub stale_for: Option<String>,
    /// DoT upstreams: trust this CA bundle instead of the system roots.
    pub tls_ca: Option<PathBuf>,
    /// DoT upstreams: present this client certificate (mutual TLS).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

fn default_max_fails() -> u32 {
    2
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardPolicy {
    #[default]
    Sequential,
    RoundRobin,
    Random,
}

/// `tsig_keys[]` (RFC 8945).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTsigKey {
    pub name: String,
    pub algorithm: String,
    pub secret_file: PathBuf,
}

/// `transfer`: crossdns as a primary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransfer {
    #[serde(default)]
    pub allow: Vec<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub notify: Vec<String>,
    pub catalog: Option<String>,
}

/// `clusters[].primary`: the zone transferred from another server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrimary {
    pub servers: Vec<String>,
    pub key: Option<String>,
    pub poll: Option<String>,
    /// `tls://` servers: trust this CA bundle instead of the system roots.
    pub tls_ca: Option<PathBuf>,
    /// `tls://` servers: present this client certificate (mutual TLS).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}
