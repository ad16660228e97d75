use super::*;
use crate::cli::Format;
use crate::output::Style;
use crate::status::render::render;
use serde_json::{Value, json};

/// Test objects from JSON, shared with the `why` and `retry` tests.
pub(crate) mod fixtures {
    use super::*;

    /// `2026-01-01T00:00:00Z` plus `s` seconds, as written in statuses.
    pub fn t(s: i64) -> String {
        let base: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        (base + jiff::SignedDuration::from_secs(s)).to_string()
    }

    pub fn at(s: i64) -> Timestamp {
        t(s).parse().expect("time")
    }

    fn meta(kind: &str, name: &str, uid: &str, owner: Option<&str>) -> Value {
        let mut m = json!({"name": name, "namespace": "shop", "uid": uid,
            "creationTimestamp": t(0), "generation": 1});
        if let Some(owner) = owner {
            m["ownerReferences"] = json!([{"apiVersion": "lifecycle.keptn.sh/v1",
                "kind": kind, "name": "owner", "uid": owner, "controller": true}]);
        }
        m
    }

    pub fn app(name: &str, version: &str, revision: i64, generation: i64) -> KeptnApp {
        let mut m = meta("", name, &format!("uid-app-{name}"), None);
        m["generation"] = json!(generation);
        m["resourceVersion"] = json!("42");
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp", "metadata": m,
            "spec": {"version": version, "revision": revision,
                     "workloads": [{"name": name, "version": version}]},
            "status": {"currentVersion": version}
        }))
        .expect("app")
    }

    pub fn kav(
        name: &str,
        app: &str,
        version: &str,
        created: i64,
        status: Value,
    ) -> KeptnAppVersion {
        let mut m = meta("", name, &format!("uid-{name}"), None);
        m["creationTimestamp"] = json!(t(created));
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppVersion", "metadata": m,
            "spec": {"appName": app, "version": version, "revision": 1,
                     "workloads": [{"name": app, "version": version}]},
            "status": status
        }))
        .expect("kav")
    }

    /// The KWV `<app>-<app>-<version>` of a single-service app.
    pub fn kwv(
        app: &str,
        version: &str,
        pre_tasks: &[&str],
        status: Value,
    ) -> KeptnWorkloadVersion {
        let name = format!("{app}-{app}-{version}");
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkloadVersion",
            "metadata": meta("KeptnWorkload", &name, &format!("uid-{name}"), Some("uid-wl")),
            "spec": {"app": app, "version": version, "workloadName": format!("{app}-{app}"),
                     "preDeploymentTasks": pre_tasks,
                     "resourceReference": {"uid": "uid-rs", "kind": "ReplicaSet", "name": format!("{app}-abc")}},
            "status": status
        }))
        .expect("kwv")
    }

    pub fn task(name: &str, owner_uid: &str, definition: &str, status: Value) -> KeptnTask {
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTask",
            "metadata": meta("KeptnWorkloadVersion", name, &format!("uid-{name}"), Some(owner_uid)),
            "spec": {"taskDefinition": definition, "checkType": "pre", "context": {}},
            "status": status
        }))
        .expect("task")
    }

    pub fn evaluation(
        name: &str,
        owner_uid: &str,
        definition: &str,
        status: Value,
    ) -> KeptnEvaluation {
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluation",
            "metadata": meta("KeptnAppVersion", name, &format!("uid-{name}"), Some(owner_uid)),
            "spec": {"evaluationDefinition": definition, "workloadVersion": "", "checkType": "pre-eval", "retries": 3},
            "status": status
        }))
        .expect("evaluation")
    }

    pub fn evaluation_definition(
        name: &str,
        objectives: &[(&str, &str)],
    ) -> KeptnEvaluationDefinition {
        let objectives: Vec<Value> = objectives
            .iter()
            .map(|(m, target)| json!({"keptnMetricRef": {"name": m}, "evaluationTarget": target}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluationDefinition",
            "metadata": meta("", name, &format!("uid-{name}"), None),
            "spec": {"objectives": objectives}
        }))
        .expect("evaluation definition")
    }

    /// A pod of the single-service app `app` stamped by the webhook, gated or not.
    pub fn pod(name: &str, app: &str, version: &str, gated: bool) -> Pod {
        let gates = if gated {
            json!([{"name": "other.io/gate"}, {"name": shared::gate::GATE}])
        } else {
            json!([])
        };
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                "creationTimestamp": t(1),
                "annotations": {"keptn.sh/app": app, "keptn.sh/workload": app, "keptn.sh/version": version},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-abc"), "uid": "uid-rs"}]},
            "spec": {"containers": [{"name": "c"}], "schedulingGates": gates}
        }))
        .expect("pod")
    }

    /// A pod with no Keptn identity.
    pub fn plain_pod(name: &str, gated: bool, owner_uid: &str) -> Pod {
        let mut p = pod(name, "x", "1", gated);
        p.metadata.annotations = None;
        if let Some(o) = p.metadata.owner_references.as_mut() {
            o[0].uid = owner_uid.to_owned();
        }
        p
    }

    /// A KWV failed in WorkloadPreDeployTasks on the task `pre-check-db-12345`.
    pub fn failed_kwv() -> KeptnWorkloadVersion {
        kwv(
            "api",
            "3",
            &["check-db"],
            json!({
                "currentPhase": "WorkloadPreDeployTasks", "status": "Failed",
                "preDeploymentStatus": "Failed", "preDeploymentEvaluationStatus": "Deprecated",
                "deploymentStatus": "Deprecated", "postDeploymentStatus": "Deprecated",
                "postDeploymentEvaluationStatus": "Deprecated",
                "startTime": t(2), "endTime": t(9),
                "preDeploymentTaskStatus": [{"definitionName": "check-db", "name": "pre-check-db-12345",
                    "status": "Failed", "startTime": t(3), "endTime": t(8)}]
            }),
        )
    }

    pub fn failed_task() -> KeptnTask {
        task(
            "pre-check-db-12345",
            "uid-api-api-3",
            "check-db",
            json!({"status": "Failed", "jobName": "pre-check-db-12345-67890",
                   "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit",
                   "startTime": t(3), "endTime": t(8)}),
        )
    }

    /// The KAV of `api` 3 that failed in AppDeploy because of [`failed_kwv`].
    pub fn failed_kav() -> KeptnAppVersion {
        kav(
            "api-3-6b86b273",
            "api",
            "3",
            0,
            json!({
                "currentPhase": "AppDeploy", "status": "Failed",
                "preDeploymentStatus": "Succeeded", "preDeploymentEvaluationStatus": "Succeeded",
                "workloadOverallStatus": "Failed", "postDeploymentStatus": "Deprecated",
                "postDeploymentEvaluationStatus": "Deprecated", "promotionStatus": "Deprecated",
                "startTime": t(1), "endTime": t(9)
            }),
        )
    }
}

use fixtures::*;

fn plain() -> Style {
    Style {
        format: Format::Table,
        color: false,
    }
}

fn held_snapshot() -> Snapshot {
    Snapshot {
        apps: vec![app("api", "3", 1, 1), app("other", "1", 1, 1)],
        app_versions: vec![failed_kav()],
        workload_versions: vec![failed_kwv()],
        tasks: vec![
            failed_task(),
            task(
                "pre-unrelated-11111",
                "uid-someone-else",
                "x",
                json!({"status": "Succeeded"}),
            ),
        ],
        evaluations: vec![],
        evaluation_definitions: vec![],
        pods: vec![
            pod("api-1", "api", "3", true),
            pod("api-2", "api", "3", true),
            pod("api-3", "api", "3", false),
            pod("other-1", "other", "1", true),
        ],
    }
}

/// A held rollout: the failed phase, the failed task with its Job, the gated pods, drawn.
#[test]
fn held_app_shows_the_failed_phase_task_and_gated_pods() {
    let report = build(&held_snapshot(), Some("api"), at(20));
    assert_eq!(report.apps.len(), 1);
    let a = &report.apps[0];
    assert_eq!((a.name.as_str(), a.revision), ("api", 1));
    let kav = a.app_version.as_ref().expect("the KAV");
    assert_eq!(kav.name, "api-3-6b86b273");
    assert_eq!(kav.duration.as_deref(), Some("8s"));
    let kwv = a.workloads[0].workload_version.as_ref().expect("the KWV");
    assert_eq!(kwv.phases[0].phase, "WorkloadPreDeployTasks");
    assert_eq!(kwv.phases[0].status, "Failed");
    assert_eq!(
        (kwv.phases[0].checks, kwv.phases[0].failed_checks),
        (Some(1), 1)
    );
    assert_eq!(
        kwv.phases[0].duration.as_deref(),
        Some("5s"),
        "from the task's times"
    );
    assert!(
        kwv.phases[1..]
            .iter()
            .all(|p| p.duration.is_none() && !p.running)
    );
    assert_eq!(a.tasks.len(), 1, "only the tasks of the app's versions");
    assert_eq!(a.tasks[0].job_name, "pre-check-db-12345-67890");
    let gated: Vec<&str> = a.gated_pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(gated, ["api-1", "api-2"]);
    assert_eq!(a.gated_pods[0].age.as_deref(), Some("19s"));
    let text = render(&report, &plain(), "in namespace shop");
    let want = "\
App shop/api   version 3   revision 1
  KeptnAppVersion api-3-6b86b273   Failed   phase AppDeploy   took 8s
    PHASE                      STATUS       CHECKS   DURATION
    AppPreDeployTasks          Succeeded    0        0s
    AppPreDeployEvaluations    Succeeded    0        0s
  > AppDeploy                  Failed       -        8s
    AppPostDeployTasks         Deprecated   0        -
    AppPostDeployEvaluations   Deprecated   0        -

Workloads
  WORKLOAD   VERSION   KEPTNWORKLOADVERSION   PHASE                    STATUS   DURATION
  api        3         api-api-3              WorkloadPreDeployTasks   Failed   7s
  KeptnWorkloadVersion api-api-3   Failed   phase WorkloadPreDeployTasks   took 7s
      PHASE                           STATUS       CHECKS         DURATION
    > WorkloadPreDeployTasks          Failed       1 (1 failed)   5s
      WorkloadPreDeployEvaluations    Deprecated   0              -
      WorkloadDeploy                  Deprecated   -              -
      WorkloadPostDeployTasks         Deprecated   0              -
      WorkloadPostDeployEvaluations   Deprecated   0              -

Tasks
  OWNER       TASK                 DEFINITION   TYPE   STATUS   JOB                        REASON
  api-api-3   pre-check-db-12345   check-db     pre    Failed   pre-check-db-12345-67890   BackoffLimitExceeded

Evaluations
  none

Gated pods
  POD     KEPTNWORKLOADVERSION   AGE
  api-1   api-api-3              19s
  api-2   api-api-3              19s
";
    assert_eq!(text, want, "\n{text}");
}

#[test]
fn every_app_of_the_namespace_and_none_found() {
    let report = build(&held_snapshot(), None, at(20));
    let names: Vec<&str> = report.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["api", "other"]);
    let other = &report.apps[1];
    assert!(other.app_version.is_none());
    assert!(other.workloads[0].workload_version.is_none());
    assert_eq!(
        other.gated_pods[0].name, "other-1",
        "gated, its version not created yet"
    );
    let text = render(&report, &plain(), "in namespace shop");
    assert!(
        text.contains("KeptnAppVersion: none (not created yet)"),
        "{text}"
    );
    assert!(text.contains("NotCreated"), "{text}");
    let none = build(&Snapshot::default(), None, at(0));
    assert_eq!(
        render(&none, &plain(), "in namespace shop"),
        "No KeptnApps found in namespace shop.\n"
    );
}

#[test]
fn colours_states_only_when_asked() {
    let report = build(&held_snapshot(), Some("api"), at(20));
    let colour = Style {
        format: Format::Table,
        color: true,
    };
    let text = render(&report, &colour, "");
    assert!(text.contains("\u{1b}[31mFailed\u{1b}[0m"));
    assert!(text.contains("\u{1b}[32mSucceeded\u{1b}[0m"));
    assert!(!render(&report, &plain(), "").contains('\u{1b}'));
}

/// The KAV the app's spec names (its generation); else the newest of `status.currentVersion`;
/// else the newest.
#[test]
fn current_app_version_follows_the_spec_then_the_status() {
    let mut a = app("api", "3", 2, 2);
    let gen1 = kav("api-3-6b86b273", "api", "3", 0, json!({}));
    let gen2 = kav("api-3-d4735e3a", "api", "3", 5, json!({}));
    let old = kav("api-2-6b86b273", "api", "2", 9, json!({}));
    let kavs = vec![gen1.clone(), old.clone(), gen2.clone()];
    let name = |k: Option<&KeptnAppVersion>| k.and_then(|k| k.metadata.name.clone());
    assert_eq!(name(current_app_version(&a, &kavs)), gen2.metadata.name);
    // Generation 3 not created yet: the newest of version 3.
    a.metadata.generation = Some(3);
    assert_eq!(name(current_app_version(&a, &kavs)), gen2.metadata.name);
    a.status = None;
    assert_eq!(
        name(current_app_version(&a, &kavs)),
        old.metadata.name,
        "newest"
    );
    assert_eq!(current_app_version(&a, &[]), None);
}

/// A completed workload version: the pre-deployment task from its times, the evaluations phase
/// without checks passing at once, the deployment from `deploymentStartTime` to the version's
/// end (the phases after it listing nothing).
#[test]
fn phase_times_from_items_the_deployment_and_the_neighbours() {
    let k = kwv(
        "web",
        "1",
        &["migrate"],
        json!({
            "currentPhase": "Completed", "status": "Succeeded",
            "preDeploymentStatus": "Succeeded", "preDeploymentEvaluationStatus": "Succeeded",
            "deploymentStatus": "Succeeded", "postDeploymentStatus": "Succeeded",
            "postDeploymentEvaluationStatus": "Succeeded",
            "startTime": t(0), "endTime": t(30), "deploymentStartTime": t(10),
            "preDeploymentTaskStatus": [{"definitionName": "migrate", "name": "pre-migrate-1",
                "status": "Succeeded", "startTime": t(1), "endTime": t(9)}]
        }),
    );
    let r = workload_version_report(&k, at(100));
    let durations: Vec<Option<&str>> = r.phases.iter().map(|p| p.duration.as_deref()).collect();
    assert_eq!(
        durations,
        [Some("8s"), Some("0s"), Some("20s"), Some("0s"), Some("0s")]
    );
    assert_eq!(r.phases[2].start_time, Some(t(10)));
    assert_eq!(r.phases[2].end_time, Some(t(30)));
    assert_eq!(r.phases[1].start_time, Some(t(9)), "right after the tasks");
    assert_eq!(r.duration.as_deref(), Some("30s"));
    assert!(r.phases.iter().all(|p| !p.running && !p.current));
}

/// The phase in progress counts up to now; the phases after it have not started.
#[test]
fn a_running_phase_counts_up_to_now() {
    let k = kwv(
        "web",
        "1",
        &[],
        json!({
            "currentPhase": "WorkloadDeploy", "status": "Progressing",
            "preDeploymentStatus": "Succeeded", "preDeploymentEvaluationStatus": "Succeeded",
            "deploymentStatus": "Progressing", "startTime": t(0), "deploymentStartTime": t(5)
        }),
    );
    let r = workload_version_report(&k, at(65));
    let deploy = &r.phases[2];
    assert!(deploy.running && deploy.current);
    assert_eq!(deploy.duration.as_deref(), Some("1m0s"));
    assert_eq!(r.duration.as_deref(), Some("1m5s"));
    assert!(r.phases[3].start_time.is_none() && r.phases[3].duration.is_none());
    let text = render(
        &StatusReport {
            apps: vec![AppReport {
                namespace: "shop".into(),
                name: "web".into(),
                version: "1".into(),
                revision: 1,
                current_version: "1".into(),
                app_version: None,
                workloads: vec![WorkloadReport {
                    workload: "web".into(),
                    version: "1".into(),
                    workload_version_name: r.name.clone(),
                    workload_version: Some(r.clone()),
                }],
                tasks: vec![],
                evaluations: vec![],
                gated_pods: vec![],
            }],
        },
        &plain(),
        "",
    );
    assert!(text.contains("1m0s (running)"), "{text}");
    assert!(text.contains("running for 1m5s"), "{text}");
}

/// With tracing on, a phase's start travels in its `phaseTraceIDs` entry's `tracestate`.
#[test]
fn phase_start_from_the_trace_state() {
    let nanos = at(4).as_nanosecond();
    let carrier = BTreeMap::from([(
        TRACESTATE.to_owned(),
        format!("other=x, portcullis=s:{nanos}"),
    )]);
    assert_eq!(trace_start(Some(&carrier)), Some(at(4)));
    assert_eq!(trace_start(None), None);
    let bad = BTreeMap::from([(TRACESTATE.to_owned(), "portcullis=s:nope".to_owned())]);
    assert_eq!(trace_start(Some(&bad)), None);
    let mut k = failed_kav();
    if let Some(s) = k.status.as_mut() {
        s.phase_trace_ids.insert("AppDeploy".into(), carrier);
    }
    let r = app_version_report(&k, at(20));
    assert_eq!(r.phases[2].start_time, Some(t(4)));
    assert_eq!(
        r.phases[2].duration.as_deref(),
        Some("5s"),
        "to the version's end"
    );
}

/// Each objective with the value compared and the definition's target (or the message's).
#[test]
fn evaluation_objectives_with_value_and_target() {
    let e = evaluation(
        "pre-eval-error-rate-12345",
        "uid-kav",
        "error-rate-low",
        json!({"overallStatus": "Failed", "retryCount": 2, "evaluationStatus": {
            "error-rate": {"value": "5", "status": "Failed", "message": "value '5' did not meet objective '<1'"},
            "latency": {"value": "", "status": "Failed", "message": "empty value for: latency"}
        }}),
    );
    let def = evaluation_definition(
        "error-rate-low",
        &[
            ("error-rate", "<1"),
            ("latency", "<300"),
            ("saturation", "<0.8"),
        ],
    );
    let r = evaluation_report("kav", &e, std::slice::from_ref(&def));
    let rows: Vec<(&str, &str, Option<&str>, &str)> = r
        .objectives
        .iter()
        .map(|o| {
            (
                o.metric.as_str(),
                o.value.as_str(),
                o.target.as_deref(),
                o.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("error-rate", "5", Some("<1"), "Failed"),
            ("latency", "", Some("<300"), "Failed"),
            ("saturation", "", Some("<0.8"), "Pending"),
        ]
    );
    assert_eq!((r.retry_count, r.retries), (2, 3));
    // Without the definition the target comes from the message.
    let r = evaluation_report("kav", &e, &[]);
    assert_eq!(r.objectives[0].target.as_deref(), Some("<1"));
    assert_eq!(r.objectives[1].target, None);
}

/// The gate's lookup: the stamped identity, else the version whose resource is the first owner.
#[test]
fn a_pods_workload_version_from_its_stamp_or_its_owner() {
    let kwvs = vec![failed_kwv()];
    assert_eq!(
        pod_workload_version(&pod("p", "api", "3", true), &kwvs).as_deref(),
        Some("api-api-3")
    );
    assert_eq!(
        pod_workload_version(&plain_pod("p", true, "uid-rs"), &kwvs).as_deref(),
        Some("api-api-3")
    );
    assert_eq!(
        pod_workload_version(&plain_pod("p", true, "uid-other"), &kwvs),
        None
    );
    assert!(pod_gated(&pod("p", "api", "3", true)));
    assert!(!pod_gated(&pod("p", "api", "3", false)));
}

#[test]
fn durations_read_as_go_prints_them() {
    assert_eq!(human(at(0), at(0)), "0s");
    assert_eq!(human(at(0), at(75)), "1m15s");
    assert_eq!(human(at(10), at(0)), "0s", "never negative");
    assert_eq!(
        human(at(0), at(0) + jiff::SignedDuration::from_millis(350)),
        "350ms"
    );
    assert_eq!(
        human(at(0), at(2) + jiff::SignedDuration::from_millis(350)),
        "2s"
    );
}

/// JSON keeps the field names scripts read.
#[test]
fn serialises_with_camel_case_fields() {
    let report = build(&held_snapshot(), Some("api"), at(20));
    let v = serde_json::to_value(&report).expect("json");
    let a = &v["apps"][0];
    assert_eq!(a["appVersion"]["currentPhase"], "AppDeploy");
    assert_eq!(a["workloads"][0]["workloadVersionName"], "api-api-3");
    assert_eq!(a["tasks"][0]["jobName"], "pre-check-db-12345-67890");
    assert_eq!(a["gatedPods"][0]["workloadVersion"], "api-api-3");
    assert_eq!(
        a["workloads"][0]["workloadVersion"]["phases"][0]["durationSeconds"],
        5.0
    );
}
