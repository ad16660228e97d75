//! Issue 18 on a real control plane: the gate watches only pods labelled `portcullis.dev/gated`,
//! so pods gated without that label (by Keptn before a takeover, or by an older Portcullis) are
//! adopted, that is labelled, and then released; pods of enabled workloads that escaped the
//! gate are still reported, in the namespaces enabled now, including one enabled later.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use e2e::*;

/// An annotated Deployment; `gate` puts the scheduling gate on its pods without the gated label,
/// as Keptn's webhook does.
async fn deployment(client: &Client, ns: &str, name: &str, replicas: i32, gate: bool) {
    let mut spec = json!({"containers": [{"name": name, "image": format!("example/{name}:1")}]});
    if gate {
        spec["schedulingGates"] = json!([{"name": GATE}]);
    }
    let deploy: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {
                    "keptn.sh/app": name, "keptn.sh/workload": name, "keptn.sh/version": "1"}},
                "spec": spec
            }
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .expect("deployment created");
}

/// The webhook's part for a gated Deployment: its KeptnWorkload and single-service app.
async fn workload(client: &Client, ns: &str, name: &str) {
    let rs = replica_set(client, ns, name).await;
    workload_objects(client, ns, name, name, "1", &rs, &[]).await;
    creation_request(client, ns, name, true).await;
}

/// Waits until the `n` pods of `app` are released, Ready and no longer labelled.
async fn all_released(client: &Client, ns: &str, app: &str, n: usize) {
    wait_for(&format!("{n} pods of {app} released"), WAIT, || {
        let c = client.clone();
        async move {
            let p = pods(&c, ns, app).await;
            (p.len() == n
                && p.iter()
                    .all(|p| released(p) && ready(p) && !p.labels().contains_key(GATED_LABEL)))
            .then_some(())
        }
    })
    .await;
}

/// Pods with a `SchedulingGateMissing` Warning.
async fn missing_gate_reports(client: &Client, ns: &str) -> BTreeSet<String> {
    events(client, ns)
        .await
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("SchedulingGateMissing")
                && e.type_.as_deref() == Some("Warning")
        })
        .filter_map(|e| e.regarding?.name)
        .collect()
}

/// Waits until every pod of `app` (`n` of them, never gated) carries the report.
async fn reported(client: &Client, ns: &str, app: &str, n: usize) {
    wait_for(&format!("{n} pods of {app} reported"), WAIT, || {
        let c = client.clone();
        async move {
            let names: BTreeSet<String> = pods(&c, ns, app)
                .await
                .iter()
                .map(|p| p.name_any())
                .collect();
            (names.len() == n && names.is_subset(&missing_gate_reports(&c, ns).await)).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_gated_without_the_label_are_adopted_and_escaped_pods_reported() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "adopt";
    let later = "enabled-later";
    env.namespace(ns).await;
    let plain: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": later}
    }))
    .expect("namespace");
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &plain)
        .await
        .expect("namespace created");
    default_service_account(&c, later).await;

    // Gated before the gate starts (a takeover): adopted by the first list.
    deployment(&c, ns, "before", 2, true).await;
    workload(&c, ns, "before").await;
    // In a namespace not (yet) enabled, a pod that did not go through the webhook is no concern.
    deployment(&c, later, "outside", 1, false).await;
    wait_for("the pod outside", WAIT, || {
        let c = c.clone();
        async move { (pods(&c, later, "outside").await.len() == 1).then_some(()) }
    })
    .await;

    let gate = env.start_gate(&[]);
    all_released(&c, ns, "before", 2).await;
    // Gated while the gate runs (another webhook still gating): adopted as it appears.
    deployment(&c, ns, "after", 1, true).await;
    workload(&c, ns, "after").await;
    all_released(&c, ns, "after", 1).await;
    // Escaped the gate in an enabled namespace: reported, once per pod.
    deployment(&c, ns, "escaped", 2, false).await;
    reported(&c, ns, "escaped", 2).await;
    let in_ns = missing_gate_reports(&c, ns).await;
    assert!(
        in_ns.iter().all(|p| p.starts_with("escaped-")),
        "only the escaped pods are reported: {in_ns:?}"
    );
    assert!(
        missing_gate_reports(&c, later).await.is_empty(),
        "nothing reported in a namespace that is not enabled"
    );

    // Enabling the namespace starts its watch.
    Api::<Namespace>::all(c.clone())
        .patch(
            later,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"keptn.sh/lifecycle-toolkit": "enabled"}}}),
            ),
        )
        .await
        .expect("namespace enabled");
    reported(&c, later, "outside", 1).await;
    let port = env.admin_ports[gate];
    wait_for(
        "portcullis_gate_ungated_pods_total 3",
        WAIT,
        || async move {
            (metric(port, "portcullis_gate_ungated_pods_total").await? == 3.0).then_some(())
        },
    )
    .await;
    assert!(
        env.gate_log(gate)
            .contains("pod gated without the gated label adopted"),
        "adoption is logged"
    );
}
