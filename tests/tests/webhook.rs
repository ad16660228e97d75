//! End to end on a real control plane: the real `portcullis-webhook` binary (certificates from an
//! rcgen CA in a temp dir), registered as SPEC A3 describes and called by kube-apiserver over
//! HTTPS through its Service, driven by the control plane's kubectl. Each test has its own
//! control plane, namespace and ports; every wait has a deadline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::Cluster;
use kube::api::{Api, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};

const INSTALL_NS: &str = "portcullis-system";
const SERVICE: &str = "portcullis-webhook";
/// Generous for a loaded machine: a wait ends as soon as its condition holds.
const DEADLINE: Duration = Duration::from_secs(60);

/// The webhook process; killed on drop.
struct Webhook {
    child: Child,
    addr: SocketAddr,
    ca_pem: String,
    _dir: tempfile::TempDir,
    _port: tokio::net::TcpSocket,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port for the webhook, held by the returned socket (bound with SO_REUSEADDR, never
/// listening): while it is held the kernel gives the port to nobody else (another test's
/// `bind(0)`, an outgoing connection), and the webhook, whose tokio listener binds with
/// SO_REUSEADDR, can still listen on it. A port found free and released could be taken first.
fn free_port() -> (SocketAddr, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    (socket.local_addr().unwrap(), socket)
}

fn certificates(dir: &Path) -> (PathBuf, PathBuf, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "portcullis-e2e-ca");
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = CertificateParams::new(vec![
        format!("{SERVICE}.{INSTALL_NS}.svc"),
        "localhost".to_string(),
    ])
    .unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
    (cert_path, key_path, ca_pem)
}

async fn start_webhook(cluster: &Cluster) -> Webhook {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca_pem) = certificates(dir.path());
    let (addr, port) = free_port();
    let child = Command::new(e2e::binary("portcullis-webhook"))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("LOG_FILTER", "warn,webhook=info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the webhook binary starts");
    let webhook = Webhook {
        child,
        addr,
        ca_pem,
        _dir: dir,
        _port: port,
    };
    let client = https_client(&webhook);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let ready = client
            .get(format!(
                "https://{SERVICE}.{INSTALL_NS}.svc:{}/readyz",
                addr.port()
            ))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "webhook never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster
        .route_service_to_localhost(INSTALL_NS, SERVICE)
        .await;
    register(cluster, &webhook).await;
    webhook
}

fn https_client(webhook: &Webhook) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(webhook.ca_pem.as_bytes()).unwrap())
        .resolve(&format!("{SERVICE}.{INSTALL_NS}.svc"), webhook.addr)
        .build()
        .unwrap()
}

fn excluded_namespaces() -> Value {
    json!({"matchExpressions": [{
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": [INSTALL_NS, "kube-system", "kube-public", "kube-node-lease"]
    }]})
}

/// SPEC A3: NoneOnDryRun, explicit timeout, Fail, IfNeeded, system namespaces excluded.
async fn register(cluster: &Cluster, webhook: &Webhook) {
    use base64::Engine as _;
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&webhook.ca_pem);
    let client_config = |path: &str| {
        json!({
            "service": {"namespace": INSTALL_NS, "name": SERVICE, "path": path, "port": webhook.addr.port()},
            "caBundle": ca_bundle,
        })
    };
    let mutating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "portcullis-webhook"},
        "webhooks": [
            {
                "name": "mpod.portcullis.keptn.sh",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "NoneOnDryRun",
                "timeoutSeconds": 5,
                "failurePolicy": "Fail",
                "reinvocationPolicy": "IfNeeded",
                "namespaceSelector": excluded_namespaces(),
                "clientConfig": client_config("/mutate-v1-pod"),
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            },
            {
                "name": "mworkload.portcullis.keptn.sh",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "NoneOnDryRun",
                "timeoutSeconds": 5,
                "failurePolicy": "Fail",
                "reinvocationPolicy": "IfNeeded",
                "namespaceSelector": excluded_namespaces(),
                "clientConfig": client_config("/mutate-workloads"),
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                           "resources": ["deployments", "statefulsets", "daemonsets"]}],
            }
        ]
    });
    let validating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "portcullis-webhook"},
        "webhooks": [{
            "name": "vkeptntaskdefinition.portcullis.keptn.sh",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "timeoutSeconds": 5,
            "failurePolicy": "Fail",
            "clientConfig": client_config("/validate-keptntaskdefinition"),
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["lifecycle.keptn.sh"], "apiVersions": ["v1"],
                       "resources": ["keptntaskdefinitions"]}],
        }]
    });
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    let client = cluster.client();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(mutating).unwrap(),
        )
        .await
        .unwrap();
    Api::<ValidatingWebhookConfiguration>::all(client)
        .create(
            &PostParams::default(),
            &serde_json::from_value(validating).unwrap(),
        )
        .await
        .unwrap();
}

async fn cluster() -> Cluster {
    Cluster::with_crds().await
}

struct Kubectl {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    ns: String,
}

impl Kubectl {
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let kubeconfig = self.kubeconfig.clone();
        let kubectl = self.kubectl.clone();
        let ns = self.ns.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            // Discovery is cached by host:port, which clusters started one after the other reuse.
            let cache = kubeconfig.with_file_name("kubectl-cache");
            let mut child = Command::new(&kubectl)
                .env("KUBECACHEDIR", cache)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--namespace")
                .arg(&ns)
                .args(&args)
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("kubectl runs");
            if let Some(input) = stdin {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }

    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all, None).await).unwrap()
    }

    async fn names(&self, resource: &str) -> Vec<String> {
        let list = self.json(&["get", resource]).await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn namespace(cluster: &Cluster, name: &str, enabled: bool) -> Kubectl {
    let kubectl = Kubectl {
        kubectl: cluster.kubectl(),
        kubeconfig: cluster.kubeconfig(),
        ns: name.to_owned(),
    };
    let annotations = if enabled {
        "  annotations:\n    keptn.sh/lifecycle-toolkit: enabled\n"
    } else {
        ""
    };
    kubectl
        .ok(
            &["apply", "-f", "-"],
            Some(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n{annotations}"
            )),
        )
        .await;
    e2e::default_service_account(&cluster.client(), name).await;
    kubectl
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podtato
  annotations:
    keptn.sh/workload: podtato
    keptn.sh/version: "0.1.0"
    keptn.sh/pre-deployment-tasks: check
spec:
  replicas: 2
  selector:
    matchLabels: {app: podtato}
  template:
    metadata:
      labels: {app: podtato}
    spec:
      containers:
      - name: server
        image: ghcr.io/podtato-head/podtato-server:v0.3.2
"#;

async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_deployment_gets_keptn_objects_and_gated_pods() {
    let cluster = cluster().await;
    let _webhook = start_webhook(&cluster).await;
    let k = namespace(&cluster, "shop", true).await;
    k.ok(&["apply", "-f", "-"], Some(DEPLOYMENT)).await;

    // Right away (A7): the workload admission wrote both before the apply returned.
    let workloads = k.json(&["get", "keptnworkloads"]).await;
    let items = workloads["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{workloads}");
    assert_eq!(items[0]["metadata"]["name"], "podtato-podtato");
    assert_eq!(items[0]["spec"]["app"], "podtato");
    assert_eq!(items[0]["spec"]["version"], "0.1.0");
    assert_eq!(items[0]["spec"]["preDeploymentTasks"], json!(["check"]));
    assert_eq!(k.names("keptnappcreationrequests").await, ["podtato"]);
    let kacr = k.json(&["get", "keptnappcreationrequest", "podtato"]).await;
    assert_eq!(
        kacr["metadata"]["annotations"]["keptn.sh/app-type"],
        "single-service"
    );

    // The pods are gated and stamped (A8), kubectl shows SchedulingGated.
    let pods = wait_for("two gated pods", || async {
        let pods = k.json(&["get", "pods"]).await;
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 2).then_some(items)
    })
    .await;
    for pod in &pods {
        assert_eq!(
            pod["spec"]["schedulingGates"],
            json!([{"name": "keptn-prechecks-gate"}])
        );
        let a = &pod["metadata"]["annotations"];
        assert_eq!(a["keptn.sh/workload"], "podtato");
        assert_eq!(a["keptn.sh/app"], "podtato");
        assert_eq!(a["keptn.sh/version"], "0.1.0");
        assert_eq!(a["keptn.sh/pre-deployment-tasks"], "check");
    }
    wait_for("STATUS SchedulingGated", || async {
        let table = k.ok(&["get", "pods", "--no-headers"], None).await;
        let lines: Vec<&str> = table.lines().collect();
        (lines.len() == 2 && lines.iter().all(|l| l.contains("SchedulingGated"))).then_some(())
    })
    .await;

    // The first pod pointed the KeptnWorkload at its ReplicaSet (B §1.3, A7).
    let kw = k.json(&["get", "keptnworkload", "podtato-podtato"]).await;
    assert_eq!(kw["spec"]["resourceReference"]["kind"], "ReplicaSet");
    assert_eq!(kw["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_not_enabled_and_job_pods_untouched() {
    let cluster = cluster().await;
    let _webhook = start_webhook(&cluster).await;
    let off = namespace(&cluster, "plain", false).await;
    off.ok(&["apply", "-f", "-"], Some(DEPLOYMENT)).await;
    let on = namespace(&cluster, "shop", true).await;
    on.ok(
        &["apply", "-f", "-"],
        Some(
            r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    metadata:
      annotations:
        keptn.sh/workload: migrate
        keptn.sh/version: "1"
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: busybox:1.36
"#,
        ),
    )
    .await;
    for (k, count) in [(&off, 2), (&on, 1)] {
        let pods = wait_for("pods", || async {
            let pods = k.json(&["get", "pods"]).await;
            let items = pods["items"].as_array().cloned().unwrap_or_default();
            (items.len() == count).then_some(items)
        })
        .await;
        for pod in pods {
            assert!(
                pod["spec"]
                    .get("schedulingGates")
                    .is_none_or(Value::is_null),
                "{}: {pod}",
                k.ns
            );
            assert!(
                pod["metadata"]["annotations"].get("keptn.sh/app").is_none(),
                "not stamped"
            );
        }
        assert!(k.names("keptnworkloads").await.is_empty(), "{}", k.ns);
        assert!(k.names("keptnappcreationrequests").await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dry_run_creates_nothing() {
    let cluster = cluster().await;
    let _webhook = start_webhook(&cluster).await;
    let k = namespace(&cluster, "shop", true).await;
    let out = k
        .ok(&["apply", "--dry-run=server", "-f", "-"], Some(DEPLOYMENT))
        .await;
    assert!(out.contains("podtato"), "{out}");
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: solo
  annotations: {keptn.sh/workload: solo}
spec:
  containers: [{name: c, image: nginx:1.27}]
"#;
    k.ok(&["apply", "--dry-run=server", "-f", "-"], Some(pod))
        .await;
    assert!(k.names("deployments").await.is_empty());
    assert!(k.names("keptnworkloads").await.is_empty());
    assert!(k.names("keptnappcreationrequests").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_workload_and_invalid_task_definition_rejected() {
    let cluster = cluster().await;
    let _webhook = start_webhook(&cluster).await;
    let k = namespace(&cluster, "shop", true).await;
    let bad = DEPLOYMENT.replace(
        "    keptn.sh/version: \"0.1.0\"\n",
        "    keptn.sh/container: sidecar\n",
    );
    let out = k.run(&["apply", "-f", "-"], Some(&bad)).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("denied the request")
            && stderr.contains("The container name 'sidecar' specified in keptn.sh/container"),
        "{stderr}"
    );
    let td = r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnTaskDefinition
metadata:
  name: check
spec:
  retries: 1
"#;
    let out = k.run(&["apply", "-f", "-"], Some(td)).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Forbidden! Either Container, Python, or Deno field must be defined"),
        "{stderr}"
    );
    let good = format!("{td}  deno:\n    inline:\n      code: console.log(1)\n");
    k.ok(&["apply", "-f", "-"], Some(&good)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_write_rejects_with_a_warning_event() {
    let cluster = cluster().await;
    let _webhook = start_webhook(&cluster).await;
    let k = namespace(&cluster, "shop", true).await;
    // The KeptnWorkload API disappears after the webhook became ready: its create fails.
    k.ok(
        &[
            "delete",
            "customresourcedefinition",
            "keptnworkloads.lifecycle.keptn.sh",
        ],
        None,
    )
    .await;
    let out = wait_for("a rejected apply", || async {
        let out = k.run(&["apply", "-f", "-"], Some(DEPLOYMENT)).await;
        (!out.status.success()).then_some(out)
    })
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not create KeptnWorkload shop/podtato-podtato"),
        "{stderr}"
    );
    let event = wait_for("a CreateWorkloadFailed event", || async {
        let events = k.json(&["get", "events"]).await;
        events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["reason"] == "CreateWorkloadFailed")
            .cloned()
    })
    .await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["involvedObject"]["kind"], "KeptnWorkload");
    assert_eq!(event["involvedObject"]["name"], "podtato-podtato");
    assert_eq!(event["reportingComponent"], "portcullis-webhook");
    let message = event["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Create Workload: could not create KeptnWorkload / Namespace: shop, Name: podtato-podtato, Version: 0.1.0"
        ),
        "{message}"
    );
}
