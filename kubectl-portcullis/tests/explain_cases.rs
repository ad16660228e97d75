//! `explain` on particular manifests: where the namespace's enablement comes from, kinds the
//! webhook does not admit itself (ReplicaSet, CronJob), apps of several workloads, a KeptnApp of
//! the manifests, workloads whose pods are not gated, unreadable objects.

use kubectl_portcullis::explain::core::namespaces_to_read;
use kubectl_portcullis::explain::{Explanation, Options, explain, manifest};
use serde_json::Value;
use shared::resolve::{app_version, kav_name};

fn objects(yaml: &str) -> Vec<Value> {
    manifest::parse(yaml, "test.yaml").unwrap()
}

fn options() -> Options {
    Options {
        default_namespace: "shop".into(),
        ..Options::default()
    }
}

const ENABLED_NS: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {keptn.sh/lifecycle-toolkit: enabled}}
";

fn deployment(name: &str, annotations: &str) -> String {
    format!(
        "---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  template:
    metadata:
      annotations: {{{annotations}}}
    spec:
      containers: [{{name: {name}, image: 'example/{name}:1.0'}}]
"
    )
}

fn only(explanations: &[Explanation]) -> &Explanation {
    assert_eq!(explanations.len(), 1, "{explanations:#?}");
    &explanations[0]
}

#[test]
fn namespaces_to_read_from_the_cluster() {
    let yaml = format!(
        "{ENABLED_NS}{}---\nkind: Pod\napiVersion: v1\nmetadata: {{name: p, namespace: other}}\n",
        deployment("web", "keptn.sh/workload: web")
    );
    let objects = objects(&yaml);
    let read: Vec<String> = namespaces_to_read(&objects, &options())
        .into_iter()
        .collect();
    assert_eq!(read, ["other"], "shop is in the manifests");
    let elsewhere = Options {
        default_namespace: "staging".into(),
        ..Options::default()
    };
    let read: Vec<String> = namespaces_to_read(&objects, &elsewhere)
        .into_iter()
        .collect();
    assert_eq!(read, ["other", "staging"]);
    let flagged = Options {
        namespace_enabled: true,
        ..options()
    };
    assert!(namespaces_to_read(&objects, &flagged).is_empty());
}

#[test]
fn namespace_from_the_cluster() {
    let objects = objects(&deployment("web", "keptn.sh/workload: web"));
    let mut options = options();
    let ns = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "shop", "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"}}
    }))
    .unwrap();
    options.cluster_namespaces.insert("shop".into(), Some(ns));
    let explanations = explain(&objects, &options);
    let e = only(&explanations);
    assert!(e.enabled, "{e:#?}");
    assert!(e.notes.is_empty(), "{:?}", e.notes);

    options.cluster_namespaces.insert("shop".into(), None);
    let explanations = explain(&objects, &options);
    let e = only(&explanations);
    assert!(!e.enabled);
    assert_eq!(
        e.notes,
        ["namespace shop is neither in the manifests nor in the cluster: not enabled"]
    );
}

#[test]
fn flag_overrides_a_namespace_of_the_manifests_with_a_note() {
    let yaml = format!(
        "kind: Namespace\napiVersion: v1\nmetadata: {{name: shop}}\n{}",
        deployment("web", "keptn.sh/workload: web")
    );
    let explanations = explain(&objects(&yaml), &options());
    assert!(!only(&explanations).enabled);
    let flagged = Options {
        namespace_enabled: true,
        ..options()
    };
    let explanations = explain(&objects(&yaml), &flagged);
    let e = only(&explanations);
    assert!(e.enabled);
    assert!(
        e.notes.contains(
            &"the Namespace shop of the manifests is not enabled; --namespace-enabled counts it \
              as enabled"
                .to_owned()
        ),
        "{:?}",
        e.notes
    );
}

#[test]
fn bare_replica_set_and_cron_job_are_explained_through_their_pods() {
    let yaml = format!(
        "{ENABLED_NS}---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: rs, annotations: {{keptn.sh/workload: ignored}}}}
spec:
  template:
    metadata: {{labels: {{app.kubernetes.io/name: cache, app.kubernetes.io/version: '7'}}}}
    spec: {{containers: [{{name: c, image: redis}}]}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: nightly}}
spec:
  jobTemplate:
    spec:
      template:
        metadata: {{annotations: {{keptn.sh/workload: nightly}}}}
        spec: {{containers: [{{name: n, image: n:1}}]}}
"
    );
    let explanations = explain(&objects(&yaml), &options());
    let [rs, cron] = explanations.as_slice() else {
        panic!("{explanations:#?}")
    };
    assert_eq!((rs.kind.as_str(), rs.name.as_str()), ("ReplicaSet", "rs"));
    assert!(rs.enabled);
    assert_eq!(rs.webhook_path, None);
    let workload = rs.workload.as_ref().unwrap();
    assert_eq!(
        workload.value, "cache",
        "the ReplicaSet's own key is ignored"
    );
    assert_eq!(
        workload.source,
        "label app.kubernetes.io/name of the pod template"
    );
    assert_eq!(rs.keptn_workload_version.as_deref(), Some("cache-cache-7"));
    assert_eq!(
        rs.pods.as_ref().unwrap().webhook_path.as_deref(),
        Some("/mutate-v1-pod")
    );
    assert!(rs.notes[0].starts_with("a ReplicaSet without a Deployment"));

    assert_eq!(cron.kind, "CronJob");
    assert!(!cron.enabled);
    assert_eq!(
        cron.reason,
        "owned by Job nightly-<time>: pods of Jobs (and CronJobs) are never gated"
    );
}

#[test]
fn workloads_of_one_app_share_its_app_version() {
    let yaml = format!(
        "{ENABLED_NS}{}{}",
        deployment(
            "cart",
            "keptn.sh/workload: cart, app.kubernetes.io/part-of: store, keptn.sh/version: '1'"
        ),
        deployment(
            "pay",
            "keptn.sh/workload: pay, keptn.sh/app: store, keptn.sh/container: pay"
        ),
    );
    let explanations = explain(&objects(&yaml), &options());
    let [cart, pay] = explanations.as_slice() else {
        panic!("{explanations:#?}")
    };
    assert_eq!(
        cart.app.as_ref().unwrap().source,
        "annotation app.kubernetes.io/part-of of the pod template"
    );
    assert_eq!(
        pay.version.as_ref().unwrap().source,
        "image tag of container pay (named by annotation keptn.sh/container of the pod template)"
    );
    let version = app_version(&[("store-cart", "1"), ("store-pay", "1.0")]);
    let kav = kav_name("store", &version, 1);
    assert_eq!(cart.keptn_app_version.as_deref(), Some(kav.as_str()));
    assert_eq!(pay.keptn_app_version.as_deref(), Some(kav.as_str()));
    assert!(
        cart.notes
            .iter()
            .any(|n| n.contains("(store-cart, store-pay)")),
        "{:?}",
        cart.notes
    );
}

#[test]
fn a_keptn_app_of_the_manifests_decides_the_app_version() {
    let yaml = format!(
        "{ENABLED_NS}---
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnApp
metadata: {{name: store, generation: 3}}
spec:
  version: '2.0'
  workloads: [{{name: cart, version: '1'}}]
{}",
        deployment(
            "cart",
            "keptn.sh/workload: cart, keptn.sh/app: store, keptn.sh/version: '1'"
        )
    );
    let explanations = explain(&objects(&yaml), &options());
    let e = only(&explanations);
    assert_eq!(
        e.keptn_app_version.as_deref(),
        Some(kav_name("store", "2.0", 3).as_str()),
        "a KeptnApp not managed by Keptn is the user's"
    );
    assert!(
        !e.writes
            .iter()
            .any(|w| w.contains("KeptnAppCreationRequest")),
        "{:?}",
        e.writes
    );
}

#[test]
fn deployment_whose_pods_are_not_gated_gets_no_versions() {
    let yaml = format!(
        "{ENABLED_NS}{}",
        deployment(
            "web",
            "keptn.sh/workload: web, keptn.sh/scheduling-gate-removed: 'true'"
        )
    );
    let explanations = explain(&objects(&yaml), &options());
    let e = only(&explanations);
    assert!(!e.enabled);
    assert_eq!(e.reason, "gate of the pod already removed");
    assert_eq!(
        e.keptn_workload.as_deref(),
        Some("web-web"),
        "still written"
    );
    assert_eq!(e.keptn_workload_version, None);
    assert_eq!(e.keptn_app_version, None);
    assert!(
        e.notes[0].starts_with(
            "no KeptnWorkloadVersion yet: KeptnWorkload web-web names the Deployment web"
        ),
        "{:?}",
        e.notes
    );
    assert!(
        e.notes[1].starts_with("no KeptnAppVersion: KeptnApp web waits"),
        "{:?}",
        e.notes
    );
}

#[test]
fn an_object_kubernetes_cannot_read_is_an_error_not_a_failure() {
    let yaml = format!(
        "{ENABLED_NS}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p, annotations: {{keptn.sh/version: 1.0}}}}\n"
    );
    let explanations = explain(&objects(&yaml), &options());
    let e = only(&explanations);
    assert!(!e.enabled);
    assert!(!e.allowed);
    let error = e.error.as_deref().unwrap();
    assert!(
        error.starts_with("the object cannot be read: invalid type: floating point `1.0`"),
        "{error}"
    );
}

#[test]
fn objects_of_other_kinds_and_groups_are_not_explained() {
    let yaml = "\
apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: example.com/v1
kind: Deployment
metadata: {name: not-apps}
---
apiVersion: v1
kind: ConfigMapList
items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}]
";
    assert!(explain(&objects(yaml), &options()).is_empty());
}
