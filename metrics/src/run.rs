//! Wiring: client, HTTP server, leader election, then the controller, until SIGTERM or the loss
//! of the Lease.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use operator::admin;
use operator::leadership;

use crate::cli::Cli;
use crate::observe::FetchMetrics;
use crate::prometheus::Prometheus;

/// Runs until SIGTERM or Ctrl-C (`Ok`), or until the controller stops or leadership is lost
/// (`Err`: a standby takes over while this replica restarts).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    tracing::info!(
        leader_elect = cli.election.leader_elect,
        lease_namespace = %cli.election.lease_namespace,
        "starting"
    );
    let client = cli.client.client().await?;
    let metrics = Arc::new(FetchMetrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = admin::bind(cli.server.address)
        .await
        .with_context(|| format!("binding {}", cli.server.address))?;
    tracing::info!(address = %listener.local_addr()?, "serving KeptnMetric values and metrics");
    let encode = {
        let metrics = metrics.clone();
        Arc::new(move || metrics.encode())
    };
    let app = crate::server::router(client.clone(), encode, ready.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    });

    let identity = cli.election.identity();
    let held = if cli.election.leader_elect {
        let config = cli.election.lease_config(&identity);
        tracing::info!(lease = %config.name, identity = %identity, "waiting for leadership");
        tokio::select! {
            held = leadership::acquire(client.clone(), config, &ready) => Some(held),
            _ = shared::shutdown::signal() => return Ok(()),
        }
    } else {
        None
    };
    let prometheus = Prometheus::new().context("building the HTTP clients of the providers")?;
    let controller = crate::controller::run(client, identity, prometheus, metrics, ready);
    Ok(leadership::serve(controller, "controller", held).await?)
}
