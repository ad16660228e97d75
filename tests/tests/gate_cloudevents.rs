//! B §7.2 CloudEvents end to end: the real `portcullis-gate` on a real control plane, with an in-process
//! HTTP receiver standing in for the `cloudEventsEndpoint`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use shared::crd::{KeptnConfig, KeptnState, KeptnTask};

use e2e::*;

/// One POST the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// An HTTP receiver on 127.0.0.1:<free port> recording every POST; returns its base URL.
async fn receiver() -> (String, Log) {
    async fn record(
        State(log): State<Log>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> &'static str {
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        log.lock().unwrap().push(Received {
            path: uri.path().to_owned(),
            headers,
            body,
        });
        "ok"
    }
    let log: Log = Arc::default();
    let app = Router::new()
        .route("/{*path}", post(record))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, log)
}

/// The received CloudEvent of `ce_type` about `name`, waiting for it with a deadline.
async fn wait_for_cloud_event(log: &Log, ce_type: &str, name: &str) -> Received {
    wait_for(&format!("CloudEvent {ce_type} of {name}"), WAIT, || {
        let found = log
            .lock()
            .unwrap()
            .iter()
            .find(|r| {
                r.headers.get("ce-type").map(String::as_str) == Some(ce_type)
                    && r.body["resource"]["name"] == name
            })
            .cloned();
        async move { found }
    })
    .await
}

/// The Kubernetes Event with `reason` regarding `name` (waits with a deadline).
async fn k8s_event(c: &kube::Client, ns: &str, reason: &str, name: &str) -> Event {
    wait_for(&format!("event {reason} of {name}"), WAIT, || {
        let c = c.clone();
        async move {
            events(&c, ns).await.into_iter().find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
        }
    })
    .await
}

/// A single-service app `name` at version 0.4 without checks, run to its completed KAV.
async fn complete_single_service(c: &kube::Client, ns: &str, name: &str) {
    let rs = gated_deployment(c, ns, name, name, "0.4", 1, json!({})).await;
    workload_objects(c, ns, name, name, "0.4", &rs, &[]).await;
    creation_request(c, ns, name, true).await;
    let kav = format!("{name}-0.4-6b86b273");
    wait_for(&format!("KAV {kav} Completed"), WAIT, || {
        let c = c.clone();
        let kav = kav.clone();
        async move {
            (kav_state(&c, ns, &kav).await? == ("Completed".to_owned(), KeptnState::Succeeded))
                .then_some(())
        }
    })
    .await;
}

/// Creates the KeptnTask `orphan-task` of `app`'s workload at `version`, whose definition does
/// not exist: the task controller reports it with a Warning (`CreateTaskNotFound`).
async fn orphan_task(c: &kube::Client, ns: &str, app: &str, version: &str) {
    let task: KeptnTask = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTask",
        "metadata": {"name": "orphan-task"},
        "spec": {"taskDefinition": "no-such-definition", "checkType": "pre",
                 "context": {"appName": app, "appVersion": "0.4", "workloadName": format!("{app}-{app}"),
                             "workloadVersion": version, "objectType": "Workload", "taskType": "pre"}}
    }))
    .expect("task");
    Api::<KeptnTask>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &task)
        .await
        .expect("task created");
}

/// Checks one received CloudEvent against B §7.2 and the Kubernetes Event it mirrors.
fn assert_mirrors(r: &Received, k8s: &Event, kind: &str, name: &str, ns: &str, version: &str) {
    assert_eq!(r.path, "/events");
    assert_eq!(r.headers["ce-specversion"], "1.0");
    assert_eq!(r.headers["ce-source"], "keptn.sh");
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(!r.headers["ce-id"].is_empty());
    let time: jiff::Timestamp = r.headers["ce-time"].parse().expect("ce-time is RFC 3339");
    assert!(time > jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600));
    assert_eq!(
        r.body["message"],
        json!(k8s.note.clone().unwrap_or_default())
    );
    assert_eq!(r.body["type"], json!(k8s.type_.clone().unwrap_or_default()));
    assert_eq!(r.body["version"], version);
    assert_eq!(
        r.body["resource"],
        json!({"group": "lifecycle.keptn.sh", "kind": kind, "version": "v1", "name": name, "namespace": ns})
    );
}

/// B §7.2: with `cloudEventsEndpoint` set, the lifecycle's events arrive as binary-mode
/// CloudEvents mirroring the Kubernetes Events; after the endpoint is cleared nothing more is
/// sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_are_sent_as_cloudevents_while_configured() {
    let (url, log) = receiver().await;
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "cloudevents";
    env.namespace(ns).await;
    env.config(ns, json!({"cloudEventsEndpoint": format!("{url}/events")}))
        .await;
    env.start_gate(&[]);
    complete_single_service(&c, ns, "waiter").await;

    let kwv = "waiter-waiter-0.4";
    let kav = "waiter-0.4-6b86b273";
    for (ce_type, reason, kind, name) in [
        (
            "Workload Deployment.Started",
            "WorkloadDeployStarted",
            "KeptnWorkloadVersion",
            kwv,
        ),
        (
            "Workload Deployment.Finished",
            "WorkloadDeployFinished",
            "KeptnWorkloadVersion",
            kwv,
        ),
        (
            "Workload Completed.Finished",
            "WorkloadCompletedFinished",
            "KeptnWorkloadVersion",
            kwv,
        ),
        (
            "App Deployment.Finished",
            "AppDeployFinished",
            "KeptnAppVersion",
            kav,
        ),
        (
            "App Completed.Finished",
            "AppCompletedFinished",
            "KeptnAppVersion",
            kav,
        ),
    ] {
        let received = wait_for_cloud_event(&log, ce_type, name).await;
        let k8s = k8s_event(&c, ns, reason, name).await;
        assert_mirrors(&received, &k8s, kind, name, ns, "0.4");
    }
    // The task controller's events go the same way: a KeptnTask whose definition is missing.
    orphan_task(&c, ns, "waiter", "0.5").await;
    let received = wait_for("CloudEvent Create Task.NotFound", WAIT, || {
        let found = log
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.headers.get("ce-type").map(String::as_str) == Some("Create Task.NotFound"))
            .cloned();
        async move { found }
    })
    .await;
    let task = received.body["resource"]["name"]
        .as_str()
        .expect("task name")
        .to_owned();
    let k8s = k8s_event(&c, ns, "CreateTaskNotFound", &task).await;
    assert_eq!(task, "orphan-task");
    assert_mirrors(&received, &k8s, "KeptnTask", &task, ns, "0.5");
    assert_eq!(received.body["type"], "Warning");

    let all = log.lock().unwrap().clone();
    let ids: HashSet<&str> = all.iter().map(|r| r.headers["ce-id"].as_str()).collect();
    assert_eq!(ids.len(), all.len(), "ce-id is unique per event");

    // Clear the endpoint; the next app's events must not be sent.
    let set_endpoint = |endpoint: String| {
        let c = c.clone();
        let applied = env.gate_log(0).matches("reconciling Keptn Config").count();
        let env = &env;
        async move {
            Api::<KeptnConfig>::namespaced(c, ns)
                .patch(
                    "keptn-config",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"cloudEventsEndpoint": endpoint}})),
                )
                .await
                .expect("config patched");
            wait_for("the changed config applied", WAIT, || {
                let n = env.gate_log(0).matches("reconciling Keptn Config").count();
                async move { (n > applied).then_some(()) }
            })
            .await;
        }
    };
    set_endpoint(String::new()).await;
    let before = log.lock().unwrap().len();
    complete_single_service(&c, ns, "quiet").await;
    k8s_event(&c, ns, "AppCompletedFinished", "quiet-0.4-6b86b273").await;
    // A late send of the quiet app would still be in flight now; set the endpoint again and run
    // one more app: its CloudEvents arriving marks the point by which any quiet one would have.
    set_endpoint(format!("{url}/events")).await;
    complete_single_service(&c, ns, "loud").await;
    wait_for_cloud_event(&log, "App Completed.Finished", "loud-0.4-6b86b273").await;
    let after = log.lock().unwrap().clone();
    assert!(
        after[before..].iter().all(|r| !r.body["resource"]["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("quiet")),
        "nothing is sent without an endpoint: {:?}",
        &after[before..]
    );
}

/// B §7.2 "failures are only logged": an endpoint nobody listens on does not hold the lifecycle;
/// the failures are counted in `portcullis_gate_cloudevents_failures_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_does_not_stop_the_lifecycle() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "cloudevents-down";
    env.namespace(ns).await;
    let port = free_port();
    env.config(
        ns,
        json!({"cloudEventsEndpoint": format!("http://127.0.0.1:{port}/events")}),
    )
    .await;
    env.start_gate(&[]);
    complete_single_service(&c, ns, "waiter").await;
    k8s_event(&c, ns, "AppCompletedFinished", "waiter-0.4-6b86b273").await;
    wait_for("the failed send logged", WAIT, || {
        let logged = env.gate_log(0).contains("could not send CloudEvent");
        async move { logged.then_some(()) }
    })
    .await;
    let admin = env.admin_ports[0];
    wait_for("the failed sends counted", WAIT, || async move {
        metric(admin, "portcullis_gate_cloudevents_failures_total")
            .await
            .filter(|n| *n > 0.0)
    })
    .await;
}

/// `--kubernetes-events warnings` (docs/decisions.md, "Kubernetes Events"): the lifecycle's
/// `Normal` events still go out as CloudEvents but are not created as Kubernetes Events;
/// `Warning` events are both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_only_leaves_normal_events_to_cloudevents() {
    let (url, log) = receiver().await;
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "warnings-only";
    env.namespace(ns).await;
    env.config(ns, json!({"cloudEventsEndpoint": format!("{url}/events")}))
        .await;
    env.start_gate(&["--kubernetes-events", "warnings"]);
    complete_single_service(&c, ns, "calm").await;
    let kav = "calm-0.4-6b86b273";
    let normal = wait_for_cloud_event(&log, "App Completed.Finished", kav).await;
    assert_eq!(normal.body["type"], "Normal");

    // A Warning, published after every event of the completed lifecycle.
    orphan_task(&c, ns, "calm", "0.4").await;
    let warning = k8s_event(&c, ns, "CreateTaskNotFound", "orphan-task").await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    let received = wait_for_cloud_event(&log, "Create Task.NotFound", "orphan-task").await;
    assert_mirrors(&received, &warning, "KeptnTask", "orphan-task", ns, "0.4");

    // The CloudEvents of the lifecycle's Normal events arrived; none of them is a Kubernetes
    // Event (the other reporters in the namespace, the Job and ReplicaSet controllers and the
    // scheduler, are not the gate's).
    let kwv = "calm-calm-0.4";
    for (ce_type, name) in [
        ("Workload Deployment.Started", kwv),
        ("Workload Completed.Finished", kwv),
        ("App Deployment.Finished", kav),
    ] {
        let r = wait_for_cloud_event(&log, ce_type, name).await;
        assert_eq!(r.body["type"], "Normal", "{ce_type}");
    }
    let listed = Api::<Event>::namespaced(c.clone(), ns)
        .list(&Default::default())
        .await
        .expect("events listed")
        .items;
    let gates: Vec<&Event> = listed
        .iter()
        .filter(|e| {
            e.reporting_controller
                .as_deref()
                .is_some_and(|r| r.starts_with("keptn") || r.starts_with("portcullis"))
        })
        .collect();
    assert!(
        gates
            .iter()
            .any(|e| e.reason.as_deref() == Some("CreateTaskNotFound")),
        "the gate's Warning is among the listed: {gates:?}"
    );
    let normal: Vec<&str> = gates
        .iter()
        .filter(|e| e.type_.as_deref() != Some("Warning"))
        .filter_map(|e| e.reason.as_deref())
        .collect();
    assert!(normal.is_empty(), "Normal events created: {normal:?}");
}
