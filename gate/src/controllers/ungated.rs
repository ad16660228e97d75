//! Reports pods that escaped the gate: a pod of an annotated workload in a Keptn-enabled
//! namespace that carries neither the scheduling gate nor the removed-marker was admitted
//! without the webhook (it was down with `failurePolicy: Ignore`) and runs with no
//! pre-deployment checks. One Warning Event per pod and process, and a counter.
//!
//! The pod cache of the release controller drops what ungated pods carry, so this reporter
//! reads its own pod watch (nothing stored) and asks for a namespace's enablement once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use super::Context;
use lifecycle::events::{Note, NoteTarget};
use shared::gate::{GATE, is_gated, is_marked_removed};

/// Namespace enablement key (A4), as annotation or label.
const ENABLED: &str = "keptn.sh/lifecycle-toolkit";

/// What the decision reads of a pod.
#[derive(Debug, Default)]
pub struct PodFacts<'a> {
    pub annotations: Option<&'a BTreeMap<String, String>>,
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// Names of the pod's scheduling gates.
    pub gates: Vec<&'a str>,
    /// Kinds of the pod's owners.
    pub owner_kinds: Vec<&'a str>,
    pub terminating: bool,
}

/// Whether a namespace is Keptn-enabled (A4: annotation or label `keptn.sh/lifecycle-toolkit:
/// enabled`).
pub fn namespace_enabled(ns: &Namespace) -> bool {
    let is = |m: Option<&BTreeMap<String, String>>| {
        m.and_then(|m| m.get(ENABLED))
            .is_some_and(|v| v == "enabled")
    };
    is(ns.metadata.annotations.as_ref()) || is(ns.metadata.labels.as_ref())
}

/// The pure decision: a pod of an enabled, annotated workload (`keptn.sh/workload` or
/// `app.kubernetes.io/name`, as annotation or label) without our gate and without the
/// removed-marker is to be reported. Task pods (owned by a Job), mirror pods and terminating pods
/// are not.
pub fn should_report(namespace_enabled: bool, pod: &PodFacts<'_>) -> bool {
    let has = |key: &str| {
        pod.annotations.is_some_and(|a| a.contains_key(key))
            || pod.labels.is_some_and(|l| l.contains_key(key))
    };
    let annotated = has("keptn.sh/workload") || has("app.kubernetes.io/name");
    // Mirror pods are never gated (A8).
    let mirror = pod
        .annotations
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    // The webhook's own reading of the marker: it skips such pods on purpose.
    let marked = is_marked_removed(pod.annotations, pod.labels);
    namespace_enabled
        && annotated
        && !marked
        && !mirror
        && !is_gated(pod.gates.iter().copied())
        && !pod.owner_kinds.contains(&"Job")
        && !pod.terminating
}

fn facts(pod: &Pod) -> PodFacts<'_> {
    PodFacts {
        annotations: pod.metadata.annotations.as_ref(),
        labels: pod.metadata.labels.as_ref(),
        gates: pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .map(|g| g.iter().map(|g| g.name.as_str()).collect())
            .unwrap_or_default(),
        owner_kinds: pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.kind.as_str())
            .collect(),
        terminating: pod.metadata.deletion_timestamp.is_some(),
    }
}

/// Watches pods and reports every ungated pod of an enabled, annotated workload once.
pub(super) async fn reporter(ctx: Arc<Context>) {
    ctx.synced().await;
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let mut enabled: HashMap<String, bool> = HashMap::new();
    let mut reported: HashSet<String> = HashSet::new();
    let mut stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            Ok(watcher::Event::Delete(p)) => {
                reported.remove(&p.uid().unwrap_or_default());
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "ungated-pod watch");
                continue;
            }
        };
        let ns = pod.namespace().unwrap_or_default();
        let uid = pod.uid().unwrap_or_default();
        if reported.contains(&uid) || !should_report(true, &facts(&pod)) {
            continue;
        }
        let on = match enabled.get(&ns) {
            Some(on) => *on,
            None => match namespaces.get_opt(&ns).await {
                Ok(found) => {
                    let on = found.as_ref().is_some_and(namespace_enabled);
                    enabled.insert(ns.clone(), on);
                    on
                }
                Err(e) => {
                    tracing::debug!(error = %e, namespace = %ns, "namespace lookup");
                    false
                }
            },
        };
        if !on {
            continue;
        }
        reported.insert(uid);
        ctx.observability.metrics.ungated_pods.inc();
        tracing::warn!(namespace = %ns, pod = %pod.name_any(), "pod of an enabled workload runs without the scheduling gate");
        let note = Note {
            warning: true,
            reason: "SchedulingGateMissing".into(),
            message: format!(
                "pod of an annotated workload in a Keptn-enabled namespace was admitted without {GATE} (the webhook was unavailable with failurePolicy Ignore?); it runs without pre-deployment checks / Namespace: {ns}, Name: {}",
                pod.name_any()
            ),
            target: NoteTarget::Subject,
            phase: "SchedulingGate".into(),
        };
        ctx.publish(
            &ctx.observability.recorders.gate,
            &note,
            pod.object_ref(&()),
            BTreeMap::new(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::gate::REMOVED_MARKER as REMOVED;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ungated_unmarked_pod_of_an_enabled_annotated_workload_is_reported() {
        let a = map(&[("keptn.sh/workload", "shop"), ("keptn.sh/version", "1")]);
        let pod = PodFacts {
            annotations: Some(&a),
            owner_kinds: vec!["ReplicaSet"],
            ..Default::default()
        };
        assert!(should_report(true, &pod));
        assert!(!should_report(false, &pod), "namespace not enabled");
    }

    #[test]
    fn gated_marked_unannotated_task_and_terminating_pods_are_not() {
        let a = map(&[("keptn.sh/workload", "shop")]);
        let gated = PodFacts {
            annotations: Some(&a),
            gates: vec![GATE],
            ..Default::default()
        };
        assert!(!should_report(true, &gated), "still gated");
        let m = map(&[("keptn.sh/workload", "shop"), (REMOVED, "true")]);
        let released = PodFacts {
            annotations: Some(&m),
            ..Default::default()
        };
        assert!(!should_report(true, &released), "released by the gate");
        let plain = map(&[("other", "x")]);
        let unannotated = PodFacts {
            annotations: Some(&plain),
            ..Default::default()
        };
        assert!(!should_report(true, &unannotated), "not a Keptn workload");
        let l = map(&[("app.kubernetes.io/name", "shop")]);
        let by_label = PodFacts {
            labels: Some(&l),
            ..Default::default()
        };
        assert!(should_report(true, &by_label), "recommended label counts");
        let task = PodFacts {
            labels: Some(&l),
            owner_kinds: vec!["Job"],
            ..Default::default()
        };
        assert!(!should_report(true, &task), "task pods are not workloads");
        let going = PodFacts {
            labels: Some(&l),
            terminating: true,
            ..Default::default()
        };
        assert!(!should_report(true, &going));
        let mirror = map(&[
            ("keptn.sh/workload", "s"),
            ("kubernetes.io/config.mirror", "x"),
        ]);
        let static_pod = PodFacts {
            annotations: Some(&mirror),
            ..Default::default()
        };
        assert!(
            !should_report(true, &static_pod),
            "mirror pods are never gated"
        );
    }

    #[test]
    fn enablement_by_annotation_or_label() {
        let ns = |annotations: Option<BTreeMap<String, String>>,
                  labels: Option<BTreeMap<String, String>>| Namespace {
            metadata: kube::api::ObjectMeta {
                annotations,
                labels,
                ..Default::default()
            },
            ..Default::default()
        };
        let on = map(&[(ENABLED, "enabled")]);
        assert!(namespace_enabled(&ns(Some(on.clone()), None)));
        assert!(namespace_enabled(&ns(None, Some(on))));
        assert!(!namespace_enabled(&ns(
            Some(map(&[(ENABLED, "disabled")])),
            None
        )));
        assert!(!namespace_enabled(&ns(None, None)));
    }
}
