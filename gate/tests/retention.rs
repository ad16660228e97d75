//! Retention of old versions (`--retained-versions`, a Portcullis addition to B §3.14) end to
//! end: the real `portcullis-gate` against kubesim and its garbage collector. The versions and
//! their tasks are written directly through the API, with finished statuses, before the gate
//! starts, so the gate's own lifecycle never touches the finished ones.

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnTask, KeptnWorkload, KeptnWorkloadVersion};
use shared::resolve::kav_name;

mod common;

use common::*;

/// Creates `object` (JSON) as `K` in `ns`, sets its status when given; returns its uid.
async fn create<K>(c: &Client, ns: &str, object: Value, status: Option<Value>) -> String
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(c.clone(), ns);
    let object: K = serde_json::from_value(object).expect("object");
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .expect("created");
    let name = created.meta().name.clone().expect("name");
    if let Some(status) = status {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .expect("status written");
    }
    created.meta().uid.clone().expect("uid")
}

fn owner(kind: &str, name: &str, uid: &str) -> Value {
    json!([{
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": kind, "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true
    }])
}

/// A finished KeptnTask of the version `owner_name`, owned by it (B §3.14).
async fn task_of(c: &Client, ns: &str, kind: &str, owner_name: &str, owner_uid: &str) {
    create::<KeptnTask>(
        c,
        ns,
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTask",
            "metadata": {"name": format!("task-{owner_name}"), "ownerReferences": owner(kind, owner_name, owner_uid)},
            "spec": {"taskDefinition": "def", "checkType": "pre", "context": {"workloadName": "w", "appName": "app"}}
        }),
        Some(json!({"status": "Succeeded"})),
    )
    .await;
}

/// Workload `app-w` at spec version 0.4 with seven versions 0.1 … 0.7 (created in that order,
/// names sorting the same way). 0.4 is current (the workload's version), 0.5 unfinished, 0.7
/// newest; the finished history is 0.6, 0.3, 0.2, 0.1.
async fn workload_history(c: &Client, ns: &str) {
    let workload_uid = create::<KeptnWorkload>(
        c,
        ns,
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkload",
            "metadata": {"name": "app-w"},
            "spec": {"app": "app", "version": "0.4",
                     "resourceReference": {"uid": "none", "kind": "ReplicaSet", "name": "none"}}
        }),
        None,
    )
    .await;
    let states = [
        Some("Succeeded"),
        Some("Failed"),
        Some("Succeeded"),
        Some("Deprecated"),
        None,
        Some("Succeeded"),
        Some("Succeeded"),
    ];
    for (i, state) in states.into_iter().enumerate() {
        let version = format!("0.{}", i + 1);
        let name = format!("app-w-{version}");
        let status = state.map(|s| json!({"status": s, "currentPhase": "Completed"}));
        let uid = create::<KeptnWorkloadVersion>(
            c,
            ns,
            json!({
                "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkloadVersion",
                "metadata": {"name": name, "ownerReferences": owner("KeptnWorkload", "app-w", &workload_uid)},
                "spec": {"app": "app", "version": version, "workloadName": "app-w",
                         "resourceReference": {"uid": "none", "kind": "ReplicaSet", "name": "none"}}
            }),
            status,
        )
        .await;
        task_of(c, ns, "KeptnWorkloadVersion", &name, &uid).await;
    }
}

/// App `app` at version 0.4 (its KAV current), five KAVs 0.1 … 0.5, all finished, 0.5
/// newest; the history is 0.3, 0.2, 0.1.
async fn app_history(c: &Client, ns: &str) {
    let app_uid = create::<KeptnApp>(
        c,
        ns,
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
            "metadata": {"name": "app"},
            "spec": {"version": "0.4"}
        }),
        Some(json!({"currentVersion": "0.4"})),
    )
    .await;
    let states = [
        "Succeeded",
        "Failed",
        "Deprecated",
        "Succeeded",
        "Succeeded",
    ];
    for (i, state) in states.into_iter().enumerate() {
        let version = format!("0.{}", i + 1);
        let name = kav_name("app", &version, 1);
        let uid = create::<KeptnAppVersion>(
            c,
            ns,
            json!({
                "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppVersion",
                "metadata": {"name": name, "ownerReferences": owner("KeptnApp", "app", &app_uid)},
                "spec": {"version": version, "appName": "app"}
            }),
            Some(json!({"status": state, "currentPhase": "Completed"})),
        )
        .await;
        task_of(c, ns, "KeptnAppVersion", &name, &uid).await;
    }
}

async fn names<K>(c: &Client, ns: &str) -> Vec<String>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let mut n: Vec<String> = Api::<K>::namespaced(c.clone(), ns)
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect();
    n.sort();
    n
}

/// With `--retained-versions 2`: exactly the oldest finished, superseded versions beyond two
/// per workload and per app are deleted, their tasks with them; current, unfinished and newest
/// versions stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_finished_versions_beyond_the_limit_are_deleted_with_their_tasks() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "retention";
    env.namespace(ns).await;
    workload_history(&c, ns).await;
    app_history(&c, ns).await;
    env.start_gate(&["--retained-versions", "2"]);

    let kwvs: Vec<String> = (3..=7).map(|i| format!("app-w-0.{i}")).collect();
    let kavs: Vec<String> = (2..=5)
        .map(|i| kav_name("app", &format!("0.{i}"), 1))
        .collect();
    wait_for("old KWVs and KAVs deleted", WAIT, || {
        let c = c.clone();
        let (kwvs, kavs) = (kwvs.clone(), kavs.clone());
        async move {
            (names::<KeptnWorkloadVersion>(&c, ns).await == kwvs
                && names::<KeptnAppVersion>(&c, ns).await == kavs)
                .then_some(())
        }
    })
    .await;
    let mut tasks: Vec<String> = kwvs
        .iter()
        .chain(kavs.iter())
        .map(|n| format!("task-{n}"))
        .collect();
    tasks.sort();
    wait_for("their tasks collected", WAIT, || {
        let c = c.clone();
        let tasks = tasks.clone();
        async move { (names::<KeptnTask>(&c, ns).await == tasks).then_some(()) }
    })
    .await;
    // Exactly three deletions were made (2 KWVs, 1 KAV): none was repeated or extra.
    wait_for("three deletions logged", WAIT, || {
        let log = env.gate_log(0);
        async move { (log.matches("deleted old version").count() == 3).then_some(()) }
    })
    .await;
    assert_eq!(names::<KeptnWorkloadVersion>(&c, ns).await, kwvs);
    assert_eq!(names::<KeptnAppVersion>(&c, ns).await, kavs);
}

/// `--retained-versions 0` keeps every version (the same history loses three with 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_keeps_every_version() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "retention-off";
    env.namespace(ns).await;
    workload_history(&c, ns).await;
    app_history(&c, ns).await;
    env.start_gate(&["--retained-versions", "0"]);
    wait_for("retention disabled and the lifecycle running", WAIT, || {
        let c = c.clone();
        let disabled = env
            .gate_log(0)
            .contains("retention of old versions disabled");
        async move {
            // The workload controller records the current version once it runs on synced
            // caches, when an enabled retention pass would have run too.
            let running = get::<KeptnWorkload>(&c, ns, "app-w")
                .await?
                .status
                .is_some_and(|s| s.current_version == "0.4");
            (disabled && running).then_some(())
        }
    })
    .await;
    let all: Vec<String> = (1..=7).map(|i| format!("app-w-0.{i}")).collect();
    assert_eq!(names::<KeptnWorkloadVersion>(&c, ns).await, all);
    assert_eq!(names::<KeptnAppVersion>(&c, ns).await.len(), 5);
    assert_eq!(names::<KeptnTask>(&c, ns).await.len(), 12);
}
