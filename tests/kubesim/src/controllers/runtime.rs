//! The async shell: shared informers (kube-rs watchers feeding reflector stores), one loop per
//! controller that plans from the stores and applies the plan through the API, and a barrier
//! that waits until the stores show the controller's own writes before it plans again (what the
//! real controllers call expectations), so a stale cache never doubles a pod.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Node, ObjectReference, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Error;
use super::actions::{Action, Kind, Plan};
use super::events::{self, Reporter};

/// How long a controller waits for the stores to show its own writes before planning anyway.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(5);
/// When nothing asks for an earlier look, a controller resyncs this often.
const RESYNC: Duration = Duration::from_secs(30);

/// The reflector stores every controller reads, and a counter bumped on every watch event.
#[derive(Clone)]
pub struct Informers {
    /// all pods
    pub pods: Store<Pod>,
    /// all nodes
    pub nodes: Store<Node>,
    /// all ReplicaSets
    pub replica_sets: Store<ReplicaSet>,
    /// all Deployments
    pub deployments: Store<Deployment>,
    /// all StatefulSets
    pub stateful_sets: Store<StatefulSet>,
    /// all DaemonSets
    pub daemon_sets: Store<DaemonSet>,
    /// all Jobs
    pub jobs: Store<Job>,
    /// all CronJobs (only to say they are not simulated)
    pub cron_jobs: Store<CronJob>,
    changes: watch::Receiver<u64>,
}

fn informer<K>(
    api: Api<K>,
    changes: Arc<watch::Sender<u64>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tasks.push(tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changes.send_modify(|n| *n = n.wrapping_add(1)),
                Err(error) => tracing::warn!(%error, "kubesim controllers: watch error"),
            }
        }
    }));
    reader
}

impl Informers {
    /// Starts the watches and waits until every store has its first list.
    pub async fn start(client: &Client, tasks: &mut Vec<JoinHandle<()>>) -> Result<Self, Error> {
        let (tx, rx) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let informers = Self {
            pods: informer(Api::all(client.clone()), tx.clone(), tasks),
            nodes: informer(Api::all(client.clone()), tx.clone(), tasks),
            replica_sets: informer(Api::all(client.clone()), tx.clone(), tasks),
            deployments: informer(Api::all(client.clone()), tx.clone(), tasks),
            stateful_sets: informer(Api::all(client.clone()), tx.clone(), tasks),
            daemon_sets: informer(Api::all(client.clone()), tx.clone(), tasks),
            jobs: informer(Api::all(client.clone()), tx.clone(), tasks),
            cron_jobs: informer(Api::all(client.clone()), tx.clone(), tasks),
            changes: rx,
        };
        let ready = async {
            informers.pods.wait_until_ready().await?;
            informers.nodes.wait_until_ready().await?;
            informers.replica_sets.wait_until_ready().await?;
            informers.deployments.wait_until_ready().await?;
            informers.stateful_sets.wait_until_ready().await?;
            informers.daemon_sets.wait_until_ready().await?;
            informers.jobs.wait_until_ready().await?;
            informers.cron_jobs.wait_until_ready().await
        };
        match tokio::time::timeout(Duration::from_secs(30), ready).await {
            Ok(Ok(())) => Ok(informers),
            Ok(Err(_)) => Err(Error::InformerStopped),
            Err(_) => Err(Error::InformerTimeout),
        }
    }

    /// A receiver that fires on the next watch event.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// What the store of `kind` holds about one object.
    fn lookup(&self, kind: Kind, namespace: &str, name: &str) -> Option<StoredFacts> {
        fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
        where
            K: Resource + Clone + 'static,
            K::DynamicType: Default + Eq + std::hash::Hash + Clone,
        {
            let mut key = ObjectRef::<K>::new(name);
            if !namespace.is_empty() {
                key = key.within(namespace);
            }
            store.get(&key)
        }
        fn facts<K: Resource>(obj: &K) -> StoredFacts {
            let meta = obj.meta();
            StoredFacts {
                resource_version: meta.resource_version.clone(),
                uid: meta.uid.clone(),
                deleting: meta.deletion_timestamp.is_some(),
                bound: false,
            }
        }
        Some(match kind {
            Kind::Pod => {
                let pod = get(&self.pods, namespace, name)?;
                StoredFacts {
                    bound: pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_ref())
                        .is_some(),
                    ..facts(pod.as_ref())
                }
            }
            Kind::Node => facts(get(&self.nodes, namespace, name)?.as_ref()),
            Kind::ReplicaSet => facts(get(&self.replica_sets, namespace, name)?.as_ref()),
            Kind::Deployment => facts(get(&self.deployments, namespace, name)?.as_ref()),
            Kind::StatefulSet => facts(get(&self.stateful_sets, namespace, name)?.as_ref()),
            Kind::DaemonSet => facts(get(&self.daemon_sets, namespace, name)?.as_ref()),
            Kind::Job => facts(get(&self.jobs, namespace, name)?.as_ref()),
        })
    }

    fn satisfied(&self, expect: &Expectation) -> bool {
        match expect {
            Expectation::Seen {
                kind,
                namespace,
                name,
                resource_version,
            } => match self.lookup(*kind, namespace, name) {
                Some(StoredFacts {
                    resource_version: Some(seen),
                    ..
                }) => rv_at_least(&seen, resource_version),
                Some(_) => true,
                None => false,
            },
            // Gone, replaced by a namesake, or being deleted (graceful deletion of pods).
            Expectation::Gone {
                kind,
                namespace,
                name,
                uid,
            } => match self.lookup(*kind, namespace, name) {
                None => true,
                Some(f) => f.deleting || (uid.is_some() && f.uid != *uid),
            },
            Expectation::Bound { namespace, name } => self
                .lookup(Kind::Pod, namespace, name)
                .is_none_or(|f| f.bound),
        }
    }

    /// Waits (bounded) until the stores reflect the given writes.
    async fn barrier(&self, expectations: &[Expectation]) {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + BARRIER_TIMEOUT;
        loop {
            rx.borrow_and_update();
            if expectations.iter().all(|e| self.satisfied(e)) {
                return;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::debug!("kubesim controllers: stores did not show our writes in time");
                    return;
                }
            }
        }
    }
}

/// What a store holds about one object, for the write barrier.
struct StoredFacts {
    resource_version: Option<String>,
    uid: Option<String>,
    deleting: bool,
    bound: bool,
}

/// Resource versions of the emulator are integers; anything else compares by equality.
fn rv_at_least(seen: &str, wanted: &str) -> bool {
    match (seen.parse::<u64>(), wanted.parse::<u64>()) {
        (Ok(a), Ok(b)) => a >= b,
        _ => seen == wanted,
    }
}

/// What the stores must show before the next plan.
#[derive(Debug, Clone)]
enum Expectation {
    Seen {
        kind: Kind,
        namespace: String,
        name: String,
        resource_version: String,
    },
    Gone {
        kind: Kind,
        namespace: String,
        name: String,
        uid: Option<String>,
    },
    Bound {
        namespace: String,
        name: String,
    },
}

/// Groups namespaced objects by namespace.
pub fn by_namespace<K: Resource + Clone>(items: Vec<Arc<K>>) -> HashMap<String, Vec<K>> {
    let mut map: HashMap<String, Vec<K>> = HashMap::new();
    for item in items {
        map.entry(item.meta().namespace.clone().unwrap_or_default())
            .or_default()
            .push(item.as_ref().clone());
    }
    map
}

/// Writes plans through the API as one field manager.
pub struct Applier {
    client: Client,
    manager: &'static str,
}

enum Written {
    Expect(Expectation),
    Nothing,
}

fn api_error(error: &kube::Error) -> Option<&kube::core::Status> {
    match error {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

impl Applier {
    /// An applier writing as `manager` (e.g. `kube-controller-manager`).
    pub fn new(client: Client, manager: &'static str) -> Self {
        Self { client, manager }
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.manager.to_string()),
            ..PostParams::default()
        }
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.manager.to_string()),
            ..PatchParams::default()
        }
    }

    async fn create<K>(&self, namespace: &str, kind: Kind, obj: &K) -> Result<Written, kube::Error>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        match api.create(&self.post_params(), obj).await {
            Ok(created) => {
                tracing::debug!(manager = self.manager, name = %created.name_any(), "created");
                Ok(seen(kind, namespace, &created))
            }
            Err(e) if api_error(&e).is_some_and(|s| s.is_already_exists()) => Ok(Written::Nothing),
            Err(e) => Err(e),
        }
    }

    async fn patch<K>(
        &self,
        api: Api<K>,
        kind: Kind,
        namespace: &str,
        name: &str,
        patch: &Value,
        status: bool,
    ) -> Result<Written, kube::Error>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        let pp = self.patch_params();
        let result = if status {
            api.patch_status(name, &pp, &Patch::Merge(patch)).await
        } else {
            api.patch(name, &pp, &Patch::Merge(patch)).await
        };
        match result {
            Ok(obj) => Ok(seen(kind, namespace, &obj)),
            Err(e) if api_error(&e).is_some_and(|s| s.is_not_found()) => Ok(Written::Nothing),
            Err(e) => Err(e),
        }
    }

    async fn delete<K>(
        &self,
        api: Api<K>,
        kind: Kind,
        namespace: &str,
        name: &str,
        uid: &Option<String>,
        grace_zero: bool,
    ) -> Result<Written, kube::Error>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        let dp = DeleteParams {
            grace_period_seconds: grace_zero.then_some(0),
            // A Job's own default is to orphan its pods; the TTL controller removes them too.
            propagation_policy: (kind == Kind::Job).then_some(PropagationPolicy::Background),
            preconditions: uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => Ok(Written::Expect(Expectation::Gone {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid: uid.clone(),
            })),
            Err(e) if api_error(&e).is_some_and(|s| s.is_not_found() || s.is_conflict()) => {
                Ok(Written::Nothing)
            }
            Err(e) => Err(e),
        }
    }

    /// Records an event; events are best effort, as in client-go.
    async fn record(&self, event: &Event) {
        let ns = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Err(error) = api.create(&self.post_params(), event).await {
            tracing::debug!(%error, "kubesim controllers: event not recorded");
        }
    }

    /// Creates a pod and records `SuccessfulCreate` on its controller, as the real controllers do
    /// once the (generated) name is known.
    async fn create_pod(&self, pod: &Pod) -> Result<Written, kube::Error> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let created = match api.create(&self.post_params(), pod).await {
            Ok(created) => created,
            Err(e) if api_error(&e).is_some_and(|s| s.is_already_exists()) => {
                return Ok(Written::Nothing);
            }
            Err(e) => {
                if let Some(status) = api_error(&e) {
                    self.record_failed_create(&ns, pod, &status.message).await;
                }
                return Err(e);
            }
        };
        let name = created.name_any();
        if let Some(owner) = crate::controllers::pod_state::controller_ref(&created.metadata) {
            let (reporter, message) = match owner.kind.as_str() {
                "ReplicaSet" => (Reporter::ReplicaSet, format!("Created pod: {name}")),
                "Job" => (Reporter::Job, format!("Created pod: {name}")),
                "DaemonSet" => (Reporter::DaemonSet, format!("Created pod: {name}")),
                "StatefulSet" => (
                    Reporter::StatefulSet,
                    format!("create Pod {name} in StatefulSet {} successful", owner.name),
                ),
                _ => return Ok(seen(Kind::Pod, &ns, &created)),
            };
            let involved = ObjectReference {
                api_version: Some(owner.api_version.clone()),
                kind: Some(owner.kind.clone()),
                name: Some(owner.name.clone()),
                namespace: Some(ns.clone()),
                uid: Some(owner.uid.clone()),
                ..ObjectReference::default()
            };
            self.record(&events::event(
                involved,
                reporter,
                None,
                false,
                "SuccessfulCreate",
                message,
                Timestamp::now(),
            ))
            .await;
        }
        Ok(seen(Kind::Pod, &ns, &created))
    }

    /// A refused pod creation (admission webhook denial, quota, validation) is reported as the
    /// real controllers do: a `FailedCreate` warning on the owner and, for ReplicaSets, the
    /// `ReplicaFailure` condition (cleared by the next successful sync).
    async fn record_failed_create(&self, ns: &str, pod: &Pod, message: &str) {
        let Some(owner) = crate::controllers::pod_state::controller_ref(&pod.metadata) else {
            return;
        };
        let (reporter, text) = match owner.kind.as_str() {
            "ReplicaSet" => (Reporter::ReplicaSet, format!("Error creating: {message}")),
            "Job" => (Reporter::Job, format!("Error creating: {message}")),
            "DaemonSet" => (Reporter::DaemonSet, format!("Error creating: {message}")),
            "StatefulSet" => (
                Reporter::StatefulSet,
                format!(
                    "create Pod {} in StatefulSet {} failed error: {message}",
                    pod.metadata.name.clone().unwrap_or_default(),
                    owner.name
                ),
            ),
            _ => return,
        };
        let now = Timestamp::now();
        let involved = ObjectReference {
            api_version: Some(owner.api_version.clone()),
            kind: Some(owner.kind.clone()),
            name: Some(owner.name.clone()),
            namespace: Some(ns.to_string()),
            uid: Some(owner.uid.clone()),
            ..ObjectReference::default()
        };
        self.record(&events::event(
            involved,
            reporter,
            None,
            true,
            "FailedCreate",
            text,
            now,
        ))
        .await;
        if owner.kind == "ReplicaSet" {
            let patch = serde_json::json!({ "status": { "conditions": [{
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "FailedCreate",
                "message": message,
                "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            }] } });
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
            if let Err(error) = api
                .patch_status(&owner.name, &self.patch_params(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(%error, "kubesim controllers: ReplicaFailure not recorded");
            }
        }
    }

    async fn apply_one(&self, action: &Action) -> Result<Written, kube::Error> {
        let c = || self.client.clone();
        let ns_of = |ns: &str| ns.to_string();
        match action {
            Action::CreatePod(pod) => self.create_pod(pod).await,
            Action::Event(event) => {
                self.record(event).await;
                Ok(Written::Nothing)
            }
            Action::CreateReplicaSet(rs) => {
                let ns = rs.metadata.namespace.clone().unwrap_or_default();
                self.create(&ns, Kind::ReplicaSet, rs.as_ref()).await
            }
            Action::CreateNode(node) => {
                let api: Api<Node> = Api::all(c());
                let created = match api.create(&self.post_params(), node).await {
                    Ok(created) => created,
                    Err(e) if api_error(&e).is_some_and(|s| s.is_already_exists()) => {
                        return Ok(Written::Nothing);
                    }
                    Err(e) => return Err(e),
                };
                let name = created.name_any();
                let has_ready = created
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready"));
                if has_ready {
                    return Ok(seen(Kind::Node, "", &created));
                }
                let patch = serde_json::json!({ "status": node.status });
                self.patch(api, Kind::Node, "", &name, &patch, true).await
            }
            Action::Patch {
                kind,
                namespace,
                name,
                patch,
            }
            | Action::PatchStatus {
                kind,
                namespace,
                name,
                patch,
            } => {
                let status = matches!(action, Action::PatchStatus { .. });
                let ns = ns_of(namespace);
                match kind {
                    Kind::Pod => {
                        self.patch(
                            Api::<Pod>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            patch,
                            status,
                        )
                        .await
                    }
                    Kind::Node => {
                        self.patch(Api::<Node>::all(c()), *kind, &ns, name, patch, status)
                            .await
                    }
                    Kind::ReplicaSet => {
                        self.patch(
                            Api::<ReplicaSet>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            patch,
                            status,
                        )
                        .await
                    }
                    Kind::Deployment => {
                        self.patch(
                            Api::<Deployment>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            patch,
                            status,
                        )
                        .await
                    }
                    Kind::StatefulSet => {
                        self.patch(
                            Api::<StatefulSet>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            patch,
                            status,
                        )
                        .await
                    }
                    Kind::DaemonSet => {
                        self.patch(
                            Api::<DaemonSet>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            patch,
                            status,
                        )
                        .await
                    }
                    Kind::Job => {
                        self.patch(
                            Api::<Job>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            patch,
                            status,
                        )
                        .await
                    }
                }
            }
            Action::Delete {
                kind,
                namespace,
                name,
                uid,
                grace_period_zero,
            } => {
                let ns = ns_of(namespace);
                let g = *grace_period_zero;
                match kind {
                    Kind::Pod => {
                        self.delete(Api::<Pod>::namespaced(c(), &ns), *kind, &ns, name, uid, g)
                            .await
                    }
                    Kind::Node => {
                        self.delete(Api::<Node>::all(c()), *kind, &ns, name, uid, g)
                            .await
                    }
                    Kind::ReplicaSet => {
                        self.delete(
                            Api::<ReplicaSet>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            uid,
                            g,
                        )
                        .await
                    }
                    Kind::Deployment => {
                        self.delete(
                            Api::<Deployment>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            uid,
                            g,
                        )
                        .await
                    }
                    Kind::StatefulSet => {
                        self.delete(
                            Api::<StatefulSet>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            uid,
                            g,
                        )
                        .await
                    }
                    Kind::DaemonSet => {
                        self.delete(
                            Api::<DaemonSet>::namespaced(c(), &ns),
                            *kind,
                            &ns,
                            name,
                            uid,
                            g,
                        )
                        .await
                    }
                    Kind::Job => {
                        self.delete(Api::<Job>::namespaced(c(), &ns), *kind, &ns, name, uid, g)
                            .await
                    }
                }
            }
            Action::Bind {
                namespace,
                pod,
                uid,
                node,
            } => {
                let api: Api<Pod> = Api::namespaced(c(), namespace);
                let binding = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": { "name": pod, "namespace": namespace, "uid": uid },
                    "target": { "apiVersion": "v1", "kind": "Node", "name": node },
                });
                match api
                    .create_subresource::<_, Value>("binding", pod, &self.post_params(), &binding)
                    .await
                {
                    Ok(_) => {
                        let involved = ObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Pod".into()),
                            name: Some(pod.clone()),
                            namespace: Some(namespace.clone()),
                            uid: uid.clone(),
                            ..ObjectReference::default()
                        };
                        self.record(&events::event(
                            involved,
                            Reporter::Scheduler,
                            None,
                            false,
                            "Scheduled",
                            format!("Successfully assigned {namespace}/{pod} to {node}"),
                            Timestamp::now(),
                        ))
                        .await;
                        Ok(Written::Expect(Expectation::Bound {
                            namespace: namespace.clone(),
                            name: pod.clone(),
                        }))
                    }
                    // Gone, or bound meanwhile: the next plan sees it.
                    Err(e)
                        if api_error(&e).is_some_and(|s| s.is_not_found() || s.is_conflict()) =>
                    {
                        Ok(Written::Nothing)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

fn seen<K: Resource>(kind: Kind, namespace: &str, obj: &K) -> Written {
    match (&obj.meta().name, &obj.meta().resource_version) {
        (Some(name), Some(rv)) => Written::Expect(Expectation::Seen {
            kind,
            namespace: namespace.to_string(),
            name: name.clone(),
            resource_version: rv.clone(),
        }),
        _ => Written::Nothing,
    }
}

/// Runs one controller: plan from the stores, apply, wait for the stores to catch up, sleep until
/// the next watch event or the plan's wake-up.
pub async fn control_loop<F>(
    name: &'static str,
    informers: Informers,
    applier: Applier,
    mut plan: F,
) where
    F: FnMut(&Informers, Timestamp) -> Plan + Send,
{
    let mut rx = informers.subscribe();
    let mut failures: u32 = 0;
    let mut previous: Option<Vec<Action>> = None;
    let mut repeats: u32 = 0;
    loop {
        rx.borrow_and_update();
        let current = plan(&informers, Timestamp::now());
        let mut wake = current.requeue_after.unwrap_or(RESYNC);
        if !current.actions.is_empty() {
            let writes: Vec<Action> = current.writes().into_iter().cloned().collect();
            if previous.as_ref() == Some(&writes) {
                // The same writes again: the server did not take them as expected. Do not spin.
                repeats += 1;
                if repeats == 20 {
                    tracing::warn!(
                        controller = name,
                        actions = ?writes,
                        "kubesim controller keeps repeating the same writes"
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            } else {
                repeats = 0;
            }
            let mut expectations = Vec::new();
            let mut failed = false;
            for action in &current.actions {
                match applier.apply_one(action).await {
                    Ok(Written::Expect(e)) => expectations.push(e),
                    Ok(Written::Nothing) => {}
                    Err(error) => {
                        tracing::warn!(controller = name, %error, ?action, "kubesim controller write failed");
                        failed = true;
                    }
                }
            }
            informers.barrier(&expectations).await;
            if failed {
                failures = failures.saturating_add(1);
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << failures.min(7)));
                wake = wake.min(backoff);
            } else {
                failures = 0;
            }
            previous = Some(writes);
            // Our own writes changed the stores: plan again right away (the barrier waited for them).
            if !failed {
                continue;
            }
        } else {
            previous = None;
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wake) => {}
        }
    }
}
