//! Workload admission (`/mutate-workloads`, A7): an annotated Deployment, StatefulSet or
//! DaemonSet created or changed in an enabled namespace gets its KeptnWorkload and
//! KeptnAppCreationRequest right away. The workload itself is never mutated.

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};
use serde::Deserialize;
use shared::resolve::{self, PodView};

use crate::decision::{Decision, Needed, Verdict};
use crate::desired::{self, Origin, Owner};
use crate::namespaces::{self, Enablement};
use crate::snapshot::{Snapshot, meta_view};

/// Kinds served (group `apps`).
const KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// Messages of admitted workloads.
pub mod messages {
    /// Not annotated.
    pub const NOT_ANNOTATED: &str = "workload is not annotated for the lifecycle operator";
    /// KeptnWorkload and KeptnAppCreationRequest are as desired or written.
    pub const RESOLVED: &str = "KeptnWorkload and KeptnAppCreationRequest ensured";
    /// Other operations.
    pub const NOT_CREATE_OR_UPDATE: &str = "only CREATE and UPDATE of workloads are handled";
    /// A name is needed to refer to the workload.
    pub const NO_NAME: &str =
        "workload has no name yet (generateName); its first pod creates the KeptnWorkload";
}

/// Decides the admission of a workload; see [`crate::pods::admit`] for `Err`.
pub fn admit(
    request: &AdmissionRequest<DynamicObject>,
    snapshot: &(impl Snapshot + ?Sized),
) -> Result<Decision, Needed> {
    if !(request.kind.group == "apps" && KINDS.contains(&request.kind.kind.as_str())) {
        return Ok(Decision::only(Verdict::bad_request(format!(
            "this endpoint admits apps/v1 Deployments, StatefulSets and DaemonSets, got {}",
            crate::review::describe_kind(&request.kind)
        ))));
    }
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(Decision::only(Verdict::allow(
            messages::NOT_CREATE_OR_UPDATE,
        )));
    }
    let Some(object) = request.object.as_ref() else {
        return Ok(Decision::only(Verdict::bad_request(
            "the admission request carries no object",
        )));
    };
    let Some(namespace) = request
        .namespace
        .as_deref()
        .or(object.metadata.namespace.as_deref())
        .filter(|ns| !ns.is_empty())
    else {
        return Ok(Decision::only(Verdict::bad_request(
            "the admission request names no namespace",
        )));
    };
    match namespaces::enablement(namespace, snapshot) {
        Enablement::Unknown => return Err(Needed::Namespace(namespace.to_owned())),
        Enablement::Disabled => {
            return Ok(Decision::only(Verdict::allow(
                crate::pods::messages::NOT_ENABLED,
            )));
        }
        Enablement::Enabled => {}
    }
    let template = match object.data.get("spec").and_then(|s| s.get("template")) {
        None => PodView::default(),
        Some(value) => match PodView::deserialize(value) {
            Ok(template) => template,
            Err(err) => {
                return Ok(Decision::only(Verdict::bad_request(format!(
                    "cannot read spec.template of the {}: {err}",
                    request.kind.kind
                ))));
            }
        },
    };
    let parent = meta_view(object);
    let identity =
        match resolve::resolve(&template.metadata, &template.spec.containers, Some(&parent)) {
            Ok(Some(identity)) => identity,
            Ok(None) => return Ok(Decision::only(Verdict::allow(messages::NOT_ANNOTATED))),
            Err(err) => {
                return Ok(Decision::only(Verdict::bad_request(format!(
                    "{} {}: {err}",
                    request.kind.kind,
                    object.metadata.name.as_deref().unwrap_or(&request.name)
                ))));
            }
        };
    let name = object
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(&request.name);
    if name.is_empty() {
        return Ok(Decision::only(Verdict::allow(messages::NO_NAME)));
    }
    let owner = Owner {
        api_version: format!("{}/{}", request.kind.group, request.kind.version),
        kind: request.kind.kind.clone(),
        name: name.to_owned(),
        uid: object.metadata.uid.clone().unwrap_or_default(),
    };
    let writes = desired::plan(&identity, namespace, &owner, Origin::Workload, snapshot);
    Ok(Decision {
        verdict: Verdict::allow(messages::RESOLVED),
        writes,
    })
}
