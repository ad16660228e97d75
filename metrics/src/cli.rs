//! Command-line flags (every flag also from the environment).

use std::net::SocketAddr;

use clap::{Args, Parser};
use operator::cli::ElectionDefaults;
use shared::cli::LogDefaults;

/// Portcullis metrics controller: fills `KeptnMetric.status` from the KeptnMetricsProviders
/// (Prometheus, Thanos, Cortex) and serves the values on Keptn's metrics port.
#[derive(Debug, Parser)]
#[command(name = "portcullis-metrics", version)]
pub struct Cli {
    /// Kubernetes client.
    #[command(flatten)]
    pub client: operator::cli::ClientArgs,
    /// Leader election.
    #[command(flatten)]
    pub election: ElectionArgs,
    /// The HTTP server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The HTTP server.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Listen address of `/api/v1/metrics/{namespace}/{metric}`, `/metrics`, `/healthz` and
    /// `/readyz` (Keptn's metrics port is 9999).
    #[arg(long, env = "METRICS_ADDRESS", default_value = "0.0.0.0:9999")]
    pub address: SocketAddr,
}

/// The metrics controller's election defaults.
#[derive(Debug)]
pub struct MetricsElection;

impl ElectionDefaults for MetricsElection {
    const LEASE_NAME: &'static str = "portcullis-metrics.keptn.sh";
    const BINARY: &'static str = "portcullis-metrics";
}

/// Leader election through a Lease.
pub type ElectionArgs = operator::cli::ElectionArgs<MetricsElection>;

/// Default `--log-filter` of the metrics controller.
#[derive(Debug)]
pub struct MetricsLog;

impl LogDefaults for MetricsLog {
    const FILTER: &'static str = "info,kube=warn,hyper=warn,h2=warn,tower=warn,reqwest=warn";
}

/// Log output (`--log-format`, `--log-filter`).
pub type LogArgs = shared::cli::LogArgs<MetricsLog>;

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent_and_default_to_keptns_port() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["portcullis-metrics"]).expect("parses");
        assert_eq!(cli.server.address.port(), 9999);
        assert_eq!(cli.election.lease_name, "portcullis-metrics.keptn.sh");
        assert!(!cli.election.leader_elect);
    }
}
