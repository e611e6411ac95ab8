//! `fake-apiserver` binary: serve a manifests directory and write a kubeconfig, until Ctrl-C.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use fake_apiserver::FakeApiServer;

struct Args {
    manifests: Option<PathBuf>,
    kubeconfig_out: PathBuf,
    context: String,
}

const USAGE: &str =
    "usage: fake-apiserver [--manifests DIR] --kubeconfig-out PATH [--context NAME]";

fn parse_args() -> anyhow::Result<Args> {
    let mut manifests = None;
    let mut kubeconfig_out = None;
    let mut context = "fake".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))?,
        };
        match flag.as_str() {
            "--manifests" => manifests = Some(PathBuf::from(value)),
            "--kubeconfig-out" => kubeconfig_out = Some(PathBuf::from(value)),
            "--context" => context = value,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let kubeconfig_out =
        kubeconfig_out.with_context(|| format!("--kubeconfig-out is required\n{USAGE}"))?;
    Ok(Args {
        manifests,
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
    let server = FakeApiServer::start().await?;
    if let Some(dir) = &args.manifests {
        server.apply_dir(dir)?;
    }
    server
        .write_kubeconfig(&args.kubeconfig_out, &args.context)
        .with_context(|| format!("writing {}", args.kubeconfig_out.display()))?;
    tracing::info!(
        url = %server.url(),
        kubeconfig = %args.kubeconfig_out.display(),
        context = %args.context,
        objects_rv = server.resource_version(),
        "fake apiserver ready"
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!(stats = ?server.stats(), "shutting down");
    Ok(())
}
