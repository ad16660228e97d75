//! Pod admission (`/mutate-v1-pod`, B §1.2–§1.10 with A4, A5, A8, A9, A22): decides the patch
//! and the Keptn objects for one pod CREATE from the request and a cache snapshot.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};
use serde::Deserialize;
use serde_json::Value;
use shared::resolve::{
    self, ContainerView, MetaSource, ResolveError, gate_already_removed, keys, lookup_workload,
};

use crate::decision::{Decision, Needed, Verdict};
use crate::desired::{self, Origin, Owner};
use crate::namespaces::{self, Enablement};
use crate::patch;
use crate::snapshot::{Cached, ParentKind, Snapshot, meta_view};

/// Annotation the kubelet puts on mirror pods of static pods.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Owner kinds Keptn supports (B §1.3).
const SUPPORTED_OWNERS: [&str; 5] = [
    "ReplicaSet",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Rollout",
];

/// Messages of admitted-unchanged pods (Keptn's where Keptn has one).
pub mod messages {
    /// B §1.2 step 3.
    pub const NOT_ENABLED: &str = "namespace is not enabled for lifecycle operator";
    /// B §1.2 step 4.
    pub const OWNER_NOT_SUPPORTED: &str = "owner of pod is not supported by lifecycle operator";
    /// B §1.2 step 6a.
    pub const GATE_REMOVED: &str = "gate of the pod already removed";
    /// Not annotated (B §1.2 step 5).
    pub const NOT_ANNOTATED: &str = "pod is not annotated for the lifecycle operator";
    /// A8: only CREATE is mutated.
    pub const NOT_CREATE: &str = "pods are only gated on CREATE";
    /// A8: bound pods.
    pub const BOUND: &str = "pod is already bound to a node (spec.nodeName); it is not gated";
    /// A8: mirror pods.
    pub const MIRROR: &str = "mirror pods are never gated";
    /// Reinvocation (F19): gate and identity already there.
    pub const ALREADY_GATED: &str = "pod already carries the gate and its identity";
}

/// The pod's last supported owner reference (B §1.3).
pub fn supported_owner(refs: Option<&[OwnerReference]>) -> Option<&OwnerReference> {
    refs?
        .iter()
        .rev()
        .find(|r| SUPPORTED_OWNERS.contains(&r.kind.as_str()))
}

/// Decides the admission of a pod. `Err` names an object the caches lack: fetch it and call
/// again with it filled in (A5).
pub fn admit(
    request: &AdmissionRequest<DynamicObject>,
    snapshot: &(impl Snapshot + ?Sized),
) -> Result<Decision, Needed> {
    if !(request.kind.group.is_empty() && request.kind.kind == "Pod") {
        return Ok(Decision::only(Verdict::bad_request(format!(
            "this endpoint admits pods (v1 Pod), got {}",
            crate::review::describe_kind(&request.kind)
        ))));
    }
    if !matches!(request.operation, Operation::Create) {
        return Ok(Decision::only(Verdict::allow(messages::NOT_CREATE)));
    }
    let Some(pod) = request.object.as_ref() else {
        return Ok(Decision::only(Verdict::bad_request(
            "the admission request carries no object",
        )));
    };
    let Some(namespace) = request
        .namespace
        .as_deref()
        .or(pod.metadata.namespace.as_deref())
        .filter(|ns| !ns.is_empty())
    else {
        return Ok(Decision::only(Verdict::bad_request(
            "the admission request names no namespace",
        )));
    };
    match namespaces::enablement(namespace, snapshot) {
        Enablement::Unknown => return Err(Needed::Namespace(namespace.to_owned())),
        Enablement::Disabled => return Ok(Decision::only(Verdict::allow(messages::NOT_ENABLED))),
        Enablement::Enabled => {}
    }
    let spec = pod.data.get("spec");
    if spec
        .and_then(|s| s.get("nodeName"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        return Ok(Decision::only(Verdict::allow(messages::BOUND)));
    }
    let annotations = pod.metadata.annotations.as_ref();
    if annotations.is_some_and(|a| a.contains_key(MIRROR_ANNOTATION)) {
        return Ok(Decision::only(Verdict::allow(messages::MIRROR)));
    }
    let meta = meta_view(pod);
    if gate_already_removed(&meta) {
        return Ok(Decision::only(Verdict::allow(messages::GATE_REMOVED)));
    }
    let stamped = [keys::APP, keys::WORKLOAD, keys::VERSION]
        .iter()
        .all(|k| meta.annotations.get(*k).is_some_and(|v| !v.is_empty()));
    let labels = pod.metadata.labels.as_ref();
    if stamped && patch::has_gate(spec) {
        // Reinvoked after a later webhook changed the pod: resolving again would read the
        // stamped `keptn.sh/app` as an explicit app (shared::resolve), so nothing is redone but
        // the label, should the pod have lost it: without it the pod is never released.
        return Ok(Decision::only(match patch::gated_label_operation(labels) {
            None => Verdict::allow(messages::ALREADY_GATED),
            Some(op) => Verdict::Allow {
                patch: vec![op],
                message: Some(messages::ALREADY_GATED.to_owned()),
            },
        }));
    }
    let Some(owner_ref) = supported_owner(pod.metadata.owner_references.as_deref()) else {
        return Ok(Decision::only(Verdict::allow(
            messages::OWNER_NOT_SUPPORTED,
        )));
    };
    let containers = match spec.and_then(|s| s.get("containers")) {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => match Vec::<ContainerView>::deserialize(value) {
            Ok(containers) => containers,
            Err(err) => {
                return Ok(Decision::only(Verdict::bad_request(format!(
                    "cannot read spec.containers of the pod: {err}"
                ))));
            }
        },
    };
    let parent = if lookup_workload(&meta).is_some() {
        None
    } else {
        parent_meta(namespace, owner_ref, snapshot)?
    };
    let identity = match resolve::resolve(&meta, &containers, parent.as_ref()) {
        Ok(Some(identity)) => identity,
        Ok(None) => return Ok(Decision::only(Verdict::allow(messages::NOT_ANNOTATED))),
        Err(
            err @ ResolveError::ContainerNotFound {
                origin: MetaSource::Parent,
                ..
            },
        ) => {
            // B §1.4: on the parent path Keptn treats such a pod as not annotated; the workload
            // admission (A7) already rejected the parent when it was created or changed.
            return Ok(Decision::only(Verdict::allow(format!(
                "{}: {err}",
                messages::NOT_ANNOTATED
            ))));
        }
        Err(err) => {
            return Ok(Decision::only(Verdict::bad_request(format!(
                "keptn.sh metadata of the pod cannot be resolved: {err}"
            ))));
        }
    };
    if !spec.is_some_and(Value::is_object) {
        // The gate goes into `spec.schedulingGates`: no patch could apply to such a pod (the API
        // server never sends one; found by the property suite).
        return Ok(Decision::only(Verdict::bad_request(
            "the pod has no spec object to carry the scheduling gate",
        )));
    }
    let mut operations: Vec<_> = patch::gate_operation(spec).into_iter().collect();
    operations.extend(patch::gated_label_operation(labels));
    operations.extend(patch::annotation_operations(
        annotations,
        &identity.pod_annotations,
    ));
    let owner = Owner {
        api_version: owner_ref.api_version.clone(),
        kind: owner_ref.kind.clone(),
        name: owner_ref.name.clone(),
        uid: owner_ref.uid.clone(),
    };
    let writes = desired::plan(&identity, namespace, &owner, Origin::Pod, snapshot);
    Ok(Decision {
        verdict: Verdict::Allow {
            patch: operations,
            message: None,
        },
        writes,
    })
}

/// The parent whose metadata may annotate the pod (B §1.3); `Ok(None)` when there is none.
/// Public for `kubectl portcullis explain`, which resolves the pod [`admit`] gated again to show
/// where its values come from.
pub fn parent_meta(
    namespace: &str,
    owner: &OwnerReference,
    snapshot: &(impl Snapshot + ?Sized),
) -> Result<Option<shared::resolve::ObjectMetaView>, Needed> {
    let (kind, name) = match owner.kind.as_str() {
        "ReplicaSet" => {
            let rs = match snapshot.replica_set(namespace, &owner.name) {
                Cached::Found(rs) => rs,
                Cached::Absent => return Ok(None),
                Cached::Unknown => {
                    return Err(Needed::ReplicaSet {
                        namespace: namespace.to_owned(),
                        name: owner.name.clone(),
                    });
                }
            };
            let Some(rs_owner) = supported_owner(rs.metadata.owner_references.as_deref()) else {
                // A bare ReplicaSet's own metadata is ignored (B §1.3).
                return Ok(None);
            };
            if rs_owner.kind == "Rollout" {
                // Argo Rollouts are not cached (see the crate docs): not annotated via parent.
                return Ok(None);
            }
            (ParentKind::Deployment, rs_owner.name.clone())
        }
        "StatefulSet" => (ParentKind::StatefulSet, owner.name.clone()),
        "DaemonSet" => (ParentKind::DaemonSet, owner.name.clone()),
        _ => return Ok(None),
    };
    match snapshot.parent(kind, namespace, &name) {
        Cached::Found(meta) => Ok(Some(meta)),
        Cached::Absent => Ok(None),
        Cached::Unknown => Err(Needed::Parent {
            kind,
            namespace: namespace.to_owned(),
            name,
        }),
    }
}
