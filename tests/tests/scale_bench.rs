//! `make bench-scale` (issue 18): what the webhook and the gate cost on a big cluster, measured on
//! a real control plane ([`e2e::Cluster`]: kube-apiserver, etcd, the controller-manager, the
//! scheduler, kwok playing the kubelets), once per cluster size.
//!
//! For every N of `BENCH_PODS` (comma-separated, default `10000,100000`), on a fresh cluster:
//!
//! 1. **Filler.** N unrelated pods, 0.3·N ReplicaSets and 0.1·N Deployments in `fill-*`
//!    namespaces (one per 1,000 pods, 10 to 100), created 48 at a time by the admin. The pods are
//!    bare objects bound (`spec.nodeName`) to tainted kwok nodes of their own (`filler-*`, 4,000
//!    pods each, within the nodes' 5,000-pod capacity), so the scheduler is not in the way. The
//!    benchmark writes each one's `Running` status (podIP, conditions, container statuses: the
//!    size of a real running pod) right after creating it, and kwok, which keeps the nodes alive,
//!    leaves them alone: played by kwok, 100,000 pods took 40 minutes, and kwok was still
//!    replaying stale updates of them when the rollout began, so no task's Job pod started.
//!    It then waits until every one is `Running`. The ReplicaSets have `replicas: 0`,
//!    the Deployments `replicas: 0` and `paused: true` (so the deployment controller creates no
//!    ReplicaSet for them); both carry a full pod template.
//! 2. **Start.** the static install's (`deploy/portcullis.yaml`) RBAC, then the release webhook alone, then the release gate
//!    alone (`--leader-elect`, as deployed), each under its own ServiceAccount's token. For each:
//!    time from spawn to its `/readyz` answering 200 (polled every 50 ms), its `VmRSS` once ready
//!    and stable (2 s of samples within 2 %), and what it listed from spawn until then: bytes are
//!    the growth of the API server's `apiserver_response_sizes_sum{verb="LIST"}` and objects of
//!    `apiserver_{cache,storage}_list_returned_objects_total` in that window. Those metrics count
//!    every client's lists, so the window also compares the API server's LIST count
//!    (`apiserver_request_total{verb="LIST"}`) with the process's own lists in the audit log
//!    (`tools/audit-policy.yaml` logs every ServiceAccount request): the report says so when
//!    someone else listed too. A watch that streams its initial list (`sendInitialEvents`) is
//!    not a LIST: such watches are counted and reported, their bytes are not.
//! 3. **Rollout.** `BENCH_WORKLOADS` (default 1,000) Deployments of 2 replicas in 4 enabled
//!    namespaces, each with one pre-deployment task (a container KeptnTaskDefinition whose Job
//!    pods kwok completes after 100 ms), created 32 at a time. Measured from the first create:
//!    time until every pod is `Running` and every KeptnWorkloadVersion `Completed` (each waited
//!    for with a deadline; a timeout, a Failed workload version or a pod the webhook did not gate
//!    fails the benchmark); the webhook's and the gate's API requests per managed pod (the audit
//!    log, by user, requests received during the rollout; the gate's Lease renewals are counted
//!    apart); and the gate's release latency, p50/p99 over all pods, twice: from the pod's
//!    KeptnTask first seen `Succeeded` to the pod first seen without the scheduling gate, and from
//!    the pod first seen (created) to the same. "Seen" is this test's own watches. Where a
//!    workload's time goes: p50/p99 over the workloads of each stage (first pod created →
//!    workload version → task → Job → Job Complete → task Succeeded → last pod released → last
//!    pod Running → workload version Completed), and the gate's failed (retried) reconciles and
//!    dropped Events, from its `/metrics`.
//!
//! 4. **Without Portcullis.** The webhook and the gate stopped and unregistered, the same number
//!    of Deployments of 2 replicas and, per workload, a Job like its task's (kwok completes its
//!    pod after 100 ms), all created at once in plain namespaces: time until every pod is
//!    `Running` and every Job `Complete`. That is the control plane's floor for the rollout on
//!    this machine (the managed rollout runs each Job before its pods).
//!
//! `BENCH_KUBERNETES_EVENTS` (default `all`) is the gate's `--kubernetes-events`: `warnings`
//! measures the rollout without the `Normal` phase Events.
//!
//! kwok plays 4 pod stages at once by default, ~50 pods a second here: `make bench-scale` sets
//! `PORTCULLIS_KWOK_PARALLELISM=32`, which `tools/cluster.sh` passes on to kwok.
//!
//! The kube-apiserver limits do not get in the way: `tools/cluster.sh` starts it through kwokctl
//! with `--disable-qps-limits` (`--max-requests-inflight=0`, `--max-mutating-requests-inflight=0`,
//! priority and fairness off), etcd's quota is 8 GiB, and the watch cache sizes itself.
//!
//! The table (one row per N) is printed and written to `<target>/bench-scale.md`, with the
//! details (request breakdowns) below it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use shared::crd::{KeptnState, KeptnTask, KeptnTaskDefinition, KeptnWorkloadVersion};

use e2e::{
    Cluster, INSTALL_NS, OUTCOME, Processes, RBAC_KINDS, RUN_FOR, SERVICE, deploy_documents,
    wait_for,
};

const WEBHOOK_SA: &str = "portcullis-webhook";
const GATE_SA: &str = "portcullis-gate";
/// Marks the filler objects and nodes.
const FILLER: &str = "bench.portcullis.dev/filler";
/// A pod label kwok is told to leave alone (`tools/cluster.sh`, with
/// `PORTCULLIS_KWOK_PARALLELISM`): the benchmark writes the filler pods' status itself.
const KWOK_STATUS: &str = "kwok.portcullis.dev/status";
/// Marks the rollout's pods.
const ROLE: &str = "bench.portcullis.dev/role";
/// Filler creations in flight at once.
const FILL_PARALLELISM: usize = 48;
/// Rollout Deployment creations in flight at once.
const ROLLOUT_PARALLELISM: usize = 32;
/// Filler pods per filler node (kwok's nodes hold 5,000, `tools/kwok-stages.yaml`).
const PODS_PER_NODE: usize = 4000;
const ROLLOUT_NAMESPACES: usize = 4;
const PODS_PER_WORKLOAD: usize = 2;
/// How long a task's Job pod runs (kwok).
const TASK_RUN_FOR: &str = "100ms";
const LOG_FILTER: &str = "warn";

fn env_counts(name: &str, default: &str) -> Vec<usize> {
    let v = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v}: {s} is not a count"))
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB (0 once it is gone).
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
        let (rss, _) = rss_kib(pid);
        assert!(rss > 0, "process {pid} is gone");
        samples.push(rss);
        if samples.len() >= WINDOW {
            let window = &samples[samples.len() - WINDOW..];
            let lo = window.iter().min().copied().unwrap_or(0);
            let hi = window.iter().max().copied().unwrap_or(0);
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

/// Runs `op` (given the attempt number, from 0) until it succeeds, retrying a transient failure
/// (the API server or etcd overloaded) up to 8 times with a growing pause; panics after that.
async fn retried<F, Fut>(what: &str, mut op: F)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match op(attempt).await {
            Ok(()) => return,
            Err(e) if attempt < 8 => {
                attempt += 1;
                eprintln!("{what} (attempt {attempt}): {e}");
                tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Creates `value` as a `K`, [`retried`]; an AlreadyExists after a retry means the earlier
/// attempt got through.
async fn create<K>(api: &Api<K>, value: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).expect("object");
    let obj = &obj;
    retried(
        &format!("creating {}", obj.name_any()),
        |attempt| async move {
            match api.create(&PostParams::default(), obj).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 && attempt > 0 => Ok(()),
                Err(e) => Err(e),
            }
        },
    )
    .await;
}

/// Whether a Job has completed.
fn job_complete(j: &Job) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

// ---- the filler ----

/// A container as a real workload's: image, port, env, resources, probe.
fn container(image: &str) -> Value {
    json!({
        "name": "app", "image": image,
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}
    })
}

/// Tolerations of the filler nodes' taint and of a node going NotReady or unreachable (kwok's
/// heartbeats may lag on a loaded machine; the pods must not be evicted then).
fn filler_tolerations() -> Value {
    json!([
        {"key": FILLER, "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
    ])
}

fn filler_template(app: &str) -> Value {
    json!({
        "metadata": {"labels": {"app.kubernetes.io/name": app, FILLER: "1"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
        "spec": {"containers": [container(&format!("registry.example.com/{app}:1.4.2"))],
            "tolerations": filler_tolerations()}
    })
}

/// The kinds of the filler objects, in creation order.
#[derive(Clone, Copy)]
enum Filler {
    Deployment(usize),
    ReplicaSet(usize),
    Pod(usize),
}

struct Sizes {
    pods: usize,
    replica_sets: usize,
    deployments: usize,
    namespaces: usize,
    nodes: usize,
}

impl Sizes {
    fn of(pods: usize) -> Sizes {
        Sizes {
            pods,
            replica_sets: pods * 3 / 10,
            deployments: pods / 10,
            namespaces: (pods / 1000).clamp(10, 100),
            nodes: pods.div_ceil(PODS_PER_NODE).max(1),
        }
    }

    fn objects(&self) -> usize {
        self.pods + self.replica_sets + self.deployments
    }

    fn nth(&self, k: usize) -> Filler {
        if k < self.deployments {
            Filler::Deployment(k)
        } else if k < self.deployments + self.replica_sets {
            Filler::ReplicaSet(k - self.deployments)
        } else {
            Filler::Pod(k - self.deployments - self.replica_sets)
        }
    }
}

async fn create_filler(c: &Client, s: &Sizes, which: Filler) {
    let ns = |i: usize| format!("fill-{}", i % s.namespaces);
    match which {
        Filler::Deployment(i) => {
            let app = format!("svc-{i}");
            create(
                &Api::<Deployment>::namespaced(c.clone(), &ns(i)),
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": app, "labels": {FILLER: "1"}},
                    "spec": {"replicas": 0, "paused": true,
                        "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                        "template": filler_template(&app)}}),
            )
            .await;
        }
        Filler::ReplicaSet(i) => {
            let app = format!("rs-{i}");
            create(
                &Api::<ReplicaSet>::namespaced(c.clone(), &ns(i)),
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": app, "labels": {FILLER: "1"},
                        "annotations": {"deployment.kubernetes.io/revision": "3"}},
                    "spec": {"replicas": 0,
                        "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                        "template": filler_template(&app)}}),
            )
            .await;
        }
        Filler::Pod(i) => {
            // Pods of ~1/10 as many apps, named as a ReplicaSet's would be (they are bare).
            let app = format!("app-{}", i / 10);
            let mut pod = filler_template(&app);
            pod["apiVersion"] = json!("v1");
            pod["kind"] = json!("Pod");
            pod["metadata"]["name"] = json!(format!("{app}-5d8f7b9c4-{i}"));
            pod["metadata"]["labels"]["pod-template-hash"] = json!("5d8f7b9c4");
            pod["metadata"]["labels"][KWOK_STATUS] = json!("external");
            let node = i % s.nodes;
            pod["spec"]["nodeName"] = json!(format!("filler-{node}"));
            let name = pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let api = Api::<Pod>::namespaced(c.clone(), &ns(i));
            create(&api, pod).await;
            set_running(&api, &name, i, node).await;
        }
    }
}

/// Writes the status kwok's `pod-running` stage would (`tools/kwok-stages.yaml`): Running and
/// Ready, IPs, one running container. kwok leaves filler pods alone (`KWOK_STATUS`): it plays
/// about 70 pods a second here, and after 100,000 filler pods it was still replaying stale
/// updates of them when the rollout began, which left every task's Job pod Pending.
async fn set_running(api: &Api<Pod>, name: &str, i: usize, node: usize) {
    let now = jiff::Timestamp::now().to_string();
    // 10.64.0.0/10, apart from kwok's pod CIDR (10.0.0.0/12).
    let ip = format!("10.{}.{}.{}", 64 + (i >> 16), (i >> 8) & 255, i & 255);
    let host = format!("10.250.{}.{}", node >> 8, node & 255);
    let app = name.rsplitn(3, '-').nth(2).unwrap_or(name);
    let conditions: Vec<Value> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": now}))
        .into();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host, "hostIPs": [{"ip": host}],
        "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": now,
        "containerStatuses": [{"name": "app", "image": format!("registry.example.com/{app}:1.4.2"),
            "imageID": "", "ready": true, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": now}}}]
    }});
    let status = &status;
    retried(&format!("status of {name}"), |_| async move {
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .map(|_| ())
    })
    .await;
}

/// Creates the filler (filler pods with their `Running` status) and waits until every filler
/// pod reads `Running`; returns (created in, all
/// Running after), both from the start.
async fn fill(c: &Client, s: &Sizes) -> (Duration, Duration) {
    let started = Instant::now();
    let nodes: Api<Node> = Api::all(c.clone());
    for n in 0..s.nodes {
        let name = format!("filler-{n}");
        create(
            &nodes,
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": name, FILLER: "1"}},
                "spec": {"taints": [{"key": FILLER, "value": "1", "effect": "NoSchedule"}]}}),
        )
        .await;
    }
    let namespaces: Api<Namespace> = Api::all(c.clone());
    for i in 0..s.namespaces {
        create(
            &namespaces,
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": format!("fill-{i}"), "labels": {FILLER: "1"}}}),
        )
        .await;
    }
    futures::future::join_all(
        (0..s.namespaces)
            .map(|i| async move { e2e::default_service_account(c, &format!("fill-{i}")).await }),
    )
    .await;
    let want_nodes = s.nodes;
    wait_for("the filler nodes Ready", Duration::from_secs(120), || {
        let nodes = nodes.clone();
        async move {
            let list = nodes
                .list(&ListParams::default().labels(&format!("{FILLER}=1")))
                .await
                .ok()?;
            let ready = list
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            (ready == want_nodes).then_some(())
        }
    })
    .await;

    let done = Arc::new(AtomicUsize::new(0));
    let total = s.objects();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "  filler: {}/{total} objects created after {:.0} s",
                    done.load(Ordering::Relaxed),
                    started.elapsed().as_secs_f64()
                );
            }
        })
    };
    futures::stream::iter(0..total)
        .map(|k| {
            let done = done.clone();
            async move {
                create_filler(c, s, s.nth(k)).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
        .buffer_unordered(FILL_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    progress.abort();
    let created = started.elapsed();
    eprintln!(
        "  filler: {total} objects created in {:.1} s ({:.0}/s); checking that every pod is Running",
        created.as_secs_f64(),
        total as f64 / created.as_secs_f64().max(1e-9)
    );

    // Every filler pod Running: none left whose phase is anything else.
    let pods: Api<Pod> = Api::all(c.clone());
    let not_running = ListParams::default()
        .labels(&format!("{FILLER}=1"))
        .fields("status.phase!=Running")
        .limit(1);
    let timeout = Duration::from_secs(120) + Duration::from_millis(20 * s.pods as u64);
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    loop {
        match pods.list(&not_running).await {
            Ok(l) if l.items.is_empty() && l.metadata.continue_.is_none() => break,
            Ok(_) => {}
            Err(e) => eprintln!("  listing filler pods: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {:.0} s waiting for the {} filler pods to be Running",
            timeout.as_secs_f64(),
            s.pods
        );
        if last_report.elapsed() >= Duration::from_secs(30) {
            eprintln!(
                "  filler: pods not all Running yet after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    (created, started.elapsed())
}

// ---- the API server's counters and audit log ----

/// Sums of the API server's LIST counters (`/metrics`).
#[derive(Clone, Copy, Debug, Default)]
struct ListCounters {
    bytes: f64,
    objects: f64,
    requests: f64,
}

impl std::ops::Sub for ListCounters {
    type Output = ListCounters;
    fn sub(self, o: ListCounters) -> ListCounters {
        ListCounters {
            bytes: self.bytes - o.bytes,
            objects: self.objects - o.objects,
            requests: self.requests - o.requests,
        }
    }
}

async fn list_counters(c: &Client) -> ListCounters {
    let req = hyper::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = c
        .request_text(req)
        .await
        .expect("the API server's /metrics");
    let mut out = ListCounters::default();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or_default();
        let list = series.contains("verb=\"LIST\"");
        match name {
            "apiserver_response_sizes_sum" if list => out.bytes += value,
            "apiserver_request_total" if list => out.requests += value,
            "apiserver_cache_list_returned_objects_total"
            | "apiserver_storage_list_returned_objects_total" => out.objects += value,
            _ => {}
        }
    }
    out
}

/// Waits (up to 30 s) until the API server has served no LIST for 2 s, so that a process's
/// start window holds no one else's lists (a CRD's storage re-created, say, makes watchers relist).
async fn lists_quiet(c: &Client) -> ListCounters {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = list_counters(c).await;
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = list_counters(c).await;
        if now.requests != last.requests {
            quiet_since = Instant::now();
        }
        last = now;
        if quiet_since.elapsed() >= Duration::from_secs(2) || Instant::now() >= deadline {
            return last;
        }
    }
}

/// One request in the audit log.
struct Audited {
    user: String,
    verb: String,
    /// `resource[/subresource]`.
    resource: String,
    uri: String,
    received: jiff::Timestamp,
}

/// Every request of the audit log once (records of several stages share an auditID).
fn audit_log(cluster: &Cluster) -> Vec<Audited> {
    let path = cluster
        .kubeconfig()
        .parent()
        .expect("cluster directory")
        .join("audit.log");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let id = e["auditID"].as_str().unwrap_or_default().to_owned();
        if !seen.insert(id) {
            continue;
        }
        let Some(received) = e["requestReceivedTimestamp"]
            .as_str()
            .and_then(|t| t.parse().ok())
        else {
            continue;
        };
        let r = &e["objectRef"];
        let resource = match r["subresource"].as_str() {
            Some(sub) => format!("{}/{sub}", r["resource"].as_str().unwrap_or("")),
            None => r["resource"].as_str().unwrap_or("-").to_owned(),
        };
        out.push(Audited {
            user: e["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            verb: e["verb"].as_str().unwrap_or_default().to_owned(),
            resource,
            uri: e["requestURI"].as_str().unwrap_or_default().to_owned(),
            received,
        });
    }
    out
}

fn user(sa: &str) -> String {
    format!("system:serviceaccount:{INSTALL_NS}:{sa}")
}

// ---- starting the processes ----

/// What one process's start cost.
struct Start {
    ready: Duration,
    rss_kib: u64,
    settled: bool,
    listed: ListCounters,
    /// LIST requests of the process itself in the window (audit log).
    own_lists: usize,
    /// Watches that streamed their initial list (not in `listed`).
    streamed: usize,
}

impl Start {
    fn note(&self, name: &str) -> Option<String> {
        let mut notes = Vec::new();
        if !self.settled {
            notes.push("RSS not settled after 60 s".to_owned());
        }
        if (self.listed.requests - self.own_lists as f64).abs() > 0.5 {
            notes.push(format!(
                "the API server served {:.0} LISTs in the window, {} of them the {name}'s: the bytes and objects include others'",
                self.listed.requests, self.own_lists
            ));
        }
        if self.streamed > 0 {
            notes.push(format!(
                "{} watches streamed their initial lists (sendInitialEvents): not in the bytes",
                self.streamed
            ));
        }
        (!notes.is_empty()).then(|| format!("{name}: {}", notes.join("; ")))
    }
}

/// Polls `url` every 50 ms until it answers 200 (panics after `timeout`); returns when it did.
async fn wait_ready(what: &str, http: &reqwest::Client, url: &str, timeout: Duration, pid: u32) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(rss_kib(pid).0 > 0, "{what} exited before it was ready");
        assert!(
            Instant::now() < deadline,
            "timed out after {:.0} s waiting for {what} to be ready ({url})",
            timeout.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Measures the start of the process just spawned (`spawned` is when): ready, settled RSS, and
/// what the API server listed meanwhile.
#[allow(clippy::too_many_arguments)]
async fn measure_start(
    cluster: &Cluster,
    admin: &Client,
    what: &str,
    sa: &str,
    before: ListCounters,
    spawned: Instant,
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
    pid: u32,
) -> Start {
    wait_ready(what, http, url, timeout, pid).await;
    let ready = spawned.elapsed();
    let (rss_kib, settled) = settled_rss_kib(pid, Duration::from_secs(60)).await;
    let listed = list_counters(admin).await - before;
    let me = user(sa);
    let log = audit_log(cluster);
    let own_lists = log
        .iter()
        .filter(|a| a.user == me && a.verb == "list")
        .count();
    let streamed = log
        .iter()
        .filter(|a| a.user == me && a.verb == "watch" && a.uri.contains("sendInitialEvents=true"))
        .count();
    Start {
        ready,
        rss_kib,
        settled,
        listed,
        own_lists,
        streamed,
    }
}

/// Creates one manifest of the static install's (`deploy/portcullis.yaml`) RBAC files as the admin.
async fn create_manifest(admin: &Client, obj: &Value) {
    let kind = obj["kind"].as_str().expect("kind");
    let (group, plural, namespaced) = match kind {
        "Namespace" => ("", "namespaces", false),
        "ServiceAccount" => ("", "serviceaccounts", true),
        "ClusterRole" => ("rbac.authorization.k8s.io", "clusterroles", false),
        "ClusterRoleBinding" => ("rbac.authorization.k8s.io", "clusterrolebindings", false),
        "Role" => ("rbac.authorization.k8s.io", "roles", true),
        "RoleBinding" => ("rbac.authorization.k8s.io", "rolebindings", true),
        other => panic!("unexpected kind {other} in an RBAC manifest"),
    };
    let ar = ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: obj["apiVersion"].as_str().expect("apiVersion").into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = if namespaced {
        let ns = obj["metadata"]["namespace"].as_str().expect("namespace");
        Api::namespaced_with(admin.clone(), ns, &ar)
    } else {
        Api::all_with(admin.clone(), &ar)
    };
    let dynobj: DynamicObject = serde_json::from_value(obj.clone()).expect("manifest");
    match api.create(&PostParams::default(), &dynobj).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating {kind} {}: {e}", dynobj.name_any()),
    }
}

// ---- the rollout ----

/// What the rollout's watches saw, and when they first saw it.
#[derive(Default)]
struct Seen {
    /// Pod (`ns/name`) first seen.
    created: HashMap<String, Instant>,
    /// Pods that were not gated when first seen.
    ungated_at_creation: HashSet<String>,
    /// Pod first seen without the scheduling gate.
    released: HashMap<String, Instant>,
    running: HashMap<String, Instant>,
    /// Pod -> the uid of its ReplicaSet.
    owner: HashMap<String, String>,
    /// Workload version (`ns/name`) whose pre-deployment KeptnTask was first seen Succeeded.
    task_done: HashMap<String, Instant>,
    /// ReplicaSet uid -> its workload version.
    version_of: HashMap<String, String>,
    completed: HashMap<String, Instant>,
    failed: BTreeMap<String, String>,
    /// Workload version first seen.
    version_seen: HashMap<String, Instant>,
    /// Workload version -> its pre-deployment KeptnTask first seen.
    task_seen: HashMap<String, Instant>,
    /// KeptnTask (`ns/name`) -> its workload version.
    task_version: HashMap<String, String>,
    /// Workload version -> its task's Job first seen, and first seen Complete.
    job_seen: HashMap<String, Instant>,
    job_complete: HashMap<String, Instant>,
}

fn key<K: ResourceExt>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// Watches `K` over all namespaces, feeding every object seen to `on`; `ready` counts watches
/// whose initial list is done.
fn watch<K, F>(
    client: &Client,
    labels: Option<&str>,
    ready: Arc<AtomicUsize>,
    seen: Arc<Mutex<Seen>>,
    on: F,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    F: Fn(&K, &mut Seen, Instant) + Send + 'static,
{
    let api: Api<K> = Api::all(client.clone());
    let mut config = watcher::Config::default();
    if let Some(l) = labels {
        config = config.labels(l);
    }
    tokio::spawn(async move {
        let mut events = watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let now = Instant::now();
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    on(&o, &mut seen.lock().expect("seen"), now);
                }
                Ok(watcher::Event::InitDone) => {
                    ready.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(e) => eprintln!("  rollout watch: {e}"),
            }
        }
    })
}

struct Rollout {
    workloads: usize,
    pods: usize,
    applied: Duration,
    running: Duration,
    completed: Duration,
    webhook_requests: usize,
    gate_requests: usize,
    gate_lease_requests: usize,
    gate_event_requests: usize,
    from_task: (Duration, Duration),
    from_created: (Duration, Duration),
    breakdown: Vec<String>,
    /// Per-stage latency of a workload ([`stages`]).
    stages: Vec<String>,
    webhook_rss_kib: u64,
    gate_rss_kib: u64,
}

/// A Deployment of [`PODS_PER_WORKLOAD`] pods labelled `ROLE=role`, with `annotations` on its pod
/// template.
fn deployment(name: &str, role: &str, annotations: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": PODS_PER_WORKLOAD,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, ROLE: role}, "annotations": annotations},
                "spec": {"containers": [container(&format!("registry.example.com/{role}/{name}:1"))]}}}})
}

async fn rollout(cluster: &Cluster, c: &Client, workloads: usize, pids: (u32, u32)) -> Rollout {
    let spaces = ROLLOUT_NAMESPACES.min(workloads).max(1);
    let ns = |i: usize| format!("rollout-{}", i % spaces);
    for i in 0..spaces {
        create(
            &Api::<Namespace>::all(c.clone()),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns(i),
                "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"},
                "labels": {"keptn.sh/lifecycle-toolkit": "enabled"}}}),
        )
        .await;
        e2e::default_service_account(c, &ns(i)).await;
        create(
            &Api::<KeptnTaskDefinition>::namespaced(c.clone(), &ns(i)),
            json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
                "metadata": {"name": "pre", "labels": {OUTCOME: "succeed"},
                    "annotations": {RUN_FOR: TASK_RUN_FOR}},
                "spec": {"container": {"name": "pre", "image": "busybox:1.36",
                    "command": ["sh", "-c", "true"]}}}),
        )
        .await;
    }

    let seen: Arc<Mutex<Seen>> = Arc::default();
    let ready = Arc::new(AtomicUsize::new(0));
    let watches = [
        watch::<Pod, _>(
            c,
            Some(&format!("{ROLE}=rollout")),
            ready.clone(),
            seen.clone(),
            |p, s, now| {
                let k = key(p);
                if !s.created.contains_key(&k) {
                    s.created.insert(k.clone(), now);
                    if !e2e::gated(p) {
                        s.ungated_at_creation.insert(k.clone());
                    }
                    if let Some(o) = p.owner_references().iter().find(|o| o.kind == "ReplicaSet") {
                        s.owner.insert(k.clone(), o.uid.clone());
                    }
                }
                if !e2e::gated(p) {
                    s.released.entry(k.clone()).or_insert(now);
                }
                if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                    s.running.entry(k).or_insert(now);
                }
            },
        ),
        watch::<KeptnTask, _>(c, None, ready.clone(), seen.clone(), |t, s, now| {
            let succeeded = t
                .status
                .as_ref()
                .is_some_and(|st| st.status == KeptnState::Succeeded);
            if let Some(o) = t
                .owner_references()
                .iter()
                .find(|o| o.kind == "KeptnWorkloadVersion")
            {
                let kwv = format!("{}/{}", t.namespace().unwrap_or_default(), o.name);
                s.task_seen.entry(kwv.clone()).or_insert(now);
                s.task_version.insert(key(t), kwv.clone());
                if succeeded {
                    s.task_done.entry(kwv).or_insert(now);
                }
            }
        }),
        watch::<Job, _>(c, None, ready.clone(), seen.clone(), |j, s, now| {
            let Some(task) = j.owner_references().iter().find(|o| o.kind == "KeptnTask") else {
                return;
            };
            let task = format!("{}/{}", j.namespace().unwrap_or_default(), task.name);
            let Some(kwv) = s.task_version.get(&task).cloned() else {
                return;
            };
            s.job_seen.entry(kwv.clone()).or_insert(now);
            if job_complete(j) {
                s.job_complete.entry(kwv).or_insert(now);
            }
        }),
        watch::<KeptnWorkloadVersion, _>(c, None, ready.clone(), seen.clone(), |w, s, now| {
            let k = key(w);
            s.version_seen.entry(k.clone()).or_insert(now);
            s.version_of
                .insert(w.spec.workload.resource_reference.uid.clone(), k.clone());
            if let Some(st) = &w.status {
                if st.current_phase == "Completed" && st.status == KeptnState::Succeeded {
                    s.completed.entry(k).or_insert(now);
                } else if st.status == KeptnState::Failed {
                    s.failed
                        .insert(k, format!("{} {:?}", st.current_phase, st.status));
                }
            }
        }),
    ];
    let r = ready.clone();
    wait_for(
        "the rollout's watches listed",
        Duration::from_secs(60),
        || {
            let r = r.clone();
            async move { (r.load(Ordering::SeqCst) >= 4).then_some(()) }
        },
    )
    .await;

    let wall_start = jiff::Timestamp::now();
    let t0 = Instant::now();
    futures::stream::iter(0..workloads)
        .map(|i| async move {
            let name = format!("w{i}");
            create(
                &Api::<Deployment>::namespaced(c.clone(), &ns(i)),
                deployment(
                    &name,
                    "rollout",
                    json!({"keptn.sh/workload": name, "keptn.sh/version": "1",
                        "keptn.sh/pre-deployment-tasks": "pre"}),
                ),
            )
            .await;
        })
        .buffer_unordered(ROLLOUT_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    let applied = t0.elapsed();

    let pods = workloads * PODS_PER_WORKLOAD;
    let timeout = Duration::from_secs(180) + Duration::from_millis(600 * workloads as u64);
    let mut last_report = Instant::now();
    loop {
        {
            let s = seen.lock().expect("seen");
            assert!(
                s.failed.is_empty(),
                "workload versions failed: {:?}",
                s.failed
            );
            assert!(
                s.ungated_at_creation.is_empty(),
                "{} rollout pods were not gated when created (the webhook did not hold them), e.g. {:?}",
                s.ungated_at_creation.len(),
                s.ungated_at_creation.iter().take(3).collect::<Vec<_>>()
            );
            let status = format!(
                "{}/{pods} pods created, {} released, {} Running; {}/{workloads} tasks Succeeded, {} workload versions Completed",
                s.created.len(),
                s.released.len(),
                s.running.len(),
                s.task_done.len(),
                s.completed.len()
            );
            if s.running.len() >= pods && s.completed.len() >= workloads {
                break;
            }
            progress("rollout", t0, timeout, &mut last_report, &status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall_end = jiff::Timestamp::now();
    for w in watches {
        w.abort();
    }
    let webhook_rss_kib = rss_kib(pids.0).0;
    let gate_rss_kib = rss_kib(pids.1).0;

    let s = seen.lock().expect("seen");
    let last = |m: &HashMap<String, Instant>| {
        m.values()
            .map(|t| t.saturating_duration_since(t0))
            .max()
            .unwrap_or_default()
    };
    let running = last(&s.running);
    let completed = last(&s.completed);
    let (mut from_task, mut from_created) = (Vec::new(), Vec::new());
    for (pod, released) in &s.released {
        let created = s.created[pod];
        from_created.push(released.saturating_duration_since(created));
        let task = s
            .owner
            .get(pod)
            .and_then(|rs| s.version_of.get(rs))
            .and_then(|kwv| s.task_done.get(kwv))
            .unwrap_or_else(|| panic!("no Succeeded task seen for the workload version of {pod}"));
        from_task.push(released.saturating_duration_since(*task));
    }
    from_task.sort();
    from_created.sort();
    let stages = stages(&s);

    // The webhook's and the gate's requests received during the rollout.
    let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
    let (webhook, gate) = (user(WEBHOOK_SA), user(GATE_SA));
    for a in audit_log(cluster) {
        if a.received < wall_start || a.received > wall_end {
            continue;
        }
        let who = if a.user == webhook {
            "webhook"
        } else if a.user == gate {
            "gate"
        } else {
            continue;
        };
        *by.entry((who.to_owned(), format!("{} {}", a.verb, a.resource)))
            .or_default() += 1;
    }
    let count = |who: &str, leases: bool| {
        by.iter()
            .filter(|((w, what), _)| w == who && what.ends_with(" leases") == leases)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    let breakdown = ["webhook", "gate"]
        .iter()
        .map(|who| {
            let parts: Vec<String> = by
                .iter()
                .filter(|((w, _), _)| w == who)
                .map(|((_, what), n)| format!("{what} {n}"))
                .collect();
            format!("{who}: {}", parts.join(", "))
        })
        .collect();
    Rollout {
        workloads,
        pods,
        applied,
        running,
        completed,
        webhook_requests: count("webhook", false) + count("webhook", true),
        gate_requests: count("gate", false),
        gate_lease_requests: count("gate", true),
        gate_event_requests: by
            .iter()
            .filter(|((w, what), _)| w == "gate" && what == "create events")
            .map(|(_, n)| n)
            .sum(),
        from_task: (percentile(&from_task, 0.5), percentile(&from_task, 0.99)),
        from_created: (
            percentile(&from_created, 0.5),
            percentile(&from_created, 0.99),
        ),
        breakdown,
        stages,
        webhook_rss_kib,
        gate_rss_kib,
    }
}

/// Where a workload's time goes, stage by stage: p50 / p99 over the workload versions of the
/// time from one event (as this test's watches saw it) to the next. A workload's pods count
/// from its first pod created, released and Running to its last.
fn stages(s: &Seen) -> Vec<String> {
    let mut pods_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for (pod, rs) in &s.owner {
        if let Some(kwv) = s.version_of.get(rs) {
            pods_of.entry(kwv.as_str()).or_default().push(pod.as_str());
        }
    }
    let first = |m: &HashMap<String, Instant>, pods: &[&str]| {
        pods.iter().filter_map(|p| m.get(*p)).min().copied()
    };
    let last = |m: &HashMap<String, Instant>, pods: &[&str]| {
        let all: Vec<Instant> = pods.iter().filter_map(|p| m.get(*p)).copied().collect();
        (all.len() == pods.len())
            .then(|| all.into_iter().max())
            .flatten()
    };
    type Stage = (&'static str, Vec<Duration>);
    let mut out: Vec<Stage> = [
        "first pod created → workload version",
        "workload version → task",
        "task → Job",
        "Job → Job Complete",
        "Job Complete → task Succeeded",
        "task Succeeded → last pod released",
        "last pod released → last pod Running",
        "last pod Running → workload version Completed",
    ]
    .into_iter()
    .map(|name| (name, Vec::new()))
    .collect();
    for (kwv, pods) in &pods_of {
        let at = [
            first(&s.created, pods),
            s.version_seen.get(*kwv).copied(),
            s.task_seen.get(*kwv).copied(),
            s.job_seen.get(*kwv).copied(),
            s.job_complete.get(*kwv).copied(),
            s.task_done.get(*kwv).copied(),
            last(&s.released, pods),
            last(&s.running, pods),
            s.completed.get(*kwv).copied(),
        ];
        for (i, pair) in at.windows(2).enumerate() {
            if let [Some(a), Some(b)] = pair {
                out[i].1.push(b.saturating_duration_since(*a));
            }
        }
    }
    out.into_iter()
        .map(|(name, mut d)| {
            d.sort();
            format!(
                "{name}: p50 {:.0} ms, p99 {:.0} ms ({} workloads)",
                ms(percentile(&d, 0.5)),
                ms(percentile(&d, 0.99)),
                d.len()
            )
        })
        .collect()
}

/// Fails once `timeout` has passed since `t0`; otherwise prints `status` every 30 s.
fn progress(what: &str, t0: Instant, timeout: Duration, last_report: &mut Instant, status: &str) {
    assert!(
        t0.elapsed() < timeout,
        "the {what} timed out after {:.0} s: {status}",
        timeout.as_secs_f64()
    );
    if last_report.elapsed() >= Duration::from_secs(30) {
        eprintln!(
            "  {what} after {:.0} s: {status}",
            t0.elapsed().as_secs_f64()
        );
        *last_report = Instant::now();
    }
}

// ---- the same objects without Portcullis ----

/// The control plane's floor for the rollout: per workload the same Deployment of 2 pods and a
/// Job like its task's, in plain namespaces, with no webhook and no gate, all created at once
/// (the managed rollout runs the Job first and the pods after it).
struct Baseline {
    /// From the first create to every pod `Running`.
    running: Duration,
    /// From the first create to every Job `Complete`.
    jobs: Duration,
}

/// When each object (namespace/name) was first seen `done`, from a watch of `K` selected by
/// `labels`; `ready` counts the watch once its initial list is done.
fn first_seen<K>(
    client: &Client,
    labels: &str,
    ready: Arc<AtomicUsize>,
    done: fn(&K) -> bool,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<Mutex<HashMap<String, Instant>>>,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let out = seen.clone();
    let api: Api<K> = Api::all(client.clone());
    let config = watcher::Config::default().labels(labels);
    let task = tokio::spawn(async move {
        let mut events = watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let now = Instant::now();
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) if done(&o) => {
                    seen.lock().expect("seen").entry(key(&o)).or_insert(now);
                }
                Ok(watcher::Event::InitDone) => {
                    ready.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(e) => eprintln!("  baseline watch: {e}"),
            }
        }
    });
    (task, out)
}

async fn baseline(c: &Client, workloads: usize) -> Baseline {
    let spaces = ROLLOUT_NAMESPACES.min(workloads).max(1);
    let ns = |i: usize| format!("baseline-{}", i % spaces);
    for i in 0..spaces {
        create(
            &Api::<Namespace>::all(c.clone()),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns(i)}}),
        )
        .await;
        e2e::default_service_account(c, &ns(i)).await;
    }
    let ready = Arc::new(AtomicUsize::new(0));
    let (pod_watch, running) =
        first_seen::<Pod>(c, &format!("{ROLE}=baseline"), ready.clone(), |p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        });
    let (job_watch, complete) =
        first_seen::<Job>(c, &format!("{ROLE}=baseline"), ready.clone(), job_complete);
    let r = ready.clone();
    wait_for(
        "the baseline's watches listed",
        Duration::from_secs(60),
        || {
            let r = r.clone();
            async move { (r.load(Ordering::SeqCst) >= 2).then_some(()) }
        },
    )
    .await;

    let t0 = Instant::now();
    futures::stream::iter(0..workloads)
        .map(|i| async move {
            let name = format!("b{i}");
            let (deployments, jobs) = (
                Api::<Deployment>::namespaced(c.clone(), &ns(i)),
                Api::<Job>::namespaced(c.clone(), &ns(i)),
            );
            let deployment = create(&deployments, deployment(&name, "baseline", json!({})));
            let job = create(
                &jobs,
                json!({"apiVersion": "batch/v1", "kind": "Job",
                    "metadata": {"name": format!("{name}-pre"), "labels": {ROLE: "baseline"}},
                    "spec": {"backoffLimit": 0,
                        "template": {
                            "metadata": {"labels": {OUTCOME: "succeed"},
                                "annotations": {RUN_FOR: TASK_RUN_FOR}},
                            "spec": {"restartPolicy": "Never",
                                "containers": [{"name": "pre", "image": "busybox:1.36",
                                    "command": ["sh", "-c", "true"]}]}}}}),
            );
            futures::join!(deployment, job);
        })
        .buffer_unordered(ROLLOUT_PARALLELISM)
        .collect::<Vec<_>>()
        .await;

    let pods = workloads * PODS_PER_WORKLOAD;
    let timeout = Duration::from_secs(180) + Duration::from_millis(600 * workloads as u64);
    let mut last_report = Instant::now();
    loop {
        let (r, j) = (
            running.lock().expect("seen").len(),
            complete.lock().expect("seen").len(),
        );
        if r >= pods && j >= workloads {
            break;
        }
        let status = format!("{r}/{pods} pods Running, {j}/{workloads} Jobs Complete");
        progress("baseline", t0, timeout, &mut last_report, &status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pod_watch.abort();
    job_watch.abort();
    let last = |m: &Mutex<HashMap<String, Instant>>| {
        m.lock()
            .expect("seen")
            .values()
            .map(|t| t.saturating_duration_since(t0))
            .max()
            .unwrap_or_default()
    };
    Baseline {
        running: last(&running),
        jobs: last(&complete),
    }
}

/// The webhook's admission time during the rollout: the number of reviews of `path` and the
/// upper bounds of the histogram buckets (`portcullis_webhook_request_duration_seconds`) that
/// hold their median and 99th percentile.
fn admission_quantiles(metrics: &str, path: &str) -> (f64, String, String) {
    let mut buckets: Vec<(f64, String, f64)> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("portcullis_webhook_request_duration_seconds_bucket{")
                && l.contains(&format!("path=\"{path}\""))
        })
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_owned();
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.2);
    let at = |q: f64| {
        buckets
            .iter()
            .find(|b| b.2 >= q * total)
            .map_or_else(|| "-".to_owned(), |b| format!("≤ {} s", b.1))
    };
    (total, at(0.5), at(0.99))
}

// ---- one cluster size ----

struct Row {
    sizes: Sizes,
    created: Duration,
    filled: Duration,
    webhook: Start,
    gate: Start,
    rollout: Rollout,
    /// Reviews, p50 and p99 bucket of the webhook's pod and workload admissions.
    admissions: Vec<(&'static str, (f64, String, String))>,
    /// The gate's `portcullis_gate_kubernetes_events_dropped_total` after the rollout.
    events_dropped: f64,
    /// The gate's failed reconciles by controller and error (`portcullis_gate_reconcile_failures_total`).
    failures: Vec<String>,
    baseline: Baseline,
}

/// The gate's `--kubernetes-events` for the rollout (`BENCH_KUBERNETES_EVENTS`).
fn kubernetes_events() -> String {
    std::env::var("BENCH_KUBERNETES_EVENTS").unwrap_or_else(|_| "all".to_owned())
}

async fn run(pods: usize, workloads: usize) -> Row {
    let sizes = Sizes::of(pods);
    eprintln!(
        "== {} pods, {} ReplicaSets, {} Deployments in {} namespaces on {} filler nodes",
        sizes.pods, sizes.replica_sets, sizes.deployments, sizes.namespaces, sizes.nodes
    );
    let cluster = Cluster::with_crds().await;
    let admin = cluster.client();
    let (created, filled) = fill(&admin, &sizes).await;
    eprintln!(
        "  filler: all pods Running after {:.1} s",
        filled.as_secs_f64()
    );

    {
        for doc in deploy_documents(RBAC_KINDS) {
            create_manifest(&admin, &doc).await;
        }
    }
    let webhook_kc = cluster
        .service_account_kubeconfig(INSTALL_NS, WEBHOOK_SA)
        .await;
    let gate_kc = cluster
        .service_account_kubeconfig(INSTALL_NS, GATE_SA)
        .await;
    cluster
        .route_service_to_localhost(INSTALL_NS, SERVICE)
        .await;
    let ready_timeout = Duration::from_secs(120) + Duration::from_millis(pods as u64);

    // The webhook alone.
    let mut procs = Processes::new();
    let ca = e2e::certificates(procs.logs.path());
    let port = e2e::free_port();
    let before = lists_quiet(&admin).await;
    let spawned = Instant::now();
    procs.spawn_webhook("webhook", port, &webhook_kc, LOG_FILTER);
    let webhook_pid = procs.children[0].id().expect("webhook pid");
    let https = e2e::webhook_https(&ca, port)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("https client");
    let webhook = measure_start(
        &cluster,
        &admin,
        "the webhook",
        WEBHOOK_SA,
        before,
        spawned,
        &https,
        &e2e::webhook_url(port, "/readyz"),
        ready_timeout,
        webhook_pid,
    )
    .await;
    e2e::register_webhooks(&admin, &ca, port, None).await;
    eprintln!(
        "  webhook ready after {:.2} s, {:.1} MiB; listed {:.1} MiB, {:.0} objects",
        webhook.ready.as_secs_f64(),
        webhook.rss_kib as f64 / 1024.0,
        mib(webhook.listed.bytes),
        webhook.listed.objects
    );

    // Then the gate alone, as deployed (leader election).
    let admin_port = e2e::free_port();
    let before = lists_quiet(&admin).await;
    let spawned = Instant::now();
    procs.spawn(
        "gate",
        &e2e::binary("portcullis-gate"),
        &[
            format!("--admin-address=127.0.0.1:{admin_port}"),
            "--keptn-metrics-port=0".to_owned(),
            "--leader-elect".to_owned(),
            "--identity=gate-0".to_owned(),
            format!("--kubernetes-events={}", kubernetes_events()),
        ],
        &gate_kc,
        LOG_FILTER,
    );
    let gate_pid = procs.children[1].id().expect("gate pid");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    let gate = measure_start(
        &cluster,
        &admin,
        "the gate",
        GATE_SA,
        before,
        spawned,
        &http,
        &format!("http://127.0.0.1:{admin_port}/readyz"),
        ready_timeout,
        gate_pid,
    )
    .await;
    eprintln!(
        "  gate ready after {:.2} s, {:.1} MiB; listed {:.1} MiB, {:.0} objects",
        gate.ready.as_secs_f64(),
        gate.rss_kib as f64 / 1024.0,
        mib(gate.listed.bytes),
        gate.listed.objects
    );

    let rollout = rollout(&cluster, &admin, workloads, (webhook_pid, gate_pid)).await;
    eprintln!(
        "  rollout: all Running after {:.1} s, all Completed after {:.1} s",
        rollout.running.as_secs_f64(),
        rollout.completed.as_secs_f64()
    );
    let metrics = https
        .get(e2e::webhook_url(port, "/metrics"))
        .send()
        .await
        .expect("webhook metrics")
        .text()
        .await
        .expect("webhook metrics body");
    let gate_metrics = http
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .expect("gate metrics")
        .text()
        .await
        .expect("gate metrics body");
    let events_dropped = gate_metrics
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_gate_kubernetes_events_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("portcullis_gate_kubernetes_events_dropped_total");
    let failures = gate_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("portcullis_gate_reconcile_failures_total{"))
        .filter_map(|l| l.split_once("} "))
        .filter(|(_, n)| n.trim() != "0")
        .map(|(labels, n)| format!("{} {}", labels.replace('"', ""), n.trim()))
        .collect();
    let admissions = ["/mutate-v1-pod", "/mutate-workloads"]
        .into_iter()
        .map(|path| (path, admission_quantiles(&metrics, path)))
        .collect();
    // The floor: the same objects with Portcullis gone (its webhooks unregistered).
    drop(procs);
    for mwc in deploy_documents(&["MutatingWebhookConfiguration"]) {
        let name = mwc["metadata"]["name"].as_str().expect("name").to_owned();
        Api::<MutatingWebhookConfiguration>::all(admin.clone())
            .delete(&name, &Default::default())
            .await
            .expect("webhook configuration deleted");
    }
    let baseline = baseline(&admin, workloads).await;
    eprintln!(
        "  without Portcullis: all Running after {:.1} s, all Jobs Complete after {:.1} s",
        baseline.running.as_secs_f64(),
        baseline.jobs.as_secs_f64()
    );
    drop(cluster);
    Row {
        sizes,
        created,
        filled,
        webhook,
        gate,
        rollout,
        admissions,
        events_dropped,
        failures,
        baseline,
    }
}

fn report(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| pods / ReplicaSets / Deployments | webhook ready | webhook RSS | webhook listed at start | gate ready | gate RSS | gate listed at start | rollout | all pods Running | all KWVs Completed | webhook req/pod | gate req/pod | release p50 / p99 (task Succeeded → ungated) | release p50 / p99 (pod created → ungated) | without Portcullis: all pods Running / all Jobs Complete |\n",
    );
    out.push_str(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let ro = &r.rollout;
        let per_pod = |n: usize| n as f64 / ro.pods as f64;
        out.push_str(&format!(
            "| {} / {} / {}{} | {:.2} s | {:.1} MiB | {:.1} MiB, {:.0} objects | {:.2} s | {:.1} MiB | {:.1} MiB, {:.0} objects | {} × {} pods | {:.1} s | {:.1} s | {:.2} | {:.2} ({:.2} Events) | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {:.1} / {:.1} s |\n",
            r.sizes.pods,
            r.sizes.replica_sets,
            r.sizes.deployments,
            match kubernetes_events().as_str() {
                "all" => String::new(),
                other => format!(", gate --kubernetes-events={other}"),
            },
            r.webhook.ready.as_secs_f64(),
            r.webhook.rss_kib as f64 / 1024.0,
            mib(r.webhook.listed.bytes),
            r.webhook.listed.objects,
            r.gate.ready.as_secs_f64(),
            r.gate.rss_kib as f64 / 1024.0,
            mib(r.gate.listed.bytes),
            r.gate.listed.objects,
            ro.workloads,
            PODS_PER_WORKLOAD,
            ro.running.as_secs_f64(),
            ro.completed.as_secs_f64(),
            per_pod(ro.webhook_requests),
            per_pod(ro.gate_requests),
            per_pod(ro.gate_event_requests),
            ms(ro.from_task.0),
            ms(ro.from_task.1),
            ms(ro.from_created.0),
            ms(ro.from_created.1),
            r.baseline.running.as_secs_f64(),
            r.baseline.jobs.as_secs_f64(),
        ));
    }
    out.push_str(
        "\nReal control plane (kube-apiserver, etcd, controller-manager, scheduler; kwok nodes), release binaries, \
         each process under its chart's ServiceAccount. *ready*: spawn → `/readyz` 200. *RSS*: VmRSS once ready and \
         stable. *listed at start*: growth of the API server's LIST response bytes and returned objects from spawn until \
         then. *Running*, *Completed*: from the first Deployment created. *req/pod*: the process's API requests received \
         during the rollout (audit log) per managed pod, the gate's Lease renewals not included, its Event creations included and also shown apart. *release*: \
         per pod, from the pod's pre-deployment KeptnTask seen Succeeded, or from the pod seen created, to the pod seen \
         without `keptn-prechecks-gate` (the benchmark's own watches). *without Portcullis*: afterwards, with the webhook and \
         the gate stopped and unregistered, the same Deployments and one Job per workload like its task's, all created at \
         once in plain namespaces: the control plane's floor for the rollout.\n",
    );
    for r in rows {
        let ro = &r.rollout;
        out.push_str(&format!(
            "\n{} pods: filler created in {:.1} s, all Running after {:.1} s; webhook {} LISTs, gate {} LISTs at start; \
             gate --kubernetes-events={}, Events dropped: {}; rollout created in {:.1} s; RSS after the rollout: webhook {:.1} MiB, gate {:.1} MiB; gate Lease requests during the rollout: {}\n",
            r.sizes.pods,
            r.created.as_secs_f64(),
            r.filled.as_secs_f64(),
            r.webhook.own_lists,
            r.gate.own_lists,
            kubernetes_events(),
            r.events_dropped,
            ro.applied.as_secs_f64(),
            ro.webhook_rss_kib as f64 / 1024.0,
            ro.gate_rss_kib as f64 / 1024.0,
            ro.gate_lease_requests,
        ));
        for (path, (reviews, p50, p99)) in &r.admissions {
            out.push_str(&format!(
                "- webhook admission time during the rollout, {path}: {reviews:.0} reviews, p50 {p50}, p99 {p99}\n"
            ));
        }
        for line in &ro.stages {
            out.push_str(&format!("- a workload's stages, {line}\n"));
        }
        for line in &ro.breakdown {
            out.push_str(&format!("- requests during the rollout, {line}\n"));
        }
        if !r.failures.is_empty() {
            out.push_str(&format!(
                "- gate reconciles failed (retried): {}\n",
                r.failures.join(", ")
            ));
        }
        for note in [r.webhook.note("webhook"), r.gate.note("gate")]
            .into_iter()
            .flatten()
        {
            out.push_str(&format!("- note: {note}\n"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run through `make bench-scale`"]
async fn bench_scale() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes = env_counts("BENCH_PODS", "10000,100000");
    if std::env::var_os("PORTCULLIS_KWOK_PARALLELISM").is_none() {
        eprintln!(
            "PORTCULLIS_KWOK_PARALLELISM is not set (`make bench-scale` sets it): kwok runs ~50 pods a second"
        );
    }
    let workloads = env_counts("BENCH_WORKLOADS", "1000")
        .first()
        .copied()
        .expect("BENCH_WORKLOADS");
    assert!(!sizes.is_empty() && workloads > 0, "nothing to measure");
    let mut rows = Vec::new();
    for pods in sizes {
        rows.push(run(pods, workloads).await);
    }
    let table = report(&rows);
    println!("{table}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target directory")
        .join("bench-scale.md");
    std::fs::write(&path, &table).expect("writing the report");
    println!("written to {}", path.display());
}
