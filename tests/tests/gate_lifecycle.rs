//! End-to-end tests: the real `portcullis-gate` binary on a real control plane (its Deployment,
//! ReplicaSet and Job controllers and scheduler; kwok plays the kubelets).
//!
//! Without the webhook in the loop, each test does the webhook's part itself where needed:
//! pods get the gate and the stamped identity through their Deployment's pod template, and the
//! KeptnWorkload / KeptnAppCreationRequest are created as A7 would. Every test runs its own
//! control plane and gate processes; waits poll with a deadline.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use shared::crd::{
    KeptnApp, KeptnAppCreationRequest, KeptnAppVersion, KeptnState, KeptnTask, KeptnWorkload,
    KeptnWorkloadVersion,
};

use e2e::*;

/// B §3.1 (single-service), §3.2, §3.3, §3.8, §3.9, A11–A13: an annotated Deployment without
/// checks is gated, then released, then Completed; a pod created later is released at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_service_deployment_is_gated_released_and_completed() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "basic";
    env.namespace(ns).await;
    env.start_gate(&[]);
    let rs = gated_deployment(&c, ns, "waiter", "waiter", "0.4", 2, json!({})).await;
    // Without a workload version the pods stay gated and unscheduled.
    let two_gated = wait_for("two gated pods", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "waiter").await;
            (p.len() == 2 && p.iter().all(gated)).then_some(p)
        }
    })
    .await;
    assert!(
        two_gated
            .iter()
            .all(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()).is_none())
    );

    workload_objects(&c, ns, "waiter", "waiter", "0.4", &rs, &[]).await;
    creation_request(&c, ns, "waiter", true).await;

    let app: KeptnApp = wait_for("the KeptnApp", WAIT, || {
        let c = c.clone();
        async move { get(&c, ns, "waiter").await }
    })
    .await;
    assert_eq!(app.spec.version, "0.4");
    assert_eq!(
        app.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("keptn")
    );
    assert_eq!(app.spec.workloads.len(), 1);
    assert_eq!(app.spec.workloads[0].name, "waiter");
    wait_for("the KACR deleted", WAIT, || {
        let c = c.clone();
        async move {
            get::<KeptnAppCreationRequest>(&c, ns, "waiter")
                .await
                .is_none()
                .then_some(())
        }
    })
    .await;

    wait_for("pods released and ready", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "waiter").await;
            (p.len() == 2 && p.iter().all(|p| released(p) && ready(p))).then_some(())
        }
    })
    .await;
    wait_for_kwv(
        &c,
        ns,
        "waiter-waiter-0.4",
        "Completed",
        KeptnState::Succeeded,
        "KWV waiter-waiter-0.4 Completed",
    )
    .await;
    wait_for("KAV waiter-0.4-6b86b273 Completed", WAIT, || {
        let c = c.clone();
        async move {
            (kav_state(&c, ns, "waiter-0.4-6b86b273").await?
                == ("Completed".to_owned(), KeptnState::Succeeded))
                .then_some(())
        }
    })
    .await;
    let kwv: KeptnWorkloadVersion = get(&c, ns, "waiter-waiter-0.4").await.expect("kwv");
    let s = kwv.status.expect("status");
    assert_eq!(s.deployment_status, KeptnState::Succeeded);
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    let finished = wait_for_event(&c, ns, "WorkloadCompletedFinished").await;
    let a = finished.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        a.get("phase").map(String::as_str),
        Some("WorkloadCompleted")
    );
    assert_eq!(
        a.get("workloadVersionName").map(String::as_str),
        Some("waiter-waiter-0.4")
    );
    assert_eq!(
        a.get("workloadName").map(String::as_str),
        Some("waiter-waiter")
    );
    assert_eq!(a.get("appName").map(String::as_str), Some("waiter"));
    assert_eq!(
        finished.reporting_controller.as_deref(),
        Some("keptnworkloadversion-controller")
    );
    for want in ["WorkloadDeployStarted", "AppCompletedFinished"] {
        wait_for_event(&c, ns, want).await;
    }

    // Scale up: the new pod of the released version is released at once.
    Api::<Deployment>::namespaced(c.clone(), ns)
        .patch(
            "waiter",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scaled");
    wait_for("third pod released", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "waiter").await;
            (p.len() == 3 && p.iter().all(released)).then_some(())
        }
    })
    .await;
}

/// B §3.1: a multi-service app waits for the discovery window (5 s through KeptnConfig), then
/// takes every workload with a hashed version; user-made apps are respected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_service_app_waits_for_discovery_window() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "shop";
    env.namespace(ns).await;
    // The window leaves room for a loaded machine between the request and the second workload.
    env.config(ns, json!({"keptnAppCreationRequestTimeoutSeconds": 5}))
        .await;
    env.start_gate(&[]);
    let rs_a = gated_deployment(&c, ns, "cart", "shop", "1.0", 1, json!({})).await;
    let rs_b = gated_deployment(&c, ns, "pay", "shop", "2.0", 1, json!({})).await;
    workload_objects(&c, ns, "shop", "cart", "1.0", &rs_a, &[]).await;
    // The window opens with the request's creation, read from the create response: once the
    // window is over the gate deletes the request, so a later read may find nothing.
    let created = creation_request_created(&c, ns, "shop").await;
    // The second workload arrives inside the window.
    workload_objects(&c, ns, "shop", "pay", "2.0", &rs_b, &[]).await;
    let app: KeptnApp = wait_for("the KeptnApp", WAIT, || {
        let c = c.clone();
        async move { get(&c, ns, "shop").await }
    })
    .await;
    let app_created = app
        .metadata
        .creation_timestamp
        .clone()
        .expect("timestamp")
        .0;
    assert!(
        app_created.duration_since(created) >= jiff::SignedDuration::from_secs(5),
        "created {app_created} only after the window opened at {created}"
    );
    let mut names: Vec<_> = app
        .spec
        .workloads
        .iter()
        .map(|w| (w.name.clone(), w.version.clone()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("cart".to_owned(), "1.0".to_owned()),
            ("pay".to_owned(), "2.0".to_owned())
        ]
    );
    assert_eq!(
        app.spec.version,
        shared::resolve::app_version(&[("shop-cart", "1.0"), ("shop-pay", "2.0")])
    );
    wait_for("both KWVs Completed", WAIT, || {
        let c = c.clone();
        async move {
            let a = kwv_state(&c, ns, "shop-cart-1.0").await?;
            let b = kwv_state(&c, ns, "shop-pay-2.0").await?;
            (a.1 == KeptnState::Succeeded && b.1 == KeptnState::Succeeded).then_some(())
        }
    })
    .await;

    // A user-made app is never modified by discovery; its request is just deleted.
    let user: KeptnApp = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
        "metadata": {"name": "mine"},
        "spec": {"version": "7", "workloads": [{"name": "x", "version": "7"}]}
    }))
    .expect("app");
    Api::<KeptnApp>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &user)
        .await
        .expect("user app");
    creation_request(&c, ns, "mine", true).await;
    wait_for("the user app's KACR deleted", WAIT, || {
        let c = c.clone();
        async move {
            get::<KeptnAppCreationRequest>(&c, ns, "mine")
                .await
                .is_none()
                .then_some(())
        }
    })
    .await;
    let after: KeptnApp = get(&c, ns, "mine").await.expect("app");
    assert_eq!(after.spec, user.spec);
    assert!(after.labels().get("app.kubernetes.io/managed-by").is_none());
}

/// A multi-service KeptnAppCreationRequest for `app`, as `creation_request` makes it; returns
/// its creation time from the create response.
async fn creation_request_created(client: &Client, ns: &str, app: &str) -> jiff::Timestamp {
    let kacr: KeptnAppCreationRequest = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppCreationRequest",
        "metadata": {"name": app},
        "spec": {"appName": app}
    }))
    .expect("kacr");
    let created = Api::<KeptnAppCreationRequest>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &kacr)
        .await
        .expect("kacr created");
    created.metadata.creation_timestamp.expect("timestamp").0
}

/// B §3.2 step 5: bumping a KeptnApp's revision creates a new KAV and fully deprecates the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_bump_deprecates_old_app_version() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "revs";
    env.namespace(ns).await;
    env.start_gate(&[]);
    let app: KeptnApp = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
        "metadata": {"name": "podtato"},
        "spec": {"version": "0.1", "workloads": [{"name": "head", "version": "0.1"}]}
    }))
    .expect("app");
    let apps: Api<KeptnApp> = Api::namespaced(c.clone(), ns);
    apps.create(&PostParams::default(), &app)
        .await
        .expect("app");
    wait_for("KAV generation 1 in AppDeploy", WAIT, || {
        let c = c.clone();
        async move {
            let (phase, _) = kav_state(&c, ns, "podtato-0.1-6b86b273").await?;
            (phase == "AppDeploy").then_some(())
        }
    })
    .await;
    apps.patch(
        "podtato",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"revision": 2}})),
    )
    .await
    .expect("bump");
    wait_for("KAV generation 2", WAIT, || {
        let c = c.clone();
        async move { get::<KeptnAppVersion>(&c, ns, "podtato-0.1-d4735e3a").await }
    })
    .await;
    let old: KeptnAppVersion = wait_for("old KAV deprecated", WAIT, || {
        let c = c.clone();
        async move {
            let k: KeptnAppVersion = get(&c, ns, "podtato-0.1-6b86b273").await?;
            (k.status.as_ref()?.status == KeptnState::Deprecated).then_some(k)
        }
    })
    .await;
    let s = old.status.expect("status");
    assert_eq!(s.current_phase, "AppDeploy", "currentPhase unchanged");
    for state in [
        &s.pre_deployment_status,
        &s.pre_deployment_evaluation_status,
        &s.workload_overall_status,
        &s.post_deployment_status,
        &s.post_deployment_evaluation_status,
        &s.promotion_status,
    ] {
        assert_eq!(*state, KeptnState::Deprecated);
    }
    let app: KeptnApp = get(&c, ns, "podtato").await.expect("app");
    assert_eq!(app.status.expect("status").current_version, "0.1");
}

/// B §3.9.1, §3.11: a deployment that never becomes ready fails after `observabilityTimeout`
/// (3 s here): KWV Failed with post phases Deprecated, then the KAV fails in AppDeploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_ready_deployment_fails_after_observability_timeout() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "slow";
    env.namespace(ns).await;
    env.config(ns, json!({"observabilityTimeout": "3s"})).await;
    env.start_gate(&[]);
    let rs = gated_deployment(
        &c,
        ns,
        "stuck",
        "stuck",
        "1",
        1,
        json!({"kwok.portcullis.dev/outcome": "never-ready"}),
    )
    .await;
    workload_objects(&c, ns, "stuck", "stuck", "1", &rs, &[]).await;
    creation_request(&c, ns, "stuck", true).await;
    let kwv: KeptnWorkloadVersion = wait_for("KWV failed", WAIT, || {
        let c = c.clone();
        async move {
            let k: KeptnWorkloadVersion = get(&c, ns, "stuck-stuck-1").await?;
            (k.status.as_ref()?.status == KeptnState::Failed).then_some(k)
        }
    })
    .await;
    let s = kwv.status.expect("status");
    assert_eq!(s.current_phase, "WorkloadDeploy");
    assert_eq!(s.deployment_status, KeptnState::Failed);
    assert_eq!(s.post_deployment_status, KeptnState::Deprecated);
    assert_eq!(s.post_deployment_evaluation_status, KeptnState::Deprecated);
    let start = s.deployment_start_time.expect("start").0;
    let end = s.end_time.expect("end").0;
    assert!(end.duration_since(start) >= jiff::SignedDuration::from_secs(3));
    wait_for("KAV failed in AppDeploy", WAIT, || {
        let c = c.clone();
        async move {
            (kav_state(&c, ns, "stuck-1-6b86b273").await?
                == ("AppDeploy".to_owned(), KeptnState::Failed))
                .then_some(())
        }
    })
    .await;
    let timeout = wait_for_event(&c, ns, "WorkloadDeployFinished").await;
    assert_eq!(timeout.type_.as_deref(), Some("Warning"));
    assert_eq!(
        timeout.note.as_deref(),
        Some(
            "Workload Deployment: has reached timeout / Namespace: slow, Name: stuck-stuck-1, Version: 1"
        )
    );
    let failed = wait_for_event(&c, ns, "AppDeployFailed").await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
}

/// Acts as the task controller of the next issue: sets a KeptnTask's status.
async fn finish_task(client: &Client, ns: &str, name: &str, state: &str) {
    Api::<KeptnTask>::namespaced(client.clone(), ns)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"status": state}})),
        )
        .await
        .expect("task status");
}

async fn task_definition(client: &Client, ns: &str, name: &str) {
    let api: Api<shared::crd::KeptnTaskDefinition> = Api::namespaced(client.clone(), ns);
    let def: shared::crd::KeptnTaskDefinition = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": name},
        "spec": {"container": {"name": "c", "image": "busybox"}}
    }))
    .expect("definition");
    api.create(&PostParams::default(), &def)
        .await
        .expect("definition created");
}

/// A12: a failed workload pre-deployment task keeps the pods gated, each with a Warning Event
/// naming the failed check (Keptn would release them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pre_task_keeps_pods_gated_with_warning() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "held";
    env.namespace(ns).await;
    env.start_gate(&[]);
    task_definition(&c, ns, "check-db").await;
    let rs = gated_deployment(&c, ns, "api", "api", "3", 2, json!({})).await;
    workload_objects(&c, ns, "api", "api", "3", &rs, &["check-db"]).await;
    creation_request(&c, ns, "api", true).await;
    let task = wait_for("the pre-deployment KeptnTask", WAIT, || {
        let c = c.clone();
        async move {
            tasks(&c, ns)
                .await
                .into_iter()
                .find(|t| t.spec.check_type == "pre")
        }
    })
    .await;
    let name = task.name_any();
    assert!(name.starts_with("pre-check-db-"), "{name}");
    assert_eq!(task.spec.context.workload_name, "api-api");
    assert_eq!(task.spec.context.object_type, "Workload");
    finish_task(&c, ns, &name, "Failed").await;
    wait_for_kwv(
        &c,
        ns,
        "api-api-3",
        "WorkloadPreDeployTasks",
        KeptnState::Failed,
        "KWV failed",
    )
    .await;
    let held = wait_for("a Warning on each held pod", WAIT, || {
        let c = c.clone();
        async move {
            let evs = events(&c, ns).await;
            let p = pods(&c, ns, "api").await;
            let on_pods: Vec<Event> = evs
                .into_iter()
                .filter(|e| {
                    e.reason.as_deref() == Some("WorkloadPreDeployTasksFailed")
                        && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Pod")
                })
                .collect();
            (p.len() == 2
                && p.iter().all(|pod| {
                    on_pods.iter().any(|e| {
                        e.regarding.as_ref().and_then(|r| r.name.clone()) == Some(pod.name_any())
                    })
                }))
            .then_some(on_pods)
        }
    })
    .await;
    let note = held[0].note.clone().unwrap_or_default();
    assert!(
        note.contains(&format!("'check-db' (KeptnTask {name}) failed")),
        "{note}"
    );
    assert_eq!(held[0].type_.as_deref(), Some("Warning"));
    // Still gated after the decision was made.
    let p = pods(&c, ns, "api").await;
    assert!(p.iter().all(gated), "failed pre-check keeps pods gated");
}

/// Restart safety and leader election: the leader is killed (SIGKILL) after it created the
/// pre-deployment task; a standby takes over once the lease lapses. No pod is released early,
/// the task is never created twice, and everything ends released and Completed. Then the
/// standby is killed too and a fresh process picks up a completed rollout without writes that
/// change anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_killed_mid_rollout_standby_takes_over() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "restart";
    env.namespace(ns).await;
    env.namespace("keptn-system").await;
    let lease = [
        "--leader-elect",
        "--lease-namespace",
        "keptn-system",
        "--lease-duration-seconds",
        "3",
        "--lease-retry-millis",
        "300",
    ];
    let first = env.start_gate(&lease);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(c.clone(), "keptn-system");
    wait_for("gate-0 leads", WAIT, || {
        let leases = leases.clone();
        async move {
            let l = leases.get_opt("portcullis-gate.keptn.sh").await.ok()??;
            (l.spec?.holder_identity.as_deref() == Some("gate-0")).then_some(())
        }
    })
    .await;
    let second = env.start_gate(&lease);
    task_definition(&c, ns, "migrate").await;
    let rs = gated_deployment(&c, ns, "db", "db", "5", 3, json!({})).await;
    // All the pods exist before anything could release them, so the check below sees each.
    wait_for("the three pods", WAIT, || {
        let c = c.clone();
        async move { (pods(&c, ns, "db").await.len() == 3).then_some(()) }
    })
    .await;
    workload_objects(&c, ns, "db", "db", "5", &rs, &["migrate"]).await;
    creation_request(&c, ns, "db", true).await;
    let task = wait_for("the pre-deployment KeptnTask", WAIT, || {
        let c = c.clone();
        async move {
            tasks(&c, ns)
                .await
                .into_iter()
                .find(|t| t.spec.check_type == "pre")
        }
    })
    .await;
    assert!(
        !env.gate_log(second).contains("acquired leadership"),
        "standby stays standby"
    );
    env.kill_gate(first).await;
    // The task finishes while no gate process leads.
    finish_task(&c, ns, &task.name_any(), "Succeeded").await;
    let p = pods(&c, ns, "db").await;
    assert_eq!(p.len(), 3);
    assert!(p.iter().all(gated), "nothing released while nobody leads");
    wait_for("gate-1 leads", WAIT, || {
        let leases = leases.clone();
        async move {
            let l = leases.get_opt("portcullis-gate.keptn.sh").await.ok()??;
            (l.spec?.holder_identity.as_deref() == Some("gate-1")).then_some(())
        }
    })
    .await;
    wait_for("pods released and ready", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "db").await;
            (p.len() == 3 && p.iter().all(|p| released(p) && ready(p))).then_some(())
        }
    })
    .await;
    wait_for("KWV Completed", WAIT, || {
        let c = c.clone();
        async move {
            (kwv_state(&c, ns, "db-db-5").await? == ("Completed".to_owned(), KeptnState::Succeeded))
                .then_some(())
        }
    })
    .await;
    let all = tasks(&c, ns).await;
    assert_eq!(
        all.len(),
        1,
        "the task was created once: {:?}",
        all.iter().map(|t| t.name_any()).collect::<Vec<_>>()
    );
    assert_eq!(all[0].name_any(), task.name_any());

    // A fresh process on a finished rollout changes nothing.
    env.kill_gate(second).await;
    let before: KeptnWorkloadVersion = get(&c, ns, "db-db-5").await.expect("kwv");
    let third = env.start_gate(&lease);
    wait_for("gate-2 leads", WAIT, || {
        let leases = leases.clone();
        async move {
            let l = leases.get_opt("portcullis-gate.keptn.sh").await.ok()??;
            (l.spec?.holder_identity.as_deref() == Some("gate-2")).then_some(())
        }
    })
    .await;
    wait_for("gate-2 caches synced", WAIT, || {
        let log = env.gate_log(third);
        async move { log.contains("caches synced").then_some(()) }
    })
    .await;
    // It has reconciled the finished versions once more (each reconcile is counted when it
    // starts, on synced caches) ...
    let port = env.admin_ports[third];
    for controller in ["keptnworkloadversion", "keptnappversion"] {
        let series = format!("portcullis_gate_reconciles_total{{controller=\"{controller}\"}}");
        wait_for(&format!("gate-2 reconciles a {controller}"), WAIT, || {
            let series = series.clone();
            async move { (metric(port, &series).await? >= 1.0).then_some(()) }
        })
        .await;
    }
    // ... and a write of that reconcile would follow at once: an observation window for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: KeptnWorkloadVersion = get(&c, ns, "db-db-5").await.expect("kwv");
    assert_eq!(
        before.metadata.resource_version, after.metadata.resource_version,
        "no rewrite of a finished KWV"
    );
    assert_eq!(tasks(&c, ns).await.len(), 1);
}

/// reported (gauge by age, one Warning Event per pod) and never released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_reports_stale_gated_pods_without_releasing() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "stale";
    env.namespace(ns).await;
    env.config(ns, json!({"observabilityTimeout": "2s"})).await;
    let gate = env.start_gate(&[]);
    let port = env.admin_ports[gate];
    // Pods of a workload nobody created a KeptnWorkload for.
    gated_deployment(&c, ns, "orphan", "orphan", "1", 2, json!({})).await;
    wait_for("the gauge counts both gated pods", WAIT, || async move {
        (metric(port, "portcullis_gated_pods").await? == 2.0).then_some(())
    })
    .await;
    let stale = wait_for("a stale report on each pod", WAIT, || {
        let c = c.clone();
        async move {
            let evs: Vec<Event> = events(&c, ns)
                .await
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("SchedulingGateStale"))
                .collect();
            let p = pods(&c, ns, "orphan").await;
            (p.len() == 2
                && p.iter().all(|pod| {
                    evs.iter().any(|e| {
                        e.regarding.as_ref().and_then(|r| r.name.clone()) == Some(pod.name_any())
                    })
                }))
            .then_some(evs)
        }
    })
    .await;
    assert_eq!(stale[0].type_.as_deref(), Some("Warning"));
    let note = stale[0].note.clone().unwrap_or_default();
    assert!(
        note.contains("KeptnWorkloadVersion orphan-orphan-1 does not exist"),
        "{note}"
    );
    assert!(
        pods(&c, ns, "orphan").await.iter().all(gated),
        "the sweeper never releases"
    );
    assert_eq!(
        metric(port, "portcullis_gate_stale_reports").await,
        Some(2.0)
    );
}

/// B §3.10 blocking rule: with `blockDeployment: false` a failed pre-deployment task makes the
/// phase `Warning`, the pods are released and the workload version still ends `Succeeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_blocking_failed_task_becomes_warning_and_releases() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "lenient";
    env.namespace(ns).await;
    env.config(ns, json!({"blockDeployment": false})).await;
    env.start_gate(&[]);
    task_definition(&c, ns, "smoke").await;
    let rs = gated_deployment(&c, ns, "web", "web", "2", 1, json!({})).await;
    // The pod exists before anything could release it, so the check below sees it.
    wait_for("the pod", WAIT, || {
        let c = c.clone();
        async move { (pods(&c, ns, "web").await.len() == 1).then_some(()) }
    })
    .await;
    workload_objects(&c, ns, "web", "web", "2", &rs, &["smoke"]).await;
    creation_request(&c, ns, "web", true).await;
    let task = wait_for("the pre-deployment KeptnTask", WAIT, || {
        let c = c.clone();
        async move { tasks(&c, ns).await.into_iter().next() }
    })
    .await;
    let p = pods(&c, ns, "web").await;
    assert_eq!(p.len(), 1);
    assert!(p.iter().all(gated), "gated while the task runs");
    finish_task(&c, ns, &task.name_any(), "Failed").await;
    wait_for("pod released", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "web").await;
            (p.len() == 1 && p.iter().all(released)).then_some(())
        }
    })
    .await;
    let kwv: KeptnWorkloadVersion = wait_for("KWV Completed", WAIT, || {
        let c = c.clone();
        async move {
            let k: KeptnWorkloadVersion = get(&c, ns, "web-web-2").await?;
            (k.status.as_ref()?.current_phase == "Completed").then_some(k)
        }
    })
    .await;
    let s = kwv.status.expect("status");
    assert_eq!(s.pre_deployment_status, KeptnState::Warning);
    assert_eq!(s.status, KeptnState::Succeeded);
}

/// Kills the running gate (SIGKILL) after `after` and starts a fresh one; returns its index.
async fn bounce(env: &mut Env, current: usize, after: Duration) -> usize {
    tokio::time::sleep(after).await;
    env.kill_gate(current).await;
    env.start_gate(&[])
}

/// Restart safety: the gate is SIGKILLed and restarted at many points of a rollout with a pre-
/// and a post-deployment task (right after objects appear, while tasks run, right after a task
/// finishes). No pod is released before its pre-deployment task succeeded, no task is created
/// twice, and the rollout ends Completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_restarted_at_many_moments_of_a_rollout() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "chaos";
    env.namespace(ns).await;
    task_definition(&c, ns, "migrate").await;
    task_definition(&c, ns, "notify").await;
    let mut gate = env.start_gate(&[]);
    let rs = gated_deployment(&c, ns, "svc", "svc", "9", 3, json!({})).await;
    // All the pods exist before anything could release them, so the check below sees each.
    wait_for("the three pods", WAIT, || {
        let c = c.clone();
        async move { (pods(&c, ns, "svc").await.len() == 3).then_some(()) }
    })
    .await;
    let wl: KeptnWorkload = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkload",
        "metadata": {"name": "svc-svc",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs.0, "uid": rs.1}]},
        "spec": {"app": "svc", "version": "9",
            "preDeploymentTasks": ["migrate"], "postDeploymentTasks": ["notify"],
            "resourceReference": {"uid": rs.1, "kind": "ReplicaSet", "name": rs.0}}
    }))
    .expect("workload");
    Api::<KeptnWorkload>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &wl)
        .await
        .expect("workload");
    creation_request(&c, ns, "svc", true).await;
    // Kill while the app, its versions and the first task are being created.
    for delay in [30, 60, 120] {
        gate = bounce(&mut env, gate, Duration::from_millis(delay)).await;
    }
    let pre = wait_for("the pre-deployment task", WAIT, || {
        let c = c.clone();
        async move {
            tasks(&c, ns)
                .await
                .into_iter()
                .find(|t| t.spec.check_type == "pre")
        }
    })
    .await;
    for delay in [10, 80] {
        gate = bounce(&mut env, gate, Duration::from_millis(delay)).await;
    }
    let p = pods(&c, ns, "svc").await;
    assert_eq!(p.len(), 3);
    assert!(
        p.iter().all(gated),
        "no pod released before its pre-deployment task succeeded"
    );
    finish_task(&c, ns, &pre.name_any(), "Succeeded").await;
    // Kill right after the task finished, and again while pods are being released.
    for delay in [0, 20, 50] {
        gate = bounce(&mut env, gate, Duration::from_millis(delay)).await;
    }
    let post = wait_for("the post-deployment task", WAIT, || {
        let c = c.clone();
        async move {
            tasks(&c, ns)
                .await
                .into_iter()
                .find(|t| t.spec.check_type == "post")
        }
    })
    .await;
    assert!(
        pods(&c, ns, "svc")
            .await
            .iter()
            .all(|p| released(p) && ready(p)),
        "every pod released and running before post-deployment"
    );
    gate = bounce(&mut env, gate, Duration::from_millis(10)).await;
    finish_task(&c, ns, &post.name_any(), "Succeeded").await;
    bounce(&mut env, gate, Duration::from_millis(30)).await;
    wait_for("KWV and KAV Completed", WAIT, || {
        let c = c.clone();
        async move {
            let w = kwv_state(&c, ns, "svc-svc-9").await?;
            let a = kav_state(&c, ns, "svc-9-6b86b273").await?;
            (w == ("Completed".to_owned(), KeptnState::Succeeded)
                && a == ("Completed".to_owned(), KeptnState::Succeeded))
                .then_some(())
        }
    })
    .await;
    let all: Vec<String> = tasks(&c, ns).await.iter().map(|t| t.name_any()).collect();
    assert_eq!(all.len(), 2, "each task created once: {all:?}");
    let kavs = Api::<KeptnAppVersion>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("kavs");
    assert_eq!(kavs.items.len(), 1, "one app version");
    let kwv: KeptnWorkloadVersion = get(&c, ns, "svc-svc-9").await.expect("kwv");
    let items = kwv.status.expect("status").pre_deployment_task_status;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].name,
        pre.name_any(),
        "the status names the one task"
    );
}
