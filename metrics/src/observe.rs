//! The controller's own metrics: fetch latency and errors by provider type, failed reconciles.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

/// `portcullis_metrics_*`.
pub struct FetchMetrics {
    fetch_duration: Family<ProviderLabels, Histogram>,
    fetch_errors: Family<ProviderLabels, Counter>,
    reconcile_failures: Family<ErrorLabels, Counter>,
    registry: Registry,
}

impl FetchMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis_metrics");
        // 5 ms to about 20 s: the fetch timeout.
        let fetch_duration = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 13))
        });
        let fetch_errors = Family::<ProviderLabels, Counter>::default();
        let reconcile_failures = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "fetch_duration_seconds",
            "Duration of metric queries against providers, by provider type",
            fetch_duration.clone(),
        );
        registry.register(
            "fetch_errors",
            "Metric queries that failed, by provider type",
            fetch_errors.clone(),
        );
        registry.register(
            "reconcile_failures",
            "KeptnMetric reconciles that failed on an API call, by error kind",
            reconcile_failures.clone(),
        );
        FetchMetrics {
            fetch_duration,
            fetch_errors,
            reconcile_failures,
            registry,
        }
    }

    /// Records one query against a provider of `provider_type`.
    pub fn fetched(&self, provider_type: &'static str, took: Duration, ok: bool) {
        let labels = ProviderLabels { provider_type };
        self.fetch_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if !ok {
            self.fetch_errors.get_or_create(&labels).inc();
        }
    }

    /// Records a failed reconcile.
    pub fn reconcile_failed(&self, error: &'static str) {
        self.reconcile_failures
            .get_or_create(&ErrorLabels { error })
            .inc();
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for FetchMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_are_counted_by_provider_type() {
        let m = FetchMetrics::new();
        m.fetched("prometheus", Duration::from_millis(20), true);
        m.fetched("prometheus", Duration::from_millis(30), false);
        m.fetched("thanos", Duration::from_millis(30), false);
        let text = m.encode();
        assert!(
            text.contains(
                "portcullis_metrics_fetch_duration_seconds_count{provider_type=\"prometheus\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "portcullis_metrics_fetch_errors_total{provider_type=\"prometheus\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("portcullis_metrics_fetch_errors_total{provider_type=\"thanos\"} 1\n"),
            "{text}"
        );
    }
}
