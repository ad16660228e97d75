//! Keptn conformance (issue 19) on a real control plane with both real binaries: what Portcullis
//! writes into the objects it creates matches what Keptn writes for the same manifests.
//! - Durations Keptn copies as a Go `metav1.Duration` (KeptnTask `spec.timeout`, KeptnEvaluation
//!   `spec.retryInterval`) are written as Go prints them (`90s` -> `1m30s`, the default `5m` ->
//!   `5m0s`).
//! - A KeptnWorkloadVersion and a KeptnAppVersion are created once with their final spec:
//!   `metadata.generation` stays 1, for a Deployment admitted by the workload hook and after its
//!   upgrade to a new version.
//! - The metadata a task carries is final when the task is created: a KeptnAppContext written
//!   after the Deployment was admitted (but before its pods) reaches app and workload tasks.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use shared::crd::{KeptnAppVersion, KeptnEvaluation, KeptnState, KeptnTask, KeptnWorkloadVersion};

use e2e::{Binaries, Cluster, INSTALL_NS, Processes, WAIT, start_webhook_and_gate, wait_for};

const NS: &str = "conform";

async fn install(cluster: &Cluster) -> (Client, Processes) {
    let c = cluster.client();
    let namespaces: Api<Namespace> = Api::all(c.clone());
    for (name, enabled) in [(INSTALL_NS, false), (NS, true)] {
        let meta = if enabled {
            json!({"name": name, "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"}})
        } else {
            json!({"name": name})
        };
        let ns: Namespace = serde_json::from_value(json!({"metadata": meta})).expect("ns");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
    }
    let procs = start_webhook_and_gate(
        cluster,
        &c,
        Binaries {
            webhook_kubeconfig: &cluster.kubeconfig(),
            gate_kubeconfig: &cluster.kubeconfig(),
            gate_args: &["--keptn-namespace", INSTALL_NS],
            log_filter: "info,kube=warn",
        },
    )
    .await;
    (c, procs)
}

/// Creates a namespaced object of `plural` from its JSON.
async fn create(c: &Client, group: &str, version: &str, plural: &str, body: Value) {
    let kind = body["kind"].as_str().expect("kind").to_owned();
    let ar = kube::core::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind,
        plural: plural.into(),
    };
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(c.clone(), NS, &ar);
    let obj = serde_json::from_value(body).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("created");
}

fn deployment(version: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podtato", "annotations": {
            "keptn.sh/workload": "podtato", "keptn.sh/version": version,
            "keptn.sh/pre-deployment-tasks": "check,check-default",
            "keptn.sh/post-deployment-evaluations": "healthy"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "podtato"}},
            "template": {
                "metadata": {"labels": {"app": "podtato"}},
                "spec": {"containers": [{"name": "server", "image": format!("ghcr.io/podtato-head/podtato-server:{version}")}]}
            }
        }
    }))
    .expect("deployment")
}

async fn completed(
    c: &Client,
    kwv: &str,
    kav_prefix: &str,
) -> (KeptnWorkloadVersion, KeptnAppVersion) {
    wait_for(
        &format!("{kwv} and its app version Completed"),
        WAIT,
        || {
            let c = c.clone();
            async move {
                let kwv = Api::<KeptnWorkloadVersion>::namespaced(c.clone(), NS)
                    .get_opt(kwv)
                    .await
                    .ok()??;
                let kav = Api::<KeptnAppVersion>::namespaced(c, NS)
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|k| k.name_any().starts_with(kav_prefix))?;
                let done = |s: Option<(&str, &KeptnState)>| {
                    s == Some(("Completed", &KeptnState::Succeeded))
                };
                let w = kwv
                    .status
                    .as_ref()
                    .map(|s| (s.current_phase.as_str(), &s.status));
                let a = kav
                    .status
                    .as_ref()
                    .map(|s| (s.current_phase.as_str(), &s.status));
                (done(w) && done(a)).then_some((kwv, kav))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_durations_are_go_formatted_and_versions_keep_generation_one() {
    let cluster = Cluster::with_crds().await;
    let (c, _procs) = install(&cluster).await;
    create(
        &c,
        "lifecycle.keptn.sh",
        "v1",
        "keptntaskdefinitions",
        json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
            "metadata": {"name": "check", "annotations": {e2e::RUN_FOR: "200ms"}},
            "spec": {"timeout": "90s", "container": {"name": "check", "image": "busybox:1.36"}}}),
    )
    .await;
    // No timeout: the CRD's default, 5m.
    create(
        &c,
        "lifecycle.keptn.sh",
        "v1",
        "keptntaskdefinitions",
        json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
            "metadata": {"name": "check-default", "annotations": {e2e::RUN_FOR: "200ms"}},
            "spec": {"container": {"name": "check", "image": "busybox:1.36"}}}),
    )
    .await;
    create(
        &c,
        "lifecycle.keptn.sh",
        "v1",
        "keptnevaluationdefinitions",
        json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluationDefinition",
            "metadata": {"name": "healthy"},
            "spec": {"retries": 2, "retryInterval": "1m",
                "objectives": [{"keptnMetricRef": {"name": "errors"}, "evaluationTarget": "<1"}]}}),
    )
    .await;
    create(
        &c,
        "metrics.keptn.sh",
        "v1",
        "keptnmetrics",
        json!({"apiVersion": "metrics.keptn.sh/v1", "kind": "KeptnMetric",
            "metadata": {"name": "errors"},
            "spec": {"provider": {"name": "prometheus"}, "query": "q", "fetchIntervalSeconds": 10}}),
    )
    .await;
    Api::<shared::crd::KeptnMetric>::namespaced(c.clone(), NS)
        .patch_status(
            "errors",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"value": "0", "rawValue": "MA=="}})),
        )
        .await
        .expect("metric value");

    let deployments: Api<Deployment> = Api::namespaced(c.clone(), NS);
    deployments
        .create(&PostParams::default(), &deployment("0.1.0"))
        .await
        .expect("deployment");
    let (kwv, kav) = completed(&c, "podtato-podtato-0.1.0", "podtato-0.1.0-").await;
    assert_eq!(
        kwv.metadata.generation,
        Some(1),
        "KWV spec rewritten: {:?}",
        kwv.spec
    );
    assert_eq!(kwv.spec.workload.resource_reference.kind, "ReplicaSet");
    assert_eq!(
        kav.metadata.generation,
        Some(1),
        "KAV spec rewritten: {:?}",
        kav.spec
    );

    let tasks = Api::<KeptnTask>::namespaced(c.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("tasks")
        .items;
    let timeout_of = |definition: &str| {
        tasks
            .iter()
            .find(|t| t.spec.task_definition == definition)
            .map(|t| t.spec.timeout.as_str().to_owned())
    };
    assert_eq!(timeout_of("check").as_deref(), Some("1m30s"));
    assert_eq!(timeout_of("check-default").as_deref(), Some("5m0s"));
    let evaluations = Api::<KeptnEvaluation>::namespaced(c.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("evaluations")
        .items;
    assert_eq!(evaluations.len(), 1, "{evaluations:?}");
    assert_eq!(evaluations[0].spec.retry_interval.as_str(), "1m0s");
    // What the user wrote stays as written.
    let definition = Api::<shared::crd::KeptnTaskDefinition>::namespaced(c.clone(), NS)
        .get("check")
        .await
        .expect("definition");
    assert_eq!(definition.spec.timeout.as_str(), "90s");

    // The upgrade: a new version through the workload hook, then its new ReplicaSet's pods.
    deployments
        .replace("podtato", &PostParams::default(), &{
            let mut d = deployments.get("podtato").await.expect("deployment");
            let next = deployment("0.2.0");
            d.metadata.annotations = next.metadata.annotations;
            d.spec = next.spec;
            d
        })
        .await
        .expect("upgrade");
    let (kwv, kav) = completed(&c, "podtato-podtato-0.2.0", "podtato-0.2.0-").await;
    assert_eq!(
        kwv.metadata.generation,
        Some(1),
        "KWV spec rewritten: {:?}",
        kwv.spec
    );
    assert_eq!(kwv.spec.previous_version, "0.1.0");
    let new_rs = kwv.spec.workload.resource_reference.clone();
    assert_eq!(new_rs.kind, "ReplicaSet");
    let owners: Vec<String> = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(c.clone(), NS)
        .list(&ListParams::default().labels("app=podtato"))
        .await
        .expect("pods")
        .items
        .iter()
        .filter(|p| p.annotations().get("keptn.sh/version").map(String::as_str) == Some("0.2.0"))
        .filter_map(|p| Some(p.owner_references().first()?.uid.clone()))
        .collect();
    assert!(
        !owners.is_empty() && owners.iter().all(|o| *o == new_rs.uid),
        "the KWV names the new ReplicaSet {new_rs:?}, its pods' owners are {owners:?}"
    );
    assert_eq!(
        kav.metadata.generation,
        Some(1),
        "KAV spec rewritten: {:?}",
        kav.spec
    );
}

/// Item 2: the KeptnAppContext of an app whose Deployment was admitted before it still reaches
/// every task. The app version waits for the workload's pods (as Keptn's, which is created after
/// the first pod); the context, created while the Deployment has no replicas, is in it, and a
/// workload task's `context.metadata` is the context's metadata overlaid by the workload's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_context_created_after_the_deployment_reaches_every_task() {
    let cluster = Cluster::with_crds().await;
    let (c, _procs) = install(&cluster).await;
    for name in ["app-check", "check"] {
        create(
            &c,
            "lifecycle.keptn.sh",
            "v1",
            "keptntaskdefinitions",
            json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
                "metadata": {"name": name, "annotations": {e2e::RUN_FOR: "200ms"}},
                "spec": {"container": {"name": "check", "image": "busybox:1.36"}}}),
        )
        .await;
    }
    let mut d = deployment("0.1.0");
    let annotations = d.metadata.annotations.get_or_insert_default();
    annotations.insert("keptn.sh/pre-deployment-tasks".into(), "check".into());
    annotations.remove("keptn.sh/post-deployment-evaluations");
    annotations.insert("keptn.sh/metadata".into(), "team=workload,tier=web".into());
    if let Some(spec) = d.spec.as_mut() {
        spec.replicas = Some(0);
    }
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), NS);
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("deployment");
    // The gate has taken up the app (its KeptnApp exists) before the context is written.
    wait_for("the KeptnApp podtato", WAIT, || {
        let c = c.clone();
        async move {
            Api::<shared::crd::KeptnApp>::namespaced(c, NS)
                .get_opt("podtato")
                .await
                .ok()?
        }
    })
    .await;
    create(
        &c,
        "lifecycle.keptn.sh",
        "v1",
        "keptnappcontexts",
        json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppContext",
            "metadata": {"name": "podtato"},
            "spec": {"preDeploymentTasks": ["app-check"],
                "metadata": {"team": "app", "owner": "shop"}}}),
    )
    .await;
    deployments
        .patch(
            "podtato",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scaled");
    let (kwv, kav) = completed(&c, "podtato-podtato-0.1.0", "podtato-0.1.0-").await;
    assert_eq!(kwv.metadata.generation, Some(1));
    assert_eq!(kav.metadata.generation, Some(1));
    assert_eq!(kav.spec.context.pre_deployment_tasks, ["app-check"]);
    let tasks = Api::<KeptnTask>::namespaced(c.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("tasks")
        .items;
    let metadata_of = |definition: &str| {
        tasks
            .iter()
            .find(|t| t.spec.task_definition == definition)
            .map(|t| t.spec.context.metadata.clone())
            .unwrap_or_else(|| panic!("no task of {definition}: {tasks:?}"))
    };
    let app_task_timeout = tasks
        .iter()
        .find(|t| t.spec.task_definition == "app-check")
        .map(|t| t.spec.timeout.as_str().to_owned());
    assert_eq!(
        app_task_timeout.as_deref(),
        Some("5m0s"),
        "an app task's copied default"
    );
    let app_task = metadata_of("app-check");
    assert_eq!(app_task.get("owner").map(String::as_str), Some("shop"));
    assert_eq!(app_task.get("team").map(String::as_str), Some("app"));
    let workload_task = metadata_of("check");
    assert_eq!(
        workload_task.get("owner").map(String::as_str),
        Some("shop"),
        "{workload_task:?}"
    );
    assert_eq!(
        workload_task.get("team").map(String::as_str),
        Some("workload"),
        "the workload's key wins"
    );
    assert_eq!(workload_task.get("tier").map(String::as_str), Some("web"));
}
