//! The list merge keys and patch strategies the built-in types declare (`patchMergeKey`,
//! `patchStrategy`, `listType`/`listMapKeys`, `mapType: atomic`), as a small type graph that both
//! strategic merge patch and server-side apply walk.
//!
//! Anything not listed is a plain field: maps merge key by key, lists are atomic (replaced whole).
//! Custom resources get only the `metadata` rules: their lists are atomic, as the real server does
//! when the schema has no `x-kubernetes-list-type: map` (which this module does not read).

use super::Gvk;

/// A position in the type graph of a built-in object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A field the graph knows nothing about: granular maps, atomic lists.
    Any,
    /// Any top-level object (custom resources, ConfigMaps, Secrets, Events, Leases…).
    Object,
    Meta,
    Pod,
    PodTemplate,
    PodSpec,
    Container,
    PodStatus,
    /// Deployments, ReplicaSets, StatefulSets, DaemonSets.
    Workload,
    Job,
    JobStatus,
    WorkloadSpec,
    CronJob,
    CronJobSpec,
    JobTemplate,
    /// A status whose only list with a strategy is `conditions` (by `type`).
    ConditionsStatus,
    Service,
    ServiceSpec,
    KubeNode,
    NodeSpec,
    NodeStatus,
    Namespace,
    ServiceAccount,
    WebhookConfiguration,
}

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Replaced whole by a patch; one leaf for apply.
    Atomic,
    /// Elements identified by these key fields (the first is the strategic `patchMergeKey`).
    Map(&'static [&'static str]),
    /// Primitive list merged as a set (`patchStrategy: merge` on scalars, `listType: set`).
    Set,
}

/// What a field holds, as far as merging is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// The node of the field's value (of the elements, for a list).
    pub node: Shape,
    pub list: ListKind,
    /// `mapType: atomic` (label selectors, `nodeSelector`): one leaf for apply.
    pub atomic_map: bool,
    /// `listType: atomic` although strategic merge patch merges it (Job conditions).
    pub apply_atomic: bool,
}

impl Field {
    /// How server-side apply treats the list.
    pub fn apply_list(self) -> ListKind {
        if self.apply_atomic {
            ListKind::Atomic
        } else {
            self.list
        }
    }
}

const fn plain(node: Shape) -> Field {
    Field {
        node,
        list: ListKind::Atomic,
        atomic_map: false,
        apply_atomic: false,
    }
}

const fn keyed(node: Shape, keys: &'static [&'static str]) -> Field {
    Field {
        node,
        list: ListKind::Map(keys),
        atomic_map: false,
        apply_atomic: false,
    }
}

const SET: Field = Field {
    node: Shape::Any,
    list: ListKind::Set,
    atomic_map: false,
    apply_atomic: false,
};
const ATOMIC_MAP: Field = Field {
    node: Shape::Any,
    list: ListKind::Atomic,
    atomic_map: true,
    apply_atomic: false,
};
const BY_NAME: &[&str] = &["name"];
const BY_TYPE: &[&str] = &["type"];

/// The root node of an object of this kind.
pub(crate) fn root(gvk: &Gvk) -> Shape {
    match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("", "Pod") => Shape::Pod,
        ("", "PodTemplate") => Shape::PodTemplate,
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => Shape::Workload,
        ("batch", "Job") => Shape::Job,
        ("batch", "CronJob") => Shape::CronJob,
        ("", "Service") => Shape::Service,
        ("", "Node") => Shape::KubeNode,
        ("", "Namespace") => Shape::Namespace,
        ("", "ServiceAccount") => Shape::ServiceAccount,
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => Shape::WebhookConfiguration,
        _ => Shape::Object,
    }
}

/// Whether the node is a top-level object (has `metadata: ObjectMeta`).
fn is_root(node: Shape) -> bool {
    matches!(
        node,
        Shape::Object
            | Shape::Pod
            | Shape::Workload
            | Shape::Job
            | Shape::CronJob
            | Shape::Service
            | Shape::KubeNode
            | Shape::Namespace
            | Shape::ServiceAccount
            | Shape::WebhookConfiguration
    )
}

/// The merge rules of field `name` inside a value of type `node`.
pub(crate) fn field(node: Shape, name: &str) -> Field {
    use Shape::*;
    if name == "metadata" && (is_root(node) || matches!(node, PodTemplate | JobTemplate)) {
        return plain(Meta);
    }
    match (node, name) {
        (Meta, "ownerReferences") => keyed(Any, &["uid"]),
        (Meta, "finalizers") => SET,
        (Pod, "spec") | (PodTemplate, "spec") => plain(PodSpec),
        (PodTemplate, "template") => plain(PodTemplate),
        (Pod, "status") => plain(PodStatus),
        (Workload | Job, "spec") | (JobTemplate, "spec") => plain(WorkloadSpec),
        (Job, "status") => plain(JobStatus),
        (JobStatus, "conditions") => Field {
            apply_atomic: true,
            ..keyed(Any, BY_TYPE)
        },
        (Workload | CronJob | Service | Namespace, "status") => plain(ConditionsStatus),
        (WorkloadSpec, "template") => plain(PodTemplate),
        (WorkloadSpec, "selector") => ATOMIC_MAP,
        (CronJob, "spec") => plain(CronJobSpec),
        (CronJobSpec, "jobTemplate") => plain(JobTemplate),
        (ConditionsStatus, "conditions") => keyed(Any, BY_TYPE),
        (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
            keyed(Container, BY_NAME)
        }
        (PodSpec, "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims") => {
            keyed(Any, BY_NAME)
        }
        (PodSpec, "hostAliases") => keyed(Any, &["ip"]),
        (PodSpec, "topologySpreadConstraints") => keyed(Any, &["topologyKey", "whenUnsatisfiable"]),
        (PodSpec, "nodeSelector") => ATOMIC_MAP,
        (Container, "ports") => keyed(Any, &["containerPort", "protocol"]),
        (Container, "env") => keyed(Any, BY_NAME),
        (Container, "volumeMounts") => keyed(Any, &["mountPath"]),
        (Container, "volumeDevices") => keyed(Any, &["devicePath"]),
        (PodStatus, "conditions") => keyed(Any, BY_TYPE),
        (PodStatus, "podIPs" | "hostIPs") => keyed(Any, &["ip"]),
        (PodStatus, "resourceClaimStatuses") => keyed(Any, BY_NAME),
        (Service, "spec") => plain(ServiceSpec),
        (ServiceSpec, "ports") => keyed(Any, &["port", "protocol"]),
        (ServiceSpec, "selector") => ATOMIC_MAP,
        (KubeNode, "spec") => plain(NodeSpec),
        (KubeNode, "status") => plain(NodeStatus),
        (NodeSpec, "podCIDRs") => SET,
        (NodeStatus, "conditions" | "addresses") => keyed(Any, BY_TYPE),
        (ServiceAccount, "secrets") => keyed(Any, BY_NAME),
        (WebhookConfiguration, "webhooks") => keyed(Any, BY_NAME),
        _ => plain(Any),
    }
}

/// The value a key field takes when an element omits it (the API server defaults it first).
pub(crate) fn key_default(key: &str) -> Option<serde_json::Value> {
    (key == "protocol").then(|| serde_json::Value::String("TCP".to_string()))
}
