//! Command-line flags (every flag also from the environment).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use shared::cli::LogDefaults;

/// Portcullis admission webhook: gates pods of annotated workloads in enabled namespaces and
/// creates their KeptnWorkloads and KeptnAppCreationRequests; validates KeptnTaskDefinitions.
#[derive(Debug, Parser)]
#[command(name = "portcullis-webhook", version)]
pub struct Cli {
    /// HTTPS server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Kubernetes client.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// HTTPS server and TLS.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to serve HTTPS on (admission, /healthz, /readyz, /metrics).
    #[arg(long, env = "PORTCULLIS_LISTEN", default_value = "0.0.0.0:9443")]
    pub listen: SocketAddr,
    /// PEM certificate chain (leaf first).
    #[arg(
        long,
        env = "PORTCULLIS_TLS_CERT",
        default_value = "/tmp/webhook/certs/tls.crt"
    )]
    pub tls_cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "PORTCULLIS_TLS_KEY",
        default_value = "/tmp/webhook/certs/tls.key"
    )]
    pub tls_key: PathBuf,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "PORTCULLIS_TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
    /// Largest request body in bytes (an AdmissionReview carries the object and the old object).
    #[arg(long, env = "PORTCULLIS_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Time allowed for the TLS handshake and the request headers.
    #[arg(long, env = "PORTCULLIS_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Time allowed for a whole request including its body (the API server gives up after the
    /// webhook's timeoutSeconds anyway).
    #[arg(long, env = "PORTCULLIS_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Time open requests get to finish after SIGTERM.
    #[arg(long, env = "PORTCULLIS_DRAIN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

/// Kubernetes client (in-cluster configuration or KUBECONFIG).
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Instance reported on Events (normally the pod name).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
}

/// Default `--log-filter` of the webhook.
#[derive(Debug)]
pub struct WebhookLog;

impl LogDefaults for WebhookLog {
    const FILTER: &'static str = "info,hyper=warn,h2=warn,rustls=warn,kube=warn";
}

/// Log output (`--log-format`, `--log-filter`).
pub type LogArgs = shared::cli::LogArgs<WebhookLog>;

/// Log formats (shared with the gate service).
pub use shared::logging::LogFormat;

/// Durations as `<n>ms`, `<n>s` or `<n>m`.
pub use shared::cli::parse_duration;

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["portcullis-webhook", "--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(cli.server.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(cli.server.request_timeout, Duration::from_secs(10));
        assert_eq!(cli.server.drain_timeout, Duration::from_secs(20));
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
            Some("info,hyper=warn,h2=warn,rustls=warn,kube=warn")
        );
    }
}
