//! The resource registry: which group/version/resources the emulator serves (built-in kinds plus
//! every established CustomResourceDefinition), and the facts discovery and storage need about each.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// Where the replica count and selector of a kind with a `/scale` subresource live.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    /// e.g. `.spec.replicas`
    pub spec_replicas: String,
    /// e.g. `.status.replicas`
    pub status_replicas: String,
    /// For CRDs a path to a string selector; for built-ins `None` (the selector is `.spec.selector`).
    pub label_selector: Option<String>,
}

/// One served resource in one version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource (F8).
    pub status: bool,
    pub scale: Option<ScalePaths>,
    /// Storage identity shared by all versions (and by core/v1 and events.k8s.io/v1 Events, F23).
    pub storage: String,
    /// Built-in kind (strategic merge patch, built-in defaults and validation) or custom resource.
    pub builtin: bool,
    /// Whether the server maintains `metadata.generation` for this kind.
    pub generation: bool,
    /// The CRD version entry (schema, printer columns, selectable fields) for custom resources.
    pub crd_version: Option<Value>,
    /// Extra field-selector labels besides `metadata.name` and `metadata.namespace`.
    pub field_labels: Vec<String>,
    /// Other subresources served or answered (e.g. `log`, `binding`).
    pub extra_subresources: Vec<String>,
}

impl ResourceInfo {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The schema of a custom resource version, if any.
    pub fn schema(&self) -> Option<&Value> {
        self.crd_version
            .as_ref()
            .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
    }

    /// `Event` in either API group.
    pub fn is_event(&self) -> bool {
        self.storage == "/events"
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
    scale: bool,
    generation: bool,
    fields: &'static [&'static str],
    extra: &'static [&'static str],
}

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
];

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    Builtin { group: "", version: "v1", kind: "Namespace", plural: "namespaces", namespaced: false, short: &["ns"], all: false, status: true, scale: false, generation: false, fields: &["status.phase"], extra: &["finalize"] },
    Builtin { group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true, short: &["po"], all: true, status: true, scale: false, generation: false,
        fields: &["spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"],
        extra: &["binding", "log", "exec", "attach", "portforward", "eviction", "ephemeralcontainers"] },
    Builtin { group: "", version: "v1", kind: "Node", plural: "nodes", namespaced: false, short: &["no"], all: false, status: true, scale: false, generation: false, fields: &["spec.unschedulable"], extra: &[] },
    Builtin { group: "", version: "v1", kind: "Service", plural: "services", namespaced: true, short: &["svc"], all: true, status: true, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "", version: "v1", kind: "Endpoints", plural: "endpoints", namespaced: true, short: &["ep"], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "", version: "v1", kind: "Secret", plural: "secrets", namespaced: true, short: &[], all: false, status: false, scale: false, generation: false, fields: &["type"], extra: &[] },
    Builtin { group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true, short: &["cm"], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "", version: "v1", kind: "ServiceAccount", plural: "serviceaccounts", namespaced: true, short: &["sa"], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "", version: "v1", kind: "Event", plural: "events", namespaced: true, short: &["ev"], all: false, status: false, scale: false, generation: false, fields: EVENT_FIELDS, extra: &[] },
    Builtin { group: "", version: "v1", kind: "ResourceQuota", plural: "resourcequotas", namespaced: true, short: &["quota"], all: false, status: true, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "", version: "v1", kind: "LimitRange", plural: "limitranges", namespaced: true, short: &["limits"], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "apps", version: "v1", kind: "Deployment", plural: "deployments", namespaced: true, short: &["deploy"], all: true, status: true, scale: true, generation: true, fields: &[], extra: &[] },
    Builtin { group: "apps", version: "v1", kind: "ReplicaSet", plural: "replicasets", namespaced: true, short: &["rs"], all: true, status: true, scale: true, generation: true, fields: &["status.replicas"], extra: &[] },
    Builtin { group: "apps", version: "v1", kind: "StatefulSet", plural: "statefulsets", namespaced: true, short: &["sts"], all: true, status: true, scale: true, generation: true, fields: &[], extra: &[] },
    Builtin { group: "apps", version: "v1", kind: "DaemonSet", plural: "daemonsets", namespaced: true, short: &["ds"], all: true, status: true, scale: false, generation: true, fields: &[], extra: &[] },
    Builtin { group: "apps", version: "v1", kind: "ControllerRevision", plural: "controllerrevisions", namespaced: true, short: &[], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "batch", version: "v1", kind: "Job", plural: "jobs", namespaced: true, short: &[], all: true, status: true, scale: false, generation: true, fields: &["status.successful"], extra: &[] },
    Builtin { group: "batch", version: "v1", kind: "CronJob", plural: "cronjobs", namespaced: true, short: &["cj"], all: true, status: true, scale: false, generation: true, fields: &[], extra: &[] },
    Builtin { group: "coordination.k8s.io", version: "v1", kind: "Lease", plural: "leases", namespaced: true, short: &[], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "events.k8s.io", version: "v1", kind: "Event", plural: "events", namespaced: true, short: &["ev"], all: false, status: false, scale: false, generation: false, fields: EVENT_FIELDS, extra: &[] },
    Builtin { group: "admissionregistration.k8s.io", version: "v1", kind: "MutatingWebhookConfiguration", plural: "mutatingwebhookconfigurations", namespaced: false, short: &[], all: false, status: false, scale: false, generation: true, fields: &[], extra: &[] },
    Builtin { group: "admissionregistration.k8s.io", version: "v1", kind: "ValidatingWebhookConfiguration", plural: "validatingwebhookconfigurations", namespaced: false, short: &[], all: false, status: false, scale: false, generation: true, fields: &[], extra: &[] },
    Builtin { group: "policy", version: "v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", namespaced: true, short: &["pdb"], all: false, status: true, scale: false, generation: true, fields: &[], extra: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", kind: "ClusterRole", plural: "clusterroles", namespaced: false, short: &[], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", kind: "ClusterRoleBinding", plural: "clusterrolebindings", namespaced: false, short: &[], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", kind: "Role", plural: "roles", namespaced: true, short: &[], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "rbac.authorization.k8s.io", version: "v1", kind: "RoleBinding", plural: "rolebindings", namespaced: true, short: &[], all: false, status: false, scale: false, generation: false, fields: &[], extra: &[] },
    Builtin { group: "apiextensions.k8s.io", version: "v1", kind: "CustomResourceDefinition", plural: "customresourcedefinitions", namespaced: false, short: &["crd", "crds"], all: false, status: true, scale: false, generation: true, fields: &[], extra: &[] },
];

fn builtin_info(b: &Builtin) -> ResourceInfo {
    let storage = if b.plural == "events" {
        "/events".to_string()
    } else {
        format!("{}/{}", b.group, b.plural)
    };
    ResourceInfo {
        group: b.group.into(),
        version: b.version.into(),
        kind: b.kind.into(),
        list_kind: format!("{}List", b.kind),
        plural: b.plural.into(),
        singular: b.kind.to_lowercase(),
        namespaced: b.namespaced,
        short_names: b.short.iter().map(|s| s.to_string()).collect(),
        categories: if b.all { vec!["all".into()] } else { vec![] },
        status: b.status,
        scale: b.scale.then(|| ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: None,
        }),
        storage,
        builtin: true,
        generation: b.generation,
        crd_version: None,
        field_labels: b.fields.iter().map(|s| s.to_string()).collect(),
        extra_subresources: b.extra.iter().map(|s| s.to_string()).collect(),
    }
}

/// Every resource served right now, keyed by (group, version, plural).
#[derive(Debug, Clone)]
pub struct Registry {
    resources: BTreeMap<(String, String, String), Arc<ResourceInfo>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// The built-in kinds only.
    pub fn new() -> Self {
        let mut resources = BTreeMap::new();
        for b in BUILTINS {
            let info = builtin_info(b);
            resources.insert(
                (
                    info.group.clone(),
                    info.version.clone(),
                    info.plural.clone(),
                ),
                Arc::new(info),
            );
        }
        Self { resources }
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Whether any version of the group is served.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.resources
            .keys()
            .any(|(g, v, _)| g == group && v == version)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> {
        self.resources.values()
    }

    /// Groups in discovery order: built-in groups first in a fixed order, then CRD groups sorted.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for info in self.resources.values() {
            if info.group.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(g, _)| *g == info.group) {
                Some((_, versions)) => {
                    if !versions.contains(&info.version) {
                        versions.push(info.version.clone());
                    }
                }
                None => out.push((info.group.clone(), vec![info.version.clone()])),
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// The resource for a kind in a group/version (used for owner references and webhooks).
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .values()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// Distinct storages with whether they are namespaced.
    pub fn storages(&self) -> Vec<Arc<ResourceInfo>> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for info in self.resources.values() {
            if seen.insert(info.storage.clone()) {
                out.push(info.clone());
            }
        }
        out
    }

    /// Serve (or stop serving) the versions of a CRD: replaces whatever the CRD served before.
    pub fn set_crd(&mut self, crd: &Value, served: bool) {
        let Some(group) = crd.pointer("/spec/group").and_then(Value::as_str) else {
            return;
        };
        let Some(plural) = crd.pointer("/spec/names/plural").and_then(Value::as_str) else {
            return;
        };
        let storage = format!("{group}/{plural}");
        self.resources
            .retain(|_, r| r.storage != storage || r.builtin);
        if !served {
            return;
        }
        let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let list_kind = names
            .get("listKind")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("{kind}List"));
        let singular = names
            .get("singular")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| kind.to_lowercase());
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let namespaced = crd.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
        for version in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if version.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let Some(vname) = version.get("name").and_then(Value::as_str) else {
                continue;
            };
            let sub = version.get("subresources");
            let scale = sub.and_then(|s| s.get("scale")).map(|s| ScalePaths {
                spec_replicas: s
                    .get("specReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".spec.replicas")
                    .into(),
                status_replicas: s
                    .get("statusReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".status.replicas")
                    .into(),
                label_selector: s
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(String::from),
            });
            let field_labels = version
                .get("selectableFields")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                        .map(|p| p.trim_start_matches('.').to_string())
                        .collect()
                })
                .unwrap_or_default();
            let info = ResourceInfo {
                group: group.into(),
                version: vname.into(),
                kind: kind.clone(),
                list_kind: list_kind.clone(),
                plural: plural.into(),
                singular: singular.clone(),
                namespaced,
                short_names: strings(names.get("shortNames")),
                categories: strings(names.get("categories")),
                status: sub.and_then(|s| s.get("status")).is_some(),
                scale,
                storage: storage.clone(),
                builtin: false,
                generation: true,
                crd_version: Some(version.clone()),
                field_labels,
                extra_subresources: vec![],
            };
            // A CRD never shadows a built-in resource.
            let key = (group.to_string(), vname.to_string(), plural.to_string());
            if self.resources.get(&key).is_some_and(|r| r.builtin) {
                continue;
            }
            self.resources.insert(key, Arc::new(info));
        }
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let major_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..major_end].parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[major_end..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (rank, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    (rank, major, num.parse().unwrap_or(0))
}

/// The accepted-names and conditions a real API server writes into a CRD's status once served.
pub fn crd_established_status(crd: &Value, now: &str) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none()
        && let Some(kind) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(kind) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_priority_orders_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "v2"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1"]);
    }

    #[test]
    fn crd_versions_are_served_and_removed() {
        let mut r = Registry::new();
        let crd = json!({"spec": {"group": "x.io", "scope": "Namespaced",
            "names": {"kind": "Foo", "plural": "foos", "shortNames": ["fo"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}});
        r.set_crd(&crd, true);
        let info = r.get("x.io", "v1", "foos").expect("served");
        assert!(info.status && info.namespaced && !info.builtin);
        assert_eq!(info.list_kind, "FooList");
        r.set_crd(&crd, false);
        assert!(r.get("x.io", "v1", "foos").is_none());
    }
}
