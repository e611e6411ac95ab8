//! The `crossdns` binary: logging, then the command line.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    limit_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CROSSDNS_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // One TLS provider for every client (kube) in the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    crossdns::cli::run(crossdns::cli::Cli::parse())
}

/// glibc gives every thread that allocates its own arena (up to 8 per core),
/// and each keeps its own free space. crossdns's index is built by a few
/// writer and parser threads and its authoritative query path does not
/// allocate, so most arenas only add slack: two per core keep resident
/// memory about 10 % lower (benches/memory.sh) while the forwarder's
/// allocating cache-hit path keeps its tail latency (with two arenas in
/// all, its p99 doubled in benches/forward.sh). `MALLOC_ARENA_MAX` in the
/// environment still wins.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = libc::c_int::try_from(2 * cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a glibc tunable; it is called before any
        // other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
