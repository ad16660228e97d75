//! The StatefulSet controller's decisions: `<name>-<ordinal>` pods created in order (OrderedReady:
//! the next only once the previous is Running and Ready) or all at once (Parallel), condemned
//! pods removed from the highest ordinal, rolling updates from the highest ordinal down to the
//! partition, and the revision status (`currentRevision`, `updateRevision`…).
//!
//! ControllerRevisions are not written: a pod's revision is the label
//! `controller-revision-hash: <name>-<template hash>`, and the revision the set was at before an
//! update is remembered in `status.currentRevision` only. Consequently pods re-created below a
//! rolling-update partition get the new template (a real cluster restores the old one from its
//! ControllerRevision).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, Volume};

use super::actions::{Action, Kind, Plan, status_patch_if_changed};
use super::events::{self, Reporter};
use super::hash::template_hash;
use super::pod_state::{
    self, CONTROLLER_REVISION_HASH, NameChoice, is_controlled_by, owner_reference,
    pod_from_template, set_label,
};

/// Label with the pod's own name, set on every StatefulSet pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The update revision of a set: `<name>-<hash of the template>`.
pub fn update_revision(set: &StatefulSet) -> String {
    let name = set.metadata.name.clone().unwrap_or_default();
    let collision = set.status.as_ref().and_then(|s| s.collision_count);
    let hash = set
        .spec
        .as_ref()
        .map(|s| template_hash(&s.template, collision))
        .unwrap_or_default();
    format!("{name}-{hash}")
}

fn ordinal_of(set_name: &str, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    let suffix = name.strip_prefix(set_name)?.strip_prefix('-')?;
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    suffix.parse().ok()
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH)
        .map(String::as_str)
}

fn running_and_ready(pod: &Pod) -> bool {
    pod_state::phase(pod) == "Running" && pod_state::is_ready(pod)
}

fn healthy(pod: &Pod) -> bool {
    running_and_ready(pod) && !pod_state::is_terminating(pod)
}

/// Builds the pod of `ordinal` at `revision`.
pub fn new_pod(set: &StatefulSet, ordinal: i32, revision: &str) -> Pod {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let pod_name = format!("{set_name}-{ordinal}");
    let mut pod = pod_from_template(
        &spec.template,
        &namespace,
        NameChoice::Fixed(&pod_name),
        owner_reference("apps/v1", "StatefulSet", &set.metadata),
    );
    set_label(&mut pod.metadata, POD_NAME_LABEL, &pod_name);
    set_label(&mut pod.metadata, POD_INDEX_LABEL, &ordinal.to_string());
    set_label(&mut pod.metadata, CONTROLLER_REVISION_HASH, revision);
    if let Some(pod_spec) = pod.spec.as_mut() {
        pod_spec.hostname = Some(pod_name.clone());
        if !spec.service_name.as_deref().unwrap_or_default().is_empty() {
            pod_spec.subdomain = spec.service_name.clone();
        }
        // Claims from volumeClaimTemplates are referenced as a real pod would; the claims
        // themselves are not created by the simulation.
        for claim in spec.volume_claim_templates.iter().flatten() {
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
            volumes.retain(|v| v.name != claim_name);
            volumes.push(Volume {
                name: claim_name.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: format!("{claim_name}-{set_name}-{ordinal}"),
                    read_only: None,
                }),
                ..Volume::default()
            });
        }
    }
    pod
}

/// Plans one sync of a StatefulSet from the pods of its namespace.
pub fn plan_stateful_set(set: &StatefulSet, pods: &[Pod], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let (Some(name), Some(uid), Some(spec)) = (
        set.metadata.name.as_deref(),
        set.metadata.uid.as_deref(),
        set.spec.as_ref(),
    ) else {
        return plan;
    };
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let update_rev = update_revision(set);
    let current_rev = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update_rev.clone());
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);

    let owned: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_controlled_by(&p.metadata, uid))
        .collect();
    let mut slots: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<&Pod> = Vec::new();
    for pod in &owned {
        match ordinal_of(name, pod) {
            Some(ord) if ord >= start && ord < start + replicas => {
                slots.insert(ord, pod);
            }
            _ => condemned.push(pod),
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal_of(name, p).unwrap_or(-1)));

    let delete = |pod: &Pod| Action::Delete {
        kind: Kind::Pod,
        namespace: namespace.clone(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone(),
        grace_period_zero: false,
    };

    if set.metadata.deletion_timestamp.is_none() {
        plan.actions.extend(plan_pods(
            set,
            &slots,
            &condemned,
            PodPlanInput {
                start,
                replicas,
                monotonic,
                rolling,
                partition,
                update_rev: &update_rev,
            },
            &delete,
        ));
    }

    let set_ref = events::reference("apps/v1", "StatefulSet", &set.metadata);
    events::record_pod_deletions(
        &mut plan.actions,
        set_ref,
        Reporter::StatefulSet,
        |pod| format!("delete Pod {pod} in StatefulSet {name} successful"),
        now,
    );

    // Status from the pods as observed (the writes above show up on the next sync).
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(owned.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let status_replicas = count(&|_| true);
    let ready = count(&running_and_ready);
    let available = count(&|p| running_and_ready(p) && pod_state::is_available(p, min_ready, now));
    let current_replicas =
        count(&|p| !pod_state::is_terminating(p) && revision_of(p) == Some(current_rev.as_str()));
    let updated_replicas =
        count(&|p| !pod_state::is_terminating(p) && revision_of(p) == Some(update_rev.as_str()));
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: status_replicas,
        // Zero counts are omitted, as the API serialises them.
        ready_replicas: (ready != 0).then_some(ready),
        available_replicas: (available != 0).then_some(available),
        current_replicas: (current_replicas != 0).then_some(current_replicas),
        updated_replicas: (updated_replicas != 0).then_some(updated_replicas),
        current_revision: Some(current_rev.clone()),
        update_revision: Some(update_rev.clone()),
        collision_count: Some(
            set.status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        ),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    // A finished rolling update makes the update revision the current one.
    if rolling
        && current_rev != update_rev
        && updated_replicas == status_replicas
        && ready == status_replicas
        && status_replicas == replicas
    {
        status.current_revision = Some(update_rev.clone());
        status.current_replicas = (updated_replicas != 0).then_some(updated_replicas);
    }
    if let Some(at) = owned
        .iter()
        .filter_map(|p| pod_state::available_at(p, min_ready, now))
        .min()
    {
        let wait = (at.as_second() - now.as_second()).max(1);
        plan.requeue(std::time::Duration::from_secs(
            u64::try_from(wait).unwrap_or(1),
        ));
    }
    plan.actions.extend(status_patch_if_changed(
        Kind::StatefulSet,
        &namespace,
        name,
        set.status.as_ref(),
        &status,
    ));
    plan
}

struct PodPlanInput<'a> {
    start: i32,
    replicas: i32,
    monotonic: bool,
    rolling: bool,
    partition: i32,
    update_rev: &'a str,
}

fn plan_pods(
    set: &StatefulSet,
    slots: &BTreeMap<i32, &Pod>,
    condemned: &[&Pod],
    input: PodPlanInput<'_>,
    delete: &dyn Fn(&Pod) -> Action,
) -> Vec<Action> {
    let mut actions = Vec::new();
    // Create, replace and wait, lowest ordinal first.
    for ord in input.start..input.start + input.replicas {
        match slots.get(&ord) {
            None => {
                actions.push(Action::CreatePod(Box::new(new_pod(
                    set,
                    ord,
                    input.update_rev,
                ))));
                if input.monotonic {
                    return actions;
                }
            }
            Some(pod) if pod_state::is_finished(pod) && !pod_state::is_terminating(pod) => {
                // A failed or completed member is replaced under the same identity.
                actions.push(delete(pod));
                if input.monotonic {
                    return actions;
                }
            }
            Some(pod) => {
                if input.monotonic && !healthy(pod) {
                    return actions;
                }
            }
        }
    }
    // Scale down from the highest ordinal, one at a time when ordered.
    for pod in condemned {
        if pod_state::is_terminating(pod) {
            if input.monotonic {
                return actions;
            }
            continue;
        }
        actions.push(delete(pod));
        if input.monotonic {
            return actions;
        }
    }
    if !actions.is_empty() || !input.rolling {
        return actions;
    }
    // Rolling update: replace the highest ordinal not at the update revision, one at a time.
    let min = input.start + input.partition.max(0);
    for ord in (min..input.start + input.replicas).rev() {
        let Some(pod) = slots.get(&ord) else {
            return actions;
        };
        if revision_of(pod) != Some(input.update_rev) && !pod_state::is_terminating(pod) {
            actions.push(delete(pod));
            return actions;
        }
        if !healthy(pod) {
            return actions;
        }
    }
    actions
}
