//! The gate's metrics registry (prometheus-client): Portcullis's own with prefix `portcullis_`,
//! Keptn's under their own names (A21).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Buckets of the gate hold time, seconds to hours: pods wait for pre-deployment checks.
const HOLD_BUCKETS: [f64; 16] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
    14400.0, 43200.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgeLabels {
    pub age: &'static str,
}

/// The gate service's own metrics.
pub struct Metrics {
    pub reconciles: Family<ControllerLabels, Counter>,
    pub failures: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    /// Gates removed.
    pub releases: Counter,
    /// From the first reconcile that found the pod releasable to the patch's success.
    pub release_duration: Histogram,
    /// Pods currently carrying our gate, by age bucket (A14).
    pub gated_pods: Family<AgeLabels, Gauge>,
    /// Pods reported as stale (A14).
    pub stale_reports: Counter,
    /// Pods of enabled workloads reported as admitted without the gate (`controllers::ungated`).
    pub ungated_pods: Counter,
    /// 1 while this process holds the lease.
    pub leader: Gauge,
    /// From a pod's creationTimestamp to the removal of its gate (the patch's success).
    pub hold_duration: Histogram,
    /// CloudEvents not delivered (B §7.2 failures are otherwise only logged).
    pub cloud_events_failures: Counter,
    /// Kubernetes Events dropped because the gate's queue of Events was full.
    pub events_dropped: Counter,
    /// Keptn's task and evaluation metrics (B §7.3), unprefixed (A21).
    pub checks: super::checks::CheckMetrics,
    /// Keptn's app/workload version counters and histograms (B §7.3), unprefixed (A21).
    pub lifecycle: super::dora::LifecycleMetrics,
    /// `keptn_lifecycle_active`: +1 at start-up (B §0.1).
    pub lifecycle_active: Counter,
    /// Source of the scrape-time gauges of [`super::dora::DoraCollector`].
    dora_source: super::dora::SourceSlot,
    registry: Registry,
    keptn_registry: Registry,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            });
        let releases = Counter::default();
        let release_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let gated_pods = Family::<AgeLabels, Gauge>::default();
        let stale_reports = Counter::default();
        let ungated_pods = Counter::default();
        let leader = Gauge::default();
        let hold_duration = Histogram::new(HOLD_BUCKETS);
        let cloud_events_failures = Counter::default();
        let events_dropped = Counter::default();
        registry.register(
            "gate_reconciles",
            "Reconciles by controller",
            reconciles.clone(),
        );
        registry.register(
            "gate_reconcile_failures",
            "Failed reconciles by controller and error kind",
            failures.clone(),
        );
        registry.register(
            "gate_reconcile_duration_seconds",
            "Reconcile duration by controller",
            reconcile_duration.clone(),
        );
        registry.register(
            "gate_releases",
            "Scheduling gates removed",
            releases.clone(),
        );
        registry.register(
            "gate_release_duration_seconds",
            "From a pod found releasable to its gate removed",
            release_duration.clone(),
        );
        registry.register(
            "gated_pods",
            "Pods carrying keptn-prechecks-gate, by age",
            gated_pods.clone(),
        );
        registry.register(
            "gate_stale_reports",
            "Pods reported as gated for too long",
            stale_reports.clone(),
        );
        registry.register(
            "gate_ungated_pods",
            "Pods of enabled workloads found running without the scheduling gate",
            ungated_pods.clone(),
        );
        registry.register(
            "gate_leader",
            "1 while this process holds the lease",
            leader.clone(),
        );
        registry.register(
            "gate_hold_duration_seconds",
            "From a pod's creation to the removal of its scheduling gate",
            hold_duration.clone(),
        );
        registry.register(
            "gate_cloudevents_failures",
            "CloudEvents not delivered: dropped, unsent, refused, timed out or answered non-2xx",
            cloud_events_failures.clone(),
        );
        registry.register(
            "gate_kubernetes_events_dropped",
            "Kubernetes Events dropped because the queue of Events to create was full",
            events_dropped.clone(),
        );
        // Keptn's metrics come from the OTel meter `keptn/task` (no version) through the OTel
        // Prometheus exporter, which labels every series with its scope (B §7.3).
        let mut keptn_registry = Registry::with_labels(
            [
                (
                    Cow::Borrowed("otel_scope_name"),
                    Cow::Borrowed("keptn/task"),
                ),
                (Cow::Borrowed("otel_scope_version"), Cow::Borrowed("")),
            ]
            .into_iter(),
        );
        let checks = super::checks::CheckMetrics::register(&mut keptn_registry);
        let lifecycle = super::dora::LifecycleMetrics::register(&mut keptn_registry);
        let lifecycle_active = Counter::default();
        keptn_registry.register(
            "keptn_lifecycle_active",
            "Starts of the lifecycle operator",
            lifecycle_active.clone(),
        );
        let dora_source = super::dora::SourceSlot::default();
        keptn_registry.register_collector(Box::new(super::dora::DoraCollector::new(
            dora_source.clone(),
        )));
        Metrics {
            checks,
            lifecycle,
            lifecycle_active,
            dora_source,
            hold_duration,
            cloud_events_failures,
            events_dropped,
            keptn_registry,
            reconciles,
            failures,
            reconcile_duration,
            releases,
            release_duration,
            gated_pods,
            stale_reports,
            ungated_pods,
            leader,
            registry,
        }
    }

    /// Hands the scrape-time gauges their source of cached objects (once; later calls are
    /// ignored). Until then, as on a standby, they report nothing.
    pub fn set_snapshot_source(
        &self,
        source: impl Fn() -> super::dora::Snapshot + Send + Sync + 'static,
    ) {
        if self.dora_source.set(Box::new(source)).is_err() {
            tracing::debug!("metrics snapshot source already set");
        }
    }

    /// Observes how long a pod created at `created` was held, now that its gate is removed.
    pub fn observe_hold(&self, created: Option<&Time>, now: jiff::Timestamp) {
        if let Some(seconds) = super::dora::seconds_between(created, Some(&Time(now))) {
            self.hold_duration.observe(seconds);
        }
    }

    /// Prometheus text exposition of Keptn's families only, as Keptn serves them on its own
    /// port (B §0.1), so scrape configs written for Keptn keep working.
    pub fn encode_keptn(&self) -> String {
        let mut out = String::new();
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        if encode_registry(&mut out, &self.keptn_registry)
            .and_then(|()| encode_eof(&mut out))
            .is_err()
        {
            out.clear();
        }
        out
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        if encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &self.keptn_registry))
            .and_then(|()| encode_eof(&mut out))
            .is_err()
        {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_time_is_observed_from_creation_and_never_negative() {
        let m = Metrics::new();
        let created = jiff::Timestamp::from_second(1_700_000_000).expect("valid");
        let later = jiff::Timestamp::from_second(1_700_000_090).expect("valid");
        m.observe_hold(Some(&Time(created)), later);
        // A pod whose creation the local clock sees in the future counts as held for 0 s.
        m.observe_hold(Some(&Time(later)), created);
        // Without a creationTimestamp there is nothing to measure.
        m.observe_hold(None, later);
        let text = m.encode();
        assert!(
            text.contains("portcullis_gate_hold_duration_seconds_count 2\n"),
            "{text}"
        );
        assert!(
            text.contains("portcullis_gate_hold_duration_seconds_sum 90.0\n"),
            "{text}"
        );
        assert!(
            text.contains("portcullis_gate_hold_duration_seconds_bucket{le=\"0.5\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn keptn_metrics_keep_their_names_and_ours_are_prefixed() {
        let m = Metrics::new();
        m.lifecycle_active.inc();
        let text = m.encode();
        assert!(
            text.contains("# TYPE keptn_lifecycle_active counter\n"),
            "{text}"
        );
        let scope = r#"otel_scope_name="keptn/task",otel_scope_version="""#;
        assert!(
            text.contains(&format!("\nkeptn_lifecycle_active_total{{{scope}}} 1\n")),
            "{text}"
        );
        assert!(text.contains("\nportcullis_gate_leader 0\n"), "{text}");
        assert!(!text.contains("portcullis_keptn"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // No caches handed over yet (a standby): no scrape-time gauges.
        assert!(!text.contains("keptn_app_active"), "{text}");
        m.set_snapshot_source(|| super::super::dora::Snapshot {
            app_versions: vec![std::sync::Arc::new(
                serde_json::from_value(serde_json::json!({
                    "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppVersion",
                    "metadata": {"name": "shop-1-abc", "namespace": "ns"},
                    "spec": {"appName": "shop", "version": "1"}
                }))
                .expect("kav"),
            )],
            ..Default::default()
        });
        let text = m.encode();
        assert!(
            text.contains(&format!("keptn_app_active{{{scope},keptn_deployment_app_name=\"shop\",keptn_deployment_app_version=\"1\",keptn_deployment_app_namespace=\"ns\"}} 1\n")),
            "{text}"
        );
    }

    #[test]
    fn cloud_events_failures_are_ours_not_keptns() {
        let m = Metrics::new();
        let text = m.encode();
        assert!(
            text.contains("\nportcullis_gate_cloudevents_failures_total 0\n"),
            "{text}"
        );
        m.cloud_events_failures.inc();
        m.cloud_events_failures.inc();
        let text = m.encode();
        assert!(
            text.contains("\nportcullis_gate_cloudevents_failures_total 2\n"),
            "{text}"
        );
        assert!(!m.encode_keptn().contains("cloudevents"));
    }

    #[test]
    fn dropped_kubernetes_events_are_ours_not_keptns() {
        let m = Metrics::new();
        assert!(
            m.encode()
                .contains("\nportcullis_gate_kubernetes_events_dropped_total 0\n")
        );
        m.events_dropped.inc();
        assert!(
            m.encode()
                .contains("\nportcullis_gate_kubernetes_events_dropped_total 1\n")
        );
        assert!(!m.encode_keptn().contains("events_dropped"));
    }
}
