//! Keptn's task and evaluation metrics (B §7.3), under Keptn's Prometheus names (A21):
//! `keptn_task_count_total`, `keptn_task_duration_seconds`, `keptn_evaluation_count_total`,
//! `keptn_evaluation_duration_seconds`, with the `keptn_deployment_*` labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use shared::crd::{KeptnEvaluation, KeptnEvaluationStatus, KeptnTask, KeptnTaskStatus};

use crate::dora::{CountAndDuration, EvaluationActiveLabels, TaskActiveLabels, seconds_between};

/// Attributes of `keptn.task.*` (B §7.3): the task's, then its status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    #[prometheus(flatten)]
    pub task: TaskActiveLabels,
    pub keptn_deployment_task_status: String,
}

/// Attributes of `keptn.evaluation.*` (B §7.3): the evaluation's, then its status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvaluationLabels {
    #[prometheus(flatten)]
    pub evaluation: EvaluationActiveLabels,
    pub keptn_deployment_evaluation_status: String,
}

/// Counters and histograms of finished tasks and evaluations.
#[derive(Clone, Debug)]
pub struct CheckMetrics {
    task: CountAndDuration<TaskLabels>,
    evaluation: CountAndDuration<EvaluationLabels>,
}

impl CheckMetrics {
    /// Creates the metrics and registers them in `registry` (which must have no prefix, so the
    /// names stay Keptn's).
    pub fn register(registry: &mut Registry) -> CheckMetrics {
        CheckMetrics {
            task: CountAndDuration::register(
                registry,
                "keptn_task",
                "Number of KeptnTasks that finished",
                "Duration of finished KeptnTasks",
            ),
            evaluation: CountAndDuration::register(
                registry,
                "keptn_evaluation",
                "Number of KeptnEvaluations that finished",
                "Duration of finished KeptnEvaluations",
            ),
        }
    }

    /// Counts a finished task and records its duration (endTime − startTime).
    pub fn task_finished(&self, task: &KeptnTask, status: &KeptnTaskStatus) {
        let labels = TaskLabels {
            task: TaskActiveLabels::of(task),
            keptn_deployment_task_status: status.status.to_string(),
        };
        let seconds = seconds_between(status.start_time.as_ref(), status.end_time.as_ref());
        self.task.record(&labels, seconds);
    }

    /// Counts a finished evaluation and records its duration (endTime − startTime).
    pub fn evaluation_finished(
        &self,
        evaluation: &KeptnEvaluation,
        status: &KeptnEvaluationStatus,
    ) {
        let labels = EvaluationLabels {
            evaluation: EvaluationActiveLabels::of(evaluation),
            keptn_deployment_evaluation_status: status.overall_status.to_string(),
        };
        let seconds = seconds_between(status.start_time.as_ref(), status.end_time.as_ref());
        self.evaluation.record(&labels, seconds);
    }
}
