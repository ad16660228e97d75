//! End-to-end tests of the older `lifecycle.keptn.sh` versions (A24, issue 15): manifests at
//! every version Keptn's chart serves are applied with `kubectl apply`, stored as v1 through the
//! real webhook's `/convert`, and read back both as v1 and as the version they were written in;
//! Keptn's own documented v1alpha3 KeptnTask runs its Job.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde_json::{Value, json};
use shared::crd::conversion::{GROUP, HUB, spokes};
use shared::crd::{KeptnState, KeptnTask};

use e2e::*;

/// `kubectl get <plural>.<version>.lifecycle.keptn.sh NAME -o json`.
async fn get_at(cluster: &Cluster, plural: &str, version: &str, ns: &str, name: &str) -> Value {
    let resource = format!("{plural}.{version}.{GROUP}");
    let out = cluster
        .run_kubectl(&["get", &resource, name, "-n", ns, "-o", "json"], "")
        .await
        .unwrap_or_else(|e| panic!("kubectl get {resource} {name}: {e}"));
    serde_json::from_str(&out).expect("kubectl prints JSON")
}

/// Whether every value in `want` is in `have` (objects by key, arrays element-wise).
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| contains(hv, wv))
        }
        _ => have == want,
    }
}

/// A v1 spec of each kind that sets the fields users write.
fn v1_spec(kind: &str) -> Value {
    match kind {
        "KeptnApp" => {
            json!({"version": "1.0", "revision": 2, "workloads": [{"name": "cart", "version": "2"}]})
        }
        "KeptnAppContext" => json!({
            "preDeploymentTasks": ["check"], "postDeploymentEvaluations": ["slo"],
            "metadata": {"team": "shop"}
        }),
        "KeptnAppCreationRequest" => json!({"appName": "shop"}),
        "KeptnAppVersion" => json!({
            "appName": "shop", "version": "1.0", "revision": 1, "previousVersion": "0.9",
            "workloads": [{"name": "cart", "version": "2"}], "preDeploymentTasks": ["check"],
            "traceId": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        }),
        "KeptnWorkload" => json!({
            "app": "shop", "version": "2", "preDeploymentTasks": ["check"],
            "resourceReference": {"uid": "4f2c", "kind": "ReplicaSet", "name": "cart-6b8f"}
        }),
        "KeptnWorkloadVersion" => json!({
            "app": "shop", "version": "2", "workloadName": "shop-cart", "previousVersion": "1",
            "preDeploymentTasks": ["check"],
            "resourceReference": {"uid": "4f2c", "kind": "ReplicaSet", "name": "cart-6b8f"}
        }),
        "KeptnTaskDefinition" => json!({
            "deno": {"inline": {"code": "console.log('ok')"}, "parameters": {"map": {"a": "b"}}},
            "retries": 3, "timeout": "1m"
        }),
        "KeptnTask" => json!({
            "taskDefinition": "check", "checkType": "pre", "retries": 2, "timeout": "30s",
            "context": {"appName": "shop", "appVersion": "1.0", "workloadName": "shop-cart",
                "workloadVersion": "2", "taskType": "pre", "objectType": "Workload"},
            "parameters": {"map": {"a": "b"}}
        }),
        "KeptnEvaluationDefinition" => json!({
            "objectives": [{"keptnMetricRef": {"name": "cpu"}, "evaluationTarget": ">1"}]
        }),
        "KeptnEvaluation" => json!({
            "workload": "shop-cart", "workloadVersion": "2", "appName": "shop", "appVersion": "1.0",
            "evaluationDefinition": "slo", "checkType": "pre", "retries": 3, "retryInterval": "2s"
        }),
        other => panic!("no example spec of {other}"),
    }
}

fn api_resource(kind: &str, version: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, version, kind), plural)
}

/// A24: for every kind and older version, a manifest at that version (the v1 example, converted
/// as the webhook would) applies with `kubectl apply`, reads back as v1 with what the example
/// set, and reads back at its own version with what was applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_at_every_older_version_applies_and_reads_back_as_v1_and_as_itself() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::with_crds().await;
    let c: Client = cluster.client();
    let ns = "older-versions";
    cluster.ensure_namespace(ns).await;
    let _procs = start_webhook_and_gate(
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
    let plurals: std::collections::BTreeMap<String, String> = shared::crd::all()
        .into_iter()
        .map(|crd| (crd.spec.names.kind, crd.spec.names.plural))
        .collect();
    let mut checked = 0;
    for spoke in spokes() {
        let plural = &plurals[spoke.kind];
        let name = format!("{}-{}", plural.trim_end_matches('s'), spoke.version);
        let v1 = json!({
            "apiVersion": format!("{GROUP}/{HUB}"), "kind": spoke.kind,
            "metadata": {"name": name, "namespace": ns}, "spec": v1_spec(spoke.kind)
        });
        let mut manifest =
            shared::crd::conversion::convert(v1.clone(), &format!("{GROUP}/{}", spoke.version))
                .unwrap_or_else(|e| panic!("{} {}: {e}", spoke.kind, spoke.version));
        // What a user writes at that version: no carry annotation.
        if let Some(m) = manifest["metadata"].as_object_mut() {
            m.remove("annotations");
        }
        cluster.kubectl_apply(&manifest).await.unwrap_or_else(|e| {
            panic!(
                "kubectl apply {} {}: {e}\n{manifest}",
                spoke.kind, spoke.version
            )
        });

        let stored = Api::<DynamicObject>::namespaced_with(
            c.clone(),
            ns,
            &api_resource(spoke.kind, HUB, plural),
        )
        .get(&name)
        .await
        .unwrap_or_else(|e| panic!("{} {name} as v1: {e}", spoke.kind));
        let stored = serde_json::to_value(&stored).expect("json");
        // Fields the older version cannot hold are absent, not wrong; what it holds is all there.
        let expected_v1 =
            shared::crd::conversion::convert(manifest.clone(), &format!("{GROUP}/{HUB}"))
                .expect("converts to v1");
        assert!(
            contains(&stored["spec"], &expected_v1["spec"]),
            "{} {}: read as v1\n have {}\n want {}",
            spoke.kind,
            spoke.version,
            stored["spec"],
            expected_v1["spec"]
        );
        let again = get_at(&cluster, plural, spoke.version, ns, &name).await;
        assert_eq!(again["apiVersion"], manifest["apiVersion"]);
        assert!(
            contains(&again["spec"], &manifest["spec"]),
            "{} {}: read back at its version\n have {}\n want {}",
            spoke.kind,
            spoke.version,
            again["spec"],
            manifest["spec"]
        );
        checked += 1;
    }
    assert_eq!(checked, spokes().len());
    assert!(
        checked >= 30,
        "every older version of every kind: {checked}"
    );
}

/// A24: hand-written manifests whose fields moved between versions read back as v1 with the
/// fields where v1 keeps them (not derived from the conversion under test), and writes that
/// have no faithful v1 form are refused by the API server with the field named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_fields_land_where_v1_keeps_them_and_unfaithful_writes_are_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::with_crds().await;
    let c: Client = cluster.client();
    let ns = "renamed";
    cluster.ensure_namespace(ns).await;
    let _procs = start_webhook_and_gate(
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
    let v1 = |kind: &str, plural: &str, name: &str| {
        let api =
            Api::<DynamicObject>::namespaced_with(c.clone(), ns, &api_resource(kind, HUB, plural));
        let name = name.to_owned();
        async move { serde_json::to_value(api.get(&name).await.expect("read as v1")).expect("json") }
    };

    // A v1alpha1 task named its app and workload at the top; v1 keeps them in the context.
    cluster
        .kubectl_apply(&json!({
            "apiVersion": "lifecycle.keptn.sh/v1alpha1", "kind": "KeptnTask",
            "metadata": {"name": "old-task", "namespace": ns},
            "spec": {"taskDefinition": "check", "app": "shop", "appVersion": "2.0",
                "workload": "shop-cart", "workloadVersion": "7",
                "context": {"appName": "", "appVersion": "", "workloadName": "",
                    "workloadVersion": "", "taskType": "pre", "objectType": "Workload"}}
        }))
        .await
        .expect("v1alpha1 task applied");
    let task = v1("KeptnTask", "keptntasks", "old-task").await;
    assert_eq!(
        task["spec"]["context"],
        json!({"appName": "shop", "appVersion": "2.0", "workloadName": "shop-cart",
            "workloadVersion": "7", "taskType": "pre", "objectType": "Workload"})
    );
    assert!(task["spec"].get("app").is_none() && task["spec"].get("workload").is_none());

    // A v1alpha1 definition's `function` is v1's `deno`.
    cluster
        .kubectl_apply(&json!({
            "apiVersion": "lifecycle.keptn.sh/v1alpha1", "kind": "KeptnTaskDefinition",
            "metadata": {"name": "old-function", "namespace": ns},
            "spec": {"function": {"inline": {"code": "console.log('hi')"}}}
        }))
        .await
        .expect("v1alpha1 definition applied");
    let definition = v1(
        "KeptnTaskDefinition",
        "keptntaskdefinitions",
        "old-function",
    )
    .await;
    assert_eq!(
        definition["spec"]["deno"],
        json!({"inline": {"code": "console.log('hi')"}})
    );
    assert!(definition["spec"].get("function").is_none());

    // From v1alpha3 an objective refers to a KeptnMetric, with its namespace, as at v1.
    cluster
        .kubectl_apply(&json!({
            "apiVersion": "lifecycle.keptn.sh/v1alpha3", "kind": "KeptnEvaluationDefinition",
            "metadata": {"name": "slo", "namespace": ns},
            "spec": {"objectives": [{"keptnMetricRef": {"name": "cpu", "namespace": "metrics"},
                "evaluationTarget": "<0.8"}]}
        }))
        .await
        .expect("v1alpha3 evaluation definition applied");
    let slo = v1(
        "KeptnEvaluationDefinition",
        "keptnevaluationdefinitions",
        "slo",
    )
    .await;
    assert_eq!(
        slo["spec"]["objectives"],
        json!([{"keptnMetricRef": {"name": "cpu", "namespace": "metrics"}, "evaluationTarget": "<0.8"}])
    );

    // Writes with no faithful v1 form: refused, the field named.
    let refused = cluster
        .kubectl_apply(&json!({
            "apiVersion": "lifecycle.keptn.sh/v1beta1", "kind": "KeptnTaskDefinition",
            "metadata": {"name": "two-runtimes", "namespace": ns},
            "spec": {"function": {"inline": {"code": "x"}}, "container": {"name": "c", "image": "busybox"}}
        }))
        .await
        .expect_err("function next to a container is refused");
    assert!(refused.contains("spec.function"), "{refused}");
    let refused = cluster
        .kubectl_apply(&json!({
            "apiVersion": "lifecycle.keptn.sh/v1alpha2", "kind": "KeptnEvaluationDefinition",
            "metadata": {"name": "raw", "namespace": ns},
            "spec": {"source": "prometheus", "objectives": [
                {"name": "errors", "query": "rate(errors[5m])", "evaluationTarget": "<1"}]}
        }))
        .await
        .expect_err("a raw query is refused");
    assert!(refused.contains("spec.objectives[].query"), "{refused}");
    assert!(refused.contains("KeptnMetric"), "{refused}");
}

/// A24, B §5: the KeptnTask example of Keptn's own documentation, written at v1alpha3, is
/// accepted, stored as v1 with its context, and its Job runs to `Succeeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptns_documented_v1alpha3_keptn_task_runs() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::with_crds().await;
    let c: Client = cluster.client();
    let ns = "seed-task";
    Api::<Namespace>::all(c.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
        )
        .await
        .expect("namespace");
    default_service_account(&c, ns).await;
    let _procs = start_webhook_and_gate(
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
    // A container task at the definition's v1alpha3 too; kwok runs its pod to success.
    let definition = json!({
        "apiVersion": "lifecycle.keptn.sh/v1alpha3", "kind": "KeptnTaskDefinition",
        "metadata": {"name": "hello-keptn", "namespace": ns,
            "labels": {"kwok.portcullis.dev/outcome": "succeed"},
            "annotations": {"kwok.portcullis.dev/run-for": "300ms"}},
        "spec": {"container": {"name": "hello", "image": "busybox:1.36", "command": ["echo", "hello"]}}
    });
    cluster
        .kubectl_apply(&definition)
        .await
        .expect("definition applied");
    let task = json!({
        "apiVersion": "lifecycle.keptn.sh/v1alpha3", "kind": "KeptnTask",
        "metadata": {"name": "run-hello-keptn", "namespace": ns},
        "spec": {
            "taskDefinition": "hello-keptn",
            "context": {"appName": "my-app", "appVersion": "1.0.0", "objectType": "",
                "taskType": "", "workloadName": "my-workload", "workloadVersion": "1.0.0"},
            "parameters": {"map": {"greeting": "hello"}},
            "retries": 0, "timeout": "2m"
        }
    });
    cluster.kubectl_apply(&task).await.expect("task applied");
    let done: KeptnTask = wait_for("the v1alpha3 task finished", WAIT, || {
        let c = c.clone();
        async move {
            let t: KeptnTask = get(&c, ns, "run-hello-keptn").await?;
            let s = t.status.as_ref()?;
            matches!(s.status, KeptnState::Succeeded | KeptnState::Failed).then_some(t)
        }
    })
    .await;
    let status = done.status.as_ref().expect("status");
    assert_eq!(status.status, KeptnState::Succeeded, "{status:?}");
    assert!(!status.job_name.is_empty());
    assert_eq!(done.spec.context.app_name, "my-app");
    assert_eq!(done.spec.context.workload_name, "my-workload");
    // Read at the version it was written in, status included.
    let old = get_at(&cluster, "keptntasks", "v1alpha3", ns, "run-hello-keptn").await;
    assert_eq!(old["status"]["status"], "Succeeded");
    assert_eq!(old["spec"]["context"]["appName"], "my-app");
}
