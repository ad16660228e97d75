//! Keptn's task and evaluation metrics (B §7.3), under Keptn's Prometheus names (A21):
//! `keptn_task_count_total`, `keptn_task_duration_seconds`, `keptn_evaluation_count_total`,
//! `keptn_evaluation_duration_seconds`, with the `keptn_deployment_*` labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use shared::crd::{KeptnEvaluation, KeptnEvaluationStatus, KeptnTask, KeptnTaskStatus};

use super::dora::{CountAndDuration, EvaluationActiveLabels, TaskActiveLabels, seconds_between};

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
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;
    use serde_json::json;
    use shared::crd::{KeptnEvaluationStatus, KeptnState, KeptnTaskStatus};

    use lifecycle::fixtures::{evaluation, task};

    use super::CheckMetrics;

    fn ts(s: &str) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            s.parse().unwrap(),
        ))
    }

    #[test]
    fn b7_3_task_and_evaluation_metrics_names_and_labels() {
        let mut registry = Registry::default();
        let metrics = CheckMetrics::register(&mut registry);
        let t = task(json!({}));
        let status = KeptnTaskStatus {
            status: KeptnState::Succeeded,
            start_time: ts("2026-11-23T01:00:00Z"),
            end_time: ts("2026-11-23T01:00:12Z"),
            ..Default::default()
        };
        metrics.task_finished(&t, &status);
        let e = evaluation(json!({}));
        let status = KeptnEvaluationStatus {
            overall_status: KeptnState::Failed,
            start_time: ts("2026-11-23T01:00:00Z"),
            end_time: ts("2026-11-23T01:00:30Z"),
            ..Default::default()
        };
        metrics.evaluation_finished(&e, &status);
        metrics.evaluation_finished(&e, &status);
        // Finished without a startTime: counted, without a duration.
        let unstarted = task(json!({"metadata": {"name": "pre-hello-0"}}));
        let status = KeptnTaskStatus {
            status: KeptnState::Failed,
            end_time: ts("2026-11-23T01:00:12Z"),
            ..Default::default()
        };
        metrics.task_finished(&unstarted, &status);

        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let task_labels = r#"keptn_deployment_app_name="waiter",keptn_deployment_app_version="",keptn_deployment_workload_name="waiter-waiter",keptn_deployment_workload_version="0.4",keptn_deployment_task_name="pre-hello-12345",keptn_deployment_task_type="pre",keptn_deployment_task_status="Succeeded""#;
        let eval_labels = r#"keptn_deployment_app_name="waiter",keptn_deployment_app_version="",keptn_deployment_workload_name="waiter-waiter",keptn_deployment_workload_version="0.4",keptn_deployment_evaluation_name="pre-eval-ready-23456",keptn_deployment_evaluation_type="pre-eval",keptn_deployment_evaluation_status="Failed""#;
        for line in [
            format!("keptn_task_count_total{{{task_labels}}} 1"),
            format!("keptn_task_duration_seconds_sum{{{task_labels}}} 12.0"),
            format!("keptn_task_duration_seconds_count{{{task_labels}}} 1"),
            format!("keptn_evaluation_count_total{{{eval_labels}}} 2"),
            format!("keptn_evaluation_duration_seconds_sum{{{eval_labels}}} 60.0"),
            format!("keptn_evaluation_duration_seconds_bucket{{le=\"25.0\",{eval_labels}}} 0"),
            format!("keptn_evaluation_duration_seconds_bucket{{le=\"50.0\",{eval_labels}}} 2"),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(text.contains("# TYPE keptn_task_duration_seconds histogram"));
        assert!(text.contains("# TYPE keptn_task_count counter"));
        assert!(
            text.contains("# HELP keptn_task_duration_seconds Duration of finished KeptnTasks.\n")
        );
        assert!(
            text.contains(
                "# HELP keptn_evaluation_count Number of KeptnEvaluations that finished.\n"
            )
        );
        let unstarted = r#"keptn_deployment_task_name="pre-hello-0",keptn_deployment_task_type="pre",keptn_deployment_task_status="Failed""#;
        assert!(
            text.lines()
                .any(|l| l.starts_with("keptn_task_count_total{")
                    && l.ends_with(&format!("{unstarted}}} 1"))),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("keptn_task_duration_seconds_count{")
                    && l.contains(unstarted)),
            "{text}"
        );
    }
}
