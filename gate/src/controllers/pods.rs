//! Gate release (A11–A13) and the stale-gate sweeper (A14).
//!
//! Only pods labelled [`GATED_LABEL`] are watched (a server-side selector: what Portcullis holds,
//! not every pod of the cluster, issue 18); pods gated without it are labelled first by
//! [`super::ungated`]. They are cached as [`GatedPod`]: metadata and scheduling gates only, and
//! for pods without our gate not even that, so that 10,000 gated pods stay cheap.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use shared::crd::{KeptnAppVersion, KeptnState, KeptnWorkloadVersion};
use shared::resolve::{ObjectMetaView, ResourceNames};

use super::{Context, key, serve};
use crate::error::Error;
use crate::observability::metrics::AgeLabels;
use lifecycle::events::{Note, NoteTarget};
use lifecycle::planner::find_app_version;
use lifecycle::release::{
    AGE_BUCKETS, Decision, PodGates, age_bucket, decide, is_stale, release_operations,
};
use operator::api::ApiError;
use operator::api::timed;
use shared::gate::{GATE, GATED_LABEL, GATED_VALUE, is_gated};

/// A pod as the gate controller caches it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct GatedPod {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: GatedPodSpec,
    /// KWV name from the stamped identity (A8), computed once when cached.
    #[serde(skip)]
    pub workload_version: Option<String>,
    /// KeptnApp name from the stamp.
    #[serde(skip)]
    pub app: Option<String>,
}

/// The part of a pod spec the gate reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatedPodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_gates: Option<Vec<GateName>>,
}

/// A scheduling gate.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct GateName {
    pub name: String,
}

impl Resource for GatedPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl GatedPod {
    /// Whether the pod still carries our gate.
    pub fn gated(&self) -> bool {
        is_gated(self.gates())
    }

    /// What the release patch is built from.
    fn pod_gates(&self) -> PodGates {
        PodGates::new(
            self.gates(),
            self.metadata.annotations.as_ref(),
            self.metadata.labels.as_ref(),
        )
    }

    fn gates(&self) -> Vec<String> {
        self.spec
            .scheduling_gates
            .iter()
            .flatten()
            .map(|g| g.name.clone())
            .collect()
    }

    /// Keeps only what release needs; a pod without our gate never gets it back (gates can
    /// only be removed after creation), so it keeps its identity and nothing else.
    pub fn slim(pod: &mut GatedPod) {
        let meta = &mut pod.metadata;
        meta.managed_fields = None;
        // The release patch removes the gated label only when present.
        if let Some(l) = meta.labels.as_mut() {
            l.retain(|k, _| k == GATED_LABEL);
        }
        if !pod
            .spec
            .scheduling_gates
            .iter()
            .flatten()
            .any(|g| g.name == GATE)
        {
            meta.annotations = None;
            meta.owner_references = None;
            pod.spec.scheduling_gates = None;
            return;
        }
        if let Some(a) = meta.annotations.as_mut() {
            a.retain(|k, _| k.starts_with("keptn.sh/"));
        }
        let view = ObjectMetaView {
            labels: BTreeMap::new(),
            annotations: meta.annotations.clone().unwrap_or_default(),
        };
        if let Ok(Some(names)) = ResourceNames::from_stamp(&view) {
            pod.workload_version = Some(names.workload_version_name);
            pod.app = Some(names.app_name);
        }
    }
}

/// The KWV a gated pod belongs to: from the stamp, else (a pod gated by something that did not
/// stamp it) the KWV whose resourceReference uid is the pod's first owner, as Keptn does.
fn workload_version_of(ctx: &Context, pod: &GatedPod) -> Option<Arc<KeptnWorkloadVersion>> {
    let ns = pod.namespace()?;
    if let Some(name) = &pod.workload_version {
        return ctx.caches.kwv.get(&key(name, &ns));
    }
    let owner = pod.metadata.owner_references.as_ref()?.first()?.uid.clone();
    ctx.caches.kwv.find(|k| {
        k.metadata.namespace.as_deref() == Some(&ns)
            && k.spec.workload.resource_reference.uid == owner
    })
}

/// The KAV a waiting KWV waits for (to tell pods why they are held when the app failed).
fn app_version_of(ctx: &Context, kwv: &KeptnWorkloadVersion) -> Option<Arc<KeptnAppVersion>> {
    let waiting = kwv
        .status
        .as_ref()
        .is_none_or(|s| s.current_phase.is_empty());
    if !waiting {
        return None;
    }
    let ns = kwv.metadata.namespace.clone();
    let kavs = ctx.caches.kav.state_filter(|k| k.metadata.namespace == ns);
    find_app_version(&kwv.spec, kavs.iter().map(|k| k.as_ref()))
        .cloned()
        .map(Arc::new)
}

/// Gated pods; woken by their KWV (and, for app-level failures, their app's KAV).
pub(super) async fn gate(
    ctx: Arc<Context>,
    pods: impl Stream<Item = Arc<GatedPod>> + Send + 'static,
    kwvs: impl Stream<Item = Arc<KeptnWorkloadVersion>> + Send + 'static,
    kavs: impl Stream<Item = Arc<KeptnAppVersion>> + Send + 'static,
) {
    let (s1, s2) = (ctx.caches.pods.clone(), ctx.caches.pods.clone());
    // Only gated pods are this controller's business: the others are neither reconciled nor
    // counted.
    let gated = pods.filter(|p| futures::future::ready(p.gated()));
    let controller = Controller::for_shared_stream(gated, ctx.caches.pods.clone())
        .watches_shared_stream(kwvs, move |kwv: Arc<KeptnWorkloadVersion>| {
            // Only a decision other than "wait" concerns the pods (the config may make Warning
            // count; it is a cheap check, so be generous: blocking=false).
            if matches!(decide(Some(&kwv), None, false), Decision::Wait(_)) {
                return Vec::new();
            }
            let ns = kwv.namespace();
            let name = kwv.name_any();
            let uid = kwv.spec.workload.resource_reference.uid.clone();
            s1.state_filter(|p| {
                p.metadata.namespace == ns
                    && p.gated()
                    && match &p.workload_version {
                        Some(n) => *n == name,
                        None => p
                            .metadata
                            .owner_references
                            .as_ref()
                            .and_then(|o| o.first())
                            .is_some_and(|o| o.uid == uid),
                    }
            })
            .iter()
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect::<Vec<_>>()
        })
        .watches_shared_stream(kavs, move |kav: Arc<KeptnAppVersion>| {
            let failed = kav.status.as_ref().is_some_and(|s| {
                s.pre_deployment_status == KeptnState::Failed
                    || s.pre_deployment_evaluation_status == KeptnState::Failed
            });
            if !failed {
                return Vec::new();
            }
            let ns = kav.namespace();
            s2.state_filter(|p| {
                p.metadata.namespace == ns
                    && p.gated()
                    && p.app.as_deref() == Some(&kav.spec.app_name)
            })
            .iter()
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect::<Vec<_>>()
        });
    serve("schedulinggate", controller, reconcile_pod, ctx).await;
}

async fn reconcile_pod(pod: Arc<GatedPod>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !pod.gated() {
        return Ok(Action::await_change());
    }
    let started = tokio::time::Instant::now();
    let kwv = workload_version_of(&ctx, &pod);
    let kav = kwv.as_deref().and_then(|k| app_version_of(&ctx, k));
    let blocking = ctx.config().block_deployment;
    match decide(kwv.as_deref(), kav.as_deref(), blocking) {
        Decision::Wait(why) => {
            tracing::trace!(pod = %pod.name_any(), why, "gate stays");
            Ok(Action::await_change())
        }
        Decision::Hold { reason, message } => {
            let uid = pod.uid().unwrap_or_default();
            let first = ctx
                .held
                .lock()
                .map(|mut h| h.insert((uid, reason.clone())))
                .unwrap_or(true);
            if first {
                let note = Note {
                    warning: true,
                    phase: reason.trim_end_matches("Failed").to_owned(),
                    reason,
                    message,
                    target: NoteTarget::Subject,
                };
                ctx.publish(
                    &ctx.observability.recorders.gate,
                    &note,
                    pod.object_ref(&()),
                    BTreeMap::new(),
                );
            }
            Ok(Action::await_change())
        }
        Decision::Release => {
            release(&ctx, &pod).await?;
            ctx.observability.metrics.releases.inc();
            ctx.observability
                .metrics
                .release_duration
                .observe(started.elapsed().as_secs_f64());
            Ok(Action::await_change())
        }
    }
}

/// A13: one JSON Patch removing our gate at its index and the gated label (so the pod leaves the
/// watch); a failed `test` (someone changed the gates meanwhile) re-reads the pod and retries; a
/// pod that is gone or ungated is done.
async fn release(ctx: &Context, pod: &GatedPod) -> Result<(), Error> {
    let ns = pod
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut view = pod.pod_gates();
    for _attempt in 0..3 {
        let Some(patch) = release_operations(&view) else {
            return Ok(());
        };
        match timed(api.patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))).await {
            Ok(_) => {
                tracing::info!(namespace = %ns, pod = %name, "scheduling gate removed");
                ctx.observability
                    .metrics
                    .observe_hold(pod.metadata.creation_timestamp.as_ref(), Timestamp::now());
                return Ok(());
            }
            Err(ApiError::Kube(kube::Error::Api(s))) if s.code == 404 => return Ok(()),
            Err(ApiError::Kube(kube::Error::Api(s))) if s.code == 409 || s.code == 422 => {
                let Some(fresh) = timed(api.get_opt(&name)).await? else {
                    return Ok(());
                };
                view = pod_gates_of(&fresh);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict(format!("pod {ns}/{name}")))
}

/// [`PodGates`] of a full pod.
pub(super) fn pod_gates_of(pod: &Pod) -> PodGates {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .map(|g| g.iter().map(|g| g.name.clone()).collect())
        .unwrap_or_default();
    PodGates::new(
        gates,
        pod.metadata.annotations.as_ref(),
        pod.metadata.labels.as_ref(),
    )
}

/// The server-side selector of the release watch.
pub(super) fn gated_selector() -> String {
    format!("{GATED_LABEL}={GATED_VALUE}")
}

/// A14: periodically sets the gated-pods gauge by age and reports (once per pod and process)
/// pods gated longer than `observabilityTimeout` with no workload version making progress.
/// It never releases anything.
pub(super) async fn sweeper(ctx: Arc<Context>) {
    ctx.synced().await;
    let mut reported: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(ctx.settings.sweep_interval);
    loop {
        tick.tick().await;
        let now = Timestamp::now();
        let timeout = ctx.config().observability_timeout;
        let mut counts: BTreeMap<&'static str, i64> = AGE_BUCKETS.iter().map(|b| (*b, 0)).collect();
        let mut live = HashSet::new();
        for pod in ctx.caches.pods.state().iter().filter(|p| p.gated()) {
            let created = pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(now, |t| t.0);
            let age = Duration::try_from(now.duration_since(created)).unwrap_or_default();
            *counts.entry(age_bucket(age)).or_default() += 1;
            let uid = pod.uid().unwrap_or_default();
            live.insert(uid.clone());
            let kwv = workload_version_of(&ctx, pod);
            if is_stale(age, timeout, kwv.as_deref()) && reported.insert(uid) {
                ctx.observability.metrics.stale_reports.inc();
                let what = match &pod.workload_version {
                    Some(n) if kwv.is_some() => {
                        format!("KeptnWorkloadVersion {n} is not making progress")
                    }
                    Some(n) => format!("KeptnWorkloadVersion {n} does not exist"),
                    None => "the pod carries no Keptn identity".to_owned(),
                };
                let note = Note {
                    warning: true,
                    reason: "SchedulingGateStale".into(),
                    message: format!(
                        "pod gated by {GATE} for {}s, longer than observabilityTimeout ({}s), and {what}; the gate stays / Namespace: {}, Name: {}",
                        age.as_secs(),
                        timeout.as_secs(),
                        pod.namespace().unwrap_or_default(),
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
        reported.retain(|uid| live.contains(uid));
        for (age, n) in counts {
            ctx.observability
                .metrics
                .gated_pods
                .get_or_create(&AgeLabels { age })
                .set(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(gates: &[&str]) -> GatedPod {
        let mut p = GatedPod::default();
        p.metadata.labels = Some(BTreeMap::from([
            ("app".to_owned(), "shop".to_owned()),
            (GATED_LABEL.to_owned(), GATED_VALUE.to_owned()),
        ]));
        p.metadata.annotations = Some(BTreeMap::from([(
            "keptn.sh/workload".to_owned(),
            "shop".to_owned(),
        )]));
        p.spec.scheduling_gates = Some(
            gates
                .iter()
                .map(|g| GateName {
                    name: (*g).to_owned(),
                })
                .collect(),
        );
        p
    }

    #[test]
    fn slim_keeps_the_gated_label_for_the_release_patch() {
        let mut gated = pod(&[GATE]);
        GatedPod::slim(&mut gated);
        let view = gated.pod_gates();
        assert_eq!(view.gated_label.as_deref(), Some(GATED_VALUE));
        assert_eq!(gated.metadata.labels.map(|l| l.len()), Some(1));
        assert!(release_operations(&view).is_some());
        let mut other = pod(&["other.io/gate"]);
        GatedPod::slim(&mut other);
        assert!(!other.gated());
        assert_eq!(other.metadata.annotations, None);
    }
}
