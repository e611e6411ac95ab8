//! `fake-apiserver` binary: serve a manifests directory and write a kubeconfig, until Ctrl-C or
//! SIGTERM. Optionally listen on another address than loopback and follow the folder's changes.

mod standalone;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use fake_apiserver::FakeApiServer;

struct Args {
    manifests: Option<PathBuf>,
    watch_manifests: bool,
    listen: Option<SocketAddr>,
    kubeconfig_out: PathBuf,
    context: String,
}

const USAGE: &str =
    "usage: fake-apiserver [--manifests DIR [--watch-manifests]] [--listen IP:PORT] \
--kubeconfig-out PATH [--context NAME]

  --manifests DIR      apply every *.yaml, *.yml, *.json under DIR at start
  --watch-manifests    keep following DIR: a changed file is applied again, an object
                       whose file went away is deleted (scanned every 100 ms)
  --listen IP:PORT     also accept on IP:PORT (relayed to the loopback listener); the
                       kubeconfig then points there, with tls-server-name: localhost
  --kubeconfig-out     where to write the kubeconfig (written once the server is ready)
  --context NAME       its cluster/user/context name (default: fake)";

fn parse_args() -> anyhow::Result<Args> {
    let mut manifests = None;
    let mut watch_manifests = false;
    let mut listen = None;
    let mut kubeconfig_out = None;
    let mut context = "fake".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--watch-manifests" => {
                watch_manifests = true;
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))?,
        };
        match flag.as_str() {
            "--manifests" => manifests = Some(PathBuf::from(value)),
            "--listen" => {
                listen = Some(value.parse().with_context(|| {
                    format!("--listen {value:?} is not IP:PORT (e.g. 10.200.1.2:6443)")
                })?);
            }
            "--kubeconfig-out" => kubeconfig_out = Some(PathBuf::from(value)),
            "--context" => context = value,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if watch_manifests && manifests.is_none() {
        bail!("--watch-manifests needs --manifests DIR\n{USAGE}");
    }
    let kubeconfig_out =
        kubeconfig_out.with_context(|| format!("--kubeconfig-out is required\n{USAGE}"))?;
    Ok(Args {
        manifests,
        watch_manifests,
        listen,
        kubeconfig_out,
        context,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let server = Arc::new(FakeApiServer::start().await?);
    match (&args.manifests, args.watch_manifests) {
        (Some(dir), true) => {
            standalone::Follower::start(&server, dir)?.spawn(Arc::clone(&server));
        }
        (Some(dir), false) => server.apply_dir(dir)?,
        (None, _) => {}
    }
    let (url, kubeconfig) = match args.listen {
        Some(listen) => {
            let bound = standalone::relay(listen, server.addr()).await?;
            (
                format!("https://{bound}"),
                standalone::kubeconfig_at(&server, &args.context, bound)?,
            )
        }
        None => (server.url(), server.kubeconfig(&args.context)),
    };
    // Written last, so a caller may wait for the file to know the server is ready.
    std::fs::write(&args.kubeconfig_out, kubeconfig)
        .with_context(|| format!("writing {}", args.kubeconfig_out.display()))?;
    tracing::info!(
        %url,
        kubeconfig = %args.kubeconfig_out.display(),
        context = %args.context,
        objects_rv = server.resource_version(),
        "fake apiserver ready"
    );
    wait_for_stop().await?;
    tracing::info!(stats = ?server.stats(), open_watches = ?server.open_watches(), "shutting down");
    Ok(())
}

/// Ctrl-C or SIGTERM (what scripts and service managers send).
async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}
