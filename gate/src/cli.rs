//! Command-line flags (every flag also from the environment).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};
use operator::cli::ElectionDefaults;
use shared::cli::LogDefaults;

use crate::observability::EventLevel;

/// Portcullis gate service: KeptnApp/KeptnWorkload lifecycle controllers and the release of the
/// `keptn-prechecks-gate` scheduling gate.
#[derive(Debug, Parser)]
#[command(name = "portcullis-gate", version)]
pub struct Cli {
    /// Kubernetes client.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Leader election.
    #[command(flatten)]
    pub election: ElectionArgs,
    /// Controller settings.
    #[command(flatten)]
    pub lifecycle: LifecycleArgs,
    /// Admin and metrics endpoints.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

pub use operator::cli::ClientArgs;

/// The gate's election defaults.
#[derive(Debug)]
pub struct GateElection;

impl ElectionDefaults for GateElection {
    const LEASE_NAME: &'static str = "portcullis-gate.keptn.sh";
    const BINARY: &'static str = "portcullis-gate";
}

/// Leader election through a Lease.
pub type ElectionArgs = operator::cli::ElectionArgs<GateElection>;

/// What the controllers do.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// The Keptn namespace: fallback for task and evaluation definitions.
    #[arg(long, env = "KEPTN_NAMESPACE", default_value = "keptn-system")]
    pub keptn_namespace: String,
    /// Run the KeptnAppVersion promotion phase.
    #[arg(long, env = "PROMOTION_TASKS_ENABLED")]
    pub promotion_tasks_enabled: bool,
    /// How often the stale-gate sweeper looks at gated pods, in seconds.
    #[arg(long, env = "SWEEP_INTERVAL_SECONDS", default_value_t = 30)]
    pub sweep_interval_seconds: u64,
    /// Finished, superseded KeptnAppVersions / KeptnWorkloadVersions kept per app and per
    /// workload; older ones are deleted with their tasks and evaluations. 0 keeps all.
    #[arg(long, env = "RETAINED_VERSIONS", default_value_t = lifecycle::retention::DEFAULT_RETAINED)]
    pub retained_versions: usize,
    /// Which Kubernetes Events to create: `all` (Keptn's), or `warnings` only, which leaves out
    /// the `Normal` ones (about half of the gate's writes in a rollout). CloudEvents are sent for
    /// every event either way.
    #[arg(long, env = "KUBERNETES_EVENTS", value_enum, default_value_t = EventLevel::All)]
    pub kubernetes_events: EventLevel,
}

impl LifecycleArgs {
    /// `--sweep-interval-seconds`, at least one second.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_seconds.max(1))
    }
}

/// The admin endpoints.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Listen address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "ADMIN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub admin_address: SocketAddr,
    /// Port of Keptn's metrics endpoint (`/metrics` with only the `keptn_*` families, B §0.1),
    /// on the admin address's IP; 0 picks a free port.
    #[arg(long, env = "KEPTN_DORA_METRICS_PORT", default_value_t = 2222)]
    pub keptn_metrics_port: u16,
}

impl AdminArgs {
    /// Where Keptn's metrics endpoint listens: `--keptn-metrics-port` on the admin address's IP.
    pub fn keptn_metrics_address(&self) -> SocketAddr {
        SocketAddr::new(self.admin_address.ip(), self.keptn_metrics_port)
    }
}

/// Default `--log-filter` of the gate service.
#[derive(Debug)]
pub struct GateLog;

impl LogDefaults for GateLog {
    const FILTER: &'static str = "info,kube=warn,hyper=warn,h2=warn,tower=warn";
}

/// Log output (`--log-format`, `--log-filter`).
pub type LogArgs = shared::cli::LogArgs<GateLog>;

/// Log formats (shared with the webhook).
pub use shared::logging::LogFormat;

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

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
            "--kubernetes-events",
            "warnings",
        ])
        .expect("parses");
        assert_eq!(cli.lifecycle.kubernetes_events, EventLevel::Warnings);
        assert!(cli.election.leader_elect);
        assert_eq!(cli.election.lease_namespace, "ns");
        assert!(cli.lifecycle.promotion_tasks_enabled);
        assert!(matches!(cli.log.log_format, LogFormat::Json));
        assert!(Cli::try_parse_from(["portcullis-gate", "--admin-address", "nope"]).is_err());
    }

    /// The names and environment variables of the log flags are tested in `shared::cli`; what
    /// is the binary's own is its default filter.
    #[test]
    fn log_filter_defaults_to_the_binarys_own() {
        let command = Cli::command();
        let filter = command
            .get_arguments()
            .find(|a| a.get_id() == "log_filter")
            .and_then(|a| a.get_default_values().first().cloned());
        assert_eq!(
            filter.as_ref().and_then(|f| f.to_str()),
            Some("info,kube=warn,hyper=warn,h2=warn,tower=warn")
        );
    }

    #[test]
    fn durations_have_floors() {
        let cli = Cli::try_parse_from([
            "portcullis-gate",
            "--lease-duration-seconds",
            "0",
            "--lease-retry-millis",
            "5",
            "--sweep-interval-seconds",
            "0",
            "--admin-address",
            "127.0.0.1:8080",
            "--keptn-metrics-port",
            "0",
        ])
        .unwrap();
        assert_eq!(cli.election.lease_duration(), Duration::from_secs(1));
        assert_eq!(cli.election.lease_retry(), Duration::from_millis(100));
        assert_eq!(cli.lifecycle.sweep_interval(), Duration::from_secs(1));
        assert_eq!(
            cli.admin.keptn_metrics_address(),
            "127.0.0.1:0".parse().unwrap()
        );
    }
}
