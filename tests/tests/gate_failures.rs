//! Failure tests on a real control plane (issue 9): the webhook process killed during a rollout
//! (failurePolicy `Fail` and `Ignore`), the gate SIGKILLed and restarted at seeded random points
//! of a multi-workload rollout, and API errors injected between the gate and the API server by
//! the harness's [`FaultProxy`] (500s on writes, lost write responses, 409 conflicts on status
//! writes, dropped watches).
//!
//! Each test runs its own control plane and processes; waits poll with a deadline. Tasks run as
//! real Jobs whose pods kwok keeps running until the test lets them finish (see
//! [`task_definition`]). The "random" points come from a seed printed by the test
//! (`FAILURES_SEED` overrides it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use shared::crd::{
    KeptnAppCreationRequest, KeptnAppVersion, KeptnState, KeptnTask, KeptnWorkload,
    KeptnWorkloadVersion,
};

use e2e::proxy::{Fault, FaultProxy, Rule};
use e2e::{
    GATE, GATED_LABEL, GATED_VALUE, INSTALL_NS, OUTCOME, Processes, RUN_FOR, SERVICE, WAIT,
    certificates, client_for, free_port, gated, kwv_state, metric, pods, ready, register_webhooks,
    released, wait_for, wait_webhook_ready,
};

const REMOVED: &str = "keptn.sh/scheduling-gate-removed";

/// The deadline of waits that meet the gate's fixed retry intervals under injected faults
/// (a failed Job creation is retried after 10 s, another failed reconcile after 5 s): a few
/// unlucky failures in a row must not time the test out.
const FAULTY_WAIT: Duration = Duration::from_secs(180);

/// splitmix64: a seeded source of the "random" kill points, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn seeded(test: &str, default: u64) -> Self {
        let seed = std::env::var("FAILURES_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        eprintln!("{test}: seed {seed} (rerun with FAILURES_SEED={seed})");
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

/// A control plane with CRDs and gate processes (one gate runs at a time), and a webhook that
/// can be killed and restarted on the same port; their logs are printed when a test fails.
struct Env {
    base: e2e::Env,
    client: Client,
    gate: Option<usize>,
    /// The kubeconfig gates start with: the admin one, or a [`FaultProxy`]'s.
    gate_kubeconfig: PathBuf,
    webhook: Option<Processes>,
    webhook_port: u16,
    /// Admin (metrics) port of the running gate.
    gate_admin: u16,
}

async fn start_env() -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = e2e::start_env().await;
    Env {
        client: base.client.clone(),
        gate_kubeconfig: base.kubeconfig(),
        base,
        gate: None,
        webhook: None,
        webhook_port: 0,
        gate_admin: 0,
    }
}

impl Env {
    /// Starts a fresh gate process (no leader election, as a single replica runs).
    fn start_gate(&mut self) {
        let kubeconfig = self.gate_kubeconfig.clone();
        let i = self.base.start_gate_with(&kubeconfig, &[]);
        self.gate = Some(i);
        self.gate_admin = self.base.admin_ports[i];
    }

    /// SIGKILLs the running gate.
    async fn kill_gate(&mut self) {
        if let Some(i) = self.gate.take() {
            self.base.kill_gate(i).await;
        }
    }

    async fn namespace(&self, name: &str, enabled: bool) {
        let meta = if enabled {
            json!({"name": name, "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"},
                "labels": {"keptn.sh/lifecycle-toolkit": "enabled"}})
        } else {
            json!({"name": name})
        };
        let ns: Namespace = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}),
        )
        .expect("namespace");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
    }

    /// Writes a CA and a serving certificate for the webhook Service; returns the CA PEM, picks
    /// a free loopback port for the webhook and routes the Service to this machine.
    async fn webhook_certificates(&mut self) -> String {
        let logs = tempfile::tempdir().expect("tempdir");
        let ca = certificates(logs.path());
        self.webhook = Some(Processes {
            children: Vec::new(),
            logs,
            names: Vec::new(),
        });
        self.webhook_port = free_port();
        self.base
            .cluster
            .route_service_to_localhost(INSTALL_NS, SERVICE)
            .await;
        ca
    }

    /// Starts the webhook binary on its port and waits until it serves TLS with our CA.
    async fn start_webhook(&mut self, ca: &str) {
        let kubeconfig = self.base.kubeconfig();
        let port = self.webhook_port;
        let procs = self.webhook.as_mut().expect("webhook certificates");
        let name = format!("webhook-{}", procs.names.len());
        procs.spawn_webhook(&name, port, &kubeconfig, "info,kube=warn");
        wait_webhook_ready(ca, port).await;
    }

    async fn kill_webhook(&mut self) {
        if let Some(mut child) = self.webhook.as_mut().and_then(|p| p.children.pop()) {
            child.start_kill().expect("kill");
            let _ = child.wait().await;
        }
    }
}

/// Every state each pod of a namespace was seen in, in order: (resourceVersion, gated,
/// released-marker, bound to a node).
type PodHistory = Arc<Mutex<PodHistoryMap>>;

/// Pod name to the states it was seen in.
type PodHistoryMap = BTreeMap<String, Vec<(u64, bool, bool, bool)>>;

fn rv(p: &Pod) -> u64 {
    p.resource_version()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// A recording watch task, stopped when dropped (it outlives no test: once the control plane
/// is gone its watch would retry until the runtime shuts down).
struct Recorder(tokio::task::JoinHandle<()>);

impl Drop for Recorder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records every pod change of `ns` (a watch that resumes after dropped connections).
fn record_pods(client: &Client, ns: &str) -> (PodHistory, Recorder) {
    let history: PodHistory = Arc::default();
    let h = history.clone();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            let pods: Vec<Pod> = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => vec![p],
                _ => continue,
            };
            let mut h = h.lock().expect("history");
            for p in pods {
                let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                let entry = h.entry(p.name_any()).or_default();
                let state = (rv(&p), gated(&p), released(&p), bound);
                if entry.last() != Some(&state) {
                    entry.push(state);
                }
            }
        }
    });
    (history, Recorder(task))
}

async fn list<K>(client: &Client, ns: &str) -> Vec<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Waits until the `n` pods of `app` are released (gate gone, removed-marker set) and Ready.
async fn all_released(client: &Client, ns: &str, app: &str, n: usize) -> Vec<Pod> {
    wait_for(
        &format!("{n} pods of {app} released and ready"),
        WAIT,
        || {
            let c = client.clone();
            async move {
                let p = pods(&c, ns, app).await;
                (p.len() == n && p.iter().all(|p| released(p) && ready(p))).then_some(p)
            }
        },
    )
    .await
}

/// A Deployment with a Keptn workload identity on its pod template; `gate_in_template` gives
/// the pods the gate and the gated label themselves (the webhook's part, for tests without the
/// webhook).
fn deployment(name: &str, version: &str, replicas: i32, gate_in_template: bool) -> Deployment {
    let mut spec =
        json!({"containers": [{"name": name, "image": format!("example/{name}:{version}")}]});
    let mut annotations = json!({"keptn.sh/workload": name, "keptn.sh/version": version});
    let mut labels = json!({"app": name});
    if gate_in_template {
        spec["schedulingGates"] = json!([{"name": GATE}]);
        annotations["keptn.sh/app"] = json!(name);
        labels[GATED_LABEL] = json!(GATED_VALUE);
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": spec
            }
        }
    }))
    .expect("deployment")
}

async fn scale(client: &Client, ns: &str, name: &str, replicas: i32) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .expect("scaled");
}

/// Webhook rollout with one pod released, then the webhook process dies and the Deployment is
/// scaled up; returns with the webhook down and the pods of `ns` being recorded.
///
/// Both hooks get `policy`: the scale-up goes through `/scale`, which the workload hook's
/// `deployments` rule does not match, so only the ReplicaSet controller's pod creations meet the
/// dead webhook.
async fn webhook_rollout(policy: &str, ns: &str) -> (Env, String, PodHistory, Recorder) {
    let mut env = start_env().await;
    env.namespace(INSTALL_NS, false).await;
    env.namespace(ns, true).await;
    let ca = env.webhook_certificates().await;
    env.start_webhook(&ca).await;
    env.start_gate();
    register_webhooks(&env.client, &ca, env.webhook_port, Some(policy)).await;
    let (history, recorder) = record_pods(&env.client, ns);
    Api::<Deployment>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &deployment("shop", "1.0", 1, false))
        .await
        .expect("deployment created");
    all_released(&env.client, ns, "shop", 1).await;
    env.kill_webhook().await;
    scale(&env.client, ns, "shop", 4).await;
    (env, ca, history, recorder)
}

/// Issue 9, webhook killed with failurePolicy Fail: pod creation fails (the ReplicaSet reports
/// FailedCreate and retries); once the webhook is back every pod is gated, then released, and
/// no pod ever existed without the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_killed_with_fail_policy_blocks_then_gates_every_pod() {
    let started = Instant::now();
    let ns = "fail-policy";
    let (mut env, ca, history, _recorder) = webhook_rollout("Fail", ns).await;
    let c = env.client.clone();
    let failed = wait_for("FailedCreate on the ReplicaSet", WAIT, || {
        let c = c.clone();
        async move {
            list::<Event>(&c, ns).await.into_iter().find(|e| {
                e.reason.as_deref() == Some("FailedCreate")
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ReplicaSet")
            })
        }
    })
    .await;
    let note = failed.note.clone().unwrap_or_default();
    assert!(note.contains("mpod.portcullis.keptn.sh"), "{note}");
    assert_eq!(pods(&c, ns, "shop").await.len(), 1, "no pod admitted");
    env.start_webhook(&ca).await;
    let final_pods = all_released(&c, ns, "shop", 4).await;
    // Let the recorder catch up with the final states.
    let names: BTreeSet<String> = final_pods.iter().map(|p| p.name_any()).collect();
    let h = wait_for("the recorder saw every pod released", WAIT, || {
        let h = history.lock().expect("history").clone();
        let seen = names
            .iter()
            .all(|n| h.get(n).and_then(|s| s.last()).is_some_and(|s| s.2));
        async move { seen.then_some(h) }
    })
    .await;
    for (pod, states) in &h {
        let (_, first_gated, _, first_bound) = states[0];
        assert!(
            first_gated && !first_bound,
            "{pod} first seen ungated: {states:?}"
        );
        for (rv, g, _, bound) in states {
            assert!(!(*g && *bound), "{pod} bound while gated at {rv}");
        }
    }
    assert!(
        missing_gate_reports(&c, ns).await.is_empty(),
        "no pod reported as ungated"
    );
    let wl = Api::<KeptnWorkload>::namespaced(c.clone(), ns)
        .get("shop-shop")
        .await
        .expect("KeptnWorkload");
    assert_eq!(wl.spec.version, "1.0");
    env.kill_gate().await;
    eprintln!("fail policy: {:?}", started.elapsed());
}

/// Pods with a `SchedulingGateMissing` Warning (the gate's report of ungated pods).
async fn missing_gate_reports(client: &Client, ns: &str) -> BTreeSet<String> {
    list::<Event>(client, ns)
        .await
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("SchedulingGateMissing")
                && e.type_.as_deref() == Some("Warning")
        })
        .filter_map(|e| e.regarding?.name)
        .collect()
}

/// Issue 9, webhook killed with failurePolicy Ignore: the new pods pass ungated and run, and the
/// gate reports each of them (a Warning Event on the pod and the `ungated_pods` counter) but not
/// the pod it released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_killed_with_ignore_policy_lets_pods_pass_ungated() {
    let started = Instant::now();
    let ns = "ignore-policy";
    let (mut env, _ca, _history, _recorder) = webhook_rollout("Ignore", ns).await;
    let c = env.client.clone();
    let p = wait_for("4 pods running, 3 of them never gated", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "shop").await;
            (p.len() == 4 && p.iter().all(|p| !gated(p) && ready(p))).then_some(p)
        }
    })
    .await;
    let unmarked: BTreeSet<String> = p
        .iter()
        .filter(|p| !p.annotations().contains_key(REMOVED))
        .map(|p| p.name_any())
        .collect();
    assert_eq!(unmarked.len(), 3, "three pods passed without the webhook");
    let reported = wait_for(
        "a SchedulingGateMissing Warning on each ungated pod",
        WAIT,
        || {
            let c = c.clone();
            let unmarked = unmarked.clone();
            async move {
                let r = missing_gate_reports(&c, ns).await;
                unmarked.is_subset(&r).then_some(r)
            }
        },
    )
    .await;
    assert_eq!(reported, unmarked, "the released pod is not reported");
    let port = env.gate_admin;
    wait_for(
        "portcullis_gate_ungated_pods_total 3",
        WAIT,
        || async move {
            (metric(port, "portcullis_gate_ungated_pods_total").await? == 3.0).then_some(())
        },
    )
    .await;
    env.kill_gate().await;
    eprintln!("ignore policy: {:?}", started.elapsed());
}

/// The webhook's part for tests without it: the KeptnWorkload (owned by the ReplicaSet) with a
/// pre-deployment task, and the single-service KeptnAppCreationRequest.
async fn workload(client: &Client, ns: &str, name: &str, version: &str, task: &str) {
    let deploy = deployment(name, version, 2, true);
    retry("Deployment", || async {
        Api::<Deployment>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &deploy)
            .await
    })
    .await;
    let rs = e2e::replica_set(client, ns, name).await;
    let wl: KeptnWorkload = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkload",
        "metadata": {"name": format!("{name}-{name}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs.0, "uid": rs.1}]},
        "spec": {"app": name, "version": version, "preDeploymentTasks": [task],
            "resourceReference": {"uid": rs.1, "kind": "ReplicaSet", "name": rs.0}}
    }))
    .expect("workload");
    retry("KeptnWorkload", || async {
        Api::<KeptnWorkload>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &wl)
            .await
    })
    .await;
    let kacr: KeptnAppCreationRequest = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppCreationRequest",
        "metadata": {"name": name, "annotations": {"keptn.sh/app-type": "single-service"}},
        "spec": {"appName": name}
    }))
    .expect("kacr");
    retry("KeptnAppCreationRequest", || async {
        Api::<KeptnAppCreationRequest>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &kacr)
            .await
    })
    .await;
}

/// The test's own writes retry through injected failures (an AlreadyExists after a lost
/// response counts as done), as a careful client does.
async fn retry<T, F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match f().await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "{what}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A container KeptnTaskDefinition whose Jobs' pods kwok keeps running (its label reaches them)
/// until [`finish_task`] lets one finish, so the test picks the moment a task succeeds.
async fn task_definition(client: &Client, ns: &str, name: &str) {
    let def: shared::crd::KeptnTaskDefinition = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": name, "labels": {OUTCOME: "keep-running"}, "annotations": {RUN_FOR: "200ms"}},
        "spec": {"container": {"name": "c", "image": "busybox"}}
    }))
    .expect("definition");
    Api::<shared::crd::KeptnTaskDefinition>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &def)
        .await
        .expect("definition created");
}

/// Lets task `name` succeed: once the gate has created its Job and the Job controller its pod,
/// the pod is relabelled `succeed`, so kwok ends its container with exit code 0 (after
/// `run-for`), the Job controller marks the Job Complete and the gate the task Succeeded.
/// `client` makes the test's write (it may go through the fault proxy); `deadline` bounds the
/// wait for the pod.
async fn finish_task(client: &Client, ns: &str, name: &str, deadline: Duration) {
    let pod = wait_for(&format!("the pod of {name}'s Job"), deadline, || {
        let c = client.clone();
        async move {
            let job = list::<Job>(&c, ns).await.into_iter().find(|j| {
                j.owner_references()
                    .iter()
                    .any(|o| o.kind == "KeptnTask" && o.name == name)
            })?;
            let selector = format!("job-name={}", job.name_any());
            let pods = Api::<Pod>::namespaced(c, ns)
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            pods.items.into_iter().next().map(|p| p.name_any())
        }
    })
    .await;
    let patch = json!({"metadata": {"labels": {OUTCOME: "succeed"}}});
    retry(&format!("relabelling pod {pod}"), || async {
        Api::<Pod>::namespaced(client.clone(), ns)
            .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    })
    .await;
}

/// The resourceVersion at which each KeptnTask was first seen Succeeded: after it (and only
/// after it) the workload's pods may be released.
type Successes = Arc<Mutex<BTreeMap<String, u64>>>;

/// Records when each KeptnTask of `ns` succeeds (a watch on the API server, not through any
/// proxy: it sees every change in order).
fn record_task_successes(client: &Client, ns: &str) -> (Successes, Recorder) {
    let successes: Successes = Arc::default();
    let s = successes.clone();
    let api: Api<KeptnTask> = Api::namespaced(client.clone(), ns);
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            let task = match ev {
                Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) => t,
                _ => continue,
            };
            let succeeded = task
                .status
                .as_ref()
                .is_some_and(|st| st.status == KeptnState::Succeeded);
            let rv = task.resource_version().and_then(|v| v.parse().ok());
            if let (true, Some(rv)) = (succeeded, rv) {
                s.lock()
                    .expect("successes")
                    .entry(task.name_any())
                    .or_insert(rv);
            }
        }
    });
    (successes, Recorder(task))
}

/// The resourceVersion of `task`'s success, once the recorder has seen it.
async fn succeeded_at(successes: &Successes, task: &str) -> u64 {
    wait_for(&format!("{task} recorded Succeeded"), WAIT, || {
        let rv = successes.lock().expect("successes").get(task).copied();
        async move { rv }
    })
    .await
}

/// The one pre-deployment KeptnTask of workload `wl`.
async fn pre_task(client: &Client, ns: &str, wl: &str, timeout: Duration) -> KeptnTask {
    wait_for(&format!("the pre-deployment task of {wl}"), timeout, || {
        let c = client.clone();
        async move {
            list::<KeptnTask>(&c, ns)
                .await
                .into_iter()
                .find(|t| t.spec.check_type == "pre" && t.spec.context.workload_name == wl)
        }
    })
    .await
}

/// Nothing run twice, nothing lost: one KeptnTask per workload, one Job per task, one KWV per
/// workload and one KAV per app, every KWV Completed.
async fn assert_exactly_once(client: &Client, ns: &str, apps: &[&str], version: &str) {
    for app in apps {
        wait_for(&format!("KWV {app} Completed"), WAIT, || {
            let c = client.clone();
            let name = format!("{app}-{app}-{version}");
            async move {
                (kwv_state(&c, ns, &name).await? == ("Completed".to_owned(), KeptnState::Succeeded))
                    .then_some(())
            }
        })
        .await;
    }
    let tasks = list::<KeptnTask>(client, ns).await;
    let mut per_workload: HashMap<String, Vec<String>> = HashMap::new();
    for t in &tasks {
        per_workload
            .entry(t.spec.context.workload_name.clone())
            .or_default()
            .push(t.name_any());
    }
    for app in apps {
        let names = per_workload
            .get(&format!("{app}-{app}"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(names.len(), 1, "one task for {app}: {names:?}");
    }
    let mut jobs_per_task: HashMap<String, usize> = HashMap::new();
    for j in list::<Job>(client, ns).await {
        for o in j.owner_references() {
            if o.kind == "KeptnTask" {
                *jobs_per_task.entry(o.name.clone()).or_default() += 1;
            }
        }
    }
    assert!(
        tasks
            .iter()
            .all(|t| jobs_per_task.get(&t.name_any()) == Some(&1)),
        "every task ran once: {jobs_per_task:?}"
    );
    eprintln!(
        "{ns}: {} tasks, Jobs per task {jobs_per_task:?}",
        tasks.len()
    );
    let kwvs: Vec<String> = list::<KeptnWorkloadVersion>(client, ns)
        .await
        .iter()
        .map(|k| k.name_any())
        .collect();
    assert_eq!(kwvs.len(), apps.len(), "one KWV per workload: {kwvs:?}");
    let kavs: Vec<String> = list::<KeptnAppVersion>(client, ns)
        .await
        .iter()
        .map(|k| k.name_any())
        .collect();
    assert_eq!(kavs.len(), apps.len(), "one KAV per app: {kavs:?}");
}

/// The recorded history once the watch has caught up with `pods` in their final, released
/// state (the watch delivers changes some time after the API answered the test's list).
async fn recorded_until_released(history: &PodHistory, pods: &[Pod]) -> PodHistoryMap {
    let names: BTreeSet<String> = pods.iter().map(|p| p.name_any()).collect();
    wait_for("the recorder saw every pod released", WAIT, || {
        let h = history.lock().expect("history").clone();
        let seen = names
            .iter()
            .all(|n| h.get(n).and_then(|s| s.last()).is_some_and(|s| s.2));
        async move { seen.then_some(h) }
    })
    .await
}

/// No pod of `app` was seen without the gate before `finished_rv` (its pre-deployment task's
/// success), and every pod was first seen gated.
fn assert_not_released_early(
    h: &BTreeMap<String, Vec<(u64, bool, bool, bool)>>,
    app: &str,
    finished_rv: u64,
) {
    let prefix = format!("{app}-");
    let mine: Vec<_> = h.iter().filter(|(n, _)| n.starts_with(&prefix)).collect();
    assert!(!mine.is_empty(), "pods of {app} recorded");
    for (pod, states) in mine {
        assert!(states[0].1, "{pod} first seen ungated: {states:?}");
        for (rv, g, _, bound) in states {
            assert!(
                *g || *rv > finished_rv,
                "{pod} ungated at rv {rv}, before its task succeeded at rv {finished_rv}"
            );
            assert!(!(*g && *bound), "{pod} bound while gated");
        }
    }
}

/// Issue 9, gate restart safety: three single-service workloads with a pre-deployment task; the
/// gate is SIGKILLed and restarted at 20 seeded random points (while objects appear, while
/// tasks are pending, right after each task's Job is let finish, during the releases). Nothing
/// is released early, no task or Job is created twice, and every pod ends released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_killed_at_twenty_random_points_of_a_multi_workload_rollout() {
    let started = Instant::now();
    let mut rng = Rng::seeded("gate-kill", 0x5eed_0009);
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "gate-chaos";
    env.namespace(ns, true).await;
    task_definition(&c, ns, "migrate").await;
    let (history, recorder) = record_pods(&c, ns);
    let (successes, task_recorder) = record_task_successes(&c, ns);
    let apps = ["cart", "pay", "ship"];
    env.start_gate();
    let mut kills = 0;
    let mut bounce = async |env: &mut Env, rng: &mut Rng, n: usize| {
        for _ in 0..n {
            tokio::time::sleep(rng.millis(0, 400)).await;
            env.kill_gate().await;
            env.start_gate();
            kills += 1;
        }
    };
    for app in apps {
        workload(&c, ns, app, "2", "migrate").await;
        bounce(&mut env, &mut rng, 2).await;
    }
    let mut tasks = Vec::new();
    for app in apps {
        tasks.push(
            pre_task(&c, ns, &format!("{app}-{app}"), WAIT)
                .await
                .name_any(),
        );
    }
    bounce(&mut env, &mut rng, 2).await;
    for task in &tasks {
        finish_task(&c, ns, task, WAIT).await;
        bounce(&mut env, &mut rng, 4).await;
    }
    let mut final_pods = Vec::new();
    for app in apps {
        final_pods.extend(all_released(&c, ns, app, 2).await);
    }
    assert_eq!(kills, 20);
    assert_exactly_once(&c, ns, &apps, "2").await;
    assert!(
        missing_gate_reports(&c, ns).await.is_empty(),
        "gated pods are not reported"
    );
    let h = recorded_until_released(&history, &final_pods).await;
    drop(recorder);
    for (app, task) in apps.iter().zip(&tasks) {
        let rv = succeeded_at(&successes, task).await;
        assert_not_released_early(&h, app, rv);
    }
    drop(task_recorder);
    env.kill_gate().await;
    eprintln!("gate kills: {:?}", started.elapsed());
}

/// Issue 9, API errors: during a two-workload rollout the proxy between the gate and the API
/// server fails writes with 500 (some after forwarding them: lost responses), answers status
/// writes with 409 conflicts, and closes every watch repeatedly; the test's own set-up writes
/// go through it too. The rollout still completes with no duplicate tasks or versions, and
/// nothing is released early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_and_dropped_watches_are_retried_without_duplicates() {
    let started = Instant::now();
    let mut rng = Rng::seeded("api-errors", 0x5eed_0004);
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "api-errors";
    env.namespace(ns, true).await;
    task_definition(&c, ns, "migrate").await;
    let (history, recorder) = record_pods(&c, ns);
    let (successes, task_recorder) = record_task_successes(&c, ns);
    let proxy = FaultProxy::start(&env.base.cluster).await;
    // The test's writes meet the faults too (and retry, see `retry`).
    let faulty = client_for(&proxy.kubeconfig()).await;
    env.gate_kubeconfig = proxy.kubeconfig();
    env.start_gate();
    proxy.add(
        Rule::new(Fault::InternalError)
            .verbs(&["create"])
            .resource("keptntasks")
            .namespace(ns)
            .after_commit()
            .times(1),
    );
    proxy.add(
        Rule::new(Fault::InternalError)
            .verbs(&["create"])
            .resource("keptnworkloadversions")
            .namespace(ns)
            .after_commit()
            .times(1),
    );
    proxy.add(
        Rule::new(Fault::Conflict)
            .verbs(&["patch", "update"])
            .subresource("status")
            .namespace(ns)
            .every(2)
            .times(30),
    );
    proxy.add(
        Rule::new(Fault::InternalError)
            .verbs(&["create", "update", "patch"])
            .namespace(ns)
            .every(3)
            .times(40),
    );
    let apps = ["front", "back"];
    for app in apps {
        workload(&faulty, ns, app, "5", "migrate").await;
    }
    assert!(proxy.injected() > 0, "the set-up writes met faults");
    let mut tasks = Vec::new();
    for app in apps {
        // Under the injected faults the gate's retries back off 5, 10, 20, 40 s: more than WAIT.
        let task = pre_task(&c, ns, &format!("{app}-{app}"), FAULTY_WAIT)
            .await
            .name_any();
        proxy.close_watches();
        finish_task(&faulty, ns, &task, FAULTY_WAIT).await;
        tokio::time::sleep(rng.millis(50, 300)).await;
        proxy.close_watches();
        tasks.push(task);
    }
    let mut final_pods = Vec::new();
    let closer = {
        let mut n = 0;
        let deadline = Instant::now() + FAULTY_WAIT;
        loop {
            let done = {
                let mut all = true;
                final_pods.clear();
                for app in apps {
                    let p = pods(&c, ns, app).await;
                    all &= p.len() == 2 && p.iter().all(|p| released(p) && ready(p));
                    final_pods.extend(p);
                }
                all
            };
            if done {
                break n;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for every pod released"
            );
            tokio::time::sleep(rng.millis(100, 400)).await;
            proxy.close_watches();
            n += 1;
        }
    };
    let injected = proxy.injected();
    let unfired = proxy.unfired();
    proxy.clear();
    let lost_unfired: Vec<_> = unfired.iter().filter(|r| r.after_commit).collect();
    assert!(
        lost_unfired.is_empty(),
        "the lost-response faults on KeptnTask and KWV creation fired: {lost_unfired:?}"
    );
    assert!(injected >= 10, "faults were injected: {injected}");
    assert!(
        proxy.watches_cut() > 0,
        "the gate's watches went through the proxy and were cut"
    );
    assert_exactly_once(&c, ns, &apps, "5").await;
    let h = recorded_until_released(&history, &final_pods).await;
    drop(recorder);
    for (app, task) in apps.iter().zip(&tasks) {
        let rv = succeeded_at(&successes, task).await;
        assert_not_released_early(&h, app, rv);
    }
    drop(task_recorder);
    env.kill_gate().await;
    eprintln!(
        "api errors: {injected} injected, {} watch closures ({closer} while releasing) ending \
         {} watch streams: {:?}",
        proxy.watch_closures(),
        proxy.watches_cut(),
        started.elapsed()
    );
}
