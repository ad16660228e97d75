use super::diagnose::*;
use super::*;
use crate::cli::Format;
use crate::status::report::tests::fixtures::*;
use serde_json::{Value, json};
use shared::crd::KeptnWorkload;

/// The objects of a test's namespace; [`Objects::world`] borrows them.
#[derive(Default)]
struct Objects {
    workloads: Vec<KeptnWorkload>,
    apps: Vec<KeptnApp>,
    kavs: Vec<KeptnAppVersion>,
    kwvs: Vec<KeptnWorkloadVersion>,
    tasks: Vec<KeptnTask>,
    evaluations: Vec<KeptnEvaluation>,
    task_definitions: Vec<String>,
    evaluation_definitions: Vec<KeptnEvaluationDefinition>,
    events: Vec<Event>,
    blocking: bool,
}

impl Objects {
    fn new() -> Objects {
        Objects {
            blocking: true,
            task_definitions: vec!["check-db".into()],
            ..Default::default()
        }
    }

    fn world(&self) -> World<'_> {
        World {
            workloads: &self.workloads,
            apps: &self.apps,
            app_versions: &self.kavs,
            workload_versions: &self.kwvs,
            tasks: &self.tasks,
            evaluations: &self.evaluations,
            task_definitions: &self.task_definitions,
            evaluation_definitions: &self.evaluation_definitions,
            events: &self.events,
            blocking: self.blocking,
            keptn_namespace: "portcullis-system",
            now: at(20),
        }
    }
}

fn plain() -> Style {
    Style {
        format: Format::Table,
        color: false,
    }
}

fn workload(app: &str, kind: &str) -> KeptnWorkload {
    serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkload",
        "metadata": {"name": format!("{app}-{app}"), "namespace": "shop", "uid": "uid-wl"},
        "spec": {"app": app, "version": "3",
                 "resourceReference": {"uid": "uid-rs", "kind": kind, "name": format!("{app}-abc")}}
    }))
    .expect("workload")
}

fn event(pod: &str, reason: &str, from: &str, seconds: i64) -> Event {
    serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": format!("{pod}.{reason}"), "namespace": "shop"},
        "eventTime": t(seconds), "type": "Warning", "reason": reason,
        "note": format!("{reason} happened"), "action": "x",
        "reportingController": from, "reportingInstance": "i",
        "regarding": {"kind": "Pod", "name": pod, "namespace": "shop", "uid": format!("uid-{pod}")}
    }))
    .expect("event")
}

fn held_objects() -> Objects {
    let mut o = Objects::new();
    o.kwvs = vec![failed_kwv()];
    o.kavs = vec![failed_kav()];
    o.tasks = vec![failed_task()];
    o.events = vec![
        event(
            "api-1",
            "WorkloadPreDeployTasksFailed",
            "portcullis-gate",
            9,
        ),
        event(
            "api-2",
            "WorkloadPreDeployTasksFailed",
            "portcullis-gate",
            9,
        ),
    ];
    o
}

/// A failed workload pre-deployment task: the version, the phase, the task with its Job and
/// reason, the advice, drawn.
#[test]
fn held_by_a_failed_workload_task() {
    let o = held_objects();
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert_eq!(d.verdict, Verdict::Held);
    assert!(d.gated);
    assert_eq!(d.phase.as_deref(), Some("WorkloadPreDeployTasks"));
    assert_eq!(d.workload.as_deref(), Some("api-api"));
    assert_eq!(
        d.workload_version
            .as_ref()
            .and_then(|v| v.status.as_deref()),
        Some("Failed")
    );
    assert_eq!(
        d.app_version.as_ref().map(|v| v.name.as_str()),
        Some("api-3-6b86b273")
    );
    assert_eq!(d.tasks.len(), 1);
    assert_eq!(d.tasks[0].job_name, "pre-check-db-12345-67890");
    assert_eq!(d.events.len(), 1, "only the pod's own events");
    let text = render(&d, &plain());
    let want = "\
Pod shop/api-1   Held   (gated)
  KIND                   NAME             STATUS   PHASE
  KeptnApp               api              -        -
  KeptnWorkload          api-api          -        -
  KeptnWorkloadVersion   api-api-3        Failed   WorkloadPreDeployTasks
  KeptnAppVersion        api-3-6b86b273   Failed   AppDeploy

Why: held: Workload Pre-Deployment Tasks: 'check-db' (KeptnTask pre-check-db-12345) failed; the pod keeps its scheduling gate keptn-prechecks-gate
  phase: WorkloadPreDeployTasks
  - KeptnTask pre-check-db-12345 (definition 'check-db') failed in Job pre-check-db-12345-67890: BackoffLimitExceeded: Job has reached the specified backoff limit

  OWNER       TASK                 DEFINITION   STATUS   JOB                        REASON
  api-api-3   pre-check-db-12345   check-db     Failed   pre-check-db-12345-67890   BackoffLimitExceeded

What to do:
  - read the task's output: kubectl logs -n shop job/pre-check-db-12345-67890
  - a failed pre-deployment check keeps the pods gated by design: fix the cause first
  - then run the workload's checks again: kubectl portcullis retry workload -n shop api-api (deletes the Failed KeptnWorkloadVersion; the gate re-creates it and the pods wait for it), or roll out a new version of the workload
  - as a last resort remove the gate by hand (Kubernetes allows removing, never adding, scheduling gates): kubectl patch pod -n shop api-1 --type=json -p '[{\"op\":\"test\",\"path\":\"/spec/schedulingGates/1/name\",\"value\":\"keptn-prechecks-gate\"},{\"op\":\"remove\",\"path\":\"/spec/schedulingGates/1\"}]'

Events:
  TIME                   TYPE      REASON                         FROM              MESSAGE
  2026-01-01T00:00:09Z   Warning   WorkloadPreDeployTasksFailed   portcullis-gate   WorkloadPreDeployTasksFailed happened
";
    assert_eq!(text, want, "\n{text}");
}

/// A failed app pre-deployment evaluation holds the waiting workload's pods: the evaluation
/// with the value and the target, a new app revision as the remedy.
#[test]
fn held_by_a_failed_app_evaluation() {
    let mut o = Objects::new();
    o.kwvs = vec![kwv("api", "3", &[], Value::Null)];
    o.kavs = vec![kav(
        "api-3-6b86b273",
        "api",
        "3",
        0,
        json!({"currentPhase": "AppPreDeployEvaluations", "status": "Failed",
               "preDeploymentStatus": "Succeeded", "preDeploymentEvaluationStatus": "Failed",
               "preDeploymentEvaluationTaskStatus": [{"definitionName": "error-rate-low",
                   "name": "pre-eval-error-rate-low-12345", "status": "Failed"}]}),
    )];
    o.evaluations = vec![evaluation(
        "pre-eval-error-rate-low-12345",
        "uid-api-3-6b86b273",
        "error-rate-low",
        json!({"overallStatus": "Failed", "retryCount": 3, "evaluationStatus": {
            "error-rate": {"value": "5", "status": "Failed", "message": "value '5' did not meet objective '<1'"}}}),
    )];
    o.evaluation_definitions = vec![evaluation_definition(
        "error-rate-low",
        &[("error-rate", "<1")],
    )];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert_eq!(d.verdict, Verdict::Held);
    assert_eq!(d.phase.as_deref(), Some("AppPreDeployEvaluations"));
    assert!(d.tasks.is_empty());
    let o0 = &d.evaluations[0].objectives[0];
    assert_eq!((o0.value.as_str(), o0.target.as_deref()), ("5", Some("<1")));
    assert!(
        d.details
            .iter()
            .any(|l| l.contains("metric error-rate value 5 vs target <1")),
        "{:?}",
        d.details
    );
    assert!(
        d.advice
            .iter()
            .any(|a| a.contains("kubectl portcullis retry app -n shop api"))
    );
    assert!(
        d.advice
            .iter()
            .any(|a| a.contains("kubectl get keptnmetrics -n shop error-rate"))
    );
    let text = render(&d, &plain());
    assert!(text.contains("EVALUATION"), "{text}");
    assert!(text.contains("error-rate   5       <1"), "{text}");
}

/// A task definition that does not exist: the phase waits for it (README troubleshooting).
#[test]
fn waiting_for_a_missing_definition() {
    let mut o = Objects::new();
    o.task_definitions.clear();
    o.kavs = vec![failed_kav()];
    o.kwvs = vec![kwv(
        "api",
        "3",
        &["check-db"],
        json!({"currentPhase": "WorkloadPreDeployTasks", "status": "Progressing",
               "preDeploymentStatus": "Pending"}),
    )];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert_eq!(d.verdict, Verdict::Waiting);
    assert_eq!(d.phase.as_deref(), Some("WorkloadPreDeployTasks"));
    assert_eq!(
        d.missing_definitions,
        [MissingDefinition {
            kind: "KeptnTaskDefinition".into(),
            name: "check-db".into()
        }]
    );
    assert!(d.advice.iter().any(|a| a.contains(
        "create KeptnTaskDefinition 'check-db' in namespace shop (or in the install namespace portcullis-system)"
    )));
    // Once it exists, nothing is missing: the gate just has not created the task yet.
    o.task_definitions = vec!["check-db".into()];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert!(d.missing_definitions.is_empty());
    assert!(
        d.details
            .iter()
            .any(|l| l.contains("no check of the phase has started yet"))
    );
}

#[test]
fn waiting_for_a_running_task() {
    let mut o = Objects::new();
    o.kavs = vec![failed_kav()];
    o.kwvs = vec![kwv(
        "api",
        "3",
        &["check-db"],
        json!({"currentPhase": "WorkloadPreDeployTasks", "status": "Progressing",
               "preDeploymentStatus": "Progressing",
               "preDeploymentTaskStatus": [{"definitionName": "check-db", "name": "pre-check-db-12345", "status": "Progressing"}]}),
    )];
    o.tasks = vec![task(
        "pre-check-db-12345",
        "uid-api-api-3",
        "check-db",
        json!({"status": "Progressing", "jobName": "pre-check-db-12345-67890"}),
    )];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert_eq!(d.verdict, Verdict::Waiting);
    assert!(
        d.summary
            .contains("is in Workload Pre-Deployment Tasks (now Progressing)")
    );
    assert!(
        d.details
            .iter()
            .any(|l| l.contains("is Progressing (Job pre-check-db-12345-67890)"))
    );
    assert!(
        d.advice
            .iter()
            .any(|a| a == "follow the task: kubectl logs -n shop job/pre-check-db-12345-67890 -f")
    );
}

/// The workload version waits for its app: not discovered yet, not listing it, or its
/// pre-deployment checks still running.
#[test]
fn waiting_for_the_app() {
    let mut o = Objects::new();
    o.kwvs = vec![kwv("api", "3", &[], Value::Null)];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert_eq!(d.verdict, Verdict::Waiting);
    assert!(
        d.details
            .iter()
            .any(|l| l.contains("KeptnApp api not found: the app is still being discovered"))
    );
    o.apps = vec![app("api", "2", 1, 1)];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert!(
        d.details
            .iter()
            .any(|l| l
                .contains("KeptnApp api (version 2) lists api 2, not this workload at version 3")),
        "{:?}",
        d.details
    );
    o.kavs = vec![kav(
        "api-3-6b86b273",
        "api",
        "3",
        0,
        json!({"currentPhase": "AppPreDeployTasks", "status": "Progressing", "preDeploymentStatus": "Progressing"}),
    )];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert_eq!(d.phase.as_deref(), Some("AppPreDeployTasks"));
    assert!(d.summary.contains("starts once KeptnAppVersion api-3-6b86b273 has passed App Pre-Deployment Tasks (now Progressing)"), "{}", d.summary);
}

#[test]
fn waiting_for_a_workload_version_that_does_not_exist() {
    let mut o = Objects::new();
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert_eq!(d.verdict, Verdict::Waiting);
    assert_eq!(
        d.summary,
        "waiting: KeptnWorkloadVersion api-api-3 does not exist"
    );
    assert!(d.details[0].contains("KeptnWorkload api-api does not exist either"));
    o.workloads = vec![workload("api", "ReplicaSet")];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert!(
        d.details[0].contains("just deleted by a retry"),
        "{:?}",
        d.details
    );
    o.workloads = vec![workload("api", "Deployment")];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert!(
        d.details[0].contains("still names its Deployment"),
        "{:?}",
        d.details
    );
}

/// Checks passed, the gate has not removed the gate yet; Warning counts when not blocking.
#[test]
fn releasing_once_the_checks_passed() {
    let mut o = Objects::new();
    o.kwvs = vec![kwv(
        "api",
        "3",
        &["check-db"],
        json!({"currentPhase": "WorkloadDeploy", "status": "Progressing",
               "preDeploymentStatus": "Warning", "preDeploymentEvaluationStatus": "Succeeded"}),
    )];
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert_eq!(d.verdict, Verdict::Waiting, "Warning blocks by default");
    o.blocking = false;
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    assert_eq!(d.verdict, Verdict::Releasing);
    assert!(!d.advice.iter().any(|a| a.contains("last resort")));
}

/// Released: when (the managedFields entry of the marker) and by whom.
#[test]
fn released_when_and_by_whom() {
    let mut o = Objects::new();
    o.kwvs = vec![kwv(
        "api",
        "3",
        &[],
        json!({"currentPhase": "Completed", "status": "Succeeded",
               "preDeploymentStatus": "Succeeded", "preDeploymentEvaluationStatus": "Succeeded"}),
    )];
    let mut p = pod("api-1", "api", "3", false);
    let annotations = p.metadata.annotations.get_or_insert_default();
    annotations.insert(shared::gate::REMOVED_MARKER.into(), "true".into());
    p.metadata.managed_fields = Some(
        serde_json::from_value(json!([
            {"manager": "kube-controller-manager", "operation": "Update", "time": t(1),
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {"f:keptn.sh/app": {}}}}},
            {"manager": "unknown", "operation": "Update", "time": t(5),
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {"f:keptn.sh/scheduling-gate-removed": {}}}}}
        ]))
        .expect("managed fields"),
    );
    p.spec.get_or_insert_default().node_name = Some("node-1".into());
    p.status = Some(
        serde_json::from_value(json!({"conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t(6)}]}))
        .expect("status"),
    );
    let d = diagnose(&p, &o.world());
    assert_eq!(d.verdict, Verdict::Released);
    let r = d.release.clone().expect("release");
    assert_eq!(r.at, Some(t(5)));
    assert_eq!(r.by, "portcullis-gate", "the marker's only writer");
    assert_eq!(r.field_manager.as_deref(), Some("unknown"));
    assert_eq!(r.held_for.as_deref(), Some("4s"));
    assert_eq!(
        (r.scheduled_at, r.node.as_deref()),
        (Some(t(6)), Some("node-1"))
    );
    assert_eq!(
        d.summary,
        "released at 2026-01-01T00:00:05Z (15s ago) by portcullis-gate, which removed the scheduling gate keptn-prechecks-gate"
    );
    let text = render(&d, &plain());
    assert!(
        text.contains("Pod shop/api-1   Released   (not gated)"),
        "{text}"
    );
    assert!(
        text.contains("released at    2026-01-01T00:00:05Z"),
        "{text}"
    );
    // A named field manager is who it says.
    if let Some(m) = p.metadata.managed_fields.as_mut() {
        m[1].manager = Some("portcullis-gate".into());
    }
    assert_eq!(
        diagnose(&p, &o.world()).release.map(|r| r.by),
        Some("portcullis-gate".to_owned())
    );
}

#[test]
fn unmanaged_and_never_gated_pods() {
    let mut o = Objects::new();
    o.kwvs = vec![failed_kwv()];
    let d = diagnose(&plain_pod("plain", false, "uid-nothing"), &o.world());
    assert_eq!(d.verdict, Verdict::Unmanaged);
    assert!(d.summary.contains("is not managed by Portcullis"));
    // Gated, but nothing tells which checks it waits for.
    let d = diagnose(&plain_pod("plain", true, "uid-nothing"), &o.world());
    assert_eq!(d.verdict, Verdict::Waiting);
    assert!(d.summary.contains("no check will ever release it"));
    // A stamped pod without the gate or the marker escaped the webhook ...
    let d = diagnose(&pod("api-1", "api", "3", false), &o.world());
    assert_eq!(d.verdict, Verdict::NotGated);
    assert!(d.summary.contains("was never gated"));
    // ... unless the gate reported on it: then the gate was removed by hand.
    o.events = vec![event(
        "api-1",
        "WorkloadPreDeployTasksFailed",
        "portcullis-gate",
        9,
    )];
    let d = diagnose(&pod("api-1", "api", "3", false), &o.world());
    assert!(
        d.summary.contains("removed by someone else than the gate"),
        "{}",
        d.summary
    );
}

#[test]
fn phases_by_short_name() {
    assert_eq!(
        phase_named("AppPreDeployEvaluations").map(|p| p.long_name()),
        Some("App Pre-Deployment Evaluations")
    );
    assert_eq!(
        phase_named("WorkloadPreDeployTasks").map(|p| p.long_name()),
        Some("Workload Pre-Deployment Tasks")
    );
    assert_eq!(phase_named("Nope"), None);
}

#[test]
fn serialises_for_scripts() {
    let o = held_objects();
    let d = diagnose(&pod("api-1", "api", "3", true), &o.world());
    let v = serde_json::to_value(&d).expect("json");
    assert_eq!(v["verdict"], "Held");
    assert_eq!(
        v["workloadVersion"]["currentPhase"],
        "WorkloadPreDeployTasks"
    );
    assert_eq!(v["tasks"][0]["jobName"], "pre-check-db-12345-67890");
    assert_eq!(v["events"][0]["type"], "Warning");
    assert_eq!(v["missingDefinitions"], json!([]));
}
