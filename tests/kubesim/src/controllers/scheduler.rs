//! The scheduler's decisions: bind pending pods of `default-scheduler` whose
//! `spec.schedulingGates` is empty to a fitting node (spreading by pod count), and mark gated or
//! unschedulable pods with the `PodScheduled=False` condition the real scheduler writes.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::actions::{Action, Kind, Plan};
use super::events::{self, Reporter};
use super::placement::{affinity_matches, node_ready, node_unschedulable, taints_tolerated};
use super::pod_state;

/// Scheduler name pods get by default.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Message of the `SchedulingGated` condition.
pub const GATED_MESSAGE: &str = "Scheduling is blocked due to non-empty scheduling gates";

fn is_gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

fn wants_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.node_name.as_deref().unwrap_or_default().is_empty()
        && spec.scheduler_name.as_deref().unwrap_or(DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        && !pod_state::is_terminating(pod)
        && !pod_state::is_finished(pod)
}

/// Why a node does not fit a pod, in the words of the real scheduler's summary.
fn misfit(pod: &Pod, node: &Node) -> Option<&'static str> {
    let spec = pod.spec.clone().unwrap_or_default();
    if !affinity_matches(&spec, node) {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    if node_unschedulable(node) {
        return Some("node(s) were unschedulable");
    }
    if !node_ready(node) {
        return Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }");
    }
    if !taints_tolerated(node, spec.tolerations.as_deref().unwrap_or_default()) {
        return Some("node(s) had untolerated taint(s)");
    }
    None
}

/// The `PodScheduled=False` condition list for a pod, or `None` when it already says so.
fn unscheduled_conditions(
    pod: &Pod,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Option<Vec<PodCondition>> {
    let mut conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if let Some(existing) = conditions.iter().find(|c| c.type_ == "PodScheduled")
        && existing.status == "False"
        && existing.reason.as_deref() == Some(reason)
        && existing.message.as_deref() == Some(message)
    {
        return None;
    }
    conditions.retain(|c| c.type_ != "PodScheduled");
    conditions.push(PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: None,
        last_transition_time: Some(Time(now)),
        observed_generation: None,
    });
    Some(conditions)
}

/// Plans one scheduling round over all pods and nodes.
pub fn plan_scheduling(pods: &[Pod], nodes: &[Node], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let mut load: BTreeMap<String, usize> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .map(|n| (n, 0))
        .collect();
    for pod in pods.iter().filter(|p| !pod_state::is_finished(p)) {
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_ref())
            && let Some(count) = load.get_mut(node)
        {
            *count += 1;
        }
    }
    let mut pending: Vec<&Pod> = pods.iter().filter(|p| wants_scheduling(p)).collect();
    pending.sort_by_key(|p| {
        (
            p.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            p.metadata.namespace.clone(),
            p.metadata.name.clone(),
        )
    });
    for pod in pending {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status_patch = |conditions: Vec<PodCondition>| Action::PatchStatus {
            kind: Kind::Pod,
            namespace: namespace.clone(),
            name: name.clone(),
            patch: json!({ "status": { "conditions": conditions } }),
        };
        if is_gated(pod) {
            if let Some(conditions) =
                unscheduled_conditions(pod, "SchedulingGated", GATED_MESSAGE, now)
            {
                plan.actions.push(status_patch(conditions));
            }
            continue;
        }
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        let mut best: Option<(&str, usize)> = None;
        for node in nodes {
            let Some(node_name) = node.metadata.name.as_deref() else {
                continue;
            };
            if let Some(reason) = misfit(pod, node) {
                *reasons.entry(reason).or_default() += 1;
                continue;
            }
            let count = load.get(node_name).copied().unwrap_or(0);
            if best.is_none_or(|(_, c)| count < c) {
                best = Some((node_name, count));
            }
        }
        match best {
            Some((node_name, _)) => {
                *load.entry(node_name.to_string()).or_default() += 1;
                plan.actions.push(Action::Bind {
                    namespace: namespace.clone(),
                    pod: name.clone(),
                    uid: pod.metadata.uid.clone(),
                    node: node_name.to_string(),
                });
            }
            None => {
                let total = nodes.len();
                let detail: Vec<String> = reasons
                    .iter()
                    .map(|(reason, count)| format!("{count} {reason}"))
                    .collect();
                let message = if detail.is_empty() {
                    format!("0/{total} nodes are available: no nodes available to schedule pods.")
                } else {
                    format!(
                        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
                        detail.join(", ")
                    )
                };
                if let Some(conditions) =
                    unscheduled_conditions(pod, "Unschedulable", &message, now)
                {
                    plan.actions.push(status_patch(conditions));
                    plan.actions.push(Action::Event(Box::new(events::event(
                        events::reference("v1", "Pod", &pod.metadata),
                        Reporter::Scheduler,
                        None,
                        true,
                        "FailedScheduling",
                        message.clone(),
                        now,
                    ))));
                }
            }
        }
    }
    plan
}
