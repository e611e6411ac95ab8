//! The command line (design.md §3): parses arguments and dispatches.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::generate::{self, Address, GenerateError, StatefulSetRef, ZoneStyle};

#[derive(Debug, Parser)]
#[command(name = "crossdns", version, about = "DNS for multi-cluster Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the DNS server.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a config and print its zone table; exit 1 if it is wrong.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print config for the clusters' own DNS, or names for a StatefulSet.
    #[command(subcommand)]
    Generate(Generate),
}

/// `crossdns generate ...` (design.md §3). Output goes to stdout.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Corefile server blocks that send every other zone to crossdns.
    Coredns {
        #[arg(long)]
        config: PathBuf,
        /// The cluster whose CoreDNS this is (its own zone is not forwarded).
        #[arg(long)]
        cluster: String,
        /// crossdns as that cluster reaches it: IP, IP:PORT or tls://IP:PORT#server-name; repeat for replicas.
        #[arg(long, required = true)]
        address: Vec<String>,
        /// Forward over TCP only.
        #[arg(long)]
        force_tcp: bool,
    },
    /// The kube-dns ConfigMap whose stubDomains send every other zone to crossdns.
    #[command(name = "kube-dns")]
    KubeDns {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        cluster: String,
        /// crossdns as that cluster reaches it: IP or IP:PORT (kube-dns has no DNS over TLS); repeat for replicas.
        #[arg(long, required = true)]
        address: Vec<String>,
    },
    /// named.conf key and secondary zones following crossdns (every cluster zone and the catalog).
    Bind {
        #[arg(long)]
        config: PathBuf,
        /// crossdns as the secondary reaches it: IP or IP:PORT (default port 53).
        #[arg(long)]
        address: String,
    },
    /// knot.conf key, remote, acl and zone sections following crossdns.
    Knot {
        #[arg(long)]
        config: PathBuf,
        /// crossdns as the secondary reaches it: IP or IP:PORT (default port 53).
        #[arg(long)]
        address: String,
    },
    /// The --join list of every replica of a StatefulSet across clusters (reads the clusters live).
    Join {
        #[arg(long)]
        config: PathBuf,
        /// NAMESPACE/NAME, or */NAME for that name in every namespace.
        #[arg(long)]
        statefulset: String,
        /// Append `:PORT` to every name (e.g. 26257 for CockroachDB); bare names without it.
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, value_enum, default_value_t = ZoneStyle::PerCluster)]
        zone_style: ZoneStyle,
        /// How long each cluster may take to sync.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Certificate SANs for a StatefulSet's names, one per line (reads the clusters live).
    Sans {
        #[arg(long)]
        config: PathBuf,
        /// NAMESPACE/NAME, or */NAME for that name in every namespace.
        #[arg(long)]
        statefulset: String,
        /// How long each cluster may take to sync.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Generate(what) => match run_generate(what) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Check { config } => match Settings::load(&config) {
            Ok(settings) => {
                // Credentials that cannot work: one line per cluster, naming
                // it and the cause (the apiservers are not contacted).
                let problems: Vec<String> = settings
                    .clusters
                    .iter()
                    .filter_map(|c| {
                        crate::config::kubeconfig::credentials_problem(c)
                            .map(|why| format!("cluster {}: {why}", c.name))
                    })
                    .collect();
                if !problems.is_empty() {
                    for p in &problems {
                        eprintln!("error: {p}");
                    }
                    return ExitCode::FAILURE;
                }
                print!("{}", settings.zone_table());
                println!("config {} is valid", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => {
            let settings = match Settings::load(&config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(crate::app::serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs one generator; the text is what goes to stdout.
fn run_generate(what: Generate) -> anyhow::Result<String> {
    let load = |path: &PathBuf| Settings::load(path);
    Ok(match what {
        Generate::Coredns {
            config,
            cluster,
            address,
            force_tcp,
        } => {
            let addresses = parse_addresses(&address)?;
            generate::coredns(&load(&config)?, &cluster, &addresses, force_tcp)?
        }
        Generate::KubeDns {
            config,
            cluster,
            address,
        } => {
            let addresses = parse_addresses(&address)?;
            generate::kube_dns(&load(&config)?, &cluster, &addresses)?
        }
        Generate::Bind { config, address } => {
            let address: Address = address.parse()?;
            generate::bind(&load(&config)?, &address)?
        }
        Generate::Knot { config, address } => {
            let address: Address = address.parse()?;
            generate::knot(&load(&config)?, &address)?
        }
        Generate::Join {
            config,
            statefulset,
            port,
            zone_style,
            timeout,
        } => {
            let want: StatefulSetRef = statefulset.parse()?;
            let settings = load(&config)?;
            if zone_style == ZoneStyle::Clusterset && settings.clusterset.is_none() {
                // Fail before waiting on any cluster.
                return Err(GenerateError::NoClusterset.into());
            }
            let found = block_on(generate::collect(&settings, &want, timeout))??;
            generate::join(&settings, &want, &found, port, zone_style)?
        }
        Generate::Sans {
            config,
            statefulset,
            timeout,
        } => {
            let want: StatefulSetRef = statefulset.parse()?;
            let settings = load(&config)?;
            let found = block_on(generate::collect(&settings, &want, timeout))??;
            generate::sans(&settings, &want, &found)?
        }
    })
}

fn parse_addresses(list: &[String]) -> Result<Vec<Address>, GenerateError> {
    list.iter().map(|a| a.parse()).collect()
}

fn block_on<F: Future>(f: F) -> Result<F::Output, GenerateError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(GenerateError::Runtime)?;
    Ok(runtime.block_on(f))
}
