//! Taking over a running Keptn (A24, README "Moving from Keptn"), end to end on a real control
//! plane.
//!
//! No Keptn can run here, so its part is played by what behaves as Keptn does: the CRDs as a
//! Keptn release left them (v1beta1 stored, no conversion), objects written at v1beta1, a
//! webhook configuration under Keptn's name gating pods with `keptn-prechecks-gate`, and an
//! operator that ran the first checks. Mid-rollout that operator and its webhook configuration
//! are removed and Portcullis is installed as the README says. Then: nothing stored is lost,
//! the version in progress finishes, the pods the old webhook gated are released, no task runs
//! twice, and every object ends up stored as v1.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use shared::crd::conversion::GROUP;
use shared::crd::{KeptnState, KeptnTask, KeptnWorkloadVersion};

use e2e::*;

/// The name Keptn 2.x's chart gives its pod webhook configuration (README "Moving from Keptn").
const KEPTN_WEBHOOK: &str = "lifecycle-mutating-webhook-configuration";
const NS: &str = "shop";

/// The lifecycle CRDs as a Keptn release that stored v1beta1 left them: every version served,
/// v1beta1 stored, no conversion.
fn keptn_crds() -> Vec<CustomResourceDefinition> {
    shared::crd::all()
        .into_iter()
        .map(|mut crd| {
            if crd.spec.group == GROUP && crd.spec.versions.iter().any(|v| v.name == "v1beta1") {
                for v in &mut crd.spec.versions {
                    v.storage = v.name == "v1beta1";
                }
                crd.spec.conversion = None;
            }
            crd
        })
        .collect()
}

async fn apply(cluster: &Cluster, manifest: Value) {
    if let Err(e) = cluster.kubectl_apply(&manifest).await {
        panic!("kubectl apply: {e}\n{manifest}");
    }
}

fn definition(name: &str, run_for: &str) -> Value {
    json!({
        "apiVersion": "lifecycle.keptn.sh/v1beta1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": name, "namespace": NS,
            "labels": {"kwok.portcullis.dev/outcome": "succeed"},
            "annotations": {"kwok.portcullis.dev/run-for": run_for}},
        "spec": {"container": {"name": "check", "image": "busybox:1.36", "command": ["true"]}}
    })
}

fn deployment(name: &str, check: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {
                    "keptn.sh/app": "shop", "keptn.sh/workload": name, "keptn.sh/version": "1",
                    "keptn.sh/pre-deployment-tasks": check}},
                "spec": {"containers": [{"name": name, "image": format!("example/{name}:1")}]}
            }
        }
    })
}

/// KeptnTasks by definition name: (task name, uid).
async fn tasks_by_definition(c: &Client) -> BTreeMap<String, Vec<(String, String)>> {
    let mut by = BTreeMap::<String, Vec<(String, String)>>::new();
    for t in tasks(c, NS).await {
        by.entry(t.spec.task_definition.clone())
            .or_default()
            .push((t.name_any(), t.uid().unwrap_or_default()));
    }
    by
}

async fn job_uids(c: &Client) -> Vec<String> {
    let mut uids: Vec<String> = Api::<Job>::namespaced(c.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("jobs")
        .items
        .iter()
        .filter_map(|j| j.uid())
        .collect();
    uids.sort();
    uids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portcullis_takes_over_a_running_keptn_mid_rollout() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::start().await;
    let c = cluster.client();
    cluster.install(keptn_crds()).await;
    for (name, enabled) in [(INSTALL_NS, false), (NS, true)] {
        let meta = if enabled {
            json!({"name": name, "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"}})
        } else {
            json!({"name": name})
        };
        Api::<Namespace>::all(c.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": meta})).expect("ns"),
            )
            .await
            .expect("namespace");
    }
    default_service_account(&c, NS).await;

    // --- Keptn at work: its webhook configuration gates pods, its operator runs the checks.
    let keptn = start_webhook_and_gate(
        &cluster,
        &c,
        Binaries {
            webhook_kubeconfig: &cluster.kubeconfig(),
            gate_kubeconfig: &cluster.kubeconfig(),
            gate_args: &[],
            log_filter: "info,kube=warn",
        },
    )
    .await;
    let hooks: Api<MutatingWebhookConfiguration> = Api::all(c.clone());
    let mut mwc = hooks.get("portcullis-webhook").await.expect("registered");
    hooks
        .delete("portcullis-webhook", &DeleteParams::default())
        .await
        .expect("renamed");
    mwc.metadata = serde_json::from_value(json!({"name": KEPTN_WEBHOOK})).expect("meta");
    hooks
        .create(&PostParams::default(), &mwc)
        .await
        .expect("Keptn's webhook configuration");

    for d in [
        definition("pre-check", "300ms"),
        definition("slow-check", "25s"),
        definition("post-check", "300ms"),
    ] {
        apply(&cluster, d).await;
    }
    apply(
        &cluster,
        json!({"apiVersion": "lifecycle.keptn.sh/v1beta1", "kind": "KeptnAppContext",
            "metadata": {"name": "shop", "namespace": NS},
            "spec": {"postDeploymentTasks": ["post-check"], "metadata": {"team": "checkout"}}}),
    )
    .await;
    apply(
        &cluster,
        json!({"apiVersion": "lifecycle.keptn.sh/v1beta1", "kind": "KeptnApp",
            "metadata": {"name": "shop", "namespace": NS},
            "spec": {"version": "1", "workloads": [{"name": "cart", "version": "1"}, {"name": "web", "version": "1"}]}}),
    )
    .await;
    apply(&cluster, deployment("cart", "pre-check")).await;
    apply(&cluster, deployment("web", "slow-check")).await;

    wait_for_kwv(
        &c,
        NS,
        "shop-cart-1",
        "Completed",
        KeptnState::Succeeded,
        "cart Completed",
    )
    .await;
    wait_for("web's slow check running, its pods gated", WAIT, || {
        let c = c.clone();
        async move {
            let running = tasks(&c, NS).await.into_iter().any(|t| {
                t.spec.task_definition == "slow-check"
                    && t.status.as_ref().is_some_and(|s| {
                        !s.job_name.is_empty() && s.status == KeptnState::Progressing
                    })
            });
            let p = pods(&c, NS, "web").await;
            (running && p.len() == 2 && p.iter().all(gated)).then_some(())
        }
    })
    .await;

    // --- The switch (README "Moving from Keptn"): Keptn's operator and webhook configuration
    // go, Portcullis's CRDs replace Keptn's, Portcullis starts.
    drop(keptn);
    hooks
        .delete(KEPTN_WEBHOOK, &DeleteParams::default())
        .await
        .expect("Keptn's webhook configuration removed");
    let before_tasks = tasks_by_definition(&c).await;
    let before_jobs = job_uids(&c).await;
    assert_eq!(before_tasks["pre-check"].len(), 1);
    assert_eq!(before_tasks["slow-check"].len(), 1);
    assert!(!before_tasks.contains_key("post-check"));
    assert!(
        pods(&c, NS, "web").await.iter().all(gated),
        "the old webhook's pods wait for the new operator"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    for crd in shared::crd::all() {
        let name = crd.name_any();
        let installed = crds.get(&name).await.expect("installed");
        let stored = installed
            .status
            .as_ref()
            .and_then(|s| s.stored_versions.clone())
            .unwrap_or_default();
        if crd.spec.group == GROUP && crd.spec.versions.len() > 1 {
            assert!(stored.contains(&"v1beta1".to_owned()), "{name}: {stored:?}");
        }
    }
    // Step 3 of the README, for the CRDs: Portcullis's replace Keptn's through kubectl apply.
    let dir = repo_root().join("deploy/crds");
    cluster
        .run_kubectl(&["apply", "-k", &dir.to_string_lossy()], "")
        .await
        .unwrap_or_else(|e| panic!("kubectl apply -k deploy/crds: {e}"));
    let portcullis = start_webhook_and_gate(
        &cluster,
        &c,
        Binaries {
            webhook_kubeconfig: &cluster.kubeconfig(),
            gate_kubeconfig: &cluster.kubeconfig(),
            gate_args: &[],
            log_filter: "info,kube=warn,gate=debug",
        },
    )
    .await;

    // --- The version in progress finishes under Portcullis.
    wait_for("web's pods released and ready", WAIT * 2, || {
        let c = c.clone();
        async move {
            let p = pods(&c, NS, "web").await;
            (p.len() == 2 && p.iter().all(|p| released(p) && ready(p))).then_some(())
        }
    })
    .await;
    wait_for_kwv(
        &c,
        NS,
        "shop-web-1",
        "Completed",
        KeptnState::Succeeded,
        "web Completed",
    )
    .await;
    let kav_name = wait_for("the app version Completed", WAIT * 2, || {
        let c = c.clone();
        async move {
            let kavs: Vec<shared::crd::KeptnAppVersion> =
                Api::<shared::crd::KeptnAppVersion>::namespaced(c.clone(), NS)
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items;
            let [kav] = kavs.as_slice() else { return None };
            let s = kav.status.as_ref()?;
            (s.current_phase == "Completed" && s.status == KeptnState::Succeeded)
                .then(|| kav.name_any())
        }
    })
    .await;

    // Nothing ran twice: the tasks the old operator created are the ones that finished, and the
    // post-deployment task ran once.
    let after_tasks = tasks_by_definition(&c).await;
    assert_eq!(after_tasks["pre-check"], before_tasks["pre-check"]);
    assert_eq!(after_tasks["slow-check"], before_tasks["slow-check"]);
    assert_eq!(after_tasks["post-check"].len(), 1, "{after_tasks:?}");
    let after_jobs = job_uids(&c).await;
    assert_eq!(
        after_jobs.len(),
        before_jobs.len() + 1,
        "only post-check's Job is new"
    );
    assert!(before_jobs.iter().all(|j| after_jobs.contains(j)));
    for t in tasks(&c, NS).await {
        let t: KeptnTask = t;
        assert_eq!(
            t.status.as_ref().map(|s| s.status.clone()),
            Some(KeptnState::Succeeded),
            "{}",
            t.name_any()
        );
    }
    // What Keptn stored is all there: the workload version it completed, the app context.
    let cart: KeptnWorkloadVersion = get(&c, NS, "shop-cart-1").await.expect("cart's version");
    let cart = cart.status.expect("status");
    assert_eq!(cart.pre_deployment_status, KeptnState::Succeeded);
    assert_eq!(
        cart.pre_deployment_task_status[0].name,
        before_tasks["pre-check"][0].0
    );
    let context: shared::crd::KeptnAppContext = get(&c, NS, "shop").await.expect("context");
    assert_eq!(context.spec.metadata["team"], "checkout");

    // Every object is stored as v1 in the end, and still reads at the older versions.
    wait_for("stored versions narrowed to v1", WAIT * 2, || {
        let crds = crds.clone();
        async move {
            for crd in shared::crd::all()
                .into_iter()
                .filter(|c| c.spec.group == GROUP)
            {
                let installed = crds.get(&crd.name_any()).await.ok()?;
                let stored = installed.status?.stored_versions.unwrap_or_default();
                if stored != ["v1"] {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let old = Api::<kube::core::DynamicObject>::namespaced_with(
        c.clone(),
        NS,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk(GROUP, "v1beta1", "KeptnAppVersion"),
            "keptnappversions",
        ),
    )
    .get(&kav_name)
    .await
    .expect("the app version read at v1beta1");
    assert_eq!(old.data["status"]["status"], "Succeeded");
    drop(portcullis);
}
