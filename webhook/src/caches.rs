//! Watch caches (kube-runtime reflectors, A1, A5, A10) behind the core's [`Snapshot`].
//!
//! What the webhook caches follows what Portcullis manages, not the size of the cluster (issue
//! 18). Namespaces are watched cluster-wide, as metadata only: enablement (A4) reads only their
//! annotations and labels. The apps/v1 kinds a pod resolves through (B §1.3) are watched, as
//! metadata only, in Keptn-enabled namespaces alone: one watch per kind and enabled namespace,
//! started and stopped as namespaces are enabled, disabled or deleted. Reviews in other
//! namespaces never read them (enablement comes first), and a lookup in a namespace whose watches
//! have not listed yet falls back to one GET (A5). Managed fields are dropped from every object
//! before it is stored.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::metrics::gauge::Gauge;
use serde::de::DeserializeOwned;
use shared::crd::{KeptnApp, KeptnAppCreationRequest, KeptnWorkload};
use shared::resolve::ObjectMetaView;

use crate::metrics::Metrics;
use crate::namespaces::is_enabled;
use crate::snapshot::{Cached, NamespaceMeta, ParentKind, ReplicaSetMeta, Snapshot, meta_view};

/// The reflector stores.
#[derive(Clone)]
pub struct Caches {
    namespaces: Store<NamespaceMeta>,
    scopes: Scopes,
    workloads: Store<KeptnWorkload>,
    requests: Store<KeptnAppCreationRequest>,
    apps: Store<KeptnApp>,
    /// Set once the namespaces and the scopes of the namespaces enabled at start have listed.
    ready: Arc<AtomicBool>,
}

/// A reflector for `K` over `api`, and the future that drives it.
fn reflect<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl std::future::Future<Output = ()> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
        .reflect(writer);
    let driver = stream.for_each(|event| async move {
        if let Err(err) = event {
            tracing::warn!(kind = %K::kind(&()), error = %err, "watch error; retrying");
        }
    });
    (store, driver)
}

/// The metadata caches of one enabled namespace; dropping it stops their watches.
struct Scope {
    replica_sets: Store<ReplicaSetMeta>,
    deployments: Store<PartialObjectMeta<Deployment>>,
    stateful_sets: Store<PartialObjectMeta<StatefulSet>>,
    daemon_sets: Store<PartialObjectMeta<DaemonSet>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scope {
    fn start(client: &Client, namespace: &str) -> Self {
        // For `K = PartialObjectMeta<_>` the API server sends metadata only.
        let (replica_sets, a) = reflect(Api::namespaced(client.clone(), namespace));
        let (deployments, b) = reflect(Api::namespaced(client.clone(), namespace));
        let (stateful_sets, c) = reflect(Api::namespaced(client.clone(), namespace));
        let (daemon_sets, d) = reflect(Api::namespaced(client.clone(), namespace));
        let task = tokio::spawn(async move {
            futures::join!(a, b, c, d);
        });
        Scope {
            replica_sets,
            deployments,
            stateful_sets,
            daemon_sets,
            task,
        }
    }

    /// Resolves once every store has listed (or its watch was stopped).
    fn listed(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let (a, b, c, d) = (
            self.replica_sets.clone(),
            self.deployments.clone(),
            self.stateful_sets.clone(),
            self.daemon_sets.clone(),
        );
        async move {
            // An error means the writer is gone: the scope was stopped, nothing to wait for.
            let _ = futures::join!(
                a.wait_until_ready(),
                b.wait_until_ready(),
                c.wait_until_ready(),
                d.wait_until_ready()
            );
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The scopes of the enabled namespaces, by namespace, counted in `gauge`.
#[derive(Clone)]
struct Scopes {
    scopes: Arc<RwLock<HashMap<String, Arc<Scope>>>>,
    gauge: Gauge,
}

impl Scopes {
    fn get(&self, namespace: &str) -> Option<Arc<Scope>> {
        self.scopes.read().ok()?.get(namespace).cloned()
    }

    fn start(&self, client: &Client, namespace: &str) {
        let Ok(mut scopes) = self.scopes.write() else {
            return;
        };
        if !scopes.contains_key(namespace) {
            tracing::debug!(namespace, "watching an enabled namespace");
            scopes.insert(
                namespace.to_owned(),
                Arc::new(Scope::start(client, namespace)),
            );
            self.gauge.set(scopes.len() as i64);
        }
    }

    /// Stops the scopes of the namespaces `stop` selects.
    fn stop(&self, stop: impl Fn(&str) -> bool) {
        if let Ok(mut scopes) = self.scopes.write() {
            scopes.retain(|namespace, _| {
                let stopped = stop(namespace);
                if stopped {
                    tracing::debug!(namespace, "namespace no longer watched");
                }
                !stopped
            });
            self.gauge.set(scopes.len() as i64);
        }
    }

    /// Resolves once every scope present now has listed.
    fn listed(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let waits: Vec<_> = self
            .scopes
            .read()
            .map(|scopes| scopes.values().map(|s| s.listed()).collect())
            .unwrap_or_default();
        async move {
            futures::future::join_all(waits).await;
        }
    }
}

/// Keeps the namespace store and, from it, one scope per enabled namespace. Readiness is set
/// after the first full list, once the scopes it started have listed: a namespace enabled later
/// is served by the fallback read until its scope has listed, so readiness never flaps.
async fn follow_namespaces(
    client: Client,
    writer: reflector::store::Writer<NamespaceMeta>,
    scopes: Scopes,
    ready: Arc<AtomicBool>,
) {
    let api: Api<NamespaceMeta> = Api::all(client.clone());
    let mut events = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|ns: &mut NamespaceMeta| ns.metadata.managed_fields = None)
        .reflect(writer)
        .boxed();
    // Enabled namespaces seen since the current (re)list began.
    let mut listed: HashSet<String> = HashSet::new();
    let mut first = true;
    while let Some(event) = events.next().await {
        match event {
            Err(err) => tracing::warn!(kind = "Namespace", error = %err, "watch error; retrying"),
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(ns) | watcher::Event::Apply(ns)) => {
                let name = ns.name_any();
                if is_enabled(&ns.metadata) {
                    scopes.start(&client, &name);
                    listed.insert(name);
                } else {
                    scopes.stop(|n| n == name);
                }
            }
            Ok(watcher::Event::Delete(ns)) => {
                let name = ns.name_any();
                scopes.stop(|n| n == name);
            }
            Ok(watcher::Event::InitDone) => {
                // Namespaces deleted or disabled while the watch was down.
                scopes.stop(|n| !listed.contains(n));
                if std::mem::take(&mut first) {
                    let ready = ready.clone();
                    let listed = scopes.listed();
                    tokio::spawn(async move {
                        listed.await;
                        ready.store(true, Ordering::SeqCst);
                    });
                }
            }
        }
    }
}

impl Caches {
    /// Starts all reflectors on the runtime; they run until the process ends.
    pub fn start(client: &Client, metrics: &Metrics) -> Self {
        // Readiness waits for the namespaces and their scopes only: reading the three lifecycle
        // stores may need this very webhook's conversion (objects stored at an older version,
        // A24), which the API server reaches only once the pod is ready; until they fill, a
        // missing entry costs a conflict (converged, `desired::converged`) or a spare
        // KeptnAppCreationRequest.
        let (namespaces, writer) = reflector::store::<NamespaceMeta>();
        let scopes = Scopes {
            scopes: Arc::default(),
            gauge: metrics.watched_namespaces.clone(),
        };
        let ready = Arc::new(AtomicBool::new(false));
        tokio::spawn(follow_namespaces(
            client.clone(),
            writer,
            scopes.clone(),
            ready.clone(),
        ));
        let (workloads, f) = reflect::<KeptnWorkload>(Api::all(client.clone()));
        let (requests, g) = reflect::<KeptnAppCreationRequest>(Api::all(client.clone()));
        let (apps, h) = reflect::<KeptnApp>(Api::all(client.clone()));
        tokio::spawn(f);
        tokio::spawn(g);
        tokio::spawn(h);
        Self {
            namespaces,
            scopes,
            workloads,
            requests,
            apps,
            ready,
        }
    }

    /// Whether the namespaces and the scopes of the namespaces enabled at start have listed.
    pub fn synced(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

fn get<K>(store: &Store<K>, namespace: Option<&str>, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let key = ObjectRef::new(name);
    let key = match namespace {
        Some(ns) => key.within(ns),
        None => key,
    };
    store.get(&key)
}

fn cached<T>(found: Option<T>) -> Cached<T> {
    found.map_or(Cached::Unknown, Cached::Found)
}

impl Snapshot for Caches {
    fn namespace(&self, name: &str) -> Cached<Arc<NamespaceMeta>> {
        cached(get(&self.namespaces, None, name))
    }

    fn replica_set(&self, namespace: &str, name: &str) -> Cached<Arc<ReplicaSetMeta>> {
        let scope = self.scopes.get(namespace);
        cached(scope.and_then(|s| get(&s.replica_sets, Some(namespace), name)))
    }

    fn parent(&self, kind: ParentKind, namespace: &str, name: &str) -> Cached<ObjectMetaView> {
        let ns = Some(namespace);
        let Some(s) = self.scopes.get(namespace) else {
            return Cached::Unknown;
        };
        cached(match kind {
            ParentKind::Deployment => get(&s.deployments, ns, name).map(|o| meta_view(&*o)),
            ParentKind::StatefulSet => get(&s.stateful_sets, ns, name).map(|o| meta_view(&*o)),
            ParentKind::DaemonSet => get(&s.daemon_sets, ns, name).map(|o| meta_view(&*o)),
        })
    }

    fn keptn_workload(&self, namespace: &str, name: &str) -> Option<Arc<KeptnWorkload>> {
        get(&self.workloads, Some(namespace), name)
    }

    fn app_creation_request(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<KeptnAppCreationRequest>> {
        get(&self.requests, Some(namespace), name)
    }

    fn keptn_app(&self, namespace: &str, name: &str) -> Option<Arc<KeptnApp>> {
        get(&self.apps, Some(namespace), name)
    }
}
