//! Flags as kubectl users expect them: `-n/--namespace`, `-A/--all-namespaces`, `--context`,
//! `--kubeconfig` (and `KUBECONFIG`), `-o table|json|yaml`, colour only on a terminal.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Explain manifests before applying them, see an app's lifecycle, ask a held pod why, retry.
#[derive(Debug, Parser)]
#[command(name = "kubectl-portcullis", bin_name = "kubectl portcullis", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Kubeconfig file (default: `KUBECONFIG`, else `~/.kube/config`).
    #[arg(long, env = "KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    /// Colour: `auto` colours only on a terminal (and never with `NO_COLOR` set).
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What the webhook will do with the workloads of manifests, and why (no cluster needed).
    Explain(crate::explain::ExplainArgs),
    /// An app's lifecycle: its current KeptnAppVersion, phases, workloads, checks, held pods.
    Status(crate::status::StatusArgs),
    /// Why a pod is held (or when and by whom it was released).
    Why(crate::why::WhyArgs),
    /// Start an app's or a workload's checks again.
    Retry(crate::retry::RetryArgs),
}

impl Global {
    /// A client for `--kubeconfig` / `--context`, and the namespace to use.
    pub async fn client(&self) -> anyhow::Result<(kube::Client, String)> {
        let options = kube::config::KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
            }
            None => kube::Config::from_kubeconfig(&options).await?,
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        Ok((kube::Client::try_from(config)?, namespace))
    }
}
