//! KeptnAppVersion and KeptnWorkloadVersion controllers: run the pure planners of
//! [`lifecycle::planner`] on cached state and apply their plans.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use futures::stream::BoxStream;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use shared::crd::{
    KeptnAppVersion, KeptnEvaluation, KeptnEvaluationDefinition, KeptnState, KeptnTask,
    KeptnTaskDefinition, KeptnWorkloadVersion, ResourceReference,
};

use super::{Context, key, serve};
use crate::error::Error;
use crate::observability::EventPublisher;
use lifecycle::build::{self, CheckOwner};
use lifecycle::checks::{CreateCheck, ObservedCheck, World, evaluation_failure_lines};
use lifecycle::deploy::{self, Observation};
use lifecycle::events::NoteTarget;
use lifecycle::phase::CheckKind;
use lifecycle::planner::{
    Action as Planned, AppVersionInput, Plan, WorkloadVersionInput, plan_app_version,
    plan_workload_version,
};
use operator::api::{create_if_absent, timed, write_status};

/// The caches seen from one namespace, with the Keptn namespace as definition fallback.
struct CacheWorld<'a> {
    ctx: &'a Context,
    namespace: &'a str,
}

fn controller_uid(meta: &kube::api::ObjectMeta) -> String {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
        .unwrap_or_default()
}

impl CacheWorld<'_> {
    fn task_definition(&self, name: &str) -> Option<Arc<KeptnTaskDefinition>> {
        let c = &self.ctx.caches.task_definitions;
        c.get(&key(name, self.namespace))
            .or_else(|| c.get(&key(name, &self.ctx.settings.keptn_namespace)))
    }

    fn evaluation_definition(&self, name: &str) -> Option<Arc<KeptnEvaluationDefinition>> {
        let c = &self.ctx.caches.evaluation_definitions;
        c.get(&key(name, self.namespace))
            .or_else(|| c.get(&key(name, &self.ctx.settings.keptn_namespace)))
    }
}

impl World for CacheWorld<'_> {
    fn task(&self, name: &str) -> Option<ObservedCheck> {
        let t = self.ctx.caches.tasks.get(&key(name, self.namespace))?;
        Some(ObservedCheck {
            owner_uid: controller_uid(&t.metadata),
            state: t
                .status
                .as_ref()
                .map(|s| s.status.clone())
                .unwrap_or_default(),
            failure_lines: Vec::new(),
        })
    }

    fn evaluation(&self, name: &str) -> Option<ObservedCheck> {
        let e = self
            .ctx
            .caches
            .evaluations
            .get(&key(name, self.namespace))?;
        let status = e.status.clone().unwrap_or_default();
        Some(ObservedCheck {
            owner_uid: controller_uid(&e.metadata),
            state: status.overall_status.clone(),
            failure_lines: evaluation_failure_lines(&status),
        })
    }

    fn has_task_definition(&self, name: &str) -> bool {
        self.task_definition(name).is_some()
    }

    fn has_evaluation_definition(&self, name: &str) -> bool {
        self.evaluation_definition(name).is_some()
    }
}

/// Creates a planned KeptnTask/KeptnEvaluation unless it exists; a name held by another owner
/// is an error (the next plan, with the object cached, picks another name).
async fn create_check(
    ctx: &Context,
    world: &CacheWorld<'_>,
    owner: &CheckOwner,
    create: &CreateCheck,
) -> Result<(), Error> {
    let ns = owner.namespace.as_str();
    match create.kind {
        CheckKind::Task => {
            let Some(def) = world.task_definition(&create.definition) else {
                return Ok(());
            };
            let mut obj = build::task(&create.name, owner, &def, create.check_type);
            if let Some(tp) = &create.traceparent {
                obj.spec
                    .context
                    .metadata
                    .insert(lifecycle::traces::TRACEPARENT.into(), tp.clone());
            }
            let api: Api<KeptnTask> = Api::namespaced(ctx.client.clone(), ns);
            if !create_if_absent(&api, &obj).await? {
                let existing = api.get(&create.name).await?;
                if controller_uid(&existing.metadata) != owner.owner.uid {
                    return Err(Error::NameTaken {
                        kind: "KeptnTask",
                        name: create.name.clone(),
                    });
                }
            }
        }
        CheckKind::Evaluation => {
            let Some(def) = world.evaluation_definition(&create.definition) else {
                return Ok(());
            };
            let obj = build::evaluation(&create.name, owner, &def, create.check_type);
            let api: Api<KeptnEvaluation> = Api::namespaced(ctx.client.clone(), ns);
            if !create_if_absent(&api, &obj).await? {
                let existing = api.get(&create.name).await?;
                if controller_uid(&existing.metadata) != owner.owner.uid {
                    return Err(Error::NameTaken {
                        kind: "KeptnEvaluation",
                        name: create.name.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Applies the creates and events of a plan; returns the first create error.
async fn apply_actions<K, S>(
    ctx: &Context,
    obj: &K,
    plan: &Plan<S>,
    world: &CacheWorld<'_>,
    owner: &CheckOwner,
    recorder: &EventPublisher,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>,
    S: lifecycle::traces::PhaseTraceIds,
{
    let mut first_error = None;
    for create in plan.creates() {
        if let Err(e) = create_check(ctx, world, owner, create).await {
            let (short, what) = match create.kind {
                CheckKind::Task => ("CreateTask", "KeptnTask"),
                CheckKind::Evaluation => ("CreateEvaluation", "KeptnEvaluation"),
            };
            tracing::warn!(error = %e, name = %create.name, "could not create {what}");
            let subject = lifecycle::events::Subject {
                namespace: owner.namespace.clone(),
                name: obj.meta().name.clone().unwrap_or_default(),
                version: String::new(),
            };
            let note = subject.warning(short, "Failed", short, &format!("could not create {what}"));
            ctx.publish(recorder, &note, obj.object_ref(&()), annotations.clone());
            first_error.get_or_insert(e);
        }
    }
    for note in plan.notes() {
        match &note.target {
            NoteTarget::Subject => {
                ctx.publish(recorder, note, obj.object_ref(&()), annotations.clone())
            }
            NoteTarget::Evaluation(name) => {
                if let Some(e) = ctx.caches.evaluations.get(&key(name, &owner.namespace)) {
                    ctx.publish(
                        &ctx.observability.recorders.evaluation,
                        note,
                        e.object_ref(&()),
                        lifecycle::execution::evaluation_event_annotations(&e),
                    );
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn action(requeue: Option<Duration>) -> Action {
    requeue.map_or_else(Action::await_change, Action::requeue)
}

/// Maps a definition change to every unfinished version of its namespace (or of all namespaces
/// when it lives in the Keptn namespace): a missing definition keeps a phase waiting (B §8.12).
fn waiting_in<K, F>(
    store: &kube::runtime::reflector::Store<K>,
    keptn_ns: &str,
    ns: Option<String>,
    unfinished: F,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    F: Fn(&K) -> bool,
{
    let everywhere = ns.as_deref() == Some(keptn_ns);
    store
        .state_filter(|o| (everywhere || o.meta().namespace == ns) && unfinished(o))
        .iter()
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// KeptnAppVersions; woken by their tasks/evaluations, the KWVs of their app, and definitions.
pub(super) async fn app_versions(
    ctx: Arc<Context>,
    kavs: impl Stream<Item = Arc<KeptnAppVersion>> + Send + 'static,
    kwvs: impl Stream<Item = Arc<KeptnWorkloadVersion>> + Send + 'static,
    tasks: impl Stream<Item = Arc<KeptnTask>> + Send + 'static,
    evaluations: impl Stream<Item = Arc<KeptnEvaluation>> + Send + 'static,
    task_defs: impl Stream<Item = Arc<KeptnTaskDefinition>> + Send + 'static,
    eval_defs: impl Stream<Item = Arc<KeptnEvaluationDefinition>> + Send + 'static,
) {
    let store = ctx.caches.kav.clone();
    let keptn_ns = ctx.settings.keptn_namespace.clone();
    let unfinished = |k: &KeptnAppVersion| {
        k.status.as_ref().is_none_or(|s| {
            !matches!(
                s.status,
                KeptnState::Succeeded | KeptnState::Failed | KeptnState::Deprecated
            )
        })
    };
    let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
    let (k1, k2) = (keptn_ns.clone(), keptn_ns);
    let controller = Controller::for_shared_stream(kavs, store)
        .owns_shared_stream(tasks)
        .owns_shared_stream(evaluations)
        .watches_shared_stream(kwvs, move |kwv: Arc<KeptnWorkloadVersion>| {
            let ns = kwv.namespace();
            s1.state_filter(|k| {
                k.metadata.namespace == ns && k.spec.app_name == kwv.spec.workload.app
            })
            .iter()
            .map(|k| ObjectRef::from_obj(k.as_ref()))
            .collect::<Vec<_>>()
        })
        .watches_shared_stream(task_defs, move |d: Arc<KeptnTaskDefinition>| {
            waiting_in(&s2, &k1, d.namespace(), unfinished)
        })
        .watches_shared_stream(eval_defs, move |d: Arc<KeptnEvaluationDefinition>| {
            waiting_in(&s3, &k2, d.namespace(), unfinished)
        });
    serve("keptnappversion", controller, reconcile_app_version, ctx).await;
}

async fn reconcile_app_version(
    kav: Arc<KeptnAppVersion>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let ns = kav
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let config = ctx.config();
    let world = CacheWorld {
        ctx: &ctx,
        namespace: &ns,
    };
    let kwv_cache = &ctx.caches.kwv;
    let kwv_state = |name: &str| {
        kwv_cache
            .get(&key::<KeptnWorkloadVersion>(name, &ns))
            .map(|k| {
                k.status
                    .as_ref()
                    .map(|s| s.status.clone())
                    .unwrap_or_default()
            })
    };
    let mut plan = plan_app_version(
        &kav,
        &AppVersionInput {
            world: &world,
            workload_version: &kwv_state,
            blocking: config.block_deployment,
            promotion_enabled: ctx.settings.promotion_enabled,
            tracing: ctx.observability.traces.active(),
            now: Timestamp::now(),
        },
    );
    let owner_ref = kav
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    let owner = CheckOwner::app(&kav, owner_ref);
    let created = apply_actions(
        &ctx,
        kav.as_ref(),
        &plan,
        &world,
        &owner,
        &ctx.observability.recorders.app_version,
        &lifecycle::events::kav_annotations(&kav),
    )
    .await;
    if kav.status.as_ref() != Some(&plan.status) {
        let api: Api<KeptnAppVersion> = Api::namespaced(ctx.client.clone(), &ns);
        write_status(&api, kav.as_ref(), kav.status.as_ref(), &plan.status).await?;
        ctx.observability
            .traces
            .export(std::mem::take(&mut plan.spans));
        ctx.observability.metrics.lifecycle.app_version_written(
            &kav,
            &plan.status,
            ctx.settings.promotion_enabled,
        );
    }
    created?;
    Ok(action(plan.requeue))
}

/// The trigger streams of the KWV controller.
pub(super) struct WorkloadVersionTriggers {
    pub kwv: BoxStream<'static, Arc<KeptnWorkloadVersion>>,
    pub kav: BoxStream<'static, Arc<KeptnAppVersion>>,
    pub tasks: BoxStream<'static, Arc<KeptnTask>>,
    pub evaluations: BoxStream<'static, Arc<KeptnEvaluation>>,
    pub task_defs: BoxStream<'static, Arc<KeptnTaskDefinition>>,
    pub eval_defs: BoxStream<'static, Arc<KeptnEvaluationDefinition>>,
    pub replicasets: BoxStream<'static, Arc<ReplicaSet>>,
    pub statefulsets: BoxStream<'static, Arc<StatefulSet>>,
    pub daemonsets: BoxStream<'static, Arc<DaemonSet>>,
}

/// KWVs referencing a workload object (kind, namespace, name).
fn referencing(
    store: &kube::runtime::reflector::Store<KeptnWorkloadVersion>,
    kind: &'static str,
    ns: Option<String>,
    name: String,
) -> Vec<ObjectRef<KeptnWorkloadVersion>> {
    store
        .state_filter(|k| {
            k.metadata.namespace == ns
                && k.spec.workload.resource_reference.kind == kind
                && k.spec.workload.resource_reference.name == name
        })
        .iter()
        .map(|k| ObjectRef::from_obj(k.as_ref()))
        .collect()
}

/// KeptnWorkloadVersions; woken by their tasks/evaluations, their app's KAVs, definitions and
/// the status of the ReplicaSet/StatefulSet/DaemonSet they observe.
pub(super) async fn workload_versions(ctx: Arc<Context>, t: WorkloadVersionTriggers) {
    let store = ctx.caches.kwv.clone();
    let keptn_ns = ctx.settings.keptn_namespace.clone();
    let unfinished = |k: &KeptnWorkloadVersion| {
        k.status.as_ref().is_none_or(|s| {
            !matches!(
                s.status,
                KeptnState::Succeeded | KeptnState::Failed | KeptnState::Deprecated
            )
        })
    };
    let (s1, s2, s3, s4, s5, s6) = (
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
    );
    let (k1, k2) = (keptn_ns.clone(), keptn_ns);
    let controller = Controller::for_shared_stream(t.kwv, store)
        .owns_shared_stream(t.tasks)
        .owns_shared_stream(t.evaluations)
        .watches_shared_stream(t.kav, move |kav: Arc<KeptnAppVersion>| {
            let ns = kav.namespace();
            s1.state_filter(|k| {
                k.metadata.namespace == ns && k.spec.workload.app == kav.spec.app_name
            })
            .iter()
            .map(|k| ObjectRef::from_obj(k.as_ref()))
            .collect::<Vec<_>>()
        })
        .watches_shared_stream(t.task_defs, move |d: Arc<KeptnTaskDefinition>| {
            waiting_in(&s2, &k1, d.namespace(), unfinished)
        })
        .watches_shared_stream(t.eval_defs, move |d: Arc<KeptnEvaluationDefinition>| {
            waiting_in(&s3, &k2, d.namespace(), unfinished)
        })
        .watches_shared_stream(t.replicasets, move |o: Arc<ReplicaSet>| {
            referencing(&s4, "ReplicaSet", o.namespace(), o.name_any())
        })
        .watches_shared_stream(t.statefulsets, move |o: Arc<StatefulSet>| {
            referencing(&s5, "StatefulSet", o.namespace(), o.name_any())
        })
        .watches_shared_stream(t.daemonsets, move |o: Arc<DaemonSet>| {
            referencing(&s6, "DaemonSet", o.namespace(), o.name_any())
        });
    serve(
        "keptnworkloadversion",
        controller,
        reconcile_workload_version,
        ctx,
    )
    .await;
}

/// What the deployment phase sees of the referenced object (B §3.9.1), from the caches; an
/// Argo Rollout (no cache, rare) is read directly.
async fn observe(ctx: &Context, ns: &str, r: &ResourceReference) -> Observation {
    let c = &ctx.caches;
    // A namespace's cache starts with the first version that looks into it.
    let syncing = |kind: &str| Observation::Missing(format!("{kind}s of {ns} not listed yet"));
    match r.kind.as_str() {
        "ReplicaSet" => {
            let Some(store) = c.replicasets.store(ns).await else {
                return syncing("ReplicaSet");
            };
            match store.get(&key(&r.name, ns)) {
                None => Observation::Missing(format!("ReplicaSet {ns}/{} not found", r.name)),
                Some(rs) => match deploy::rollout_owner(&rs) {
                    None => Observation::Running(deploy::replicaset_running(&rs)),
                    Some(rollout) => {
                        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout");
                        let api: Api<DynamicObject> = Api::namespaced_with(
                            ctx.client.clone(),
                            ns,
                            &ApiResource::from_gvk(&gvk),
                        );
                        match api.get(&rollout).await {
                            Ok(obj) => Observation::Running(deploy::rollout_running(&obj.data)),
                            Err(e) => Observation::Missing(format!("Rollout {ns}/{rollout}: {e}")),
                        }
                    }
                },
            }
        }
        "StatefulSet" => match c.statefulsets.store(ns).await {
            None => syncing("StatefulSet"),
            Some(store) => store.get(&key(&r.name, ns)).map_or_else(
                || Observation::Missing(format!("StatefulSet {ns}/{} not found", r.name)),
                |s| Observation::Running(deploy::statefulset_running(&s)),
            ),
        },
        "DaemonSet" => match c.daemonsets.store(ns).await {
            None => syncing("DaemonSet"),
            Some(store) => store.get(&key(&r.name, ns)).map_or_else(
                || Observation::Missing(format!("DaemonSet {ns}/{} not found", r.name)),
                |d| Observation::Running(deploy::daemonset_running(&d)),
            ),
        },
        "Deployment" => Observation::Placeholder,
        other => Observation::Unsupported(other.to_owned()),
    }
}

async fn reconcile_workload_version(
    kwv: Arc<KeptnWorkloadVersion>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let ns = kwv
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let config = ctx.config();
    let world = CacheWorld {
        ctx: &ctx,
        namespace: &ns,
    };
    let kavs = ctx
        .caches
        .kav
        .state_filter(|k| k.metadata.namespace.as_deref() == Some(&ns));
    let kav_refs: Vec<&KeptnAppVersion> = kavs.iter().map(|k| k.as_ref()).collect();
    let resource = observe(&ctx, &ns, &kwv.spec.workload.resource_reference).await;
    let mut plan = plan_workload_version(
        &kwv,
        &WorkloadVersionInput {
            world: &world,
            app_versions: &kav_refs,
            resource,
            blocking: config.block_deployment,
            observability_timeout: config.observability_timeout,
            tracing: ctx.observability.traces.active(),
            now: Timestamp::now(),
        },
    );
    let owner_ref = kwv
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    // Tasks created in this pass carry the planned status's app context metadata: the pass
    // that copies it from the app version may be the one that starts the first phase.
    let owner = CheckOwner::workload(&kwv, &plan.status.app_context_metadata, owner_ref);
    let created = apply_actions(
        &ctx,
        kwv.as_ref(),
        &plan,
        &world,
        &owner,
        &ctx.observability.recorders.workload_version,
        &lifecycle::events::kwv_annotations(&kwv),
    )
    .await;
    let api: Api<KeptnWorkloadVersion> = Api::namespaced(ctx.client.clone(), &ns);
    if kwv.status.as_ref() != Some(&plan.status) && plan.status != Default::default() {
        write_status(&api, kwv.as_ref(), kwv.status.as_ref(), &plan.status).await?;
        ctx.observability
            .traces
            .export(std::mem::take(&mut plan.spans));
        ctx.observability
            .metrics
            .lifecycle
            .workload_version_written(&kwv, &plan.status);
    }
    for a in &plan.actions {
        if let Planned::SetTraceId(carrier) = a {
            let patch = serde_json::json!({ "spec": { "traceId": carrier } });
            timed(api.patch(
                &kwv.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ))
            .await?;
        }
    }
    created?;
    Ok(action(plan.requeue))
}
