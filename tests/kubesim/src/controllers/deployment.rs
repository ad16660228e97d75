//! The Deployment controller's decisions: which ReplicaSet is new, how far each ReplicaSet is
//! scaled during a rolling or recreate rollout, which old ReplicaSets are cleaned up, and the
//! Deployment status `kubectl rollout status` reads.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::actions::{Action, Kind, Plan, status_patch_if_changed};
use super::events::{self, Reporter};
use super::hash::template_hash;
use super::pod_state::{self, POD_TEMPLATE_HASH, is_controlled_by, owner_reference};

/// Annotation with the rollout revision of a Deployment and its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation with the revisions a reused ReplicaSet had before.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// Annotation with the Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation with replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations that are not copied onto its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// Resolves maxSurge/maxUnavailable: an absolute number, or a percentage of `total` rounded up
/// (surge) or down (unavailable) as the real controller does.
pub fn resolve_int_or_percent(
    value: Option<&IntOrString>,
    default_percent: i32,
    total: i32,
    round_up: bool,
) -> i32 {
    let percent = match value {
        Some(IntOrString::Int(n)) => return *n,
        Some(IntOrString::String(s)) => match s.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(p)) => p,
            // Validation rejects anything else; an unreadable value counts as zero.
            _ => return 0,
        },
        None => i64::from(default_percent),
    };
    let scaled = percent * i64::from(total);
    let value = if round_up {
        (scaled + 99) / 100
    } else {
        scaled / 100
    };
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// (maxSurge, maxUnavailable) for a rolling update; both zero becomes an unavailable of one.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let replicas = desired_replicas(d);
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = resolve_int_or_percent(
        rolling.and_then(|r| r.max_surge.as_ref()),
        25,
        replicas,
        true,
    );
    let unavailable = resolve_int_or_percent(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        25,
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn desired_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) {
        return 0;
    }
    let (_, unavailable) = fenceposts(d);
    unavailable.min(desired_replicas(d))
}

/// The revision annotation of an object, 0 when absent or unreadable.
pub fn revision_of(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether two templates are the same apart from the `pod-template-hash` label.
pub fn templates_equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn strip(t: &PodTemplateSpec) -> PodTemplateSpec {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut()
            && let Some(labels) = meta.labels.as_mut()
        {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                meta.labels = None;
            }
        }
        t
    }
    strip(a) == strip(b)
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn rs_status(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status
        .as_ref()
        .map(|s| {
            (
                s.replicas,
                s.ready_replicas.unwrap_or(0),
                s.available_replicas.unwrap_or(0),
            )
        })
        .unwrap_or((0, 0, 0))
}

fn set_replicas(rs: &mut ReplicaSet, replicas: i32) {
    rs.spec.get_or_insert_with(ReplicaSetSpec::default).replicas = Some(replicas);
}

fn creation_key(rs: &ReplicaSet) -> (i64, String) {
    (
        rs.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(0),
        rs.metadata.name.clone().unwrap_or_default(),
    )
}

/// The replicas of the new ReplicaSet in a rolling update: scale up as far as maxSurge allows.
pub fn new_rs_replicas_rolling(
    desired: i32,
    max_surge: i32,
    new_current: i32,
    all_current: i32,
) -> i32 {
    if new_current > desired {
        return desired;
    }
    let max_total = desired + max_surge;
    if all_current >= max_total {
        return new_current;
    }
    let up = (max_total - all_current).min(desired - new_current);
    new_current + up.max(0)
}

/// Scales old ReplicaSets down as far as maxUnavailable allows: first the unhealthy replicas,
/// then available ones, oldest ReplicaSet first. `olds` holds (spec replicas, available) and is
/// updated in place.
pub fn scale_down_old(
    desired: i32,
    max_unavailable: i32,
    new_replicas: i32,
    new_available: i32,
    olds: &mut [(i32, i32)],
) {
    let old_total: i32 = olds.iter().map(|(r, _)| *r).sum();
    if old_total == 0 {
        return;
    }
    let all_total = old_total + new_replicas;
    let min_available = desired - max_unavailable;
    let new_unavailable = new_replicas - new_available;
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    let mut cleaned = 0;
    for (replicas, available) in olds.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        if *replicas == 0 || *replicas == *available {
            continue;
        }
        let unhealthy = (*replicas - *available).max(0);
        let step = unhealthy.min(max_scaled_down - cleaned);
        *replicas -= step;
        cleaned += step;
    }
    let available_total: i32 = olds.iter().map(|(_, a)| *a).sum::<i32>() + new_available;
    if available_total <= min_available {
        return;
    }
    let to_scale_down = available_total - min_available;
    let mut scaled = 0;
    for (replicas, _) in olds.iter_mut() {
        if scaled >= to_scale_down {
            break;
        }
        if *replicas == 0 {
            continue;
        }
        let step = (*replicas).min(to_scale_down - scaled);
        *replicas -= step;
        scaled += step;
    }
}

/// Plans one sync of a Deployment from the observed ReplicaSets and pods of its namespace.
pub fn plan_deployment(
    d: &Deployment,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    let (Some(name), Some(uid), Some(spec)) = (
        d.metadata.name.as_deref(),
        d.metadata.uid.as_deref(),
        d.spec.as_ref(),
    ) else {
        return plan;
    };
    if d.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let namespace = d.metadata.namespace.clone().unwrap_or_default();
    let desired = desired_replicas(d);
    let (max_surge, _) = fenceposts(d);
    let collision_count = d.status.as_ref().and_then(|s| s.collision_count);

    let mut owned: Vec<ReplicaSet> = replica_sets
        .iter()
        .filter(|rs| is_controlled_by(&rs.metadata, uid))
        .cloned()
        .collect();
    owned.sort_by_key(creation_key);
    let observed = owned.clone();

    let new_index = owned.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| templates_equal_ignoring_hash(t, &spec.template))
    });
    let max_old_revision = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_index)
        .map(|(_, rs)| revision_of(&rs.metadata))
        .max()
        .unwrap_or(0);
    let new_revision = max_old_revision + 1;
    let paused = spec.paused == Some(true);
    // A changed `replicas` on a Deployment with active ReplicaSets is a scaling event: the
    // replicas are distributed over the active ReplicaSets first; the rollout goes on afterwards.
    let scaling_event = owned.iter().any(|rs| {
        rs_replicas(rs) > 0
            && rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_REPLICAS))
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|v| v != desired)
    });

    let mut created: Option<String> = None;
    let new_index = match new_index {
        Some(i) => {
            // A rollback to an old template reuses its ReplicaSet under a new revision.
            let current = revision_of(&owned[i].metadata);
            if current < new_revision && !paused {
                let annotations = owned[i]
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new);
                if current > 0 {
                    let history = match annotations.get(REVISION_HISTORY) {
                        Some(h) if !h.is_empty() => format!("{h},{current}"),
                        _ => current.to_string(),
                    };
                    annotations.insert(REVISION_HISTORY.into(), history);
                }
                annotations.insert(REVISION.into(), new_revision.to_string());
            }
            Some(i)
        }
        None if paused || scaling_event => None,
        None => {
            let hash = template_hash(&spec.template, collision_count);
            let rs_name = format!("{name}-{hash}");
            if replica_sets
                .iter()
                .any(|rs| rs.metadata.name.as_deref() == Some(rs_name.as_str()))
            {
                // Same name, different template (or not ours): salt the hash and try again.
                let mut status = d.status.clone().unwrap_or_default();
                status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                plan.actions.extend(status_patch_if_changed(
                    Kind::Deployment,
                    &namespace,
                    name,
                    d.status.as_ref(),
                    &status,
                ));
                return plan;
            }
            let all_current: i32 = owned.iter().map(rs_replicas).sum();
            let replicas = if is_recreate(d) {
                // Recreate scales the new ReplicaSet up only once the old pods are gone.
                0
            } else {
                new_rs_replicas_rolling(desired, max_surge, 0, all_current)
            };
            let rs = new_replica_set(d, &rs_name, &hash, new_revision, replicas, max_surge);
            created = Some(rs_name);
            owned.push(rs);
            Some(owned.len() - 1)
        }
    };

    if paused || scaling_event {
        // A paused Deployment still follows scale changes, without rolling out.
        plan_scale(d, &mut owned, new_index, desired, max_surge);
    } else if let Some(new_i) = new_index {
        if is_recreate(d) {
            plan_recreate(&mut owned, new_i, desired, pods);
        } else {
            plan_rolling(d, &mut owned, new_i, desired, max_surge);
        }
    }

    // Writes: the new ReplicaSet, then every changed ReplicaSet.
    for (i, rs) in owned.iter_mut().enumerate() {
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        if created.as_deref() == Some(rs_name.as_str()) && Some(i) == new_index {
            plan.actions
                .push(Action::CreateReplicaSet(Box::new(rs.clone())));
            if rs_replicas(rs) > 0 {
                plan.actions
                    .push(scaling_message(d, &rs_name, 0, rs_replicas(rs), now));
            }
            continue;
        }
        let Some(before) = observed
            .iter()
            .find(|o| o.metadata.name == rs.metadata.name)
        else {
            continue;
        };
        let scaled = rs_replicas(before) != rs_replicas(rs);
        if scaled {
            plan.actions.push(scaling_message(
                d,
                &rs_name,
                rs_replicas(before),
                rs_replicas(rs),
                now,
            ));
            let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
            annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
            annotations.insert(MAX_REPLICAS.into(), (desired + max_surge).to_string());
        }
        if scaled || before.metadata.annotations != rs.metadata.annotations {
            let mut patch = json!({});
            if scaled {
                patch["spec"] = json!({ "replicas": rs_replicas(rs) });
            }
            if before.metadata.annotations != rs.metadata.annotations {
                patch["metadata"] = json!({ "annotations": rs.metadata.annotations });
            }
            plan.actions.push(Action::Patch {
                kind: Kind::ReplicaSet,
                namespace: namespace.clone(),
                name: rs_name,
                patch,
            });
        }
    }

    // The Deployment carries the revision of its new ReplicaSet.
    if let Some(new_i) = new_index {
        let revision = revision_of(&owned[new_i].metadata);
        if revision > 0 && revision_of(&d.metadata) != revision {
            plan.actions.push(Action::Patch {
                kind: Kind::Deployment,
                namespace: namespace.clone(),
                name: name.to_string(),
                patch: json!({ "metadata": { "annotations": { REVISION: revision.to_string() } } }),
            });
        }
    }

    let status = compute_status(d, &owned, new_index, created.as_deref(), now, &mut plan);
    let complete = deployment_complete(d, &status);
    plan.actions.extend(status_patch_if_changed(
        Kind::Deployment,
        &namespace,
        name,
        d.status.as_ref(),
        &status,
    ));

    if complete && !paused {
        plan.actions
            .extend(cleanup_old(d, &owned, new_index, &namespace));
    }
    plan
}

/// The `ScalingReplicaSet` event the real controller records on the Deployment.
fn scaling_message(d: &Deployment, rs_name: &str, from: i32, to: i32, now: Timestamp) -> Action {
    let direction = if to > from { "up" } else { "down" };
    Action::Event(Box::new(events::event(
        events::reference("apps/v1", "Deployment", &d.metadata),
        Reporter::Deployment,
        None,
        false,
        "ScalingReplicaSet",
        format!("Scaled {direction} replica set {rs_name} from {from} to {to}"),
        now,
    )))
}

fn new_replica_set(
    d: &Deployment,
    rs_name: &str,
    hash: &str,
    revision: i64,
    replicas: i32,
    max_surge: i32,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = desired_replicas(d);
    let mut template = spec.template.clone();
    pod_state::set_label(
        template.metadata.get_or_insert_with(ObjectMeta::default),
        POD_TEMPLATE_HASH,
        hash,
    );
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut annotations: BTreeMap<String, String> = d
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
    annotations.insert(MAX_REPLICAS.into(), (desired + max_surge).to_string());
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(rs_name.to_string()),
            namespace: d.metadata.namespace.clone(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference("apps/v1", "Deployment", &d.metadata)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

fn plan_rolling(d: &Deployment, owned: &mut [ReplicaSet], new_i: usize, desired: i32, surge: i32) {
    let all_current: i32 = owned.iter().map(rs_replicas).sum();
    let new_current = rs_replicas(&owned[new_i]);
    let target = new_rs_replicas_rolling(desired, surge, new_current, all_current);
    set_replicas(&mut owned[new_i], target);

    let (_, new_available) = {
        let (_, ready, available) = rs_status(&owned[new_i]);
        (ready, available)
    };
    let old_indices: Vec<usize> = (0..owned.len()).filter(|i| *i != new_i).collect();
    let mut olds: Vec<(i32, i32)> = old_indices
        .iter()
        .map(|i| (rs_replicas(&owned[*i]), rs_status(&owned[*i]).2))
        .collect();
    scale_down_old(
        desired,
        max_unavailable(d),
        target,
        new_available,
        &mut olds,
    );
    for (i, (replicas, _)) in old_indices.iter().zip(olds) {
        set_replicas(&mut owned[*i], replicas);
    }
}

/// The share of a scaling event one ReplicaSet gets: its size scaled by the ratio of the new
/// `replicas + maxSurge` to the one recorded in its `max-replicas` annotation, rounded, within
/// what is left to distribute.
fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32, max_surge: i32) -> i32 {
    let replicas = rs_replicas(rs);
    if replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let desired = desired_replicas(d);
    let fraction = if desired == 0 {
        -replicas
    } else {
        let max_now = desired + max_surge;
        let max_before = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MAX_REPLICAS))
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|v| *v != 0)
            .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
        if max_before == 0 {
            0
        } else {
            let scaled = f64::from(replicas) * f64::from(max_now) / f64::from(max_before);
            // Rounded half away from zero, as the real controller rounds.
            scaled.round() as i32 - replicas
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// A scaling event (or a paused Deployment): one active ReplicaSet takes the new size; a
/// saturated new ReplicaSet ends the old ones; otherwise the difference is spread proportionally
/// over the active ReplicaSets, leftovers to the largest.
fn plan_scale(
    d: &Deployment,
    owned: &mut [ReplicaSet],
    new_index: Option<usize>,
    desired: i32,
    max_surge: i32,
) {
    let active: Vec<usize> = (0..owned.len())
        .filter(|i| rs_replicas(&owned[*i]) > 0)
        .collect();
    let single = match active.len() {
        0 => new_index.or_else(|| owned.len().checked_sub(1)),
        1 => Some(active[0]),
        _ => None,
    };
    // Every ReplicaSet the scaling considers records the Deployment size it was scaled for, so
    // the event is over once handled.
    let annotate = |rs: &mut ReplicaSet| {
        let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), (desired + max_surge).to_string());
    };
    if let Some(i) = single {
        set_replicas(&mut owned[i], desired);
        annotate(&mut owned[i]);
        return;
    }
    if let Some(n) = new_index {
        let rs = &owned[n];
        let annotated = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESIRED_REPLICAS))
            .and_then(|v| v.parse::<i32>().ok());
        let saturated =
            annotated == Some(desired) && rs_replicas(rs) == desired && rs_status(rs).2 == desired;
        if saturated {
            for i in active.iter().filter(|i| **i != n) {
                set_replicas(&mut owned[*i], 0);
                annotate(&mut owned[*i]);
            }
            return;
        }
    }
    if is_recreate(d) {
        return;
    }
    let total: i32 = active.iter().map(|i| rs_replicas(&owned[*i])).sum();
    let allowed = if desired > 0 { desired + max_surge } else { 0 };
    let to_add = allowed - total;
    let mut order = active.clone();
    order.sort_by_key(|i| {
        let created = creation_key(&owned[*i]);
        let newer_first = if to_add > 0 {
            std::cmp::Reverse(created.0)
        } else {
            std::cmp::Reverse(-created.0)
        };
        (std::cmp::Reverse(rs_replicas(&owned[*i])), newer_first)
    });
    let mut added = 0;
    let mut sizes: Vec<(usize, i32)> = Vec::new();
    for i in &order {
        let share = proportion(&owned[*i], d, to_add, added, max_surge);
        added += share;
        sizes.push((*i, rs_replicas(&owned[*i]) + share));
    }
    if let Some(first) = sizes.first_mut()
        && to_add != 0
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    for (i, size) in sizes {
        set_replicas(&mut owned[i], size);
        annotate(&mut owned[i]);
    }
}

fn plan_recreate(owned: &mut [ReplicaSet], new_i: usize, desired: i32, pods: &[Pod]) {
    let mut old_active = false;
    for (i, rs) in owned.iter_mut().enumerate() {
        if i != new_i && rs_replicas(rs) > 0 {
            set_replicas(rs, 0);
            old_active = true;
        }
    }
    if old_active {
        return;
    }
    let old_uids: Vec<&str> = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != new_i)
        .filter_map(|(_, rs)| rs.metadata.uid.as_deref())
        .collect();
    let old_pods_running = pods.iter().any(|p| {
        !pod_state::is_finished(p)
            && old_uids
                .iter()
                .any(|uid| is_controlled_by(&p.metadata, uid))
    });
    if !old_pods_running {
        set_replicas(&mut owned[new_i], desired);
    }
}

/// `kubectl rollout status`'s notion of done, as the controller computes it.
fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = desired_replicas(d);
    status.updated_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

fn condition(status: &DeploymentStatus, type_: &str) -> Option<DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Sets a condition the way the real controller does: nothing changes when status and reason
/// are the same; the transition time is kept when only the reason changes.
fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(existing) = conditions.iter().find(|c| c.type_ == cond.type_) {
        if existing.status == cond.status && existing.reason == cond.reason {
            return;
        }
        if existing.status == cond.status {
            cond.last_transition_time = existing.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != cond.type_);
    conditions.push(cond);
}

fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn compute_status(
    d: &Deployment,
    owned: &[ReplicaSet],
    new_index: Option<usize>,
    created: Option<&str>,
    now: Timestamp,
    plan: &mut Plan,
) -> DeploymentStatus {
    let desired = desired_replicas(d);
    let old = d.status.clone().unwrap_or_default();
    let sum = |f: fn(&ReplicaSet) -> i32| owned.iter().map(f).sum::<i32>();
    let actual = sum(|rs| rs_status(rs).0);
    let ready = sum(|rs| rs_status(rs).1);
    let available = sum(|rs| rs_status(rs).2);
    let total_spec = sum(rs_replicas);
    let updated = new_index.map(|i| rs_status(&owned[i]).0).unwrap_or(0);
    let new_name = new_index
        .and_then(|i| owned[i].metadata.name.clone())
        .unwrap_or_default();

    let non_zero = |n: i32| (n != 0).then_some(n);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: non_zero(actual),
        updated_replicas: non_zero(updated),
        ready_replicas: non_zero(ready),
        available_replicas: non_zero(available),
        unavailable_replicas: non_zero((total_spec - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };

    // Available.
    if available >= desired - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }

    // A refused pod creation of the new ReplicaSet shows on the Deployment too.
    let failure = new_index.and_then(|i| {
        owned[i]
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
            .cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut status,
            DeploymentCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: f.reason.clone(),
                message: f.message.clone(),
                last_update_time: Some(Time(now)),
                last_transition_time: f.last_transition_time.clone().or(Some(Time(now))),
            },
        ),
        None => {
            if let Some(c) = status.conditions.as_mut() {
                c.retain(|c| c.type_ != "ReplicaFailure");
            }
        }
    }

    let spec = d.spec.as_ref();
    let deadline = spec.and_then(|s| s.progress_deadline_seconds);
    let has_deadline = deadline.is_some_and(|s| s != i32::MAX);
    if spec.and_then(|s| s.paused) == Some(true) {
        set_condition(
            &mut status,
            new_condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
            ),
        );
        return status;
    }
    if let Some(rs_name) = created {
        set_condition(
            &mut status,
            new_condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{rs_name}\""),
                now,
            ),
        );
    } else if new_index.is_some() && condition(&status, "Progressing").is_none() {
        set_condition(
            &mut status,
            new_condition(
                "Progressing",
                "True",
                "FoundNewReplicaSet",
                format!("Found new replica set \"{new_name}\""),
                now,
            ),
        );
    }
    if !has_deadline {
        if let Some(c) = status.conditions.as_mut() {
            c.retain(|c| c.type_ != "Progressing");
        }
        return status;
    }
    let current = condition(&status, "Progressing");
    let already_complete = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
    if already_complete || new_index.is_none() {
        return status;
    }
    let old_old_replicas = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old_replicas = actual - updated;
    let progressing = updated > old.updated_replicas.unwrap_or(0)
        || new_old_replicas < old_old_replicas
        || ready > old.ready_replicas.unwrap_or(0)
        || available > old.available_replicas.unwrap_or(0);
    if deployment_complete(d, &status) {
        set_condition(
            &mut status,
            new_condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                now,
            ),
        );
    } else if progressing {
        let mut cond = new_condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
            now,
        );
        // Progress refreshes the update time (the deadline clock) but not the transition time.
        if let Some(existing) = &current
            && existing.status == "True"
        {
            cond.last_transition_time = existing.last_transition_time.clone();
        }
        if let Some(c) = status.conditions.as_mut() {
            c.retain(|c| c.type_ != "Progressing");
        }
        status.conditions.get_or_insert_with(Vec::new).push(cond);
    } else if let Some(current) = &current {
        let seconds = i64::from(deadline.unwrap_or(600));
        let from = current
            .last_update_time
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or_else(|| now.as_second());
        if current.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            // Already timed out; stays so until progress is made.
        } else if from + seconds < now.as_second() {
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                    now,
                ),
            );
        } else {
            let wait = from + seconds + 1 - now.as_second();
            plan.requeue(Duration::from_secs(u64::try_from(wait.max(1)).unwrap_or(1)));
        }
    }
    status
}

fn cleanup_old(
    d: &Deployment,
    owned: &[ReplicaSet],
    new_index: Option<usize>,
    namespace: &str,
) -> Vec<Action> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0);
    let mut cleanable: Vec<&ReplicaSet> = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_index)
        .map(|(_, rs)| rs)
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = cleanable
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    if excess == 0 {
        return Vec::new();
    }
    cleanable.sort_by_key(|rs| (revision_of(&rs.metadata), creation_key(rs)));
    cleanable
        .into_iter()
        .take(excess)
        .filter(|rs| rs_replicas(rs) == 0 && rs_status(rs).0 == 0)
        .map(|rs| Action::Delete {
            kind: Kind::ReplicaSet,
            namespace: namespace.to_string(),
            name: rs.metadata.name.clone().unwrap_or_default(),
            uid: rs.metadata.uid.clone(),
            grace_period_zero: false,
        })
        .collect()
}
