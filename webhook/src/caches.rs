//! Watch caches (kube-runtime reflectors, A1, A5, A10) behind the core's [`Snapshot`].
//!
//! Namespaces and the apps/v1 kinds exist cluster-wide in numbers Portcullis does not control, so
//! they are watched as metadata only (issue 18): the API server never sends their specs, and
//! resolution only reads labels, annotations and owner references. Managed fields are dropped
//! from every object before it is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use shared::crd::{KeptnApp, KeptnAppCreationRequest, KeptnWorkload};
use shared::resolve::ObjectMetaView;

use crate::snapshot::{Cached, NamespaceMeta, ParentKind, ReplicaSetMeta, Snapshot, meta_view};

/// The reflector stores.
#[derive(Clone)]
pub struct Caches {
    namespaces: Store<NamespaceMeta>,
    replica_sets: Store<ReplicaSetMeta>,
    deployments: Store<PartialObjectMeta<Deployment>>,
    stateful_sets: Store<PartialObjectMeta<StatefulSet>>,
    daemon_sets: Store<PartialObjectMeta<DaemonSet>>,
    workloads: Store<KeptnWorkload>,
    requests: Store<KeptnAppCreationRequest>,
    apps: Store<KeptnApp>,
    synced: Arc<AtomicUsize>,
    /// How many stores count towards `synced`.
    core_stores: usize,
}

/// Starts a reflector for `K` over all namespaces; the returned future drives it and, once the
/// store has listed, counts it in `synced`. For `K = PartialObjectMeta<_>` the API server is asked
/// for metadata only (kube 5's replacement of `metadata_watcher`).
fn reflect<K>(
    client: &Client,
    synced: Option<Arc<AtomicUsize>>,
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
    let api: Api<K> = Api::all(client.clone());
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None)
        .reflect(writer)
        .touched_objects();
    let ready = store.clone();
    let driver = async move {
        let counted = async move {
            if ready.wait_until_ready().await.is_ok()
                && let Some(synced) = synced
            {
                synced.fetch_add(1, Ordering::SeqCst);
            }
        };
        let drive = stream.for_each(|event| async move {
            if let Err(err) = event {
                tracing::warn!(kind = %K::kind(&()), error = %err, "watch error; retrying");
            }
        });
        futures::join!(counted, drive);
    };
    (store, driver)
}

impl Caches {
    /// Starts all reflectors on the runtime; they run until the process ends.
    pub fn start(client: &Client) -> Self {
        // Only the core stores are waited for: reading the three lifecycle ones may need this
        // very webhook's conversion (objects stored at an older version, A24), which the API
        // server reaches only once the pod is ready; until they fill, a missing entry costs a
        // conflict (converged, `desired::converged`) or a spare KeptnAppCreationRequest.
        let synced = Arc::new(AtomicUsize::new(0));
        let mut core_stores = 0;
        let mut core = || {
            core_stores += 1;
            Some(synced.clone())
        };
        let (namespaces, a) = reflect::<NamespaceMeta>(client, core());
        let (replica_sets, b) = reflect::<ReplicaSetMeta>(client, core());
        let (deployments, c) = reflect::<PartialObjectMeta<Deployment>>(client, core());
        let (stateful_sets, d) = reflect::<PartialObjectMeta<StatefulSet>>(client, core());
        let (daemon_sets, e) = reflect::<PartialObjectMeta<DaemonSet>>(client, core());
        let (workloads, f) = reflect::<KeptnWorkload>(client, None);
        let (requests, g) = reflect::<KeptnAppCreationRequest>(client, None);
        let (apps, h) = reflect::<KeptnApp>(client, None);
        tokio::spawn(a);
        tokio::spawn(b);
        tokio::spawn(c);
        tokio::spawn(d);
        tokio::spawn(e);
        tokio::spawn(f);
        tokio::spawn(g);
        tokio::spawn(h);
        Self {
            namespaces,
            replica_sets,
            deployments,
            stateful_sets,
            daemon_sets,
            workloads,
            requests,
            apps,
            synced,
            core_stores,
        }
    }

    /// Whether every core store has completed its initial list.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst) >= self.core_stores
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
        cached(get(&self.replica_sets, Some(namespace), name))
    }

    fn parent(&self, kind: ParentKind, namespace: &str, name: &str) -> Cached<ObjectMetaView> {
        let ns = Some(namespace);
        cached(match kind {
            ParentKind::Deployment => get(&self.deployments, ns, name).map(|o| meta_view(&*o)),
            ParentKind::StatefulSet => get(&self.stateful_sets, ns, name).map(|o| meta_view(&*o)),
            ParentKind::DaemonSet => get(&self.daemon_sets, ns, name).map(|o| meta_view(&*o)),
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
