//! `portcullis-webhook`: the admission webhook of Portcullis (SPEC A1–A10, A22, B §1).

use std::sync::Arc;

use clap::Parser;
use webhook::cli::{Cli, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log.log_filter)
        .map_err(|err| anyhow::anyhow!("invalid log filter: {err}"))?;
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Plain => logs.init(),
    }
    // One provider for the server and the Kubernetes client, installed before either exists.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if rustls::crypto::CryptoProvider::install_default((*provider).clone()).is_err() {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    webhook::run::run(cli, provider).await
}
