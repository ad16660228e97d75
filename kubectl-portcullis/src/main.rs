//! `kubectl-portcullis`: on the PATH, `kubectl portcullis …` runs it.

use std::process::ExitCode;

use clap::Parser;
use kubectl_portcullis::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match &cli.command {
        Command::Explain(args) => kubectl_portcullis::explain::run(args, &cli.global).await,
        Command::Status(args) => kubectl_portcullis::status::run(args, &cli.global).await,
        Command::Why(args) => kubectl_portcullis::why::run(args, &cli.global).await,
        Command::Retry(args) => kubectl_portcullis::retry::run(args, &cli.global).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
