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
        ..Default::default()
    };
    let sim = kubesim::Sim::start(config)
        .await
        .context("starting kubesim")?;
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
