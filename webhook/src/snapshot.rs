//! What the core reads from the watch caches, as a trait so that decisions are tested against an
//! in-memory snapshot and served from reflector stores.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use shared::crd::{KeptnApp, KeptnAppCreationRequest, KeptnWorkload};
use shared::resolve::ObjectMetaView;

/// A Namespace as the caches and the fallback read hold it: metadata only (issue 18), since
/// enablement (A4) reads only its annotations and labels.
pub type NamespaceMeta = PartialObjectMeta<Namespace>;

/// A ReplicaSet as the caches and the fallback read hold it: metadata only, since only its owner
/// references are read (B §1.3).
pub type ReplicaSetMeta = PartialObjectMeta<ReplicaSet>;

/// The result of a cache read for an object whose absence may be a cache race.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached<T> {
    /// In the cache (or fetched).
    Found(T),
    /// Known not to exist (fetched and not found).
    Absent,
    /// Not in the cache: it may exist but not have arrived yet.
    Unknown,
}

/// Kinds whose metadata can annotate a pod (B §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParentKind {
    /// `apps/v1` Deployment (through the pod's ReplicaSet).
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl ParentKind {
    /// The kind as written in owner references.
    pub fn as_str(self) -> &'static str {
        match self {
            ParentKind::Deployment => "Deployment",
            ParentKind::StatefulSet => "StatefulSet",
            ParentKind::DaemonSet => "DaemonSet",
        }
    }
}

/// Read access to the caches the admission core needs.
pub trait Snapshot {
    /// A Namespace's metadata by name.
    fn namespace(&self, name: &str) -> Cached<Arc<NamespaceMeta>>;
    /// A ReplicaSet's metadata.
    fn replica_set(&self, namespace: &str, name: &str) -> Cached<Arc<ReplicaSetMeta>>;
    /// The labels and annotations of a Deployment, StatefulSet or DaemonSet.
    fn parent(&self, kind: ParentKind, namespace: &str, name: &str) -> Cached<ObjectMetaView>;
    /// A KeptnWorkload; absent from the cache means "create it" (a lagging cache only costs a
    /// conflict that the writer resolves).
    fn keptn_workload(&self, namespace: &str, name: &str) -> Option<Arc<KeptnWorkload>>;
    /// A KeptnAppCreationRequest.
    fn app_creation_request(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<KeptnAppCreationRequest>>;
    /// A KeptnApp.
    fn keptn_app(&self, namespace: &str, name: &str) -> Option<Arc<KeptnApp>>;
}

/// The labels and annotations of any object, as resolution reads them.
pub fn meta_view<K: kube::Resource>(object: &K) -> ObjectMetaView {
    ObjectMetaView {
        labels: object.labels().clone(),
        annotations: object.annotations().clone(),
    }
}

/// Objects fetched directly because the caches lacked them (A5); `None` = not found.
#[derive(Debug, Default, Clone)]
pub struct Fetched {
    /// Namespaces by name.
    pub namespaces: HashMap<String, Option<Arc<NamespaceMeta>>>,
    /// ReplicaSets by (namespace, name).
    pub replica_sets: HashMap<(String, String), Option<Arc<ReplicaSetMeta>>>,
    /// Parents by (kind, namespace, name).
    pub parents: HashMap<(ParentKind, String, String), Option<ObjectMetaView>>,
}

impl Fetched {
    /// Records the answer to `needed` as `world` holds it (`None` where it has nothing): what a
    /// cluster stand-in backed by a snapshot returns, in the tests and the fuzz oracle.
    pub fn record(&mut self, needed: &crate::decision::Needed, world: &impl Snapshot) {
        use crate::decision::Needed;
        fn found<T>(cached: Cached<T>) -> Option<T> {
            match cached {
                Cached::Found(x) => Some(x),
                Cached::Absent | Cached::Unknown => None,
            }
        }
        match needed {
            Needed::Namespace(n) => {
                self.namespaces.insert(n.clone(), found(world.namespace(n)));
            }
            Needed::ReplicaSet { namespace, name } => {
                self.replica_sets.insert(
                    (namespace.clone(), name.clone()),
                    found(world.replica_set(namespace, name)),
                );
            }
            Needed::Parent {
                kind,
                namespace,
                name,
            } => {
                self.parents.insert(
                    (*kind, namespace.clone(), name.clone()),
                    found(world.parent(*kind, namespace, name)),
                );
            }
        }
    }
}

/// A snapshot with directly fetched objects filling the gaps of the caches.
pub struct WithFetched<'a, S: ?Sized> {
    /// The caches.
    pub base: &'a S,
    /// What was fetched for this request.
    pub fetched: &'a Fetched,
}

fn fill<T: Clone>(cached: Cached<T>, fetched: Option<&Option<T>>) -> Cached<T> {
    match (cached, fetched) {
        (Cached::Unknown, Some(Some(found))) => Cached::Found(found.clone()),
        (Cached::Unknown, Some(None)) => Cached::Absent,
        (cached, _) => cached,
    }
}

impl<S: Snapshot + ?Sized> Snapshot for WithFetched<'_, S> {
    fn namespace(&self, name: &str) -> Cached<Arc<NamespaceMeta>> {
        fill(self.base.namespace(name), self.fetched.namespaces.get(name))
    }

    fn replica_set(&self, namespace: &str, name: &str) -> Cached<Arc<ReplicaSetMeta>> {
        fill(
            self.base.replica_set(namespace, name),
            self.fetched
                .replica_sets
                .get(&(namespace.to_owned(), name.to_owned())),
        )
    }

    fn parent(&self, kind: ParentKind, namespace: &str, name: &str) -> Cached<ObjectMetaView> {
        fill(
            self.base.parent(kind, namespace, name),
            self.fetched
                .parents
                .get(&(kind, namespace.to_owned(), name.to_owned())),
        )
    }

    fn keptn_workload(&self, namespace: &str, name: &str) -> Option<Arc<KeptnWorkload>> {
        self.base.keptn_workload(namespace, name)
    }

    fn app_creation_request(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<KeptnAppCreationRequest>> {
        self.base.app_creation_request(namespace, name)
    }

    fn keptn_app(&self, namespace: &str, name: &str) -> Option<Arc<KeptnApp>> {
        self.base.keptn_app(namespace, name)
    }
}

/// An in-memory snapshot for tests and benchmarks. Objects not inserted read as
/// [`Cached::Unknown`] unless `complete` is set, in which case they read as [`Cached::Absent`].
#[derive(Debug, Default, Clone)]
pub struct MemorySnapshot {
    /// Whether a missing object is known absent rather than possibly not yet cached.
    pub complete: bool,
    namespaces: HashMap<String, Arc<NamespaceMeta>>,
    replica_sets: HashMap<(String, String), Arc<ReplicaSetMeta>>,
    parents: HashMap<(ParentKind, String, String), ObjectMetaView>,
    workloads: HashMap<(String, String), Arc<KeptnWorkload>>,
    requests: HashMap<(String, String), Arc<KeptnAppCreationRequest>>,
    apps: HashMap<(String, String), Arc<KeptnApp>>,
}

fn key<K: kube::Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

impl MemorySnapshot {
    /// An empty snapshot in which every missing object is known absent.
    pub fn complete() -> Self {
        Self {
            complete: true,
            ..Self::default()
        }
    }

    /// Adds a Namespace's metadata.
    pub fn with_namespace(mut self, namespace: NamespaceMeta) -> Self {
        self.namespaces
            .insert(namespace.name_any(), Arc::new(namespace));
        self
    }

    /// Adds a ReplicaSet's metadata.
    pub fn with_replica_set(mut self, rs: ReplicaSetMeta) -> Self {
        self.replica_sets.insert(key(&rs), Arc::new(rs));
        self
    }

    /// Adds a parent's metadata.
    pub fn with_parent(
        mut self,
        kind: ParentKind,
        namespace: &str,
        name: &str,
        meta: ObjectMetaView,
    ) -> Self {
        self.parents
            .insert((kind, namespace.to_owned(), name.to_owned()), meta);
        self
    }

    /// Adds a KeptnWorkload.
    pub fn with_workload(mut self, workload: KeptnWorkload) -> Self {
        self.workloads.insert(key(&workload), Arc::new(workload));
        self
    }

    /// Adds a KeptnAppCreationRequest.
    pub fn with_app_creation_request(mut self, request: KeptnAppCreationRequest) -> Self {
        self.requests.insert(key(&request), Arc::new(request));
        self
    }

    /// Adds a KeptnApp.
    pub fn with_app(mut self, app: KeptnApp) -> Self {
        self.apps.insert(key(&app), Arc::new(app));
        self
    }

    fn miss<T>(&self) -> Cached<T> {
        if self.complete {
            Cached::Absent
        } else {
            Cached::Unknown
        }
    }
}

fn pair(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_owned(), name.to_owned())
}

impl Snapshot for MemorySnapshot {
    fn namespace(&self, name: &str) -> Cached<Arc<NamespaceMeta>> {
        match self.namespaces.get(name) {
            Some(ns) => Cached::Found(ns.clone()),
            None => self.miss(),
        }
    }

    fn replica_set(&self, namespace: &str, name: &str) -> Cached<Arc<ReplicaSetMeta>> {
        match self.replica_sets.get(&pair(namespace, name)) {
            Some(rs) => Cached::Found(rs.clone()),
            None => self.miss(),
        }
    }

    fn parent(&self, kind: ParentKind, namespace: &str, name: &str) -> Cached<ObjectMetaView> {
        match self
            .parents
            .get(&(kind, namespace.to_owned(), name.to_owned()))
        {
            Some(meta) => Cached::Found(meta.clone()),
            None => self.miss(),
        }
    }

    fn keptn_workload(&self, namespace: &str, name: &str) -> Option<Arc<KeptnWorkload>> {
        self.workloads.get(&pair(namespace, name)).cloned()
    }

    fn app_creation_request(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<KeptnAppCreationRequest>> {
        self.requests.get(&pair(namespace, name)).cloned()
    }

    fn keptn_app(&self, namespace: &str, name: &str) -> Option<Arc<KeptnApp>> {
        self.apps.get(&pair(namespace, name)).cloned()
    }
}
