//! The DaemonSet controller's decisions: one pod per eligible node, pinned to the node through
//! required node affinity on `metadata.name` (the scheduler then binds it there), rolling
//! updates within maxUnavailable, and the status `kubectl rollout status` reads.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};

use super::actions::{Action, Kind, Plan, status_patch_if_changed};
use super::deployment::resolve_int_or_percent;
use super::events::{self, Reporter};
use super::hash::template_hash;
use super::placement::{affinity_matches, taints_tolerated, target_node};
use super::pod_state::{
    self, CONTROLLER_REVISION_HASH, NameChoice, is_controlled_by, owner_reference,
    pod_from_template, set_label,
};

/// Deprecated label with the DaemonSet generation the pod was made from (still set by the real
/// controller).
pub const TEMPLATE_GENERATION: &str = "pod-template-generation";

/// The tolerations the real controller adds to every daemon pod.
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let mut list = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        list.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    list.into_iter()
        .map(|(key, effect)| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Toleration::default()
        })
        .collect()
}

fn with_daemon_tolerations(spec: &mut PodSpec) {
    let extra = daemon_tolerations(spec.host_network == Some(true));
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for t in extra {
        let present = tolerations
            .iter()
            .any(|x| x.key == t.key && x.effect == t.effect && x.operator == t.operator);
        if !present {
            tolerations.push(t);
        }
    }
}

/// Pins a pod spec to a node as the real controller does: the required node affinity becomes a
/// single term with `matchFields metadata.name In [node]`; preferred terms are kept.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
        }],
    });
}

/// Whether a daemon pod of this template belongs on the node.
pub fn should_run_on(ds: &DaemonSet, node: &Node) -> bool {
    let Some(mut spec) = ds.spec.as_ref().and_then(|s| s.template.spec.clone()) else {
        return false;
    };
    if let Some(pinned) = spec.node_name.as_deref()
        && !pinned.is_empty()
        && Some(pinned) != node.metadata.name.as_deref()
    {
        return false;
    }
    with_daemon_tolerations(&mut spec);
    affinity_matches(&spec, node)
        && taints_tolerated(node, spec.tolerations.as_deref().unwrap_or_default())
}

fn pod_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH)
        .map(String::as_str)
}

/// Plans one sync of a DaemonSet from all nodes and the pods of its namespace.
pub fn plan_daemon_set(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let (Some(name), Some(uid), Some(spec)) = (
        ds.metadata.name.as_deref(),
        ds.metadata.uid.as_deref(),
        ds.spec.as_ref(),
    ) else {
        return plan;
    };
    let namespace = ds.metadata.namespace.clone().unwrap_or_default();
    let hash = template_hash(
        &spec.template,
        ds.status.as_ref().and_then(|s| s.collision_count),
    );
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";

    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| is_controlled_by(&p.metadata, uid)) {
        if let Some(node) = target_node(pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    for list in by_node.values_mut() {
        list.sort_by_key(|p| {
            (
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
                    .unwrap_or(0),
                p.metadata.name.clone(),
            )
        });
    }
    let delete = |pod: &Pod| Action::Delete {
        kind: Kind::Pod,
        namespace: namespace.clone(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone(),
        grace_period_zero: false,
    };

    let desired_nodes: Vec<&Node> = nodes.iter().filter(|n| should_run_on(ds, n)).collect();
    let desired_count = i32::try_from(desired_nodes.len()).unwrap_or(i32::MAX);
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        desired_number_scheduled: desired_count,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..DaemonSetStatus::default()
    };
    let mut available = 0;
    let mut updated = 0;
    let mut old_pods: Vec<&Pod> = Vec::new();
    let mut unavailable_nodes = 0;

    for node in nodes {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let on_node = by_node.get(&node_name).cloned().unwrap_or_default();
        let should_run = desired_nodes
            .iter()
            .any(|n| n.metadata.name == node.metadata.name);
        if !should_run {
            if !on_node.is_empty() {
                status.number_misscheduled += 1;
            }
            for pod in on_node.iter().filter(|p| !pod_state::is_terminating(p)) {
                plan.actions.push(delete(pod));
            }
            continue;
        }
        let mut running: Vec<&Pod> = Vec::new();
        for pod in &on_node {
            if pod_state::is_terminating(pod) {
                continue;
            }
            if pod_state::is_finished(pod) {
                // A failed daemon pod is replaced.
                plan.actions.push(delete(pod));
                continue;
            }
            running.push(pod);
        }
        if !on_node.is_empty() {
            status.current_number_scheduled += 1;
            let first = on_node[0];
            if pod_state::is_ready(first) {
                status.number_ready += 1;
                if pod_state::is_available(first, min_ready, now) {
                    available += 1;
                }
            }
            if pod_hash(first) == Some(hash.as_str()) {
                updated += 1;
            }
        }
        let node_available = running
            .first()
            .is_some_and(|p| pod_state::is_available(p, min_ready, now));
        if !node_available {
            unavailable_nodes += 1;
        }
        if running.is_empty() && ds.metadata.deletion_timestamp.is_none() {
            plan.actions
                .push(Action::CreatePod(Box::new(new_pod(ds, &node_name, &hash))));
            continue;
        }
        // More than one daemon pod on a node: keep the oldest.
        for extra in running.iter().skip(1) {
            plan.actions.push(delete(extra));
        }
        if let Some(pod) = running.first()
            && pod_hash(pod) != Some(hash.as_str())
        {
            old_pods.push(pod);
        }
    }

    if rolling && ds.metadata.deletion_timestamp.is_none() {
        let max_unavailable = resolve_int_or_percent(
            spec.update_strategy
                .as_ref()
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.max_unavailable.as_ref()),
            0,
            desired_count,
            true,
        );
        let max_unavailable = if spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref())
            .is_none()
        {
            1
        } else {
            max_unavailable.max(1)
        };
        let mut budget = max_unavailable - unavailable_nodes;
        // Old pods that are not available anyway go first and cost nothing.
        for pod in &old_pods {
            if !pod_state::is_available(pod, min_ready, now) {
                plan.actions.push(delete(pod));
            }
        }
        for pod in &old_pods {
            if pod_state::is_available(pod, min_ready, now) && budget > 0 {
                plan.actions.push(delete(pod));
                budget -= 1;
            }
        }
    }

    events::record_pod_deletions(
        &mut plan.actions,
        events::reference("apps/v1", "DaemonSet", &ds.metadata),
        Reporter::DaemonSet,
        |pod| format!("Deleted pod: {pod}"),
        now,
    );
    status.number_available = (available != 0).then_some(available);
    status.updated_number_scheduled = (updated != 0).then_some(updated);
    let unavailable = desired_count - available;
    status.number_unavailable = (unavailable > 0).then_some(unavailable);
    for pod in by_node.values().flatten() {
        if let Some(at) = pod_state::available_at(pod, min_ready, now) {
            let wait = (at.as_second() - now.as_second()).max(1);
            plan.requeue(std::time::Duration::from_secs(
                u64::try_from(wait).unwrap_or(1),
            ));
        }
    }
    plan.actions.extend(status_patch_if_changed(
        Kind::DaemonSet,
        &namespace,
        name,
        ds.status.as_ref(),
        &status,
    ));
    plan
}

/// Builds the daemon pod for a node.
pub fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let namespace = ds.metadata.namespace.clone().unwrap_or_default();
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = pod_from_template(
        &template,
        &namespace,
        NameChoice::Generate(&name),
        owner_reference("apps/v1", "DaemonSet", &ds.metadata),
    );
    set_label(&mut pod.metadata, CONTROLLER_REVISION_HASH, hash);
    set_label(
        &mut pod.metadata,
        TEMPLATE_GENERATION,
        &ds.metadata.generation.unwrap_or(1).to_string(),
    );
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    pin_to_node(spec, node);
    with_daemon_tolerations(spec);
    pod
}
