//! Starting an emulated API server: the library API tests use ([`Sim::start`]) and the one behind
//! `kubesim serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState, NAMESPACES, Settings};
use crate::controllers;
use crate::glue::ServiceMap;
use crate::server::{self, App, Auth};

/// Namespaces every cluster starts with.
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Failures starting or using an emulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen: {0}")]
    Bind(#[source] std::io::Error),
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build a kube client: {0}")]
    Client(String),
    #[error("not implemented: {0}")]
    NotImplemented(String),
    #[error("setup failed: {0}")]
    Setup(String),
}

/// How to run one emulated API server.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where to write the kubeconfig; a temporary file (removed on shutdown) when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// Number of Ready, schedulable Node objects (`kubesim-node-1`, …) (F24): made by the
    /// simulated node controller when `controllers` is set, seeded as plain objects otherwise.
    pub nodes: usize,
    /// Run the simulated control plane (`controllers` module: workload controllers, scheduler,
    /// kubelets) as in-process tasks talking to this server through kube-rs.
    pub controllers: bool,
    /// Timings of the simulated control plane; `None`: real-cluster timings with `nodes` nodes.
    pub controllers_config: Option<controllers::ControllersConfig>,
    /// Webhook services mapped to loopback addresses: (namespace, name, address).
    pub services: Vec<(String, String, SocketAddr)>,
    /// How many changes watches can resume from; older resourceVersions get 410 Expired.
    pub watch_history: usize,
    /// Interval of BOOKMARK events for watches that allow them.
    pub bookmark_interval: Duration,
    /// Largest accepted request body (the real server's limit is 3 MiB).
    pub max_body_bytes: usize,
    /// Enforce RBAC (`rbac` module): the admin kubeconfig then carries a `system:masters`
    /// token, [`SimHandle::service_account_kubeconfig`] one of a ServiceAccount, and requests
    /// without a token are anonymous. Off, every request is allowed.
    pub rbac: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig: None,
            nodes: 1,
            controllers: false,
            controllers_config: None,
            services: Vec::new(),
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(30),
            max_body_bytes: 3 * 1024 * 1024,
            rbac: false,
        }
    }
}

/// Entry point of the library API.
pub struct Sim;

/// A running emulator; dropping it without [`SimHandle::shutdown`] aborts its tasks.
pub struct SimHandle {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub addr: SocketAddr,
    /// A kubeconfig both kubectl and kube-rs use unchanged.
    pub kubeconfig: PathBuf,
    state: Arc<ApiState>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    controllers: Option<controllers::ControllersHandle>,
    faults: Arc<crate::faults::Faults>,
    auth: Arc<Auth>,
    /// The admin's bearer token (RBAC on only).
    admin_token: Option<String>,
    _tempdir: Option<tempfile::TempDir>,
}

/// The kubeconfig text for a server URL.
pub fn kubeconfig_yaml(url: &str) -> String {
    kubeconfig_with_token(url, None, "default")
}

/// A kubeconfig for a server URL that authenticates with a bearer token (none: `user: {}`).
pub fn kubeconfig_with_token(url: &str, token: Option<&str>, namespace: &str) -> String {
    let user = match token {
        Some(t) => format!("\n    token: {t}"),
        None => " {}".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {url}\ncontexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\n    namespace: {namespace}\ncurrent-context: kubesim\nusers:\n- name: kubesim\n  user:{user}\npreferences: {{}}\n"
    )
}

fn seed(state: &ApiState, nodes: &[String]) -> Result<(), SimError> {
    let mut store = state
        .store
        .write()
        .map_err(|_| SimError::Setup("store lock poisoned".into()))?;
    let now = api::now();
    for ns in DEFAULT_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "uid": api::new_uid(), "creationTimestamp": now, "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        store
            .create(NAMESPACES, "", ns, obj)
            .map_err(|e| SimError::Setup(format!("seeding namespace {ns}: {e:?}")))?;
        api::ensure_default_service_account(&mut store, ns);
    }
    for name in nodes {
        let obj = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": api::new_uid(), "creationTimestamp": now,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "nodeInfo": {"kubeletVersion": "v1.32.0-kubesim", "operatingSystem": "linux", "architecture": "amd64",
                "containerRuntimeVersion": "kubesim://0", "kernelVersion": "", "osImage": "kubesim", "kubeProxyVersion": "",
                "machineID": "", "systemUUID": "", "bootID": ""},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}]
        }});
        store
            .create("/nodes", "", name, obj)
            .map_err(|e| SimError::Setup(format!("seeding node {name}: {e:?}")))?;
    }
    Ok(())
}

impl Sim {
    /// Start an emulator: listens, writes the kubeconfig, seeds namespaces and nodes.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(SimError::Bind)?;
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let url = format!("http://{addr}");
        let (kubeconfig, tempdir) = match &config.kubeconfig {
            Some(p) => (p.clone(), None),
            None => {
                let dir = tempfile::tempdir().map_err(|source| SimError::Kubeconfig {
                    path: std::env::temp_dir(),
                    source,
                })?;
                (dir.path().join("kubeconfig"), Some(dir))
            }
        };
        let auth = Arc::new(Auth {
            rbac: config.rbac,
            ..Default::default()
        });
        let admin_token = config
            .rbac
            .then(|| auth.tokens.issue(crate::rbac::UserInfo::admin()));
        // With a token, kubectl needs it in the server URL too (it sends none over plain HTTP).
        let server = match &admin_token {
            Some(t) => format!("{url}{}{t}", crate::server::TOKEN_PATH_PREFIX),
            None => url.clone(),
        };
        let text = kubeconfig_with_token(&server, admin_token.as_deref(), "default");
        std::fs::write(&kubeconfig, text).map_err(|source| SimError::Kubeconfig {
            path: kubeconfig.clone(),
            source,
        })?;
        let services = Arc::new(ServiceMap::default());
        for (ns, name, a) in &config.services {
            services.insert(ns, name, *a);
        }
        let settings = Settings {
            bookmark_interval: config.bookmark_interval,
            max_body_bytes: config.max_body_bytes,
        };
        let state = Arc::new(ApiState::new(settings, services, config.watch_history));
        let node_names: Vec<String> = (1..=config.nodes)
            .map(|i| format!("kubesim-node-{i}"))
            .collect();
        seed(&state, if config.controllers { &[] } else { &node_names })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let faults = Arc::new(crate::faults::Faults::default());
        let app = App {
            state: state.clone(),
            shutdown: shutdown_rx.clone(),
            server_address: addr.to_string(),
            faults: faults.clone(),
            auth: auth.clone(),
        };
        let router = server::router(app);
        let mut graceful = shutdown_rx.clone();
        let mut tasks = vec![tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = graceful.changed().await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "kubesim server stopped");
            }
        })];
        tasks.push(tokio::spawn(crate::gc::run(state.clone(), shutdown_rx)));
        let tasks_now = std::mem::take(&mut tasks);
        let mut handle = SimHandle {
            url,
            addr,
            kubeconfig,
            state,
            shutdown_tx,
            tasks: tasks_now,
            controllers: None,
            faults,
            auth,
            admin_token,
            _tempdir: tempdir,
        };
        if config.controllers {
            let cc = config.controllers_config.clone().unwrap_or_else(|| {
                controllers::ControllersConfig {
                    nodes: config.nodes,
                    ..Default::default()
                }
            });
            let client = handle.client()?;
            let running = controllers::spawn(client, cc)
                .await
                .map_err(|e| SimError::Setup(format!("starting the simulated controllers: {e}")))?;
            handle.controllers = Some(running);
        }
        tracing::info!(url = %handle.url, kubeconfig = %handle.kubeconfig.display(), "kubesim serving");
        Ok(handle)
    }
}

impl SimHandle {
    /// A kube-rs client for this server (default namespace `default`).
    pub fn client(&self) -> Result<kube::Client, SimError> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e: http::uri::InvalidUri| SimError::Client(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        if let Some(t) = &self.admin_token {
            config.auth_info.token = Some(t.clone().into());
        }
        kube::Client::try_from(config).map_err(|e| SimError::Client(e.to_string()))
    }

    /// Write a kubeconfig whose token identifies ServiceAccount `namespace/name`
    /// (`system:serviceaccount:<ns>:<name>`; default namespace of the context: `namespace`).
    /// The file lives next to the admin kubeconfig; it works with RBAC off too (then allowed
    /// everything, like any authenticated user).
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, SimError> {
        let dir = self
            .kubeconfig
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("kubeconfig-sa-{namespace}-{name}"));
        self.write_service_account_kubeconfig(namespace, name, &path)?;
        Ok(path)
    }

    /// [`SimHandle::service_account_kubeconfig`] at a chosen path.
    pub fn write_service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        path: &std::path::Path,
    ) -> Result<(), SimError> {
        let token = self
            .auth
            .tokens
            .issue(crate::rbac::UserInfo::service_account(namespace, name));
        // The token goes in the server URL too: kubectl sends none over plain HTTP.
        let server = format!("{}{}{token}", self.url, crate::server::TOKEN_PATH_PREFIX);
        std::fs::write(
            path,
            kubeconfig_with_token(&server, Some(&token), namespace),
        )
        .map_err(|source| SimError::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The messages of every 403 `Forbidden` RBAC answered so far, oldest first.
    pub fn rbac_denials(&self) -> Vec<String> {
        match self.auth.denials.lock() {
            Ok(d) => d.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Map a webhook service `namespace/name` to a loopback address (any port of the service).
    pub fn register_service(&self, namespace: &str, name: &str, addr: SocketAddr) {
        self.state.services.insert(namespace, name, addr);
    }

    /// Fault injection for failure tests: failing requests with real API errors, closing watches.
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.faults
    }

    /// Stop serving: watches close, the listener stops, background tasks end.
    pub async fn shutdown(mut self) {
        if let Some(c) = self.controllers.take() {
            c.abort();
        }
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(c) = self.controllers.take() {
            c.abort();
        }
        let _ = self.shutdown_tx.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}
