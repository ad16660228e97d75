//! The KeptnTask, KeptnEvaluation and KeptnTaskDefinition controllers (B §5, §6): read what a
//! [`lifecycle::execution`] decision needs from the caches, apply it, publish events, metrics
//! and spans.
//!
//! Writes are create-if-absent (409 AlreadyExists adopts the existing object when the task owns
//! it) and status merge patches on `/status` carrying the `resourceVersion` the decision was made
//! on, so a decision taken on a stale cache entry conflicts and is re-made instead of applied.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use lifecycle::execution::definition::{
    ConfigMapAction, FunctionConfigMap, config_map_failed_event,
};
use lifecycle::execution::evaluation::{
    MISSING_DEFINITION_RETRY, MetricFetch, objectives_to_fetch, status_write_failed_event,
};
use lifecycle::execution::runtime::parent_name;
use lifecycle::execution::task::{TASK_POLL, TASK_RETRY, job_create_failed_event, report_is_new};
use lifecycle::execution::{
    CheckError, EvaluationAction, JobLookup, TaskAction, TaskInput, attempt_evaluation,
    config_map_action, decide_task, definition_namespaces, evaluation_event_annotations,
    metric_namespaces, plan_function_config_map, task_definition_status, task_event_annotations,
};
use lifecycle::traces::{self, CachedOwner};
use serde_json::Value;
use shared::crd::{KeptnEvaluation, KeptnEvaluationDefinition, KeptnTask, KeptnTaskDefinition};

use super::{Context, key, serve};
use crate::error::Error;
use operator::api::{ApiError, timed, write_status};

/// A referenced ConfigMap that does not exist yet is looked for again after this long (nothing
/// watches ConfigMaps).
const CONFIG_MAP_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Passes an object on only when its generation differs from the last one seen: status writes
/// (every evaluation attempt, every task status) must not trigger another reconcile (B §0.4
/// "generation changed"); progress comes from requeues and, for tasks, their Jobs.
pub(crate) fn spec_changes<K: Resource + Send + Sync + 'static>(
    stream: impl Stream<Item = Arc<K>> + Send + 'static,
) -> impl Stream<Item = Arc<K>> + Send + 'static {
    let mut seen: HashMap<String, Option<i64>> = HashMap::new();
    stream.filter(move |object| {
        let meta = object.meta();
        let key = meta
            .uid
            .clone()
            .or_else(|| Some(format!("{:?}/{:?}", meta.namespace, meta.name)))
            .unwrap_or_default();
        let generation = meta.generation;
        let changed = generation.is_none() || seen.insert(key, generation) != Some(generation);
        futures::future::ready(changed)
    })
}

/// The KeptnTask controller: woken by spec changes and by its Jobs (the scoped Job caches'
/// objects, see `reconcile_task`).
pub(super) async fn tasks(
    ctx: Arc<Context>,
    tasks: impl Stream<Item = Arc<KeptnTask>> + Send + 'static,
    jobs: impl Stream<Item = Arc<Job>> + Send + 'static,
) {
    let controller = Controller::for_shared_stream(spec_changes(tasks), ctx.caches.tasks.clone())
        .owns_shared_stream(jobs);
    serve("keptntask", controller, reconcile_task, ctx).await;
}

/// The KeptnEvaluation controller: one attempt per reconcile.
pub(super) async fn evaluations(
    ctx: Arc<Context>,
    evaluations: impl Stream<Item = Arc<KeptnEvaluation>> + Send + 'static,
) {
    let controller =
        Controller::for_shared_stream(spec_changes(evaluations), ctx.caches.evaluations.clone());
    serve("keptnevaluation", controller, reconcile_evaluation, ctx).await;
}

/// The KeptnTaskDefinition controller: function code into ConfigMaps.
pub(super) async fn task_definitions(
    ctx: Arc<Context>,
    definitions: impl Stream<Item = Arc<KeptnTaskDefinition>> + Send + 'static,
) {
    let controller =
        Controller::for_shared_stream(definitions, ctx.caches.task_definitions.clone());
    serve(
        "keptntaskdefinition",
        controller,
        reconcile_task_definition,
        ctx,
    )
    .await;
}

fn namespace_of<K: Resource>(object: &K, kind: &'static str) -> Result<String, Error> {
    Ok(object
        .meta()
        .namespace
        .clone()
        .ok_or(CheckError::Metadata {
            kind,
            field: "namespace",
        })?)
}

/// A definition from the cache: the object's namespace first, then the Keptn namespace.
fn cached_definition<K>(
    store: &Store<K>,
    name: &str,
    namespace: &str,
    install: &str,
) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    if name.is_empty() {
        return None;
    }
    definition_namespaces(namespace, install)
        .into_iter()
        .find_map(|ns| store.get(&key(name, ns)))
}

/// Exports the span of a check whose finished status was just written (B §7.4): a child of its
/// owner's phase span, read from the cached owner.
fn export_check_span(
    ctx: &Context,
    meta: &kube::api::ObjectMeta,
    check_type: &str,
    handed: Option<&str>,
    span: impl FnOnce(traces::SpanContext) -> traces::FinishedSpan,
) {
    let traces_out = &ctx.observability.traces;
    if !traces_out.active() {
        return;
    }
    let (Some(owner), Some(namespace)) =
        (traces::controller_owner(meta), meta.namespace.as_deref())
    else {
        return;
    };
    let kav;
    let kwv;
    let cached = match owner.kind.as_str() {
        "KeptnAppVersion" => {
            kav = ctx.caches.kav.get(&key(&owner.name, namespace));
            kav.as_deref().map(CachedOwner::App)
        }
        "KeptnWorkloadVersion" => {
            kwv = ctx.caches.kwv.get(&key(&owner.name, namespace));
            kwv.as_deref().map(CachedOwner::Workload)
        }
        _ => None,
    };
    match traces::finished_check_parent(cached, owner, check_type, handed) {
        Some(parent) => traces_out.export(vec![span(parent)]),
        None => tracing::debug!(
            name = meta.name.as_deref().unwrap_or_default(),
            "no parent span for check"
        ),
    }
}

/// One reconcile of a KeptnTask (B §5.3 with A15, see `task`).
async fn reconcile_task(task: Arc<KeptnTask>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = namespace_of(task.as_ref(), "KeptnTask")?;
    let client = &ctx.client;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let status = task.status.clone().unwrap_or_default();
    let completed = status.status.is_completed();

    // The namespace's Job cache is started by its first unfinished task, so that its Jobs'
    // changes wake their tasks from then on; a finished task reads no Job.
    let cached_jobs = if completed {
        None
    } else {
        ctx.caches.jobs.store(&namespace).await
    };
    let job = if completed || status.job_name.is_empty() {
        None
    } else {
        match cached_jobs.and_then(|s| s.get(&key(&status.job_name, &namespace))) {
            Some(job) => Some(job),
            // A direct read: "gone" must be true, not a cache that has not caught up.
            None => timed(jobs.get_opt(&status.job_name)).await?.map(Arc::new),
        }
    };
    let job_lookup = match (&job, status.job_name.is_empty()) {
        (Some(job), _) => JobLookup::Found(job),
        (None, true) => JobLookup::NotCreated,
        (None, false) => JobLookup::Gone,
    };
    let (definition, parent) = if !completed && matches!(job_lookup, JobLookup::NotCreated) {
        let store = &ctx.caches.task_definitions;
        let install = &ctx.settings.keptn_namespace;
        let definition = cached_definition(store, &task.spec.task_definition, &namespace, install);
        let parent = definition
            .as_deref()
            .and_then(parent_name)
            .and_then(|parent| cached_definition(store, parent, &namespace, install));
        (definition, parent)
    } else {
        (None, None)
    };

    let action = decide_task(&TaskInput {
        task: &task,
        job: job_lookup,
        definition: definition.as_deref(),
        parent: parent.as_deref(),
        images: &ctx.settings.images,
        now: Timestamp::now(),
    });
    let tasks: Api<KeptnTask> = Api::namespaced(client.clone(), &namespace);
    let reference = task.object_ref(&());
    let current = task.status.as_ref();
    match action {
        TaskAction::Done => Ok(Action::await_change()),
        TaskAction::Wait(after) => Ok(Action::requeue(after)),
        TaskAction::CreateJob { job, status } => {
            // Running a task is the one step that cannot be undone: decide it on the stored
            // task, not on a cache entry that may lag behind (A15).
            let fresh = timed(tasks.get_opt(&task.name_any())).await?;
            match fresh {
                None => return Ok(Action::await_change()),
                Some(f) if f.metadata.resource_version != task.metadata.resource_version => {
                    return Err(Error::Conflict(task.name_any()));
                }
                Some(_) => {}
            }
            let job_name = job.metadata.name.clone().unwrap_or_default();
            match timed(jobs.create(&PostParams::default(), &job)).await {
                Ok(_) => {}
                Err(e) if e.is_status(409) => {
                    // Created by an earlier reconcile whose status write was lost: adopt it
                    // when it is ours, never run the task a second time.
                    let existing = timed(jobs.get_opt(&job_name)).await?;
                    let ours = existing.as_ref().is_some_and(|j| {
                        j.owner_references()
                            .iter()
                            .any(|o| Some(&o.uid) == task.metadata.uid.as_ref())
                    });
                    if !ours {
                        let error = CheckError::ForeignJob {
                            job: job_name,
                            task: task.name_any(),
                        };
                        ctx.observability.recorders.task.publish(
                            &job_create_failed_event(&task),
                            reference.clone(),
                            task_event_annotations(&task),
                        );
                        return Err(error.into());
                    }
                }
                Err(e) => {
                    tracing::warn!(task = %task.name_any(), error = %e, "could not create Job");
                    ctx.observability.recorders.task.publish(
                        &job_create_failed_event(&task),
                        reference.clone(),
                        task_event_annotations(&task),
                    );
                    return Ok(Action::requeue(TASK_RETRY));
                }
            }
            write_status(&tasks, task.as_ref(), current, &status).await?;
            Ok(Action::requeue(TASK_POLL))
        }
        TaskAction::UpdateStatus {
            status,
            finished,
            requeue,
        } => {
            write_status(&tasks, task.as_ref(), current, &status).await?;
            if finished {
                ctx.observability
                    .metrics
                    .checks
                    .task_finished(&task, &status);
                let handed = task.spec.context.metadata.get(traces::TRACEPARENT);
                export_check_span(
                    &ctx,
                    &task.metadata,
                    &task.spec.check_type,
                    handed.map(String::as_str),
                    |parent| traces::task_span(&task, &status, parent, Timestamp::now()),
                );
            }
            Ok(requeue.map_or_else(Action::await_change, Action::requeue))
        }
        TaskAction::ReportMissingDefinition { event, status }
        | TaskAction::ReportBuildFailure { event, status } => {
            write_status(&tasks, task.as_ref(), current, &status).await?;
            if report_is_new(current, &status) {
                ctx.observability.recorders.task.publish(
                    &event,
                    reference.clone(),
                    task_event_annotations(&task),
                );
            }
            Ok(Action::requeue(TASK_RETRY))
        }
    }
}

fn keptn_metric_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.keptn.sh", "v1", "KeptnMetric"),
        "keptnmetrics",
    )
}

/// Reads a KeptnMetric as unstructured (B §6.2), so a metric written by any metrics operator
/// version is readable as long as it has `status.value` / `status.rawValue`.
///
/// `status.lastUpdated` (RFC 3339) and `spec.fetchIntervalSeconds` decide whether the value is
/// stale ([`lifecycle::execution::evaluation::is_stale`]); a `lastUpdated` that does not parse
/// counts as absent and a missing or non-integer interval as 0, so neither makes a value stale.
async fn fetch_metric(client: &Client, namespace: &str, name: &str) -> MetricFetch {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &keptn_metric_resource());
    match timed(api.get_opt(name)).await {
        Err(error) => MetricFetch::Error(match error {
            ApiError::Kube(e) => e.to_string(),
            other => other.to_string(),
        }),
        Ok(found) => match found {
            Some(object) => {
                let status = object.data.get("status");
                let field = |key: &str| {
                    status
                        .and_then(|s| s.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let last_updated = status
                    .and_then(|s| s.get("lastUpdated"))
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .map(Time);
                let fetch_interval_seconds = object
                    .data
                    .get("spec")
                    .and_then(|s| s.get("fetchIntervalSeconds"))
                    .and_then(Value::as_u64)
                    .unwrap_or_default();
                MetricFetch::Found {
                    value: field("value"),
                    raw_value: field("rawValue"),
                    last_updated,
                    fetch_interval_seconds,
                }
            }
            None => MetricFetch::NotFound,
        },
    }
}

/// One reconcile of a KeptnEvaluation = one attempt (B §6.2).
async fn reconcile_evaluation(
    evaluation: Arc<KeptnEvaluation>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = namespace_of(evaluation.as_ref(), "KeptnEvaluation")?;
    let client = &ctx.client;
    let status = evaluation.status.clone().unwrap_or_default();
    let attempting =
        !status.overall_status.is_completed() && status.retry_count < evaluation.spec.retries;
    let install = &ctx.settings.keptn_namespace;
    let definition: Option<Arc<KeptnEvaluationDefinition>> = if attempting {
        cached_definition(
            &ctx.caches.evaluation_definitions,
            &evaluation.spec.evaluation_definition,
            &namespace,
            install,
        )
    } else {
        None
    };
    // Read the metrics this attempt compares, following the lookup order, before deciding.
    let mut metrics: HashMap<(String, String), MetricFetch> = HashMap::new();
    if let Some(definition) = &definition {
        for objective in objectives_to_fetch(&evaluation, definition) {
            let name = &objective.keptn_metric_ref.name;
            for ns in metric_namespaces(objective, &namespace, install) {
                let key = (ns.to_owned(), name.clone());
                let fetched = match metrics.get(&key) {
                    Some(f) => f.clone(),
                    None => {
                        let f = fetch_metric(client, ns, name).await;
                        metrics.insert(key, f.clone());
                        f
                    }
                };
                if fetched != MetricFetch::NotFound {
                    break;
                }
            }
        }
    }
    let action = attempt_evaluation(
        &evaluation,
        definition.as_deref(),
        &metrics,
        install,
        Timestamp::now(),
    );
    let api: Api<KeptnEvaluation> = Api::namespaced(client.clone(), &namespace);
    let current = evaluation.status.as_ref();
    let reference = evaluation.object_ref(&());
    match action {
        EvaluationAction::Done => Ok(Action::await_change()),
        EvaluationAction::MissingDefinition { status } => {
            if let Some(status) = status {
                write_status(&api, evaluation.as_ref(), current, &status).await?;
            }
            Ok(Action::requeue(MISSING_DEFINITION_RETRY))
        }
        EvaluationAction::Exhausted { status, event } => {
            write_status(&api, evaluation.as_ref(), current, &status).await?;
            ctx.observability.recorders.evaluation.publish(
                &event,
                reference.clone(),
                evaluation_event_annotations(&evaluation),
            );
            ctx.observability
                .metrics
                .checks
                .evaluation_finished(&evaluation, &status);
            export_check_span(
                &ctx,
                &evaluation.metadata,
                &evaluation.spec.check_type,
                None,
                |parent| traces::evaluation_span(&evaluation, &status, parent, Timestamp::now()),
            );
            Ok(Action::await_change())
        }
        EvaluationAction::Attempted {
            status,
            finished,
            requeue,
        } => {
            match write_status(&api, evaluation.as_ref(), current, &status).await {
                Ok(()) => {}
                Err(conflict @ ApiError::Conflict(_)) => return Err(conflict.into()),
                Err(error) => {
                    let event = status_write_failed_event(&evaluation);
                    ctx.observability.recorders.evaluation.publish(
                        &event,
                        reference.clone(),
                        evaluation_event_annotations(&evaluation),
                    );
                    return Err(error.into());
                }
            }
            if finished {
                ctx.observability
                    .metrics
                    .checks
                    .evaluation_finished(&evaluation, &status);
                export_check_span(
                    &ctx,
                    &evaluation.metadata,
                    &evaluation.spec.check_type,
                    None,
                    |parent| {
                        traces::evaluation_span(&evaluation, &status, parent, Timestamp::now())
                    },
                );
            }
            Ok(requeue.map_or_else(Action::await_change, Action::requeue))
        }
    }
}

/// One reconcile of a KeptnTaskDefinition: its function code into a ConfigMap it owns (B §5.2
/// with A20).
async fn reconcile_task_definition(
    definition: Arc<KeptnTaskDefinition>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = namespace_of(definition.as_ref(), "KeptnTaskDefinition")?;
    let client = &ctx.client;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let config_map_name = match plan_function_config_map(&definition)? {
        FunctionConfigMap::Nothing => return Ok(Action::await_change()),
        FunctionConfigMap::Referenced(name) => {
            if timed(config_maps.get_opt(&name)).await?.is_none() {
                // Nothing watches ConfigMaps; look again for the referenced one to appear.
                return Ok(Action::requeue(CONFIG_MAP_RETRY));
            }
            name
        }
        FunctionConfigMap::Inline(desired) => {
            let name = desired.metadata.name.clone().unwrap_or_default();
            let existing = timed(config_maps.get_opt(&name)).await?;
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            };
            let written = match config_map_action(&desired, existing.as_ref()) {
                ConfigMapAction::Unchanged => None,
                ConfigMapAction::Create(cm) => Some((
                    true,
                    timed(config_maps.create(&PostParams::default(), &cm))
                        .await
                        .map(drop),
                )),
                ConfigMapAction::Replace(cm) => Some((
                    false,
                    timed(config_maps.replace(&name, &PostParams::default(), &cm))
                        .await
                        .map(drop),
                )),
            };
            match written {
                None | Some((_, Ok(()))) => {}
                Some((_, Err(e))) if e.is_status(409) => return Err(Error::Conflict(name)),
                Some((create, Err(e))) => {
                    let event = config_map_failed_event(&namespace, &name, create);
                    ctx.observability.recorders.task_definition.publish(
                        &event,
                        reference.clone(),
                        BTreeMap::new(),
                    );
                    return Err(e.into());
                }
            }
            name
        }
    };
    if let Some(status) = task_definition_status(&definition, &config_map_name) {
        let api: Api<KeptnTaskDefinition> = Api::namespaced(client.clone(), &namespace);
        write_status(
            &api,
            definition.as_ref(),
            definition.status.as_ref(),
            &status,
        )
        .await?;
    }
    Ok(Action::await_change())
}
