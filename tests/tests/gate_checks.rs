//! End-to-end tests of pre-deployment checks (issue 7): the real `portcullis-gate` binary against
//! a real control plane, where a KeptnTask's Job is run by the real Job controller and kwok plays
//! its pod (the outcome set through the `kwok.portcullis.dev/*` label and annotation on the
//! KeptnTaskDefinition, which reach the Job's pods,
//! B §5.1, §5.4) and KeptnEvaluations read KeptnMetrics.
//!
//! As in `e2e.rs`, the test plays the webhook: pods get the gate and the stamped identity from
//! their Deployment's pod template, and the test creates the KeptnWorkload and the
//! KeptnAppCreationRequest. Every test runs its own control plane, gate and namespace; waits poll with
//! a deadline.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use shared::crd::{KeptnAppVersion, KeptnEvaluation, KeptnState, KeptnTask, KeptnWorkloadVersion};

use e2e::*;

async fn jobs(client: &Client, ns: &str) -> Vec<Job> {
    Api::<Job>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// A container KeptnTaskDefinition whose Job pods behave as `outcome` (`succeed`, `fail`) for
/// `run_for` (kwok outcome control through the definition's label and annotation, B §5.1/§5.4).
async fn task_definition(
    client: &Client,
    ns: &str,
    name: &str,
    outcome: &str,
    run_for: &str,
    spec: serde_json::Value,
) {
    let mut full = json!({"container": {"name": "check", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}});
    if let (Some(f), Some(s)) = (full.as_object_mut(), spec.as_object()) {
        f.extend(s.clone());
    }
    let def: shared::crd::KeptnTaskDefinition = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": name, "labels": {"kwok.portcullis.dev/outcome": outcome}, "annotations": {"kwok.portcullis.dev/run-for": run_for}},
        "spec": full
    }))
    .expect("definition");
    Api::<shared::crd::KeptnTaskDefinition>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &def)
        .await
        .expect("definition created");
}

/// The one workload pre-deployment KeptnTask once it is completed.
async fn finished_task(client: &Client, ns: &str) -> KeptnTask {
    wait_for("the KeptnTask completed", WAIT, || {
        let c = client.clone();
        async move {
            let t = tasks(&c, ns).await.into_iter().next()?;
            let s = t.status.as_ref()?;
            matches!(s.status, KeptnState::Succeeded | KeptnState::Failed).then_some(t)
        }
    })
    .await
}

async fn kwv(client: &Client, ns: &str, name: &str) -> Option<KeptnWorkloadVersion> {
    get(client, ns, name).await
}

async fn the_kav(client: &Client, ns: &str) -> Option<KeptnAppVersion> {
    Api::<KeptnAppVersion>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .ok()?
        .items
        .into_iter()
        .next()
}

/// `PodScheduled=False` with reason `SchedulingGated`: what `kubectl get pods` shows as STATUS.
fn scheduling_gated(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("SchedulingGated")
            })
        })
}

/// Sets a KeptnMetric's status as a metrics operator would.
async fn metric(client: &Client, ns: &str, name: &str, value: &str) {
    let api: Api<shared::crd::KeptnMetric> = Api::namespaced(client.clone(), ns);
    let m: shared::crd::KeptnMetric = serde_json::from_value(json!({
        "apiVersion": "metrics.keptn.sh/v1", "kind": "KeptnMetric",
        "metadata": {"name": name},
        "spec": {"provider": {"name": "prometheus"}, "query": "q", "fetchIntervalSeconds": 10}
    }))
    .expect("metric");
    api.create(&PostParams::default(), &m)
        .await
        .expect("metric created");
    let raw = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, value);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"value": value, "rawValue": raw}})),
    )
    .await
    .expect("metric status");
}

/// An app `app` whose KeptnAppContext asks for a pre-deployment evaluation of `metric < 1`,
/// with a Deployment of one pod and its workload objects.
async fn app_with_pre_evaluation(client: &Client, ns: &str, app: &str, retries: i64) {
    let ked: shared::crd::KeptnEvaluationDefinition = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluationDefinition",
        "metadata": {"name": "error-rate-low"},
        "spec": {"objectives": [{"keptnMetricRef": {"name": "error-rate"}, "evaluationTarget": "<1"}],
                 "retries": retries, "retryInterval": "300ms"}
    }))
    .expect("evaluation definition");
    Api::<shared::crd::KeptnEvaluationDefinition>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &ked)
        .await
        .expect("evaluation definition created");
    let ctx: shared::crd::KeptnAppContext = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppContext",
        "metadata": {"name": app},
        "spec": {"preDeploymentEvaluations": ["error-rate-low"]}
    }))
    .expect("context");
    Api::<shared::crd::KeptnAppContext>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &ctx)
        .await
        .expect("context created");
    let rs = gated_deployment(client, ns, app, app, "1", 1, json!({})).await;
    workload_objects(client, ns, app, app, "1", &rs, &[]).await;
    creation_request(client, ns, app, true).await;
}

/// The app's one pre-deployment KeptnEvaluation once it is completed.
async fn finished_evaluation(client: &Client, ns: &str) -> KeptnEvaluation {
    wait_for("the KeptnEvaluation completed", WAIT, || {
        let c = client.clone();
        async move {
            let e = Api::<KeptnEvaluation>::namespaced(c, ns)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()?;
            let s = e.status.as_ref()?;
            matches!(s.overall_status, KeptnState::Succeeded | KeptnState::Failed).then_some(e)
        }
    })
    .await
}

fn warning_on(evs: &[Event], kind: &str, name: &str, reason: &str) -> Option<Event> {
    evs.iter()
        .find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some(kind)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .cloned()
}

/// B §5.3, §5.4, A12: a pre-deployment task's Job runs and succeeds; the task is `Succeeded`,
/// the pods are released and run, and the rollout completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeeding_task_job_releases_and_completes() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "task-ok";
    env.namespace(ns).await;
    env.start_gate(&[]);
    task_definition(
        &c,
        ns,
        "migrate",
        "succeed",
        "300ms",
        json!({"retries": 1, "timeout": "30s"}),
    )
    .await;
    let rs = gated_deployment(&c, ns, "db", "db", "1", 2, json!({})).await;
    workload_objects(&c, ns, "db", "db", "1", &rs, &["migrate"]).await;
    creation_request(&c, ns, "db", true).await;
    // Gated while the Job runs.
    let running: KeptnTask = wait_for("the task's Job", WAIT, || {
        let c = c.clone();
        async move {
            let t = tasks(&c, ns).await.into_iter().next()?;
            (!t.status.as_ref()?.job_name.is_empty()).then_some(t)
        }
    })
    .await;
    let job_name = running.status.as_ref().expect("status").job_name.clone();
    let task = finished_task(&c, ns).await;
    let s = task.status.as_ref().expect("status");
    assert_eq!(s.status, KeptnState::Succeeded, "{s:?}");
    assert_eq!(s.job_name, job_name);
    assert!(s.end_time.is_some());
    // The task is Succeeded from the Job's `SuccessCriteriaMet` already (B §5.3 step 4); the
    // Job's terminal `Complete` may come in a later write of the Job controller.
    let job: Job = wait_for("the Job Complete", WAIT, || {
        let c = c.clone();
        let job_name = job_name.clone();
        async move {
            let job: Job = get(&c, ns, &job_name).await?;
            let conds = job.status.as_ref()?.conditions.as_ref()?;
            conds
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
                .then_some(job)
        }
    })
    .await;
    let conds = job
        .status
        .clone()
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True"),
        "the Job really completed: {conds:?}"
    );
    assert_eq!(
        job.metadata.owner_references.unwrap_or_default()[0].name,
        task.name_any()
    );
    wait_for("pods released and ready", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "db").await;
            (p.len() == 2 && p.iter().all(|p| released(p) && ready(p))).then_some(())
        }
    })
    .await;
    wait_for("KWV and KAV Completed", WAIT, || {
        let c = c.clone();
        async move {
            let w = kwv_state(&c, ns, "db-db-1").await?;
            let a = kav_state(&c, ns, &the_kav(&c, ns).await?.name_any()).await?;
            (w == ("Completed".to_owned(), KeptnState::Succeeded)
                && a == ("Completed".to_owned(), KeptnState::Succeeded))
                .then_some(())
        }
    })
    .await;
    let k = kwv(&c, ns, "db-db-1")
        .await
        .expect("kwv")
        .status
        .expect("status");
    assert_eq!(k.pre_deployment_status, KeptnState::Succeeded);
    assert_eq!(k.pre_deployment_task_status[0].name, task.name_any());
}

/// B §5.3 step 4, §3.11, A12: a task whose container keeps failing exhausts `retries`
/// (`BackoffLimitExceeded`); the KWV fails in `WorkloadPreDeployTasks` with the cascade, the
/// pods stay `SchedulingGated` and each gets a Warning naming the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_task_backoff_keeps_pods_gated_and_cascades() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "task-fail";
    env.namespace(ns).await;
    env.start_gate(&[]);
    task_definition(
        &c,
        ns,
        "check-db",
        "fail",
        "100ms",
        json!({"retries": 1, "timeout": "30s"}),
    )
    .await;
    let rs = gated_deployment(&c, ns, "api", "api", "3", 2, json!({})).await;
    workload_objects(&c, ns, "api", "api", "3", &rs, &["check-db"]).await;
    creation_request(&c, ns, "api", true).await;
    let task = finished_task(&c, ns).await;
    let s = task.status.clone().expect("status");
    assert_eq!(s.status, KeptnState::Failed, "{s:?}");
    assert_eq!(s.reason, "BackoffLimitExceeded");
    assert_eq!(s.message, "Job has reached the specified backoff limit");
    wait_for_kwv(
        &c,
        ns,
        "api-api-3",
        "WorkloadPreDeployTasks",
        KeptnState::Failed,
        "KWV failed",
    )
    .await;
    let k = kwv(&c, ns, "api-api-3")
        .await
        .expect("kwv")
        .status
        .expect("status");
    assert_eq!(k.pre_deployment_status, KeptnState::Failed);
    for (field, v) in [
        (
            "preDeploymentEvaluationStatus",
            &k.pre_deployment_evaluation_status,
        ),
        ("deploymentStatus", &k.deployment_status),
        ("postDeploymentStatus", &k.post_deployment_status),
        (
            "postDeploymentEvaluationStatus",
            &k.post_deployment_evaluation_status,
        ),
    ] {
        assert_eq!(*v, KeptnState::Deprecated, "{field}");
    }
    assert_eq!(k.pre_deployment_task_status[0].status, KeptnState::Failed);
    let name = task.name_any();
    wait_for("a Warning on each held pod", WAIT, || {
        let c = c.clone();
        let name = name.clone();
        async move {
            let evs = events(&c, ns).await;
            let p = pods(&c, ns, "api").await;
            (p.len() == 2
                && p.iter().all(|pod| {
                    warning_on(&evs, "Pod", &pod.name_any(), "WorkloadPreDeployTasksFailed")
                        .and_then(|e| e.note)
                        .is_some_and(|n| {
                            n.contains(&format!("'check-db' (KeptnTask {name}) failed"))
                        })
                }))
            .then_some(())
        }
    })
    .await;
    let p = pods(&c, ns, "api").await;
    assert!(p.iter().all(gated), "a failed pre-check keeps pods gated");
    wait_for("pods shown SchedulingGated", WAIT, || {
        let c = c.clone();
        async move {
            pods(&c, ns, "api")
                .await
                .iter()
                .all(scheduling_gated)
                .then_some(())
        }
    })
    .await;
    assert!(
        pods(&c, ns, "api").await.iter().all(|p| p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .is_none()),
        "never scheduled"
    );
}

/// B §5.3 step 4, §5.4 (`activeDeadlineSeconds` = `timeout`): a task running longer than its
/// timeout fails with `DeadlineExceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_over_its_timeout_fails_with_deadline_exceeded() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "task-slow";
    env.namespace(ns).await;
    env.start_gate(&[]);
    task_definition(
        &c,
        ns,
        "soak",
        "succeed",
        "60s",
        json!({"retries": 0, "timeout": "2s"}),
    )
    .await;
    let rs = gated_deployment(&c, ns, "web", "web", "1", 1, json!({})).await;
    workload_objects(&c, ns, "web", "web", "1", &rs, &["soak"]).await;
    creation_request(&c, ns, "web", true).await;
    let task = finished_task(&c, ns).await;
    let s = task.status.clone().expect("status");
    assert_eq!(s.status, KeptnState::Failed, "{s:?}");
    assert_eq!(s.reason, "DeadlineExceeded");
    assert_eq!(s.message, "Job was active longer than specified deadline");
    let job: Job = get(&c, ns, &s.job_name).await.expect("the Job");
    assert_eq!(
        job.spec.as_ref().and_then(|s| s.active_deadline_seconds),
        Some(2)
    );
    wait_for_kwv(
        &c,
        ns,
        "web-web-1",
        "WorkloadPreDeployTasks",
        KeptnState::Failed,
        "KWV failed",
    )
    .await;
    let p = wait_pods(&c, ns, "web", 1).await;
    assert!(p.iter().all(gated));
}

/// B §6.2, §3.6: an app pre-deployment evaluation whose KeptnMetric satisfies the target
/// succeeds; the workload is released and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_pre_evaluation_passes_on_a_satisfying_metric() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "eval-ok";
    env.namespace(ns).await;
    env.start_gate(&[]);
    metric(&c, ns, "error-rate", "0.2").await;
    app_with_pre_evaluation(&c, ns, "shop", 3).await;
    let e = finished_evaluation(&c, ns).await;
    let s = e.status.expect("status");
    assert_eq!(s.overall_status, KeptnState::Succeeded, "{s:?}");
    let item = &s.evaluation_status["error-rate"];
    assert_eq!(item.value, "0.2");
    assert_eq!(item.message, "value '0.2' met objective '<1'");
    assert_eq!(e.spec.check_type, "pre-eval");
    assert_eq!(e.spec.app_name, "shop");
    wait_for("pod released and ready", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "shop").await;
            (p.len() == 1 && p.iter().all(|p| released(p) && ready(p))).then_some(())
        }
    })
    .await;
    let kav = wait_for("KAV Completed", WAIT, || {
        let c = c.clone();
        async move {
            let k = the_kav(&c, ns).await?;
            (k.status.as_ref()?.current_phase == "Completed").then_some(k)
        }
    })
    .await;
    let s = kav.status.expect("status");
    assert_eq!(s.pre_deployment_evaluation_status, KeptnState::Succeeded);
    assert_eq!(s.status, KeptnState::Succeeded);
}

/// B §6.2, §3.6, §3.11, A12: a metric that does not meet the target fails the evaluation after
/// its `retries` attempts; the KAV fails in `AppPreDeployEvaluations` and the pod stays gated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_pre_evaluation_fails_after_its_retries() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "eval-fail";
    env.namespace(ns).await;
    env.start_gate(&[]);
    metric(&c, ns, "error-rate", "5").await;
    app_with_pre_evaluation(&c, ns, "shop", 2).await;
    let e = finished_evaluation(&c, ns).await;
    let s = e.status.clone().expect("status");
    assert_eq!(s.overall_status, KeptnState::Failed, "{s:?}");
    assert_eq!(s.retry_count, 2, "two attempts, then it gives up");
    assert_eq!(
        s.evaluation_status["error-rate"].message,
        "value '5' did not meet objective '<1'"
    );
    let name = e.name_any();
    wait_for("the evaluation's failure events", WAIT, || {
        let c = c.clone();
        let name = name.clone();
        async move {
            let evs = events(&c, ns).await;
            let timeout = warning_on(
                &evs,
                "KeptnEvaluation",
                &name,
                "ReconcileEvaluationReconcileTimeout",
            )?;
            let failed = warning_on(&evs, "KeptnEvaluation", &name, "ReconcileEvaluationFailed")?;
            (timeout.type_.as_deref() == Some("Warning")
                && failed
                    .note
                    .as_deref()
                    .is_some_and(|n| n.contains("evaluation of 'error-rate' failed")))
            .then_some(())
        }
    })
    .await;
    let kav = wait_for("KAV failed", WAIT, || {
        let c = c.clone();
        async move {
            let k = the_kav(&c, ns).await?;
            let s = k.status.as_ref()?;
            (s.current_phase == "AppPreDeployEvaluations" && s.status == KeptnState::Failed)
                .then_some(k)
        }
    })
    .await;
    let s = kav.status.expect("status");
    assert_eq!(s.pre_deployment_evaluation_status, KeptnState::Failed);
    for (field, v) in [
        ("workloadOverallStatus", &s.workload_overall_status),
        ("postDeploymentStatus", &s.post_deployment_status),
        (
            "postDeploymentEvaluationStatus",
            &s.post_deployment_evaluation_status,
        ),
        ("promotionStatus", &s.promotion_status),
    ] {
        assert_eq!(*v, KeptnState::Deprecated, "{field}");
    }
    // The pod is the ReplicaSet controller's, created independently of the evaluation.
    let p = wait_pods(&c, ns, "shop", 1).await;
    assert!(
        p.iter().all(gated),
        "a failed app evaluation keeps the pod gated"
    );
}

/// B §3.10, A16: with `blockDeployment: false` a task whose Job fails makes the phase `Warning`;
/// the pods are released and the workload version ends `Succeeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_blocking_failed_task_job_becomes_warning_and_proceeds() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "task-lenient";
    env.namespace(ns).await;
    env.config(ns, json!({"blockDeployment": false})).await;
    env.start_gate(&[]);
    task_definition(
        &c,
        ns,
        "smoke",
        "fail",
        "100ms",
        json!({"retries": 0, "timeout": "30s"}),
    )
    .await;
    let rs = gated_deployment(&c, ns, "web", "web", "2", 1, json!({})).await;
    workload_objects(&c, ns, "web", "web", "2", &rs, &["smoke"]).await;
    creation_request(&c, ns, "web", true).await;
    let task = finished_task(&c, ns).await;
    let s = task.status.clone().expect("status");
    assert_eq!(s.status, KeptnState::Failed, "{s:?}");
    assert_eq!(s.reason, "BackoffLimitExceeded");
    wait_for("pod released and ready", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "web").await;
            (p.len() == 1 && p.iter().all(|p| released(p) && ready(p))).then_some(())
        }
    })
    .await;
    let k = wait_for("KWV Completed", WAIT, || {
        let c = c.clone();
        async move {
            let k = kwv(&c, ns, "web-web-2").await?;
            (k.status.as_ref()?.current_phase == "Completed").then_some(k)
        }
    })
    .await;
    let s = k.status.expect("status");
    assert_eq!(s.pre_deployment_status, KeptnState::Warning);
    assert_eq!(s.status, KeptnState::Succeeded);
}

/// A15: the gate is SIGKILLed and restarted while a task's Job runs, and again after the task
/// completed and its Job was removed by `ttlSecondsAfterFinished`. Every Job ever created in the
/// namespace is recorded by a watch: one task, one Job, and the completed task is not re-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_gate_never_runs_a_task_twice() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "task-restart";
    env.namespace(ns).await;
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (watching, watched) = tokio::sync::oneshot::channel();
    let recorder = {
        let seen = seen.clone();
        let api: Api<Job> = Api::namespaced(c.clone(), ns);
        tokio::spawn(async move {
            let mut watching = Some(watching);
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j)) => {
                        if let Some(uid) = j.metadata.uid.clone() {
                            seen.lock().expect("lock").insert(uid);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(w) = watching.take() {
                            let _ = w.send(());
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    // Every Job from here on is seen.
    tokio::time::timeout(WAIT, watched)
        .await
        .expect("the Job watch started")
        .expect("the Job watch runs");
    let gate = env.start_gate(&[]);
    task_definition(
        &c,
        ns,
        "migrate",
        "succeed",
        "2s",
        json!({"retries": 1, "timeout": "30s", "ttlSecondsAfterFinished": 1}),
    )
    .await;
    let rs = gated_deployment(&c, ns, "db", "db", "7", 1, json!({})).await;
    workload_objects(&c, ns, "db", "db", "7", &rs, &["migrate"]).await;
    creation_request(&c, ns, "db", true).await;
    wait_for("the task's Job running", WAIT, || {
        let c = c.clone();
        async move {
            let t = tasks(&c, ns).await.into_iter().next()?;
            (t.status.as_ref()?.status == KeptnState::Progressing && !jobs(&c, ns).await.is_empty())
                .then_some(())
        }
    })
    .await;
    env.kill_gate(gate).await;
    let gate = env.start_gate(&[]);
    let task = finished_task(&c, ns).await;
    assert_eq!(
        task.status.as_ref().expect("status").status,
        KeptnState::Succeeded
    );
    wait_for("pod released", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "db").await;
            (p.len() == 1 && p.iter().all(released)).then_some(())
        }
    })
    .await;
    wait_for("the Job removed by its TTL", WAIT, || {
        let c = c.clone();
        async move { jobs(&c, ns).await.is_empty().then_some(()) }
    })
    .await;
    env.kill_gate(gate).await;
    // So that the restarted gate's reconcile of this completed task (whose Job is gone) shows,
    // its `endTime` is removed while no gate runs: the gate writes it back (B §5.3 step 5)
    // and must not create a Job doing so.
    Api::<KeptnTask>::namespaced(c.clone(), ns)
        .patch_status(
            &task.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"endTime": null}})),
        )
        .await
        .expect("endTime removed");
    let before: KeptnTask = get(&c, ns, &task.name_any()).await.expect("task");
    assert!(before.status.as_ref().expect("status").end_time.is_none());
    let third = env.start_gate(&[]);
    wait_for("gate caches synced", WAIT, || {
        let log = env.gate_log(third);
        async move { log.contains("caches synced").then_some(()) }
    })
    .await;
    wait_for("the restarted gate records the end again", WAIT, || {
        let c = c.clone();
        let name = task.name_any();
        async move {
            let t: KeptnTask = get(&c, ns, &name).await?;
            t.status?.end_time.map(|_| ())
        }
    })
    .await;
    // An observation window after the restarted gate reconciled the task (not a sync point): a
    // re-run would create the Job in that same reconcile.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(
            jobs(&c, ns).await.is_empty(),
            "the completed task was re-run"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after: KeptnTask = get(&c, ns, &task.name_any()).await.expect("task");
    assert_eq!(
        after.status.as_ref().expect("status").status,
        KeptnState::Succeeded
    );
    assert_eq!(
        before.status.as_ref().map(|s| s.job_name.clone()),
        after.status.as_ref().map(|s| s.job_name.clone())
    );
    let all = tasks(&c, ns).await;
    assert_eq!(
        all.len(),
        1,
        "one task: {:?}",
        all.iter().map(|t| t.name_any()).collect::<Vec<_>>()
    );
    recorder.abort();
    assert_eq!(
        seen.lock().expect("lock").len(),
        1,
        "exactly one Job was ever created"
    );
    wait_for("KWV Completed", WAIT, || {
        let c = c.clone();
        async move {
            (kwv_state(&c, ns, "db-db-7").await? == ("Completed".to_owned(), KeptnState::Succeeded))
                .then_some(())
        }
    })
    .await;
}
