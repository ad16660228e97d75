//! A real control plane per test: `tools/cluster.sh` starts etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok in a directory of the test's own, and stops
//! them when the [`Cluster`] is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;

use crate::{WAIT, wait_for};

/// The repository's root (where `tools/` is).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A running control plane with two kwok nodes, stopped on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    client: Client,
}

impl Cluster {
    /// Starts a control plane of the test's own (the binaries are built by `tools/build.sh` the
    /// first time; `make test` builds them before the tests run).
    pub async fn start() -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-cluster.")
            .tempdir()
            .expect("cluster directory");
        let script = repo_root().join("tools/cluster.sh");
        // Two clusters starting at once may pick the same free port; such a start fails as a
        // whole, and the next try picks others.
        let mut last = String::new();
        let mut up = false;
        for _ in 0..3 {
            let out = tokio::process::Command::new(&script)
                .arg("up")
                .arg(dir.path())
                .stdin(Stdio::null())
                .output()
                .await
                .expect("tools/cluster.sh runs");
            if out.status.success() {
                up = true;
                break;
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::process::Command::new(&script)
                .arg("down")
                .arg(dir.path())
                .status();
        }
        assert!(up, "tools/cluster.sh up failed:\n{last}");
        let client = client_for(&dir.path().join("kubeconfig")).await;
        Cluster { dir, client }
    }

    /// Starts a control plane and installs the CRDs generated from `shared`; returns once every
    /// kind is served.
    pub async fn with_crds() -> Cluster {
        let cluster = Cluster::start().await;
        cluster.install_crds().await;
        cluster
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The kubectl of the control plane's release.
    pub fn kubectl(&self) -> PathBuf {
        self.dir.path().join("bin/kubectl")
    }

    /// Runs this cluster's kubectl as a user would, with `stdin`: stdout, or stderr on failure.
    pub async fn run_kubectl(&self, args: &[&str], stdin: &str) -> Result<String, String> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(self.kubectl())
            // Discovery is cached by host:port, which clusters started one after the other reuse.
            .env("KUBECACHEDIR", self.dir.path().join("kubectl-cache"))
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.as_bytes())
            .await
            .expect("stdin written");
        drop(input);
        let out = child.wait_with_output().await.expect("kubectl ends");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `kubectl apply -f -` of one manifest.
    pub async fn kubectl_apply(&self, manifest: &serde_json::Value) -> Result<String, String> {
        self.run_kubectl(&["apply", "-f", "-"], &manifest.to_string())
            .await
    }

    /// Creates the CRDs of `shared::crd::all()` and waits until each is established.
    pub async fn install_crds(&self) {
        self.install(shared::crd::all()).await;
    }

    /// Creates `crds` and waits until at least as many CRDs as `shared::crd::all()` has are
    /// established.
    pub async fn install(&self, crds: Vec<CustomResourceDefinition>) {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in crds {
            api.create(&PostParams::default(), &crd)
                .await
                .expect("CRD created");
        }
        let c = self.client.clone();
        wait_for("CRDs established", WAIT, || {
            let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
            async move {
                let list = crds.list(&ListParams::default()).await.ok()?;
                let established = list
                    .items
                    .iter()
                    .filter(|crd| {
                        crd.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter()
                                    .any(|c| c.type_ == "Established" && c.status == "True")
                            })
                    })
                    .count();
                (established >= shared::crd::all().len()).then_some(())
            }
        })
        .await;
    }

    /// Creates namespace `name` unless it exists.
    pub async fn ensure_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .expect("namespace");
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("namespace {name}: {e}"),
        }
    }

    /// Points the Service `ns/name` at this machine: an ExternalName Service for `localhost`.
    /// The API server then calls a webhook registered with this Service reference at
    /// `localhost:<port of the reference>`, verifying the certificate for `<name>.<ns>.svc`, so
    /// a webhook process listening on loopback is reached as it would be in a pod.
    pub async fn route_service_to_localhost(&self, ns: &str, name: &str) {
        self.ensure_namespace(ns).await;
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "ExternalName", "externalName": "localhost"}
        }))
        .expect("service");
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        // Replaces a ClusterIP Service of an install: its type cannot be changed in place.
        let _ = api.delete(name, &Default::default()).await;
        wait_for("the old Service gone", WAIT, || {
            let api = api.clone();
            async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
        })
        .await;
        api.create(&PostParams::default(), &svc)
            .await
            .expect("ExternalName Service created");
    }

    /// A kubeconfig that authenticates as ServiceAccount `ns/name` with a token from the
    /// TokenRequest API (the ServiceAccount is created if missing).
    pub async fn service_account_kubeconfig(&self, ns: &str, name: &str) -> PathBuf {
        self.ensure_namespace(ns).await;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let sa: ServiceAccount = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}
        }))
        .expect("service account");
        let _ = accounts
            .patch(
                name,
                &PatchParams::apply("portcullis-e2e"),
                &Patch::Apply(&sa),
            )
            .await
            .expect("service account applied");
        let request: TokenRequest = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86400}
        }))
        .expect("token request");
        let token = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .expect("token")
            .status
            .expect("token status")
            .token;
        let mut config = Kubeconfig::read_from(self.kubeconfig()).expect("admin kubeconfig");
        let user = format!("system:serviceaccount:{ns}:{name}");
        config.auth_infos = vec![
            serde_json::from_value(json!({"name": user, "user": {"token": token}}))
                .expect("auth info"),
        ];
        for ctx in &mut config.contexts {
            if let Some(c) = ctx.context.as_mut() {
                c.user = Some(user.clone());
            }
        }
        let path = self.dir.path().join(format!("{ns}.{name}.kubeconfig"));
        std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml")).expect("kubeconfig");
        path
    }

    /// Audit records (JSON) of requests by ServiceAccounts that the API server answered 403.
    pub fn forbidden_requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["responseStatus"]["code"] == 403)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.keep_logs();
        }
        let _ = std::process::Command::new(repo_root().join("tools/cluster.sh"))
            .arg("down")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Cluster {
    /// Copies the components' logs (not the audit log, which can be GiBs) to
    /// `target/failed-clusters/<cluster directory>/` before a failed test's cluster is removed.
    fn keep_logs(&self) {
        let logs = self.dir.path().join("kwok/clusters/portcullis/logs");
        let name = self.dir.path().file_name().unwrap_or_default();
        let kept = repo_root().join("target/failed-clusters").join(name);
        let Ok(entries) = std::fs::read_dir(&logs) else {
            return;
        };
        if std::fs::create_dir_all(&kept).is_err() {
            return;
        }
        for entry in entries.flatten() {
            let file = entry.file_name();
            if file != "audit.log" {
                let _ = std::fs::copy(entry.path(), kept.join(&file));
            }
        }
        eprintln!("control plane logs kept in {}", kept.display());
    }
}

/// A client for `kubeconfig` (its current context).
pub async fn client_for(kubeconfig: &Path) -> Client {
    let config = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .expect("client config");
    Client::try_from(config).expect("client")
}
