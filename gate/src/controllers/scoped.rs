//! Watch caches of objects Portcullis reads but does not own the kind of, one per namespace where
//! it manages something, started when a reconcile first needs one: the ReplicaSets, StatefulSets
//! and DaemonSets workload versions observe (namespaces with KeptnWorkloadVersions), and the Jobs
//! of KeptnTasks (namespaces with KeptnTasks).
//!
//! Deployment detection (B §3.9.1) and task results (B §5.3) need these objects' status, so they
//! cannot be metadata-only. Watching them cluster-wide made the gate's memory and start-up LIST
//! grow with every ReplicaSet and Job of the cluster; scoped to the namespaces Portcullis manages,
//! the cost follows what it manages (README "Scale").

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::SHARED_BUFFER;
use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// How long a reconcile waits for a namespace's first LIST before it tries again later.
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// One namespace's cache and the task that keeps it.
struct Scope<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    /// True once the watch has listed, set from its stream. Reconciles wait on this, not on
    /// `Store::wait_until_ready`: kube-runtime's readiness wakes only the last of several
    /// concurrent waiters, so the others slept until [`SYNC_WAIT`] ran out.
    listed: tokio::sync::watch::Receiver<bool>,
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
    /// Applied to every object before it is stored.
    modify: fn(&mut K),
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for ScopedCache<K> {
    fn clone(&self) -> Self {
        ScopedCache {
            client: self.client.clone(),
            scopes: self.scopes.clone(),
            triggers: self.triggers.clone(),
            modify: self.modify,
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
    /// No namespace watched yet; the receiver yields every object any scope sees, after
    /// `modify`.
    pub fn new(client: Client, modify: fn(&mut K)) -> (Self, UnboundedReceiver<Arc<K>>) {
        let (triggers, rx) = unbounded();
        let cache = ScopedCache {
            client,
            scopes: Arc::new(Mutex::new(HashMap::new())),
            triggers,
            modify,
        };
        (cache, rx)
    }

    /// The synced cache of `namespace`, its watch started if this is the first use; `None` while
    /// its first LIST has not finished within [`SYNC_WAIT`].
    pub async fn store(&self, namespace: &str) -> Option<Store<K>> {
        let (store, mut listed) = {
            let mut scopes = self.scopes.lock().ok()?;
            let scope = scopes
                .entry(namespace.to_owned())
                .or_insert_with(|| self.start(namespace));
            (scope.store.clone(), scope.listed.clone())
        };
        tokio::time::timeout(SYNC_WAIT, listed.wait_for(|l| *l))
            .await
            .ok()?
            .ok()?;
        Some(store)
    }

    /// Every `interval`, stops the watches of namespaces that no longer have one of the
    /// `owners` (a reconcile that needs one again starts it again).
    pub async fn prune<P>(self, owners: Store<P>, interval: Duration)
    where
        P: Resource<DynamicType = ()> + Clone + 'static,
    {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let keep: HashSet<String> = owners
                .state()
                .iter()
                .filter_map(|o| o.namespace())
                .collect();
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
        let modify = self.modify;
        let (listed_tx, listed) = tokio::sync::watch::channel(false);
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
                .modify(modify)
                .reflect_shared(writer)
                .for_each(|ev| {
                    match ev {
                        // The reflector has applied the list before passing this on.
                        Ok(watcher::Event::InitDone) => {
                            listed_tx.send_replace(true);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "watch error"),
                    }
                    futures::future::ready(())
                });
            futures::future::join(forward, watch).await;
        });
        Scope {
            store,
            listed,
            task,
        }
    }
}
