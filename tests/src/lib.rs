//! The end-to-end harness: a real control plane per test ([`Cluster`], `tools/cluster.sh`) with
//! the CRDs installed, the `portcullis-gate` and `portcullis-webhook` binaries as processes with
//! their logs, namespace/workload helpers as the webhook would create them, pod predicates,
//! polling with a deadline, and the webhook's test certificates.

pub mod cluster;
pub mod prometheus;
pub mod proxy;

pub use cluster::{Cluster, client_for, repo_root};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::json;
use shared::crd::{
    KeptnAppCreationRequest, KeptnAppVersion, KeptnConfig, KeptnState, KeptnTask, KeptnWorkload,
    KeptnWorkloadVersion,
};

pub use shared::gate::{GATE, GATED_LABEL, GATED_VALUE};
pub const WAIT: Duration = Duration::from_secs(60);
pub const SERVICE: &str = "portcullis-webhook";
pub const INSTALL_NS: &str = "portcullis-system";
/// The pod label that picks kwok's outcome for a pod's containers (`tools/kwok-stages.yaml`):
/// `succeed` (default), `fail`, `keep-running`, `never-ready`.
pub const OUTCOME: &str = "kwok.portcullis.dev/outcome";
/// The pod annotation with how long a Job's (or a failing) pod runs, e.g. `300ms`.
pub const RUN_FOR: &str = "kwok.portcullis.dev/run-for";
/// The pod annotation with how long a bound pod waits before it runs, e.g. `2s`.
pub const START_DELAY: &str = "kwok.portcullis.dev/start-delay";

/// A running control plane with CRDs, and the gate processes of a test.
pub struct Env {
    pub cluster: Cluster,
    pub client: Client,
    pub logs: tempfile::TempDir,
    pub gates: Vec<tokio::process::Child>,
    pub admin_ports: Vec<u16>,
    pub started: usize,
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.started {
                let path = self.logs.path().join(format!("gate-{i}.log"));
                if let Ok(text) = std::fs::read_to_string(&path) {
                    let tail: Vec<&str> = text.lines().rev().take(80).collect();
                    eprintln!("---- gate {i} log (last lines) ----");
                    for line in tail.iter().rev() {
                        eprintln!("{line}");
                    }
                }
            }
        }
    }
}

pub async fn start_env() -> Env {
    let cluster = Cluster::with_crds().await;
    let client = cluster.client();
    Env {
        cluster,
        client,
        logs: tempfile::tempdir().expect("tempdir"),
        gates: Vec::new(),
        admin_ports: Vec::new(),
        started: 0,
    }
}

impl Env {
    pub fn kubeconfig(&self) -> PathBuf {
        self.cluster.kubeconfig()
    }

    /// Starts a gate process; returns its index.
    pub fn start_gate(&mut self, extra: &[&str]) -> usize {
        let kubeconfig = self.kubeconfig();
        self.start_gate_with(&kubeconfig, extra)
    }

    /// Starts a gate process that reaches the API server through `kubeconfig` (a
    /// [`proxy::FaultProxy`]'s, say); returns its index.
    pub fn start_gate_with(&mut self, kubeconfig: &Path, extra: &[&str]) -> usize {
        let i = self.started;
        self.started += 1;
        let log =
            std::fs::File::create(self.logs.path().join(format!("gate-{i}.log"))).expect("log");
        let err = log.try_clone().expect("log");
        let port = free_port();
        self.admin_ports.push(port);
        let child = tokio::process::Command::new(binary("portcullis-gate"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--admin-address", &format!("127.0.0.1:{port}")])
            .args(["--sweep-interval-seconds", "1"])
            .args(["--keptn-metrics-port", "0"])
            .args(["--identity", &format!("gate-{i}")])
            .args(extra)
            .env("LOG_FILTER", "info,gate=debug,kube=warn")
            .env_remove("POD_NAMESPACE")
            .env_remove("KUBECONFIG")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .expect("gate binary starts");
        self.gates.push(child);
        i
    }

    /// SIGKILL, no chance to clean up.
    pub async fn kill_gate(&mut self, i: usize) {
        let child = &mut self.gates[i];
        child.start_kill().expect("kill");
        let _ = child.wait().await;
    }

    pub fn gate_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("gate-{i}.log"))).unwrap_or_default()
    }

    pub async fn namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"}}
        }))
        .expect("namespace");
        api.create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        default_service_account(&self.client, name).await;
    }

    pub async fn config(&self, ns: &str, spec: serde_json::Value) {
        let api: Api<KeptnConfig> = Api::namespaced(self.client.clone(), ns);
        let cfg: KeptnConfig = serde_json::from_value(json!({
            "apiVersion": "options.keptn.sh/v1alpha1", "kind": "KeptnConfig",
            "metadata": {"name": "keptn-config"}, "spec": spec
        }))
        .expect("config");
        api.create(&PostParams::default(), &cfg)
            .await
            .expect("config created");
    }
}

/// Waits for the `default` ServiceAccount of a new namespace: the API server refuses pods that
/// name a ServiceAccount (`default` unless said otherwise) until its controller has created it.
pub async fn default_service_account(client: &Client, ns: &str) {
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), ns);
    wait_for(&format!("ServiceAccount {ns}/default"), WAIT, || {
        let accounts = accounts.clone();
        async move { accounts.get_opt("default").await.ok()?.map(|_| ()) }
    })
    .await;
}

/// Polls `f` every 100 ms until it yields a value or `timeout` passes (then panics with `what`).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn get<K>(client: &Client, ns: &str, name: &str) -> Option<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// An annotated Deployment whose pods carry what the webhook would give them: the gate, the
/// gated label and the stamped identity (A8). `extra` annotations go on the pod template; `kwok.portcullis.dev/*`
/// keys among them are set as labels too (kwok outcome control, `tools/kwok-stages.yaml`).
pub async fn gated_deployment(
    client: &Client,
    ns: &str,
    name: &str,
    app: &str,
    version: &str,
    replicas: i32,
    extra: serde_json::Value,
) -> (String, String) {
    let mut annotations = json!({
        "keptn.sh/app": app, "keptn.sh/workload": name, "keptn.sh/version": version
    });
    let mut labels = json!({"app": name, GATED_LABEL: GATED_VALUE});
    if let (Some(a), Some(e)) = (annotations.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    if let (Some(l), Some(e)) = (labels.as_object_mut(), extra.as_object()) {
        l.extend(
            e.iter()
                .filter(|(k, _)| k.as_str() == OUTCOME)
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    let deploy: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"keptn.sh/workload": name, "keptn.sh/version": version}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "schedulingGates": [{"name": GATE}],
                    "containers": [{"name": name, "image": format!("example/{name}:{version}")}]
                }
            }
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .expect("deployment created");
    replica_set(client, ns, name).await
}

/// The name and uid of the (first) ReplicaSet of the Deployment `name` whose pods carry the
/// label `app=<name>`, once the deployment controller has made it.
pub async fn replica_set(client: &Client, ns: &str, name: &str) -> (String, String) {
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let selector = format!("app={name}");
    wait_for("the ReplicaSet", WAIT, || {
        let rs_api = rs_api.clone();
        let selector = selector.clone();
        async move {
            let list = rs_api
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            let rs = list.items.into_iter().next()?;
            Some((rs.name_any(), rs.metadata.uid.clone()?))
        }
    })
    .await
}

/// The KeptnWorkload (and, for a single-service app, the KeptnAppCreationRequest) that the
/// webhook creates for a pod of `rs` (B §1.8, §1.9).
pub async fn workload_objects(
    client: &Client,
    ns: &str,
    app: &str,
    workload: &str,
    version: &str,
    rs: &(String, String),
    tasks: &[&str],
) {
    let wl: KeptnWorkload = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkload",
        "metadata": {
            "name": format!("{app}-{workload}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs.0, "uid": rs.1}]
        },
        "spec": {
            "app": app, "version": version,
            "preDeploymentTasks": tasks,
            "resourceReference": {"uid": rs.1, "kind": "ReplicaSet", "name": rs.0}
        }
    }))
    .expect("workload");
    Api::<KeptnWorkload>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &wl)
        .await
        .expect("workload created");
}

pub async fn creation_request(client: &Client, ns: &str, app: &str, single: bool) {
    let annotations = if single {
        json!({"keptn.sh/app-type": "single-service"})
    } else {
        json!({})
    };
    let kacr: KeptnAppCreationRequest = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppCreationRequest",
        "metadata": {"name": app, "annotations": annotations},
        "spec": {"appName": app}
    }))
    .expect("kacr");
    Api::<KeptnAppCreationRequest>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &kacr)
        .await
        .expect("kacr created");
}

pub async fn pods(client: &Client, ns: &str, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Waits until `app` has `n` pods in `ns` (they are the ReplicaSet controller's, created
/// independently of what a test waited for before); returns them.
pub async fn wait_pods(client: &Client, ns: &str, app: &str, n: usize) -> Vec<Pod> {
    wait_for(&format!("{n} pods of {ns}/{app}"), WAIT, || async move {
        let p = pods(client, ns, app).await;
        (p.len() == n).then_some(p)
    })
    .await
}

pub fn gated(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.name == GATE))
}

pub fn released(p: &Pod) -> bool {
    !gated(p)
        && p.annotations()
            .get(shared::gate::REMOVED_MARKER)
            .map(String::as_str)
            == Some(shared::gate::REMOVED_VALUE)
}

pub fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub async fn events(client: &Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Waits for an Event with `reason` in `ns`: Events are published after the status
/// write they report, so a test that saw the status must still wait for the Event.
pub async fn wait_for_event(client: &Client, ns: &str, reason: &str) -> Event {
    wait_for(&format!("event {reason}"), WAIT, || {
        let client = client.clone();
        async move {
            events(&client, ns)
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason))
        }
    })
    .await
}

pub async fn kwv_state(client: &Client, ns: &str, name: &str) -> Option<(String, KeptnState)> {
    let k: KeptnWorkloadVersion = get(client, ns, name).await?;
    let s = k.status?;
    Some((s.current_phase, s.status))
}

/// Waits until the KeptnWorkloadVersion `name` is in `phase` with `state`.
pub async fn wait_for_kwv(
    client: &Client,
    ns: &str,
    name: &str,
    phase: &str,
    state: KeptnState,
    what: &str,
) {
    wait_for(what, WAIT, || async {
        (kwv_state(client, ns, name).await? == (phase.to_owned(), state.clone())).then_some(())
    })
    .await;
}

pub async fn kav_state(client: &Client, ns: &str, name: &str) -> Option<(String, KeptnState)> {
    let k: KeptnAppVersion = get(client, ns, name).await?;
    let s = k.status?;
    Some((s.current_phase, s.status))
}

pub async fn tasks(client: &Client, ns: &str) -> Vec<KeptnTask> {
    Api::<KeptnTask>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The whole HTTP response (status line, headers, body) of a gate's `/metrics`.
async fn metrics_response(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

/// The body of a gate's `/metrics`, when it answers 200.
pub async fn metrics_body(port: u16) -> Option<String> {
    let response = metrics_response(port).await?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")).then(|| body.to_owned())
}

/// Sum of a metric's samples from a gate's `/metrics`.
pub async fn metric(port: u16, name: &str) -> Option<f64> {
    let body = metrics_response(port).await?;
    Some(
        body.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Sockets holding the ports handed out by [`free_port`], for the life of the test process.
static RESERVED_PORTS: std::sync::Mutex<Vec<tokio::net::TcpSocket>> =
    std::sync::Mutex::new(Vec::new());

/// A loopback port for a child process to listen on, reserved for the rest of the test process.
///
/// A port found free and released again could be taken (by another test's `bind(0)` or as the
/// source port of an outgoing connection) before the child binds it. So the port stays bound
/// here, with SO_REUSEADDR and never listening: the kernel then hands it to nobody else, a
/// child that binds with SO_REUSEADDR (tokio and std listeners do) can still listen on it, and
/// while nothing listens a connection to it is refused.
pub fn free_port() -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(([127, 0, 0, 1], 0).into()).expect("free port");
    let port = socket.local_addr().expect("bound address").port();
    RESERVED_PORTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(socket);
    port
}

/// A CA and a serving certificate for the webhook Service, written to `dir`; returns the CA PEM.
pub fn certificates(dir: &Path) -> String {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("ca key");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let host = format!("{SERVICE}.{INSTALL_NS}.svc");
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec![host, SERVICE.to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    std::fs::write(dir.join("tls.crt"), leaf.pem()).expect("cert");
    std::fs::write(dir.join("tls.key"), leaf_key.serialize_pem()).expect("key");
    ca.pem()
}

/// Waits until the webhook on loopback `port` serves `/readyz` over TLS with the CA `ca`, reached
/// by its Service host name as the API server would call it.
pub async fn wait_webhook_ready(ca: &str, port: u16) {
    let https = webhook_https(ca, port).build().expect("https client");
    let url = webhook_url(port, "/readyz");
    wait_for("webhook ready", WAIT, || {
        let https = https.clone();
        let url = url.clone();
        async move {
            let r = https.get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await;
}

/// An HTTPS client for the webhook on loopback `port`, trusting only `ca` and reaching it by its
/// Service host name, as the API server does.
pub fn webhook_https(ca: &str, port: u16) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca"))
        .resolve(
            &format!("{SERVICE}.{INSTALL_NS}.svc"),
            ([127, 0, 0, 1], port).into(),
        )
}

/// The URL of `path` on the webhook at `port`, for a [`webhook_https`] client.
pub fn webhook_url(port: u16, path: &str) -> String {
    format!("https://{SERVICE}.{INSTALL_NS}.svc:{port}{path}")
}

/// A binary of the workspace (`portcullis-gate`, `portcullis-webhook`, ...), built by the same
/// profile as this test (`cargo build --workspace --bins`; `make test` does it first).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (same profile) first",
        path.display()
    );
    path
}

/// The `portcullis-webhook` binary.
pub fn webhook_binary() -> PathBuf {
    binary("portcullis-webhook")
}

/// The webhook and gate processes of a test and their logs (`<name>.log`, next to the
/// webhook's certificates); dumps the logs' tails when a test fails.
pub struct Processes {
    pub children: Vec<tokio::process::Child>,
    pub logs: tempfile::TempDir,
    /// The log names spawned so far, in order (their tails are dumped on failure).
    pub names: Vec<String>,
}

impl Processes {
    /// An empty set whose logs go to a fresh directory.
    pub fn new() -> Processes {
        Processes {
            children: Vec::new(),
            logs: tempfile::tempdir().expect("tempdir"),
            names: Vec::new(),
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Starts `binary` with `args` against `kubeconfig`, logging to `<name>.log`.
    pub fn spawn(
        &mut self,
        name: &str,
        binary: &Path,
        args: &[String],
        kubeconfig: &Path,
        filter: &str,
    ) {
        let out = std::fs::File::create(self.logs.path().join(format!("{name}.log"))).expect("log");
        let err = out.try_clone().expect("log");
        let child = tokio::process::Command::new(binary)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", INSTALL_NS)
            .env("LOG_FILTER", filter)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()));
        self.children.push(child);
        self.names.push(name.to_owned());
    }

    /// Starts the webhook binary on loopback `port` with the certificates [`certificates`] wrote
    /// to this `logs` directory, logging to `<name>.log`; its child is the last of `children`.
    pub fn spawn_webhook(&mut self, name: &str, port: u16, kubeconfig: &Path, filter: &str) {
        let dir = self.logs.path().to_path_buf();
        self.spawn(
            name,
            &webhook_binary(),
            &[
                format!("--listen=127.0.0.1:{port}"),
                format!("--tls-cert={}", dir.join("tls.crt").display()),
                format!("--tls-key={}", dir.join("tls.key").display()),
            ],
            kubeconfig,
            filter,
        );
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in &self.names {
                let text = self.log(name);
                eprintln!("---- {name} log ----");
                for line in text.lines().rev().take(60).collect::<Vec<_>>().iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Default for Processes {
    fn default() -> Self {
        Processes::new()
    }
}

/// The documents of the static install `deploy/portcullis.yaml` (the chart rendered with its
/// defaults) whose kind is one of `kinds`, as JSON.
pub fn deploy_documents(kinds: &[&str]) -> Vec<serde_json::Value> {
    let path = format!("{}/deploy/portcullis.yaml", repo_root().display());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml_documents(&text)
        .into_iter()
        .filter(|v| v["kind"].as_str().is_some_and(|k| kinds.contains(&k)))
        .collect()
}

/// The documents of a multi-document YAML text, as JSON; empty documents are skipped.
pub fn yaml_documents(text: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).expect("yaml");
            serde_json::to_value(v).expect("json")
        })
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

/// The Namespace, ServiceAccounts and RBAC of the static install, in the order to create them.
pub const RBAC_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// How [`start_webhook_and_gate`] runs the two binaries.
pub struct Binaries<'a> {
    /// The webhook's kubeconfig.
    pub webhook_kubeconfig: &'a Path,
    /// The gate's kubeconfig.
    pub gate_kubeconfig: &'a Path,
    /// Gate flags after `--admin-address=127.0.0.1:0 --keptn-metrics-port=0`.
    pub gate_args: &'a [&'a str],
    /// `LOG_FILTER` of both.
    pub log_filter: &'a str,
}

/// Starts the real webhook (with fresh certificates, behind the webhook Service on a free port)
/// and the gate, waits until the webhook serves TLS, then registers the static install's
/// MutatingWebhookConfiguration with the CA bundle filled in, created through `client`.
pub async fn start_webhook_and_gate(
    cluster: &Cluster,
    client: &Client,
    bin: Binaries<'_>,
) -> Processes {
    let logs = tempfile::tempdir().expect("tempdir");
    let ca = certificates(logs.path());
    // Reserved until the process ends, so nothing else takes it before the webhook binds it.
    let port = free_port();
    cluster
        .route_service_to_localhost(INSTALL_NS, SERVICE)
        .await;
    let mut procs = Processes {
        children: Vec::new(),
        logs,
        names: Vec::new(),
    };
    procs.spawn_webhook("webhook", port, bin.webhook_kubeconfig, bin.log_filter);
    let mut gate_args = vec![
        "--admin-address=127.0.0.1:0".to_owned(),
        "--keptn-metrics-port=0".to_owned(),
    ];
    gate_args.extend(bin.gate_args.iter().map(|a| (*a).to_owned()));
    procs.spawn(
        "gate",
        &binary("portcullis-gate"),
        &gate_args,
        bin.gate_kubeconfig,
        bin.log_filter,
    );
    // TLS with our CA, as the API server would call it.
    wait_webhook_ready(&ca, port).await;
    register_webhooks(client, &ca, port, None).await;
    procs
}

/// Creates the static install's MutatingWebhookConfiguration through `client` with the CA bundle
/// `ca`, its Service reference at `port` (where the local webhook listens, see
/// [`Cluster::route_service_to_localhost`]); `failure_policy` overrides every hook's
/// failurePolicy (`None` keeps the chart's default).
pub async fn register_webhooks(client: &Client, ca: &str, port: u16, failure_policy: Option<&str>) {
    let mut mwc = deploy_documents(&["MutatingWebhookConfiguration"])
        .into_iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .expect("a MutatingWebhookConfiguration");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    for hook in mwc["webhooks"].as_array_mut().expect("webhooks") {
        hook["clientConfig"]["caBundle"] = json!(bundle);
        hook["clientConfig"]["service"]["port"] = json!(port);
        if let Some(policy) = failure_policy {
            hook["failurePolicy"] = json!(policy);
        }
    }
    let mwc: MutatingWebhookConfiguration = serde_json::from_value(mwc).expect("mwc");
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mwc)
        .await
        .expect("registration");
    register_conversion(client, ca, port).await;
}

/// Points every CRD that converts through the webhook at the local webhook (`port`, CA bundle
/// `ca`), as `portcullis-certs patch` does for an install.
pub async fn register_conversion(client: &Client, ca: &str, port: u16) {
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in shared::crd::all() {
        let installed = crds
            .get_opt(crd.metadata.name.as_deref().unwrap_or_default())
            .await
            .expect("CRD read");
        let converts = |c: &CustomResourceDefinition| {
            c.spec.conversion.as_ref().map(|c| c.strategy.as_str()) == Some("Webhook")
        };
        // Only CRDs installed from `shared` with conversion (not, say, another release's).
        if !converts(&crd) || !installed.as_ref().is_some_and(converts) {
            continue;
        }
        let patch = json!({"spec": {"conversion": {"webhook": {"clientConfig": {
            "caBundle": bundle, "service": {"port": port}
        }}}}});
        crds.patch(
            crd.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("conversion registered");
    }
}

// ---- The webhook keeping its own certificates (`--cert-secret`, A25) ----

/// The lifecycle.keptn.sh CRDs of `shared::crd::all()` that convert through the webhook.
pub fn converting_crds() -> Vec<String> {
    shared::crd::all()
        .into_iter()
        .filter(|c| c.spec.conversion.as_ref().map(|c| c.strategy.as_str()) == Some("Webhook"))
        .filter_map(|c| c.metadata.name)
        .collect()
}

/// Registers the static install's Mutating- and ValidatingWebhookConfiguration *without* `caBundle`,
/// as a chart that leaves the bundle to the webhook does; each hook's Service port is
/// `port_of(hook name)`. The converting CRDs call the webhook at `conversion_port`, their
/// `caBundle` removed.
pub async fn register_webhooks_without_ca(
    cluster: &Cluster,
    port_of: impl Fn(&str) -> u16,
    conversion_port: u16,
) {
    for mut doc in deploy_documents(&[
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]) {
        for hook in doc["webhooks"].as_array_mut().expect("webhooks") {
            let port = port_of(hook["name"].as_str().expect("hook name"));
            hook["clientConfig"]["service"]["port"] = json!(port);
            if let Some(cc) = hook["clientConfig"].as_object_mut() {
                cc.remove("caBundle");
            }
        }
        cluster
            .kubectl_apply(&doc)
            .await
            .expect("webhook configuration registered");
    }
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client());
    for name in converting_crds() {
        let patch = json!({"spec": {"conversion": {"webhook": {"clientConfig": {
            "caBundle": null, "service": {"port": conversion_port}
        }}}}});
        crds.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("conversion registered");
    }
}

/// The static install's Namespace, ServiceAccounts and RBAC: with the chart's default
/// (`global.certManagerEnabled: true`) the webhook's include exactly what `--cert-secret` needs —
/// the Secret by name (create unrestricted), the webhook configurations and the converting CRDs
/// by name — so the tests run the keeper under the RBAC users get.
pub async fn cert_keeper_rbac(cluster: &Cluster) {
    for doc in deploy_documents(RBAC_KINDS) {
        cluster.kubectl_apply(&doc).await.expect("install RBAC");
    }
}
