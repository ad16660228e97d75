//! End-to-end with both real binaries: `portcullis-webhook` (registered with the
//! MutatingWebhookConfiguration of `deploy/portcullis.yaml`, called by kube-apiserver through its Service)
//! and `portcullis-gate`, on a real control plane. The binaries must be built (`cargo build
//! --workspace --bins`; `make test` does it first).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnState, KeptnWorkload, KeptnWorkloadVersion};

use e2e::{Binaries, INSTALL_NS, WAIT, start_webhook_and_gate, wait_for};

/// The SPEC's first scenario with the real webhook: an annotated Deployment without checks is
/// gated by the webhook (A8), released by the gate (A12, A13) and completes; the names are
/// `waiter-waiter-0.4` and `waiter-0.4-6b86b273`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_deployment_through_webhook_and_gate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = e2e::Cluster::with_crds().await;
    let c: Client = cluster.client();
    let namespaces: Api<Namespace> = Api::all(c.clone());
    for (name, enabled) in [(INSTALL_NS, false), ("hooked", true)] {
        let meta = if enabled {
            json!({"name": name, "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"},
                "labels": {"keptn.sh/lifecycle-toolkit": "enabled"}})
        } else {
            json!({"name": name})
        };
        let ns: Namespace = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}),
        )
        .expect("ns");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
    }

    let procs = start_webhook_and_gate(
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

    let deploy: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "waiter"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "waiter"}},
            "template": {
                "metadata": {"labels": {"app": "waiter"},
                    "annotations": {"keptn.sh/workload": "waiter", "keptn.sh/version": "0.4"}},
                "spec": {"containers": [{"name": "waiter", "image": "example/waiter:0.4"}]}
            }
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(c.clone(), "hooked")
        .create(&PostParams::default(), &deploy)
        .await
        .expect("deployment created");

    let ns = "hooked";
    let wl: KeptnWorkload = wait_for("KeptnWorkload waiter-waiter", WAIT, || {
        let c = c.clone();
        async move {
            Api::<KeptnWorkload>::namespaced(c, ns)
                .get_opt("waiter-waiter")
                .await
                .ok()?
        }
    })
    .await;
    assert_eq!(wl.spec.app, "waiter");
    assert_eq!(wl.spec.version, "0.4");
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    wait_for("both pods released by the gate and ready", WAIT, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=waiter"))
                .await
                .ok()?;
            let done = list.items.len() == 2
                && list.items.iter().all(|p| {
                    let a = p.annotations();
                    let ungated = p
                        .spec
                        .as_ref()
                        .and_then(|s| s.scheduling_gates.as_ref())
                        .is_none_or(|g| g.iter().all(|g| g.name != "keptn-prechecks-gate"));
                    ungated
                        && a.get("keptn.sh/scheduling-gate-removed")
                            .map(String::as_str)
                            == Some("true")
                        && a.get("keptn.sh/workload").map(String::as_str) == Some("waiter")
                        && p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                });
            done.then_some(())
        }
    })
    .await;
    wait_for(
        "KWV waiter-waiter-0.4 and KAV waiter-0.4-6b86b273 Completed",
        WAIT,
        || {
            let c = c.clone();
            async move {
                let kwv = Api::<KeptnWorkloadVersion>::namespaced(c.clone(), ns)
                    .get_opt("waiter-waiter-0.4")
                    .await
                    .ok()??;
                let kav = Api::<KeptnAppVersion>::namespaced(c, ns)
                    .get_opt("waiter-0.4-6b86b273")
                    .await
                    .ok()??;
                let done = |phase: &str, state: &KeptnState| {
                    phase == "Completed" && *state == KeptnState::Succeeded
                };
                let w = kwv.status?;
                let a = kav.status?;
                (done(&w.current_phase, &w.status) && done(&a.current_phase, &a.status))
                    .then_some(())
            }
        },
    )
    .await;
    let app = Api::<KeptnApp>::namespaced(c.clone(), ns)
        .get("waiter")
        .await
        .expect("KeptnApp waiter");
    assert_eq!(app.spec.version, "0.4");
    drop(procs);
}

/// StatefulSets and DaemonSets through both binaries: the gate watches them only in the
/// namespaces that have workload versions (README "Scale"), and still sees each one's rollout
/// finish (B §3.9.1), in a namespace it had never looked into before the first version appeared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_and_daemonset_complete_through_scoped_watches() {
    use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = e2e::Cluster::with_crds().await;
    let c: Client = cluster.client();
    cluster.ensure_namespace(INSTALL_NS).await;
    let procs = start_webhook_and_gate(
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
    // Created after the gate started, so its watches of this namespace start on demand.
    let ns = "stateful";
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"}}
    }))
    .expect("ns");
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    e2e::default_service_account(&c, ns).await;

    let template = |name: &str| {
        json!({
            "metadata": {"labels": {"app": name},
                "annotations": {"keptn.sh/workload": name, "keptn.sh/version": "1"}},
            "spec": {"containers": [{"name": name, "image": format!("example/{name}:1")}]}
        })
    };
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}}, "template": template("db")}
    }))
    .expect("statefulset");
    Api::<StatefulSet>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &sts)
        .await
        .expect("statefulset created");
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")}
    }))
    .expect("daemonset");
    Api::<DaemonSet>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &ds)
        .await
        .expect("daemonset created");

    for (kwv, kind) in [("db-db-1", "StatefulSet"), ("agent-agent-1", "DaemonSet")] {
        wait_for(&format!("{kind} version {kwv} Completed"), WAIT, || {
            let c = c.clone();
            async move {
                let v = Api::<KeptnWorkloadVersion>::namespaced(c, ns)
                    .get_opt(kwv)
                    .await
                    .ok()??;
                let s = v.status?;
                (v.spec.workload.resource_reference.kind == kind
                    && s.deployment_status == KeptnState::Succeeded
                    && s.current_phase == "Completed"
                    && s.status == KeptnState::Succeeded)
                    .then_some(())
            }
        })
        .await;
    }
    drop(procs);
}
