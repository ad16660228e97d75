//! One attempt of a KeptnEvaluation (B §6.2): each objective's KeptnMetric compared with its
//! target, objectives that passed in an earlier attempt kept, at most `retries` attempts spaced
//! by `retryInterval`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
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
/// A KeptnMetric's value is stale once it is older than this many fetch intervals.
pub const STALE_AFTER_INTERVALS: u64 = 3;

/// A KeptnMetric as read for one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricFetch {
    /// `status.value` and `status.rawValue` (either may be empty), `status.lastUpdated` and
    /// `spec.fetchIntervalSeconds` (see [`is_stale`]).
    Found {
        value: String,
        raw_value: String,
        last_updated: Option<Time>,
        fetch_interval_seconds: u64,
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
    resolve_metric_in(objective, evaluation_namespace, install_namespace, source).1
}

/// [`resolve_metric`], with the namespace that decided (empty when none did).
fn resolve_metric_in<'a>(
    objective: &'a Objective,
    evaluation_namespace: &'a str,
    install_namespace: &'a str,
    source: &dyn MetricSource,
) -> (&'a str, MetricFetch) {
    for namespace in metric_namespaces(objective, evaluation_namespace, install_namespace) {
        match source.fetch(namespace, &objective.keptn_metric_ref.name) {
            MetricFetch::NotFound => continue,
            other => return (namespace, other),
        }
    }
    ("", MetricFetch::NotFound)
}

/// Whether a KeptnMetric's value is too old to compare: `lastUpdated` lies more than
/// [`STALE_AFTER_INTERVALS`] × `fetchIntervalSeconds` before `now` (exactly that long ago is
/// still fresh).
///
/// Departure from Keptn, which compares whatever value is stored. The bound is three intervals so
/// that one or two slow or failed fetches do not fail an evaluation, while a metrics controller
/// that stopped (or a provider that stopped answering) does.
///
/// Not stale, because there is nothing to judge by:
/// - a value without `lastUpdated` (e.g. a status patched by hand, as Keptn demos do, or written
///   by a tool that does not set it);
/// - `fetchIntervalSeconds: 0`, which states no refresh cadence (three times zero would refuse
///   every value not written in this very instant);
/// - a `lastUpdated` in the future (clock skew between the writer and this process).
pub fn is_stale(last_updated: Option<&Time>, fetch_interval_seconds: u64, now: Timestamp) -> bool {
    let Some(Time(last_updated)) = last_updated else {
        return false;
    };
    if fetch_interval_seconds == 0 {
        return false;
    }
    let bound_secs = fetch_interval_seconds.saturating_mul(STALE_AFTER_INTERVALS);
    let bound = SignedDuration::from_secs(i64::try_from(bound_secs).unwrap_or(i64::MAX));
    now.duration_since(*last_updated) > bound
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

/// Result of one objective in this attempt; `namespace` is where `metric` was read.
///
/// The item records the `lastUpdated` of the metric it read (when found). A stale value (see
/// [`is_stale`]) fails the objective like an empty one, but the item keeps the refused value so
/// that the status shows what was too old.
fn evaluate_objective(
    objective: &Objective,
    namespace: &str,
    metric: MetricFetch,
    now: Timestamp,
) -> EvaluationStatusItem {
    let name = &objective.keptn_metric_ref.name;
    let (value, last_updated) = match metric {
        MetricFetch::NotFound => {
            return failed(
                String::new(),
                format!("keptnmetrics.metrics.keptn.sh \"{name}\" not found"),
                None,
            );
        }
        MetricFetch::Error(e) => return failed(String::new(), e, None),
        MetricFetch::Found {
            value,
            last_updated,
            ..
        } if value.is_empty() => {
            return failed(
                String::new(),
                format!("empty value for: {name}"),
                last_updated,
            );
        }
        MetricFetch::Found {
            raw_value,
            last_updated,
            ..
        } if raw_value.is_empty() => {
            return failed(
                String::new(),
                format!("empty rawValue for: {name}"),
                last_updated,
            );
        }
        MetricFetch::Found {
            value,
            last_updated,
            fetch_interval_seconds,
            ..
        } => {
            if is_stale(last_updated.as_ref(), fetch_interval_seconds, now) {
                let when = last_updated.as_ref().map(|t| t.0).unwrap_or_default();
                return failed(
                    value,
                    format!(
                        "value of KeptnMetric {namespace}/{name} is stale: last updated {when}, \
                         more than {STALE_AFTER_INTERVALS} × fetchIntervalSeconds \
                         ({fetch_interval_seconds}s) ago"
                    ),
                    last_updated,
                );
            }
            (value, last_updated)
        }
    };
    let target = &objective.evaluation_target;
    match check_value(&value, target) {
        Err(message) => failed(value, message, last_updated),
        Ok(true) => EvaluationStatusItem {
            message: format!("value '{value}' met objective '{target}'"),
            value,
            status: KeptnState::Succeeded,
            last_updated,
        },
        Ok(false) => failed(
            value.clone(),
            format!("value '{value}' did not meet objective '{target}'"),
            last_updated,
        ),
    }
}

fn failed(value: String, message: String, last_updated: Option<Time>) -> EvaluationStatusItem {
    EvaluationStatusItem {
        value,
        status: KeptnState::Failed,
        message,
        last_updated,
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
        let (found_in, metric) =
            resolve_metric_in(objective, namespace, install_namespace, metrics);
        let item = evaluate_objective(objective, found_in, metric, now);
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
