//! End-to-end tests of `kubectl portcullis status`, `why` and `retry` (issue 17): the real
//! `kubectl-portcullis` binary against a real control plane where the real `portcullis-gate`
//! runs the lifecycle, a KeptnTask's Job is run by the real Job controller and kwok plays its pod
//! (the outcome chosen by the `kwok.portcullis.dev/outcome` label of the KeptnTaskDefinition).
//!
//! As in `gate_checks.rs`, the test plays the webhook: pods get the gate and the stamped identity
//! from their Deployment's pod template, and the test creates the KeptnWorkload and the
//! KeptnAppCreationRequest. One rollout is held by a failing pre-deployment task, one completes.
//! The binary runs with `--kubeconfig` of the test's cluster and `--color never`; its text and
//! JSON output are checked.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnState, KeptnTask, KeptnWorkloadVersion};
use tokio::io::AsyncBufReadExt;

use e2e::*;

/// What a run of the binary printed, and whether it succeeded.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `kubectl-portcullis --kubeconfig <cluster> -n <ns> --color never <args>`.
async fn cli(env: &Env, ns: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(binary("kubectl-portcullis"))
        .arg("--kubeconfig")
        .arg(env.kubeconfig())
        .args(["-n", ns, "--color", "never"])
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("kubectl-portcullis runs");
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "$ kubectl portcullis -n {ns} {}\n{}{}",
        args.join(" "),
        run.stdout,
        run.stderr
    );
    run
}

/// [`cli`], which must succeed, with its output as JSON.
async fn cli_json(env: &Env, ns: &str, args: &[&str]) -> Value {
    let run = cli(env, ns, &[args, &["-o", "json"]].concat()).await;
    assert!(run.ok, "{}", run.stderr);
    serde_json::from_str(&run.stdout).expect("JSON output")
}

/// A container KeptnTaskDefinition whose Job pods behave as `outcome` (`succeed`, `fail`).
async fn task_definition(client: &Client, ns: &str, name: &str, outcome: &str) {
    let def: shared::crd::KeptnTaskDefinition = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": name, "labels": {OUTCOME: outcome}, "annotations": {RUN_FOR: "200ms"}},
        "spec": {
            "container": {"name": "check", "image": "busybox:1.36", "command": ["sh", "-c", "true"]},
            "retries": 0, "timeout": "30s"
        }
    }))
    .expect("definition");
    Api::<shared::crd::KeptnTaskDefinition>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &def)
        .await
        .expect("definition created");
}

/// A single-service app `name` (workload `name`, version `version`) of `replicas` gated pods
/// with the pre-deployment task `task`.
async fn rollout(client: &Client, ns: &str, name: &str, version: &str, replicas: i32, task: &str) {
    let rs = gated_deployment(client, ns, name, name, version, replicas, json!({})).await;
    workload_objects(client, ns, name, name, version, &rs, &[task]).await;
    creation_request(client, ns, name, true).await;
}

async fn pod_names(client: &Client, ns: &str, app: &str, n: usize) -> Vec<String> {
    wait_for("the pods", WAIT, || {
        let client = client.clone();
        async move {
            let p = pods(&client, ns, app).await;
            (p.len() == n).then(|| p.iter().map(|p| p.name_any()).collect())
        }
    })
    .await
}

fn contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
}

/// A held rollout: `status` shows the failed phase and the failed task with its Job, `why` names
/// the workload version, phase, task and advice, `retry app` bumps the revision, `retry workload`
/// deletes the failed KeptnWorkloadVersion and the gate creates it again (with the task fixed, the
/// pods are then released, and `status --watch` redraws on the way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_rollout_status_why_and_retry() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "held";
    env.namespace(ns).await;
    env.start_gate(&[]);
    task_definition(&c, ns, "check-db", "fail").await;
    rollout(&c, ns, "api", "3", 2, "check-db").await;
    wait_for_kwv(
        &c,
        ns,
        "api-api-3",
        "WorkloadPreDeployTasks",
        KeptnState::Failed,
        "KWV failed",
    )
    .await;
    let task: KeptnTask = tasks(&c, ns).await.into_iter().next().expect("the task");
    let task_name = task.name_any();
    let status = task.status.clone().expect("task status");
    assert_eq!(status.status, KeptnState::Failed);
    let job = status.job_name.clone();
    assert!(!job.is_empty());
    let held = pod_names(&c, ns, "api", 2).await;
    // Each pod gets its Warning once the gate held it.
    wait_for("a Warning on each held pod", WAIT, || {
        let c = c.clone();
        let held = held.clone();
        async move {
            let evs = events(&c, ns).await;
            held.iter()
                .all(|pod| {
                    evs.iter().any(|e| {
                        e.reason.as_deref() == Some("WorkloadPreDeployTasksFailed")
                            && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                                == Some(pod.as_str())
                    })
                })
                .then_some(())
        }
    })
    .await;

    // status: the failed phase, the failed task with its Job, the gated pods.
    let out = cli(&env, ns, &["status"]).await;
    assert!(out.ok, "{}", out.stderr);
    contains_all(
        &out.stdout,
        &[
            "App held/api",
            "api-api-3",
            "WorkloadPreDeployTasks",
            "Failed",
            &task_name,
            "check-db",
            &job,
            "BackoffLimitExceeded",
            "Gated pods",
            &held[0],
            &held[1],
        ],
    );
    assert!(
        !out.stdout.contains('\u{1b}'),
        "no colour with --color never"
    );
    let v = cli_json(&env, ns, &["status", "api"]).await;
    let app = &v["apps"][0];
    assert_eq!(app["name"], "api");
    assert_eq!(app["revision"], 1);
    let kwv = &app["workloads"][0]["workloadVersion"];
    assert_eq!(kwv["name"], "api-api-3");
    assert_eq!(kwv["status"], "Failed");
    assert_eq!(kwv["currentPhase"], "WorkloadPreDeployTasks");
    let phase = kwv["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["phase"] == "WorkloadPreDeployTasks")
        .expect("the phase");
    assert_eq!(phase["status"], "Failed");
    assert!(phase["duration"].is_string(), "{phase}");
    assert_eq!(app["tasks"][0]["name"], task_name.as_str());
    assert_eq!(app["tasks"][0]["owner"], "api-api-3");
    assert_eq!(app["tasks"][0]["jobName"], job.as_str());
    assert_eq!(app["tasks"][0]["status"], "Failed");
    assert_eq!(app["gatedPods"].as_array().map(Vec::len), Some(2));
    let y = cli(&env, ns, &["status", "-o", "yaml"]).await;
    let y: Value = serde_yaml::from_str(&y.stdout).expect("YAML output");
    assert_eq!(
        y["apps"][0]["workloads"][0]["workloadVersion"]["status"],
        "Failed"
    );

    // why: the workload version, the phase, the task and its Job, what to do.
    let out = cli(&env, ns, &["why", &held[0]]).await;
    assert!(out.ok, "{}", out.stderr);
    contains_all(
        &out.stdout,
        &[
            "Held",
            "KeptnWorkloadVersion",
            "api-api-3",
            "WorkloadPreDeployTasks",
            &task_name,
            &format!("Job {job}"),
            "BackoffLimitExceeded",
            &format!("kubectl logs -n held job/{job}"),
            "kubectl portcullis retry workload -n held api-api",
            "WorkloadPreDeployTasksFailed",
        ],
    );
    let v = cli_json(&env, ns, &["why", &format!("pod/{}", held[1])]).await;
    assert_eq!(v["verdict"], "Held");
    assert_eq!(v["gated"], true);
    assert_eq!(v["phase"], "WorkloadPreDeployTasks");
    assert_eq!(v["workloadVersion"]["name"], "api-api-3");
    assert_eq!(v["workloadVersion"]["status"], "Failed");
    assert_eq!(
        v["appVersion"]["name"],
        shared::resolve::kav_name("api", "3", 1)
    );
    assert_eq!(v["tasks"][0]["jobName"], job.as_str());
    assert_eq!(v["tasks"][0]["reason"], "BackoffLimitExceeded");

    // retry workload refuses what does not exist.
    let out = cli(&env, ns, &["retry", "workload", "nope"]).await;
    assert!(!out.ok);
    contains_all(&out.stderr, &["no KeptnWorkload named nope"]);

    // retry app: revision 1 -> 2, leading to the KeptnAppVersion of generation 2.
    let next_kav = shared::resolve::kav_name("api", "3", 2);
    let out = cli(&env, ns, &["retry", "app", "api"]).await;
    assert!(out.ok, "{}", out.stderr);
    contains_all(
        &out.stdout,
        &[
            "spec.revision 1 → 2",
            &next_kav,
            "KeptnWorkloadVersion api-api-3 failed its own checks",
            "retry workload -n held api-api",
        ],
    );
    let app: KeptnApp = get(&c, ns, "api").await.expect("the app");
    assert_eq!(app.spec.revision, 2);
    wait_for("the KAV of revision 2", WAIT, || {
        let c = c.clone();
        let next_kav = next_kav.clone();
        async move { get::<KeptnAppVersion>(&c, ns, &next_kav).await.map(|_| ()) }
    })
    .await;

    // Fix the task, follow with --watch, and retry the workload.
    Api::<shared::crd::KeptnTaskDefinition>::namespaced(c.clone(), ns)
        .patch(
            "check-db",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {OUTCOME: "succeed"}}})),
        )
        .await
        .expect("definition fixed");
    let frames = Arc::new(Mutex::new(Vec::<Value>::new()));
    let mut watch = tokio::process::Command::new(binary("kubectl-portcullis"))
        .arg("--kubeconfig")
        .arg(env.kubeconfig())
        .args(["-n", ns, "status", "api", "--watch", "-o", "json"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("status --watch runs");
    let reader = {
        let frames = frames.clone();
        let stdout = watch.stdout.take().expect("stdout");
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let frame: Value = serde_json::from_str(&line).expect("a JSON frame per line");
                frames.lock().expect("lock").push(frame);
            }
        })
    };
    wait_for("the first frame", WAIT, || {
        let n = frames.lock().expect("lock").len();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let old_uid = get::<KeptnWorkloadVersion>(&c, ns, "api-api-3")
        .await
        .and_then(|k| k.uid())
        .expect("the failed KWV");
    let out = cli(&env, ns, &["retry", "workload", "api"]).await;
    assert!(out.ok, "{}", out.stderr);
    contains_all(
        &out.stdout,
        &[
            "deleted KeptnWorkloadVersion held/api-api-3",
            &old_uid,
            "Failed in WorkloadPreDeployTasks",
            &task_name,
            "the gate created KeptnWorkloadVersion api-api-3 again",
        ],
    );
    let recreated: KeptnWorkloadVersion = get(&c, ns, "api-api-3").await.expect("re-created");
    assert_ne!(recreated.uid().as_deref(), Some(old_uid.as_str()));
    wait_for("pods released", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "api").await;
            (p.len() == 2 && p.iter().all(released)).then_some(())
        }
    })
    .await;
    wait_for_kwv(
        &c,
        ns,
        "api-api-3",
        "Completed",
        KeptnState::Succeeded,
        "KWV Completed",
    )
    .await;
    // A new task ran (new owner uid, new name) and succeeded.
    let all = tasks(&c, ns).await;
    assert!(
        all.iter().any(|t| t.name_any() != task_name
            && t.status
                .as_ref()
                .is_some_and(|s| s.status == KeptnState::Succeeded)),
        "{:?}",
        all.iter().map(|t| t.name_any()).collect::<Vec<_>>()
    );
    // The watch redrew as things changed: a frame with the version failed, one with it done.
    wait_for("a frame with the workload completed", WAIT, || {
        let frames = frames.lock().expect("lock").clone();
        async move {
            frames
                .iter()
                .any(|f| {
                    f["apps"][0]["workloads"][0]["workloadVersion"]["currentPhase"] == "Completed"
                        && f["apps"][0]["gatedPods"]
                            .as_array()
                            .is_some_and(Vec::is_empty)
                })
                .then_some(())
        }
    })
    .await;
    {
        let frames = frames.lock().expect("lock");
        assert!(
            frames
                .iter()
                .any(|f| f["apps"][0]["workloads"][0]["workloadVersion"]["status"] == "Failed"),
            "the first frames show the failed version"
        );
        eprintln!("status --watch drew {} frames", frames.len());
    }
    watch.kill().await.expect("watch stopped");
    reader.abort();

    // Nothing to retry any more.
    let out = cli(&env, ns, &["retry", "workload", "api"]).await;
    assert!(!out.ok);
    contains_all(&out.stderr, &["nothing to retry", "api-api-3 is Succeeded"]);
    // The app version that saw the failure stays Failed; a new revision completes.
    let out = cli(&env, ns, &["retry", "app", "api"]).await;
    assert!(out.ok, "{}", out.stderr);
    contains_all(&out.stdout, &["spec.revision 2 → 3"]);
    let third = shared::resolve::kav_name("api", "3", 3);
    wait_for("the KAV of revision 3 Completed", WAIT, || {
        let c = c.clone();
        let third = third.clone();
        async move {
            (kav_state(&c, ns, &third).await? == ("Completed".to_owned(), KeptnState::Succeeded))
                .then_some(())
        }
    })
    .await;
    let out = cli(&env, ns, &["status"]).await;
    contains_all(&out.stdout, &[&third, "Completed", "Succeeded"]);
    let out = cli(&env, ns, &["why", &held[0]]).await;
    contains_all(&out.stdout, &["Released", "released at"]);
}

/// A completed rollout: `status` shows Completed, `why` on a pod says when and by whom it was
/// released; a pod of no Keptn workload is said to be unmanaged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_rollout_status_and_why() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "done";
    env.namespace(ns).await;
    env.start_gate(&[]);
    task_definition(&c, ns, "migrate", "succeed").await;
    rollout(&c, ns, "web", "1", 1, "migrate").await;
    wait_for("pods released and ready", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "web").await;
            (p.len() == 1 && p.iter().all(|p| released(p) && ready(p))).then_some(())
        }
    })
    .await;
    let kav = shared::resolve::kav_name("web", "1", 1);
    wait_for("KWV and KAV Completed", WAIT, || {
        let c = c.clone();
        let kav = kav.clone();
        async move {
            let done = ("Completed".to_owned(), KeptnState::Succeeded);
            (kwv_state(&c, ns, "web-web-1").await? == done
                && kav_state(&c, ns, &kav).await? == done)
                .then_some(())
        }
    })
    .await;
    let task = tasks(&c, ns).await.into_iter().next().expect("the task");
    let job = task.status.clone().expect("status").job_name;

    let out = cli(&env, ns, &["status", "web"]).await;
    assert!(out.ok, "{}", out.stderr);
    contains_all(
        &out.stdout,
        &[
            "App done/web",
            &kav,
            "Completed",
            "Succeeded",
            "web-web-1",
            "AppPostDeployEvaluations",
            "WorkloadDeploy",
            &task.name_any(),
            &job,
        ],
    );
    let v = cli_json(&env, ns, &["status"]).await;
    let app = &v["apps"][0];
    assert_eq!(app["appVersion"]["name"], kav.as_str());
    assert_eq!(app["appVersion"]["status"], "Succeeded");
    assert_eq!(app["appVersion"]["currentPhase"], "Completed");
    assert!(app["appVersion"]["duration"].is_string());
    let kwv = &app["workloads"][0]["workloadVersion"];
    assert_eq!(kwv["status"], "Succeeded");
    for phase in kwv["phases"].as_array().expect("phases") {
        assert_eq!(phase["status"], "Succeeded", "{phase}");
        assert_eq!(phase["running"], false, "{phase}");
    }
    let pre = &kwv["phases"][0];
    assert_eq!(pre["phase"], "WorkloadPreDeployTasks");
    assert!(pre["durationSeconds"].is_number(), "{pre}");
    assert_eq!(app["tasks"][0]["status"], "Succeeded");
    assert_eq!(app["tasks"][0]["jobName"], job.as_str());
    assert_eq!(app["gatedPods"], json!([]));

    // why on a released pod: when and by whom.
    let pod = pod_names(&c, ns, "web", 1).await.remove(0);
    let out = cli(&env, ns, &["why", &pod]).await;
    assert!(out.ok, "{}", out.stderr);
    contains_all(
        &out.stdout,
        &[
            "Released",
            "not gated",
            "released at",
            "released by",
            "web-web-1",
            "passed its pre-deployment checks",
        ],
    );
    let v = cli_json(&env, ns, &["why", &pod]).await;
    assert_eq!(v["verdict"], "Released");
    assert_eq!(v["gated"], false);
    let at: jiff::Timestamp = v["release"]["at"]
        .as_str()
        .expect("the release time")
        .parse()
        .expect("RFC 3339");
    let created = Api::<Pod>::namespaced(c.clone(), ns)
        .get(&pod)
        .await
        .expect("pod")
        .metadata
        .creation_timestamp
        .expect("created")
        .0;
    assert!(at >= created && at <= jiff::Timestamp::now(), "{at}");
    assert!(v["release"]["by"].as_str().is_some_and(|b| !b.is_empty()));
    assert!(
        v["release"]["node"].is_string(),
        "scheduled after the release"
    );

    // A pod of no Keptn workload.
    let plain: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    }))
    .expect("pod");
    Api::<Pod>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &plain)
        .await
        .expect("pod created");
    let v = cli_json(&env, ns, &["why", "plain"]).await;
    assert_eq!(v["verdict"], "Unmanaged");
    let out = cli(&env, ns, &["why", "plain"]).await;
    contains_all(&out.stdout, &["Unmanaged", "not managed by Portcullis"]);
    let out = cli(&env, ns, &["why", "missing"]).await;
    assert!(!out.ok);
    contains_all(&out.stderr, &["pod missing not found in namespace done"]);
    let out = cli(&env, ns, &["status", "nope"]).await;
    assert!(!out.ok);
    contains_all(&out.stderr, &["KeptnApp nope not found in namespace done"]);
    let out = cli(&env, "default", &["status"]).await;
    assert!(out.ok);
    contains_all(&out.stdout, &["No KeptnApps found in namespace default"]);
    let out = cli(&env, "default", &["status", "-A"]).await;
    contains_all(&out.stdout, &["App done/web"]);
}
