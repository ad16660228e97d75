//! The Keptn objects an admitted pod or workload asks for (B §1.8, §1.9, A7, A10), compared
//! with the caches: only what differs becomes a write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use shared::crd::{
    KeptnAppCreationRequest, KeptnAppCreationRequestSpec, KeptnWorkload, KeptnWorkloadSpec,
    ResourceReference,
};
use shared::resolve::{AppType, Identity, keys};

use crate::decision::Write;
use crate::snapshot::Snapshot;

/// Label Keptn puts on the KeptnApps it manages (B §3.1).
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The object a KeptnWorkload stands for: the pod's direct owner, or the admitted workload (A7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `ReplicaSet`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `uid`; empty for a workload being created.
    pub uid: String,
}

impl Owner {
    /// The KeptnWorkload's owner references: exactly this object, not as controller (B §1.8).
    /// None without a uid (the API server rejects such references).
    fn owner_references(&self) -> Vec<OwnerReference> {
        if self.uid.is_empty() {
            return Vec::new();
        }
        vec![OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: None,
            block_owner_deletion: None,
        }]
    }

    fn resource_reference(&self) -> ResourceReference {
        ResourceReference {
            uid: self.uid.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
        }
    }
}

/// Who asks: a pod's admission points the KeptnWorkload at the pod's owner; a workload's
/// admission only sets the reference on creation and leaves an existing one to the pods (A7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `/mutate-v1-pod`.
    Pod,
    /// `/mutate-workloads`.
    Workload,
}

/// The KeptnWorkload spec of B §1.8 for an identity and owner.
pub fn workload_spec(identity: &Identity, owner: &Owner) -> KeptnWorkloadSpec {
    KeptnWorkloadSpec {
        app: identity.names.app_name.clone(),
        version: identity.names.version.clone(),
        pre_deployment_tasks: identity.pre_deployment_tasks.clone(),
        post_deployment_tasks: identity.post_deployment_tasks.clone(),
        pre_deployment_evaluations: identity.pre_deployment_evaluations.clone(),
        post_deployment_evaluations: identity.post_deployment_evaluations.clone(),
        resource_reference: owner.resource_reference(),
        metadata: identity.metadata.clone(),
    }
}

/// The KeptnWorkload to write over `existing` after a create or replace lost a race with it
/// (the cache lagged, or had not filled yet, A24): `desired` on the fresh object, except that a
/// workload admission's reference to the workload itself never replaces a reference of the same
/// version, which pods have made more precise (the [`Origin::Workload`] rule of the plan, told
/// here by the reference's kind). `None` when nothing differs.
pub fn converged(existing: &KeptnWorkload, desired: &KeptnWorkload) -> Option<KeptnWorkload> {
    let mut spec = desired.spec.clone();
    let mut owner_references = desired.metadata.owner_references.clone();
    let from_workload = matches!(
        spec.resource_reference.kind.as_str(),
        "Deployment" | "StatefulSet" | "DaemonSet"
    );
    if from_workload && existing.spec.version == spec.version {
        spec.resource_reference = existing.spec.resource_reference.clone();
        owner_references = existing.metadata.owner_references.clone();
    }
    if existing.spec == spec && existing.metadata.owner_references == owner_references {
        return None;
    }
    let mut updated = existing.clone();
    updated.spec = spec;
    updated.metadata.owner_references = owner_references;
    Some(updated)
}

/// The writes that make the caches hold what `identity` asks for in `namespace`.
pub fn plan(
    identity: &Identity,
    namespace: &str,
    owner: &Owner,
    origin: Origin,
    snapshot: &(impl Snapshot + ?Sized),
) -> Vec<Write> {
    let mut writes = Vec::new();
    if let Some(write) = workload_write(identity, namespace, owner, origin, snapshot) {
        writes.push(write);
    }
    if let Some(write) = app_creation_request_write(identity, namespace, snapshot) {
        writes.push(write);
    }
    writes
}

fn workload_write(
    identity: &Identity,
    namespace: &str,
    owner: &Owner,
    origin: Origin,
    snapshot: &(impl Snapshot + ?Sized),
) -> Option<Write> {
    let name = &identity.names.workload_name;
    let mut spec = workload_spec(identity, owner);
    let mut owner_references = owner.owner_references();
    let Some(existing) = snapshot.keptn_workload(namespace, name) else {
        return Some(Write::CreateWorkload(Box::new(KeptnWorkload {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_owned()),
                owner_references: (!owner_references.is_empty()).then_some(owner_references),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        })));
    };
    let existing_refs = existing
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    if origin == Origin::Workload {
        // The pods' owner stays recorded until the workload's version changes; a new version
        // names the workload itself again until its first pod names the new owner, so the gate
        // creates the new KeptnWorkloadVersion with that owner and never has to rewrite it.
        if existing.spec.version == spec.version {
            spec.resource_reference = existing.spec.resource_reference.clone();
        }
        owner_references = existing_refs.clone();
    }
    if existing.spec == spec && existing_refs == owner_references {
        return None;
    }
    let mut updated = (*existing).clone();
    updated.spec = spec;
    updated.metadata.owner_references = (!owner_references.is_empty()).then_some(owner_references);
    Some(Write::UpdateWorkload(Box::new(updated)))
}

/// B §1.9: a KACR when none is pending and the KeptnApp does not already list this workload at
/// this version (Keptn re-creates it on every pod; when the app is in sync that only makes the
/// KACR controller delete it again, so skipping it is observably the same and costs no write).
/// A KeptnApp not managed by Keptn is never touched by a KACR, so none is created for it.
fn app_creation_request_write(
    identity: &Identity,
    namespace: &str,
    snapshot: &(impl Snapshot + ?Sized),
) -> Option<Write> {
    let app_name = &identity.names.app_name;
    if snapshot.app_creation_request(namespace, app_name).is_some() {
        return None;
    }
    if let Some(app) = snapshot.keptn_app(namespace, app_name) {
        let managed = app
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY))
            .is_some_and(|v| v == "keptn");
        let short_name = identity
            .names
            .workload_name
            .strip_prefix(&format!("{app_name}-"))
            .unwrap_or(&identity.names.workload_name);
        let listed = app
            .spec
            .workloads
            .iter()
            .any(|w| w.name == short_name && w.version == identity.names.version);
        if !managed || listed {
            return None;
        }
    }
    let annotations = match identity.app_type() {
        AppType::SingleService => Some(
            [(
                keys::APP_TYPE.to_owned(),
                AppType::SingleService.as_str().to_owned(),
            )]
            .into(),
        ),
        AppType::MultiService => None,
    };
    Some(Write::CreateAppCreationRequest(Box::new(
        KeptnAppCreationRequest {
            metadata: ObjectMeta {
                name: Some(app_name.clone()),
                namespace: Some(namespace.to_owned()),
                annotations,
                ..ObjectMeta::default()
            },
            spec: KeptnAppCreationRequestSpec {
                app_name: app_name.clone(),
            },
            status: None,
        },
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn workload(version: &str, kind: &str, owner: &str) -> KeptnWorkload {
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkload",
            "metadata": {"name": "shop-cart", "namespace": "ns", "resourceVersion": "9",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": owner}]},
            "spec": {"app": "shop", "version": version,
                "resourceReference": {"uid": owner, "kind": kind, "name": owner}}
        }))
        .expect("workload")
    }

    #[test]
    fn a_workload_admission_losing_a_race_leaves_the_pods_reference_of_the_same_version() {
        let existing = workload("1", "ReplicaSet", "cart-6b8f");
        let desired = workload("1", "Deployment", "cart");
        assert_eq!(converged(&existing, &desired), None);
        // A new version names the workload itself again.
        let updated = converged(&existing, &workload("2", "Deployment", "cart")).expect("update");
        assert_eq!(updated.spec.version, "2");
        assert_eq!(updated.spec.resource_reference.kind, "Deployment");
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("9"));
    }

    #[test]
    fn a_pod_admission_losing_a_race_writes_its_owner() {
        let existing = workload("1", "Deployment", "cart");
        let updated =
            converged(&existing, &workload("1", "ReplicaSet", "cart-6b8f")).expect("update");
        assert_eq!(updated.spec.resource_reference.name, "cart-6b8f");
        assert_eq!(
            updated.metadata.owner_references.clone().expect("owners")[0].kind,
            "ReplicaSet"
        );
        assert_eq!(
            converged(&updated, &workload("1", "ReplicaSet", "cart-6b8f")),
            None
        );
    }
}
