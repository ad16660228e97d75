//! The kube-facing part: reads what a decision needs, applies it, publishes events and metrics.
//!
//! Writes are create-if-absent (409 AlreadyExists adopts the existing object when the task owns
//! it) and status merge patches on `/status` carrying the `resourceVersion` the decision was made
//! on, so a decision taken on a stale cache entry conflicts and is re-made instead of applied.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Map, Value, json};
use shared::crd::{KeptnEvaluation, KeptnEvaluationDefinition, KeptnTask, KeptnTaskDefinition};

use super::definition::{ConfigMapAction, FunctionConfigMap, config_map_failed_event};
use super::evaluation::{MISSING_DEFINITION_RETRY, MetricFetch, objectives_to_fetch};
use super::runtime::parent_name;
use super::task::{TASK_POLL, TASK_RETRY, job_create_failed_event, report_is_new};
use super::{
    CheckError, CheckEvent, CheckMetrics, EvaluationAction, JobLookup, RunnerImages, TaskAction,
    TaskInput, attempt_evaluation, config_map_action, decide_task, definition_namespaces,
    evaluation_event_annotations, metric_namespaces, plan_function_config_map,
    task_definition_status, task_event_annotations,
};

/// B §3.13: after a read error, look again in 30 s.
pub const ERROR_RETRY: Duration = Duration::from_secs(30);
/// A status write that lost a race is re-decided on fresh data soon.
const CONFLICT_RETRY: Duration = Duration::from_secs(1);
/// Every API call gives up after this long (STYLE: every write has a timeout).
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffer of each shared watch stream of [`run`].
const SHARED_BUFFER: usize = 256;

/// Publishes events.k8s.io/v1 Events for one reporting controller, with B §7.1's annotations
/// (kube's recorder cannot set annotations), and each also as a CloudEvent (B §7.2) when given a
/// sender. The gate's one publisher: the lifecycle controllers use it too.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: &'static str,
    instance: String,
    /// Also sends each event as a CloudEvent (B §7.2) when set.
    cloud_events: Option<crate::cloudevents::CloudEventSender>,
}

impl EventPublisher {
    /// A publisher reporting as `controller` from `instance`.
    pub fn new(client: &Client, controller: &'static str, instance: String) -> Self {
        EventPublisher {
            client: client.clone(),
            controller,
            instance,
            cloud_events: None,
        }
    }

    /// The same publisher, also sending each event as a CloudEvent through `sender`.
    pub fn with_cloud_events(mut self, sender: crate::cloudevents::CloudEventSender) -> Self {
        self.cloud_events = Some(sender);
        self
    }

    /// Publishes in the background (B §7.1: events are sent asynchronously), and as a
    /// CloudEvent (B §7.2) when configured; failures are only logged.
    fn publish(
        &self,
        event: &CheckEvent,
        regarding: ObjectReference,
        annotations: BTreeMap<String, String>,
    ) {
        self.send(event.into(), regarding, annotations);
    }

    /// Publishes `note` about `regarding` in the background: the Event, and the CloudEvent when
    /// configured. Never waits; failures are only logged.
    pub(crate) fn send(
        &self,
        note: crate::events::Published<'_>,
        regarding: ObjectReference,
        annotations: BTreeMap<String, String>,
    ) {
        if let Some(sender) = &self.cloud_events {
            sender.send(note, &regarding, &annotations);
        }
        let object = crate::events::published_event(
            &note,
            regarding,
            annotations,
            self.controller,
            &self.instance,
            Timestamp::now(),
        );
        let api: Api<k8s_openapi::api::events::v1::Event> = match &object.metadata.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::default_namespaced(self.client.clone()),
        };
        tokio::spawn(async move {
            let reason = object.reason.clone().unwrap_or_default();
            match timed(api.create(&PostParams::default(), &object)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%reason, %error, "could not publish event"),
                Err(error) => tracing::warn!(%reason, %error, "could not publish event"),
            }
        });
    }
}

/// Event publishers, one per controller as Keptn names them (B §0.4).
#[derive(Clone)]
pub struct CheckRecorders {
    pub task: EventPublisher,
    pub task_definition: EventPublisher,
    pub evaluation: EventPublisher,
}

impl CheckRecorders {
    /// Publishers reporting as `keptntask-controller`, `keptntaskdefinition-controller` and
    /// `keptnevaluation-controller`, with `instance` as the reporting instance.
    pub fn new(client: &Client, instance: Option<String>) -> Self {
        let instance = instance.unwrap_or_default();
        CheckRecorders {
            task: EventPublisher::new(client, "keptntask-controller", instance.clone()),
            task_definition: EventPublisher::new(
                client,
                "keptntaskdefinition-controller",
                instance.clone(),
            ),
            evaluation: EventPublisher::new(client, "keptnevaluation-controller", instance),
        }
    }

    /// The same publishers, each also sending its events as CloudEvents through `sender`.
    pub fn with_cloud_events(self, sender: crate::cloudevents::CloudEventSender) -> Self {
        CheckRecorders {
            task: self.task.with_cloud_events(sender.clone()),
            task_definition: self.task_definition.with_cloud_events(sender.clone()),
            evaluation: self.evaluation.with_cloud_events(sender),
        }
    }
}

/// What the task, evaluation and task definition controllers share.
pub struct CheckContext {
    pub client: Client,
    pub recorders: CheckRecorders,
    /// The Keptn installation namespace (definitions and metrics fall back to it).
    pub install_namespace: String,
    pub images: RunnerImages,
    pub metrics: CheckMetrics,
}

/// Requeue after [`ERROR_RETRY`] on any error (logged with its kind).
pub fn error_policy<K: Resource>(
    object: Arc<K>,
    error: &CheckError,
    _: Arc<CheckContext>,
) -> Action {
    tracing::warn!(
        namespace = object.meta().namespace.as_deref().unwrap_or_default(),
        name = object.meta().name.as_deref().unwrap_or_default(),
        kind = error.kind(),
        %error,
        "reconcile failed"
    );
    Action::requeue(ERROR_RETRY)
}

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

/// Runs the three controllers on shared watch streams (the gate's caches): `tasks`,
/// `evaluations` and `definitions` are subscriptions of the stores passed along. Only the
/// leader should run them (A1). Ends when all three streams end.
pub async fn run_shared(
    ctx: Arc<CheckContext>,
    tasks: impl Stream<Item = Arc<KeptnTask>> + Send + 'static,
    task_store: Store<KeptnTask>,
    evaluations: impl Stream<Item = Arc<KeptnEvaluation>> + Send + 'static,
    evaluation_store: Store<KeptnEvaluation>,
    definitions: impl Stream<Item = Arc<KeptnTaskDefinition>> + Send + 'static,
    definition_store: Store<KeptnTaskDefinition>,
) {
    let client = ctx.client.clone();
    let tasks = Controller::for_shared_stream(spec_changes(tasks), task_store)
        .owns(Api::<Job>::all(client), watcher::Config::default())
        .run(reconcile_task, error_policy, ctx.clone())
        .for_each(|r| log_result("KeptnTask", r));
    let evaluations = Controller::for_shared_stream(spec_changes(evaluations), evaluation_store)
        .run(reconcile_evaluation, error_policy, ctx.clone())
        .for_each(|r| log_result("KeptnEvaluation", r));
    let definitions = Controller::for_shared_stream(definitions, definition_store)
        .run(reconcile_task_definition, error_policy, ctx)
        .for_each(|r| log_result("KeptnTaskDefinition", r));
    futures::join!(tasks, evaluations, definitions);
}

/// A shared cache of one kind: its store, one subscription and the future that fills it.
fn shared_cache<K>(
    client: &Client,
) -> (
    Store<K>,
    impl Stream<Item = Arc<K>> + Send + 'static,
    impl Future<Output = ()> + Send + 'static,
)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store_shared(SHARED_BUFFER);
    let subscription = match writer.subscribe() {
        Some(s) => s.boxed(),
        None => futures::stream::empty().boxed(),
    };
    let api: Api<K> = Api::all(client.clone());
    let fill = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect_shared(writer)
        .for_each(|event| async move {
            if let Err(error) = event {
                tracing::warn!(%error, "watch error");
            }
        });
    (store, subscription, fill)
}

/// Runs the three controllers with watch caches of their own until `shutdown` completes (for a
/// process, or a test, without the gate's shared caches). Only the leader should run them.
pub async fn run(ctx: Arc<CheckContext>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let client = ctx.client.clone();
    let (task_store, tasks, fill_tasks) = shared_cache::<KeptnTask>(&client);
    let (evaluation_store, evaluations, fill_evaluations) =
        shared_cache::<KeptnEvaluation>(&client);
    let (definition_store, definitions, fill_definitions) =
        shared_cache::<KeptnTaskDefinition>(&client);
    let controllers = run_shared(
        ctx,
        tasks,
        task_store,
        evaluations,
        evaluation_store,
        definitions,
        definition_store,
    );
    tokio::select! {
        _ = futures::future::join4(controllers, fill_tasks, fill_evaluations, fill_definitions) => {}
        _ = shutdown => {}
    }
}

async fn log_result<T: std::fmt::Debug, E: std::fmt::Display>(
    kind: &'static str,
    result: Result<T, E>,
) {
    if let Err(error) = result {
        tracing::debug!(kind, %error, "controller");
    }
}

/// Bounds an API call by [`API_TIMEOUT`]; the outer error is the timeout.
async fn timed<T>(
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<Result<T, kube::Error>, CheckError> {
    tokio::time::timeout(API_TIMEOUT, call)
        .await
        .map_err(|_| CheckError::Timeout(API_TIMEOUT))
}

fn is_status(error: &kube::Error, check: impl Fn(&kube::core::Status) -> bool) -> bool {
    matches!(error, kube::Error::Api(status) if check(status))
}

fn namespace_of<K: Resource>(object: &K, kind: &'static str) -> Result<String, CheckError> {
    object.meta().namespace.clone().ok_or(CheckError::Metadata {
        kind,
        field: "namespace",
    })
}

/// A merge patch that turns `current` into `desired`: keys only in `current` become `null`
/// (merge patches otherwise keep them), nested objects are diffed the same way.
pub fn merge_diff(current: &Value, desired: &Value) -> Value {
    match (current, desired) {
        (Value::Object(c), Value::Object(d)) => {
            let mut out = Map::new();
            for (k, dv) in d {
                let v = match c.get(k) {
                    Some(cv) => merge_diff(cv, dv),
                    None => dv.clone(),
                };
                out.insert(k.clone(), v);
            }
            for k in c.keys() {
                if !d.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
        _ => desired.clone(),
    }
}

/// Writes `desired` as the status of `object` if it differs; `Ok(false)` on a conflict.
async fn write_status<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    desired: &S,
) -> Result<bool, CheckError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(true);
    }
    let current = match current {
        Some(c) => serde_json::to_value(c)?,
        None => json!({}),
    };
    let patch = json!({
        "metadata": {"resourceVersion": object.meta().resource_version},
        "status": merge_diff(&current, &serde_json::to_value(desired)?),
    });
    let name = object.meta().name.clone().unwrap_or_default();
    match timed(api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))).await? {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, |s| s.is_conflict()) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn find_definition<K>(
    client: &Client,
    name: &str,
    namespace: &str,
    install_namespace: &str,
) -> Result<Option<K>, CheckError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if name.is_empty() {
        return Ok(None);
    }
    for ns in definition_namespaces(namespace, install_namespace) {
        let api = Api::<K>::namespaced(client.clone(), ns);
        if let Some(found) = timed(api.get_opt(name)).await?? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// One reconcile of a KeptnTask (B §5.3 with A15, see `task`).
pub async fn reconcile_task(
    task: Arc<KeptnTask>,
    ctx: Arc<CheckContext>,
) -> Result<Action, CheckError> {
    let namespace = namespace_of(task.as_ref(), "KeptnTask")?;
    let client = &ctx.client;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let status = task.status.clone().unwrap_or_default();
    let completed = status.status.is_completed();

    // A direct read: "gone" must be true, not a cache that has not caught up.
    let job = if completed || status.job_name.is_empty() {
        None
    } else {
        timed(jobs.get_opt(&status.job_name)).await??
    };
    let job_lookup = match (&job, status.job_name.is_empty()) {
        (Some(job), _) => JobLookup::Found(job),
        (None, true) => JobLookup::NotCreated,
        (None, false) => JobLookup::Gone,
    };
    let (definition, parent) = if !completed && matches!(job_lookup, JobLookup::NotCreated) {
        let definition: Option<KeptnTaskDefinition> = find_definition(
            client,
            &task.spec.task_definition,
            &namespace,
            &ctx.install_namespace,
        )
        .await?;
        let parent = match definition.as_ref().and_then(parent_name) {
            Some(parent) => {
                find_definition(client, parent, &namespace, &ctx.install_namespace).await?
            }
            None => None,
        };
        (definition, parent)
    } else {
        (None, None)
    };

    let action = decide_task(&TaskInput {
        task: &task,
        job: job_lookup,
        definition: definition.as_ref(),
        parent: parent.as_ref(),
        images: &ctx.images,
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
            let fresh = timed(tasks.get_opt(&task.name_any())).await??;
            match fresh {
                None => return Ok(Action::await_change()),
                Some(f) if f.metadata.resource_version != task.metadata.resource_version => {
                    return Ok(Action::requeue(CONFLICT_RETRY));
                }
                Some(_) => {}
            }
            let job_name = job.metadata.name.clone().unwrap_or_default();
            match timed(jobs.create(&PostParams::default(), &job)).await? {
                Ok(_) => {}
                Err(e) if is_status(&e, |s| s.is_already_exists()) => {
                    // Created by an earlier reconcile whose status write was lost: adopt it
                    // when it is ours, never run the task a second time.
                    let existing = timed(jobs.get_opt(&job_name)).await??;
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
                        ctx.recorders.task.publish(
                            &job_create_failed_event(&task),
                            reference.clone(),
                            task_event_annotations(&task),
                        );
                        return Err(error);
                    }
                }
                Err(e) => {
                    tracing::warn!(task = %task.name_any(), error = %e, "could not create Job");
                    ctx.recorders.task.publish(
                        &job_create_failed_event(&task),
                        reference.clone(),
                        task_event_annotations(&task),
                    );
                    return Ok(Action::requeue(TASK_RETRY));
                }
            }
            if !write_status(&tasks, task.as_ref(), current, &status).await? {
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            Ok(Action::requeue(TASK_POLL))
        }
        TaskAction::UpdateStatus {
            status,
            finished,
            requeue,
        } => {
            if !write_status(&tasks, task.as_ref(), current, &status).await? {
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            if finished {
                ctx.metrics.task_finished(&task, &status);
                crate::telemetry::task_finished(&task, &status);
            }
            Ok(requeue.map_or_else(Action::await_change, Action::requeue))
        }
        TaskAction::ReportMissingDefinition { event, status }
        | TaskAction::ReportBuildFailure { event, status } => {
            if !write_status(&tasks, task.as_ref(), current, &status).await? {
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            if report_is_new(current, &status) {
                ctx.recorders.task.publish(
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
async fn fetch_metric(client: &Client, namespace: &str, name: &str) -> MetricFetch {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &keptn_metric_resource());
    match timed(api.get_opt(name)).await {
        Err(timeout) => MetricFetch::Error(timeout.to_string()),
        Ok(result) => match result {
            Ok(Some(object)) => {
                let field = |key: &str| {
                    object
                        .data
                        .get("status")
                        .and_then(|s| s.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                MetricFetch::Found {
                    value: field("value"),
                    raw_value: field("rawValue"),
                }
            }
            Ok(None) => MetricFetch::NotFound,
            Err(e) => MetricFetch::Error(e.to_string()),
        },
    }
}

/// One reconcile of a KeptnEvaluation = one attempt (B §6.2).
pub async fn reconcile_evaluation(
    evaluation: Arc<KeptnEvaluation>,
    ctx: Arc<CheckContext>,
) -> Result<Action, CheckError> {
    let namespace = namespace_of(evaluation.as_ref(), "KeptnEvaluation")?;
    let client = &ctx.client;
    let status = evaluation.status.clone().unwrap_or_default();
    let attempting =
        !status.overall_status.is_completed() && status.retry_count < evaluation.spec.retries;
    let definition: Option<KeptnEvaluationDefinition> = if attempting {
        find_definition(
            client,
            &evaluation.spec.evaluation_definition,
            &namespace,
            &ctx.install_namespace,
        )
        .await?
    } else {
        None
    };
    // Read the metrics this attempt compares, following the lookup order, before deciding.
    let mut metrics: HashMap<(String, String), MetricFetch> = HashMap::new();
    if let Some(definition) = &definition {
        for objective in objectives_to_fetch(&evaluation, definition) {
            let name = &objective.keptn_metric_ref.name;
            for ns in metric_namespaces(objective, &namespace, &ctx.install_namespace) {
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
        definition.as_ref(),
        &metrics,
        &ctx.install_namespace,
        Timestamp::now(),
    );
    let api: Api<KeptnEvaluation> = Api::namespaced(client.clone(), &namespace);
    let current = evaluation.status.as_ref();
    let reference = evaluation.object_ref(&());
    match action {
        EvaluationAction::Done => Ok(Action::await_change()),
        EvaluationAction::MissingDefinition { status } => {
            if let Some(status) = status
                && !write_status(&api, evaluation.as_ref(), current, &status).await?
            {
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            Ok(Action::requeue(MISSING_DEFINITION_RETRY))
        }
        EvaluationAction::Exhausted { status, event } => {
            if !write_status(&api, evaluation.as_ref(), current, &status).await? {
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            ctx.recorders.evaluation.publish(
                &event,
                reference.clone(),
                evaluation_event_annotations(&evaluation),
            );
            ctx.metrics.evaluation_finished(&evaluation, &status);
            crate::telemetry::evaluation_finished(&evaluation, &status);
            Ok(Action::await_change())
        }
        EvaluationAction::Attempted {
            status,
            finished,
            requeue,
        } => {
            match write_status(&api, evaluation.as_ref(), current, &status).await {
                Ok(true) => {}
                Ok(false) => return Ok(Action::requeue(CONFLICT_RETRY)),
                Err(error) => {
                    let event = super::evaluation::status_write_failed_event(&evaluation);
                    ctx.recorders.evaluation.publish(
                        &event,
                        reference.clone(),
                        evaluation_event_annotations(&evaluation),
                    );
                    return Err(error);
                }
            }
            if finished {
                ctx.metrics.evaluation_finished(&evaluation, &status);
                crate::telemetry::evaluation_finished(&evaluation, &status);
            }
            Ok(requeue.map_or_else(Action::await_change, Action::requeue))
        }
    }
}

/// One reconcile of a KeptnTaskDefinition: its function code into a ConfigMap it owns (B §5.2
/// with A20).
pub async fn reconcile_task_definition(
    definition: Arc<KeptnTaskDefinition>,
    ctx: Arc<CheckContext>,
) -> Result<Action, CheckError> {
    let namespace = namespace_of(definition.as_ref(), "KeptnTaskDefinition")?;
    let client = &ctx.client;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let config_map_name = match plan_function_config_map(&definition)? {
        FunctionConfigMap::Nothing => return Ok(Action::await_change()),
        FunctionConfigMap::Referenced(name) => {
            if timed(config_maps.get_opt(&name)).await??.is_none() {
                // Nothing watches ConfigMaps; look again for the referenced one to appear.
                return Ok(Action::requeue(ERROR_RETRY));
            }
            name
        }
        FunctionConfigMap::Inline(desired) => {
            let name = desired.metadata.name.clone().unwrap_or_default();
            let existing = timed(config_maps.get_opt(&name)).await??;
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            };
            match config_map_action(&desired, existing.as_ref()) {
                ConfigMapAction::Unchanged => {}
                ConfigMapAction::Create(cm) => {
                    match timed(config_maps.create(&PostParams::default(), &cm)).await? {
                        Ok(_) => {}
                        Err(e) if is_status(&e, |s| s.is_already_exists()) => {
                            return Ok(Action::requeue(CONFLICT_RETRY));
                        }
                        Err(e) => {
                            let event = config_map_failed_event(&namespace, &name, true);
                            ctx.recorders.task_definition.publish(
                                &event,
                                reference.clone(),
                                BTreeMap::new(),
                            );
                            return Err(e.into());
                        }
                    }
                }
                ConfigMapAction::Replace(cm) => {
                    match timed(config_maps.replace(&name, &PostParams::default(), &cm)).await? {
                        Ok(_) => {}
                        Err(e) if is_status(&e, |s| s.is_conflict()) => {
                            return Ok(Action::requeue(CONFLICT_RETRY));
                        }
                        Err(e) => {
                            let event = config_map_failed_event(&namespace, &name, false);
                            ctx.recorders.task_definition.publish(
                                &event,
                                reference.clone(),
                                BTreeMap::new(),
                            );
                            return Err(e.into());
                        }
                    }
                }
            }
            name
        }
    };
    if let Some(status) = task_definition_status(&definition, &config_map_name) {
        let api: Api<KeptnTaskDefinition> = Api::namespaced(client.clone(), &namespace);
        let patch = json!({ "status": status });
        timed(api.patch_status(
            &definition.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        ))
        .await??;
    }
    Ok(Action::await_change())
}
