//! crossdns: a DNS server for multi-cluster Kubernetes.
//!
//! Data flows one way (design.md §4):
//! `config` → `watch` (one task set per cluster) → `index` (per-cluster
//! snapshots) → `answer` (engine) → `listen` (UDP/TCP), with `forward` and
//! `admin` (health, metrics) beside them. `app` wires the stages in that
//! order. Below them all: `dnsname` (name representations), `grammar` (what
//! each name means, in both directions), `wire` (message bytes) and `zones`
//! (the typed zone table).

pub mod admin;
pub mod answer;
pub mod app;
pub mod cli;
pub mod config;
pub mod dnscode;
pub mod dnsname;
pub mod forward;
pub mod generate;
pub mod grammar;
pub mod index;
pub mod listen;
pub mod metrics;
pub mod tls;
pub mod transfer;
pub mod tsig;
pub mod watch;
pub mod wire;
pub mod zones;
