//! Metrics (prometheus-client, prefix `portcullis_`) and the admin HTTP server: `/healthz`
//! (liveness, no dependencies), `/readyz` (caches synced), `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    /// Keptn's task and evaluation metrics (B §7.3), unprefixed (A21).
    pub checks: crate::execution::CheckMetrics,
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
        let mut keptn_registry = Registry::default();
        let checks = crate::execution::CheckMetrics::register(&mut keptn_registry);
        Metrics {
            checks,
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

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// Serves the admin endpoints until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { metrics, ready });
    axum::serve(listener, app).await
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}
