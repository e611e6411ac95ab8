//! crossdns: a DNS server for multi-cluster Kubernetes.
//!
//! Data flows one way (design.md §4):
//! `config` → `watch` (one task set per cluster) → `index` (per-cluster
//! snapshots) → `answer` (engine) → `listen` (UDP/TCP), with `admin`
//! (health, metrics) beside them. `app` wires the stages in that order.

pub mod admin;
pub mod answer;
pub mod app;
pub mod cli;
pub mod config;
pub mod dnscode;
pub mod dnsname;
pub mod forward;
pub mod generate;
pub mod index;
pub mod listen;
pub mod metrics;
pub mod tls;
pub mod watch;
