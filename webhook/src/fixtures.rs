//! Builders of AdmissionReviews shaped as the API server sends them (FIDELITY F16: defaulted
//! objects, generateName with an empty name, owner references), for tests and benchmarks.

use serde_json::{Value, json};

/// A pod as it reaches a mutating webhook on CREATE: already defaulted.
#[derive(Debug, Clone)]
pub struct PodBuilder {
    pod: Value,
}

/// A defaulted pod in `namespace` created through `generateName` (empty name).
pub fn pod(namespace: &str) -> PodBuilder {
    PodBuilder {
        pod: json!({
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
        if let Some(list) = self.pod["spec"]["containers"].as_array_mut() {
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
        if let Some(last) = self.pod["spec"]["containers"]
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

    /// Sets an annotation.
    pub fn annotated(mut self, key: &str, value: &str) -> Self {
        let meta = &mut self.pod["metadata"];
        if meta.get("annotations").is_none() {
            meta["annotations"] = json!({});
        }
        meta["annotations"][key] = json!(value);
        self
    }

    /// Sets a label.
    pub fn labelled(mut self, key: &str, value: &str) -> Self {
        self.pod["metadata"]["labels"][key] = json!(value);
        self
    }

    /// Adds a controller owner reference.
    pub fn owned_by(mut self, api_version: &str, kind: &str, name: &str, uid: &str) -> Self {
        let meta = &mut self.pod["metadata"];
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
        self.pod["spec"]["schedulingGates"] =
            Value::Array(names.iter().map(|n| json!({"name": n})).collect());
        self
    }

    /// Sets any field of the spec.
    pub fn spec_field(mut self, key: &str, value: Value) -> Self {
        self.pod["spec"][key] = value;
        self
    }

    /// Gives the pod a fixed name (no generateName).
    pub fn named(mut self, name: &str) -> Self {
        self.pod["metadata"]["name"] = json!(name);
        if let Some(meta) = self.pod["metadata"].as_object_mut() {
            meta.remove("generateName");
        }
        self
    }

    /// The pod JSON.
    pub fn build(self) -> Value {
        self.pod
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
