//! The simulated cluster end to end (FIDELITY F20, F21, F22, F24): an in-process emulator with
//! its controllers, scheduler and kubelets, driven through the API by the real kubectl and by
//! kube-rs, asserting what a user would check (`kubectl rollout status`, `kubectl get`, `kubectl
//! wait`, object fields). Every test runs in its own emulator and namespace; every wait has a
//! deadline.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use kubesim::controllers::ControllersConfig;
use kubesim::{Sim, SimConfig, SimHandle};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

struct Cluster {
    sim: SimHandle,
    client: kube::Client,
    ns: String,
}

impl Cluster {
    async fn start(nodes: usize, ns: &str) -> Self {
        let sim = Sim::start(SimConfig {
            nodes,
            controllers: true,
            controllers_config: Some(ControllersConfig::fast(nodes)),
            ..SimConfig::default()
        })
        .await
        .expect("emulator with controllers starts");
        let client = sim.client().expect("client");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace"),
            )
            .await
            .expect("namespace created");
        Self {
            sim,
            client,
            ns: ns.to_string(),
        }
    }

    fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.sim.kubeconfig)
            .arg("--namespace")
            .arg(&self.ns)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write manifest");
        }
        child.wait_with_output().expect("kubectl finishes")
    }

    /// Runs kubectl off the async runtime (it may block on watches for a while).
    async fn kubectl_ok(&self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let kubeconfig = self.sim.kubeconfig.clone();
        let ns = self.ns.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--namespace")
                .arg(&ns)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .expect("kubectl runs")
        })
        .await
        .expect("kubectl task");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl failed: {}\nstdout: {stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn apply(&self, manifest: &str) {
        let out = self.kubectl_with_stdin(&["apply", "-f", "-"], Some(manifest));
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn pods(&self) -> Vec<Pod> {
        self.api::<Pod>()
            .list(&ListParams::default())
            .await
            .expect("list pods")
            .items
    }
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that nothing of this kind changes for two seconds: the controllers are level-triggered
/// and write only when the observed state differs from what they want.
async fn assert_settled<K>(api: &Api<K>, what: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use futures::TryStreamExt;
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("list resourceVersion");
    let stream = api
        .watch(&kube::api::WatchParams::default().timeout(2), &rv)
        .await
        .expect("watch");
    futures::pin_mut!(stream);
    let mut changes = Vec::new();
    while let Some(event) = stream.try_next().await.expect("watch event") {
        match event {
            kube::api::WatchEvent::Added(o)
            | kube::api::WatchEvent::Modified(o)
            | kube::api::WatchEvent::Deleted(o) => changes.push(o.meta().name.clone()),
            kube::api::WatchEvent::Bookmark(_) => {}
            kube::api::WatchEvent::Error(e) => panic!("watch error: {e:?}"),
        }
    }
    assert!(
        changes.is_empty(),
        "{what} still changing once settled: {changes:?}"
    );
}

fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (String, String, bool) {
    let owner = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .expect("controller owner reference");
    (
        owner.kind.clone(),
        owner.name.clone(),
        owner.block_owner_deletion == Some(true),
    )
}

fn deployment_manifest(image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_deployment_rolls_out_and_kubectl_rollout_status_returns() {
    let c = Cluster::start(1, "f20-deploy").await;
    c.apply(&deployment_manifest("nginx:1.27"));
    let out = c
        .kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");

    let rs_list = c
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    assert_eq!(rs_list.len(), 1);
    let rs = &rs_list[0];
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    let hash = rs.metadata.labels.clone().unwrap_or_default()["pod-template-hash"].clone();
    assert_eq!(rs_name, format!("web-{hash}"));
    assert_eq!(
        controller_of(&rs.metadata),
        ("Deployment".into(), "web".into(), true)
    );
    assert_eq!(
        rs.metadata.annotations.clone().unwrap_or_default()["deployment.kubernetes.io/revision"],
        "1"
    );

    let pods = c.pods().await;
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        assert!(name.starts_with(&format!("{rs_name}-")), "{name}");
        assert_eq!(
            pod.metadata.generate_name.as_deref(),
            Some(format!("{rs_name}-").as_str())
        );
        assert_eq!(
            pod.metadata.labels.clone().unwrap_or_default()["pod-template-hash"],
            hash
        );
        assert_eq!(
            controller_of(&pod.metadata),
            ("ReplicaSet".into(), rs_name.clone(), true)
        );
        let status = pod.status.clone().expect("status");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_some() && status.start_time.is_some());
    }

    let d: Deployment = c.api().get("web").await.expect("deployment");
    let status = d.status.expect("status");
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas,
            status.updated_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(status.observed_generation, d.metadata.generation);
    let progressing = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .expect("Progressing");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );

    // Level-triggered: once rolled out, nobody writes any more.
    assert_settled(&c.api::<Pod>(), "pods").await;
    assert_settled(&c.api::<ReplicaSet>(), "replicasets").await;
    assert_settled(&c.api::<Deployment>(), "deployments").await;

    // The components record what they did, as on a real cluster. Each records its Event after
    // the write it reports, so the Events are waited for.
    let reasons = [
        "ScalingReplicaSet",
        "SuccessfulCreate",
        "Scheduled",
        "Pulled",
        "Created",
        "Started",
    ];
    let events = eventually("every component's Event", DEADLINE, || async {
        let events = c.kubectl_ok(&["get", "events"]).await;
        reasons.iter().all(|r| events.contains(r)).then_some(events)
    })
    .await;
    for reason in reasons {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }
    let pod_name = pods[0].metadata.name.clone().unwrap_or_default();
    let assigned = format!("Successfully assigned f20-deploy/{pod_name} to kubesim-node-1");
    let describe = eventually(
        "the Scheduled Event in kubectl describe",
        DEADLINE,
        || async {
            let describe = c.kubectl_ok(&["describe", "pod", &pod_name]).await;
            describe.contains(&assigned).then_some(describe)
        },
    )
    .await;
    assert!(describe.contains(&assigned), "{describe}");

    // kubectl shows the workload as ready.
    let table = c.kubectl_ok(&["get", "deployment", "web"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web") && l.contains("3/3")),
        "{table}"
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_template_change_creates_a_new_replica_set_and_scales_the_old_one_to_zero() {
    let c = Cluster::start(1, "f20-rollout").await;
    c.apply(&deployment_manifest("nginx:1.27"));
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    c.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.28"])
        .await;
    let out = c
        .kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");

    let rs_list = c
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    assert_eq!(rs_list.len(), 2);
    let revision = |rs: &ReplicaSet| {
        rs.metadata.annotations.clone().unwrap_or_default()["deployment.kubernetes.io/revision"]
            .clone()
    };
    let old = rs_list
        .iter()
        .find(|rs| revision(rs) == "1")
        .expect("revision 1");
    let new = rs_list
        .iter()
        .find(|rs| revision(rs) == "2")
        .expect("revision 2");
    assert_eq!(old.spec.as_ref().and_then(|s| s.replicas), Some(0));
    assert_eq!(new.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let image_of = |rs: &ReplicaSet| {
        rs.spec
            .clone()
            .and_then(|s| s.template)
            .and_then(|t| t.spec)
            .map(|s| s.containers[0].image.clone())
    };
    assert_eq!(image_of(new), Some(Some("nginx:1.28".into())));
    let new_name = new.metadata.name.clone().unwrap_or_default();
    // `rollout status` counts no terminating pod: the old ones may still be on their way out
    // (their kubelet removes them), so their removal is waited for.
    let pods = eventually("old pods are gone", DEADLINE, || async {
        let pods = c.pods().await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    assert_eq!(pods.len(), 3, "old pods are gone");
    assert!(
        pods.iter()
            .all(|p| controller_of(&p.metadata).1 == new_name)
    );
    let d: Deployment = c.api().get("web").await.expect("deployment");
    assert_eq!(
        d.metadata.annotations.unwrap_or_default()["deployment.kubernetes.io/revision"],
        "2"
    );
    let history = c.kubectl_ok(&["get", "rs"]).await;
    assert!(history.contains(&new_name), "{history}");

    // kubectl rollout history/undo read the revision annotations of the ReplicaSets.
    let history = c
        .kubectl_ok(&["rollout", "history", "deployment/web"])
        .await;
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('1')),
        "{history}"
    );
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('2')),
        "{history}"
    );
    c.kubectl_ok(&["rollout", "undo", "deployment/web"]).await;
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let rs_list = c
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    assert_eq!(rs_list.len(), 2, "the undo reuses the first ReplicaSet");
    let active = rs_list
        .iter()
        .find(|rs| rs.spec.as_ref().and_then(|s| s.replicas) == Some(3))
        .expect("one active ReplicaSet");
    assert_eq!(revision(active), "3");
    assert_eq!(image_of(active), Some(Some("nginx:1.27".into())));

    // kubectl scale goes through the /scale subresource; the ReplicaSet follows.
    c.kubectl_ok(&["scale", "deployment/web", "--replicas=5"])
        .await;
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let running = c
        .pods()
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .count();
    assert_eq!(running, 5);
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_statefulset_and_daemonset_roll_out_a_new_image() {
    let c = Cluster::start(2, "f20-updates").await;
    c.apply(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: postgres:16
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: agent:1
"#,
    );
    c.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .await;
    c.kubectl_ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .await;
    let before: StatefulSet = c.api().get("db").await.expect("sts");
    let first = before
        .status
        .and_then(|s| s.current_revision)
        .expect("revision");

    c.kubectl_ok(&["set", "image", "statefulset/db", "db=postgres:17"])
        .await;
    c.kubectl_ok(&["set", "image", "daemonset/agent", "agent=agent:2"])
        .await;
    c.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .await;
    c.kubectl_ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .await;

    let set: StatefulSet = c.api().get("db").await.expect("sts");
    let status = set.status.expect("status");
    let update = status.update_revision.clone().expect("updateRevision");
    assert_ne!(update, first);
    // currentRevision follows once every pod runs the update revision.
    let sts_api: Api<StatefulSet> = c.api();
    eventually("currentRevision = updateRevision", DEADLINE, || {
        let api = sts_api.clone();
        let update = update.clone();
        async move {
            let s = api.get("db").await.expect("sts").status?;
            (s.current_revision.as_deref() == Some(update.as_str())
                && s.current_replicas == Some(2))
            .then_some(())
        }
    })
    .await;
    for name in ["db-0", "db-1"] {
        let pod: Pod = c.api().get(name).await.expect("pod");
        assert_eq!(
            pod.metadata.labels.clone().unwrap_or_default()["controller-revision-hash"],
            update
        );
        assert_eq!(
            pod.spec
                .and_then(|s| s.containers[0].image.clone())
                .as_deref(),
            Some("postgres:17")
        );
    }
    let pods = c.pods().await;
    let agents: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .clone()
                .unwrap_or_default()
                .get("app")
                .map(String::as_str)
                == Some("agent")
        })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(agents.len(), 2);
    assert!(agents.iter().all(|p| {
        p.spec
            .as_ref()
            .and_then(|s| s.containers[0].image.as_deref())
            == Some("agent:2")
    }));
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_statefulset_comes_up_in_order() {
    let c = Cluster::start(1, "f20-sts").await;
    // Record every pod event from before the StatefulSet exists.
    let api: Api<Pod> = c.api();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (listed, watching) = tokio::sync::oneshot::channel();
    let recorder = tokio::spawn(async move {
        use futures::StreamExt;
        let stream = watcher::watcher(api, watcher::Config::default());
        futures::pin_mut!(stream);
        let mut listed = Some(listed);
        while let Some(Ok(event)) = stream.next().await {
            if let watcher::Event::InitDone = event
                && let Some(listed) = listed.take()
            {
                let _ = listed.send(());
            }
            if let watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) = event {
                let ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                let _ = tx.send((pod.metadata.name.clone().unwrap_or_default(), ready));
            }
        }
    });
    // The watch has listed (nothing yet) before the StatefulSet is created.
    tokio::time::timeout(DEADLINE, watching)
        .await
        .expect("the pod watch started")
        .expect("the pod watch runs");
    c.apply(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: postgres:16
"#,
    );
    let out = c
        .kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .await;
    // The API server defaults `rollingUpdate.partition: 0`, so kubectl reports a partitioned rollout.
    assert!(
        out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    // The watch delivers changes after the API made them: read until it has seen db-2 Ready.
    let mut events = Vec::new();
    let seen = tokio::time::timeout(DEADLINE, async {
        while let Some(e) = rx.recv().await {
            let done = e.0 == "db-2" && e.1;
            events.push(e);
            if done {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(seen, "the recorder never saw db-2 Ready: {events:?}");
    recorder.abort();
    let first_seen = |name: &str| {
        events
            .iter()
            .position(|(n, _)| n == name)
            .expect("pod seen")
    };
    let first_ready = |name: &str| {
        events
            .iter()
            .position(|(n, r)| n == name && *r)
            .expect("pod ready")
    };
    assert!(
        first_ready("db-0") < first_seen("db-1"),
        "db-1 created before db-0 was Ready: {events:?}"
    );
    assert!(
        first_ready("db-1") < first_seen("db-2"),
        "db-2 created before db-1 was Ready: {events:?}"
    );

    let set: StatefulSet = c.api().get("db").await.expect("sts");
    let status = set.status.expect("status");
    let revision = status.update_revision.clone().expect("updateRevision");
    assert_eq!(status.current_revision.as_deref(), Some(revision.as_str()));
    assert_eq!(
        (
            status.ready_replicas,
            status.current_replicas,
            status.updated_replicas
        ),
        (Some(3), Some(3), Some(3))
    );
    let pod: Pod = c.api().get("db-1").await.expect("db-1");
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["controller-revision-hash"], revision);
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "db-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    assert_eq!(
        controller_of(&pod.metadata),
        ("StatefulSet".into(), "db".into(), true)
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f24_daemonset_gets_one_pod_per_node_with_two_nodes() {
    let c = Cluster::start(2, "f24-ds").await;
    let nodes = c.kubectl_ok(&["get", "nodes"]).await;
    for name in ["kubesim-node-1", "kubesim-node-2"] {
        assert!(
            nodes
                .lines()
                .any(|l| l.starts_with(name) && l.contains(" Ready")),
            "{nodes}"
        );
    }
    let node_list = Api::<Node>::all(c.client.clone())
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items;
    assert_eq!(node_list.len(), 2);
    c.apply(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: busybox
"#,
    );
    let out = c
        .kubectl_ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = c.pods().await;
    assert_eq!(pods.len(), 2);
    let mut bound: Vec<String> = Vec::new();
    for pod in &pods {
        let spec = pod.spec.clone().expect("spec");
        let node = spec.node_name.clone().expect("bound");
        let term = &spec
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .expect("required node affinity")
            .node_selector_terms[0];
        let field = &term.match_fields.clone().expect("matchFields")[0];
        assert_eq!(field.key, "metadata.name");
        assert_eq!(
            field.values,
            Some(vec![node.clone()]),
            "pinned to the node it runs on"
        );
        assert_eq!(
            controller_of(&pod.metadata),
            ("DaemonSet".into(), "agent".into(), true)
        );
        bound.push(node);
    }
    bound.sort();
    assert_eq!(bound, vec!["kubesim-node-1", "kubesim-node-2"]);
    let ds: DaemonSet = c.api().get("agent").await.expect("ds");
    let status = ds.status.expect("status");
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.current_number_scheduled,
            status.number_ready,
            status.updated_number_scheduled,
            status.number_available
        ),
        (2, 2, 2, Some(2), Some(2))
    );
    c.sim.shutdown().await;
}

fn job_manifest(name: &str, outcome: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra_spec}
  template:
    metadata:
      annotations:
        kubesim.portcullis.dev/outcome: "{outcome}"
        kubesim.portcullis.dev/run-for: "200ms"
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
"#
    )
}

fn job_condition(job: &Job, type_: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_job_succeeds() {
    let c = Cluster::start(1, "f20-job-ok").await;
    c.apply(&job_manifest("ok", "exit:0", "  backoffLimit: 6"));
    c.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/ok",
        "--timeout=60s",
    ])
    .await;
    let job: Job = c.api().get("ok").await.expect("job");
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let status = job.status.clone().expect("status");
    assert_eq!(status.succeeded, Some(1));
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let reached = Some((
        "CompletionsReached".to_string(),
        "Reached expected number of succeeded pods".to_string(),
    ));
    assert_eq!(job_condition(&job, "SuccessCriteriaMet"), reached);
    assert_eq!(job_condition(&job, "Complete"), reached);
    let pods = c.pods().await;
    assert_eq!(pods.len(), 1);
    let labels = pods[0].metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["batch.kubernetes.io/job-name"], "ok");
    assert_eq!(labels["job-name"], "ok");
    assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
    assert_eq!(labels["controller-uid"], uid);
    assert_eq!(
        pods[0].status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    let table = c.kubectl_ok(&["get", "pods"]).await;
    assert!(table.contains("Completed"), "{table}");
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_job_fails_with_backoff_limit_exceeded() {
    let c = Cluster::start(1, "f20-job-backoff").await;
    c.apply(&job_manifest("flaky", "exit:1", "  backoffLimit: 1"));
    c.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/flaky",
        "--timeout=60s",
    ])
    .await;
    let job: Job = c.api().get("flaky").await.expect("job");
    let limit = Some((
        "BackoffLimitExceeded".to_string(),
        "Job has reached the specified backoff limit".to_string(),
    ));
    assert_eq!(job_condition(&job, "FailureTarget"), limit);
    assert_eq!(job_condition(&job, "Failed"), limit);
    let status = job.status.expect("status");
    assert_eq!(status.failed, Some(2), "backoffLimit 1: two attempts");
    assert_eq!(status.active, None);
    let pods = c.pods().await;
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter()
            .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_job_fails_with_deadline_exceeded_and_ttl_deletes_it() {
    let c = Cluster::start(1, "f20-job-deadline").await;
    // The failed Job lives only 2 s (its TTL), maybe less than a loaded machine takes from
    // `kubectl wait` returning to a read: a watch keeps the first failed version of it.
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<Job>();
    let (listed, watching) = tokio::sync::oneshot::channel();
    let recorder = {
        let api: Api<Job> = c.api();
        tokio::spawn(async move {
            use futures::StreamExt;
            let stream = watcher::watcher(api, watcher::Config::default());
            futures::pin_mut!(stream);
            let (mut listed, mut failed_tx) = (Some(listed), Some(failed_tx));
            while let Some(Ok(event)) = stream.next().await {
                match event {
                    watcher::Event::InitDone => {
                        if let Some(listed) = listed.take() {
                            let _ = listed.send(());
                        }
                    }
                    watcher::Event::Apply(job) | watcher::Event::InitApply(job)
                        if job_condition(&job, "Failed").is_some() =>
                    {
                        if let Some(tx) = failed_tx.take() {
                            let _ = tx.send(job);
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    tokio::time::timeout(DEADLINE, watching)
        .await
        .expect("the Job watch started")
        .expect("the Job watch runs");
    c.apply(&job_manifest(
        "slow",
        "never-ready",
        "  activeDeadlineSeconds: 2\n  ttlSecondsAfterFinished: 2",
    ));
    c.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/slow",
        "--timeout=60s",
    ])
    .await;
    let job: Job = tokio::time::timeout(DEADLINE, failed_rx)
        .await
        .expect("the watch saw the Job failed")
        .expect("the Job watch runs");
    recorder.abort();
    let deadline = Some((
        "DeadlineExceeded".to_string(),
        "Job was active longer than specified deadline".to_string(),
    ));
    assert_eq!(job_condition(&job, "Failed"), deadline);
    assert!(c.pods().await.is_empty(), "the running pod was removed");
    // ttlSecondsAfterFinished: the Job goes away on its own.
    let jobs: Api<Job> = c.api();
    eventually("the Job to be deleted after its TTL", DEADLINE, || {
        let jobs = jobs.clone();
        async move {
            jobs.get_opt("slow")
                .await
                .expect("get job")
                .is_none()
                .then_some(())
        }
    })
    .await;
    c.sim.shutdown().await;
}

fn pod_status_column(table: &str, pod: &str) -> Option<String> {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pod))?;
    line.split_whitespace().nth(2).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f21_gated_pod_stays_scheduling_gated_until_the_gate_is_removed() {
    let c = Cluster::start(1, "f21-gates").await;
    c.apply(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: gated
spec:
  schedulingGates:
  - name: example.com/wait
  containers:
  - name: app
    image: nginx
"#,
    );
    let status = eventually("STATUS SchedulingGated", DEADLINE, || async {
        let table = c.kubectl_ok(&["get", "pod", "gated"]).await;
        pod_status_column(&table, "gated").filter(|s| s == "SchedulingGated")
    })
    .await;
    assert_eq!(status, "SchedulingGated");
    let pod: Pod = c.api().get("gated").await.expect("pod");
    assert!(
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none(),
        "never bound while gated"
    );
    let cond = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .cloned()
        .expect("PodScheduled condition");
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("False", Some("SchedulingGated"))
    );
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));

    c.kubectl_ok(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/schedulingGates/0"}]"#,
    ])
    .await;
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/gated",
        "--timeout=60s",
    ])
    .await;
    let table = c.kubectl_ok(&["get", "pod", "gated"]).await;
    assert_eq!(
        pod_status_column(&table, "gated").as_deref(),
        Some("Running"),
        "{table}"
    );
    let pod: Pod = c.api().get("gated").await.expect("pod");
    assert_eq!(
        pod.spec.and_then(|s| s.node_name).as_deref(),
        Some("kubesim-node-1")
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f22_outcome_annotations_decide_readiness_and_crashes() {
    let c = Cluster::start(1, "f22-outcomes").await;
    c.apply(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: crasher
  annotations:
    kubesim.portcullis.dev/outcome: crash
    kubesim.portcullis.dev/run-for: 300ms
spec:
  containers:
  - name: app
    image: nginx
---
apiVersion: v1
kind: Pod
metadata:
  name: stuck
  annotations:
    kubesim.portcullis.dev/outcome: never-ready
spec:
  containers:
  - name: app
    image: nginx
"#,
    );
    let status = eventually("STATUS CrashLoopBackOff", DEADLINE, || async {
        let table = c.kubectl_ok(&["get", "pod", "crasher"]).await;
        pod_status_column(&table, "crasher").filter(|s| s == "CrashLoopBackOff")
    })
    .await;
    assert_eq!(status, "CrashLoopBackOff");
    let pod: Pod = c.api().get("crasher").await.expect("pod");
    let cs = pod
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default();
    assert!(cs[0].restart_count >= 1);
    let last = cs[0]
        .last_state
        .clone()
        .and_then(|s| s.terminated)
        .expect("last termination");
    assert_eq!(last.exit_code, 1);

    let stuck = eventually("stuck pod running", DEADLINE, || async {
        let pod: Pod = c.api().get("stuck").await.expect("pod");
        (pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).then_some(pod)
    })
    .await;
    let ready = stuck
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ContainersNotReady"))
    );
    let table = c.kubectl_ok(&["get", "pod", "stuck"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("stuck") && l.contains("0/1") && l.contains("Running")),
        "{table}"
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f22_rollout_status_fails_when_pods_never_become_ready() {
    let c = Cluster::start(1, "f22-deadline").await;
    c.apply(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
      annotations:
        kubesim.portcullis.dev/outcome: never-ready
    spec:
      containers:
      - name: app
        image: nginx
"#,
    );
    let kubeconfig = c.sim.kubeconfig.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "--namespace",
                "f22-deadline",
                "rollout",
                "status",
                "deployment/broken",
                "--timeout=60s",
            ])
            .output()
            .expect("kubectl runs")
    })
    .await
    .expect("task");
    assert!(!out.status.success(), "rollout status must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exceeded its progress deadline"),
        "{stderr}"
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_refused_pod_creation_shows_failed_create_and_replica_failure() {
    let c = Cluster::start(1, "f20-refused").await;
    // A webhook that cannot be reached, failurePolicy Fail: every pod of app=refused is refused.
    c.apply(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: refuse-pods
webhooks:
- name: refuse.example.com
  admissionReviewVersions: ["v1"]
  sideEffects: None
  failurePolicy: Fail
  objectSelector:
    matchLabels: {app: refused}
  rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
  clientConfig:
    service: {namespace: nowhere, name: missing, path: /validate}
"#,
    );
    c.apply(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: refused
spec:
  replicas: 1
  selector:
    matchLabels: {app: refused}
  template:
    metadata:
      labels: {app: refused}
    spec:
      containers:
      - name: app
        image: nginx
"#,
    );
    let deployments: Api<Deployment> = c.api();
    let condition = eventually("ReplicaFailure on the Deployment", DEADLINE, || {
        let api = deployments.clone();
        async move {
            let d = api.get("refused").await.expect("deployment");
            d.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        }
    })
    .await;
    assert_eq!(condition.reason.as_deref(), Some("FailedCreate"));
    assert!(
        condition
            .message
            .clone()
            .unwrap_or_default()
            .contains("refuse.example.com"),
        "{condition:?}"
    );
    let events = c.kubectl_ok(&["get", "events"]).await;
    assert!(
        events.contains("FailedCreate") && events.contains("Error creating"),
        "{events}"
    );
    assert!(c.pods().await.is_empty());

    // The webhook goes away: the ReplicaSet creates its pod and the failure clears.
    c.kubectl_ok(&["delete", "validatingwebhookconfiguration", "refuse-pods"])
        .await;
    c.kubectl_ok(&["rollout", "status", "deployment/refused", "--timeout=60s"])
        .await;
    eventually("ReplicaFailure cleared", DEADLINE, || {
        let api = deployments.clone();
        async move {
            let d = api.get("refused").await.expect("deployment");
            let conditions = d.status?.conditions.unwrap_or_default();
            (!conditions.iter().any(|c| c.type_ == "ReplicaFailure")).then_some(())
        }
    })
    .await;
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f20_cronjobs_are_not_simulated_and_say_so() {
    let c = Cluster::start(1, "f20-cron").await;
    c.apply(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: work
            image: busybox
"#,
    );
    let message = eventually("the NotSimulated warning", DEADLINE, || async {
        let events = c.kubectl_ok(&["get", "events"]).await;
        events
            .lines()
            .find(|l| l.contains("NotSimulated") && l.contains("cronjob/nightly"))
            .map(str::to_string)
    })
    .await;
    assert!(message.contains("Warning"), "{message}");
    assert!(
        message.contains("kubesim does not simulate CronJobs"),
        "{message}"
    );
    c.sim.shutdown().await;
}
