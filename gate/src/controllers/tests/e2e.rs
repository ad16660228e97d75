//! The controllers of this module against a real control plane (the `e2e` harness: kube-apiserver,
//! the Job controller, the scheduler, kwok as kubelets): objects in, Jobs, ConfigMaps, statuses and
//! Events out. Container outcomes are chosen with kwok's pod label, which a Job's pods inherit from
//! the KeptnTask's labels (B §5.4).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use shared::crd::{
    KeptnEvaluation, KeptnEvaluationDefinition, KeptnMetric, KeptnState, KeptnTask,
    KeptnTaskDefinition,
};
use tokio::sync::oneshot;

use lifecycle::config::RuntimeConfig;
use lifecycle::execution::RunnerImages;

use crate::controllers::{Settings, run};
use crate::observability::{EventLevel, EventSink, Metrics, Observability, Recorders, Traces};

const NS: &str = "app";
const INSTALL_NS: &str = "keptn-system";
const WAIT: Duration = Duration::from_secs(60);

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create<K>(client: &Client, namespace: &str, value: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).expect("fixture");
    Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &obj)
        .await
        .expect("created")
}

/// The controllers running in the background; dropped = stopped.
struct Controllers {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Controllers {
    fn start(client: &Client, metrics: Arc<Metrics>) -> Controllers {
        let settings = Settings {
            keptn_namespace: INSTALL_NS.into(),
            promotion_enabled: false,
            identity: "test".into(),
            sweep_interval: Duration::from_secs(30),
            retained_versions: lifecycle::retention::DEFAULT_RETAINED,
            images: RunnerImages::default(),
        };
        let sink = EventSink::start(client, EventLevel::All, metrics.events_dropped.clone());
        let observability = Observability {
            metrics,
            traces: Arc::new(Traces::new(None)),
            recorders: Recorders::new(&sink, "test", None),
        };
        let config = Arc::new(std::sync::RwLock::new(RuntimeConfig::default()));
        let (config_changed, _) = tokio::sync::watch::channel(());
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let controllers = run(
            client.clone(),
            settings,
            config,
            config_changed,
            observability,
            ready,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = controllers => {}
                _ = stopped => {}
            }
        });
        Controllers {
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_cluster() -> (e2e::Cluster, Client) {
    let cluster = e2e::Cluster::with_crds().await;
    let client = cluster.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [NS, INSTALL_NS] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        match namespaces.create(&PostParams::default(), &n).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("namespace {ns}: {e}"),
        }
    }
    let c = client.clone();
    wait_for("CRDs served", || {
        let c = c.clone();
        async move {
            let served = Api::<KeptnTask>::all(c.clone())
                .list(&ListParams::default())
                .await
                .is_ok()
                && Api::<KeptnEvaluation>::all(c.clone())
                    .list(&ListParams::default())
                    .await
                    .is_ok()
                && Api::<KeptnMetric>::all(c)
                    .list(&ListParams::default())
                    .await
                    .is_ok();
            served.then_some(())
        }
    })
    .await;
    (cluster, client)
}

fn task_json(name: &str, definition: &str, outcome: &str) -> Value {
    json!({
        "apiVersion": "lifecycle.keptn.sh/v1",
        "kind": "KeptnTask",
        "metadata": {"name": name, "labels": {e2e::OUTCOME: outcome}, "annotations": {
            e2e::RUN_FOR: "200ms",
        }},
        "spec": {
            "taskDefinition": definition,
            "checkType": "pre",
            "retries": 0,
            "timeout": "30s",
            "context": {"workloadName": "waiter-waiter", "appName": "waiter", "appVersion": "",
                "workloadVersion": "0.4", "taskType": "pre", "objectType": "Workload"},
        },
    })
}

async fn task_in_state(client: &Client, name: &str, state: KeptnState) -> KeptnTask {
    let api: Api<KeptnTask> = Api::namespaced(client.clone(), NS);
    wait_for(&format!("task {name} {state}"), || {
        let api = api.clone();
        let state = state.clone();
        async move {
            let t = api.get(name).await.ok()?;
            let s = t.status.as_ref()?;
            (s.status == state && s.end_time.is_some()).then_some(t)
        }
    })
    .await
}

async fn event_with_reason(client: &Client, reason: &str) -> Event {
    let api: Api<Event> = Api::namespaced(client.clone(), NS);
    wait_for(&format!("event {reason}"), || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_tasks_run_as_jobs_and_are_never_rerun() {
    let (cluster, client) = start_cluster().await;
    let metrics = Arc::new(Metrics::new());
    let controllers = Controllers::start(&client, metrics.clone());

    // B §5.2 + A20: the inline code becomes a ConfigMap owned by the definition.
    let definition: KeptnTaskDefinition = create(
        &client,
        NS,
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1",
            "kind": "KeptnTaskDefinition",
            "metadata": {"name": "hello"},
            "spec": {"deno": {"inline": {"code": "console.log('hi')"}}, "ttlSecondsAfterFinished": 1},
        }),
    )
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let cm = wait_for("function ConfigMap", || {
        let config_maps = config_maps.clone();
        async move { config_maps.get_opt("keptnfn-hello").await.ok().flatten() }
    })
    .await;
    assert_eq!(cm.data.unwrap()["code"], "console.log('hi')");
    let owner = &cm.metadata.owner_references.expect("owned")[0];
    assert_eq!(owner.uid, definition.uid().unwrap());
    assert_eq!(owner.kind, "KeptnTaskDefinition");
    let definitions: Api<KeptnTaskDefinition> = Api::namespaced(client.clone(), NS);
    wait_for("definition status", || {
        let definitions = definitions.clone();
        async move {
            let d = definitions.get("hello").await.ok()?;
            (d.status?.function?.config_map == "keptnfn-hello").then_some(())
        }
    })
    .await;

    // B §5.3: a task runs as a Job and succeeds with it.
    let created: KeptnTask = create(
        &client,
        NS,
        task_json("pre-hello-11111", "hello", "succeed"),
    )
    .await;
    let done = task_in_state(&client, "pre-hello-11111", KeptnState::Succeeded).await;
    let status = done.status.unwrap();
    let want_job = lifecycle::execution::job_name_for(&created).unwrap();
    assert_eq!(status.job_name, want_job);
    assert!(status.start_time.is_some());

    // Container (B §5.6, scratch volume) and python httpRef (B §5.5) Jobs are accepted by the
    // API server's validation and run.
    for (name, spec) in [
        (
            "scratch",
            json!({"container": {"name": "c", "image": "busybox",
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}}),
        ),
        (
            "fetch",
            json!({"python": {"httpRef": {"url": "https://example.com/check.py"},
                "parameters": {"map": {"k": "v"}}, "secureParameters": {"secret": "creds"}}}),
        ),
    ] {
        create::<KeptnTaskDefinition>(
            &client,
            NS,
            json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
                "metadata": {"name": name}, "spec": spec}),
        )
        .await;
        let task_name = format!("pre-{name}-55555");
        create::<KeptnTask>(&client, NS, task_json(&task_name, name, "succeed")).await;
        let done = task_in_state(&client, &task_name, KeptnState::Succeeded).await;
        let job = Api::<Job>::namespaced(client.clone(), NS)
            .get(&done.status.unwrap().job_name)
            .await
            .expect("the task's Job");
        let pod = job.spec.unwrap().template.spec.unwrap();
        match name {
            "scratch" => assert_eq!(
                pod.volumes.unwrap()[0]
                    .empty_dir
                    .as_ref()
                    .unwrap()
                    .size_limit,
                Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                    "1Gi".into()
                ))
            ),
            _ => assert_eq!(
                pod.containers[0].image.as_deref(),
                Some("ghcr.io/keptn/python-runtime:v1.0.8")
            ),
        }
    }

    // A task that fails: its Job's failure reason is the task's.
    create::<KeptnTask>(&client, NS, task_json("pre-hello-22222", "hello", "fail")).await;
    let failed = task_in_state(&client, "pre-hello-22222", KeptnState::Failed).await;
    assert_eq!(failed.status.unwrap().reason, "BackoffLimitExceeded");

    // B §5.3 / §7.1: a missing definition is reported as an event and in the status.
    create::<KeptnTask>(&client, NS, task_json("pre-nope-33333", "nope", "succeed")).await;
    let event = event_with_reason(&client, "CreateTaskNotFound").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(
        event.note.as_deref(),
        Some(
            "Create Task: could not find KeptnTaskDefinition: nope / Namespace: app, Name: pre-nope-33333, Version: 0.4"
        )
    );
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("keptntask-controller")
    );
    let annotations = event.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations["phase"], "CreateTask");
    assert_eq!(annotations["taskName"], "pre-nope-33333");
    assert_eq!(annotations["taskDefinitionName"], "nope");
    assert_eq!(annotations["workloadName"], "waiter-waiter");
    let tasks: Api<KeptnTask> = Api::namespaced(client.clone(), NS);
    wait_for("missing-definition message", || {
        let tasks = tasks.clone();
        async move {
            let t = tasks.get("pre-nope-33333").await.ok()?;
            (t.status?.message == "could not find KeptnTaskDefinition: nope").then_some(())
        }
    })
    .await;

    // A15: the finished Job is removed by its TTL; a restarted controller does not run the
    // task again.
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    wait_for("Job removed by its TTL", || {
        let jobs = jobs.clone();
        let name = want_job.clone();
        async move { jobs.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    controllers.stop().await;
    let controllers = Controllers::start(&client, metrics.clone());
    // Barrier: a task created after the restart has run, so the restarted controller has
    // reconciled everything it listed.
    create::<KeptnTask>(
        &client,
        NS,
        task_json("pre-hello-44444", "hello", "succeed"),
    )
    .await;
    task_in_state(&client, "pre-hello-44444", KeptnState::Succeeded).await;
    let again = tasks.get("pre-hello-11111").await.unwrap().status.unwrap();
    assert_eq!(again.status, KeptnState::Succeeded);
    assert!(
        jobs.get_opt(&want_job).await.unwrap().is_none(),
        "a completed task got a new Job"
    );
    let for_first = jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| {
            j.annotations()
                .get("keptn.sh/task-name")
                .map(String::as_str)
                == Some("pre-hello-11111")
        })
        .count();
    assert_eq!(for_first, 0);

    // B §7.3: counted once per finished task.
    let text = metrics.encode_keptn();
    let count = |name: &str, status: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("keptn_task_count_total{")
                    && l.contains(&format!("keptn_deployment_task_name=\"{name}\""))
                    && l.contains(&format!("keptn_deployment_task_status=\"{status}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(
        count("pre-hello-11111", "Succeeded").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("pre-hello-22222", "Failed").as_deref(),
        Some("1"),
        "{text}"
    );

    controllers.stop().await;
    drop(cluster);
}

async fn metric(client: &Client, name: &str, value: &str) {
    let api: Api<KeptnMetric> = Api::namespaced(client.clone(), NS);
    let m: KeptnMetric = serde_json::from_value(json!({
        "apiVersion": "metrics.keptn.sh/v1",
        "kind": "KeptnMetric",
        "metadata": {"name": name},
        "spec": {"provider": {"name": "prometheus"}, "query": "up", "fetchIntervalSeconds": 5},
    }))
    .unwrap();
    api.create(&PostParams::default(), &m)
        .await
        .expect("metric");
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"value": value, "rawValue": "MQ=="}})),
    )
    .await
    .expect("metric status");
}

fn evaluation_json(name: &str, definition: &str, retries: i64) -> Value {
    json!({
        "apiVersion": "lifecycle.keptn.sh/v1",
        "kind": "KeptnEvaluation",
        "metadata": {"name": name},
        "spec": {"appName": "waiter", "workload": "waiter-waiter", "workloadVersion": "0.4",
            "evaluationDefinition": definition, "checkType": "pre-eval",
            "retries": retries, "retryInterval": "200ms"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_evaluations_compare_metrics_and_give_up_after_retries() {
    let (cluster, client) = start_cluster().await;
    let metrics = Arc::new(Metrics::new());
    let controllers = Controllers::start(&client, metrics);
    metric(&client, "low", "3").await;
    metric(&client, "high", "9").await;
    for (name, metric) in [("below-five", "low"), ("high-below-five", "high")] {
        create::<KeptnEvaluationDefinition>(
            &client,
            NS,
            json!({
                "apiVersion": "lifecycle.keptn.sh/v1",
                "kind": "KeptnEvaluationDefinition",
                "metadata": {"name": name},
                "spec": {"objectives": [{"keptnMetricRef": {"name": metric}, "evaluationTarget": "<5"}]},
            }),
        )
        .await;
    }
    create::<KeptnEvaluation>(
        &client,
        NS,
        evaluation_json("pre-eval-ok-11111", "below-five", 3),
    )
    .await;
    create::<KeptnEvaluation>(
        &client,
        NS,
        evaluation_json("pre-eval-bad-22222", "high-below-five", 2),
    )
    .await;
    let api: Api<KeptnEvaluation> = Api::namespaced(client.clone(), NS);
    let finished = |name: &'static str| {
        let api = api.clone();
        wait_for(name, move || {
            let api = api.clone();
            async move {
                let e = api.get(name).await.ok()?;
                let s = e.status?;
                s.end_time.is_some().then_some(s)
            }
        })
    };
    let ok = finished("pre-eval-ok-11111").await;
    assert_eq!(ok.overall_status, KeptnState::Succeeded);
    assert_eq!(ok.retry_count, 1);
    assert_eq!(
        ok.evaluation_status["low"].message,
        "value '3' met objective '<5'"
    );

    let bad = finished("pre-eval-bad-22222").await;
    assert_eq!(bad.overall_status, KeptnState::Failed);
    assert_eq!(bad.retry_count, 2, "exactly `retries` attempts");
    assert_eq!(
        bad.evaluation_status["high"].message,
        "value '9' did not meet objective '<5'"
    );
    let event = event_with_reason(&client, "ReconcileEvaluationReconcileTimeout").await;
    assert_eq!(
        event.note.as_deref(),
        Some(
            "Reconcile Evaluation: retryCount exceeded / Namespace: app, Name: pre-eval-bad-22222, Version: 0.4"
        )
    );
    let annotations = event.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations["evaluationName"], "pre-eval-bad-22222");
    assert_eq!(annotations["phase"], "ReconcileEvaluation");
    controllers.stop().await;
    drop(cluster);
}

/// Several reconciles that first need a namespace's Job cache at the same moment all get it as
/// soon as it has listed; none waits out the sync deadline (kube-runtime's own readiness wakes
/// only the last of several concurrent waiters; the others got the store 10 s late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_concurrent_first_readers_of_a_scoped_cache_all_get_it() {
    let (_cluster, client) = start_cluster().await;
    let (cache, _triggers) =
        crate::controllers::scoped::ScopedCache::<Job>::new(client.clone(), |_| {});
    let mut readers: futures::stream::FuturesUnordered<_> = (0..4)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.store(NS).await.is_some() })
        })
        .collect();
    let first = futures::StreamExt::next(&mut readers)
        .await
        .expect("a reader")
        .expect("reader");
    assert!(first, "the first reader got no store");
    // The store has listed: the others are woken now, not when their sync deadline runs out.
    let rest = tokio::time::timeout(
        Duration::from_secs(5),
        futures::StreamExt::collect::<Vec<_>>(readers),
    )
    .await
    .expect("the other readers got the store within 5 s of the first");
    assert!(rest.into_iter().all(|r| r.expect("reader")));
}
