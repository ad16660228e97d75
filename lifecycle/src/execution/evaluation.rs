//! One attempt of a KeptnEvaluation (B §6.2): each objective's KeptnMetric compared with its
//! target, objectives that passed in an earlier attempt kept, at most `retries` attempts spaced
//! by `retryInterval`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use shared::crd::{
    EvaluationStatusItem, KeptnEvaluation, KeptnEvaluationDefinition, KeptnEvaluationStatus,
    KeptnState, Objective,
};

use super::{CheckEvent, ObjectId};

/// B §3.13: an evaluation whose definition is missing looks again after 10 s (not an attempt).
pub const MISSING_DEFINITION_RETRY: Duration = Duration::from_secs(10);
/// `retryInterval`'s CRD default, used when a stored value cannot be parsed.
const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// A KeptnMetric as read for one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricFetch {
    /// `status.value` and `status.rawValue` (either may be empty).
    Found {
        value: String,
        raw_value: String,
    },
    NotFound,
    /// Any other read failure, as text.
    Error(String),
}

/// Where an attempt reads KeptnMetrics from.
pub trait MetricSource {
    fn fetch(&self, namespace: &str, name: &str) -> MetricFetch;
}

/// Metrics read beforehand, keyed by (namespace, name); a key never read counts as not found.
impl MetricSource for HashMap<(String, String), MetricFetch> {
    fn fetch(&self, namespace: &str, name: &str) -> MetricFetch {
        self.get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or(MetricFetch::NotFound)
    }
}

/// B §6.2 lookup order of an objective's KeptnMetric: `keptnMetricRef.namespace` alone when given
/// (no fallback), else the evaluation's namespace, then the Keptn namespace.
pub fn metric_namespaces<'a>(
    objective: &'a Objective,
    evaluation_namespace: &'a str,
    install_namespace: &'a str,
) -> Vec<&'a str> {
    let explicit = &objective.keptn_metric_ref.namespace;
    if !explicit.is_empty() {
        vec![explicit.as_str()]
    } else {
        super::definition_namespaces(evaluation_namespace, install_namespace)
    }
}

/// Follows [`metric_namespaces`]: the first namespace that does not answer "not found" decides.
pub fn resolve_metric(
    objective: &Objective,
    evaluation_namespace: &str,
    install_namespace: &str,
    source: &dyn MetricSource,
) -> MetricFetch {
    for namespace in metric_namespaces(objective, evaluation_namespace, install_namespace) {
        match source.fetch(namespace, &objective.keptn_metric_ref.name) {
            MetricFetch::NotFound => continue,
            other => return other,
        }
    }
    MetricFetch::NotFound
}

/// B §6.2 comparison: the target's first character is the operator (`<` or `>`, strict), the
/// rest a float. Errors carry Keptn's texts ("no values", "invalid operator", or Go's
/// `strconv.ParseFloat` error); the value is parsed first, then the target, then the operator
/// is checked. A NaN value meets nothing.
pub fn check_value(value: &str, target: &str) -> Result<bool, String> {
    if value.is_empty() || target.is_empty() {
        return Err("no values".into());
    }
    let mut chars = target.chars();
    let operator = chars.next();
    let threshold = chars.as_str();
    let value = parse_float(value)?;
    let threshold = parse_float(threshold)?;
    match operator {
        Some('>') => Ok(value > threshold),
        Some('<') => Ok(value < threshold),
        _ => Err("invalid operator".into()),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` as far as metric values go, with its error texts.
fn parse_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {s:?}: invalid syntax");
    // Rust accepts forms Go rejects ("inf" is fine in both, but not e.g. a leading '+' on NaN).
    let v: f64 = s.parse().map_err(|_| syntax())?;
    let lower = s.to_ascii_lowercase();
    if v.is_infinite() && !lower.contains("inf") {
        return Err(format!(
            "strconv.ParseFloat: parsing {s:?}: value out of range"
        ));
    }
    Ok(v)
}

/// Result of one objective in this attempt.
fn evaluate_objective(objective: &Objective, metric: MetricFetch) -> EvaluationStatusItem {
    let name = &objective.keptn_metric_ref.name;
    let failed = |value: String, message: String| EvaluationStatusItem {
        value,
        status: KeptnState::Failed,
        message,
    };
    let value = match metric {
        MetricFetch::NotFound => {
            return failed(
                String::new(),
                format!("keptnmetrics.metrics.keptn.sh \"{name}\" not found"),
            );
        }
        MetricFetch::Error(e) => return failed(String::new(), e),
        MetricFetch::Found { value, .. } if value.is_empty() => {
            return failed(String::new(), format!("empty value for: {name}"));
        }
        MetricFetch::Found { raw_value, .. } if raw_value.is_empty() => {
            return failed(String::new(), format!("empty rawValue for: {name}"));
        }
        MetricFetch::Found { value, .. } => value,
    };
    let target = &objective.evaluation_target;
    match check_value(&value, target) {
        Err(message) => failed(value, message),
        Ok(true) => EvaluationStatusItem {
            message: format!("value '{value}' met objective '{target}'"),
            value,
            status: KeptnState::Succeeded,
        },
        Ok(false) => failed(
            value.clone(),
            format!("value '{value}' did not meet objective '{target}'"),
        ),
    }
}

/// What the shell does for an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum EvaluationAction {
    /// Finished and recorded: nothing to write, no requeue.
    Done,
    /// The definition is missing: write `status` when given (startTime), look again after
    /// [`MISSING_DEFINITION_RETRY`]; not an attempt.
    MissingDefinition {
        status: Option<KeptnEvaluationStatus>,
    },
    /// `retryCount` reached `retries`: write the Failed `status`, publish the Warning
    /// `ReconcileEvaluationReconcileTimeout`, count it; no requeue.
    Exhausted {
        status: KeptnEvaluationStatus,
        event: CheckEvent,
    },
    /// Write `status`; `finished` when the evaluation just completed (count it). Not finished
    /// -> requeue after `requeue` (the retry interval).
    Attempted {
        status: KeptnEvaluationStatus,
        finished: bool,
        requeue: Option<Duration>,
    },
}

/// The retry interval, or the CRD default when the stored value does not parse.
pub fn retry_interval(evaluation: &KeptnEvaluation) -> Duration {
    evaluation
        .spec
        .retry_interval
        .to_std()
        .unwrap_or(DEFAULT_RETRY_INTERVAL)
}

fn evaluation_version(evaluation: &KeptnEvaluation) -> &str {
    if evaluation.spec.workload_version.is_empty() {
        &evaluation.spec.app_version
    } else {
        &evaluation.spec.workload_version
    }
}

/// The objectives this attempt must read a KeptnMetric for (those not already succeeded).
pub fn objectives_to_fetch<'a>(
    evaluation: &KeptnEvaluation,
    definition: &'a KeptnEvaluationDefinition,
) -> Vec<&'a Objective> {
    let previous = evaluation.status.as_ref().map(|s| &s.evaluation_status);
    definition
        .spec
        .objectives
        .iter()
        .filter(|o| !already_succeeded(previous, o))
        .collect()
}

fn already_succeeded(
    previous: Option<&BTreeMap<String, EvaluationStatusItem>>,
    objective: &Objective,
) -> bool {
    previous
        .and_then(|p| p.get(&objective.keptn_metric_ref.name))
        .is_some_and(|item| item.status == KeptnState::Succeeded)
}

/// One reconcile of a KeptnEvaluation (B §6.2).
///
/// Departure from Keptn: a completed evaluation (Succeeded or Failed with `endTime`) is final;
/// Keptn checks the retry limit first and so turns an evaluation that succeeded on its last
/// attempt into Failed when it is reconciled again.
pub fn attempt_evaluation(
    evaluation: &KeptnEvaluation,
    definition: Option<&KeptnEvaluationDefinition>,
    metrics: &dyn MetricSource,
    install_namespace: &str,
    now: Timestamp,
) -> EvaluationAction {
    let current = evaluation.status.clone().unwrap_or_default();
    let mut status = current.clone();
    if status.start_time.is_none() {
        status.start_time = Some(Time(now));
    }
    if status.overall_status.is_completed() {
        if status.end_time.is_some() {
            return EvaluationAction::Done;
        }
        status.end_time = Some(Time(now));
        return EvaluationAction::Attempted {
            status,
            finished: true,
            requeue: None,
        };
    }
    if status.retry_count >= evaluation.spec.retries {
        status.overall_status = KeptnState::Failed;
        status.end_time = Some(Time(now));
        let id = evaluation_id(evaluation);
        return EvaluationAction::Exhausted {
            status,
            event: CheckEvent::warning(
                "ReconcileEvaluation",
                "ReconcileTimeout",
                "Reconcile Evaluation",
                "retryCount exceeded",
                &id,
            ),
        };
    }
    let Some(definition) = definition else {
        return EvaluationAction::MissingDefinition {
            status: (status != current).then_some(status),
        };
    };
    let namespace = evaluation.metadata.namespace.as_deref().unwrap_or_default();
    let previous = current.evaluation_status;
    let mut results = BTreeMap::new();
    let mut all_succeeded = true;
    for objective in &definition.spec.objectives {
        let key = objective.keptn_metric_ref.name.clone();
        if already_succeeded(Some(&previous), objective) {
            if let Some(item) = previous.get(&key) {
                results.insert(key, item.clone());
            }
            continue;
        }
        let metric = resolve_metric(objective, namespace, install_namespace, metrics);
        let item = evaluate_objective(objective, metric);
        all_succeeded &= item.status == KeptnState::Succeeded;
        results.insert(key, item);
    }
    status.retry_count += 1;
    status.evaluation_status = results;
    if all_succeeded {
        status.overall_status = KeptnState::Succeeded;
        status.end_time = Some(Time(now));
        EvaluationAction::Attempted {
            status,
            finished: true,
            requeue: None,
        }
    } else {
        status.overall_status = KeptnState::Progressing;
        EvaluationAction::Attempted {
            status,
            finished: false,
            requeue: Some(retry_interval(evaluation)),
        }
    }
}

fn evaluation_id(evaluation: &KeptnEvaluation) -> ObjectId<'_> {
    ObjectId {
        namespace: evaluation.metadata.namespace.as_deref().unwrap_or_default(),
        name: evaluation.metadata.name.as_deref().unwrap_or_default(),
        version: evaluation_version(evaluation),
    }
}

/// B §6.2 step 4: Warning `ReconcileEvaluationReconcileError` when the status cannot be written.
pub fn status_write_failed_event(evaluation: &KeptnEvaluation) -> CheckEvent {
    CheckEvent::warning(
        "ReconcileEvaluation",
        "ReconcileError",
        "Reconcile Evaluation",
        "could not update status",
        &evaluation_id(evaluation),
    )
}
