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
