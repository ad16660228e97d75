//! `portcullis-webhook`: the admission webhook of Portcullis (SPEC A1–A10, A22, B §1).

use std::sync::Arc;

use clap::Parser;
use webhook::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init()?;
    // One provider for the server and the Kubernetes client, installed before either exists.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if rustls::crypto::CryptoProvider::install_default((*provider).clone()).is_err() {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    webhook::run::run(cli, provider).await
}
