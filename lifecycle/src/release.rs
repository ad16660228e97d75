//! Scheduling-gate release (A11–A14): may this pod's gate go, the JSON Patch that removes only our
//! gate (and the gated label), the one that adopts a pod gated without the label, and which gated
//! pods the sweeper reports. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, TestOperation};
use shared::crd::{ItemStatus, KeptnAppVersion, KeptnState, KeptnWorkloadVersion};
use shared::gate::{GATED_LABEL, GATED_VALUE, REMOVED_MARKER, REMOVED_VALUE, gate_index};

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

/// What the release and adoption patches read of a pod: built from the pod as the caller last
/// saw it, so a stale view makes the patch's `test` fail rather than touch the wrong entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodGates {
    /// Names of `spec.schedulingGates`, in order.
    pub gates: Vec<String>,
    /// Whether `metadata.annotations` exists (an `add` below a missing map fails).
    pub has_annotations: bool,
    /// Whether `metadata.labels` exists.
    pub has_labels: bool,
    /// The value of [`GATED_LABEL`], if the pod carries it.
    pub gated_label: Option<String>,
}

impl PodGates {
    pub fn new(
        gates: Vec<String>,
        annotations: Option<&BTreeMap<String, String>>,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Self {
        PodGates {
            gates,
            has_annotations: annotations.is_some(),
            has_labels: labels.is_some(),
            gated_label: labels.and_then(|l| l.get(GATED_LABEL)).cloned(),
        }
    }
}

/// `test` that the gate at index `i` is ours: a patch computed from a stale view of the gates
/// then fails as a whole instead of touching another controller's gate.
fn test_gate(i: usize) -> (PatchOperation, PointerBuf) {
    let entry = PointerBuf::from_tokens([
        Token::new("spec"),
        Token::new("schedulingGates"),
        Token::from(i),
    ]);
    let test = PatchOperation::Test(TestOperation {
        path: entry.with_trailing_token("name"),
        value: GATE.into(),
    });
    (test, entry)
}

/// `add` of one entry to a string map of `metadata`, or of the whole map when it is absent.
fn add_to_map(map: &str, exists: bool, key: &str, value: &str) -> PatchOperation {
    PatchOperation::Add(if exists {
        // Token::new escapes `~` as `~0` and `/` as `~1` (RFC 6901).
        AddOperation {
            path: PointerBuf::from_tokens(["metadata", map, key]),
            value: value.into(),
        }
    } else {
        AddOperation {
            path: PointerBuf::from_tokens(["metadata", map]),
            value: serde_json::json!({ key: value }),
        }
    })
}

/// A13: JSON Patch removing only our gate at its index (`test` then `remove`), adding the marker
/// annotation and, when the pod carries it, removing [`GATED_LABEL`] so that the released pod
/// leaves the gate's watch (a `remove` of a missing label would fail the whole patch). `None`
/// when the pod does not carry the gate.
pub fn release_operations(pod: &PodGates) -> Option<Patch> {
    let (test, entry) = test_gate(gate_index(&pod.gates)?);
    let mut ops = vec![
        test,
        PatchOperation::Remove(RemoveOperation { path: entry }),
        add_to_map(
            "annotations",
            pod.has_annotations,
            REMOVED_MARKER,
            REMOVED_VALUE,
        ),
    ];
    if pod.gated_label.is_some() {
        ops.push(PatchOperation::Remove(RemoveOperation {
            path: PointerBuf::from_tokens(["metadata", "labels", GATED_LABEL]),
        }));
    }
    Some(Patch(ops))
}

/// A11 adoption: JSON Patch adding [`GATED_LABEL`] to a pod gated by someone that does not label
/// (Keptn, an older Portcullis), guarded by the `test` of the gate so that a pod released
/// meanwhile is not labelled. `None` when the pod is not gated or already labelled.
pub fn adoption_operations(pod: &PodGates) -> Option<Patch> {
    if pod.gated_label.as_deref() == Some(GATED_VALUE) {
        return None;
    }
    let (test, _) = test_gate(gate_index(&pod.gates)?);
    Some(Patch(vec![
        test,
        add_to_map("labels", pod.has_labels, GATED_LABEL, GATED_VALUE),
    ]))
}

/// [`release_operations`] as the JSON the API server receives, which the tests assert on.
#[cfg(test)]
fn release_patch(pod: &PodGates) -> Option<serde_json::Value> {
    release_operations(pod)
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

    fn pod_gates(gates: &[&str], annotations: bool, label: Option<&str>) -> PodGates {
        PodGates {
            gates: gates.iter().map(|g| g.to_string()).collect(),
            has_annotations: annotations,
            has_labels: label.is_some(),
            gated_label: label.map(str::to_owned),
        }
    }

    fn apply(p: serde_json::Value, pod: &mut serde_json::Value) -> Result<(), String> {
        let patch: json_patch::Patch = serde_json::from_value(p).map_err(|e| e.to_string())?;
        json_patch::patch(pod, &patch).map_err(|e| e.to_string())
    }

    #[test]
    fn a13_patch_removes_only_our_gate_by_index_and_the_label() {
        let p = release_patch(&pod_gates(&["other.io/gate", GATE], true, Some("true"))).unwrap();
        assert_eq!(
            p,
            serde_json::json!([
                {"op": "test", "path": "/spec/schedulingGates/1/name", "value": "keptn-prechecks-gate"},
                {"op": "remove", "path": "/spec/schedulingGates/1"},
                {"op": "add", "path": "/metadata/annotations/keptn.sh~1scheduling-gate-removed", "value": "true"},
                {"op": "remove", "path": "/metadata/labels/portcullis.dev~1gated"},
            ])
        );
        // Applying it keeps the other gate and the other labels.
        let mut pod = serde_json::json!({
            "metadata": {"annotations": {"a": "b"}, "labels": {"app": "x", GATED_LABEL: "true"}},
            "spec": {"schedulingGates": [{"name": "other.io/gate"}, {"name": GATE}]}
        });
        apply(p, &mut pod).unwrap();
        assert_eq!(
            pod["spec"]["schedulingGates"],
            serde_json::json!([{"name": "other.io/gate"}])
        );
        assert_eq!(
            pod["metadata"]["annotations"]["keptn.sh/scheduling-gate-removed"],
            "true"
        );
        assert_eq!(pod["metadata"]["annotations"]["a"], "b");
        assert_eq!(pod["metadata"]["labels"], serde_json::json!({"app": "x"}));
    }

    #[test]
    fn a13_patch_of_an_unlabelled_pod_leaves_labels_alone() {
        // A pod gated by Keptn and released before it was adopted: removing the absent label
        // would fail the whole patch.
        let p = release_patch(&pod_gates(&[GATE], false, None)).unwrap();
        assert_eq!(p.as_array().map(Vec::len), Some(3));
        let mut pod = serde_json::json!({
            "metadata": {"labels": {"app": "x"}}, "spec": {"schedulingGates": [{"name": GATE}]}
        });
        apply(p, &mut pod).unwrap();
        assert_eq!(pod["spec"]["schedulingGates"], serde_json::json!([]));
        assert_eq!(pod["metadata"]["labels"], serde_json::json!({"app": "x"}));
    }

    #[test]
    fn a13_patch_without_annotations_and_stale_index_fails_test() {
        let p = release_patch(&pod_gates(&[GATE], false, Some("true"))).unwrap();
        let mut pod = serde_json::json!({
            "metadata": {"labels": {GATED_LABEL: "true"}},
            "spec": {"schedulingGates": [{"name": GATE}]}
        });
        apply(p.clone(), &mut pod).unwrap();
        assert_eq!(pod["spec"]["schedulingGates"], serde_json::json!([]));
        assert_eq!(
            pod["metadata"]["annotations"]["keptn.sh/scheduling-gate-removed"],
            "true"
        );
        // If another controller moved the gates meanwhile, the test op fails: nothing is removed.
        let mut moved = serde_json::json!({
            "metadata": {"labels": {GATED_LABEL: "true"}},
            "spec": {"schedulingGates": [{"name": "x"}]}
        });
        assert!(apply(p, &mut moved).is_err());
        assert_eq!(
            moved["spec"]["schedulingGates"],
            serde_json::json!([{"name": "x"}])
        );
        assert_eq!(moved["metadata"]["labels"][GATED_LABEL], "true");
        assert_eq!(release_patch(&pod_gates(&["x"], true, Some("true"))), None);
    }

    #[test]
    fn a13_typed_operations_serialise_as_the_patch() {
        for has_annotations in [true, false] {
            for label in [None, Some("true")] {
                let pod = pod_gates(&["a", "b", GATE], has_annotations, label);
                let typed = release_operations(&pod).unwrap();
                assert_eq!(
                    serde_json::to_value(&typed).unwrap(),
                    release_patch(&pod).unwrap()
                );
                let paths: Vec<String> = typed.iter().map(|op| op.path().to_string()).collect();
                assert_eq!(
                    paths[..2],
                    ["/spec/schedulingGates/2/name", "/spec/schedulingGates/2"]
                );
                assert_eq!(paths.len(), if label.is_some() { 4 } else { 3 });
            }
        }
        assert_eq!(release_operations(&PodGates::default()), None);
    }

    #[test]
    fn adoption_labels_a_gated_pod_only_while_it_is_gated() {
        let adopt = |pod: &PodGates| {
            adoption_operations(pod).map(|p| serde_json::to_value(p).expect("serialises"))
        };
        let mut labelled = pod_gates(&["other.io/gate", GATE], true, None);
        labelled.has_labels = true;
        assert_eq!(
            adopt(&labelled).unwrap(),
            serde_json::json!([
                {"op": "test", "path": "/spec/schedulingGates/1/name", "value": "keptn-prechecks-gate"},
                {"op": "add", "path": "/metadata/labels/portcullis.dev~1gated", "value": "true"},
            ])
        );
        let p = adopt(&pod_gates(&[GATE], true, None)).unwrap();
        let mut pod =
            serde_json::json!({"metadata": {}, "spec": {"schedulingGates": [{"name": GATE}]}});
        apply(p.clone(), &mut pod).unwrap();
        assert_eq!(
            pod["metadata"]["labels"],
            serde_json::json!({GATED_LABEL: "true"})
        );
        // Released meanwhile: the test fails and the pod is not labelled.
        let mut released = serde_json::json!({"metadata": {}, "spec": {"schedulingGates": []}});
        assert!(apply(p, &mut released).is_err());
        assert_eq!(released["metadata"].get("labels"), None);
        assert_eq!(
            adopt(&pod_gates(&[GATE], true, Some("true"))),
            None,
            "adopted"
        );
        assert!(adopt(&pod_gates(&[GATE], true, Some("false"))).is_some());
        assert_eq!(adopt(&pod_gates(&["x"], true, None)), None, "not ours");
        let read = PodGates::new(
            vec![GATE.to_owned()],
            None,
            Some(&BTreeMap::from([(
                GATED_LABEL.to_owned(),
                "true".to_owned(),
            )])),
        );
        assert_eq!(read, pod_gates(&[GATE], false, Some("true")));
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
