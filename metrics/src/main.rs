//! `portcullis-metrics`: fills `KeptnMetric.status` from Prometheus-compatible providers, so
//! KeptnEvaluations work without Keptn's metrics operator. Only the Lease holder fetches.

use std::process::ExitCode;

use clap::Parser;
use metrics::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.log.init() {
        eprintln!("portcullis-metrics: {e}");
        return ExitCode::FAILURE;
    }
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let result = metrics::run::run(cli).await;
    operator::leadership::exit_code(result)
}
