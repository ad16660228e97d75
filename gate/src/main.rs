//! `portcullis-gate`: the lifecycle controllers of Portcullis and the scheduling-gate release
//! (SPEC A11–A16, B §3–§4). Only the Lease holder runs controllers, so only the leader writes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser};
use gate::admin::{self, Metrics};
use gate::config::RuntimeConfig;
use gate::controllers::{self, Settings};
use gate::lease::{self, LeaseConfig};
use kube::api::ListParams;
use kube::{Api, Client};
use shared::crd::KeptnConfig;
use shared::logging::LogFormat;

/// Portcullis gate service: KeptnApp/KeptnWorkload lifecycle controllers and the release of the
/// `keptn-prechecks-gate` scheduling gate.
#[derive(Debug, Parser)]
#[command(name = "portcullis-gate", version)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    election: ElectionArgs,
    #[command(flatten)]
    lifecycle: LifecycleArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// Kubeconfig to use; in-cluster configuration when absent.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
struct ElectionArgs {
    /// Run controllers only while holding the Lease.
    #[arg(long, env = "LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "keptn-system")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "portcullis-gate.keptn.sh")]
    lease_name: String,
    /// `leaseDurationSeconds`: how long a silent holder keeps the lease.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Renew / retry period in milliseconds.
    #[arg(long, env = "LEASE_RETRY_MILLIS", default_value_t = 2000)]
    lease_retry_millis: u64,
    /// `holderIdentity` and events' reporting instance; defaults to `<hostname>-<pid>`.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[derive(Debug, Args)]
struct LifecycleArgs {
    /// The Keptn namespace: fallback for task and evaluation definitions.
    #[arg(long, env = "KEPTN_NAMESPACE", default_value = "keptn-system")]
    keptn_namespace: String,
    /// Run the KeptnAppVersion promotion phase.
    #[arg(long, env = "PROMOTION_TASKS_ENABLED")]
    promotion_tasks_enabled: bool,
    /// How often the stale-gate sweeper looks at gated pods, in seconds.
    #[arg(long, env = "SWEEP_INTERVAL_SECONDS", default_value_t = 30)]
    sweep_interval_seconds: u64,
    /// Finished, superseded KeptnAppVersions / KeptnWorkloadVersions kept per app and per
    /// workload; older ones are deleted with their tasks and evaluations. 0 keeps all.
    #[arg(long, env = "RETAINED_VERSIONS", default_value_t = gate::retention::DEFAULT_RETAINED)]
    retained_versions: usize,
}

#[derive(Debug, Args)]
struct AdminArgs {
    /// Listen address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "ADMIN_ADDRESS", default_value = "0.0.0.0:8080")]
    admin_address: SocketAddr,
    /// Port of Keptn's metrics endpoint (`/metrics` with only the `keptn_*` families, B §0.1),
    /// on the admin address's IP; 0 picks a free port.
    #[arg(long, env = "KEPTN_DORA_METRICS_PORT", default_value_t = 2222)]
    keptn_metrics_port: u16,
}

#[derive(Debug, Args)]
struct LogArgs {
    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "plain")]
    log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(
        long,
        env = "LOG_FILTER",
        default_value = "info,kube=warn,hyper=warn,h2=warn,tower=warn"
    )]
    log_filter: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = shared::logging::init(cli.log.log_format, &cli.log.log_filter) {
        eprintln!("portcullis-gate: {e}");
        return ExitCode::FAILURE;
    }
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let result = run(cli).await;
    // Queued spans go out before the process ends.
    let _ = tokio::task::spawn_blocking(|| gate::telemetry::global().shutdown()).await;
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
async fn initial_config(client: &Client, config: &RwLock<RuntimeConfig>) -> anyhow::Result<()> {
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
        controllers::apply_config(config, newest);
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
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
    let keptn_address = SocketAddr::new(cli.admin.admin_address.ip(), cli.admin.keptn_metrics_port);
    let keptn_listener = admin::bind(keptn_address)
        .await
        .with_context(|| format!("binding the Keptn metrics port {keptn_address}"))?;
    tracing::info!(address = %keptn_listener.local_addr()?, "Keptn metrics listening");
    tokio::spawn(admin::serve_keptn_metrics(keptn_listener, metrics.clone()));

    let identity = cli.election.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "portcullis-gate".to_owned());
        format!("{host}-{}", std::process::id())
    });
    let leadership = if cli.election.leader_elect {
        let config = LeaseConfig {
            namespace: cli.election.lease_namespace.clone(),
            name: cli.election.lease_name.clone(),
            identity: identity.clone(),
            duration: Duration::from_secs(cli.election.lease_duration_seconds.max(1)),
            retry: Duration::from_millis(cli.election.lease_retry_millis.max(100)),
        };
        tracing::info!(lease = %config.name, identity = %identity, "waiting for leadership");
        tokio::select! {
            l = lease::acquire(client.clone(), config) => Some(l),
            _ = shutdown_signal() => return Ok(()),
        }
    } else {
        None
    };
    metrics.leader.set(1);

    let config = Arc::new(RwLock::new(RuntimeConfig::default()));
    initial_config(&client, &config).await?;
    // Tracing from OTEL_EXPORTER_OTLP_ENDPOINT when no KeptnConfig names a collector (A21).
    let collector = config
        .read()
        .map(|c| c.otel_collector_url.clone())
        .unwrap_or_default();
    gate::telemetry::global().configure(&collector);
    let (config_changed, _) = tokio::sync::watch::channel(());
    let settings = Settings {
        keptn_namespace: cli.lifecycle.keptn_namespace.clone(),
        promotion_enabled: cli.lifecycle.promotion_tasks_enabled,
        identity,
        sweep_interval: Duration::from_secs(cli.lifecycle.sweep_interval_seconds.max(1)),
        retained_versions: cli.lifecycle.retained_versions,
    };
    let controllers = controllers::run(client, settings, config, config_changed, metrics, ready);
    match leadership {
        None => {
            tokio::select! {
                _ = controllers => anyhow::bail!("controllers stopped"),
                _ = shutdown_signal() => Ok(()),
            }
        }
        Some(leadership) => {
            // The lease task owns the lease; it is handed back when leadership ends.
            let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
            let mut leadership = leadership;
            let mut holder = tokio::spawn(async move {
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
            tokio::select! {
                _ = controllers => anyhow::bail!("controllers stopped"),
                lost = &mut holder => {
                    match lost {
                        Ok(Err(e)) => anyhow::bail!("leadership lost: {e}"),
                        Ok(Ok(())) => anyhow::bail!("lease task ended"),
                        Err(e) => anyhow::bail!("lease task died: {e}"),
                    }
                }
                _ = shutdown_signal() => {
                    let _ = release_tx.send(());
                    let _ = tokio::time::timeout(Duration::from_secs(5), holder).await;
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent_and_parse() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "portcullis-gate",
            "--leader-elect",
            "--lease-namespace",
            "ns",
            "--promotion-tasks-enabled",
            "--admin-address",
            "127.0.0.1:9",
            "--log-format",
            "json",
        ])
        .expect("parses");
        assert!(cli.election.leader_elect);
        assert_eq!(cli.election.lease_namespace, "ns");
        assert!(cli.lifecycle.promotion_tasks_enabled);
        assert!(matches!(cli.log.log_format, LogFormat::Json));
        assert!(Cli::try_parse_from(["portcullis-gate", "--admin-address", "nope"]).is_err());
    }
}
