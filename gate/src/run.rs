//! Wiring: Kubernetes client, admin endpoints, leader election, then every controller, until
//! SIGTERM or the loss of the Lease.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use kube::api::ListParams;
use kube::{Api, Client};
use lifecycle::config::RuntimeConfig;
use lifecycle::execution::RunnerImages;
use shared::crd::KeptnConfig;

use crate::admin;
use crate::cli::{Cli, ClientArgs};
use crate::controllers::{self, Settings};
use crate::lease::{self, LeaseConfig};
use crate::observability::{Metrics, Observability, Traces};

/// How long the lease task gets to hand the Lease back after SIGTERM.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

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
        "starting"
    );
    let client = client(&cli.client).await?;
    let metrics = Arc::new(Metrics::new());
    metrics.lifecycle_active.inc();
    let ready = Arc::new(AtomicBool::new(false));
    let listener = admin::bind(cli.admin.admin_address)
        .await
        .with_context(|| format!("binding {}", cli.admin.admin_address))?;
    tracing::info!(address = %listener.local_addr()?, "admin server listening");
    tokio::spawn(admin::serve(listener, metrics.clone(), ready.clone()));
    let keptn_address = cli.admin.keptn_metrics_address();
    let keptn_listener = admin::bind(keptn_address)
        .await
        .with_context(|| format!("binding the Keptn metrics port {keptn_address}"))?;
    tracing::info!(address = %keptn_listener.local_addr()?, "Keptn metrics listening");
    tokio::spawn(admin::serve_keptn_metrics(keptn_listener, metrics.clone()));

    let identity = cli.election.identity();
    let leadership = if cli.election.leader_elect {
        let config = LeaseConfig {
            namespace: cli.election.lease_namespace.clone(),
            name: cli.election.lease_name.clone(),
            identity: identity.clone(),
            duration: cli.election.lease_duration(),
            retry: cli.election.lease_retry(),
        };
        tracing::info!(lease = %config.name, identity = %identity, "waiting for leadership");
        tokio::select! {
            l = lease::acquire(client.clone(), config) => Some(l),
            _ = shared::shutdown::signal() => return Ok(()),
        }
    } else {
        None
    };
    // Renewals start at once: the fencing deadline runs from the acquisition.
    let (release, mut holder) = match leadership {
        Some(leadership) => {
            let (release, task) = hold(leadership);
            (Some(release), Some(task))
        }
        None => (None, None),
    };
    metrics.leader.set(1);

    let config = Arc::new(RwLock::new(RuntimeConfig::default()));
    if let Err(e) = initial_config(&client, &config, &traces).await {
        // Hand the Lease back so that a standby need not wait for it to expire.
        if let (Some(release), Some(task)) = (release, holder) {
            let _ = release.send(());
            let _ = tokio::time::timeout(RELEASE_TIMEOUT, task).await;
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
    let observability =
        Observability::new(&client, &settings.identity, config.clone(), metrics, traces);
    let controllers = controllers::run(
        client,
        settings,
        config,
        config_changed,
        observability,
        ready,
    );
    let lease_lost = async {
        match holder.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    let lost = tokio::select! {
        _ = controllers => anyhow::bail!("controllers stopped"),
        lost = lease_lost => lost,
        _ = shared::shutdown::signal() => {
            if let Some(release) = release {
                let _ = release.send(());
            }
            if let Some(task) = holder {
                let _ = tokio::time::timeout(RELEASE_TIMEOUT, task).await;
            }
            return Ok(());
        }
    };
    match lost {
        Err(e) => anyhow::bail!("lease task died: {e}"),
        Ok(Err(e)) => anyhow::bail!("leadership lost: {e}"),
        Ok(Ok(())) => anyhow::bail!("lease task ended"),
    }
}

/// The lease task: renews the Lease until leadership is lost (`Err`) or the sender is used, then
/// hands the Lease back (`Ok`).
fn hold(
    mut leadership: lease::Leadership,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), lease::LeaseError>>,
) {
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let lost = tokio::select! {
            lost = leadership.hold() => Some(lost),
            _ = release_rx => None,
        };
        match lost {
            Some(lost) => Err(lost),
            None => {
                leadership.release().await;
                Ok(())
            }
        }
    });
    (release_tx, task)
}

/// Ends the process's run: logs an error, and gives the exit code (failure on any error, so
/// that a replica which lost the Lease restarts).
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn client(args: &ClientArgs) -> anyhow::Result<Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
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
