//! Retention of old versions (`--retained-versions`, a Portcullis addition to B §3.14) end to
//! end: the real `portcullis-gate` against a real control plane and its garbage collector. The versions and
//! their tasks are written directly through the API, with finished statuses, before the gate
//! starts, so the gate's own lifecycle never touches the finished ones.

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnTask, KeptnWorkload, KeptnWorkloadVersion};
use shared::resolve::kav_name;

use e2e::*;

/// Creates `object` (JSON) as `K` in `ns`, sets its status when given; returns its uid and
/// creation time.
async fn create<K>(
    c: &Client,
    ns: &str,
    object: Value,
    status: Option<Value>,
) -> (String, Timestamp)
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
    let uid = created.meta().uid.clone().expect("uid");
    let at = created
        .meta()
        .creation_timestamp
        .clone()
        .expect("creationTimestamp")
        .0;
    (uid, at)
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

/// Workload `app-w` at spec version 0.4, and app `app` at version 0.4 (status too); returns
/// their uids.
async fn owners(c: &Client, ns: &str) -> (String, String) {
    let (workload, _) = create::<KeptnWorkload>(
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
    let (app, _) = create::<KeptnApp>(
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
    (workload, app)
}

/// KWV `app-w-0.<i>` (unfinished without a state) with its task; returns its creation time.
async fn kwv(c: &Client, ns: &str, workload_uid: &str, i: u32, state: Option<&str>) -> Timestamp {
    let version = format!("0.{i}");
    let name = format!("app-w-{version}");
    let status = state.map(|s| json!({"status": s, "currentPhase": "Completed"}));
    let (uid, at) = create::<KeptnWorkloadVersion>(
        c,
        ns,
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkloadVersion",
            "metadata": {"name": name, "ownerReferences": owner("KeptnWorkload", "app-w", workload_uid)},
            "spec": {"app": "app", "version": version, "workloadName": "app-w",
                     "resourceReference": {"uid": "none", "kind": "ReplicaSet", "name": "none"}}
        }),
        status,
    )
    .await;
    task_of(c, ns, "KeptnWorkloadVersion", &name, &uid).await;
    at
}

/// KAV of app version `0.<i>` (finished) with its task; returns its creation time.
async fn kav(c: &Client, ns: &str, app_uid: &str, i: u32, state: &str) -> Timestamp {
    let version = format!("0.{i}");
    let name = kav_name("app", &version, 1);
    let (uid, at) = create::<KeptnAppVersion>(
        c,
        ns,
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppVersion",
            "metadata": {"name": name, "ownerReferences": owner("KeptnApp", "app", app_uid)},
            "spec": {"version": version, "appName": "app"}
        }),
        Some(json!({"status": state, "currentPhase": "Completed"})),
    )
    .await;
    task_of(c, ns, "KeptnAppVersion", &name, &uid).await;
    at
}

/// Seven KWVs 0.1 … 0.7 and five KAVs 0.1 … 0.5, created so that creation order and name order
/// differ: KWVs 0.3, 0.6 and KAV 0.3 first, every other version at least a second later
/// (creationTimestamp has whole seconds).
///
/// Workload: 0.4 current, 0.5 unfinished, 0.7 newest (latest second, greatest name); finished
/// history newest first 0.2, 0.1 (later second), 0.6, 0.3 (first second). App: 0.4 current,
/// 0.5 newest; history 0.2, 0.1, 0.3. Deleting by name instead of age would pick 0.1 and 0.2.
async fn history(c: &Client, ns: &str) {
    let (w, a) = owners(c, ns).await;
    let first = [
        kwv(c, ns, &w, 3, Some("Succeeded")).await,
        kwv(c, ns, &w, 6, Some("Succeeded")).await,
        kav(c, ns, &a, 3, "Deprecated").await,
    ];
    let first = first.into_iter().max().expect("three");
    // The API server stamps with this machine's clock: wait for the next second.
    wait_for("the clock to pass the first batch's second", WAIT, || {
        let later = Timestamp::now().as_second() > first.as_second();
        async move { later.then_some(()) }
    })
    .await;
    let second = [
        kwv(c, ns, &w, 1, Some("Succeeded")).await,
        kwv(c, ns, &w, 2, Some("Failed")).await,
        kwv(c, ns, &w, 4, Some("Deprecated")).await,
        kwv(c, ns, &w, 5, None).await,
        kwv(c, ns, &w, 7, Some("Succeeded")).await,
        kav(c, ns, &a, 1, "Succeeded").await,
        kav(c, ns, &a, 2, "Failed").await,
        kav(c, ns, &a, 4, "Succeeded").await,
        kav(c, ns, &a, 5, "Succeeded").await,
    ];
    assert!(
        second.iter().all(|t| t > &first),
        "the second batch must be stamped later than the first: {first} vs {second:?}"
    );
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

/// With `--retained-versions 2`: exactly the oldest (by creation, not name) finished,
/// superseded versions beyond two per workload and per app are deleted, their tasks with them;
/// current, unfinished and newest versions stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_finished_versions_beyond_the_limit_are_deleted_with_their_tasks() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "retention";
    env.namespace(ns).await;
    history(&c, ns).await;
    env.start_gate(&["--retained-versions", "2"]);

    let kwvs: Vec<String> = [1, 2, 4, 5, 7]
        .iter()
        .map(|i| format!("app-w-0.{i}"))
        .collect();
    let kavs: Vec<String> = [1, 2, 4, 5]
        .iter()
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
    history(&c, ns).await;
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

/// Regression: with retention off, no unread subscription may hold the shared KAV cache back.
/// One KAV changes more often than the shared buffer holds (1024); a KAV created afterwards
/// must still reach the gate (its lifecycle writes a status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_does_not_stall_the_version_caches() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "retention-flood";
    env.namespace(ns).await;
    let (_, app) = owners(&c, ns).await;
    kav(&c, ns, &app, 1, "Succeeded").await;
    env.start_gate(&["--retained-versions", "0"]);
    wait_for("the gate running on synced caches", WAIT, || {
        let c = c.clone();
        async move {
            get::<KeptnWorkload>(&c, ns, "app-w")
                .await?
                .status
                .is_some_and(|s| s.current_version == "0.4")
                .then_some(())
        }
    })
    .await;
    let api: Api<KeptnAppVersion> = Api::namespaced(c.clone(), ns);
    let flooded = kav_name("app", "0.1", 1);
    futures::stream::iter(0..1200)
        .map(|i| {
            let (api, flooded) = (api.clone(), flooded.clone());
            async move {
                let change =
                    Patch::Merge(json!({"metadata": {"labels": {"flood": i.to_string()}}}));
                // A pooled connection may be closed under the client now and then; the
                // change itself cannot be refused, so a few attempts settle it.
                let mut attempts = 0;
                while let Err(error) = api.patch(&flooded, &PatchParams::default(), &change).await {
                    attempts += 1;
                    eprintln!("label patch {i}, attempt {attempts}: {error}");
                    assert!(attempts < 5, "label patch {i} failed: {error}");
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let fresh = kav_name("app", "0.9", 1);
    let created: KeptnAppVersion = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppVersion",
        "metadata": {"name": fresh},
        "spec": {"version": "0.9", "appName": "app"}
    }))
    .expect("kav");
    api.create(&PostParams::default(), &created)
        .await
        .expect("created");
    wait_for(
        "the gate to act on a KAV created after the flood",
        WAIT,
        || {
            let (c, fresh) = (c.clone(), fresh.clone());
            async move { kav_state(&c, ns, &fresh).await.map(|_| ()) }
        },
    )
    .await;
}
