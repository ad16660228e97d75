//! The kube-runtime shell: one shared watch cache per kind, controllers that map changes of
//! dependent objects to the objects they affect, and the writes that apply the pure plans.
//!
//! Every decision reads the caches only; nothing kept in memory is authoritative, so a
//! restarted (or newly elected) process continues from the cluster state.

mod checks;
mod discovery;
pub use discovery::apply_config;
mod pods;
mod retention;
mod scoped;
pub use scoped::ScopedCache;
#[cfg(test)]
mod tests;
mod ungated;
mod versions;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::{Future, FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use shared::crd::{
    KeptnApp, KeptnAppContext, KeptnAppCreationRequest, KeptnAppVersion, KeptnEvaluation,
    KeptnEvaluationDefinition, KeptnTask, KeptnTaskDefinition, KeptnWorkload, KeptnWorkloadVersion,
};

use crate::error::Error;
use crate::observability::metrics::{ControllerLabels, ErrorLabels};
use crate::observability::{EventPublisher, Observability};
use lifecycle::config::RuntimeConfig;
use lifecycle::events::Note;
use lifecycle::execution::RunnerImages;

pub use pods::GatedPod;

/// First requeue after a failed reconcile (B §3.13: phases requeue after 5 s).
const ERROR_RETRY: Duration = Duration::from_secs(5);
/// First requeue after a write lost a race: the next try reads fresh state.
const CONFLICT_RETRY: Duration = Duration::from_millis(200);
/// Longest backoff of a failing object: well below a finished task Job's default TTL (300 s), so a
/// task whose status write keeps failing finds its Job again instead of running a second one.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// How often the scoped watches of namespaces without workload versions are stopped.
const SCOPE_PRUNE_INTERVAL: Duration = Duration::from_secs(300);
/// Buffer of each shared watch stream.
const SHARED_BUFFER: usize = 1024;

/// Flags the controllers need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Keptn namespace: fallback for definitions (B §5.3, §6.2).
    pub keptn_namespace: String,
    pub promotion_enabled: bool,
    /// `reportingInstance` of events.
    pub identity: String,
    /// Interval of the stale-gate sweeper (A14).
    pub sweep_interval: Duration,
    /// Finished, superseded versions kept per app and per workload; 0 keeps all
    /// ([`lifecycle::retention`]).
    pub retained_versions: usize,
    /// Images of the function runtimes (B §0.2).
    pub images: RunnerImages,
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
    /// Scoped to the namespaces that have KeptnWorkloadVersions ([`scoped`]).
    pub replicasets: ScopedCache<ReplicaSet>,
    pub statefulsets: ScopedCache<StatefulSet>,
    pub daemonsets: ScopedCache<DaemonSet>,
    /// Scoped to the namespaces that have KeptnTasks.
    pub jobs: ScopedCache<Job>,
    pub pods: Store<GatedPod>,
}

/// Shared state of all reconcilers.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    pub settings: Settings,
    pub config: Arc<RwLock<RuntimeConfig>>,
    /// Metrics, spans, Events and CloudEvents.
    pub observability: Observability,
    /// Pods already told why they are held (one Warning per pod and reason per process).
    pub held: Mutex<HashSet<(String, String)>>,
    backoff: Backoff,
    ready: tokio::sync::watch::Receiver<bool>,
}

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

    /// Publishes an event in the background (B §7.1: events are sent asynchronously), with
    /// the object-specific annotations of its regarding object, and as a CloudEvent (B §7.2).
    fn publish(
        &self,
        recorder: &EventPublisher,
        note: &Note,
        regarding: k8s_openapi::api::core::v1::ObjectReference,
        annotations: BTreeMap<String, String>,
    ) {
        recorder.note(note, regarding, annotations);
    }
}

/// The one error policy: counts the failure by controller and error variant, then requeues
/// with a per-object exponential backoff (conflicts start short: the next try reads fresh state).
fn error_policy<K>(controller: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    move |obj, error, ctx| {
        ctx.observability
            .metrics
            .failures
            .get_or_create(&ErrorLabels {
                controller,
                error: error.label(),
            })
            .inc();
        let failures = ctx.backoff.failed(controller, obj.as_ref());
        let base = match error {
            Error::Conflict(_) => CONFLICT_RETRY,
            _ => ERROR_RETRY,
        };
        let delay = backoff(base, failures);
        if !matches!(error, Error::Conflict(_)) {
            tracing::warn!(
                controller,
                namespace = obj.meta().namespace.as_deref().unwrap_or_default(),
                name = obj.meta().name.as_deref().unwrap_or_default(),
                error = %error,
                kind = error.label(),
                retry_in = ?delay,
                "reconcile failed"
            );
        }
        Action::requeue(delay)
    }
}

/// `base` doubled per consecutive failure after the first, at most [`MAX_RETRY`].
fn backoff(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    base.saturating_mul(factor).min(MAX_RETRY)
}

/// Consecutive failures per controller and object, cleared by a successful reconcile. An object
/// deleted while failing is never reconciled again: its entry is dropped once it has not failed
/// for twice the longest backoff.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<BackoffKey, (u32, Instant)>>);

/// Controller and object uid (or namespace/name).
type BackoffKey = (&'static str, String);

impl Backoff {
    fn key<K: Resource>(controller: &'static str, obj: &K) -> BackoffKey {
        let meta = obj.meta();
        let id = meta.uid.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            )
        });
        (controller, id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BackoffKey, (u32, Instant)>> {
        match self.0.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records a failure; returns how many in a row there were, this one included.
    fn failed<K: Resource>(&self, controller: &'static str, obj: &K) -> u32 {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, (_, last)| now.duration_since(*last) < 2 * MAX_RETRY);
        let entry = map.entry(Self::key(controller, obj)).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        entry.0
    }

    fn succeeded<K: Resource>(&self, controller: &'static str, obj: &K) {
        let mut map = self.lock();
        if !map.is_empty() {
            map.remove(&Self::key(controller, obj));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Runs `controller` with `reconcile` under the one error policy until its streams end;
/// reconciles start once every cache has its initial list, so no decision sees a partial view.
async fn serve<K, F, Fut>(
    name: &'static str,
    controller: Controller<K>,
    reconcile: F,
    ctx: Arc<Context>,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let stream = controller.run(
        instrumented(name, reconcile, Start::AfterSync),
        error_policy(name),
        ctx,
    );
    drain(name, stream).await;
}

/// When a controller's reconciles may start.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Once every cache has its initial list.
    AfterSync,
    /// At once: the controller reads no cache (the KeptnConfig controller).
    Immediately,
}

/// Wraps a reconciler with what every controller records: the reconcile count and duration
/// (`portcullis_gate_reconciles`, `portcullis_gate_reconcile_duration_seconds`) and the end of
/// an object's backoff once it reconciles again.
fn instrumented<K, F, Fut>(
    controller: &'static str,
    reconcile: F,
    start: Start,
) -> impl Fn(Arc<K>, Arc<Context>) -> futures::future::BoxFuture<'static, Result<Action, Error>>
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |obj, ctx| {
        let reconcile = reconcile.clone();
        async move {
            if start == Start::AfterSync {
                ctx.synced().await;
            }
            let labels = ControllerLabels { controller };
            ctx.observability
                .metrics
                .reconciles
                .get_or_create(&labels)
                .inc();
            let started = std::time::Instant::now();
            let result = reconcile(obj.clone(), ctx.clone()).await;
            ctx.observability
                .metrics
                .reconcile_duration
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            if result.is_ok() {
                ctx.backoff.succeeded(controller, obj.as_ref());
            }
            result
        }
        .boxed()
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

/// [`slim`], and a task Job's pod template: only its owners and status are read (B §5.3).
fn slim_job(job: &mut Job) {
    slim(job);
    if let Some(spec) = job.spec.as_mut() {
        spec.template = Default::default();
    }
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
        modify: impl FnMut(&mut K) + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.run_with(api, watcher::Config::default(), modify)
    }

    /// [`Self::run`] with a watch configuration (a label selector).
    fn run_with(
        &mut self,
        api: Api<K>,
        config: watcher::Config,
        mut modify: impl FnMut(&mut K) + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let writer = self.writer.take();
        async move {
            let Some(writer) = writer else { return };
            watcher(api, config.any_semantic())
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
    observability: Observability,
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
    let (replicasets, replicaset_triggers) = ScopedCache::new(client.clone(), slim::<ReplicaSet>);
    let (statefulsets, statefulset_triggers) =
        ScopedCache::new(client.clone(), slim::<StatefulSet>);
    let (daemonsets, daemonset_triggers) = ScopedCache::new(client.clone(), slim::<DaemonSet>);
    let (jobs, job_triggers) = ScopedCache::new(client.clone(), slim_job);
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
        replicasets: replicasets.clone(),
        statefulsets: statefulsets.clone(),
        daemonsets: daemonsets.clone(),
        jobs: jobs.clone(),
        pods: pods.store.clone(),
    };
    observability
        .metrics
        .set_snapshot_source(dora_snapshot(caches.clone()));
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(Context {
        client: client.clone(),
        caches: caches.clone(),
        settings,
        config,
        observability,
        held: Mutex::new(HashSet::new()),
        backoff: Backoff::default(),
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
        versions::app_versions(
            ctx.clone(),
            kav.subscribe(),
            kwv.subscribe(),
            tasks.subscribe(),
            evaluations.subscribe(),
            task_defs.subscribe(),
            eval_defs.subscribe(),
        )
        .boxed(),
        versions::workload_versions(
            ctx.clone(),
            versions::WorkloadVersionTriggers {
                kwv: kwv.subscribe().boxed(),
                kav: kav.subscribe().boxed(),
                tasks: tasks.subscribe().boxed(),
                evaluations: evaluations.subscribe().boxed(),
                task_defs: task_defs.subscribe().boxed(),
                eval_defs: eval_defs.subscribe().boxed(),
                replicasets: replicaset_triggers.boxed(),
                statefulsets: statefulset_triggers.boxed(),
                daemonsets: daemonset_triggers.boxed(),
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
        checks::tasks(ctx.clone(), tasks.subscribe(), job_triggers).boxed(),
        checks::evaluations(ctx.clone(), evaluations.subscribe()).boxed(),
        checks::task_definitions(ctx.clone(), task_defs.subscribe()).boxed(),
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
        replicasets
            .prune(kwv.store.clone(), SCOPE_PRUNE_INTERVAL)
            .boxed(),
        statefulsets
            .prune(kwv.store.clone(), SCOPE_PRUNE_INTERVAL)
            .boxed(),
        daemonsets
            .prune(kwv.store.clone(), SCOPE_PRUNE_INTERVAL)
            .boxed(),
        jobs.prune(tasks.store.clone(), SCOPE_PRUNE_INTERVAL)
            .boxed(),
        pods.run_with(
            all(&client),
            watcher::Config::default().labels(&pods::gated_selector()),
            GatedPod::slim,
        )
        .boxed(),
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
fn dora_snapshot(
    caches: Caches,
) -> impl Fn() -> crate::observability::dora::Snapshot + Send + Sync + 'static {
    move || crate::observability::dora::Snapshot {
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
