//! Wiring: Kubernetes client, admin endpoints, leader election, then every controller, until
//! SIGTERM or the loss of the Lease.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use kube::api::ListParams;
use kube::{Api, Client};
use lifecycle::config::RuntimeConfig;
use lifecycle::execution::RunnerImages;
use shared::crd::KeptnConfig;

use operator::admin;
use operator::leadership;

use crate::cli::Cli;
use crate::controllers::{self, Settings};
use crate::observability::{Metrics, Observability, Traces};

/// Runs the gate until SIGTERM or Ctrl-C (`Ok`), or until the controllers stop or leadership
/// is lost (`Err`: a standby replica takes over while this one restarts). Queued spans are
/// flushed either way.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let traces = Arc::new(Traces::new(
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok(),
    ));
    let result = serve(cli, traces.clone()).await;
    let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    result
}

async fn serve(cli: Cli, traces: Arc<Traces>) -> anyhow::Result<()> {
    tracing::info!(
        leader_elect = cli.election.leader_elect,
        lease_namespace = %cli.election.lease_namespace,
        keptn_namespace = %cli.lifecycle.keptn_namespace,
        promotion_tasks_enabled = cli.lifecycle.promotion_tasks_enabled,
        kubernetes_events = ?cli.lifecycle.kubernetes_events,
        "starting"
    );
    let client = cli.client.client().await?;
    let metrics = Arc::new(Metrics::new());
    metrics.lifecycle_active.inc();
    let ready = Arc::new(AtomicBool::new(false));
    let listener = admin::bind(cli.admin.admin_address)
        .await
        .with_context(|| format!("binding {}", cli.admin.admin_address))?;
    tracing::info!(address = %listener.local_addr()?, "admin server listening");
    let encode = {
        let metrics = metrics.clone();
        Arc::new(move || metrics.encode())
    };
    tokio::spawn(admin::serve(listener, encode, ready.clone()));
    let keptn_address = cli.admin.keptn_metrics_address();
    let keptn_listener = admin::bind(keptn_address)
        .await
        .with_context(|| format!("binding the Keptn metrics port {keptn_address}"))?;
    tracing::info!(address = %keptn_listener.local_addr()?, "Keptn metrics listening");
    let encode_keptn = {
        let metrics = metrics.clone();
        Arc::new(move || metrics.encode_keptn())
    };
    tokio::spawn(admin::serve_metrics(keptn_listener, encode_keptn));

    let identity = cli.election.identity();
    let leadership = if cli.election.leader_elect {
        let config = cli.election.lease_config(&identity);
        tracing::info!(lease = %config.name, identity = %identity, "waiting for leadership");
        tokio::select! {
            held = leadership::acquire(client.clone(), config, &ready) => Some(held),
            _ = shared::shutdown::signal() => return Ok(()),
        }
    } else {
        None
    };
    let held = leadership;
    metrics.leader.set(1);

    let config = Arc::new(RwLock::new(RuntimeConfig::default()));
    if let Err(e) = initial_config(&client, &config, &traces).await {
        // Hand the Lease back so that a standby need not wait for it to expire.
        if let Some(held) = held {
            held.release().await;
        }
        return Err(e);
    }
    // Tracing from OTEL_EXPORTER_OTLP_ENDPOINT when no KeptnConfig names a collector (A21).
    let collector = config
        .read()
        .map(|c| c.otel_collector_url.clone())
        .unwrap_or_default();
    traces.configure(&collector);
    let (config_changed, _) = tokio::sync::watch::channel(());
    let settings = Settings {
        keptn_namespace: cli.lifecycle.keptn_namespace.clone(),
        promotion_enabled: cli.lifecycle.promotion_tasks_enabled,
        identity,
        sweep_interval: cli.lifecycle.sweep_interval(),
        retained_versions: cli.lifecycle.retained_versions,
        images: RunnerImages::from_env(),
    };
    let observability = Observability::new(
        &client,
        &settings.identity,
        cli.lifecycle.kubernetes_events,
        config.clone(),
        metrics,
        traces,
    );
    let controllers = controllers::run(
        client.clone(),
        settings,
        config,
        config_changed,
        observability,
        ready,
    );
    let migration = tokio::spawn(crate::storage::migrate(client.clone()));
    let served = leadership::serve(controllers, "controllers", held).await;
    migration.abort();
    Ok(served?)
}

/// Applies the newest existing KeptnConfig before any controller decides with defaults.
async fn initial_config(
    client: &Client,
    config: &RwLock<RuntimeConfig>,
    traces: &Traces,
) -> anyhow::Result<()> {
    let api: Api<KeptnConfig> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .context("listing KeptnConfigs")?;
    if let Some(newest) = list.items.iter().max_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    }) {
        controllers::apply_config(config, traces, newest);
    }
    Ok(())
}
