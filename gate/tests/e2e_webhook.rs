//! End-to-end with both real binaries: `portcullis-webhook` (registered with the
//! MutatingWebhookConfiguration of `deploy/base`) and `portcullis-gate`, on kubesim with its
//! simulated controllers. The webhook binary must be built (`cargo build -p webhook`; `make test`
//! does it through `cargo test --workspace`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnState, KeptnWorkload, KeptnWorkloadVersion};

mod common;

use common::{INSTALL_NS, SERVICE, WAIT, certificates, free_port, wait_for, wait_webhook_ready};

fn webhook_binary() -> PathBuf {
    let path =
        Path::new(env!("CARGO_BIN_EXE_portcullis-gate")).with_file_name("portcullis-webhook");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p webhook` (same profile) first",
        path.display()
    );
    path
}

struct Processes {
    children: Vec<tokio::process::Child>,
    logs: tempfile::TempDir,
}

impl Drop for Processes {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in ["webhook", "gate"] {
                let text = std::fs::read_to_string(self.logs.path().join(format!("{name}.log")))
                    .unwrap_or_default();
                eprintln!("---- {name} log ----");
                for line in text.lines().rev().take(60).collect::<Vec<_>>().iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn spawn(binary: &Path, args: &[String], kubeconfig: &Path, log: &Path) -> tokio::process::Child {
    let out = std::fs::File::create(log).expect("log");
    let err = out.try_clone().expect("log");
    tokio::process::Command::new(binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAMESPACE", INSTALL_NS)
        .env("LOG_FILTER", "info,kube=warn")
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()))
}

/// The SPEC's first scenario with the real webhook: an annotated Deployment without checks is
/// gated by the webhook (A8), released by the gate (A12, A13) and completes; the names are
/// `waiter-waiter-0.4` and `waiter-0.4-6b86b273`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_deployment_through_webhook_and_gate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = kubesim::Sim::start(kubesim::SimConfig {
        nodes: 2,
        controllers: true,
        controllers_config: Some(kubesim::controllers::ControllersConfig::fast(2)),
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
    let namespaces: Api<Namespace> = Api::all(c.clone());
    for (name, enabled) in [(INSTALL_NS, false), ("hooked", true)] {
        let meta = if enabled {
            json!({"name": name, "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"},
                "labels": {"keptn.sh/lifecycle-toolkit": "enabled"}})
        } else {
            json!({"name": name})
        };
        let ns: Namespace = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}),
        )
        .expect("ns");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
    }

    let logs = tempfile::tempdir().expect("tempdir");
    let ca = certificates(logs.path());
    // Reserved until the process ends, so nothing else takes it before the webhook binds it.
    let port = free_port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    sim.register_service(INSTALL_NS, SERVICE, addr);
    let mut procs = Processes {
        children: Vec::new(),
        logs,
    };
    let dir = procs.logs.path().to_path_buf();
    procs.children.push(spawn(
        &webhook_binary(),
        &[
            format!("--listen=127.0.0.1:{port}"),
            format!("--tls-cert={}", dir.join("tls.crt").display()),
            format!("--tls-key={}", dir.join("tls.key").display()),
        ],
        &sim.kubeconfig,
        &dir.join("webhook.log"),
    ));
    procs.children.push(spawn(
        Path::new(env!("CARGO_BIN_EXE_portcullis-gate")),
        &[
            "--admin-address=127.0.0.1:0".to_owned(),
            "--keptn-metrics-port=0".to_owned(),
        ],
        &sim.kubeconfig,
        &dir.join("gate.log"),
    ));

    // Wait for the webhook to be ready (TLS with our CA, as the API server would call it).
    wait_webhook_ready(&ca, port).await;

    // The registration from deploy/base, with the CA bundle filled in.
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/base/webhook-configurations.yaml"
    ))
    .expect("deploy/base/webhook-configurations.yaml");
    let first = serde_yaml::Deserializer::from_str(&yaml)
        .next()
        .expect("a document");
    let first: serde_yaml::Value = serde::Deserialize::deserialize(first).expect("yaml");
    let mut mwc: serde_json::Value = serde_json::to_value(first).expect("json");
    let bundle = base64::engine::general_purpose::STANDARD.encode(&ca);
    for hook in mwc["webhooks"].as_array_mut().expect("webhooks") {
        hook["clientConfig"]["caBundle"] = json!(bundle);
    }
    let mwc: MutatingWebhookConfiguration = serde_json::from_value(mwc).expect("mwc");
    Api::<MutatingWebhookConfiguration>::all(c.clone())
        .create(&PostParams::default(), &mwc)
        .await
        .expect("registration");

    let deploy: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "waiter"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "waiter"}},
            "template": {
                "metadata": {"labels": {"app": "waiter"},
                    "annotations": {"keptn.sh/workload": "waiter", "keptn.sh/version": "0.4"}},
                "spec": {"containers": [{"name": "waiter", "image": "example/waiter:0.4"}]}
            }
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(c.clone(), "hooked")
        .create(&PostParams::default(), &deploy)
        .await
        .expect("deployment created");

    let ns = "hooked";
    let wl: KeptnWorkload = wait_for("KeptnWorkload waiter-waiter", WAIT, || {
        let c = c.clone();
        async move {
            Api::<KeptnWorkload>::namespaced(c, ns)
                .get_opt("waiter-waiter")
                .await
                .ok()?
        }
    })
    .await;
    assert_eq!(wl.spec.app, "waiter");
    assert_eq!(wl.spec.version, "0.4");
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    wait_for("both pods released by the gate and ready", WAIT, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=waiter"))
                .await
                .ok()?;
            let done = list.items.len() == 2
                && list.items.iter().all(|p| {
                    let a = p.annotations();
                    let ungated = p
                        .spec
                        .as_ref()
                        .and_then(|s| s.scheduling_gates.as_ref())
                        .is_none_or(|g| g.iter().all(|g| g.name != "keptn-prechecks-gate"));
                    ungated
                        && a.get("keptn.sh/scheduling-gate-removed")
                            .map(String::as_str)
                            == Some("true")
                        && a.get("keptn.sh/workload").map(String::as_str) == Some("waiter")
                        && p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                });
            done.then_some(())
        }
    })
    .await;
    wait_for(
        "KWV waiter-waiter-0.4 and KAV waiter-0.4-6b86b273 Completed",
        WAIT,
        || {
            let c = c.clone();
            async move {
                let kwv = Api::<KeptnWorkloadVersion>::namespaced(c.clone(), ns)
                    .get_opt("waiter-waiter-0.4")
                    .await
                    .ok()??;
                let kav = Api::<KeptnAppVersion>::namespaced(c, ns)
                    .get_opt("waiter-0.4-6b86b273")
                    .await
                    .ok()??;
                let done = |phase: &str, state: &KeptnState| {
                    phase == "Completed" && *state == KeptnState::Succeeded
                };
                let w = kwv.status?;
                let a = kav.status?;
                (done(&w.current_phase, &w.status) && done(&a.current_phase, &a.status))
                    .then_some(())
            }
        },
    )
    .await;
    let app = Api::<KeptnApp>::namespaced(c.clone(), ns)
        .get("waiter")
        .await
        .expect("KeptnApp waiter");
    assert_eq!(app.spec.version, "0.4");
    drop(procs);
    sim.shutdown().await;
}
