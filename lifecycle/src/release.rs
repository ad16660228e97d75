//! Scheduling-gate release (A11–A14): may this pod's gate go, the JSON Patch that removes only our
//! gate, and which gated pods the sweeper reports. Pure.

use std::time::Duration;

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, TestOperation};
use shared::crd::{ItemStatus, KeptnAppVersion, KeptnState, KeptnWorkloadVersion};
use shared::gate::{REMOVED_MARKER, REMOVED_VALUE, gate_index};

use crate::events::Subject;
use crate::phase::{Level, Phase, Stage};

/// The scheduling gate the webhook adds (A8); stated in [`shared::gate`], re-exported for the
/// gate's controllers.
pub use shared::gate::GATE;

/// Whether a pod's gate may be removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The pre-deployment phases are done: remove the gate now.
    Release,
    /// A pre-deployment check failed: the pod stays gated; publish this Warning on it.
    Hold { reason: String, message: String },
    /// Not yet decidable; a change of the workload version (or app version) wakes the pod.
    Wait(&'static str),
}

/// A12: release when `preDeploymentStatus` and `preDeploymentEvaluationStatus` are Succeeded
/// (Warning too in non-blocking mode), equivalently when `deploymentStatus` is Progressing or
/// Succeeded. A failed pre-deployment check (of the workload, or of its app while the workload
/// waits for it) holds the pod.
pub fn decide(
    kwv: Option<&KeptnWorkloadVersion>,
    app_version: Option<&KeptnAppVersion>,
    blocking: bool,
) -> Decision {
    let Some(kwv) = kwv else {
        return Decision::Wait("no KeptnWorkloadVersion yet");
    };
    let status = kwv.status.clone().unwrap_or_default();
    if matches!(
        status.deployment_status,
        KeptnState::Progressing | KeptnState::Succeeded
    ) || (status.pre_deployment_status.is_succeeded(blocking)
        && status
            .pre_deployment_evaluation_status
            .is_succeeded(blocking))
    {
        return Decision::Release;
    }
    let subject = Subject {
        namespace: kwv.metadata.namespace.clone().unwrap_or_default(),
        name: kwv.metadata.name.clone().unwrap_or_default(),
        version: kwv.spec.workload.version.clone(),
    };
    let failed = |state: &KeptnState| matches!(state, KeptnState::Failed);
    if failed(&status.pre_deployment_status) {
        return hold(
            &subject,
            Phase::new(Level::Workload, Stage::PreDeployTasks),
            &status.pre_deployment_task_status,
        );
    }
    if failed(&status.pre_deployment_evaluation_status) {
        return hold(
            &subject,
            Phase::new(Level::Workload, Stage::PreDeployEvaluations),
            &status.pre_deployment_evaluation_task_status,
        );
    }
    if status.current_phase.is_empty()
        && let Some(kav) = app_version
    {
        let app = kav.status.clone().unwrap_or_default();
        let subject = Subject {
            namespace: kav.metadata.namespace.clone().unwrap_or_default(),
            name: kav.metadata.name.clone().unwrap_or_default(),
            version: kav.spec.app.version.clone(),
        };
        if failed(&app.pre_deployment_status) {
            return hold(
                &subject,
                Phase::new(Level::App, Stage::PreDeployTasks),
                &app.pre_deployment_task_status,
            );
        }
        if failed(&app.pre_deployment_evaluation_status) {
            return hold(
                &subject,
                Phase::new(Level::App, Stage::PreDeployEvaluations),
                &app.pre_deployment_evaluation_task_status,
            );
        }
    }
    Decision::Wait("pre-deployment checks not finished")
}

fn hold(subject: &Subject, phase: Phase, items: &[ItemStatus]) -> Decision {
    let what = match phase.stage {
        Stage::PreDeployTasks => "KeptnTask",
        _ => "KeptnEvaluation",
    };
    let failed: Vec<String> = items
        .iter()
        .filter(|i| i.status == KeptnState::Failed)
        .map(|i| format!("'{}' ({what} {})", i.definition_name, i.name))
        .collect();
    let checks = if failed.is_empty() {
        "a check".to_owned()
    } else {
        failed.join(", ")
    };
    Decision::Hold {
        reason: format!("{}Failed", phase.short_name()),
        message: subject.message(
            phase.long_name(),
            &format!("{checks} failed; the pod keeps its scheduling gate {GATE}"),
        ),
    }
}

/// A13: JSON Patch removing only our gate at its index `i` (`test` then `remove`, so that a
/// patch computed from a stale view of the gates fails instead of removing another controller's
/// gate) and adding the marker annotation. `None` when the pod does not carry the gate.
pub fn release_operations(gates: &[String], has_annotations: bool) -> Option<Patch> {
    let i = gate_index(gates)?;
    let entry = PointerBuf::from_tokens([
        Token::new("spec"),
        Token::new("schedulingGates"),
        Token::from(i),
    ]);
    let marker = if has_annotations {
        AddOperation {
            // Token::new escapes `~` as `~0` and `/` as `~1` (RFC 6901).
            path: PointerBuf::from_tokens(["metadata", "annotations", REMOVED_MARKER]),
            value: REMOVED_VALUE.into(),
        }
    } else {
        AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations"]),
            value: serde_json::json!({ REMOVED_MARKER: REMOVED_VALUE }),
        }
    };
    Some(Patch(vec![
        PatchOperation::Test(TestOperation {
            path: entry.with_trailing_token("name"),
            value: GATE.into(),
        }),
        PatchOperation::Remove(RemoveOperation { path: entry }),
        PatchOperation::Add(marker),
    ]))
}

/// [`release_operations`] as the JSON the API server receives, which the tests assert on.
#[cfg(test)]
fn release_patch(gates: &[String], has_annotations: bool) -> Option<serde_json::Value> {
    release_operations(gates, has_annotations)
        .map(|patch| serde_json::to_value(patch).expect("a JSON Patch serialises"))
}

/// A14: a pod gated longer than `observabilityTimeout` whose workload version is not making
/// progress (absent, waiting for its app, or finished without releasing it).
pub fn is_stale(
    gated_for: Duration,
    timeout: Duration,
    kwv: Option<&KeptnWorkloadVersion>,
) -> bool {
    gated_for > timeout
        && !kwv
            .and_then(|k| k.status.as_ref())
            .is_some_and(|s| s.status == KeptnState::Progressing)
}

/// Age bucket label of the gated-pods gauge.
pub fn age_bucket(age: Duration) -> &'static str {
    match age.as_secs() {
        0..60 => "lt_1m",
        60..300 => "1m_to_5m",
        300..1800 => "5m_to_30m",
        _ => "gt_30m",
    }
}

/// All age buckets, so that empty ones read 0.
pub const AGE_BUCKETS: [&str; 4] = ["lt_1m", "1m_to_5m", "5m_to_30m", "gt_30m"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, item};
    use KeptnState::*;
    use shared::crd::{KeptnAppVersionStatus, KeptnWorkloadVersionStatus};

    fn kwv(status: Option<KeptnWorkloadVersionStatus>) -> KeptnWorkloadVersion {
        fixtures::kwv("waiter-waiter-0.4")
            .in_namespace("ns")
            .status(status)
            .build()
    }

    fn st(pre: KeptnState, eval: KeptnState, deploy: KeptnState) -> KeptnWorkloadVersionStatus {
        KeptnWorkloadVersionStatus {
            pre_deployment_status: pre,
            pre_deployment_evaluation_status: eval,
            deployment_status: deploy,
            current_phase: "WorkloadPreDeployTasks".into(),
            ..Default::default()
        }
    }

    /// The A12 decision table.
    #[test]
    fn a12_release_decision_rows() {
        let rows: Vec<(&str, Option<KeptnWorkloadVersionStatus>, bool, &str)> = vec![
            ("no status yet", None, true, "wait"),
            (
                "pre pending",
                Some(st(Pending, Pending, Pending)),
                true,
                "wait",
            ),
            (
                "pre progressing",
                Some(st(Progressing, Pending, Pending)),
                true,
                "wait",
            ),
            (
                "tasks done, evals pending",
                Some(st(Succeeded, Progressing, Pending)),
                true,
                "wait",
            ),
            (
                "both succeeded",
                Some(st(Succeeded, Succeeded, Pending)),
                true,
                "release",
            ),
            (
                "deploy progressing",
                Some(st(Succeeded, Succeeded, Progressing)),
                true,
                "release",
            ),
            (
                "deploy succeeded",
                Some(st(Succeeded, Succeeded, Succeeded)),
                true,
                "release",
            ),
            (
                "warning, non-blocking",
                Some(st(Warning, Succeeded, Pending)),
                false,
                "release",
            ),
            (
                "warning evals, non-blocking",
                Some(st(Succeeded, Warning, Pending)),
                false,
                "release",
            ),
            (
                "warning, blocking",
                Some(st(Warning, Succeeded, Pending)),
                true,
                "wait",
            ),
            (
                "pre tasks failed",
                Some(st(Failed, Deprecated, Deprecated)),
                true,
                "hold",
            ),
            (
                "pre evals failed",
                Some(st(Succeeded, Failed, Deprecated)),
                true,
                "hold",
            ),
            (
                "deploy timed out",
                Some(st(Succeeded, Succeeded, Failed)),
                true,
                "release",
            ),
        ];
        for (rule, status, blocking, want) in rows {
            let k = kwv(status);
            let got = match decide(Some(&k), None, blocking) {
                Decision::Release => "release",
                Decision::Hold { .. } => "hold",
                Decision::Wait(_) => "wait",
            };
            assert_eq!(got, want, "{rule}");
        }
        assert!(matches!(decide(None, None, true), Decision::Wait(_)));
    }

    #[test]
    fn hold_names_the_failed_check() {
        let mut s = st(Failed, Deprecated, Deprecated);
        s.pre_deployment_task_status = vec![
            item("check-db", "pre-check-db-12345", Failed),
            item("ok", "pre-ok-11111", Succeeded),
        ];
        let k = kwv(Some(s));
        let Decision::Hold { reason, message } = decide(Some(&k), None, true) else {
            panic!()
        };
        assert_eq!(reason, "WorkloadPreDeployTasksFailed");
        assert_eq!(
            message,
            "Workload Pre-Deployment Tasks: 'check-db' (KeptnTask pre-check-db-12345) failed; the pod keeps its scheduling gate keptn-prechecks-gate / Namespace: ns, Name: waiter-waiter-0.4, Version: 0.4"
        );
    }

    #[test]
    fn app_failure_holds_waiting_workload() {
        let k = kwv(None);
        let mut kav = fixtures::kav("waiter-0.4-6b86b273")
            .status(KeptnAppVersionStatus {
                pre_deployment_evaluation_status: Failed,
                pre_deployment_status: Succeeded,
                ..Default::default()
            })
            .build();
        match decide(Some(&k), Some(&kav), true) {
            Decision::Hold { reason, .. } => assert_eq!(reason, "AppPreDeployEvaluationsFailed"),
            other => panic!("{other:?}"),
        }
        kav.status = Some(KeptnAppVersionStatus::default());
        assert!(matches!(
            decide(Some(&k), Some(&kav), true),
            Decision::Wait(_)
        ));
    }

    #[test]
    fn a13_patch_removes_only_our_gate_by_index() {
        let gates = vec!["other.io/gate".to_owned(), GATE.to_owned()];
        let p = release_patch(&gates, true).unwrap();
        assert_eq!(
            p,
            serde_json::json!([
                {"op": "test", "path": "/spec/schedulingGates/1/name", "value": "keptn-prechecks-gate"},
                {"op": "remove", "path": "/spec/schedulingGates/1"},
                {"op": "add", "path": "/metadata/annotations/keptn.sh~1scheduling-gate-removed", "value": "true"},
            ])
        );
        // Applying it keeps the other gate.
        let mut pod = serde_json::json!({
            "metadata": {"annotations": {"a": "b"}},
            "spec": {"schedulingGates": [{"name": "other.io/gate"}, {"name": GATE}]}
        });
        let patch: json_patch::Patch = serde_json::from_value(p).unwrap();
        json_patch::patch(&mut pod, &patch).unwrap();
        assert_eq!(
            pod["spec"]["schedulingGates"],
            serde_json::json!([{"name": "other.io/gate"}])
        );
        assert_eq!(
            pod["metadata"]["annotations"]["keptn.sh/scheduling-gate-removed"],
            "true"
        );
        assert_eq!(pod["metadata"]["annotations"]["a"], "b");
    }

    #[test]
    fn a13_patch_without_annotations_and_stale_index_fails_test() {
        let p = release_patch(&[GATE.to_owned()], false).unwrap();
        let patch: json_patch::Patch = serde_json::from_value(p).unwrap();
        let mut pod =
            serde_json::json!({"metadata": {}, "spec": {"schedulingGates": [{"name": GATE}]}});
        json_patch::patch(&mut pod, &patch).unwrap();
        assert_eq!(pod["spec"]["schedulingGates"], serde_json::json!([]));
        assert_eq!(
            pod["metadata"]["annotations"]["keptn.sh/scheduling-gate-removed"],
            "true"
        );
        // If another controller moved the gates meanwhile, the test op fails: nothing is removed.
        let mut moved =
            serde_json::json!({"metadata": {}, "spec": {"schedulingGates": [{"name": "x"}]}});
        assert!(json_patch::patch(&mut moved, &patch).is_err());
        assert_eq!(
            moved["spec"]["schedulingGates"],
            serde_json::json!([{"name": "x"}])
        );
        assert_eq!(release_patch(&["x".to_owned()], true), None);
    }

    #[test]
    fn a13_typed_operations_serialise_as_the_patch() {
        let gates = vec!["a".to_owned(), "b".to_owned(), GATE.to_owned()];
        for has_annotations in [true, false] {
            let typed = release_operations(&gates, has_annotations).unwrap();
            assert_eq!(
                serde_json::to_value(&typed).unwrap(),
                release_patch(&gates, has_annotations).unwrap()
            );
            let paths: Vec<String> = typed.iter().map(|op| op.path().to_string()).collect();
            assert_eq!(
                paths[..2],
                ["/spec/schedulingGates/2/name", "/spec/schedulingGates/2"]
            );
        }
        assert_eq!(release_operations(&[], false), None);
    }

    #[test]
    fn a14_staleness() {
        let t = Duration::from_secs(300);
        let progressing = kwv(Some(KeptnWorkloadVersionStatus {
            status: Progressing,
            ..Default::default()
        }));
        let waiting = kwv(None);
        let failed = kwv(Some(KeptnWorkloadVersionStatus {
            status: Failed,
            ..Default::default()
        }));
        assert!(!is_stale(Duration::from_secs(100), t, None), "young");
        assert!(is_stale(Duration::from_secs(301), t, None), "no KWV");
        assert!(
            is_stale(Duration::from_secs(301), t, Some(&waiting)),
            "waiting for app"
        );
        assert!(is_stale(Duration::from_secs(301), t, Some(&failed)));
        assert!(!is_stale(Duration::from_secs(301), t, Some(&progressing)));
        assert_eq!(age_bucket(Duration::from_secs(5)), "lt_1m");
        assert_eq!(age_bucket(Duration::from_secs(60)), "1m_to_5m");
        assert_eq!(age_bucket(Duration::from_secs(301)), "5m_to_30m");
        assert_eq!(age_bucket(Duration::from_secs(3600)), "gt_30m");
    }
}
