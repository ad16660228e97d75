//! Prometheus metrics of the webhook (prefix `portcullis_webhook_`, A21), served at `/metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets, seconds: fine below the 1 ms objective, coarse up to the API server's
/// webhook timeout.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Labels of a served admission request; values come from fixed sets.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The endpoint path.
    pub path: &'static str,
    /// `allowed`, `patched`, `denied` or `invalid` (unreadable review, HTTP 400); on `/convert`,
    /// `converted` or `refused`.
    pub decision: &'static str,
}

/// Labels of the duration histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    /// The endpoint path.
    pub path: &'static str,
}

/// Labels of a call to the Kubernetes API.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// `get`, `create` or `replace`.
    pub verb: &'static str,
    /// The resource (plural).
    pub resource: &'static str,
    /// `ok`, `not_found`, `conflict` or `error`.
    pub outcome: &'static str,
}

/// Labels of a certificate (re)load.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Labels of a change the webhook made to its own certificates (A25).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RotationLabels {
    /// `first_ca`, `new_ca`, `new_serving_cert` or `dropped_ca`.
    pub action: &'static str,
}

/// All metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Admission requests served.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from the body being read to the answer, seconds.
    pub duration: Family<PathLabels, Histogram>,
    /// Kubernetes API calls made while admitting (fallback GETs and writes).
    pub api_requests: Family<ApiLabels, Counter>,
    /// Certificate loads.
    pub certificate_loads: Family<ReloadLabels, Counter>,
    /// Changes the webhook wrote to its certificate Secret (A25).
    pub certificate_rotations: Family<RotationLabels, Counter>,
    /// `notAfter` of the served certificate, Unix seconds.
    pub certificate_not_after: Gauge,
    /// Keptn-enabled namespaces whose apps/v1 metadata is cached (issue 18).
    pub watched_namespaces: Gauge,
    encode_lock: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Admission requests by path and decision",
            requests.clone(),
        );
        let duration = Family::<PathLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time to decide and answer an admission request",
            duration.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Kubernetes API calls made on behalf of admission requests",
            api_requests.clone(),
        );
        let certificate_loads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "certificate_loads",
            "Serving certificate loads and reloads",
            certificate_loads.clone(),
        );
        let certificate_rotations = Family::<RotationLabels, Counter>::default();
        registry.register(
            "certificate_rotations",
            "Changes the webhook wrote to the certificate Secret it keeps, by action",
            certificate_rotations.clone(),
        );
        let certificate_not_after = Gauge::default();
        registry.register(
            "certificate_not_after_seconds",
            "End of validity of the served certificate, Unix time",
            certificate_not_after.clone(),
        );
        let watched_namespaces = Gauge::default();
        registry.register(
            "watched_namespaces",
            "Keptn-enabled namespaces whose ReplicaSets, Deployments, StatefulSets and DaemonSets are cached",
            watched_namespaces.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            api_requests,
            certificate_loads,
            certificate_rotations,
            certificate_not_after,
            watched_namespaces,
            encode_lock: Mutex::new(()),
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let _guard = self.encode_lock.lock();
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(%err, "cannot encode metrics");
        }
        out
    }

    /// Counts an API call.
    pub fn api(&self, verb: &'static str, resource: &'static str, outcome: &'static str) {
        self.api_requests
            .get_or_create(&ApiLabels {
                verb,
                resource,
                outcome,
            })
            .inc();
    }

    /// Records the `notAfter` of the served certificate chain's leaf (PEM).
    pub fn serving_not_after(&self, cert_pem: Option<&[u8]>) {
        let not_after = cert_pem
            .and_then(|pem| std::str::from_utf8(pem).ok())
            .and_then(|pem| certs::inspect::parse_certificates("tls.crt", pem).ok())
            .and_then(|chain| chain.first().map(|leaf| leaf.not_after.unix_timestamp()));
        if let Some(t) = not_after {
            self.certificate_not_after.set(t);
        }
    }

    /// Total API calls made so far (all labels).
    pub fn api_total(&self) -> u64 {
        let text = self.encode();
        text.lines()
            .filter(|l| l.starts_with("portcullis_webhook_api_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}
