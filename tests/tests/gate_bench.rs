//! `make bench-gate`: release latency (pre-deployment phases done → gate removed, p50/p99 over
//! 200 pods) and the gate process's RSS with 10,000 gated pods, against kubesim.
//!
//! Ignored by default (minutes of work, figures depend on the machine); run with
//! `cargo test -p gate --release --test bench -- --ignored --nocapture`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use shared::crd::{KeptnApp, KeptnState, KeptnTask, KeptnWorkload, KeptnWorkloadVersion};



use e2e::{GATE, metric, wait_for};

const NS: &str = "bench";
const WORKLOADS: usize = 50;
const PODS_PER_WORKLOAD: usize = 4;
const IDLE_PODS: usize = 10_000;

async fn create<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("created");
}

fn gated_pod(name: &str, app: &str, workload: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": {
            "keptn.sh/app": app, "keptn.sh/workload": workload, "keptn.sh/version": "1"}},
        "spec": {"schedulingGates": [{"name": GATE}], "containers": [{"name": "c", "image": "busybox"}]}
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run through `make bench-gate`"]
async fn bench_release_latency_and_rss() {
    let sim = kubesim::Sim::start(kubesim::SimConfig {
        watch_history: 200_000,
        ..Default::default()
    })
    .await
    .expect("kubesim");
    let c: Client = sim.client().expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    for crd in shared::crd::all() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("crd");
    }
    let cc = c.clone();
    wait_for("CRDs served", Duration::from_secs(30), || {
        let cc = cc.clone();
        async move {
            Api::<KeptnTask>::all(cc)
                .list(&ListParams::default())
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
    create(
        &Api::<Namespace>::all(c.clone()),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await;
    create(
        &Api::<shared::crd::KeptnTaskDefinition>::namespaced(c.clone(), NS),
        json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
            "metadata": {"name": "t"}, "spec": {"container": {"name": "c", "image": "busybox"}}}),
    )
    .await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let log = tempfile::NamedTempFile::new().expect("log");
    let mut gate = tokio::process::Command::new(e2e::binary("portcullis-gate"))
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .args(["--admin-address", &format!("127.0.0.1:{port}")])
        .args(["--sweep-interval-seconds", "1"])
        .args(["--keptn-metrics-port", "0"])
        .env("LOG_FILTER", "warn")
        .stdout(Stdio::from(log.reopen().expect("log")))
        .stderr(Stdio::from(log.reopen().expect("log")))
        .kill_on_drop(true)
        .spawn()
        .expect("gate");
    let pid = gate.id().expect("pid");

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
                "resourceReference": {"uid": "", "kind": "Deployment", "name": format!("w{i}")}}}),
        )
        .await;
    }
    let tasks: Api<KeptnTask> = Api::namespaced(c.clone(), NS);
    let all_tasks = wait_for("50 pre-deployment tasks", Duration::from_secs(120), || {
        let tasks = tasks.clone();
        async move {
            let l = tasks.list(&ListParams::default()).await.ok()?;
            (l.items.len() == WORKLOADS).then_some(l.items)
        }
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    for i in 0..WORKLOADS {
        for j in 0..PODS_PER_WORKLOAD {
            create(
                &pods,
                gated_pod(&format!("p{i}-{j}"), &format!("app{i}"), "w"),
            )
            .await;
        }
    }
    let total = (WORKLOADS * PODS_PER_WORKLOAD) as f64;
    wait_for(
        "the gate sees 200 gated pods",
        Duration::from_secs(60),
        || async move { (metric(port, "portcullis_gated_pods").await? == total).then_some(()) },
    )
    .await;

    // Watch when each KWV's pre-deployment phases are done and when each pod loses its gate.
    let pre_done: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let released: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let kwv_watch = {
        let pre_done = pre_done.clone();
        let api: Api<KeptnWorkloadVersion> = Api::namespaced(c.clone(), NS);
        tokio::spawn(async move {
            let mut s = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Ok(Some(k)) = s.try_next().await {
                let done = k.status.as_ref().is_some_and(|s| {
                    s.pre_deployment_status == KeptnState::Succeeded
                        && s.pre_deployment_evaluation_status == KeptnState::Succeeded
                });
                if done {
                    pre_done
                        .lock()
                        .unwrap()
                        .entry(k.name_any())
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let pod_watch = {
        let released = released.clone();
        let api = pods.clone();
        tokio::spawn(async move {
            let mut s = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Ok(Some(p)) = s.try_next().await {
                let gated = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.scheduling_gates.as_ref())
                    .is_some_and(|g| g.iter().any(|g| g.name == GATE));
                if !gated {
                    released
                        .lock()
                        .unwrap()
                        .entry(p.name_any())
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await; // watches established (pacing only)

    // Acting as the task controller: finish the tasks one by one, paced so that the figure is
    // a latency, not a throughput.
    let mut finished_at: HashMap<String, Instant> = HashMap::new();
    for t in &all_tasks {
        let kwv = t.metadata.owner_references.as_ref().expect("owner")[0]
            .name
            .clone();
        tasks
            .patch_status(
                &t.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"status": "Succeeded"}})),
            )
            .await
            .expect("task done");
        finished_at.insert(kwv, Instant::now());
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let released_all = released.clone();
    wait_for("all 200 pods released", Duration::from_secs(120), || {
        let released_all = released_all.clone();
        async move { (released_all.lock().unwrap().len() == total as usize).then_some(()) }
    })
    .await;
    kwv_watch.abort();
    pod_watch.abort();
    let pre_done = pre_done.lock().unwrap().clone();
    let released = released.lock().unwrap().clone();
    let mut from_pre = Vec::new();
    let mut from_task = Vec::new();
    for i in 0..WORKLOADS {
        let kwv = format!("app{i}-w-1");
        for j in 0..PODS_PER_WORKLOAD {
            let at = released[&format!("p{i}-{j}")];
            from_pre.push(at.saturating_duration_since(pre_done[&kwv]));
            from_task.push(at.saturating_duration_since(finished_at[&kwv]));
        }
    }
    from_pre.sort();
    from_task.sort();
    let (rss_after_release, _) = rss_kib(pid);

    // 10,000 more gated pods, waiting for workload versions that do not exist.
    let started = Instant::now();
    futures::stream::iter(0..IDLE_PODS)
        .map(|k| {
            let pods = pods.clone();
            async move {
                create(
                    &pods,
                    gated_pod(&format!("idle-{k}"), &format!("idle{}", k % 100), "w"),
                )
                .await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let created_in = started.elapsed();
    wait_for(
        "the gate sees 10,000 gated pods",
        Duration::from_secs(300),
        || async move {
            (metric(port, "portcullis_gated_pods").await? == IDLE_PODS as f64).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // settle after the last reconcile
    let (rss, hwm) = rss_kib(pid);

    let report = format!(
        "release latency over {} pods (KWV pre-deployment phases done -> gate removed): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         release latency (task Succeeded written -> gate removed): p50 {:.1} ms, p99 {:.1} ms\n\
         gate RSS after release of 200: {:.1} MiB\n\
         gate RSS with {IDLE_PODS} gated pods: {:.1} MiB (peak {:.1} MiB); pods created in {:.1} s\n",
        from_pre.len(),
        percentile(&from_pre, 0.5).as_secs_f64() * 1e3,
        percentile(&from_pre, 0.99).as_secs_f64() * 1e3,
        from_pre.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        percentile(&from_task, 0.5).as_secs_f64() * 1e3,
        percentile(&from_task, 0.99).as_secs_f64() * 1e3,
        rss_after_release as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        created_in.as_secs_f64(),
    );
    println!("{report}");
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-gate.txt"),
        &report,
    );
    let _ = gate.start_kill();
    let _ = gate.wait().await;
    sim.shutdown().await;
}
