//! The simulated cluster behind the emulator: the Deployment, ReplicaSet, StatefulSet,
//! DaemonSet and Job controllers, the scheduler, a kubelet per simulated node, and the nodes
//! themselves. They run as tokio tasks and talk to the API server through kube-rs over HTTP,
//! exactly as real controllers talk to a real API server (watch, patch, `pods/binding`,
//! `*/status`).
//!
//! Every decision is a pure function from observed objects to a [`Plan`] (module per
//! controller); [`runtime`] is the thin shell that watches and writes. What a container does
//! (ready, never ready, crash, exit code, delays) is decided by pod annotations: see [`outcome`]
//! and `CONTROLLERS.md`. CronJobs are not simulated: each gets a `NotSimulated` warning event.

pub mod actions;
pub mod daemonset;
pub mod deployment;
pub mod events;
pub mod hash;
pub mod job;
pub mod kubelet;
pub mod nodes;
pub mod outcome;
pub mod placement;
pub mod pod_state;
pub mod replicaset;
pub mod runtime;
pub mod scheduler;
pub mod statefulset;

#[cfg(test)]
mod tests;

use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use tokio::task::JoinHandle;

pub use actions::{Action, Kind, Plan};
pub use job::JobBackoff;
pub use kubelet::KubeletTiming;

use runtime::{Applier, Informers, by_namespace, control_loop};

/// Errors starting the simulated cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The initial list of a watched kind did not arrive.
    #[error("the controllers' watches did not complete their initial list within 30 s")]
    InformerTimeout,
    /// A watch task ended before its store was ready.
    #[error("a controller watch stopped before its initial list")]
    InformerStopped,
    /// Creating the simulated nodes failed.
    #[error("creating simulated node {name}: {source}")]
    Node {
        /// the node
        name: String,
        /// what the API server said
        #[source]
        source: kube::Error,
    },
}

/// Settings of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllersConfig {
    /// number of Ready nodes `kubesim-node-1..=N` (`--nodes`, default 1)
    pub nodes: usize,
    /// kubelet timing (start delay, CrashLoopBackOff back-off)
    pub kubelet: KubeletTiming,
    /// Job retry back-off
    pub job_backoff: JobBackoff,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        Self {
            nodes: 1,
            kubelet: KubeletTiming::default(),
            job_backoff: JobBackoff::default(),
        }
    }
}

impl ControllersConfig {
    /// Fast timings for tests and demos: 100 ms start delay, 1 s first CrashLoopBackOff and Job
    /// retry delays (real clusters: 10 s each).
    pub fn fast(nodes: usize) -> Self {
        Self {
            nodes,
            kubelet: KubeletTiming {
                start_delay: Duration::from_millis(100),
                crash_backoff_base: Duration::from_secs(1),
                crash_backoff_max: Duration::from_secs(10),
            },
            job_backoff: JobBackoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(10),
            },
        }
    }
}

/// The running controllers; dropping it stops them.
pub struct ControllersHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl ControllersHandle {
    /// Stops every controller task.
    pub fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Hands the tasks over (e.g. to a server handle that aborts them on shutdown).
    pub fn into_tasks(mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.tasks)
    }

    /// Waits until a controller task ends (normally never) or panics.
    pub async fn wait(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        let _ = futures::future::select_all(tasks).await;
    }
}

impl Drop for ControllersHandle {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Starts the simulated cluster against the API server behind `client`: creates the nodes,
/// starts the watches, and spawns one task per controller. Returns once the watches have
/// listed everything and the nodes exist.
pub async fn spawn(client: Client, config: ControllersConfig) -> Result<ControllersHandle, Error> {
    let mut tasks = Vec::new();
    let informers = match Informers::start(&client, &mut tasks).await {
        Ok(i) => i,
        Err(e) => {
            tasks.iter().for_each(JoinHandle::abort);
            return Err(e);
        }
    };
    let handle_tasks = create_nodes(&client, &informers, config.nodes).await;
    if let Err(e) = handle_tasks {
        tasks.iter().for_each(JoinHandle::abort);
        return Err(e);
    }

    let manager = "kube-controller-manager";
    let inf = informers.clone();
    tasks.push(tokio::spawn(control_loop(
        "deployment",
        inf,
        Applier::new(client.clone(), manager),
        |i: &Informers, now: Timestamp| {
            let mut rs = by_namespace(i.replica_sets.state());
            let mut pods = by_namespace(i.pods.state());
            let mut plan = Plan::default();
            for d in i.deployments.state() {
                let ns = d.metadata.namespace.clone().unwrap_or_default();
                let rs = rs.entry(ns.clone()).or_default();
                let pods = pods.entry(ns).or_default();
                plan.merge(deployment::plan_deployment(&d, rs, pods, now));
            }
            plan
        },
    )));
    tasks.push(tokio::spawn(control_loop(
        "replicaset",
        informers.clone(),
        Applier::new(client.clone(), manager),
        |i: &Informers, now: Timestamp| {
            let mut pods = by_namespace(i.pods.state());
            let mut plan = Plan::default();
            for rs in i.replica_sets.state() {
                let ns = rs.metadata.namespace.clone().unwrap_or_default();
                plan.merge(replicaset::plan_replica_set(
                    &rs,
                    pods.entry(ns).or_default(),
                    now,
                ));
            }
            plan
        },
    )));
    tasks.push(tokio::spawn(control_loop(
        "statefulset",
        informers.clone(),
        Applier::new(client.clone(), manager),
        |i: &Informers, now: Timestamp| {
            let mut pods = by_namespace(i.pods.state());
            let mut plan = Plan::default();
            for set in i.stateful_sets.state() {
                let ns = set.metadata.namespace.clone().unwrap_or_default();
                plan.merge(statefulset::plan_stateful_set(
                    &set,
                    pods.entry(ns).or_default(),
                    now,
                ));
            }
            plan
        },
    )));
    tasks.push(tokio::spawn(control_loop(
        "daemonset",
        informers.clone(),
        Applier::new(client.clone(), manager),
        |i: &Informers, now: Timestamp| {
            let mut pods = by_namespace(i.pods.state());
            let nodes: Vec<_> = i.nodes.state().iter().map(|n| n.as_ref().clone()).collect();
            let mut plan = Plan::default();
            for ds in i.daemon_sets.state() {
                let ns = ds.metadata.namespace.clone().unwrap_or_default();
                plan.merge(daemonset::plan_daemon_set(
                    &ds,
                    &nodes,
                    pods.entry(ns).or_default(),
                    now,
                ));
            }
            plan
        },
    )));
    let backoff = config.job_backoff;
    tasks.push(tokio::spawn(control_loop(
        "job",
        informers.clone(),
        Applier::new(client.clone(), manager),
        move |i: &Informers, now: Timestamp| {
            let mut pods = by_namespace(i.pods.state());
            let mut plan = Plan::default();
            for job in i.jobs.state() {
                let ns = job.metadata.namespace.clone().unwrap_or_default();
                plan.merge(job::plan_job(
                    &job,
                    pods.entry(ns).or_default(),
                    now,
                    &backoff,
                ));
            }
            plan
        },
    )));
    let mut warned: std::collections::HashSet<String> = std::collections::HashSet::new();
    tasks.push(tokio::spawn(control_loop(
        "cronjob",
        informers.clone(),
        Applier::new(client.clone(), manager),
        move |i: &Informers, now: Timestamp| {
            let mut plan = Plan::default();
            for cron_job in i.cron_jobs.state() {
                let uid = cron_job.metadata.uid.clone().unwrap_or_default();
                if warned.insert(uid) {
                    plan.merge(job::plan_cron_job(&cron_job, now));
                }
            }
            plan
        },
    )));
    tasks.push(tokio::spawn(control_loop(
        "scheduler",
        informers.clone(),
        Applier::new(client.clone(), "kube-scheduler"),
        |i: &Informers, now: Timestamp| {
            let pods: Vec<_> = i.pods.state().iter().map(|p| p.as_ref().clone()).collect();
            let nodes: Vec<_> = i.nodes.state().iter().map(|n| n.as_ref().clone()).collect();
            scheduler::plan_scheduling(&pods, &nodes, now)
        },
    )));
    let timing = config.kubelet;
    let simulated: Vec<String> = (1..=config.nodes).map(nodes::node_name).collect();
    tasks.push(tokio::spawn(control_loop(
        "kubelet",
        informers.clone(),
        Applier::new(client.clone(), "kubelet"),
        move |i: &Informers, now: Timestamp| {
            let pods: Vec<_> = i.pods.state().iter().map(|p| p.as_ref().clone()).collect();
            // Only simulated nodes have a kubelet; pods bound elsewhere stay as they are.
            let nodes: Vec<_> = i
                .nodes
                .state()
                .iter()
                .filter(|n| {
                    n.metadata
                        .name
                        .as_ref()
                        .is_some_and(|name| simulated.contains(name))
                })
                .map(|n| n.as_ref().clone())
                .collect();
            kubelet::plan_kubelet(&pods, &nodes, now, &timing)
        },
    )));
    Ok(ControllersHandle { tasks })
}

/// Starts the simulated cluster and runs it until a task ends.
pub async fn run(client: Client, config: ControllersConfig) -> Result<(), Error> {
    spawn(client, config).await?.wait().await;
    Ok(())
}

async fn create_nodes(client: &Client, informers: &Informers, count: usize) -> Result<(), Error> {
    let existing: Vec<_> = informers
        .nodes
        .state()
        .iter()
        .map(|n| n.as_ref().clone())
        .collect();
    let plan = nodes::plan_nodes(&existing, count, Timestamp::now());
    let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let pp = kube::api::PostParams {
        field_manager: Some("kubelet".into()),
        ..Default::default()
    };
    let patch_params = kube::api::PatchParams {
        field_manager: Some("kubelet".into()),
        ..Default::default()
    };
    for action in plan.actions {
        let (name, status) = match &action {
            Action::CreateNode(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                match api.create(&pp, node).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                    Err(source) => return Err(Error::Node { name, source }),
                }
                (name, serde_json::json!({ "status": node.status }))
            }
            Action::PatchStatus { name, patch, .. } => (name.clone(), patch.clone()),
            _ => continue,
        };
        // The status goes through nodes/status, as a kubelet writes it.
        api.patch_status(&name, &patch_params, &kube::api::Patch::Merge(&status))
            .await
            .map_err(|source| Error::Node { name, source })?;
    }
    Ok(())
}
