//! The kube-runtime shell: one shared watch cache per kind, controllers that map changes of
//! dependent objects to the objects they affect, and the writes that apply the pure plans.
//!
//! Every decision reads the caches only; nothing kept in memory is authoritative, so a
//! restarted (or newly elected) process continues from the cluster state.

mod discovery;
pub use discovery::apply_config;
mod lifecycle;
mod pods;
mod retention;
mod ungated;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{Future, FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::crd::{
    KeptnApp, KeptnAppContext, KeptnAppCreationRequest, KeptnAppVersion, KeptnEvaluation,
    KeptnEvaluationDefinition, KeptnTask, KeptnTaskDefinition, KeptnWorkload, KeptnWorkloadVersion,
};

use crate::admin::{ControllerLabels, ErrorLabels, Metrics};
use crate::config::RuntimeConfig;
use crate::events::Note;

pub use pods::GatedPod;

/// Timeout of every API write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffer of each shared watch stream.
const SHARED_BUFFER: usize = 1024;

/// What a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0} changed meanwhile; retrying with fresh state")]
    Conflict(String),
    #[error("{kind} {name} exists but belongs to another owner")]
    NameTaken { kind: &'static str, name: String },
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("API write timed out after {0:?}")]
    Timeout(Duration),
    #[error("invalid patch: {0}")]
    Patch(#[from] serde_json::Error),
}

impl Error {
    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Conflict(_) => "conflict",
            Error::NameTaken { .. } => "name_taken",
            Error::MissingField(_) => "missing_field",
            Error::Timeout(_) => "timeout",
            Error::Patch(_) => "patch",
        }
    }
}

/// Flags the controllers need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Keptn namespace: fallback for definitions (B §5.2, §6.2).
    pub keptn_namespace: String,
    pub promotion_enabled: bool,
    /// `reportingInstance` of events.
    pub identity: String,
    /// Interval of the stale-gate sweeper (A14).
    pub sweep_interval: Duration,
    /// Finished, superseded versions kept per app and per workload; 0 keeps all
    /// ([`crate::retention`]).
    pub retained_versions: usize,
}

/// The read caches, one per kind.
#[derive(Clone)]
pub struct Caches {
    pub apps: Store<KeptnApp>,
    pub contexts: Store<KeptnAppContext>,
    pub workloads: Store<KeptnWorkload>,
    pub creation_requests: Store<KeptnAppCreationRequest>,
    pub kav: Store<KeptnAppVersion>,
    pub kwv: Store<KeptnWorkloadVersion>,
    pub tasks: Store<KeptnTask>,
    pub evaluations: Store<KeptnEvaluation>,
    pub task_definitions: Store<KeptnTaskDefinition>,
    pub evaluation_definitions: Store<KeptnEvaluationDefinition>,
    pub replicasets: Store<ReplicaSet>,
    pub statefulsets: Store<StatefulSet>,
    pub daemonsets: Store<DaemonSet>,
    pub pods: Store<GatedPod>,
}

/// Shared state of all reconcilers.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    pub settings: Settings,
    pub config: Arc<RwLock<RuntimeConfig>>,
    pub metrics: Arc<Metrics>,
    /// Pods already told why they are held (one Warning per pod and reason per process).
    pub held: Mutex<HashSet<(String, String)>>,
    recorders: Recorders,
    ready: tokio::sync::watch::Receiver<bool>,
}

/// `reportingController` of the events each controller publishes (B §0.4).
struct Recorders {
    app_version: Recorder,
    workload_version: Recorder,
    app: Recorder,
    workload: Recorder,
    evaluation: Recorder,
    gate: Recorder,
}

/// Publishes the Events (and CloudEvents) of one reporting controller; the same publisher as
/// the task and evaluation controllers'.
type Recorder = crate::execution::shell::EventPublisher;

impl Context {
    /// A snapshot of the KeptnConfig options.
    pub fn config(&self) -> RuntimeConfig {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Waits until every cache has its initial list, so no decision is made on a partial view.
    async fn synced(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    fn count(&self, controller: &'static str) {
        self.metrics
            .reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
    }

    /// Publishes an event in the background (B §7.1: events are sent asynchronously), with
    /// the object-specific annotations of its regarding object, and as a CloudEvent (B §7.2).
    fn publish(
        &self,
        recorder: &Recorder,
        note: &Note,
        regarding: k8s_openapi::api::core::v1::ObjectReference,
        annotations: BTreeMap<String, String>,
    ) {
        recorder.send(note.into(), regarding, annotations);
    }
}

/// The `traceparent` annotation of an object (usually empty).
fn traceparent(meta: &kube::api::ObjectMeta) -> String {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get("traceparent").cloned())
        .unwrap_or_default()
}

fn pairs<const N: usize>(
    meta: &kube::api::ObjectMeta,
    kv: [(&str, &str); N],
) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = kv
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    m.insert("traceparent".into(), traceparent(meta));
    m
}

/// Event annotations of a KeptnAppVersion (B §7.1).
fn kav_annotations(k: &KeptnAppVersion) -> BTreeMap<String, String> {
    let name = k.metadata.name.clone().unwrap_or_default();
    pairs(
        &k.metadata,
        [
            ("appName", &k.spec.app_name),
            ("appVersion", &k.spec.app.version),
            ("appVersionName", &name),
        ],
    )
}

/// Event annotations of a KeptnWorkloadVersion (B §7.1).
fn kwv_annotations(k: &KeptnWorkloadVersion) -> BTreeMap<String, String> {
    let name = k.metadata.name.clone().unwrap_or_default();
    pairs(
        &k.metadata,
        [
            ("appName", &k.spec.workload.app),
            ("workloadName", &k.spec.workload_name),
            ("workloadVersion", &k.spec.workload.version),
            ("workloadVersionName", &name),
        ],
    )
}

/// Event annotations of a KeptnEvaluation (B §7.1).
fn evaluation_annotations(e: &KeptnEvaluation) -> BTreeMap<String, String> {
    let name = e.metadata.name.clone().unwrap_or_default();
    pairs(
        &e.metadata,
        [
            ("appName", &e.spec.app_name),
            ("appVersion", &e.spec.app_version),
            ("workloadName", &e.spec.workload),
            ("workloadVersion", &e.spec.workload_version),
            ("evaluationName", &name),
            ("evaluationDefinitionName", &e.spec.evaluation_definition),
        ],
    )
}

/// Event annotations of a KeptnApp (B §7.1).
fn app_annotations(a: &KeptnApp) -> BTreeMap<String, String> {
    let revision = a.spec.revision.to_string();
    let name = a.metadata.name.clone().unwrap_or_default();
    pairs(
        &a.metadata,
        [
            ("appName", &name),
            ("appVersion", &a.spec.version),
            ("appRevision", &revision),
        ],
    )
}

/// Event annotations of a KeptnWorkload (B §7.1).
fn workload_annotations(w: &KeptnWorkload) -> BTreeMap<String, String> {
    let name = w.metadata.name.clone().unwrap_or_default();
    pairs(
        &w.metadata,
        [
            ("appName", &w.spec.app),
            ("workloadName", &name),
            ("workloadVersion", &w.spec.version),
        ],
    )
}

/// Runs a write with [`WRITE_TIMEOUT`].
async fn timed<T>(fut: impl Future<Output = Result<T, kube::Error>>) -> Result<T, Error> {
    match tokio::time::timeout(WRITE_TIMEOUT, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::Timeout(WRITE_TIMEOUT)),
    }
}

/// `true` when created, `false` when it already existed (create-if-absent, A15).
async fn create_if_absent<K>(api: &Api<K>, obj: &K) -> Result<bool, Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    match timed(api.create(&PostParams::default(), obj)).await {
        Ok(_) => Ok(true),
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes a whole status as a JSON merge patch guarded by the resourceVersion the plan was
/// computed from, so a plan made from a stale object never overwrites a newer status.
async fn write_status<K>(api: &Api<K>, obj: &K, status: &impl Serialize) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": obj.meta().resource_version },
        "status": status,
    });
    match timed(api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))).await {
        Ok(_) => Ok(()),
        Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => Err(Error::Conflict(name)),
        Err(e) => Err(e),
    }
}

/// The error policy of every controller: count by variant, requeue soon for conflicts.
fn error_policy<K>(controller: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |_obj, error, ctx| {
        ctx.metrics
            .failures
            .get_or_create(&ErrorLabels {
                controller,
                error: error.label(),
            })
            .inc();
        match error {
            Error::Conflict(_) => Action::requeue(Duration::from_millis(200)),
            _ => {
                tracing::warn!(controller, error = %error, "reconcile failed");
                Action::requeue(Duration::from_secs(5))
            }
        }
    }
}

/// A namespaced object's cache key.
fn key<K: Resource<DynamicType = ()>>(name: &str, namespace: &str) -> ObjectRef<K> {
    ObjectRef::new(name).within(namespace)
}

/// Drops what no decision reads, to keep the caches small.
fn slim<K: ResourceExt>(obj: &mut K) {
    obj.managed_fields_mut().clear();
    obj.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// A shared watch cache: the store, subscriptions for the controllers, and the driving future.
struct SharedCache<K: Resource + Clone + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store: Store<K>,
    writer: Option<reflector::store::Writer<K>>,
}

impl<K> SharedCache<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    fn new() -> Self {
        let (store, writer) = reflector::store_shared(SHARED_BUFFER);
        SharedCache {
            store,
            writer: Some(writer),
        }
    }

    fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.writer
            .as_ref()
            .and_then(|w| w.subscribe())
            .map(|s| s.boxed())
            .unwrap_or_else(|| futures::stream::empty().boxed())
    }

    /// The future that keeps the cache up to date; subscribe before calling.
    fn run(
        &mut self,
        api: Api<K>,
        mut modify: impl FnMut(&mut K) + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let writer = self.writer.take();
        async move {
            let Some(writer) = writer else { return };
            watcher(api, watcher::Config::default().any_semantic())
                .default_backoff()
                .modify(move |o| modify(o))
                .reflect_shared(writer)
                .for_each(|ev| async move {
                    if let Err(e) = ev {
                        tracing::warn!(error = %e, "watch error");
                    }
                })
                .await;
        }
    }
}

/// Starts every cache and controller and runs until one of them ends (they do not, normally).
pub async fn run(
    client: Client,
    settings: Settings,
    config: Arc<RwLock<RuntimeConfig>>,
    config_changed: tokio::sync::watch::Sender<()>,
    metrics: Arc<Metrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;

    fn all<K>(client: &Client) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::all(client.clone())
    }

    let mut kav = SharedCache::<KeptnAppVersion>::new();
    let mut kwv = SharedCache::<KeptnWorkloadVersion>::new();
    let mut tasks = SharedCache::<KeptnTask>::new();
    let mut evaluations = SharedCache::<KeptnEvaluation>::new();
    let mut task_defs = SharedCache::<KeptnTaskDefinition>::new();
    let mut eval_defs = SharedCache::<KeptnEvaluationDefinition>::new();
    let mut apps = SharedCache::<KeptnApp>::new();
    let mut contexts = SharedCache::<KeptnAppContext>::new();
    let mut kacrs = SharedCache::<KeptnAppCreationRequest>::new();
    let mut workloads = SharedCache::<KeptnWorkload>::new();
    let mut replicasets = SharedCache::<ReplicaSet>::new();
    let mut statefulsets = SharedCache::<StatefulSet>::new();
    let mut daemonsets = SharedCache::<DaemonSet>::new();
    let mut pods = SharedCache::<GatedPod>::new();

    let caches = Caches {
        apps: apps.store.clone(),
        contexts: contexts.store.clone(),
        workloads: workloads.store.clone(),
        creation_requests: kacrs.store.clone(),
        kav: kav.store.clone(),
        kwv: kwv.store.clone(),
        tasks: tasks.store.clone(),
        evaluations: evaluations.store.clone(),
        task_definitions: task_defs.store.clone(),
        evaluation_definitions: eval_defs.store.clone(),
        replicasets: replicasets.store.clone(),
        statefulsets: statefulsets.store.clone(),
        daemonsets: daemonsets.store.clone(),
        pods: pods.store.clone(),
    };
    metrics.set_snapshot_source(dora_snapshot(caches.clone()));
    // Finished checks' spans read their owners here, not from the API server (A1).
    crate::telemetry::global().read_owners_from(crate::telemetry::OwnerCaches {
        kav: caches.kav.clone(),
        kwv: caches.kwv.clone(),
    });
    let cloud_events = crate::cloudevents::CloudEventSender::new(config.clone())
        .counting_failures(metrics.cloud_events_failures.clone());
    let recorder = |controller: &'static str| {
        Recorder::new(&client, controller, settings.identity.clone())
            .with_cloud_events(cloud_events.clone())
    };
    let recorders = Recorders {
        app_version: recorder("keptnappversion-controller"),
        workload_version: recorder("keptnworkloadversion-controller"),
        app: recorder("keptnapp-controller"),
        workload: recorder("keptnworkload-controller"),
        evaluation: recorder("keptnevaluation-controller"),
        gate: recorder("portcullis-gate"),
    };
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(Context {
        client: client.clone(),
        caches: caches.clone(),
        settings: settings.clone(),
        config,
        metrics,
        held: Mutex::new(HashSet::new()),
        recorders,
        ready: ready_rx,
    });

    // Subscriptions: one per consumer, all taken before the caches start.
    let controllers = futures::future::join_all(vec![
        discovery::creation_requests(
            ctx.clone(),
            kacrs.subscribe(),
            workloads.subscribe(),
            config_changed.subscribe(),
        )
        .boxed(),
        discovery::apps(
            ctx.clone(),
            apps.subscribe(),
            kav.subscribe(),
            workloads.subscribe(),
        )
        .boxed(),
        discovery::workloads(ctx.clone(), workloads.subscribe(), kwv.subscribe()).boxed(),
        discovery::configs(ctx.clone(), config_changed).boxed(),
        lifecycle::app_versions(
            ctx.clone(),
            kav.subscribe(),
            kwv.subscribe(),
            tasks.subscribe(),
            evaluations.subscribe(),
            task_defs.subscribe(),
            eval_defs.subscribe(),
        )
        .boxed(),
        lifecycle::workload_versions(
            ctx.clone(),
            lifecycle::WorkloadVersionTriggers {
                kwv: kwv.subscribe().boxed(),
                kav: kav.subscribe().boxed(),
                tasks: tasks.subscribe().boxed(),
                evaluations: evaluations.subscribe().boxed(),
                task_defs: task_defs.subscribe().boxed(),
                eval_defs: eval_defs.subscribe().boxed(),
                replicasets: replicasets.subscribe().boxed(),
                statefulsets: statefulsets.subscribe().boxed(),
                daemonsets: daemonsets.subscribe().boxed(),
            },
        )
        .boxed(),
        pods::gate(
            ctx.clone(),
            pods.subscribe(),
            kwv.subscribe(),
            kav.subscribe(),
        )
        .boxed(),
        pods::sweeper(ctx.clone()).boxed(),
        retention::run(ctx.clone(), || kav.subscribe(), || kwv.subscribe()),
        ungated::reporter(ctx.clone()).boxed(),
        crate::execution::run_shared(
            Arc::new(crate::execution::CheckContext {
                client: client.clone(),
                recorders: crate::execution::CheckRecorders::new(
                    &client,
                    Some(settings.identity.clone()),
                )
                .with_cloud_events(cloud_events),
                install_namespace: settings.keptn_namespace.clone(),
                images: crate::execution::RunnerImages::from_env(),
                metrics: ctx.metrics.checks.clone(),
            }),
            tasks.subscribe(),
            caches.tasks.clone(),
            evaluations.subscribe(),
            caches.evaluations.clone(),
            task_defs.subscribe(),
            caches.task_definitions.clone(),
        )
        .boxed(),
    ]);

    let caches_running = futures::future::join_all(vec![
        kav.run(all(&client), slim).boxed(),
        kwv.run(all(&client), slim).boxed(),
        tasks.run(all(&client), slim).boxed(),
        evaluations.run(all(&client), slim).boxed(),
        task_defs.run(all(&client), slim).boxed(),
        eval_defs.run(all(&client), slim).boxed(),
        apps.run(all(&client), slim).boxed(),
        contexts.run(all(&client), slim).boxed(),
        kacrs.run(all(&client), slim).boxed(),
        workloads.run(all(&client), slim).boxed(),
        replicasets.run(all(&client), slim).boxed(),
        statefulsets.run(all(&client), slim).boxed(),
        daemonsets.run(all(&client), slim).boxed(),
        pods.run(all(&client), GatedPod::slim).boxed(),
    ]);

    let readiness = {
        let caches = caches.clone();
        async move {
            let waits = vec![
                caches.apps.wait_until_ready().boxed(),
                caches.contexts.wait_until_ready().boxed(),
                caches.workloads.wait_until_ready().boxed(),
                caches.creation_requests.wait_until_ready().boxed(),
                caches.kav.wait_until_ready().boxed(),
                caches.kwv.wait_until_ready().boxed(),
                caches.tasks.wait_until_ready().boxed(),
                caches.evaluations.wait_until_ready().boxed(),
                caches.task_definitions.wait_until_ready().boxed(),
                caches.evaluation_definitions.wait_until_ready().boxed(),
                caches.replicasets.wait_until_ready().boxed(),
                caches.statefulsets.wait_until_ready().boxed(),
                caches.daemonsets.wait_until_ready().boxed(),
                caches.pods.wait_until_ready().boxed(),
            ];
            if futures::future::join_all(waits)
                .await
                .iter()
                .all(Result::is_ok)
            {
                ready.store(true, Ordering::Relaxed);
                let _ = ready_tx.send(true);
                tracing::info!("caches synced");
            }
            // Keep the future pending: it ends only with the process.
            futures::future::pending::<()>().await;
        }
    };

    tokio::select! {
        _ = controllers => tracing::error!("controllers stopped"),
        _ = caches_running => tracing::error!("caches stopped"),
        _ = readiness => {}
    }
}

/// What the scrape-time gauges of B §7.3 read: the current cache contents.
fn dora_snapshot(caches: Caches) -> impl Fn() -> crate::dora::Snapshot + Send + Sync + 'static {
    move || crate::dora::Snapshot {
        app_versions: caches.kav.state(),
        workload_versions: caches.kwv.state(),
        tasks: caches.tasks.state(),
        evaluations: caches.evaluations.state(),
    }
}

/// Reconcile loop output: log only failures worth seeing.
async fn drain<T: std::fmt::Debug, E: std::fmt::Display>(
    controller: &'static str,
    stream: impl Stream<Item = Result<T, E>>,
) {
    stream
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(controller, error = %e, "reconcile loop");
            }
        })
        .await;
}
