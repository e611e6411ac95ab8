//! The `crossdns` binary: logging, then the command line.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
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
