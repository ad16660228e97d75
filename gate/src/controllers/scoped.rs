//! Watch caches of the objects workload versions observe (ReplicaSets, StatefulSets, DaemonSets),
//! one per namespace that has a KeptnWorkloadVersion, started when a version first needs one.
//!
//! Deployment detection (B §3.9.1) needs these objects' status, so they cannot be metadata-only.
//! Watching them cluster-wide made the gate's memory and start-up LIST grow with every
//! ReplicaSet of the cluster; scoped to the namespaces Portcullis manages, the cost follows what
//! it manages (README "Scale").

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use shared::crd::KeptnWorkloadVersion;

use super::SHARED_BUFFER;

/// How long a reconcile waits for a namespace's first LIST before it tries again later.
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// One namespace's cache and the task that keeps it.
struct Scope<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    task: tokio::task::JoinHandle<()>,
}

impl<K: Resource<DynamicType = ()> + 'static> Drop for Scope<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Per-namespace watch caches of `K`; every object they see is also sent to [`Self::new`]'s
/// receiver, which triggers the workload-version controller.
pub struct ScopedCache<K: Resource<DynamicType = ()> + 'static> {
    client: Client,
    scopes: Arc<Mutex<HashMap<String, Scope<K>>>>,
    triggers: UnboundedSender<Arc<K>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for ScopedCache<K> {
    fn clone(&self) -> Self {
        ScopedCache {
            client: self.client.clone(),
            scopes: self.scopes.clone(),
            triggers: self.triggers.clone(),
        }
    }
}

impl<K> ScopedCache<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// No namespace watched yet; the receiver yields every object any scope sees.
    pub fn new(client: Client) -> (Self, UnboundedReceiver<Arc<K>>) {
        let (triggers, rx) = unbounded();
        let cache = ScopedCache {
            client,
            scopes: Arc::new(Mutex::new(HashMap::new())),
            triggers,
        };
        (cache, rx)
    }

    /// The synced cache of `namespace`, its watch started if this is the first use; `None` while
    /// its first LIST has not finished within [`SYNC_WAIT`].
    pub async fn store(&self, namespace: &str) -> Option<Store<K>> {
        let store = {
            let mut scopes = self.scopes.lock().ok()?;
            scopes
                .entry(namespace.to_owned())
                .or_insert_with(|| self.start(namespace))
                .store
                .clone()
        };
        tokio::time::timeout(SYNC_WAIT, store.wait_until_ready())
            .await
            .ok()?
            .ok()?;
        Some(store)
    }

    /// Every `interval`, stops the watches of namespaces that no longer have a
    /// KeptnWorkloadVersion (a reconcile that needs one again starts it again).
    pub async fn prune(self, kwv: Store<KeptnWorkloadVersion>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let keep: HashSet<String> = kwv.state().iter().filter_map(|v| v.namespace()).collect();
            self.retain(&keep);
        }
    }

    /// Stops the watches of namespaces not in `keep`.
    fn retain(&self, keep: &HashSet<String>) {
        if let Ok(mut scopes) = self.scopes.lock() {
            scopes.retain(|ns, _| {
                let kept = keep.contains(ns);
                if !kept {
                    tracing::debug!(namespace = %ns, kind = %K::kind(&()), "namespace no longer watched");
                }
                kept
            });
        }
    }

    fn start(&self, namespace: &str) -> Scope<K> {
        tracing::debug!(namespace, kind = %K::kind(&()), "watching namespace");
        let (store, writer) = reflector::store_shared(SHARED_BUFFER);
        let subscription = writer.subscribe();
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let triggers = self.triggers.clone();
        let task = tokio::spawn(async move {
            let forward = async move {
                if let Some(s) = subscription {
                    s.for_each(|o| {
                        // The receiver lives as long as the controllers; after that nothing listens.
                        let _ = triggers.unbounded_send(o);
                        futures::future::ready(())
                    })
                    .await;
                }
            };
            let watch = watcher(api, watcher::Config::default().any_semantic())
                .default_backoff()
                .modify(|o: &mut K| super::slim(o))
                .reflect_shared(writer)
                .for_each(|ev| async move {
                    if let Err(e) = ev {
                        tracing::warn!(error = %e, "watch error");
                    }
                });
            futures::future::join(forward, watch).await;
        });
        Scope { store, task }
    }
}
