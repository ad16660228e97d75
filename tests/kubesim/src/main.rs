//! `kubesim serve`: run the emulated API server until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kubesim",
    about = "An in-process Kubernetes API server emulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API over plain HTTP and write a kubeconfig for kubectl and kube-rs.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, env = "KUBESIM_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig.
    #[arg(long, env = "KUBESIM_KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Map a webhook service to a loopback address: NAMESPACE/NAME=127.0.0.1:PORT (repeatable).
    #[arg(
        long = "service",
        value_name = "NAMESPACE/NAME=ADDR",
        env = "KUBESIM_SERVICES",
        value_delimiter = ','
    )]
    services: Vec<String>,
    /// Number of Node objects at start.
    #[arg(long, env = "KUBESIM_NODES", default_value_t = 1)]
    nodes: usize,
    /// Run the simulated control plane (workload controllers, scheduler, kubelets):
    /// `--controllers=false` serves the API alone.
    #[arg(long, env = "KUBESIM_CONTROLLERS", default_value_t = true, action = clap::ArgAction::Set)]
    controllers: bool,
    /// Controller timings: `real` (10 s back-offs, 500 ms container start) or `fast` (tests, demos).
    #[arg(long, env = "KUBESIM_TIMING", default_value = "real", value_parser = ["real", "fast"])]
    timing: String,
    /// How many changes watches can resume from (older resourceVersions get 410 Expired).
    #[arg(long, env = "KUBESIM_WATCH_HISTORY", default_value_t = 10_000)]
    watch_history: usize,
    /// Enforce RBAC: the kubeconfig then carries a `system:masters` bearer token, requests
    /// with other or no tokens are authorized by the stored Roles and bindings.
    #[arg(long, env = "KUBESIM_RBAC", default_value_t = false)]
    rbac: bool,
    /// Write a kubeconfig whose token identifies a ServiceAccount: NAMESPACE/NAME=FILE
    /// (repeatable).
    #[arg(
        long = "service-account-kubeconfig",
        value_name = "NAMESPACE/NAME=FILE",
        env = "KUBESIM_SERVICE_ACCOUNT_KUBECONFIGS",
        value_delimiter = ','
    )]
    service_account_kubeconfigs: Vec<String>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

fn parse_service(s: &str) -> anyhow::Result<(String, String, SocketAddr)> {
    let (svc, addr) = s
        .split_once('=')
        .with_context(|| format!("--service {s:?}: expected NAMESPACE/NAME=ADDR"))?;
    let (ns, name) = svc
        .split_once('/')
        .with_context(|| format!("--service {s:?}: expected NAMESPACE/NAME=ADDR"))?;
    if ns.is_empty() || name.is_empty() {
        bail!("--service {s:?}: namespace and name must not be empty");
    }
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("--service {s:?}: bad address"))?;
    Ok((ns.to_string(), name.to_string(), addr))
}

fn parse_service_account(s: &str) -> anyhow::Result<(String, String, PathBuf)> {
    let usage = || format!("--service-account-kubeconfig {s:?}: expected NAMESPACE/NAME=FILE");
    let (sa, file) = s.split_once('=').with_context(usage)?;
    let (ns, name) = sa.split_once('/').with_context(usage)?;
    if ns.is_empty() || name.is_empty() || file.is_empty() {
        bail!("{}", usage());
    }
    Ok((ns.to_string(), name.to_string(), PathBuf::from(file)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .init();
    let services = args
        .services
        .iter()
        .map(|s| parse_service(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let service_accounts = args
        .service_account_kubeconfigs
        .iter()
        .map(|s| parse_service_account(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = kubesim::SimConfig {
        listen: args.listen,
        kubeconfig: Some(args.kubeconfig),
        nodes: args.nodes,
        controllers: args.controllers,
        controllers_config: Some(if args.timing == "fast" {
            kubesim::controllers::ControllersConfig::fast(args.nodes)
        } else {
            kubesim::controllers::ControllersConfig {
                nodes: args.nodes,
                ..Default::default()
            }
        }),
        watch_history: args.watch_history,
        services,
        rbac: args.rbac,
        ..Default::default()
    };
    let sim = kubesim::Sim::start(config)
        .await
        .context("starting kubesim")?;
    for (ns, name, file) in &service_accounts {
        sim.write_service_account_kubeconfig(ns, name, file)
            .with_context(|| format!("writing the kubeconfig of {ns}/{name}"))?;
    }
    println!(
        "kubesim serving at {} (kubeconfig {})",
        sim.url,
        sim.kubeconfig.display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    sim.shutdown().await;
    Ok(())
}
