//! The Helm chart on a real control plane, driven as a Keptn user would drive it: `helm install`
//! with a Keptn-style values file, `helm upgrade` with changed values, `helm uninstall`, and a
//! second `helm install` that continues where the first left off (README "Installing on a
//! cluster", "Uninstalling").
//!
//! kwok runs no containers, so the chart's Deployments never start a process. Their part is
//! played by the real binaries run here with exactly the arguments, environment and
//! ServiceAccount the rendered Deployments give them (read back with `helm get manifest`), so the
//! chart's configuration and RBAC are what is tested. The webhook Service is an ExternalName
//! Service for `localhost` by value, so the API server reaches the local webhook.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use shared::crd::{KeptnState, KeptnTask, KeptnWorkloadVersion};

use e2e::*;

const RELEASE: &str = "portcullis";

/// A release of `charts/portcullis` on one cluster, with helm's state in a directory of its own.
struct Helm<'a> {
    cluster: &'a Cluster,
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl<'a> Helm<'a> {
    fn new(cluster: &'a Cluster) -> Self {
        let out = std::process::Command::new(repo_root().join("tools/release/build.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("tools/release/build.sh runs");
        assert!(out.status.success(), "tools/release/build.sh failed");
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Helm {
            cluster,
            bin: Path::new(&dir).join("helm"),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Runs `helm args…`: stdout, or stderr on failure.
    async fn run(&self, args: &[&str]) -> Result<String, String> {
        let h = self.home.path();
        let out = tokio::process::Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", self.cluster.kubeconfig())
            .env("HELM_CONFIG_HOME", h.join("config"))
            .env("HELM_CACHE_HOME", h.join("cache"))
            .env("HELM_DATA_HOME", h.join("data"))
            .current_dir(repo_root())
            .output()
            .await
            .expect("helm runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    async fn must(&self, args: &[&str]) -> String {
        self.run(args)
            .await
            .unwrap_or_else(|e| panic!("helm {}: {e}", args.join(" ")))
    }

    /// The objects the release manages now (`helm get manifest`).
    async fn manifest(&self) -> Vec<Value> {
        let text = self
            .must(&["get", "manifest", RELEASE, "-n", INSTALL_NS])
            .await;
        yaml_documents(&text)
    }

    fn write_values(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.home.path().join(name);
        std::fs::write(&path, yaml).expect("values file");
        path
    }
}

/// What a Deployment of the release would run: its ServiceAccount, container args and
/// environment (`fieldRef`s to the pod's namespace and name resolved as the kubelet would).
struct Workload {
    service_account: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn workload(manifest: &[Value], deployment: &str) -> Workload {
    let d = manifest
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == deployment)
        .unwrap_or_else(|| panic!("Deployment {deployment} in the release"));
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut args = strings(&c["command"])
        .into_iter()
        .skip(1)
        .collect::<Vec<_>>();
    args.extend(strings(&c["args"]));
    let env = c["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    let name = e["name"].as_str()?.to_owned();
                    let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                        Some("metadata.namespace") => INSTALL_NS.to_owned(),
                        Some("metadata.name") => format!("{deployment}-local"),
                        Some(_) => return None,
                        None => e["value"].as_str().unwrap_or_default().to_owned(),
                    };
                    Some((name, value))
                })
                .collect()
        })
        .unwrap_or_default();
    Workload {
        service_account: pod["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .to_owned(),
        args,
        env,
    }
}

/// Starts `binary` as the release's Deployment `deployment` would, under its ServiceAccount;
/// `overrides` replace the environment variables and flags of the same name (a local process
/// cannot bind the container's ports).
async fn run_as_deployed(
    cluster: &Cluster,
    procs: &mut Processes,
    manifest: &[Value],
    deployment: &str,
    binary: &str,
    overrides: &[(&str, &str)],
) {
    let w = workload(manifest, deployment);
    let kubeconfig = cluster
        .service_account_kubeconfig(INSTALL_NS, &w.service_account)
        .await;
    let name = format!("{deployment}-{}", procs.names.len());
    let log = std::fs::File::create(procs.logs.path().join(format!("{name}.log"))).expect("log");
    let err = log.try_clone().expect("log");
    let overridden = |key: &str| overrides.iter().any(|(k, _)| *k == key);
    let args: Vec<&String> = w
        .args
        .iter()
        .filter(|a| !overridden(a.split('=').next().unwrap_or_default()))
        .collect();
    let mut cmd = tokio::process::Command::new(e2e::binary(binary));
    cmd.args(args).env_clear().env("KUBECONFIG", &kubeconfig);
    for (k, v) in w.env.iter().filter(|(k, _)| !overridden(k)) {
        cmd.env(k, v);
    }
    for (k, v) in overrides {
        if k.starts_with("--") {
            cmd.arg(format!("{k}={v}"));
        } else {
            cmd.env(k, v);
        }
    }
    let child = cmd
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} starts: {e}"));
    procs.children.push(child);
    procs.names.push(name);
}

/// Runs the release's webhook and gate locally as deployed (webhook on `port`).
async fn start_release(cluster: &Cluster, helm: &Helm<'_>, port: u16) -> Processes {
    let manifest = helm.manifest().await;
    let mut procs = Processes::new();
    let listen = format!("127.0.0.1:{port}");
    run_as_deployed(
        cluster,
        &mut procs,
        &manifest,
        "portcullis-webhook",
        "portcullis-webhook",
        &[
            ("PORTCULLIS_LISTEN", &listen),
            ("--listen", &listen),
            // Re-check caBundles often, so a reset by the upgrade is repaired within the test.
            ("PORTCULLIS_CERT_CHECK_INTERVAL", "2s"),
            ("LOG_FILTER", "info,kube=warn"),
        ],
    )
    .await;
    run_as_deployed(
        cluster,
        &mut procs,
        &manifest,
        "portcullis-gate",
        "portcullis-gate",
        &[
            ("ADMIN_ADDRESS", "127.0.0.1:0"),
            ("--admin-address", "127.0.0.1:0"),
            ("KEPTN_DORA_METRICS_PORT", "0"),
            ("--keptn-metrics-port", "0"),
            ("SWEEP_INTERVAL_SECONDS", "1"),
            ("LOG_FILTER", "info,kube=warn"),
        ],
    )
    .await;
    procs
}

async fn stop(procs: &mut Processes) {
    for child in &mut procs.children {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

async fn namespace(c: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"}}
    }))
    .expect("namespace");
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    default_service_account(c, name).await;
}

async fn apply(cluster: &Cluster, manifest: Value) {
    if let Err(e) = cluster.kubectl_apply(&manifest).await {
        panic!("kubectl apply: {e}\n{manifest}");
    }
}

/// A task definition whose Job kwok lets `outcome` (`succeed`, `fail`) after a short run.
fn definition(ns: &str, name: &str, outcome: &str) -> Value {
    json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": name, "namespace": ns,
            "labels": {OUTCOME: outcome}, "annotations": {RUN_FOR: "300ms"}},
        // No retries: a failed check fails its phase at once.
        "spec": {"container": {"name": "check", "image": "busybox:1.36", "command": ["true"]},
            "retries": 0}
    })
}

/// An annotated Deployment of two pods with one pre-deployment task.
fn deployment(ns: &str, name: &str, check: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {
                    "keptn.sh/app": name, "keptn.sh/workload": name, "keptn.sh/version": "1",
                    "keptn.sh/pre-deployment-tasks": check}},
                "spec": {"containers": [{"name": name, "image": format!("example/{name}:1")}]}
            }
        }
    })
}

async fn pods_of(c: &Client, ns: &str, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Waits until both pods of `app` run, released by the gate, and its workload version is
/// Completed.
async fn completes(c: &Client, ns: &str, app: &str) {
    wait_for(
        &format!("{ns}/{app}: pods released and running"),
        WAIT,
        || {
            let c = c.clone();
            async move {
                let pods = pods_of(&c, ns, app).await;
                (pods.len() == 2 && pods.iter().all(|p| released(p) && running(p))).then_some(())
            }
        },
    )
    .await;
    let kwv = format!("{app}-{app}-1");
    wait_for(&format!("{ns}/{kwv} Completed"), WAIT, || {
        let c = c.clone();
        let kwv = kwv.clone();
        async move {
            let v = Api::<KeptnWorkloadVersion>::namespaced(c, ns)
                .get_opt(&kwv)
                .await
                .ok()??;
            let s = v.status?;
            (s.current_phase == "Completed" && s.status == KeptnState::Succeeded).then_some(())
        }
    })
    .await;
}

/// Waits until both pods of `app` run without ever having been gated by Portcullis.
async fn runs_ungated(c: &Client, ns: &str, app: &str) {
    let pods = wait_for(&format!("{ns}/{app}: pods running"), WAIT, || {
        let c = c.clone();
        async move {
            let pods = pods_of(&c, ns, app).await;
            (pods.len() == 2 && pods.iter().all(running)).then_some(pods)
        }
    })
    .await;
    for p in &pods {
        assert!(
            !p.labels().contains_key(GATED_LABEL) && !released(p),
            "{} was gated: {:?}",
            p.name_any(),
            p.metadata
        );
    }
}

/// The Secret's `ca.crt`, once the webhook has filled it.
async fn secret_ca(c: &Client) -> String {
    wait_for("the webhook's certificate Secret filled", WAIT, || {
        let c = c.clone();
        async move {
            let s = Api::<Secret>::namespaced(c, INSTALL_NS)
                .get_opt("portcullis-webhook-tls")
                .await
                .ok()??;
            let ca = s.data?.get("ca.crt")?.0.clone();
            (!ca.is_empty()).then(|| String::from_utf8_lossy(&ca).into_owned())
        }
    })
    .await
}

/// Waits until every hook of the release's webhook configurations trusts `ca`.
async fn bundles_trust(c: &Client, ca: &str) {
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    wait_for("caBundle of every hook filled", WAIT, || {
        let c = c.clone();
        let bundle = bundle.clone();
        async move {
            let m = Api::<MutatingWebhookConfiguration>::all(c.clone())
                .get_opt("portcullis-webhook")
                .await
                .ok()??;
            let v = Api::<ValidatingWebhookConfiguration>::all(c)
                .get_opt("portcullis-webhook")
                .await
                .ok()??;
            let mut bundles: Vec<Option<String>> = Vec::new();
            for h in m.webhooks.unwrap_or_default() {
                bundles.push(
                    h.client_config
                        .ca_bundle
                        .map(|b| base64::engine::general_purpose::STANDARD.encode(b.0)),
                );
            }
            for h in v.webhooks.unwrap_or_default() {
                bundles.push(
                    h.client_config
                        .ca_bundle
                        .map(|b| base64::engine::general_purpose::STANDARD.encode(b.0)),
                );
            }
            (!bundles.is_empty() && bundles.iter().all(|b| b.as_deref() == Some(&bundle)))
                .then_some(())
        }
    })
    .await;
}

/// Waits until the webhook's Secret is filled, every hook trusts its CA and the webhook is
/// ready, serving a certificate of that CA (what `kubectl rollout status` would wait for);
/// returns the CA bundle.
async fn trusted_and_ready(c: &Client, port: u16) -> String {
    let ca = secret_ca(c).await;
    bundles_trust(c, &ca).await;
    wait_webhook_ready(&ca, port).await;
    ca
}

/// How many KeptnTasks `ns` has, and the uids of its Jobs.
async fn task_count(c: &Client, ns: &str) -> (usize, BTreeSet<String>) {
    let tasks = Api::<KeptnTask>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("tasks")
        .items
        .len();
    let jobs = Api::<Job>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("jobs")
        .items
        .iter()
        .filter_map(|j| j.uid())
        .collect();
    (tasks, jobs)
}

/// A Keptn user's values file, as they would have written it for `keptn/keptn`, plus the
/// Service routed to this machine.
fn keptn_values(port: u16) -> String {
    format!(
        r#"global:
  certManagerEnabled: true
  commonLabels:
    team: platform
lifecycleOperator:
  enabled: true
  failurePolicy: Fail
  promotionTasksEnabled: false
  deniedNamespaces: [cert-manager, keptn-system, observability, monitoring, ignored]
metricsOperator:
  enabled: true
portcullis:
  webhook:
    service:
      type: ExternalName
      externalName: localhost
      port: {port}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall_and_reinstall() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::start().await;
    let c = cluster.client();
    let helm = Helm::new(&cluster);
    for ns in ["shop", "other", "ignored"] {
        namespace(&c, ns).await;
    }
    let port = free_port();
    let values = helm.write_values("keptn-values.yaml", &keptn_values(port));
    let values = values.to_str().expect("utf-8 path");

    // helm lint and install: the chart alone gives a trusted webhook, no certificate step.
    helm.must(&["lint", "--strict", "charts/portcullis", "-f", values])
        .await;
    helm.must(&[
        "install",
        RELEASE,
        "charts/portcullis",
        "-n",
        INSTALL_NS,
        "--create-namespace",
        "-f",
        values,
    ])
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    for crd in shared::crd::all() {
        let name = crd.name_any();
        let installed = crds
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            installed.labels().get("team").map(String::as_str),
            Some("platform"),
            "global.commonLabels on {name}"
        );
    }
    let mut procs = start_release(&cluster, &helm, port).await;
    let ca = trusted_and_ready(&c, port).await;

    for ns in ["shop", "other", "ignored"] {
        apply(&cluster, definition(ns, "check", "succeed")).await;
        apply(&cluster, definition(ns, "broken", "fail")).await;
    }
    apply(&cluster, deployment("shop", "web", "check")).await;
    completes(&c, "shop", "web").await;
    // lifecycleOperator.deniedNamespaces: an enabled namespace the user denied is left alone.
    apply(&cluster, deployment("ignored", "free", "check")).await;
    runs_ungated(&c, "ignored", "free").await;

    // helm upgrade with changed values: they take effect, and the trust survives.
    helm.must(&[
        "upgrade",
        RELEASE,
        "charts/portcullis",
        "-n",
        INSTALL_NS,
        "--reuse-values",
        "--set",
        "lifecycleOperator.allowedNamespaces={other}",
        "--set",
        "lifecycleOperator.failurePolicy=Ignore",
    ])
    .await;
    let m = Api::<MutatingWebhookConfiguration>::all(c.clone())
        .get("portcullis-webhook")
        .await
        .expect("mutating configuration");
    for h in m.webhooks.unwrap_or_default() {
        assert_eq!(h.failure_policy.as_deref(), Some("Ignore"), "{}", h.name);
    }
    bundles_trust(&c, &ca).await;
    stop(&mut procs).await;
    let mut procs = start_release(&cluster, &helm, port).await;
    assert_eq!(
        trusted_and_ready(&c, port).await,
        ca,
        "the upgrade kept the CA"
    );
    apply(&cluster, deployment("shop", "late", "check")).await;
    runs_ungated(&c, "shop", "late").await;
    apply(&cluster, deployment("other", "api", "check")).await;
    completes(&c, "other", "api").await;

    // A workload whose check failed is held when the chart goes.
    apply(&cluster, deployment("other", "held", "broken")).await;
    wait_for(
        "other/held: a failed check and both pods held",
        WAIT,
        || {
            let c = c.clone();
            async move {
                let v = Api::<KeptnWorkloadVersion>::namespaced(c.clone(), "other")
                    .get_opt("held-held-1")
                    .await
                    .ok()??;
                let failed = v.status?.pre_deployment_status == KeptnState::Failed;
                let pods = pods_of(&c, "other", "held").await;
                (failed && pods.len() == 2 && pods.iter().all(gated)).then_some(())
            }
        },
    )
    .await;
    let before = task_count(&c, "shop").await;

    // helm uninstall: no webhook configuration is left, nothing is frozen.
    helm.must(&["uninstall", RELEASE, "-n", INSTALL_NS]).await;
    stop(&mut procs).await;
    let left: Vec<String> = Api::<MutatingWebhookConfiguration>::all(c.clone())
        .list(&ListParams::default())
        .await
        .expect("mutating configurations")
        .items
        .iter()
        .map(|m| m.name_any())
        .chain(
            Api::<ValidatingWebhookConfiguration>::all(c.clone())
                .list(&ListParams::default())
                .await
                .expect("validating configurations")
                .items
                .iter()
                .map(|v| v.name_any()),
        )
        .collect();
    assert!(left.is_empty(), "webhook configurations left: {left:?}");
    for crd in shared::crd::all() {
        let name = crd.name_any();
        assert!(
            crds.get_opt(&name).await.expect("CRD read").is_some(),
            "CRD {name} kept (helm.sh/resource-policy: keep)"
        );
    }
    assert!(
        Api::<KeptnWorkloadVersion>::namespaced(c.clone(), "shop")
            .get_opt("web-web-1")
            .await
            .expect("read")
            .is_some(),
        "the lifecycle objects are kept"
    );
    apply(&cluster, deployment("other", "after", "check")).await;
    runs_ungated(&c, "other", "after").await;

    // Pods held at that moment stay held (their check failed) and are found as README
    // "Uninstalling" says; deleting them lets their ReplicaSet make ungated ones.
    let listed = cluster
        .run_kubectl(
            &[
                "get",
                "pods",
                "-A",
                "-l",
                "portcullis.dev/gated=true",
                "-o",
                "name",
            ],
            "",
        )
        .await
        .expect("kubectl get");
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    let mut held: Vec<String> = pods_of(&c, "other", "held")
        .await
        .iter()
        .map(|p| format!("pod/{}", p.name_any()))
        .collect();
    held.sort();
    assert_eq!(listed, held, "the held pods, and only they, are listed");
    cluster
        .run_kubectl(
            &[
                "delete",
                "pods",
                "-A",
                "-l",
                "portcullis.dev/gated=true",
                "--wait=false",
            ],
            "",
        )
        .await
        .expect("kubectl delete");
    wait_for(
        "other/held: replaced by running, ungated pods",
        WAIT,
        || {
            let c = c.clone();
            async move {
                let pods = pods_of(&c, "other", "held").await;
                (pods.len() == 2
                    && pods.iter().all(|p| {
                        running(p) && !gated(p) && p.metadata.deletion_timestamp.is_none()
                    }))
                .then_some(())
            }
        },
    )
    .await;

    // Reinstalling continues where the first release left off: the kept CRDs are adopted, a
    // finished version stays finished, no task runs again, new rollouts are checked.
    helm.must(&[
        "install",
        RELEASE,
        "charts/portcullis",
        "-n",
        INSTALL_NS,
        "-f",
        values,
    ])
    .await;
    let mut procs = start_release(&cluster, &helm, port).await;
    trusted_and_ready(&c, port).await;
    apply(&cluster, deployment("shop", "next", "check")).await;
    completes(&c, "shop", "next").await;
    let (tasks, jobs) = task_count(&c, "shop").await;
    // Jobs by uid, not by number: a Job counted before may be gone by now, removed 300 s after it
    // finished (the default ttlSecondsAfterFinished), on a slow run.
    let new_jobs: Vec<&String> = jobs.difference(&before.1).collect();
    assert_eq!(
        (tasks, new_jobs.len()),
        (before.0 + 1, 1),
        "only the new workload's check ran: new Jobs {new_jobs:?}"
    );
    completes(&c, "shop", "web").await;
    stop(&mut procs).await;
}
