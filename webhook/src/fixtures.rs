//! Builders of AdmissionReviews shaped as the API server sends them (FIDELITY F16: defaulted
//! objects, generateName with an empty name, owner references), and of the objects the caches
//! hold, for tests and benchmarks:
//! `pod("shop").annotated("keptn.sh/workload", "w").owned_by_replica_set("rs").build()`.
//!
//! Compiled for the crate's own tests and with the `fixtures` feature, which the integration
//! tests, benches and examples get through the crate's dev-dependency on itself; never part of
//! the release binary.

use serde_json::{Value, json};
use shared::resolve::ObjectMetaView;

use crate::namespaces::{ENABLED, ENABLEMENT_KEY};
use crate::snapshot::{NamespaceMeta, ReplicaSetMeta};

/// Deserialises a builder's JSON into the typed object the caches hold.
fn typed<T: serde::de::DeserializeOwned>(object: Value) -> T {
    serde_json::from_value(object).expect("fixture deserialises")
}

/// `annotated` and `labelled` for builders holding their object's JSON in `object`; a missing
/// map is created.
macro_rules! metadata_setters {
    ($($builder:ty),* $(,)?) => {$(
        impl $builder {
            /// Sets an annotation.
            pub fn annotated(mut self, key: &str, value: &str) -> Self {
                self.object["metadata"]["annotations"][key] = json!(value);
                self
            }

            /// Sets a label.
            pub fn labelled(mut self, key: &str, value: &str) -> Self {
                self.object["metadata"]["labels"][key] = json!(value);
                self
            }
        }
    )*};
}

metadata_setters!(
    PodBuilder,
    NamespaceBuilder,
    ReplicaSetBuilder,
    MetaBuilder,
    WorkloadBuilder,
);

/// A pod as it reaches a mutating webhook on CREATE: already defaulted.
#[derive(Debug, Clone)]
pub struct PodBuilder {
    object: Value,
}

/// A defaulted pod in `namespace` created through `generateName` (empty name).
pub fn pod(namespace: &str) -> PodBuilder {
    PodBuilder {
        object: json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": "app-7d4b9c8f6d-",
                "namespace": namespace,
                "creationTimestamp": null,
                "labels": {"pod-template-hash": "7d4b9c8f6d"}
            },
            "spec": {
                "volumes": [{
                    "name": "kube-api-access-x2x7k",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                        ],
                        "defaultMode": 420
                    }
                }],
                "containers": [],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default",
                "serviceAccount": "default",
                "securityContext": {},
                "schedulerName": "default-scheduler",
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                ],
                "priority": 0,
                "enableServiceLinks": true,
                "preemptionPolicy": "PreemptLowerPriority"
            },
            "status": {}
        }),
    }
}

impl PodBuilder {
    /// Adds a defaulted container.
    pub fn container(mut self, name: &str, image: &str) -> Self {
        if let Some(list) = self.object["spec"]["containers"].as_array_mut() {
            list.push(json!({
                "name": name,
                "image": image,
                "resources": {},
                "volumeMounts": [{"name": "kube-api-access-x2x7k", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            }));
        }
        self
    }

    /// Adds an env var to the last container.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        if let Some(last) = self.object["spec"]["containers"]
            .as_array_mut()
            .and_then(|l| l.last_mut())
        {
            match last.get_mut("env").and_then(Value::as_array_mut) {
                Some(env) => env.push(json!({"name": name, "value": value})),
                None => last["env"] = json!([{"name": name, "value": value}]),
            }
        }
        self
    }

    /// Adds a controller owner reference.
    pub fn owned_by(mut self, api_version: &str, kind: &str, name: &str, uid: &str) -> Self {
        let meta = &mut self.object["metadata"];
        if meta.get("ownerReferences").is_none() {
            meta["ownerReferences"] = json!([]);
        }
        if let Some(list) = meta["ownerReferences"].as_array_mut() {
            list.push(json!({
                "apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true
            }));
        }
        self
    }

    /// Owned by ReplicaSet `name`.
    pub fn owned_by_replica_set(self, name: &str) -> Self {
        self.owned_by("apps/v1", "ReplicaSet", name, "rs-uid-1")
    }

    /// Sets `spec.schedulingGates`.
    pub fn gates(mut self, names: &[&str]) -> Self {
        self.object["spec"]["schedulingGates"] =
            Value::Array(names.iter().map(|n| json!({"name": n})).collect());
        self
    }

    /// Sets any field of the spec.
    pub fn spec_field(mut self, key: &str, value: Value) -> Self {
        self.object["spec"][key] = value;
        self
    }

    /// Gives the pod a fixed name (no generateName).
    pub fn named(mut self, name: &str) -> Self {
        self.object["metadata"]["name"] = json!(name);
        if let Some(meta) = self.object["metadata"].as_object_mut() {
            meta.remove("generateName");
        }
        self
    }

    /// The pod JSON.
    pub fn build(self) -> Value {
        self.object
    }
}

/// A Deployment/StatefulSet/DaemonSet as admitted: metadata plus a pod template.
pub fn workload(kind: &str, namespace: &str, name: &str, template: &Value) -> Value {
    let mut template_meta = template["metadata"].clone();
    if let Some(meta) = template_meta.as_object_mut() {
        meta.remove("generateName");
        meta.remove("namespace");
        meta.remove("ownerReferences");
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "creationTimestamp": null,
            "annotations": {}
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": template_meta, "spec": template["spec"].clone()},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {}
    })
}

/// An AdmissionReview v1 for `object` (and `old_object` on UPDATE).
#[allow(clippy::too_many_arguments)]
pub fn review(
    group: &str,
    version: &str,
    kind: &str,
    resource: &str,
    operation: &str,
    object: Option<&Value>,
    old_object: Option<&Value>,
    dry_run: bool,
) -> Value {
    let namespace = object
        .or(old_object)
        .and_then(|o| o["metadata"]["namespace"].as_str())
        .unwrap_or("default");
    let name = object
        .or(old_object)
        .and_then(|o| o["metadata"]["name"].as_str())
        .unwrap_or("");
    let options_kind = match operation {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        _ => "DeleteOptions",
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "b1d4a5c3-0000-4000-8000-000000000001",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
            },
            "object": object,
            "oldObject": old_object,
            "dryRun": dry_run,
            "options": {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

/// A pod CREATE review.
pub fn pod_review(pod: &Value, dry_run: bool) -> Value {
    review("", "v1", "Pod", "pods", "CREATE", Some(pod), None, dry_run)
}

/// A namespace object with metadata.
pub fn namespace(name: &str, annotations: Value, labels: Value) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/metadata.name"] = json!(name);
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "annotations": annotations, "labels": labels}
    })
}

/// A Namespace as the namespace cache holds it: metadata only.
#[derive(Debug, Clone)]
pub struct NamespaceBuilder {
    object: Value,
}

/// Namespace `name`, neither annotated nor labelled (beyond `kubernetes.io/metadata.name`): the
/// typed counterpart of [`namespace`], `ns("shop").enabled().build()`.
pub fn ns(name: &str) -> NamespaceBuilder {
    NamespaceBuilder {
        object: namespace(name, json!({}), json!({})),
    }
}

impl NamespaceBuilder {
    /// Enabled by the annotation `keptn.sh/lifecycle-toolkit: enabled` (A4).
    pub fn enabled(self) -> Self {
        self.annotated(ENABLEMENT_KEY, ENABLED)
    }

    /// The Namespace's metadata.
    pub fn build(self) -> NamespaceMeta {
        typed(self.object)
    }
}

/// A ReplicaSet as the ReplicaSet cache holds it: metadata only.
#[derive(Debug, Clone)]
pub struct ReplicaSetBuilder {
    object: Value,
}

/// ReplicaSet `name` in `namespace`, without uid, annotations or owners.
pub fn replica_set(namespace: &str, name: &str) -> ReplicaSetBuilder {
    ReplicaSetBuilder {
        object: json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": namespace}
        }),
    }
}

impl ReplicaSetBuilder {
    /// Sets `metadata.uid`.
    pub fn uid(mut self, uid: &str) -> Self {
        self.object["metadata"]["uid"] = json!(uid);
        self
    }

    /// Adds an owner reference without the `controller` flag.
    pub fn owned_by(self, api_version: &str, kind: &str, name: &str, uid: &str) -> Self {
        self.owner(json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid}))
    }

    /// Adds an owner reference with `controller: true`.
    pub fn controlled_by(self, api_version: &str, kind: &str, name: &str, uid: &str) -> Self {
        self.owner(json!({
            "apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": true
        }))
    }

    fn owner(mut self, reference: Value) -> Self {
        match self.object["metadata"]["ownerReferences"].as_array_mut() {
            Some(list) => list.push(reference),
            None => self.object["metadata"]["ownerReferences"] = json!([reference]),
        }
        self
    }

    /// The ReplicaSet's metadata.
    pub fn build(self) -> ReplicaSetMeta {
        typed(self.object)
    }
}

/// The labels and annotations of a parent as the parent cache holds them.
#[derive(Debug, Clone)]
pub struct MetaBuilder {
    object: Value,
}

/// No labels, no annotations: `meta().annotated(k, v).labelled(k, v).build()`.
pub fn meta() -> MetaBuilder {
    MetaBuilder {
        object: json!({"metadata": {}}),
    }
}

impl MetaBuilder {
    /// The metadata as resolution reads it.
    pub fn build(mut self) -> ObjectMetaView {
        typed(self.object["metadata"].take())
    }
}

/// A Deployment (or StatefulSet, DaemonSet) as admitted, built on [`workload`].
#[derive(Debug, Clone)]
pub struct WorkloadBuilder {
    object: Value,
}

/// Deployment `name` in `namespace` with `template` as its pod template and no annotations.
pub fn deployment(namespace: &str, name: &str, template: PodBuilder) -> WorkloadBuilder {
    WorkloadBuilder {
        object: workload("Deployment", namespace, name, &template.build()),
    }
}

impl WorkloadBuilder {
    /// Changes the kind (`StatefulSet`, `DaemonSet`); the rest of the object stays.
    pub fn kind(mut self, kind: &str) -> Self {
        self.object["kind"] = json!(kind);
        self
    }

    /// The workload JSON.
    pub fn build(self) -> Value {
        self.object
    }
}

/// An AdmissionReview v1, built on [`review`]: a CREATE without object and not a dry run until
/// told otherwise.
#[derive(Debug, Clone)]
pub struct ReviewBuilder {
    group: String,
    version: String,
    kind: String,
    resource: String,
    operation: String,
    object: Option<Value>,
    old_object: Option<Value>,
    dry_run: bool,
}

/// A review of `kind` (`resource`) in `group`/`version`.
pub fn admission(group: &str, version: &str, kind: &str, resource: &str) -> ReviewBuilder {
    ReviewBuilder {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        resource: resource.into(),
        operation: "CREATE".into(),
        object: None,
        old_object: None,
        dry_run: false,
    }
}

/// A review of a core/v1 Pod.
pub fn pod_admission() -> ReviewBuilder {
    admission("", "v1", "Pod", "pods")
}

/// A review of an apps/v1 `kind` (`Deployment`, `StatefulSet`, `DaemonSet`).
pub fn workload_admission(kind: &str) -> ReviewBuilder {
    admission("apps", "v1", kind, &format!("{}s", kind.to_lowercase()))
}

impl ReviewBuilder {
    /// Sets the operation (`CREATE`, `UPDATE`, `DELETE`).
    pub fn operation(mut self, operation: &str) -> Self {
        self.operation = operation.into();
        self
    }

    /// Sets `request.object`.
    pub fn object(mut self, object: &Value) -> Self {
        self.object = Some(object.clone());
        self
    }

    /// Sets `request.oldObject`.
    pub fn old_object(mut self, object: &Value) -> Self {
        self.old_object = Some(object.clone());
        self
    }

    /// Marks the request a dry run.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The AdmissionReview JSON.
    pub fn build(self) -> Value {
        review(
            &self.group,
            &self.version,
            &self.kind,
            &self.resource,
            &self.operation,
            self.object.as_ref(),
            self.old_object.as_ref(),
            self.dry_run,
        )
    }
}
