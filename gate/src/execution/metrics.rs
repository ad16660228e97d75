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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).expect("encodes");
        out
    }

    #[test]
    fn finished_checks_encode_under_keptn_names_with_their_labels() {
        let mut registry = Registry::default();
        let m = CheckMetrics::register(&mut registry);
        let task: KeptnTask = serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTask",
            "metadata": {"name": "pre-check-1", "namespace": "ns"},
            "spec": {"taskDefinition": "check", "checkType": "pre",
                     "context": {"appName": "shop", "appVersion": "1", "workloadName": "shop-cart",
                                 "workloadVersion": "2", "taskType": "pre", "objectType": "Workload"}},
            "status": {"status": "Succeeded", "startTime": "2024-01-01T00:00:10Z",
                       "endTime": "2024-01-01T00:00:13Z"}
        }))
        .expect("task");
        m.task_finished(&task, task.status.as_ref().expect("status"));
        let evaluation: KeptnEvaluation = serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluation",
            "metadata": {"name": "pre-eval-1", "namespace": "ns"},
            "spec": {"evaluationDefinition": "slo", "workloadVersion": "", "appName": "shop",
                     "appVersion": "1", "checkType": "pre-eval"},
            // No startTime: counted, but no duration.
            "status": {"overallStatus": "Failed", "endTime": "2024-01-01T00:00:13Z"}
        }))
        .expect("evaluation");
        m.evaluation_finished(&evaluation, evaluation.status.as_ref().expect("status"));
        let out = encoded(&registry);
        let task_labels = r#"keptn_deployment_app_name="shop",keptn_deployment_app_version="1",keptn_deployment_workload_name="shop-cart",keptn_deployment_workload_version="2",keptn_deployment_task_name="pre-check-1",keptn_deployment_task_type="pre",keptn_deployment_task_status="Succeeded""#;
        for line in [
            format!("keptn_task_count_total{{{task_labels}}} 1\n"),
            format!("keptn_task_duration_seconds_sum{{{task_labels}}} 3.0\n"),
            "# HELP keptn_task_duration_seconds Duration of finished KeptnTasks.\n".to_owned(),
            "# HELP keptn_evaluation_count Number of KeptnEvaluations that finished.\n".to_owned(),
        ] {
            assert!(out.contains(&line), "{line} missing in\n{out}");
        }
        let evaluation_labels = r#"keptn_deployment_app_name="shop",keptn_deployment_app_version="1",keptn_deployment_workload_name="",keptn_deployment_workload_version="",keptn_deployment_evaluation_name="pre-eval-1",keptn_deployment_evaluation_type="pre-eval",keptn_deployment_evaluation_status="Failed""#;
        assert!(
            out.contains(&format!(
                "keptn_evaluation_count_total{{{evaluation_labels}}} 1\n"
            )),
            "{out}"
        );
        assert!(
            !out.contains("keptn_evaluation_duration_seconds_count{"),
            "{out}"
        );
    }
}
