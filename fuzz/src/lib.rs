//! Fuzz checks for crossdns: one module per libFuzzer target (the driver in
//! `fuzz_targets/NAME.rs` only calls `NAME::check`), plus what they share.
//! The repo's `tests/fuzz_regressions.rs` includes this file by path and
//! feeds the seeds and every saved crash input through the same checks
//! under plain `cargo test`; so paths here are `super::`, never `crate::`.
//!
//! A new target is one module here with `pub fn check(data: &[u8])`, one
//! driver file, one `[[bin]]` in Cargo.toml, a seeds/NAME folder, and a
//! line in tests/fuzz_regressions.rs (README "Fuzzing").

pub mod apiserver_json;
pub mod config_yaml;
pub mod manifests_yaml;
pub mod query;
pub mod reply;
pub mod transfer_response;
pub mod upstream_reply;
pub mod world;
