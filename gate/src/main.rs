//! `portcullis-gate`: the lifecycle controllers of Portcullis and the scheduling-gate release
//! (SPEC A11–A16, B §3–§4). Only the Lease holder runs controllers, so only the leader writes.

use std::process::ExitCode;

use clap::Parser;
use gate::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.log.init() {
        eprintln!("portcullis-gate: {e}");
        return ExitCode::FAILURE;
    }
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let result = gate::run::run(cli).await;
    operator::leadership::exit_code(result)
}
