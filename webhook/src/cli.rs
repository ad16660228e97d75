//! Command-line flags (every flag also from the environment).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

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

/// Log output.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(
        long,
        env = "LOG_FILTER",
        default_value = "info,hyper=warn,h2=warn,rustls=warn,kube=warn"
    )]
    pub log_filter: String,
}

/// Log formats (shared with the gate service).
pub use shared::logging::LogFormat;

/// Durations as `<n>ms`, `<n>s` or `<n>m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}': expected e.g. 500ms, 5s, 1m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration unit in '{text}': use ms, s or m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::try_parse_from(["portcullis-webhook", "--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(cli.server.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(cli.server.request_timeout, Duration::from_secs(10));
    }
}
