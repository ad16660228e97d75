//! Adopts pods gated without the gated label and reports pods that escaped the gate.
//!
//! Adoption: a pod that carries [`GATE`] but not [`GATED_LABEL`] was gated by Keptn (before a
//! takeover, A24) or by an older Portcullis; the release watch selects the label, so such a pod
//! is labelled here (guarded by the `test` of the gate) and then released as any other.
//!
//! Report: a pod of an annotated workload in a Keptn-enabled namespace that carries neither the
//! gate nor the removed-marker was admitted without the webhook (it was down with
//! `failurePolicy: Ignore`) and runs with no pre-deployment checks. One Warning Event per pod and
//! process, and a counter.
//!
//! Scope (issue 18): a Namespace metadata watch (cost in namespaces) keeps one pod metadata watch
//! per Keptn-enabled namespace, started and stopped as namespaces are enabled, disabled or
//! deleted. Each selects pods without the label, so the pods the release watch holds are not
//! seen twice. Metadata cannot show scheduling gates: a candidate (unlabelled, unmarked pod of an
//! annotated workload) is read once to tell gated from escaped. The initial list of these watches
//! at each leadership start (paged, per enabled namespace) is the adoption pass; afterwards they
//! adopt pods that another webhook still gates.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{AbortHandle, BoxStream, FuturesUnordered, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec};
use kube::api::{ObjectMeta, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use super::pods::pod_gates_of;
use super::{CONFLICT_RETRY, Context, ERROR_RETRY, backoff};
use crate::error::Error;
use lifecycle::events::{Note, NoteTarget};
use lifecycle::release::adoption_operations;
use operator::api::timed;
use shared::enablement::is_enabled;
use shared::gate::{GATE, GATED_LABEL, GATED_VALUE, is_gated, is_marked_removed};

/// What the decisions read of a pod.
#[derive(Debug, Default)]
pub struct PodFacts<'a> {
    pub annotations: Option<&'a BTreeMap<String, String>>,
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// Names of the pod's scheduling gates; empty when only the metadata was read.
    pub gates: Vec<&'a str>,
    /// Kinds of the pod's owners.
    pub owner_kinds: Vec<&'a str>,
    pub terminating: bool,
}

/// The metadata-only decision: a pod of an annotated workload (`keptn.sh/workload` or
/// `app.kubernetes.io/name`, as annotation or label) without the gated label and without the
/// removed-marker is gated by someone else or escaped the gate; its spec tells which. Task pods
/// (owned by a Job), mirror pods and terminating pods are neither.
pub fn is_candidate(pod: &PodFacts<'_>) -> bool {
    let has = |key: &str| {
        pod.annotations.is_some_and(|a| a.contains_key(key))
            || pod.labels.is_some_and(|l| l.contains_key(key))
    };
    let annotated = has("keptn.sh/workload") || has("app.kubernetes.io/name");
    let labelled = pod
        .labels
        .is_some_and(|l| l.get(GATED_LABEL).is_some_and(|v| v == GATED_VALUE));
    // Mirror pods are never gated (A8).
    let mirror = pod
        .annotations
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    // The webhook's own reading of the marker: it skips such pods on purpose.
    let marked = is_marked_removed(pod.annotations, pod.labels);
    annotated
        && !labelled
        && !marked
        && !mirror
        && !pod.owner_kinds.contains(&"Job")
        && !pod.terminating
}

/// The pure decision on a pod of an enabled namespace, read in full: a candidate without our
/// gate is to be reported (one with it is adopted, not reported).
pub fn should_report(pod: &PodFacts<'_>) -> bool {
    is_candidate(pod) && !is_gated(pod.gates.iter().copied())
}

fn facts<'a>(meta: &'a ObjectMeta, spec: Option<&'a PodSpec>) -> PodFacts<'a> {
    PodFacts {
        annotations: meta.annotations.as_ref(),
        labels: meta.labels.as_ref(),
        gates: spec
            .and_then(|s| s.scheduling_gates.as_ref())
            .map(|g| g.iter().map(|g| g.name.as_str()).collect())
            .unwrap_or_default(),
        owner_kinds: meta
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.kind.as_str())
            .collect(),
        terminating: meta.deletion_timestamp.is_some(),
    }
}

/// A pod to read, and how many reads of it failed in a row.
#[derive(Clone, Debug)]
struct Candidate {
    namespace: String,
    name: String,
    uid: String,
    failures: u32,
}

/// What reading a candidate found.
enum Found {
    /// Gone, replaced by a pod of the same name, or neither gated nor reportable.
    Nothing,
    /// Gated without the label: labelled now, for the release watch.
    Adopted,
    /// Escaped the gate.
    Escaped(Box<Pod>),
}

/// The pod watches of the enabled namespaces, each stopped by its handle.
#[derive(Default)]
struct Scope {
    watches: HashMap<String, AbortHandle>,
    events: SelectAll<BoxStream<'static, watcher::Result<watcher::Event<PartialObjectMeta<Pod>>>>>,
}

impl Scope {
    fn start(&mut self, ctx: &Context, ns: &str) {
        if self.watches.contains_key(ns) {
            return;
        }
        // Metadata-only requests: `Api` of `PartialObjectMeta`.
        let api: Api<PartialObjectMeta<Pod>> = Api::namespaced(ctx.client.clone(), ns);
        let config = watcher::Config::default().labels(&format!("{GATED_LABEL}!={GATED_VALUE}"));
        let (stream, handle) = futures::stream::abortable(watcher(api, config).default_backoff());
        self.events.push(stream.boxed());
        self.watches.insert(ns.to_owned(), handle);
        tracing::debug!(namespace = %ns, "watching the pods of an enabled namespace");
    }

    fn stop(&mut self, ns: &str, reported: &mut HashMap<String, String>) {
        if let Some(handle) = self.watches.remove(ns) {
            handle.abort();
            reported.retain(|_, n| n != ns);
            tracing::debug!(namespace = %ns, "namespace no longer enabled");
        }
    }
}

/// Adopts every pod gated without the label and reports every ungated pod of an enabled,
/// annotated workload once.
pub(super) async fn reporter(ctx: Arc<Context>) {
    ctx.synced().await;
    let namespaces: Api<PartialObjectMeta<Namespace>> = Api::all(ctx.client.clone());
    let mut namespaces = watcher(namespaces, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut scope = Scope::default();
    // Enabled namespaces seen since the namespace watch (re)started its list.
    let mut listed: HashSet<String> = HashSet::new();
    // Reported pods: uid to namespace.
    let mut reported: HashMap<String, String> = HashMap::new();
    let mut retries: FuturesUnordered<BoxFuture<'static, Candidate>> = FuturesUnordered::new();
    loop {
        let candidate = tokio::select! {
            Some(event) = namespaces.next() => {
                match event {
                    Ok(watcher::Event::Init) => listed.clear(),
                    Ok(watcher::Event::InitApply(ns) | watcher::Event::Apply(ns)) => {
                        let name = ns.name_any();
                        if is_enabled(&ns.metadata) {
                            listed.insert(name.clone());
                            scope.start(&ctx, &name);
                        } else {
                            scope.stop(&name, &mut reported);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        // Namespaces deleted while the watch was down.
                        let gone: Vec<String> = scope
                            .watches
                            .keys()
                            .filter(|n| !listed.contains(*n))
                            .cloned()
                            .collect();
                        for ns in gone {
                            scope.stop(&ns, &mut reported);
                        }
                    }
                    Ok(watcher::Event::Delete(ns)) => scope.stop(&ns.name_any(), &mut reported),
                    Err(e) => tracing::debug!(error = %e, "namespace watch"),
                }
                continue;
            }
            Some(event) = scope.events.next() => {
                let pod = match event {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                    Ok(watcher::Event::Delete(p)) => {
                        // Deleted, or labelled and so left this watch.
                        reported.remove(&p.uid().unwrap_or_default());
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "ungated-pod watch");
                        continue;
                    }
                };
                let uid = pod.uid().unwrap_or_default();
                if reported.contains_key(&uid) || !is_candidate(&facts(&pod.metadata, None)) {
                    continue;
                }
                Candidate {
                    namespace: pod.namespace().unwrap_or_default(),
                    name: pod.name_any(),
                    uid,
                    failures: 0,
                }
            }
            Some(candidate) = retries.next() => {
                if !scope.watches.contains_key(&candidate.namespace) {
                    continue;
                }
                candidate
            }
            else => break,
        };
        match examine(&ctx, &candidate).await {
            Ok(Found::Nothing) => {}
            Ok(Found::Adopted) => tracing::info!(
                namespace = %candidate.namespace,
                pod = %candidate.name,
                "pod gated without the gated label adopted"
            ),
            Ok(Found::Escaped(pod)) => {
                if reported
                    .insert(candidate.uid.clone(), candidate.namespace.clone())
                    .is_none()
                {
                    report(&ctx, &pod);
                }
            }
            Err(e) => {
                // Level-triggered: a gated pod sees no further event, so its read is retried.
                let mut again = candidate;
                again.failures = again.failures.saturating_add(1);
                let base = match e {
                    Error::Conflict(_) => CONFLICT_RETRY,
                    _ => ERROR_RETRY,
                };
                let delay: Duration = backoff(base, again.failures);
                if matches!(e, Error::Conflict(_)) {
                    tracing::debug!(error = %e, namespace = %again.namespace, pod = %again.name, "pod changed while read");
                } else {
                    tracing::warn!(error = %e, namespace = %again.namespace, pod = %again.name, retry_in = ?delay, "reading or adopting a pod without the gated label failed");
                }
                retries.push(
                    async move {
                        tokio::time::sleep(delay).await;
                        again
                    }
                    .boxed(),
                );
            }
        }
    }
}

/// Reads a candidate once: adopts it when gated, returns it when it escaped the gate.
async fn examine(ctx: &Context, c: &Candidate) -> Result<Found, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let Some(pod) = timed(api.get_opt(&c.name)).await? else {
        return Ok(Found::Nothing);
    };
    if pod.uid().as_deref() != Some(c.uid.as_str()) {
        return Ok(Found::Nothing);
    }
    if let Some(patch) = adoption_operations(&pod_gates_of(&pod)) {
        return match timed(api.patch(&c.name, &PatchParams::default(), &Patch::Json::<()>(patch)))
            .await
        {
            Ok(_) => Ok(Found::Adopted),
            Err(e) if e.is_status(404) => Ok(Found::Nothing),
            // The gates changed meanwhile: read again.
            Err(e) if e.is_status(409) || e.is_status(422) => {
                Err(Error::Conflict(format!("pod {}/{}", c.namespace, c.name)))
            }
            Err(e) => Err(e.into()),
        };
    }
    if should_report(&facts(&pod.metadata, pod.spec.as_ref())) {
        return Ok(Found::Escaped(Box::new(pod)));
    }
    Ok(Found::Nothing)
}

fn report(ctx: &Context, pod: &Pod) {
    let ns = pod.namespace().unwrap_or_default();
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
        assert!(is_candidate(&pod));
        assert!(should_report(&pod));
    }

    #[test]
    fn gated_pods_are_candidates_but_only_unlabelled_ones_and_never_reported() {
        let a = map(&[("keptn.sh/workload", "shop")]);
        // Gated by Keptn: the metadata cannot tell, the spec does.
        let keptn = PodFacts {
            annotations: Some(&a),
            gates: vec!["other.io/gate", GATE],
            ..Default::default()
        };
        assert!(is_candidate(&keptn), "read to be adopted");
        assert!(!should_report(&keptn), "adopted, not reported");
        let l = map(&[(GATED_LABEL, GATED_VALUE)]);
        let ours = PodFacts {
            annotations: Some(&a),
            labels: Some(&l),
            ..Default::default()
        };
        assert!(!is_candidate(&ours), "held by the release watch");
        assert!(!should_report(&ours));
    }

    #[test]
    fn gated_marked_unannotated_task_and_terminating_pods_are_not() {
        let a = map(&[("keptn.sh/workload", "shop")]);
        let gated = PodFacts {
            annotations: Some(&a),
            gates: vec![GATE],
            ..Default::default()
        };
        assert!(!should_report(&gated), "still gated");
        let m = map(&[("keptn.sh/workload", "shop"), (REMOVED, "true")]);
        let released = PodFacts {
            annotations: Some(&m),
            ..Default::default()
        };
        assert!(!should_report(&released), "released by the gate");
        let plain = map(&[("other", "x")]);
        let unannotated = PodFacts {
            annotations: Some(&plain),
            ..Default::default()
        };
        assert!(!should_report(&unannotated), "not a Keptn workload");
        let l = map(&[("app.kubernetes.io/name", "shop")]);
        let by_label = PodFacts {
            labels: Some(&l),
            ..Default::default()
        };
        assert!(should_report(&by_label), "recommended label counts");
        let task = PodFacts {
            labels: Some(&l),
            owner_kinds: vec!["Job"],
            ..Default::default()
        };
        assert!(!should_report(&task), "task pods are not workloads");
        let going = PodFacts {
            labels: Some(&l),
            terminating: true,
            ..Default::default()
        };
        assert!(!should_report(&going));
        let mirror = map(&[
            ("keptn.sh/workload", "s"),
            ("kubernetes.io/config.mirror", "x"),
        ]);
        let static_pod = PodFacts {
            annotations: Some(&mirror),
            ..Default::default()
        };
        assert!(!should_report(&static_pod), "mirror pods are never gated");
    }
}
