//! `make bench-gate`: release latency (pre-deployment phases done → gate removed, p50/p99 over
//! 200 pods) and the gate process's RSS with 10,000 gated pods, against a real control plane
//! ([`e2e::Cluster`]: kube-apiserver, etcd, the controller-manager's Job controller, the
//! scheduler, kwok playing the kubelets).
//!
//! The release binary of the gate runs against it. Every workload version waits for one
//! pre-deployment KeptnTask, which the gate runs as a Job; kwok keeps the Jobs' pods running
//! (`keep-running`) until the benchmark lets them finish one by one, paced, so that the figures
//! are latencies, not the throughput of a burst. Then `BENCH_IDLE_PODS` (default 10,000) more
//! gated pods wait for workload versions that never come, and the gate's RSS is read once it
//! caches them all.
//!
//! Ignored by default (minutes of work, figures depend on the machine); run with
//! `cargo build --release -p gate --bins && cargo test -p e2e --release --test gate_bench --
//! --ignored --nocapture` (the gate binary is taken from the test's own profile directory).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use shared::crd::{
    KeptnApp, KeptnState, KeptnTask, KeptnTaskDefinition, KeptnWorkload, KeptnWorkloadVersion,
};

use e2e::{GATE, GATED_LABEL, GATED_VALUE, OUTCOME, RUN_FOR, metric, wait_for};

const NS: &str = "bench";
const WORKLOADS: usize = 50;
const PODS_PER_WORKLOAD: usize = 4;
/// Gated pods cached for the RSS figure; `BENCH_IDLE_PODS` overrides it.
const IDLE_PODS: usize = 10_000;
/// Pod creations in flight at once.
const CREATE_PARALLELISM: usize = 32;
/// Time between two tasks being let finish.
const TASK_PACE: Duration = Duration::from_millis(100);
/// Which pods the benchmark's watches look at: `measured` (released and timed) or `idle`.
const ROLE: &str = "bench.portcullis.dev/role";
/// How long creating and caching the idle pods may take.
const IDLE_WAIT: Duration = Duration::from_secs(600);

fn idle_pods() -> usize {
    match std::env::var("BENCH_IDLE_PODS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("BENCH_IDLE_PODS={v} is not a count")),
        Err(_) => IDLE_PODS,
    }
}

async fn create<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("created");
}

/// Creates a pod; a transient failure (the API server or etcd overloaded) is retried, and an
/// AlreadyExists after a retry means the earlier attempt got through.
async fn create_pod(api: &Api<Pod>, value: serde_json::Value) {
    let pod: Pod = serde_json::from_value(value).expect("pod");
    let mut attempt = 0;
    loop {
        match api.create(&PostParams::default(), &pod).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 && attempt > 0 => return,
            Err(e) if attempt < 5 => {
                attempt += 1;
                eprintln!("creating pod {} (attempt {attempt}): {e}", pod.name_any());
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => panic!("pod {}: {e}", pod.name_any()),
        }
    }
}

fn gated_pod(name: &str, role: &str, app: &str, workload: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {ROLE: role, GATED_LABEL: GATED_VALUE}, "annotations": {
            "keptn.sh/app": app, "keptn.sh/workload": workload, "keptn.sh/version": "1"}},
        "spec": {"schedulingGates": [{"name": GATE}], "containers": [{"name": "c", "image": "busybox"}]}
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The RSS of `pid` once it stops moving: 2 s of samples within 2 % of each other (polled until
/// `timeout`; the last sample, marked unsettled, if it never does).
async fn settled_rss_kib(pid: u32, timeout: Duration) -> (u64, bool) {
    const WINDOW: usize = 9;
    let deadline = Instant::now() + timeout;
    let mut samples: Vec<u64> = Vec::new();
    loop {
        samples.push(rss_kib(pid).0);
        if samples.len() >= WINDOW {
            let window = &samples[samples.len() - WINDOW..];
            let (lo, hi) = (
                window.iter().min().copied().unwrap_or(0),
                window.iter().max().copied().unwrap_or(0),
            );
            if hi - lo <= hi / 50 {
                return (window[WINDOW - 1], true);
            }
        }
        if Instant::now() >= deadline {
            return (samples.last().copied().unwrap_or(0), false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The first moment a watch saw each object of kind `K` in `NS` (selected by `labels`) satisfy
/// `pick`, keyed by what `pick` returns; `ready` counts watches whose initial list is done.
fn first_seen<K, F>(
    client: &Client,
    labels: Option<&str>,
    ready: Arc<AtomicUsize>,
    pick: F,
) -> (
    Arc<Mutex<HashMap<String, Instant>>>,
    tokio::task::JoinHandle<()>,
)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    F: Fn(&K) -> Option<String> + Send + 'static,
{
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let api: Api<K> = Api::namespaced(client.clone(), NS);
    let mut config = watcher::Config::default();
    if let Some(l) = labels {
        config = config.labels(l);
    }
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, config).boxed();
        while let Ok(Some(event)) = events.try_next().await {
            match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                    if let Some(key) = pick(&o) {
                        s.lock()
                            .expect("seen")
                            .entry(key)
                            .or_insert_with(Instant::now);
                    }
                }
                watcher::Event::InitDone => {
                    ready.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    });
    (seen, task)
}

/// The KeptnWorkloadVersion that owns a KeptnTask.
fn owning_kwv(task: &KeptnTask) -> Option<String> {
    task.owner_references()
        .iter()
        .find(|o| o.kind == "KeptnWorkloadVersion")
        .map(|o| o.name.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run through `make bench-gate`"]
async fn bench_release_latency_and_rss() {
    let idle = idle_pods();
    let cluster = e2e::Cluster::with_crds().await;
    let c = cluster.client();
    create(
        &Api::<Namespace>::all(c.clone()),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS,
            "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"}}}),
    )
    .await;
    e2e::default_service_account(&c, NS).await;
    // The tasks' Job pods run until the benchmark relabels them `succeed` (tools/kwok-stages.yaml).
    create(
        &Api::<KeptnTaskDefinition>::namespaced(c.clone(), NS),
        json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
            "metadata": {"name": "t", "labels": {OUTCOME: "keep-running"},
                "annotations": {RUN_FOR: "1ms"}},
            "spec": {"container": {"name": "c", "image": "busybox"}}}),
    )
    .await;

    let port = e2e::free_port();
    let log = tempfile::NamedTempFile::new().expect("log");
    let mut gate = tokio::process::Command::new(e2e::binary("portcullis-gate"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["--admin-address", &format!("127.0.0.1:{port}")])
        .args(["--sweep-interval-seconds", "1"])
        .args(["--keptn-metrics-port", "0"])
        .env("LOG_FILTER", "warn")
        .env_remove("POD_NAMESPACE")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::from(log.reopen().expect("log")))
        .stderr(Stdio::from(log.reopen().expect("log")))
        .kill_on_drop(true)
        .spawn()
        .expect("gate");
    let pid = gate.id().expect("pid");

    // 200 gated pods, 4 per workload, waiting for their workload versions.
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    futures::stream::iter(0..WORKLOADS * PODS_PER_WORKLOAD)
        .map(|k| {
            let pods = pods.clone();
            let (i, j) = (k / PODS_PER_WORKLOAD, k % PODS_PER_WORKLOAD);
            async move {
                create_pod(
                    &pods,
                    gated_pod(&format!("p{i}-{j}"), "measured", &format!("app{i}"), "w"),
                )
                .await;
            }
        })
        .buffer_unordered(CREATE_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    let total = WORKLOADS * PODS_PER_WORKLOAD;
    wait_for(
        "the gate sees 200 gated pods",
        Duration::from_secs(120),
        || async move {
            (metric(port, "portcullis_gated_pods").await? == total as f64).then_some(())
        },
    )
    .await;

    // 50 apps with one workload each; every workload version waits for one pre-deployment task.
    let apps: Api<KeptnApp> = Api::namespaced(c.clone(), NS);
    let workloads: Api<KeptnWorkload> = Api::namespaced(c.clone(), NS);
    for i in 0..WORKLOADS {
        create(
            &apps,
            json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
            "metadata": {"name": format!("app{i}")},
            "spec": {"version": "1", "workloads": [{"name": "w", "version": "1"}]}}),
        )
        .await;
        create(
            &workloads,
            json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkload",
            "metadata": {"name": format!("app{i}-w")},
            "spec": {"app": format!("app{i}"), "version": "1", "preDeploymentTasks": ["t"],
                "resourceReference": {"uid": format!("00000000-0000-0000-0000-{i:012}"),
                    "kind": "ReplicaSet", "name": format!("w{i}")}}}),
        )
        .await;
    }

    // Every task's Job pod running: KeptnTask name -> (its KWV, its Job's pod).
    let tasks: Api<KeptnTask> = Api::namespaced(c.clone(), NS);
    let jobs: Api<Job> = Api::namespaced(c.clone(), NS);
    let task_pods: Vec<(String, String)> = wait_for(
        "50 pre-deployment tasks with running Job pods",
        Duration::from_secs(180),
        || {
            let (tasks, jobs, pods) = (tasks.clone(), jobs.clone(), pods.clone());
            async move {
                let tasks = tasks.list(&ListParams::default()).await.ok()?.items;
                if tasks.len() != WORKLOADS {
                    return None;
                }
                let kwv_of_task: HashMap<String, String> = tasks
                    .iter()
                    .map(|t| Some((t.name_any(), owning_kwv(t)?)))
                    .collect::<Option<_>>()?;
                let task_of_job: HashMap<String, String> = jobs
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .iter()
                    .filter_map(|j| {
                        let owner = j
                            .owner_references()
                            .iter()
                            .find(|o| o.kind == "KeptnTask")?
                            .name
                            .clone();
                        Some((j.name_any(), owner))
                    })
                    .collect();
                let running: Vec<(String, String)> = pods
                    .list(&ListParams::default().labels("job-name"))
                    .await
                    .ok()?
                    .items
                    .iter()
                    .filter(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .filter_map(|p| {
                        let task = task_of_job.get(p.labels().get("job-name")?)?;
                        Some((kwv_of_task.get(task)?.clone(), p.name_any()))
                    })
                    .collect();
                (running.len() == WORKLOADS).then_some(running)
            }
        },
    )
    .await;

    // Watch when each task is seen Succeeded, each KWV's pre-deployment phases done, and each
    // measured pod without its gate.
    let ready = Arc::new(AtomicUsize::new(0));
    let (task_done, task_watch) = first_seen::<KeptnTask, _>(&c, None, ready.clone(), |t| {
        let succeeded = t
            .status
            .as_ref()
            .is_some_and(|s| s.status == KeptnState::Succeeded);
        if succeeded { owning_kwv(t) } else { None }
    });
    let (pre_done, kwv_watch) =
        first_seen::<KeptnWorkloadVersion, _>(&c, None, ready.clone(), |k| {
            let done = k.status.as_ref().is_some_and(|s| {
                s.pre_deployment_status == KeptnState::Succeeded
                    && s.pre_deployment_evaluation_status == KeptnState::Succeeded
            });
            done.then(|| k.name_any())
        });
    let (released, pod_watch) =
        first_seen::<Pod, _>(&c, Some(&format!("{ROLE}=measured")), ready.clone(), |p| {
            (!e2e::gated(p)).then(|| p.name_any())
        });
    let r = ready.clone();
    wait_for("the watches listed", Duration::from_secs(60), || {
        let r = r.clone();
        async move { (r.load(Ordering::SeqCst) >= 3).then_some(()) }
    })
    .await;
    assert!(
        released.lock().expect("released").is_empty(),
        "pods released before any task finished"
    );

    // Acting as the tasks' containers: let the Job pods finish one by one, paced.
    let mut finished_at: HashMap<String, Instant> = HashMap::new();
    let mut pace = tokio::time::interval(TASK_PACE);
    for (kwv, pod) in &task_pods {
        pace.tick().await;
        pods.patch(
            pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {OUTCOME: "succeed"}}})),
        )
        .await
        .expect("Job pod relabelled");
        finished_at.insert(kwv.clone(), Instant::now());
    }
    let released_all = released.clone();
    wait_for("all 200 pods released", Duration::from_secs(180), || {
        let released_all = released_all.clone();
        async move { (released_all.lock().expect("released").len() == total).then_some(()) }
    })
    .await;
    for w in [task_watch, kwv_watch, pod_watch] {
        w.abort();
    }
    let pre_done = pre_done.lock().expect("pre_done").clone();
    let task_done = task_done.lock().expect("task_done").clone();
    let released = released.lock().expect("released").clone();
    let (mut from_pre, mut from_task, mut from_finish) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..WORKLOADS {
        let kwv = format!("app{i}-w-1");
        for j in 0..PODS_PER_WORKLOAD {
            let at = released[&format!("p{i}-{j}")];
            from_pre.push(at.saturating_duration_since(pre_done[&kwv]));
            from_task.push(at.saturating_duration_since(task_done[&kwv]));
            from_finish.push(at.saturating_duration_since(finished_at[&kwv]));
        }
    }
    from_pre.sort();
    from_task.sort();
    from_finish.sort();
    let (rss_after_release, _) = rss_kib(pid);

    // The idle pods, waiting for workload versions that do not exist.
    let started = Instant::now();
    futures::stream::iter(0..idle)
        .map(|k| {
            let pods = pods.clone();
            async move {
                create_pod(
                    &pods,
                    gated_pod(
                        &format!("idle-{k}"),
                        "idle",
                        &format!("idle{}", k % 100),
                        "w",
                    ),
                )
                .await;
            }
        })
        .buffer_unordered(CREATE_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    let created_in = started.elapsed();
    wait_for(
        &format!("the gate sees {idle} gated pods"),
        IDLE_WAIT,
        || async move { (metric(port, "portcullis_gated_pods").await? == idle as f64).then_some(()) },
    )
    .await;
    let cached_in = started.elapsed();
    let (rss, settled) = settled_rss_kib(pid, Duration::from_secs(60)).await;
    let (_, hwm) = rss_kib(pid);

    let report = format!(
        "real control plane (kube-apiserver + etcd, kwok nodes); release binary of the gate\n\
         release latency over {} pods (KWV pre-deployment phases done -> gate removed): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         release latency (task seen Succeeded -> gate removed): p50 {:.1} ms, p99 {:.1} ms\n\
         whole chain (task's Job pod let finish -> gate removed; kwok, Job controller, task, KWV): p50 {:.1} ms, p99 {:.1} ms\n\
         gate RSS after release of 200: {:.1} MiB\n\
         gate RSS with {idle} gated pods: {:.1} MiB{} (peak {:.1} MiB); pods created in {:.1} s ({:.0}/s, {CREATE_PARALLELISM} in flight), all cached by the gate after {:.1} s\n",
        from_pre.len(),
        ms(percentile(&from_pre, 0.5)),
        ms(percentile(&from_pre, 0.99)),
        ms(from_pre.last().copied().unwrap_or_default()),
        ms(percentile(&from_task, 0.5)),
        ms(percentile(&from_task, 0.99)),
        ms(percentile(&from_finish, 0.5)),
        ms(percentile(&from_finish, 0.99)),
        rss_after_release as f64 / 1024.0,
        rss as f64 / 1024.0,
        if settled {
            ""
        } else {
            " (not settled after 60 s)"
        },
        hwm as f64 / 1024.0,
        created_in.as_secs_f64(),
        idle as f64 / created_in.as_secs_f64().max(1e-9),
        cached_in.as_secs_f64(),
    );
    println!("{report}");
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-gate.txt"),
        &report,
    );
    let _ = gate.start_kill();
    let _ = gate.wait().await;
    drop(cluster);
}
