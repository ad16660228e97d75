//! The shipped RBAC proven by running it: a real API server with the RBAC authorizer, the static install's (`deploy/portcullis.yaml`)
//! ServiceAccounts, ClusterRoles, Roles and bindings applied as the admin, and the real
//! `portcullis-webhook` and `portcullis-gate` binaries each running under its own
//! ServiceAccount's token. A full lifecycle (webhook admission, a pre-deployment task Job, a
//! post-deployment evaluation, pod release, leader election, retention deletes) must complete
//! with no request refused; with one rule taken out of the gate's ClusterRole, the pods stay
//! gated and the gate logs the 403.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use shared::crd::{KeptnAppVersion, KeptnState, KeptnWorkloadVersion};

use e2e::{
    Binaries, INSTALL_NS, Processes, RBAC_KINDS, WAIT, deploy_documents, start_webhook_and_gate,
    wait_for,
};

const NS: &str = "hooked";
const GATE_SA: &str = "portcullis-gate";
const WEBHOOK_SA: &str = "portcullis-webhook";
/// A lifecycle of three versions with task Jobs and evaluations takes longer than one check.
const LONG_WAIT: Duration = Duration::from_secs(180);

/// Create one manifest as the admin (the kinds the static install's (`deploy/portcullis.yaml`) RBAC files hold).
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
        // The install namespace's `default` ServiceAccount and the like already exist.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating {kind} {}: {e}", dynobj.name_any()),
    }
}

/// Everything but the processes: CRDs, namespaces, and the static install's (`deploy/portcullis.yaml`) RBAC with `edit`
/// applied to each document first.
async fn install(admin: &Client, edit: impl Fn(&mut Value)) {
    {
        for mut doc in deploy_documents(RBAC_KINDS) {
            edit(&mut doc);
            create_manifest(admin, &doc).await;
        }
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS,
        "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"},
        "labels": {"keptn.sh/lifecycle-toolkit": "enabled"}}}))
    .expect("namespace");
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    // A pre-deployment task whose Job succeeds and a post-deployment evaluation its metric passes.
    let apply = |kind: &str, plural: &str, group: &str, body: Value| {
        let ar = ApiResource {
            group: group.into(),
            version: "v1".into(),
            api_version: format!("{group}/v1"),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), NS, &ar);
        let obj: DynamicObject = serde_json::from_value(body).expect("object");
        async move {
            api.create(&PostParams::default(), &obj)
                .await
                .expect("created")
        }
    };
    apply(
        "KeptnTaskDefinition",
        "keptntaskdefinitions",
        "lifecycle.keptn.sh",
        json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
            "metadata": {"name": "check", "labels": {"kwok.portcullis.dev/outcome": "succeed"}, "annotations": {"kwok.portcullis.dev/run-for": "300ms"}},
            "spec": {"container": {"name": "check", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}}}),
    )
    .await;
    apply(
        "KeptnEvaluationDefinition",
        "keptnevaluationdefinitions",
        "lifecycle.keptn.sh",
        json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluationDefinition",
            "metadata": {"name": "error-rate-low"},
            "spec": {"objectives": [{"keptnMetricRef": {"name": "error-rate"}, "evaluationTarget": "<1"}],
                     "retries": 3, "retryInterval": "300ms"}}),
    )
    .await;
    apply(
        "KeptnMetric",
        "keptnmetrics",
        "metrics.keptn.sh",
        json!({"apiVersion": "metrics.keptn.sh/v1", "kind": "KeptnMetric",
            "metadata": {"name": "error-rate"},
            "spec": {"provider": {"name": "prometheus"}, "query": "q", "fetchIntervalSeconds": 10}}),
    )
    .await;
    let raw = base64::engine::general_purpose::STANDARD.encode("0");
    Api::<shared::crd::KeptnMetric>::namespaced(admin.clone(), NS)
        .patch_status(
            "error-rate",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"value": "0", "rawValue": raw}})),
        )
        .await
        .expect("metric status");
}

/// A running installation: a control plane enforcing RBAC, the webhook registered, both
/// processes started under their ServiceAccounts' tokens.
struct Install {
    cluster: e2e::Cluster,
    admin: Client,
    procs: Processes,
}

impl Install {
    /// Ends both processes, then the control plane.
    async fn stop(self) {
        drop(self.procs);
        drop(self.cluster);
    }

    /// What the API server refused the two ServiceAccounts (its audit log), as
    /// `<resource>[/<subresource>] <verb> by <user>: <message>` lines.
    fn denials(&self) -> Vec<String> {
        self.cluster
            .forbidden_requests()
            .iter()
            .filter(|e| {
                e["user"]["username"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("system:serviceaccount:portcullis-system:"))
            })
            .map(|e| {
                let r = &e["objectRef"];
                let resource = match r["subresource"].as_str() {
                    Some(sub) => format!("{}/{sub}", r["resource"].as_str().unwrap_or("")),
                    None => r["resource"].as_str().unwrap_or("").to_owned(),
                };
                format!(
                    "{resource} {} by {}: {}",
                    e["verb"].as_str().unwrap_or(""),
                    e["user"]["username"].as_str().unwrap_or(""),
                    e["responseStatus"]["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

async fn start(edit: impl Fn(&mut Value)) -> Install {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = e2e::Cluster::start().await;
    let admin = cluster.client();
    cluster.install_crds().await;
    install(&admin, edit).await;

    let webhook_kc = cluster
        .service_account_kubeconfig(INSTALL_NS, WEBHOOK_SA)
        .await;
    let gate_kc = cluster
        .service_account_kubeconfig(INSTALL_NS, GATE_SA)
        .await;
    let procs = start_webhook_and_gate(
        &cluster,
        &admin,
        Binaries {
            webhook_kubeconfig: &webhook_kc,
            gate_kubeconfig: &gate_kc,
            gate_args: &[
                "--leader-elect",
                "--lease-retry-millis=500",
                "--retained-versions=1",
                "--sweep-interval-seconds=1",
                "--identity=gate-0",
            ],
            log_filter: "info,gate=debug,kube=warn",
        },
    )
    .await;
    Install {
        cluster,
        admin,
        procs,
    }
}

fn deployment(version: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "waiter"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "waiter"}},
            "template": {
                "metadata": {"labels": {"app": "waiter"},
                    "annotations": {"keptn.sh/workload": "waiter", "keptn.sh/version": version,
                        "keptn.sh/pre-deployment-tasks": "check",
                        "keptn.sh/post-deployment-evaluations": "error-rate-low"}},
                "spec": {"containers": [{"name": "waiter", "image": format!("example/waiter:{version}")}]}
            }
        }
    }))
    .expect("deployment")
}

/// Roll the Deployment to `version` (a new ReplicaSet, so a new workload version).
async fn roll(admin: &Client, version: &str) {
    let api: Api<Deployment> = Api::namespaced(admin.clone(), NS);
    api.patch(
        "waiter",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"keptn.sh/version": version}},
            "spec": {"containers": [{"name": "waiter", "image": format!("example/waiter:{version}")}]}}}})),
    )
    .await
    .expect("rolled");
}

fn done(phase: &str, state: &KeptnState) -> bool {
    phase == "Completed" && *state == KeptnState::Succeeded
}

/// The workload version `version` and an app version of it are Completed and Succeeded.
async fn wait_completed(admin: &Client, version: &str) {
    let kwv_name = format!("waiter-waiter-{version}");
    wait_for(
        &format!("KWV {kwv_name} and its KAV Completed"),
        LONG_WAIT,
        || {
            let c = admin.clone();
            let kwv_name = kwv_name.clone();
            async move {
                let kwv = Api::<KeptnWorkloadVersion>::namespaced(c.clone(), NS)
                    .get_opt(&kwv_name)
                    .await
                    .ok()??;
                let w = kwv.status?;
                let kavs = Api::<KeptnAppVersion>::namespaced(c, NS)
                    .list(&ListParams::default())
                    .await
                    .ok()?;
                let kav_done = kavs.items.iter().any(|a| {
                    a.spec.app.workloads.iter().any(|w| w.version == version)
                        && a.status
                            .as_ref()
                            .is_some_and(|s| done(&s.current_phase, &s.status))
                });
                (done(&w.current_phase, &w.status) && kav_done).then_some(())
            }
        },
    )
    .await;
}

fn forbidden_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            // Timestamps hold digits like 403 too: look for the status, not the number.
            let l = l.to_ascii_lowercase();
            l.contains("forbidden") || l.contains("code: 403") || l.contains("\"code\":403")
        })
        .collect()
}

/// An edit of the static install that takes `verb` on `resource` out of the ClusterRole `role`.
fn without_verb(role: &str, resource: &str, verb: &str) -> impl Fn(&mut Value) {
    move |doc| {
        if doc["kind"] == "ClusterRole" && doc["metadata"]["name"] == role {
            for rule in doc["rules"].as_array_mut().expect("rules") {
                if rule["resources"] == json!([resource]) {
                    let verbs = rule["verbs"].as_array_mut().expect("verbs");
                    verbs.retain(|v| v != verb);
                }
            }
        }
    }
}

/// Waits for a 403 line of the process `name`'s log that `matches`; returns it.
async fn wait_forbidden(
    procs: &Processes,
    name: &str,
    what: &str,
    matches: impl Fn(&str) -> bool,
) -> String {
    let matches = &matches;
    wait_for(
        &format!("a 403 on {what} in the {name} log"),
        WAIT,
        || async move {
            let log = procs.log(name);
            forbidden_lines(&log)
                .into_iter()
                .find(|l| matches(l))
                .map(str::to_string)
        },
    )
    .await
}

/// deploy/portcullis.yaml's RBAC suffices for the whole lifecycle of three versions: admission, a task
/// Job, an evaluation, pod release, the leader Lease, and retention deleting the oldest
/// versions. Neither process sees a single 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_rbac_runs_the_whole_lifecycle() {
    let inst = start(|_| {}).await;
    let admin = inst.admin.clone();
    Api::<Deployment>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &deployment("0.4"))
        .await
        .expect("deployment created");
    wait_completed(&admin, "0.4").await;
    // The pods were released by the gate and run.
    let pods = Api::<Pod>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels("app=waiter"))
        .await
        .expect("pods");
    assert!(!pods.items.is_empty());
    for p in &pods.items {
        assert_eq!(
            p.annotations()
                .get("keptn.sh/scheduling-gate-removed")
                .map(String::as_str),
            Some("true"),
            "{}",
            p.name_any()
        );
    }
    // The task ran as a Job the gate created.
    let tasks = Api::<shared::crd::KeptnTask>::namespaced(admin.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("tasks");
    assert!(
        tasks.items.iter().any(|t| t
            .status
            .as_ref()
            .is_some_and(|s| s.status == KeptnState::Succeeded)),
        "a succeeded KeptnTask"
    );
    // The leader holds the Lease in the install namespace.
    let lease = Api::<Lease>::namespaced(admin.clone(), INSTALL_NS)
        .get("portcullis-gate.keptn.sh")
        .await
        .expect("the gate's Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("gate-0")
    );

    roll(&admin, "0.5").await;
    wait_completed(&admin, "0.5").await;
    roll(&admin, "0.6").await;
    wait_completed(&admin, "0.6").await;
    // Retention (1 kept): the oldest workload version is deleted by the gate.
    wait_for("KWV waiter-waiter-0.4 deleted", LONG_WAIT, || {
        let c = admin.clone();
        async move {
            match Api::<KeptnWorkloadVersion>::namespaced(c, NS)
                .get_opt("waiter-waiter-0.4")
                .await
            {
                Ok(None) => Some(()),
                _ => None,
            }
        }
    })
    .await;
    wait_for("the 0.4 KeptnAppVersion deleted", LONG_WAIT, || {
        let c = admin.clone();
        async move {
            let kavs = Api::<KeptnAppVersion>::namespaced(c, NS)
                .list(&ListParams::default())
                .await
                .ok()?;
            (!kavs
                .items
                .iter()
                .any(|a| a.spec.app.workloads.iter().any(|w| w.version == "0.4")))
            .then_some(())
        }
    })
    .await;

    // The API server refused nothing (a 403 a process swallows without logging counts too).
    let denials = inst.denials();
    assert!(denials.is_empty(), "refused by RBAC: {denials:#?}");
    for name in ["webhook", "gate"] {
        let log = inst.procs.log(name);
        assert!(!log.is_empty(), "{name} logged nothing");
        let refused = forbidden_lines(&log);
        assert!(
            refused.is_empty(),
            "the {name} was refused by RBAC:\n{}",
            refused.join("\n")
        );
    }
    inst.stop().await;
}

/// Without `patch` on pods in the gate's ClusterRole the gate cannot release: the pods stay
/// gated and the gate logs the API server's 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_without_pod_patch_leaves_pods_gated_and_logs_403() {
    let inst = start(without_verb("portcullis-gate", "pods", "patch")).await;
    let admin = inst.admin.clone();
    Api::<Deployment>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &deployment("0.4"))
        .await
        .expect("deployment created");
    let line = wait_forbidden(&inst.procs, "gate", "a pod patch", |l| {
        l.contains("cannot patch resource \\\"pods\\\"")
            || l.contains("cannot patch resource \"pods\"")
    })
    .await;
    assert!(
        line.contains("system:serviceaccount:portcullis-system:portcullis-gate"),
        "{line}"
    );
    let denials = inst.denials();
    assert!(
        !denials.is_empty()
            && denials
                .iter()
                .all(|d| d.starts_with("pods patch ")
                    && d.contains("cannot patch resource \"pods\"")),
        "only pod patches are refused: {denials:#?}"
    );
    // The pre-deployment work is done, yet the pods are still gated.
    let pods = Api::<Pod>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels("app=waiter"))
        .await
        .expect("pods");
    assert!(!pods.items.is_empty());
    for p in &pods.items {
        let gated = p
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| g.iter().any(|g| g.name == e2e::GATE));
        assert!(gated, "{} was released without patch rights", p.name_any());
    }
    inst.stop().await;
}

/// Without `create` on keptnworkloads in the webhook's ClusterRole, admission cannot record the
/// workload: it denies the Deployment with the API server's 403 text (its policy on a failed
/// write), logs it under its own ServiceAccount, and no KeptnWorkload exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_without_workload_create_logs_403() {
    let inst = start(without_verb(
        "portcullis-webhook",
        "keptnworkloads",
        "create",
    ))
    .await;
    let admin = inst.admin.clone();
    let denied = Api::<Deployment>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &deployment("0.4"))
        .await
        .expect_err("the webhook cannot admit it");
    assert!(
        denied
            .to_string()
            .contains("cannot create resource \"keptnworkloads\""),
        "{denied}"
    );
    let line = wait_forbidden(&inst.procs, "webhook", "a KeptnWorkload create", |l| {
        l.contains("cannot create resource") && l.contains("keptnworkloads")
    })
    .await;
    assert!(
        line.contains("system:serviceaccount:portcullis-system:portcullis-webhook"),
        "{line}"
    );
    let workloads = Api::<shared::crd::KeptnWorkload>::namespaced(admin.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("workloads");
    assert!(workloads.items.is_empty());
    inst.stop().await;
}
