//! The ReplicaSet controller's decisions: create or delete pods until the active ones match
//! `spec.replicas`, and the status counts (`replicas`, `readyReplicas`, `availableReplicas`…).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;

use super::actions::{Action, Kind, Plan, status_patch_if_changed};
use super::events::{self, Reporter};
use super::pod_state::{
    self, NameChoice, is_active, is_controlled_by, owner_reference, pod_from_template,
};

/// The order in which surplus pods are deleted: the least useful first (unscheduled, pending,
/// not ready, ready for the shortest time, most restarts, newest), as the real controller ranks.
pub fn deletion_rank(pod: &Pod) -> impl Ord {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase_rank = match pod_state::phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready = pod_state::is_ready(pod);
    let ready_since = pod_state::condition(pod, "Ready")
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.as_second())
        .unwrap_or(i64::MAX);
    let restarts: i32 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0);
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    (
        scheduled,
        phase_rank,
        ready,
        // Ready more recently sorts first.
        std::cmp::Reverse(ready_since),
        std::cmp::Reverse(restarts),
        std::cmp::Reverse(created),
        pod.metadata.name.clone(),
    )
}

/// A merge patch setting a pod's owner references (uid-guarded by the pod's resourceVersion is
/// not needed: the next sync re-checks).
fn owner_patch(
    namespace: &str,
    pod: &Pod,
    refs: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
) -> Action {
    let value = if refs.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(refs).unwrap_or(serde_json::Value::Null)
    };
    Action::Patch {
        kind: Kind::Pod,
        namespace: namespace.to_string(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        patch: serde_json::json!({ "metadata": { "ownerReferences": value } }),
    }
}

/// Plans one sync of a ReplicaSet from the pods of its namespace.
pub fn plan_replica_set(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let (Some(name), Some(uid), Some(spec)) = (
        rs.metadata.name.as_deref(),
        rs.metadata.uid.as_deref(),
        rs.spec.as_ref(),
    ) else {
        return plan;
    };
    let namespace = rs.metadata.namespace.clone().unwrap_or_default();
    // Adoption and release, as the real controller does: orphans whose labels match the
    // selector are adopted, owned pods whose labels no longer match are let go.
    let matches = |p: &Pod| {
        pod_state::selector_matches(
            &spec.selector,
            &p.metadata.labels.clone().unwrap_or_default(),
        )
    };
    let mut owned: Vec<&Pod> = Vec::new();
    let accepting = rs.metadata.deletion_timestamp.is_none();
    for pod in pods {
        let controlled = is_controlled_by(&pod.metadata, uid);
        let orphan = pod_state::controller_ref(&pod.metadata).is_none();
        let refs = pod.metadata.owner_references.clone().unwrap_or_default();
        if controlled && !matches(pod) && accepting && !pod_state::is_terminating(pod) {
            let kept: Vec<_> = refs.into_iter().filter(|r| r.uid != uid).collect();
            plan.actions.push(owner_patch(&namespace, pod, kept));
            continue;
        }
        if orphan && matches(pod) && accepting && !pod_state::is_terminating(pod) {
            let mut adopted = refs;
            adopted.push(owner_reference("apps/v1", "ReplicaSet", &rs.metadata));
            plan.actions.push(owner_patch(&namespace, pod, adopted));
            owned.push(pod);
            continue;
        }
        if controlled {
            owned.push(pod);
        }
    }
    let mut active: Vec<&Pod> = owned.iter().copied().filter(|p| is_active(p)).collect();
    let desired = spec.replicas.unwrap_or(1).max(0);
    let count = i32::try_from(active.len()).unwrap_or(i32::MAX);

    if rs.metadata.deletion_timestamp.is_none() {
        if count < desired {
            if let Some(template) = &spec.template {
                let owner = owner_reference("apps/v1", "ReplicaSet", &rs.metadata);
                for _ in count..desired {
                    let pod = pod_from_template(
                        template,
                        &namespace,
                        NameChoice::Generate(name),
                        owner.clone(),
                    );
                    plan.actions.push(Action::CreatePod(Box::new(pod)));
                }
            }
        } else if count > desired {
            active.sort_by_cached_key(|p| deletion_rank(p));
            let surplus = usize::try_from(count - desired).unwrap_or(0);
            for pod in active.iter().take(surplus) {
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                plan.actions.push(Action::Delete {
                    kind: Kind::Pod,
                    namespace: namespace.clone(),
                    name: pod_name.clone(),
                    uid: pod.metadata.uid.clone(),
                    grace_period_zero: false,
                });
                plan.actions.push(Action::Event(Box::new(events::event(
                    events::reference("apps/v1", "ReplicaSet", &rs.metadata),
                    Reporter::ReplicaSet,
                    None,
                    false,
                    "SuccessfulDelete",
                    format!("Deleted pod: {pod_name}"),
                    now,
                ))));
            }
        }
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| pod_state::is_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| pod_state::is_available(p, min_ready, now))
        .count();
    for pod in &active {
        if let Some(at) = pod_state::available_at(pod, min_ready, now) {
            let wait = at.as_second() - now.as_second();
            plan.requeue(Duration::from_secs(u64::try_from(wait.max(1)).unwrap_or(1)));
        }
    }
    let as_count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let non_zero = |n: usize| (n != 0).then(|| as_count(n));
    let old = rs.status.clone();
    let status = ReplicaSetStatus {
        replicas: count,
        fully_labeled_replicas: non_zero(fully_labeled),
        ready_replicas: non_zero(ready),
        available_replicas: non_zero(available),
        observed_generation: rs.metadata.generation,
        conditions: old
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .map(|mut c| {
                // ReplicaFailure (written when a create is refused) goes once nothing is missing.
                if count >= desired {
                    c.retain(|c| c.type_ != "ReplicaFailure");
                }
                c
            })
            .filter(|c| !c.is_empty()),
        terminating_replicas: old.as_ref().and_then(|s| s.terminating_replicas),
    };
    plan.actions.extend(status_patch_if_changed(
        Kind::ReplicaSet,
        &namespace,
        name,
        old.as_ref(),
        &status,
    ));
    plan
}
