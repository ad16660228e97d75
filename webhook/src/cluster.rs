//! The webhook's calls to the Kubernetes API: the fallback GET of A5 and the writes of B §1.8,
//! §1.9, with the Warning Events of their failures. A trait so that router tests run without a
//! cluster and can count calls.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::PostParams;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use shared::crd::{KeptnAppCreationRequest, KeptnWorkload};

use crate::decision::{Needed, Write};
use crate::metrics::Metrics;
use crate::snapshot::{Fetched, ParentKind, meta_view};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The API server answered with an error or could not be reached.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// No cluster is attached (benchmarks, tests of the HTTP layer).
    #[error("no Kubernetes API is available to this webhook")]
    Offline,
}

/// A cluster that answers every call with [`ClusterError::Offline`]: with it, any review that
/// would need the API is denied, which makes an unexpected API call visible.
#[derive(Debug, Default, Clone, Copy)]
pub struct Offline;

impl Cluster for Offline {
    fn fetch<'a>(
        &'a self,
        _needed: &'a Needed,
        _fetched: &'a mut Fetched,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async { Err(ClusterError::Offline) })
    }

    fn write<'a>(&'a self, _write: &'a Write) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async { Err(ClusterError::Offline) })
    }

    fn report_failure(&self, _write: &Write, _error: &ClusterError) {}
}

/// What the shell needs from the cluster.
pub trait Cluster: Send + Sync {
    /// Fetches the needed object into `fetched` (not found is recorded as such).
    fn fetch<'a>(
        &'a self,
        needed: &'a Needed,
        fetched: &'a mut Fetched,
    ) -> BoxFuture<'a, Result<(), ClusterError>>;
    /// Carries out one write.
    fn write<'a>(&'a self, write: &'a Write) -> BoxFuture<'a, Result<(), ClusterError>>;
    /// Reports a failed write as a Warning Event (fire and forget).
    fn report_failure(&self, write: &Write, error: &ClusterError);
}

/// The Event reason and note of a failed write (B §1.8, §1.9, §7.1).
pub fn failure_event(write: &Write) -> (&'static str, &'static str) {
    match write {
        Write::CreateWorkload(_) => ("CreateWorkloadFailed", "could not create KeptnWorkload"),
        Write::UpdateWorkload(_) => ("UpdateWorkloadFailed", "could not update KeptnWorkload"),
        Write::CreateAppCreationRequest(_) => (
            "CreateAppCreationRequestFailed",
            "could not create KeptnAppCreationRequest",
        ),
    }
}

/// The denial message of a failed write.
pub fn failure_message(write: &Write, error: &ClusterError) -> String {
    let (_, note) = failure_event(write);
    let (ns, name) = match write {
        Write::CreateWorkload(w) | Write::UpdateWorkload(w) => {
            (w.namespace().unwrap_or_default(), w.name_any())
        }
        Write::CreateAppCreationRequest(r) => (r.namespace().unwrap_or_default(), r.name_any()),
    };
    format!("{note} {ns}/{name}: {error}")
}

/// The Kubernetes implementation.
pub struct KubeCluster {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
}

/// The reporting controller of the webhook's Events.
pub const REPORTING_CONTROLLER: &str = "portcullis-webhook";

impl KubeCluster {
    /// A cluster client reporting Events as `portcullis-webhook` from `instance` (the pod name).
    pub fn new(client: Client, instance: Option<String>, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
        }
    }

    fn outcome<T>(&self, verb: &'static str, resource: &'static str, r: &kube::Result<T>) {
        let outcome = match r {
            Ok(_) => "ok",
            Err(kube::Error::Api(s)) if s.code == 404 => "not_found",
            Err(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Err(_) => "error",
        };
        self.metrics.api(verb, resource, outcome);
    }

    async fn get_opt<K>(
        &self,
        api: Api<K>,
        resource: &'static str,
        name: &str,
    ) -> kube::Result<Option<K>>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let result = api.get_opt(name).await;
        self.outcome("get", resource, &result);
        result
    }

    /// The fallback read of A5: metadata only, like the caches it stands in for (issue 18).
    async fn get_metadata_opt<K>(
        &self,
        api: Api<K>,
        resource: &'static str,
        name: &str,
    ) -> kube::Result<Option<PartialObjectMeta<K>>>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let result = api.get_metadata_opt(name).await.map(|found| {
            found.map(|mut meta| {
                meta.metadata.managed_fields = None;
                meta
            })
        });
        self.outcome("get", resource, &result);
        result
    }

    async fn fetch_inner(&self, needed: &Needed, fetched: &mut Fetched) -> kube::Result<()> {
        let client = self.client.clone();
        match needed {
            Needed::Namespace(name) => {
                let ns = self
                    .get_metadata_opt(Api::<Namespace>::all(client), "namespaces", name)
                    .await?;
                fetched.namespaces.insert(name.clone(), ns.map(Arc::new));
            }
            Needed::ReplicaSet { namespace, name } => {
                let rs = self
                    .get_metadata_opt(
                        Api::<ReplicaSet>::namespaced(client, namespace),
                        "replicasets",
                        name,
                    )
                    .await?;
                fetched
                    .replica_sets
                    .insert((namespace.clone(), name.clone()), rs.map(Arc::new));
            }
            Needed::Parent {
                kind,
                namespace,
                name,
            } => {
                let meta = match kind {
                    ParentKind::Deployment => self
                        .get_metadata_opt(
                            Api::<Deployment>::namespaced(client, namespace),
                            "deployments",
                            name,
                        )
                        .await?
                        .map(|o| meta_view(&o)),
                    ParentKind::StatefulSet => self
                        .get_metadata_opt(
                            Api::<StatefulSet>::namespaced(client, namespace),
                            "statefulsets",
                            name,
                        )
                        .await?
                        .map(|o| meta_view(&o)),
                    ParentKind::DaemonSet => self
                        .get_metadata_opt(
                            Api::<DaemonSet>::namespaced(client, namespace),
                            "daemonsets",
                            name,
                        )
                        .await?
                        .map(|o| meta_view(&o)),
                };
                fetched
                    .parents
                    .insert((*kind, namespace.clone(), name.clone()), meta);
            }
        }
        Ok(())
    }

    async fn write_inner(&self, write: &Write) -> kube::Result<()> {
        let pp = PostParams::default();
        match write {
            Write::CreateWorkload(desired) => {
                let api = self.workloads(desired);
                let result = api.create(&pp, desired).await;
                self.outcome("create", "keptnworkloads", &result);
                match result {
                    Ok(_) => Ok(()),
                    // The cache lagged: converge on what is there now.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        self.converge_workload(desired).await
                    }
                    Err(err) => Err(err),
                }
            }
            Write::UpdateWorkload(desired) => {
                let api = self.workloads(desired);
                let result = api.replace(&desired.name_any(), &pp, desired).await;
                self.outcome("replace", "keptnworkloads", &result);
                match result {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                        self.converge_workload(desired).await
                    }
                    Err(err) => Err(err),
                }
            }
            Write::CreateAppCreationRequest(desired) => {
                let api: Api<KeptnAppCreationRequest> = Api::namespaced(
                    self.client.clone(),
                    &desired.namespace().unwrap_or_default(),
                );
                let result = api.create(&pp, desired).await;
                self.outcome("create", "keptnappcreationrequests", &result);
                match result {
                    // Already there: B §1.9 does nothing then.
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Err(err) => Err(err),
                }
            }
        }
    }

    fn workloads(&self, w: &KeptnWorkload) -> Api<KeptnWorkload> {
        Api::namespaced(self.client.clone(), &w.namespace().unwrap_or_default())
    }

    /// One re-read and one write after a conflict: the fresh object converged on the desired
    /// one ([`crate::desired::converged`]), or a create when it vanished.
    async fn converge_workload(&self, desired: &KeptnWorkload) -> kube::Result<()> {
        let api = self.workloads(desired);
        let pp = PostParams::default();
        let name = desired.name_any();
        let current = self.get_opt(api.clone(), "keptnworkloads", &name).await?;
        let Some(current) = current else {
            let mut fresh = desired.clone();
            fresh.metadata.resource_version = None;
            fresh.metadata.uid = None;
            let result = api.create(&pp, &fresh).await;
            self.outcome("create", "keptnworkloads", &result);
            return result.map(drop);
        };
        let Some(updated) = crate::desired::converged(&current, desired) else {
            return Ok(());
        };
        let result = api.replace(&name, &pp, &updated).await;
        self.outcome("replace", "keptnworkloads", &result);
        result.map(drop)
    }
}

impl Cluster for KubeCluster {
    fn fetch<'a>(
        &'a self,
        needed: &'a Needed,
        fetched: &'a mut Fetched,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move { Ok(self.fetch_inner(needed, fetched).await?) })
    }

    fn write<'a>(&'a self, write: &'a Write) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move { Ok(self.write_inner(write).await?) })
    }

    fn report_failure(&self, write: &Write, error: &ClusterError) {
        let (reason, note) = failure_event(write);
        let (reference, version) = match write {
            Write::CreateWorkload(w) | Write::UpdateWorkload(w) => {
                (object_reference(&**w), Some(w.spec.version.clone()))
            }
            Write::CreateAppCreationRequest(r) => (object_reference(&**r), None),
        };
        let ns = reference.namespace.clone().unwrap_or_default();
        let name = reference.name.clone().unwrap_or_default();
        let phase = match write {
            Write::CreateWorkload(_) => "Create Workload",
            Write::UpdateWorkload(_) => "Update Workload",
            Write::CreateAppCreationRequest(_) => "Create App Creation Request",
        };
        let mut message = format!("{phase}: {note} / Namespace: {ns}, Name: {name}");
        if let Some(version) = version {
            message.push_str(&format!(", Version: {version}"));
        }
        message.push_str(&format!(": {error}"));
        message.truncate(1000);
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(message),
            action: reason.into(),
            secondary: None,
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(err) = recorder.publish(&event, &reference).await {
                tracing::warn!(error = %err, "cannot publish event");
            }
        });
    }
}

fn object_reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: object.meta().name.clone(),
        namespace: object.meta().namespace.clone(),
        uid: object.meta().uid.clone(),
        ..ObjectReference::default()
    }
}
