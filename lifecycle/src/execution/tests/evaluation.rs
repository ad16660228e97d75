use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use shared::crd::{
    KeptnEvaluation, KeptnEvaluationDefinition, KeptnEvaluationStatus, KeptnState, Objective,
};

use super::{ENDED, STARTED, evaluation, evaluation_definition, now};
use crate::execution::evaluation::{
    MISSING_DEFINITION_RETRY, STALE_AFTER_INTERVALS, is_stale, objectives_to_fetch, resolve_metric,
};
use crate::execution::{
    EvaluationAction, MetricFetch, MetricSource, attempt_evaluation, check_value, metric_namespaces,
};

const INSTALL: &str = "keptn-system";

/// Metrics by (namespace, name) that records what was asked.
#[derive(Default)]
struct Metrics {
    found: HashMap<(String, String), MetricFetch>,
    asked: RefCell<Vec<(String, String)>>,
}

impl Metrics {
    fn with(mut self, ns: &str, name: &str, value: &str) -> Self {
        self.found.insert(
            (ns.into(), name.into()),
            MetricFetch::Found {
                value: value.into(),
                raw_value: if value.is_empty() {
                    String::new()
                } else {
                    "cmF3".into()
                },
                last_updated: None,
                fetch_interval_seconds: 0,
            },
        );
        self
    }

    /// A metric with `value` fetched at `last_updated` (RFC 3339) every `interval` seconds.
    fn fetched(self, ns: &str, name: &str, value: &str, last_updated: &str, interval: u64) -> Self {
        self.raw(
            ns,
            name,
            MetricFetch::Found {
                value: value.into(),
                raw_value: "cmF3".into(),
                last_updated: Some(time(last_updated)),
                fetch_interval_seconds: interval,
            },
        )
    }

    fn raw(mut self, ns: &str, name: &str, fetch: MetricFetch) -> Self {
        self.found.insert((ns.into(), name.into()), fetch);
        self
    }
}

impl MetricSource for Metrics {
    fn fetch(&self, namespace: &str, name: &str) -> MetricFetch {
        self.asked
            .borrow_mut()
            .push((namespace.into(), name.into()));
        self.found.fetch(namespace, name)
    }
}

fn time(rfc3339: &str) -> Time {
    Time(rfc3339.parse().expect("RFC 3339 time"))
}

fn objective(name: &str, namespace: &str, target: &str) -> Value {
    let mut r = json!({"name": name});
    if !namespace.is_empty() {
        r["namespace"] = json!(namespace);
    }
    json!({"keptnMetricRef": r, "evaluationTarget": target})
}

/// Objectives `cpu < 80` and `ready > 0`, metrics in the evaluation's namespace.
fn cpu_and_ready() -> KeptnEvaluationDefinition {
    evaluation_definition(json!([
        objective("cpu", "", "<80"),
        objective("ready", "", ">0")
    ]))
}

/// The objective `cpu < 80`.
fn cpu_below_80() -> KeptnEvaluationDefinition {
    evaluation_definition(json!([objective("cpu", "", "<80")]))
}

/// The default evaluation with a status: `evaluated(1, "Progressing").started().build()`.
struct Evaluated(Value);

/// After `retry_count` attempts, `overallStatus` as given, no results yet.
fn evaluated(retry_count: u32, overall_status: &str) -> Evaluated {
    Evaluated(json!({
        "retryCount": retry_count, "overallStatus": overall_status, "evaluationStatus": {},
    }))
}

impl Evaluated {
    /// `evaluationStatus`: the result of each objective.
    fn results(mut self, results: Value) -> Self {
        self.0["evaluationStatus"] = results;
        self
    }

    /// `startTime` [`STARTED`].
    fn started(mut self) -> Self {
        self.0["startTime"] = json!(STARTED);
        self
    }

    /// `endTime` [`ENDED`].
    fn ended(mut self) -> Self {
        self.0["endTime"] = json!(ENDED);
        self
    }

    fn build(self) -> KeptnEvaluation {
        evaluation(json!({"status": self.0}))
    }
}

/// One attempt at `ev` with the Keptn namespace [`INSTALL`], [`now`].
fn evaluate(
    ev: &KeptnEvaluation,
    def: Option<&KeptnEvaluationDefinition>,
    metrics: &Metrics,
) -> EvaluationAction {
    attempt_evaluation(ev, def, metrics, INSTALL, now())
}

fn attempted(action: EvaluationAction) -> (KeptnEvaluationStatus, bool, Option<Duration>) {
    match action {
        EvaluationAction::Attempted {
            status,
            finished,
            requeue,
        } => (status, finished, requeue),
        other => panic!("expected Attempted, got {other:?}"),
    }
}

#[test]
fn b6_2_check_value_operators_and_errors() {
    let rows: [(&str, &str, &str, Result<bool, &str>); 16] = [
        ("less_met", "3", "<5", Ok(true)),
        ("less_strict", "5", "<5", Ok(false)),
        ("greater_met", "10", ">5", Ok(true)),
        ("greater_strict", "5", ">5", Ok(false)),
        ("floats", "0.25", "<0.5", Ok(true)),
        ("negative_target", "-2", ">-3", Ok(true)),
        ("exponent", "1e3", ">999", Ok(true)),
        ("nan_never_meets", "NaN", "<5", Ok(false)),
        ("nan_never_meets_gt", "NaN", ">5", Ok(false)),
        ("empty_value", "", "<5", Err("no values")),
        ("empty_target", "3", "", Err("no values")),
        (
            "equals_is_invalid_operator",
            "3",
            "=3",
            Err("invalid operator"),
        ),
        (
            "less_equal_is_parse_error",
            "3",
            "<=5",
            Err("strconv.ParseFloat: parsing \"=5\": invalid syntax"),
        ),
        (
            "double_equals_parse_error",
            "3",
            "==3",
            Err("strconv.ParseFloat: parsing \"=3\": invalid syntax"),
        ),
        (
            "value_not_a_number",
            "abc",
            "<5",
            Err("strconv.ParseFloat: parsing \"abc\": invalid syntax"),
        ),
        (
            "out_of_range",
            "1e400",
            "<5",
            Err("strconv.ParseFloat: parsing \"1e400\": value out of range"),
        ),
    ];
    for (name, value, target, want) in rows {
        assert_eq!(
            check_value(value, target),
            want.map_err(str::to_owned),
            "{name}"
        );
    }
}

#[test]
fn b6_2_metric_lookup_order() {
    let o = |ns: &str| -> Objective { serde_json::from_value(objective("m", ns, "<1")).unwrap() };
    assert_eq!(
        metric_namespaces(&o(""), "app", INSTALL),
        vec!["app", INSTALL]
    );
    assert_eq!(
        metric_namespaces(&o("metrics"), "app", INSTALL),
        vec!["metrics"]
    );
    assert_eq!(metric_namespaces(&o(""), INSTALL, INSTALL), vec![INSTALL]);

    // Falls back to the Keptn namespace only when not found in the evaluation's.
    let m = Metrics::default().with(INSTALL, "m", "1");
    assert!(matches!(
        resolve_metric(&o(""), "app", INSTALL, &m),
        MetricFetch::Found { .. }
    ));
    assert_eq!(
        *m.asked.borrow(),
        vec![
            ("app".to_owned(), "m".to_owned()),
            (INSTALL.to_owned(), "m".to_owned())
        ]
    );
    // An explicit namespace has no fallback.
    let m = Metrics::default().with(INSTALL, "m", "1");
    assert_eq!(
        resolve_metric(&o("metrics"), "app", INSTALL, &m),
        MetricFetch::NotFound
    );
    assert_eq!(
        *m.asked.borrow(),
        vec![("metrics".to_owned(), "m".to_owned())]
    );
    // A read error stops the search.
    let m = Metrics::default()
        .raw("app", "m", MetricFetch::Error("forbidden".into()))
        .with(INSTALL, "m", "1");
    assert_eq!(
        resolve_metric(&o(""), "app", INSTALL, &m),
        MetricFetch::Error("forbidden".into())
    );
}

#[test]
fn b6_2_all_objectives_met_succeeds_and_finishes() {
    let def = cpu_and_ready();
    let m = Metrics::default()
        .with("app", "cpu", "42")
        .with("app", "ready", "3");
    let (status, finished, requeue) = attempted(evaluate(&evaluation(json!({})), Some(&def), &m));
    assert_eq!(status.overall_status, KeptnState::Succeeded);
    assert_eq!(status.retry_count, 1);
    assert_eq!(status.start_time, Some(Time(now())));
    assert_eq!(status.end_time, Some(Time(now())));
    assert!(finished);
    assert_eq!(requeue, None);
    assert_eq!(
        serde_json::to_value(&status.evaluation_status).unwrap(),
        json!({
            "cpu": {"value": "42", "status": "Succeeded", "message": "value '42' met objective '<80'"},
            "ready": {"value": "3", "status": "Succeeded", "message": "value '3' met objective '>0'"},
        })
    );
}

#[test]
fn b6_2_failed_attempt_is_progressing_and_requeued_after_retry_interval() {
    let def = cpu_and_ready();
    let m = Metrics::default()
        .with("app", "cpu", "95")
        .with("app", "ready", "3");
    let ev = evaluated(1, "Progressing").started().build();
    let (status, finished, requeue) = attempted(evaluate(&ev, Some(&def), &m));
    assert_eq!(status.overall_status, KeptnState::Progressing);
    assert_eq!(status.retry_count, 2);
    assert_eq!(status.end_time, None);
    assert!(!finished);
    assert_eq!(requeue, Some(Duration::from_secs(7)), "spec.retryInterval");
    assert_eq!(
        status.evaluation_status["cpu"].message,
        "value '95' did not meet objective '<80'"
    );
    assert_eq!(status.evaluation_status["cpu"].status, KeptnState::Failed);
    assert_eq!(status.evaluation_status["cpu"].value, "95");
}

#[test]
fn b6_2_objective_that_succeeded_earlier_is_kept_and_not_read_again() {
    let def = cpu_and_ready();
    let ev = evaluated(1, "Progressing")
        .results(json!({
            "cpu": {"value": "42", "status": "Succeeded", "message": "value '42' met objective '<80'"},
            "ready": {"value": "0", "status": "Failed", "message": "value '0' did not meet objective '>0'"},
            "gone": {"value": "1", "status": "Failed", "message": "removed from the definition"},
        }))
        .build();
    // cpu now breaks its objective, but it already passed: kept.
    let m = Metrics::default()
        .with("app", "cpu", "99")
        .with("app", "ready", "2");
    let (status, finished, _) = attempted(evaluate(&ev, Some(&def), &m));
    assert_eq!(status.overall_status, KeptnState::Succeeded);
    assert!(finished);
    assert_eq!(status.evaluation_status["cpu"].value, "42");
    assert!(
        !status.evaluation_status.contains_key("gone"),
        "replaced by this attempt's results"
    );
    assert!(m.asked.borrow().iter().all(|(_, n)| n != "cpu"));
    let to_fetch: Vec<&str> = objectives_to_fetch(&ev, &def)
        .iter()
        .map(|o| o.keptn_metric_ref.name.as_str())
        .collect();
    assert_eq!(to_fetch, ["ready"]);
}

#[test]
fn b6_2_metric_problems_fail_the_objective_with_keptn_messages() {
    let def = evaluation_definition(json!([
        objective("novalue", "", "<1"),
        objective("noraw", "", "<1"),
        objective("missing", "", "<1"),
        objective("broken", "", "<1"),
        objective("badtarget", "", "=1"),
    ]));
    let m = Metrics::default()
        .raw(
            "app",
            "novalue",
            MetricFetch::Found {
                value: String::new(),
                raw_value: "eA==".into(),
                last_updated: None,
                fetch_interval_seconds: 0,
            },
        )
        .raw(
            "app",
            "noraw",
            MetricFetch::Found {
                value: "0".into(),
                raw_value: String::new(),
                last_updated: None,
                fetch_interval_seconds: 0,
            },
        )
        .raw(
            "app",
            "broken",
            MetricFetch::Error("the server is on fire".into()),
        )
        .with("app", "badtarget", "0");
    let (status, _, _) = attempted(evaluate(&evaluation(json!({})), Some(&def), &m));
    let msg = |k: &str| status.evaluation_status[k].message.clone();
    assert_eq!(msg("novalue"), "empty value for: novalue");
    assert_eq!(msg("noraw"), "empty rawValue for: noraw");
    assert_eq!(
        msg("missing"),
        "keptnmetrics.metrics.keptn.sh \"missing\" not found"
    );
    assert_eq!(msg("broken"), "the server is on fire");
    assert_eq!(msg("badtarget"), "invalid operator");
    assert_eq!(status.evaluation_status["badtarget"].value, "0");
    assert!(
        status
            .evaluation_status
            .values()
            .all(|i| i.status == KeptnState::Failed)
    );
    assert_eq!(status.overall_status, KeptnState::Progressing);
}

#[test]
fn b6_2_retries_exhausted_fails_with_timeout_event() {
    let def = cpu_below_80();
    let ev = evaluated(3, "Progressing")
        .results(json!({"cpu": {"value": "95", "status": "Failed", "message": "m"}}))
        .started()
        .build();
    let m = Metrics::default().with("app", "cpu", "1");
    let EvaluationAction::Exhausted { status, event } = evaluate(&ev, Some(&def), &m) else {
        panic!("expected Exhausted");
    };
    assert_eq!(status.overall_status, KeptnState::Failed);
    assert_eq!(status.retry_count, 3, "no further attempt");
    assert_eq!(status.end_time, Some(Time(now())));
    assert!(m.asked.borrow().is_empty(), "no metric read");
    assert!(event.warning);
    assert_eq!(event.reason, "ReconcileEvaluationReconcileTimeout");
    assert_eq!(
        event.message,
        "Reconcile Evaluation: retryCount exceeded / Namespace: app, Name: pre-eval-ready-23456, Version: 0.4"
    );
}

#[test]
fn b6_2_zero_retries_fails_without_an_attempt() {
    let ev = evaluation(
        json!({"spec": {"evaluationDefinition": "ready", "workloadVersion": "", "retries": 0}}),
    );
    let action = evaluate(&ev, None, &Metrics::default());
    assert!(
        matches!(action, EvaluationAction::Exhausted { .. }),
        "{action:?}"
    );
}

#[test]
fn b6_2_last_attempt_then_exhausted_sequence() {
    // retries: 3 -> attempts 1, 2, 3 fail, the next reconcile fails the evaluation.
    let def = cpu_below_80();
    let m = Metrics::default().with("app", "cpu", "95");
    let mut ev = evaluation(json!({}));
    for attempt in 1..=3 {
        let (status, finished, _) = attempted(evaluate(&ev, Some(&def), &m));
        assert_eq!(status.retry_count, attempt);
        assert!(!finished);
        ev.status = Some(status);
    }
    assert!(matches!(
        evaluate(&ev, Some(&def), &m),
        EvaluationAction::Exhausted { .. }
    ));
}

#[test]
fn b3_13_missing_definition_is_not_an_attempt() {
    let ev = evaluation(json!({}));
    let EvaluationAction::MissingDefinition { status } = evaluate(&ev, None, &Metrics::default())
    else {
        panic!("expected MissingDefinition");
    };
    let status = status.expect("startTime is written");
    assert_eq!(status.retry_count, 0);
    assert_eq!(status.start_time, Some(Time(now())));
    assert_eq!(MISSING_DEFINITION_RETRY, Duration::from_secs(10));
    // With startTime already set there is nothing to write.
    let ev = evaluated(0, "Pending").started().build();
    assert_eq!(
        evaluate(&ev, None, &Metrics::default()),
        EvaluationAction::MissingDefinition { status: None }
    );
}

#[test]
fn b6_2_finished_evaluation_is_final() {
    let def = cpu_below_80();
    let m = Metrics::default().with("app", "cpu", "95");
    // Succeeded on its last attempt (retryCount == retries): stays Succeeded (Keptn would fail it).
    let ev = evaluated(3, "Succeeded").started().ended().build();
    assert_eq!(evaluate(&ev, Some(&def), &m), EvaluationAction::Done);
    // Succeeded without endTime: the end is recorded once.
    let ev = evaluated(1, "Succeeded").build();
    let (status, finished, requeue) = attempted(evaluate(&ev, Some(&def), &m));
    assert_eq!(status.overall_status, KeptnState::Succeeded);
    assert_eq!(status.end_time, Some(Time(now())));
    assert!(finished);
    assert_eq!(requeue, None);
    assert!(m.asked.borrow().is_empty());
}

#[test]
fn b6_2_same_metric_name_in_two_namespaces_collides_on_one_key() {
    let def = evaluation_definition(json!([
        objective("m", "a", "<5"),
        objective("m", "b", "<5")
    ]));
    let m = Metrics::default().with("a", "m", "1").with("b", "m", "9");
    let (status, finished, _) = attempted(evaluate(&evaluation(json!({})), Some(&def), &m));
    assert_eq!(status.evaluation_status.len(), 1);
    assert_eq!(
        status.evaluation_status["m"].value, "9",
        "the later objective's result"
    );
    assert_eq!(status.overall_status, KeptnState::Progressing);
    assert!(!finished);
}

#[test]
fn b3_6_failure_lines_from_an_attempt() {
    let def = cpu_below_80();
    let m = Metrics::default().with("app", "cpu", "95");
    let (status, _, _) = attempted(evaluate(&evaluation(json!({})), Some(&def), &m));
    assert_eq!(
        shared::checks::evaluation_failure_lines(&status),
        vec![
            "evaluation of 'cpu' failed with value: '95' and reason: 'value '95' did not meet objective '<80''"
        ]
    );
}

#[test]
fn b6_2_unparsable_retry_interval_falls_back_to_the_default() {
    // The CRD pattern accepts anything starting with "0"; Go's parser does not.
    let def = cpu_below_80();
    let m = Metrics::default().with("app", "cpu", "95");
    let ev = evaluation(
        json!({"spec": {"evaluationDefinition": "ready", "workloadVersion": "0.4",
        "retries": 3, "retryInterval": "0x"}}),
    );
    let (_, _, requeue) = attempted(evaluate(&ev, Some(&def), &m));
    assert_eq!(requeue, Some(Duration::from_secs(5)));
}

// ---------------------------------------------------------------------------------------------
// Stale metric values (a Portcullis addition): older than 3 × fetchIntervalSeconds is refused.

#[test]
fn stale_rule_bounds() {
    let now = now(); // 2026-11-23T01:00:00Z
    let at = |t: &str| Some(time(t));
    assert_eq!(STALE_AFTER_INTERVALS, 3);
    // Exactly three intervals ago is still fresh; a second more is stale.
    assert!(!is_stale(at("2026-11-23T00:59:30Z").as_ref(), 10, now));
    assert!(is_stale(at("2026-11-23T00:59:29Z").as_ref(), 10, now));
    assert!(is_stale(at("2026-11-23T00:59:29.999Z").as_ref(), 10, now));
    assert!(!is_stale(at("2026-11-23T00:59:59Z").as_ref(), 10, now));
    // Nothing to judge by: no lastUpdated, no interval, or a lastUpdated in the future.
    assert!(!is_stale(None, 10, now));
    assert!(!is_stale(at("2020-01-01T00:00:00Z").as_ref(), 0, now));
    assert!(!is_stale(at("2026-11-23T02:00:00Z").as_ref(), 10, now));
    // A huge interval does not overflow.
    assert!(!is_stale(
        at("1970-01-01T00:00:00Z").as_ref(),
        u64::MAX,
        now
    ));
}

#[test]
fn fresh_value_passes_and_the_result_records_value_and_last_updated() {
    let def = cpu_below_80();
    // 30 s old with a 10 s interval: exactly three intervals, still fresh.
    let m = Metrics::default().fetched("app", "cpu", "42", "2026-11-23T00:59:30Z", 10);
    let (status, finished, requeue) = attempted(evaluate(&evaluation(json!({})), Some(&def), &m));
    assert_eq!(status.overall_status, KeptnState::Succeeded);
    assert!(finished);
    assert_eq!(requeue, None);
    let cpu = &status.evaluation_status["cpu"];
    assert_eq!(cpu.value, "42");
    assert_eq!(cpu.last_updated, Some(time("2026-11-23T00:59:30Z")));
    assert_eq!(
        serde_json::to_value(&status.evaluation_status).unwrap(),
        json!({
            "cpu": {
                "value": "42", "status": "Succeeded", "message": "value '42' met objective '<80'",
                "lastUpdated": "2026-11-23T00:59:30Z",
            },
        })
    );
}

#[test]
fn value_older_than_three_intervals_fails_the_attempt_and_retries_continue() {
    let def = cpu_below_80();
    let stale = Metrics::default().fetched("app", "cpu", "42", "2026-11-23T00:59:29Z", 10);
    let (status, finished, requeue) =
        attempted(evaluate(&evaluation(json!({})), Some(&def), &stale));
    let cpu = &status.evaluation_status["cpu"];
    assert_eq!(cpu.status, KeptnState::Failed);
    assert_eq!(
        cpu.message,
        "value of KeptnMetric app/cpu is stale: last updated 2026-11-23T00:59:29Z, \
         more than 3 × fetchIntervalSeconds (10s) ago"
    );
    assert_eq!(cpu.value, "42", "the refused value is shown");
    assert_eq!(cpu.last_updated, Some(time("2026-11-23T00:59:29Z")));
    // An ordinary failed attempt: progressing, counted, requeued after retryInterval.
    assert_eq!(status.overall_status, KeptnState::Progressing);
    assert_eq!(status.retry_count, 1);
    assert!(!finished);
    assert_eq!(requeue, Some(Duration::from_secs(7)));
    assert_eq!(
        shared::checks::evaluation_failure_lines(&status),
        vec![
            "evaluation of 'cpu' failed with value: '42' and reason: 'value of KeptnMetric app/cpu is \
             stale: last updated 2026-11-23T00:59:29Z, more than 3 × fetchIntervalSeconds (10s) ago'"
        ]
    );

    // The next attempt reads a refreshed value and succeeds.
    let mut ev = evaluation(json!({}));
    ev.status = Some(status);
    let fresh = Metrics::default().fetched("app", "cpu", "42", "2026-11-23T00:59:55Z", 10);
    let (status, finished, _) = attempted(evaluate(&ev, Some(&def), &fresh));
    assert_eq!(status.overall_status, KeptnState::Succeeded);
    assert_eq!(status.retry_count, 2);
    assert!(finished);
    assert_eq!(
        status.evaluation_status["cpu"].last_updated,
        Some(time("2026-11-23T00:59:55Z"))
    );
}

#[test]
fn stale_value_until_retries_are_exhausted() {
    let def = cpu_below_80();
    let m = Metrics::default().fetched("app", "cpu", "1", "2026-11-23T00:00:00Z", 60);
    let mut ev = evaluation(json!({}));
    for attempt in 1..=3 {
        let (status, finished, _) = attempted(evaluate(&ev, Some(&def), &m));
        assert_eq!(status.retry_count, attempt);
        assert!(!finished);
        assert!(
            status.evaluation_status["cpu"]
                .message
                .contains("is stale: last updated 2026-11-23T00:00:00Z, more than 3 × fetchIntervalSeconds (60s) ago"),
            "{:?}",
            status.evaluation_status["cpu"]
        );
        ev.status = Some(status);
    }
    assert!(matches!(
        evaluate(&ev, Some(&def), &m),
        EvaluationAction::Exhausted { .. }
    ));
}

#[test]
fn stale_message_names_the_namespace_the_metric_was_found_in() {
    // Not in the evaluation's namespace: found in the Keptn namespace.
    let def = cpu_below_80();
    let m = Metrics::default().fetched(INSTALL, "cpu", "1", "2026-11-23T00:50:00Z", 5);
    let (status, _, _) = attempted(evaluate(&evaluation(json!({})), Some(&def), &m));
    assert_eq!(
        status.evaluation_status["cpu"].message,
        "value of KeptnMetric keptn-system/cpu is stale: last updated 2026-11-23T00:50:00Z, \
         more than 3 × fetchIntervalSeconds (5s) ago"
    );
}

#[test]
fn value_without_last_updated_or_interval_is_accepted() {
    let def = cpu_and_ready();
    let m = Metrics::default()
        // A status patched by hand: no lastUpdated, nothing to judge its age by.
        .raw(
            "app",
            "cpu",
            MetricFetch::Found {
                value: "42".into(),
                raw_value: "cmF3".into(),
                last_updated: None,
                fetch_interval_seconds: 10,
            },
        )
        // fetchIntervalSeconds 0 states no cadence: an old value is not stale.
        .fetched("app", "ready", "3", "2026-01-01T00:00:00Z", 0);
    let (status, finished, _) = attempted(evaluate(&evaluation(json!({})), Some(&def), &m));
    assert_eq!(status.overall_status, KeptnState::Succeeded);
    assert!(finished);
    assert_eq!(status.evaluation_status["cpu"].last_updated, None);
    assert_eq!(
        status.evaluation_status["ready"].last_updated,
        Some(time("2026-01-01T00:00:00Z"))
    );
    assert_eq!(
        serde_json::to_value(&status.evaluation_status["cpu"]).unwrap(),
        json!({"value": "42", "status": "Succeeded", "message": "value '42' met objective '<80'"}),
        "no lastUpdated written"
    );
}

#[test]
fn failed_comparison_records_last_updated_and_missing_metric_none() {
    let def = evaluation_definition(json!([
        objective("cpu", "", "<80"),
        objective("missing", "", "<1"),
    ]));
    let m = Metrics::default().fetched("app", "cpu", "95", "2026-11-23T00:59:50Z", 10);
    let (status, _, _) = attempted(evaluate(&evaluation(json!({})), Some(&def), &m));
    let cpu = &status.evaluation_status["cpu"];
    assert_eq!(cpu.message, "value '95' did not meet objective '<80'");
    assert_eq!(cpu.last_updated, Some(time("2026-11-23T00:59:50Z")));
    assert_eq!(status.evaluation_status["missing"].last_updated, None);
}

#[test]
fn empty_value_is_reported_before_staleness() {
    let def = cpu_below_80();
    let m = Metrics::default().fetched("app", "cpu", "", "2026-11-23T00:00:00Z", 10);
    let (status, _, _) = attempted(evaluate(&evaluation(json!({})), Some(&def), &m));
    assert_eq!(
        status.evaluation_status["cpu"].message,
        "empty value for: cpu"
    );
}
