//! What a controller decides to do: the output of every pure `plan_*` function, applied by the
//! async shell in `runtime.rs`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use serde_json::Value;

/// The kinds the simulated cluster writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// core/v1 Pod
    Pod,
    /// core/v1 Node
    Node,
    /// apps/v1 ReplicaSet
    ReplicaSet,
    /// apps/v1 Deployment
    Deployment,
    /// apps/v1 StatefulSet
    StatefulSet,
    /// apps/v1 DaemonSet
    DaemonSet,
    /// batch/v1 Job
    Job,
}

/// One write against the API server.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST a pod (fixed name or `generateName`).
    CreatePod(Box<Pod>),
    /// POST a ReplicaSet.
    CreateReplicaSet(Box<ReplicaSet>),
    /// POST a Node, then write its status.
    CreateNode(Box<Node>),
    /// JSON merge patch of the main resource (spec, labels, annotations).
    Patch {
        /// kind of the target
        kind: Kind,
        /// namespace, empty for cluster-scoped kinds
        namespace: String,
        /// name of the target
        name: String,
        /// the merge patch body
        patch: Value,
    },
    /// JSON merge patch of the `status` subresource.
    PatchStatus {
        /// kind of the target
        kind: Kind,
        /// namespace, empty for cluster-scoped kinds
        namespace: String,
        /// name of the target
        name: String,
        /// the merge patch body (`{"status": …}`)
        patch: Value,
    },
    /// DELETE with a uid precondition, so a replacement of the same name is never hit.
    Delete {
        /// kind of the target
        kind: Kind,
        /// namespace, empty for cluster-scoped kinds
        namespace: String,
        /// name of the target
        name: String,
        /// uid precondition
        uid: Option<String>,
        /// `gracePeriodSeconds: 0` (what the kubelet sends once containers have stopped)
        grace_period_zero: bool,
    },
    /// POST a core/v1 Event (best effort: a failure is logged, never retried).
    Event(Box<Event>),
    /// POST `pods/{name}/binding`, as the scheduler does.
    Bind {
        /// namespace of the pod
        namespace: String,
        /// name of the pod
        pod: String,
        /// uid of the pod
        uid: Option<String>,
        /// the chosen node
        node: String,
    },
}

/// The writes a controller wants plus when it wants to look again even if nothing changes
/// (deadlines, delays, back-offs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// writes, in order
    pub actions: Vec<Action>,
    /// wake up after this long at the latest
    pub requeue_after: Option<Duration>,
}

impl Plan {
    /// Keeps the earliest wake-up.
    pub fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(match self.requeue_after {
            Some(existing) => existing.min(after),
            None => after,
        });
    }

    /// Appends another plan (actions and wake-up).
    pub fn merge(&mut self, other: Plan) {
        self.actions.extend(other.actions);
        if let Some(after) = other.requeue_after {
            self.requeue(after);
        }
    }

    /// The pods this plan creates.
    pub fn created_pods(&self) -> Vec<&Pod> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::CreatePod(p) => Some(p.as_ref()),
                _ => None,
            })
            .collect()
    }

    /// The (reason, message) of the events this plan records.
    pub fn events(&self) -> Vec<(&str, &str)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some((
                    e.reason.as_deref().unwrap_or_default(),
                    e.message.as_deref().unwrap_or_default(),
                )),
                _ => None,
            })
            .collect()
    }

    /// The actions other than events.
    pub fn writes(&self) -> Vec<&Action> {
        self.actions
            .iter()
            .filter(|a| !matches!(a, Action::Event(_)))
            .collect()
    }

    /// The names of the objects of `kind` this plan deletes.
    pub fn deleted(&self, of: Kind) -> Vec<&str> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { kind, name, .. } if *kind == of => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The status patch this plan writes for `kind`/`name`, if any (the `status` object).
    pub fn status_of(&self, of: Kind, target: &str) -> Option<&Value> {
        self.actions.iter().rev().find_map(|a| match a {
            Action::PatchStatus {
                kind, name, patch, ..
            } if *kind == of && name == target => patch.get("status"),
            _ => None,
        })
    }

    /// The main-resource patch this plan writes for `kind`/`name`, if any.
    pub fn patch_of(&self, of: Kind, target: &str) -> Option<&Value> {
        self.actions.iter().rev().find_map(|a| match a {
            Action::Patch {
                kind, name, patch, ..
            } if *kind == of && name == target => Some(patch),
            _ => None,
        })
    }
}

/// Wraps a status object into a status merge patch, or nothing when it did not change.
pub fn status_patch_if_changed<S: serde::Serialize>(
    kind: Kind,
    namespace: &str,
    name: &str,
    old: Option<&S>,
    new: &S,
) -> Option<Action> {
    let new_value = serde_json::to_value(new).ok()?;
    let old_value = old.and_then(|o| serde_json::to_value(o).ok());
    if old_value.as_ref() == Some(&new_value) {
        return None;
    }
    // A merge patch only adds and replaces; fields that disappeared must be sent as null.
    let mut patch = new_value.clone();
    if let (Some(Value::Object(old_map)), Value::Object(new_map)) = (old_value, &mut patch) {
        for key in old_map.keys() {
            if !new_map.contains_key(key) {
                new_map.insert(key.clone(), Value::Null);
            }
        }
    }
    Some(Action::PatchStatus {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
        patch: serde_json::json!({ "status": patch }),
    })
}
