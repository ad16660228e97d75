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
    /// Certificates kept in a Secret by the webhook itself (A25).
    #[command(flatten)]
    pub certs: CertArgs,
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

/// The webhook keeps its own CA and serving certificate in a Secret (A25); unset, it serves the
/// `--tls-cert`/`--tls-key` files.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// Secret (in `--namespace`) holding tls.crt, tls.key, ca.crt and ca.key; the webhook
    /// creates, fills and rotates it and serves from it.
    #[arg(long, env = "PORTCULLIS_CERT_SECRET")]
    pub cert_secret: Option<String>,
    /// Namespace of the Secret and of the Service (required with `--cert-secret`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Service the API server calls; the serving certificate names it.
    #[arg(
        long,
        env = "PORTCULLIS_CERT_SERVICE",
        default_value = "portcullis-webhook"
    )]
    pub cert_service: String,
    /// Mutating and validating webhook configurations whose hooks calling the Service get the
    /// CA bundle.
    #[arg(
        long,
        env = "PORTCULLIS_WEBHOOK_CONFIGURATIONS",
        default_value = "portcullis-webhook",
        value_delimiter = ','
    )]
    pub webhook_configurations: Vec<String>,
    /// Cluster DNS domain of the certificate's fully qualified name; empty leaves it out.
    #[arg(
        long,
        env = "PORTCULLIS_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    pub cluster_domain: String,
    /// Lifetime of a serving certificate (`d`, `h`, `m`, `s`).
    #[arg(long, env = "PORTCULLIS_CERT_VALIDITY", default_value = "365d", value_parser = cert_duration)]
    pub cert_validity: time::Duration,
    /// Renew the serving certificate when less than this is left.
    #[arg(long, env = "PORTCULLIS_CERT_RENEW_BEFORE", default_value = "30d", value_parser = cert_duration)]
    pub cert_renew_before: time::Duration,
    /// Lifetime of a CA.
    #[arg(long, env = "PORTCULLIS_CA_VALIDITY", default_value = "3650d", value_parser = cert_duration)]
    pub ca_validity: time::Duration,
    /// Make a new CA when less than this is left; the old one stays trusted meanwhile.
    #[arg(long, env = "PORTCULLIS_CA_RENEW_BEFORE", default_value = "90d", value_parser = cert_duration)]
    pub ca_renew_before: time::Duration,
    /// How often due dates and caBundles are checked (besides every change of the Secret).
    #[arg(long, env = "PORTCULLIS_CERT_CHECK_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub cert_check_interval: Duration,
}

impl CertArgs {
    /// The renewal policy (ECDSA P-256 keys, as `portcullis-certs` makes by default).
    pub fn policy(&self) -> certs::Policy {
        certs::Policy {
            key_algorithm: certs::KeyAlgorithm::EcdsaP256,
            ca_validity: self.ca_validity,
            validity: self.cert_validity,
            renew_before: self.cert_renew_before,
            ca_renew_before: self.ca_renew_before,
        }
    }
}

/// Certificate lifetimes, read as `portcullis-certs` reads them (days allowed).
fn cert_duration(text: &str) -> Result<time::Duration, String> {
    certs::validity::parse_duration(text).map_err(|e| e.to_string())
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
        assert_eq!(cli.certs.cert_secret, None);
        assert_eq!(cli.certs.cert_service, "portcullis-webhook");
        assert_eq!(cli.certs.webhook_configurations, ["portcullis-webhook"]);
        assert_eq!(cli.certs.policy(), certs::Policy::default());
        assert_eq!(cli.certs.cert_check_interval, Duration::from_secs(60));
    }

    #[test]
    fn certificate_flags_parse() {
        let cli = Cli::try_parse_from([
            "portcullis-webhook",
            "--cert-secret=tls",
            "--namespace=ns",
            "--cert-service=svc",
            "--webhook-configurations=a,b",
            "--cert-validity=30s",
            "--cert-renew-before=20s",
            "--ca-validity=2h",
            "--ca-renew-before=1h",
            "--cert-check-interval=2s",
        ])
        .unwrap();
        let c = &cli.certs;
        assert_eq!(c.cert_secret.as_deref(), Some("tls"));
        assert_eq!(c.namespace.as_deref(), Some("ns"));
        assert_eq!(c.cert_service, "svc");
        assert_eq!(c.webhook_configurations, ["a", "b"]);
        assert_eq!(c.cert_validity, time::Duration::seconds(30));
        assert_eq!(c.cert_renew_before, time::Duration::seconds(20));
        assert_eq!(c.ca_validity, time::Duration::hours(2));
        assert_eq!(c.ca_renew_before, time::Duration::hours(1));
        assert_eq!(c.cert_check_interval, Duration::from_secs(2));
        assert!(c.policy().check().is_ok());
        assert!(
            Cli::try_parse_from(["portcullis-webhook", "--cert-validity=1y"]).is_err(),
            "unknown unit"
        );
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
