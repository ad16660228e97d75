//! Admission webhooks end to end (FIDELITY F14–F19): webhook configurations created through the
//! API, a real HTTPS webhook (axum behind tokio-rustls, certificate from a test CA) registered
//! through the emulator's service mapping, pods created with kube-rs and kubectl.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubesim::{Sim, SimConfig, SimHandle};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The webhook service every test registers: `hook` in namespace `webhooks`.
const SERVICE_HOST: &str = "hook.webhooks.svc";

type Behaviour = Arc<dyn Fn(&str, &Value) -> Value + Send + Sync>;

#[derive(Clone)]
struct ServerState {
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

/// An HTTPS webhook answering every review with `behaviour(path, review)` as its `response`.
struct Webhook {
    addr: SocketAddr,
    ca_bundle: String,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webhook {
    async fn start(behaviour: impl Fn(&str, &Value) -> Value + Send + Sync + 'static) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "webhook-test-ca");
        let ca_key = KeyPair::generate().unwrap();
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_params = CertificateParams::new(vec![SERVICE_HOST.to_string()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = ServerState {
            behaviour: Arc::new(behaviour),
            seen: seen.clone(),
        };
        let app = axum::Router::new().fallback(handle).with_state(state);
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            ca_bundle: STANDARD.encode(ca_pem),
            seen,
            task,
        }
    }

    fn requests(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r["request"].clone())
            .collect()
    }

    /// The paths called, in order.
    fn paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn handle(State(state): State<ServerState>, uri: Uri, body: Bytes) -> Response {
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state
        .seen
        .lock()
        .unwrap()
        .push((uri.path().to_string(), review.clone()));
    let response = (state.behaviour)(uri.path(), &review);
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Allows the request, adding the label `injected-by: webhook`.
fn inject_label(review: &Value) -> Value {
    let patch =
        json!([{"op": "add", "path": "/metadata/labels", "value": {"injected-by": "webhook"}}]);
    json!({
        "uid": review["request"]["uid"],
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": STANDARD.encode(patch.to_string()),
    })
}

/// A MutatingWebhookConfiguration for pod CREATE calling the `hook.webhooks` service.
fn configuration(
    name: &str,
    webhook: &Webhook,
    failure_policy: &str,
    side_effects: &str,
) -> MutatingWebhookConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": format!("{name}.example.com"),
            "admissionReviewVersions": ["v1"],
            "sideEffects": side_effects,
            "failurePolicy": failure_policy,
            "timeoutSeconds": 5,
            "clientConfig": {
                "service": {"namespace": "webhooks", "name": "hook", "path": "/mutate"},
                "caBundle": webhook.ca_bundle,
            },
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        }],
    }))
    .unwrap()
}

fn pod(metadata: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }))
    .unwrap()
}

async fn sim_with(webhook: &Webhook) -> SimHandle {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.register_service("webhooks", "hook", webhook.addr);
    sim
}

async fn register(sim: &SimHandle, config: MutatingWebhookConfiguration) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(sim.client().unwrap());
    api.create(&PostParams::default(), &config).await.unwrap();
}

fn api_error(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("expected a Status error, got {other:?}"),
    }
}

#[tokio::test]
async fn f15_f16_mutating_webhook_patch_is_applied_to_the_created_pod() {
    let webhook = Webhook::start(|_, r| inject_label(r)).await;
    let sim = sim_with(&webhook).await;
    register(&sim, configuration("inject", &webhook, "Fail", "None")).await;
    let pods: Api<Pod> = Api::namespaced(sim.client().unwrap(), "default");
    let created = pods
        .create(&PostParams::default(), &pod(json!({"name": "web"})))
        .await
        .unwrap();
    let labels = created.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("injected-by").map(String::as_str),
        Some("webhook")
    );
    let stored = pods.get("web").await.unwrap();
    assert_eq!(
        stored.metadata.labels, created.metadata.labels,
        "the patched object is what is stored"
    );

    let requests = webhook.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req["operation"], "CREATE");
    assert_eq!(req["name"], "web");
    assert_eq!(req["namespace"], "default");
    assert_eq!(
        req["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(
        req["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert_eq!(req["dryRun"], false);
    // F16: the object is already defaulted when the webhook sees it.
    assert_eq!(req["object"]["spec"]["schedulerName"], "default-scheduler");
    assert_eq!(req["object"]["spec"]["restartPolicy"], "Always");
}

#[tokio::test]
async fn f16_generate_name_create_reaches_the_webhook_with_an_empty_name() {
    let webhook = Webhook::start(|_, r| inject_label(r)).await;
    let sim = sim_with(&webhook).await;
    register(&sim, configuration("inject", &webhook, "Fail", "None")).await;
    let pods: Api<Pod> = Api::namespaced(sim.client().unwrap(), "default");
    let created = pods
        .create(
            &PostParams::default(),
            &pod(json!({"generateName": "web-"})),
        )
        .await
        .unwrap();
    let name = created.metadata.name.clone().unwrap_or_default();
    assert!(
        name.starts_with("web-") && name.len() == "web-".len() + 5,
        "generated name {name}"
    );
    let req = &webhook.requests()[0];
    assert_eq!(
        req["name"].as_str().unwrap_or(""),
        "",
        "request.name is empty for generateName"
    );
    assert!(
        req["object"]["metadata"]
            .get("name")
            .is_none_or(|n| n.as_str() == Some(""))
    );
    assert_eq!(req["object"]["metadata"]["generateName"], "web-");
}

#[tokio::test]
async fn f17_unreachable_webhook_rejects_with_fail_and_is_skipped_with_ignore() {
    let webhook = Webhook::start(|_, r| inject_label(r)).await;
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    // A registered service whose address nothing listens on: a socket bound but never
    // listening holds the port for the test (a port released again could be taken by a
    // listener of another test), and a connection to it is refused.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let closed = held.local_addr().unwrap();
    sim.register_service("webhooks", "hook", closed);
    register(&sim, configuration("down", &webhook, "Fail", "None")).await;
    let pods: Api<Pod> = Api::namespaced(sim.client().unwrap(), "default");
    let err = pods
        .create(&PostParams::default(), &pod(json!({"name": "web"})))
        .await
        .unwrap_err();
    let (code, message) = api_error(err);
    assert_eq!(code, 500);
    assert_eq!(
        message,
        format!(
            "Internal error occurred: failed calling webhook \"down.example.com\": failed to call webhook: \
             Post \"https://{SERVICE_HOST}:443/mutate?timeout=5s\": dial tcp {closed}: connect: connection refused"
        )
    );
    assert!(
        pods.get_opt("web").await.unwrap().is_none(),
        "nothing is stored"
    );

    register(
        &sim,
        configuration("down-ignored", &webhook, "Ignore", "None"),
    )
    .await;
    let configs: Api<MutatingWebhookConfiguration> = Api::all(sim.client().unwrap());
    configs.delete("down", &Default::default()).await.unwrap();
    let created = pods
        .create(&PostParams::default(), &pod(json!({"name": "web"})))
        .await
        .unwrap();
    let labels = created.metadata.labels.unwrap_or_default();
    assert!(!labels.contains_key("injected-by"), "proceeds unmutated");
    drop(held);
}

/// The v1 API refuses `sideEffects: Some` (and `Unknown`) when the configuration is created, so
/// the 400 "does not support dry run" path cannot be reached through it (the unit tests of
/// `admission` cover it); a dry run reaches a `NoneOnDryRun` webhook with `dryRun: true`.
#[tokio::test]
async fn f18_side_effects_some_is_refused_and_dry_run_reaches_none_on_dry_run() {
    let webhook = Webhook::start(|_, r| inject_label(r)).await;
    let sim = sim_with(&webhook).await;
    let configs: Api<MutatingWebhookConfiguration> = Api::all(sim.client().unwrap());
    for side_effects in ["Some", "Unknown"] {
        let err = configs
            .create(
                &PostParams::default(),
                &configuration("effects", &webhook, "Fail", side_effects),
            )
            .await
            .unwrap_err();
        let (code, message) = api_error(err);
        assert_eq!(code, 422);
        assert!(
            message.contains("webhooks[0].sideEffects: Unsupported value"),
            "{message}"
        );
    }

    register(&sim, configuration("dry", &webhook, "Fail", "NoneOnDryRun")).await;
    let pods: Api<Pod> = Api::namespaced(sim.client().unwrap(), "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let created = pods
        .create(&dry, &pod(json!({"name": "web"})))
        .await
        .unwrap();
    let labels = created.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("injected-by").map(String::as_str),
        Some("webhook")
    );
    assert_eq!(webhook.requests()[0]["dryRun"], true);
    assert!(
        pods.get_opt("web").await.unwrap().is_none(),
        "dry run stores nothing"
    );
}

#[tokio::test]
async fn f16_kubectl_shows_the_denial_message() {
    let webhook = Webhook::start(|_, review| {
        json!({
            "uid": review["request"]["uid"],
            "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": "pods need an owner label"},
        })
    })
    .await;
    let sim = sim_with(&webhook).await;
    register(&sim, configuration("deny", &webhook, "Fail", "None")).await;
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: nginx\n";
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .args(["create", "--validate=false", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(manifest.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "Error from server (Forbidden): error when creating \"STDIN\": admission webhook \"deny.example.com\" \
             denied the request: pods need an owner label"
        ),
        "{stderr}"
    );
}

/// Allows the request, appending the path's last segment to the `order` label of the object.
fn append_order(path: &str, review: &Value) -> Value {
    let object = &review["request"]["object"];
    let current = object["metadata"]["labels"]["order"].as_str().unwrap_or("");
    let next = format!("{current}{}", path.trim_start_matches('/'));
    let op = if object["metadata"]["labels"].is_object() {
        json!({"op": "add", "path": "/metadata/labels/order", "value": next})
    } else {
        json!({"op": "add", "path": "/metadata/labels", "value": {"order": next}})
    };
    json!({
        "uid": review["request"]["uid"],
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": STANDARD.encode(json!([op]).to_string()),
    })
}

/// One webhook entry on pod CREATE calling `hook.webhooks` at `path`.
fn entry(name: &str, path: &str, webhook: &Webhook) -> Value {
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {
            "service": {"namespace": "webhooks", "name": "hook", "path": path},
            "caBundle": webhook.ca_bundle,
        },
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
    })
}

async fn create_mutating(sim: &SimHandle, name: &str, webhooks: Vec<Value>) {
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": webhooks,
    });
    register(sim, serde_json::from_value(config).unwrap()).await;
}

fn order_label(pod: &Pod) -> String {
    pod.metadata
        .labels
        .clone()
        .unwrap_or_default()
        .get("order")
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn f19_configurations_run_sorted_by_name_and_if_needed_is_reinvoked() {
    let webhook = Webhook::start(append_order).await;
    let sim = sim_with(&webhook).await;
    // Created in reverse order: dispatch follows the names, not creation.
    create_mutating(
        &sim,
        "zz-last",
        vec![entry("z.example.com", "/z", &webhook)],
    )
    .await;
    let reinvoked = {
        let mut e = entry("a2.example.com", "/a2", &webhook);
        e["reinvocationPolicy"] = json!("IfNeeded");
        e
    };
    create_mutating(
        &sim,
        "aa-first",
        vec![entry("a1.example.com", "/a1", &webhook), reinvoked],
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(sim.client().unwrap(), "default");
    let created = pods
        .create(&PostParams::default(), &pod(json!({"name": "web"})))
        .await
        .unwrap();
    // a2 (IfNeeded) ran before z changed the object, so it runs once more, seeing z's change.
    assert_eq!(webhook.paths(), vec!["/a1", "/a2", "/z", "/a2"]);
    assert_eq!(order_label(&created), "a1a2za2");
    assert_eq!(order_label(&pods.get("web").await.unwrap()), "a1a2za2");
}

#[tokio::test]
async fn f14_namespace_selector_uses_the_namespace_labels_and_a_namespace_its_own() {
    use k8s_openapi::api::core::v1::Namespace;
    let webhook = Webhook::start(append_order).await;
    let sim = sim_with(&webhook).await;
    let mut pods_hook = entry("pods.example.com", "/pods", &webhook);
    pods_hook["namespaceSelector"] = json!({"matchLabels": {"inject": "yes"}});
    let mut ns_hook = entry("ns.example.com", "/ns", &webhook);
    ns_hook["namespaceSelector"] =
        json!({"matchExpressions": [{"key": "inject", "operator": "In", "values": ["yes"]}]});
    ns_hook["rules"][0]["resources"] = json!(["namespaces"]);
    create_mutating(&sim, "selective", vec![pods_hook, ns_hook]).await;

    let client = sim.client().unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (name, inject) in [("plain", "no"), ("injected", "yes")] {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"inject": inject}}});
        namespaces
            .create(&PostParams::default(), &serde_json::from_value(ns).unwrap())
            .await
            .unwrap();
    }
    // Only the namespace labelled inject=yes reached the namespace webhook.
    assert_eq!(webhook.paths(), vec!["/ns"]);
    assert_eq!(
        webhook.requests()[0]["object"]["metadata"]["name"],
        "injected"
    );

    let plain: Api<Pod> = Api::namespaced(client.clone(), "plain");
    let created = plain
        .create(&PostParams::default(), &pod(json!({"name": "web"})))
        .await
        .unwrap();
    assert_eq!(order_label(&created), "");
    let injected: Api<Pod> = Api::namespaced(client, "injected");
    let created = injected
        .create(&PostParams::default(), &pod(json!({"name": "web"})))
        .await
        .unwrap();
    assert_eq!(order_label(&created), "pods");
    assert_eq!(webhook.paths(), vec!["/ns", "/pods"]);
}

#[tokio::test]
async fn f19_validating_webhook_sees_the_mutated_object_and_its_denial_stands() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let webhook = Webhook::start(|path, review| match path {
        "/validate" => {
            let order = review["request"]["object"]["metadata"]["labels"]["order"]
                .as_str()
                .unwrap_or("");
            json!({
                "uid": review["request"]["uid"],
                "allowed": order == "mutate",
                "status": {"message": format!("order label is {order:?}")},
            })
        }
        _ => append_order(path, review),
    })
    .await;
    let sim = sim_with(&webhook).await;
    let client = sim.client().unwrap();
    let mut validate = entry("check.example.com", "/validate", &webhook);
    validate["rules"][0]["operations"] = json!(["CREATE", "UPDATE"]);
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "check"},
        "webhooks": [validate],
    });
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    validating
        .create(
            &PostParams::default(),
            &serde_json::from_value(config).unwrap(),
        )
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client, "default");
    let err = pods
        .create(&PostParams::default(), &pod(json!({"name": "early"})))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(err),
        (
            400,
            "admission webhook \"check.example.com\" denied the request: order label is \"\""
                .to_string()
        )
    );
    assert!(pods.get_opt("early").await.unwrap().is_none());

    create_mutating(
        &sim,
        "mutate",
        vec![entry("mutate.example.com", "/mutate", &webhook)],
    )
    .await;
    let created = pods
        .create(&PostParams::default(), &pod(json!({"name": "late"})))
        .await
        .unwrap();
    assert_eq!(order_label(&created), "mutate");
    let validated = webhook.requests().last().cloned().unwrap();
    assert_eq!(validated["object"]["metadata"]["name"], "late");
    assert_eq!(validated["object"]["metadata"]["labels"]["order"], "mutate");
}

/// Caps a Scale at 3 replicas on `/scale`; allows everything else unchanged.
fn cap_scale(path: &str, review: &Value) -> Value {
    let uid = review["request"]["uid"].clone();
    let replicas = review["request"]["object"]["spec"]["replicas"]
        .as_i64()
        .unwrap_or(0);
    if path != "/scale" || replicas <= 3 {
        return json!({"uid": uid, "allowed": true});
    }
    let patch = json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]);
    json!({
        "uid": uid,
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": STANDARD.encode(patch.to_string()),
    })
}

fn deployment_entry(name: &str, path: &str, resource: &str, webhook: &Webhook) -> Value {
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {
            "service": {"namespace": "webhooks", "name": "hook", "path": path},
            "caBundle": webhook.ca_bundle,
        },
        "rules": [{"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": [resource]}],
    })
}

/// F14/F16: a write through `/scale` is admitted as the `scale` subresource (an
/// `autoscaling/v1` Scale), so a rule for `deployments` does not see it and a rule for
/// `deployments/scale` does; the Scale a webhook mutates is what gets stored.
#[tokio::test]
async fn f14_f16_scale_writes_are_admitted_as_the_scale_subresource() {
    let webhook = Webhook::start(cap_scale).await;
    let sim = sim_with(&webhook).await;
    create_mutating(
        &sim,
        "deployments",
        vec![
            deployment_entry("main.example.com", "/main", "deployments", &webhook),
            deployment_entry("scale.example.com", "/scale", "deployments/scale", &webhook),
        ],
    )
    .await;
    let api: Api<Deployment> = Api::namespaced(sim.client().unwrap(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
            }
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    assert!(webhook.paths().is_empty(), "rules are for UPDATE only");

    let scaled = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(
        webhook.paths(),
        vec!["/scale"],
        "the deployments rule is not called"
    );
    let request = &webhook.requests()[0];
    assert_eq!(request["subResource"], "scale");
    assert_eq!(
        request["kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert_eq!(
        request["resource"],
        json!({"group": "apps", "version": "v1", "resource": "deployments"})
    );
    assert_eq!(request["object"]["kind"], "Scale");
    assert_eq!(request["object"]["spec"]["replicas"], 5);
    assert_eq!(request["oldObject"]["spec"]["replicas"], 1);
    assert_eq!(request["object"]["status"]["selector"], "app=web");
    // The webhook capped the Scale: the stored Deployment has its replicas.
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(3));
    let stored = api.get("web").await.unwrap();
    assert_eq!(stored.spec.and_then(|s| s.replicas), Some(3));

    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
    )
    .await
    .unwrap();
    assert_eq!(webhook.paths(), vec!["/scale", "/main"]);
    assert_eq!(webhook.requests()[1]["subResource"], Value::Null);
    assert_eq!(webhook.requests()[1]["kind"]["kind"], "Deployment");
}

/// With RBAC on, the AdmissionReview's `userInfo` is the authenticated user: a ServiceAccount's
/// token gives its name and three groups, the admin kubeconfig `kubernetes-admin`.
#[tokio::test]
async fn admission_user_info_is_the_authenticated_user() {
    let webhook = Webhook::start(|_, r| inject_label(r)).await;
    let sim = Sim::start(SimConfig {
        rbac: true,
        ..Default::default()
    })
    .await
    .unwrap();
    sim.register_service("webhooks", "hook", webhook.addr);
    register(&sim, configuration("inject", &webhook, "Fail", "None")).await;
    let admin = sim.client().unwrap();
    let role: k8s_openapi::api::rbac::v1::ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "pod-creator"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "app-pods", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-creator"},
        "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "default"}]
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let kc = kube::config::Kubeconfig::read_from(
        sim.service_account_kubeconfig("default", "app").unwrap(),
    )
    .unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let sa = kube::Client::try_from(config).unwrap();
    Api::<Pod>::namespaced(sa, "default")
        .create(&PostParams::default(), &pod(json!({"name": "by-sa"})))
        .await
        .unwrap();
    Api::<Pod>::namespaced(admin, "default")
        .create(&PostParams::default(), &pod(json!({"name": "by-admin"})))
        .await
        .unwrap();
    let requests = webhook.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0]["userInfo"],
        json!({"username": "system:serviceaccount:default:app",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]})
    );
    assert_eq!(requests[1]["userInfo"]["username"], "kubernetes-admin");
    assert_eq!(
        requests[1]["userInfo"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
}
