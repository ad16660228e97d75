//! Keptn's task and evaluation metrics (B §7.3), under Keptn's Prometheus names (A21):
//! `keptn_task_count_total`, `keptn_task_duration_seconds`, `keptn_evaluation_count_total`,
//! `keptn_evaluation_duration_seconds`, with the `keptn_deployment_*` labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};
use shared::crd::{KeptnEvaluation, KeptnEvaluationStatus, KeptnTask, KeptnTaskStatus};

use crate::dora::{Durations, otel_histogram as histogram, seconds_between};

/// Attributes of `keptn.task.*` (B §7.3).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_app_version: String,
    pub keptn_deployment_workload_name: String,
    pub keptn_deployment_workload_version: String,
    pub keptn_deployment_task_name: String,
    pub keptn_deployment_task_type: String,
    pub keptn_deployment_task_status: String,
}

/// Attributes of `keptn.evaluation.*` (B §7.3).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvaluationLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_app_version: String,
    pub keptn_deployment_workload_name: String,
    pub keptn_deployment_workload_version: String,
    pub keptn_deployment_evaluation_name: String,
    pub keptn_deployment_evaluation_type: String,
    pub keptn_deployment_evaluation_status: String,
}

/// Counters and histograms of finished tasks and evaluations.
#[derive(Clone, Debug)]
pub struct CheckMetrics {
    task_count: Family<TaskLabels, Counter>,
    task_duration: Durations<TaskLabels>,
    evaluation_count: Family<EvaluationLabels, Counter>,
    evaluation_duration: Durations<EvaluationLabels>,
}

impl CheckMetrics {
    /// Creates the metrics and registers them in `registry` (which must have no prefix, so the
    /// names stay Keptn's).
    pub fn register(registry: &mut Registry) -> CheckMetrics {
        let metrics = CheckMetrics {
            task_count: Family::default(),
            task_duration: Family::new_with_constructor(histogram),
            evaluation_count: Family::default(),
            evaluation_duration: Family::new_with_constructor(histogram),
        };
        registry.register(
            "keptn_task_count",
            "Number of KeptnTasks that finished",
            metrics.task_count.clone(),
        );
        registry.register_with_unit(
            "keptn_task_duration",
            "Duration of finished KeptnTasks",
            Unit::Seconds,
            metrics.task_duration.clone(),
        );
        registry.register(
            "keptn_evaluation_count",
            "Number of KeptnEvaluations that finished",
            metrics.evaluation_count.clone(),
        );
        registry.register_with_unit(
            "keptn_evaluation_duration",
            "Duration of finished KeptnEvaluations",
            Unit::Seconds,
            metrics.evaluation_duration.clone(),
        );
        metrics
    }

    /// Counts a finished task and records its duration (endTime − startTime).
    pub fn task_finished(&self, task: &KeptnTask, status: &KeptnTaskStatus) {
        let c = &task.spec.context;
        let labels = TaskLabels {
            keptn_deployment_app_name: c.app_name.clone(),
            keptn_deployment_app_version: c.app_version.clone(),
            keptn_deployment_workload_name: c.workload_name.clone(),
            keptn_deployment_workload_version: c.workload_version.clone(),
            keptn_deployment_task_name: task.metadata.name.clone().unwrap_or_default(),
            keptn_deployment_task_type: task.spec.check_type.clone(),
            keptn_deployment_task_status: status.status.to_string(),
        };
        self.task_count.get_or_create(&labels).inc();
        if let Some(seconds) = seconds_between(status.start_time.as_ref(), status.end_time.as_ref())
        {
            self.task_duration.get_or_create(&labels).observe(seconds);
        }
    }

    /// Counts a finished evaluation and records its duration (endTime − startTime).
    pub fn evaluation_finished(
        &self,
        evaluation: &KeptnEvaluation,
        status: &KeptnEvaluationStatus,
    ) {
        let s = &evaluation.spec;
        let labels = EvaluationLabels {
            keptn_deployment_app_name: s.app_name.clone(),
            keptn_deployment_app_version: s.app_version.clone(),
            keptn_deployment_workload_name: s.workload.clone(),
            keptn_deployment_workload_version: s.workload_version.clone(),
            keptn_deployment_evaluation_name: evaluation.metadata.name.clone().unwrap_or_default(),
            keptn_deployment_evaluation_type: s.check_type.clone(),
            keptn_deployment_evaluation_status: status.overall_status.to_string(),
        };
        self.evaluation_count.get_or_create(&labels).inc();
        if let Some(seconds) = seconds_between(status.start_time.as_ref(), status.end_time.as_ref())
        {
            self.evaluation_duration
                .get_or_create(&labels)
                .observe(seconds);
        }
    }
}
