//! Webhook calls against a real HTTPS server per test (axum behind tokio-rustls, certificates
//! from a test CA made with rcgen). Test names carry the FIDELITY item they prove.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::*;

// ---------------------------------------------------------------- certificates

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// `caBundle` as stored: base64 of the PEM.
    fn bundle(&self) -> String {
        STANDARD.encode(&self.pem)
    }

    /// A server certificate with these DNS SANs; its CN is the expected name, which must not matter.
    fn leaf(&self, sans: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "svc.ns.svc");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key_der)
    }
}

// ---------------------------------------------------------------- webhook server

/// What the test webhook answers.
enum Answer {
    /// 200 with an `AdmissionReview` v1 around this `response`.
    Review(Value),
    /// Any status, content type and body.
    Raw(u16, &'static str, String),
    /// Answers (allowing) only after this long.
    Slow(Duration),
}

type Behaviour = Arc<dyn Fn(&str, &Value) -> Answer + Send + Sync>;

#[derive(Clone)]
struct ServerState {
    behaviour: Behaviour,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

struct WebhookServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookServer {
    /// Starts a server whose certificate, signed by `ca`, carries `sans`.
    async fn start(
        ca: &Ca,
        sans: &[&str],
        behaviour: impl Fn(&str, &Value) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let (cert, key) = ca.leaf(sans);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
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
        Self { addr, seen, task }
    }

    /// `(path?query, review)` of every request received so far.
    fn seen(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .map(|(p, _)| p.split('?').next().unwrap_or("").to_string())
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
            // A client that rejects our certificate aborts the handshake: keep serving others.
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
    let target = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    state.seen.lock().unwrap().push((target, review.clone()));
    match (state.behaviour)(uri.path(), &review) {
        Answer::Review(response) => review_response(response),
        Answer::Raw(code, content_type, body) => (
            StatusCode::from_u16(code).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Answer::Slow(delay) => {
            tokio::time::sleep(delay).await;
            review_response(json!({"uid": review["request"]["uid"], "allowed": true}))
        }
    }
}

fn review_response(response: Value) -> Response {
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn allow(review: &Value) -> Answer {
    Answer::Review(json!({"uid": review["request"]["uid"], "allowed": true}))
}

fn patch(review: &Value, ops: Value) -> Answer {
    Answer::Review(json!({
        "uid": review["request"]["uid"],
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": STANDARD.encode(ops.to_string()),
    }))
}

fn deny(review: &Value, status: Value) -> Answer {
    Answer::Review(json!({"uid": review["request"]["uid"], "allowed": false, "status": status}))
}

/// Adds `metadata.labels[key] = value` (the object carries labels in every test).
fn set_label(review: &Value, key: &str, value: &str) -> Answer {
    patch(
        review,
        json!([{"op": "add", "path": format!("/metadata/labels/{key}"), "value": value}]),
    )
}

// ---------------------------------------------------------------- emulator side

struct Services(HashMap<(String, String, u16), SocketAddr>);

impl ServiceResolver for Services {
    fn resolve(&self, namespace: &str, name: &str, port: u16) -> Option<SocketAddr> {
        self.0
            .get(&(namespace.to_string(), name.to_string(), port))
            .copied()
    }
}

/// Admission with service `svc` in namespace `ns`, port 443, served at `addr`.
fn admission_to(addr: SocketAddr) -> Admission {
    let map = HashMap::from([(("ns".to_string(), "svc".to_string(), 443), addr)]);
    Admission::new(Arc::new(Services(map)))
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

fn configuration(kind: &str, name: &str, webhooks: Vec<Value>) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": webhooks,
    })
}

fn mutating(name: &str, webhooks: Vec<Value>) -> Value {
    configuration("MutatingWebhookConfiguration", name, webhooks)
}

fn validating(name: &str, webhooks: Vec<Value>) -> Value {
    configuration("ValidatingWebhookConfiguration", name, webhooks)
}

/// A webhook on pod CREATE/UPDATE at `https://svc.ns.svc:443<path>`, trusting `ca`; other
/// fields are left absent to exercise the defaults.
fn hook(name: &str, path: &str, ca: &Ca) -> Value {
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"service": {"namespace": "ns", "name": "svc", "path": path}, "caBundle": ca.bundle()},
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
    })
}

fn with(mut webhook: Value, field: &str, value: Value) -> Value {
    webhook[field] = value;
    webhook
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "restartPolicy": "Always"},
    })
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pod_create(name: &str) -> AdmissionAttributes {
    AdmissionAttributes {
        operation: Operation::Create,
        kind: GroupVersionKind {
            group: "".into(),
            version: "v1".into(),
            kind: "Pod".into(),
        },
        resource: GroupVersionResource {
            group: "".into(),
            version: "v1".into(),
            resource: "pods".into(),
        },
        sub_resource: String::new(),
        name: name.into(),
        namespace: "default".into(),
        namespace_labels: Some(labels(&[("kubernetes.io/metadata.name", "default")])),
        object: Some(pod(name)),
        old_object: None,
        dry_run: false,
        options: Some(
            json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl"}),
        ),
        user_info: json!({"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}),
    }
}

fn label(object: &Option<Value>, key: &str) -> Option<String> {
    object
        .as_ref()?
        .pointer(&format!("/metadata/labels/{key}"))?
        .as_str()
        .map(str::to_string)
}

// ---------------------------------------------------------------- F16 the review, F15 the call

#[tokio::test]
async fn f16_review_carries_the_attributes_and_the_json_patch_is_applied() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, review| {
        let mut answer = set_label(review, "injected", "yes");
        if let Answer::Review(r) = &mut answer {
            r["warnings"] = json!(["first warning", "second warning"]);
        }
        answer
    })
    .await;
    let admission = admission_to(server.addr);
    let attrs = pod_create("web-0");
    let out = admission
        .mutate(
            &[mutating(
                "inject",
                vec![hook("inject.example.com", "/mutate", &ca)],
            )],
            &attrs,
        )
        .await;
    let out = out.unwrap();
    assert_eq!(label(&out.object, "injected").as_deref(), Some("yes"));
    assert_eq!(label(&out.object, "app").as_deref(), Some("web"));
    assert_eq!(out.warnings, vec!["first warning", "second warning"]);

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let (target, review) = &seen[0];
    assert_eq!(
        target, "/mutate?timeout=10s",
        "default timeoutSeconds is 10"
    );
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let req = &review["request"];
    assert_eq!(req["uid"].as_str().unwrap().len(), 36);
    assert_eq!(
        req["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(
        req["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert_eq!(req["requestKind"], req["kind"]);
    assert_eq!(req["requestResource"], req["resource"]);
    assert!(req.get("subResource").is_none() && req.get("requestSubResource").is_none());
    assert_eq!(req["name"], "web-0");
    assert_eq!(req["namespace"], "default");
    assert_eq!(req["operation"], "CREATE");
    assert_eq!(req["userInfo"], attrs.user_info);
    assert_eq!(req["object"], pod("web-0"));
    assert_eq!(req["oldObject"], Value::Null);
    assert_eq!(req["dryRun"], false);
    assert_eq!(req["options"], attrs.options.clone().unwrap());
}

#[tokio::test]
async fn f16_each_call_gets_a_fresh_uid() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| allow(r)).await;
    let admission = admission_to(server.addr);
    let configs = [mutating("m", vec![hook("m.example.com", "/m", &ca)])];
    admission.mutate(&configs, &pod_create("a")).await.unwrap();
    admission.mutate(&configs, &pod_create("b")).await.unwrap();
    let seen = server.seen();
    assert_ne!(seen[0].1["request"]["uid"], seen[1].1["request"]["uid"]);
}

#[tokio::test]
async fn f16_generate_name_create_reaches_the_webhook_without_a_name() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| allow(r)).await;
    let admission = admission_to(server.addr);
    let mut attrs = pod_create("");
    let mut object = pod("");
    object["metadata"].as_object_mut().unwrap().remove("name");
    object["metadata"]["generateName"] = json!("web-");
    attrs.object = Some(object.clone());
    admission
        .mutate(
            &[mutating("m", vec![hook("m.example.com", "/m", &ca)])],
            &attrs,
        )
        .await
        .unwrap();
    let req = server.seen()[0].1["request"].clone();
    // Go omits an empty name (`omitempty`): clients read it as "".
    assert!(
        req.get("name").is_none(),
        "request.name must be empty, got {:?}",
        req.get("name")
    );
    assert_eq!(req["object"], object);
    assert_eq!(req["object"]["metadata"]["generateName"], "web-");
    assert!(req["object"]["metadata"].get("name").is_none());
}

#[tokio::test]
async fn f16_update_of_a_subresource_sends_old_object_and_subresource() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| allow(r)).await;
    let admission = admission_to(server.addr);
    let status_rule = json!([{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/status"]}]);
    let configs = [mutating(
        "m",
        vec![with(hook("m.example.com", "/m", &ca), "rules", status_rule)],
    )];
    let mut attrs = pod_create("web-0");
    attrs.operation = Operation::Update;
    attrs.old_object = Some(pod("web-0"));
    attrs.options = Some(json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}));
    // The rule names only pods/status: the main resource is not selected.
    admission.mutate(&configs, &attrs).await.unwrap();
    assert!(server.seen().is_empty());
    attrs.sub_resource = "status".into();
    admission.mutate(&configs, &attrs).await.unwrap();
    let req = server.seen()[0].1["request"].clone();
    assert_eq!(req["operation"], "UPDATE");
    assert_eq!(req["subResource"], "status");
    assert_eq!(req["requestSubResource"], "status");
    assert_eq!(req["oldObject"], pod("web-0"));
    assert_eq!(req["options"]["kind"], "UpdateOptions");
}

#[tokio::test]
async fn f16_denial_message_and_code_come_from_the_response_status() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |path, r| match path {
        "/forbidden" => deny(
            r,
            json!({"code": 403, "reason": "Forbidden", "message": "pods must be signed"}),
        ),
        "/no-code" => deny(r, json!({"message": "image not allowed"})),
        "/reason-only" => deny(r, json!({"reason": "NotSigned"})),
        _ => Answer::Review(json!({"uid": r["request"]["uid"], "allowed": false})),
    })
    .await;
    let admission = admission_to(server.addr);
    let attrs = pod_create("web-0");
    let run = |path: &'static str| {
        let configs = vec![mutating("m", vec![hook("deny.example.com", path, &ca)])];
        let admission = &admission;
        let attrs = &attrs;
        async move { admission.mutate(&configs, attrs).await.unwrap_err() }
    };
    let e = run("/forbidden").await;
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "admission webhook \"deny.example.com\" denied the request: pods must be signed"
    );
    let e = run("/no-code").await;
    assert_eq!(e.code, 400, "a denial without a code is 400");
    assert_eq!(
        e.message,
        "admission webhook \"deny.example.com\" denied the request: image not allowed"
    );
    let e = run("/reason-only").await;
    assert_eq!(
        e.message,
        "admission webhook \"deny.example.com\" denied the request: NotSigned"
    );
    let e = run("/bare").await;
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "admission webhook \"deny.example.com\" denied the request without explanation"
    );
    // A denial stands under failurePolicy Ignore too.
    let ignore = with(
        hook("deny.example.com", "/forbidden", &ca),
        "failurePolicy",
        json!("Ignore"),
    );
    let e = admission
        .mutate(&[mutating("m", vec![ignore])], &attrs)
        .await
        .unwrap_err();
    assert_eq!(e.code, 403);
}

#[tokio::test]
async fn f15_url_client_config_is_called_with_the_ca_bundle() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["localhost"], |_, r| set_label(r, "via", "url")).await;
    let admission = admission_to(closed_port().await);
    let mut webhook = hook("url.example.com", "/unused", &ca);
    webhook["clientConfig"] = json!({
        "url": format!("https://localhost:{}/by-url?ignored=1", server.addr.port()),
        "caBundle": ca.bundle(),
    });
    let out = admission
        .mutate(&[mutating("m", vec![webhook])], &pod_create("p"))
        .await
        .unwrap();
    assert_eq!(label(&out.object, "via").as_deref(), Some("url"));
    assert_eq!(
        server.seen()[0].0,
        "/by-url?timeout=10s",
        "only scheme, host and path of the URL are used"
    );
}

// ---------------------------------------------------------------- F17 failure policy

/// Runs one webhook with `failurePolicy: Fail` and with `Ignore`; returns the Fail error and
/// checks that Ignore proceeds with the object unchanged.
async fn fail_and_ignore(admission: &Admission, webhook: Value) -> ApiError {
    let attrs = pod_create("web-0");
    let fail = with(webhook.clone(), "failurePolicy", json!("Fail"));
    let err = admission
        .mutate(&[mutating("m", vec![fail])], &attrs)
        .await
        .unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    let ignore = with(webhook.clone(), "failurePolicy", json!("Ignore"));
    let out = admission
        .mutate(&[mutating("m", vec![ignore])], &attrs)
        .await
        .unwrap();
    assert_eq!(out.object, attrs.object, "Ignore proceeds unmutated");
    // Absent failurePolicy means Fail.
    let mut default = webhook;
    default.as_object_mut().unwrap().remove("failurePolicy");
    let again = admission
        .mutate(&[mutating("m", vec![default])], &attrs)
        .await
        .unwrap_err();
    assert_eq!(again.code, 500);
    err
}

#[tokio::test]
async fn f17_unreachable_with_fail_is_500_failed_calling_webhook_and_ignore_proceeds() {
    let ca = Ca::new("ca");
    let addr = closed_port().await;
    let err = fail_and_ignore(&admission_to(addr), hook("down.example.com", "/m", &ca)).await;
    assert_eq!(
        err.message,
        format!(
            "Internal error occurred: failed calling webhook \"down.example.com\": failed to call webhook: \
             Post \"https://svc.ns.svc:443/m?timeout=10s\": dial tcp {addr}: connect: connection refused"
        )
    );
    assert_eq!(
        err.details.unwrap()["causes"][0]["message"],
        err.message.trim_start_matches("Internal error occurred: ")
    );
}

#[tokio::test]
async fn f17_missing_service_fails_per_policy() {
    let ca = Ca::new("ca");
    let admission = Admission::new(Arc::new(Services(HashMap::new())));
    let err = fail_and_ignore(&admission, hook("nosvc.example.com", "/m", &ca)).await;
    assert_eq!(
        err.message,
        "Internal error occurred: failed calling webhook \"nosvc.example.com\": failed to call webhook: \
         Post \"https://svc.ns.svc:443/m?timeout=10s\": service \"svc\" not found"
    );
}

#[tokio::test]
async fn f17_timeout_fails_per_policy_with_context_deadline_exceeded() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, _| {
        Answer::Slow(Duration::from_secs(20))
    })
    .await;
    let webhook = with(
        hook("slow.example.com", "/slow", &ca),
        "timeoutSeconds",
        json!(1),
    );
    let started = std::time::Instant::now();
    let err = fail_and_ignore(&admission_to(server.addr), webhook).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "each call gives up after timeoutSeconds"
    );
    assert_eq!(
        err.message,
        "Internal error occurred: failed calling webhook \"slow.example.com\": failed to call webhook: \
         Post \"https://svc.ns.svc:443/slow?timeout=1s\": context deadline exceeded"
    );
    assert_eq!(server.seen()[0].0, "/slow?timeout=1s");
}

#[tokio::test]
async fn f17_certificate_from_another_ca_fails_per_policy() {
    let ca = Ca::new("ca");
    let other = Ca::new("other");
    let server = WebhookServer::start(&other, &["svc.ns.svc"], |_, r| set_label(r, "x", "y")).await;
    let err = fail_and_ignore(
        &admission_to(server.addr),
        hook("tls.example.com", "/m", &ca),
    )
    .await;
    assert_eq!(
        err.message,
        "Internal error occurred: failed calling webhook \"tls.example.com\": failed to call webhook: \
         Post \"https://svc.ns.svc:443/m?timeout=10s\": tls: failed to verify certificate: \
         x509: certificate signed by unknown authority"
    );
    assert!(
        server.seen().is_empty(),
        "no request goes to an unverified server"
    );
}

#[tokio::test]
async fn f17_certificate_without_the_service_san_fails_per_policy() {
    let ca = Ca::new("ca");
    // The CN is svc.ns.svc, which must be ignored: only SANs count.
    let server = WebhookServer::start(&ca, &["other.ns.svc", "svc.ns"], |_, r| {
        set_label(r, "x", "y")
    })
    .await;
    let err = fail_and_ignore(
        &admission_to(server.addr),
        hook("san.example.com", "/m", &ca),
    )
    .await;
    assert_eq!(
        err.message,
        "Internal error occurred: failed calling webhook \"san.example.com\": failed to call webhook: \
         Post \"https://svc.ns.svc:443/m?timeout=10s\": tls: failed to verify certificate: \
         x509: certificate is valid for other.ns.svc, svc.ns, not svc.ns.svc"
    );
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn f17_response_without_the_uid_fails_per_policy() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, _| {
        Answer::Review(json!({"allowed": true}))
    })
    .await;
    let err = fail_and_ignore(
        &admission_to(server.addr),
        hook("uid.example.com", "/m", &ca),
    )
    .await;
    let uid = server.seen()[0].1["request"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        err.message,
        format!(
            "Internal error occurred: failed calling webhook \"uid.example.com\": \
             received invalid webhook response: expected response.uid=\"{uid}\", got \"\""
        )
    );
}

#[tokio::test]
async fn f17_non_200_and_malformed_responses_fail_per_policy() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |path, r| match path {
        "/500" => Answer::Raw(500, "text/plain", "boom\n".into()),
        "/404" => Answer::Raw(404, "text/plain", "nope".into()),
        "/status" => Answer::Raw(
            503,
            "application/json",
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "webhook is overloaded"})
                .to_string(),
        ),
        "/garbage" => Answer::Raw(200, "application/json", "this is not json".into()),
        "/no-kind" => Answer::Raw(
            200,
            "application/json",
            json!({"response": {"uid": r["request"]["uid"], "allowed": true}}).to_string(),
        ),
        _ => unreachable!(),
    })
    .await;
    let admission = admission_to(server.addr);
    let prefix = "Internal error occurred: failed calling webhook \"bad.example.com\": ";
    let e = fail_and_ignore(&admission, hook("bad.example.com", "/500", &ca)).await;
    assert_eq!(
        e.message,
        format!(
            "{prefix}failed to call webhook: an error on the server (\"boom\") has prevented the request from succeeding"
        )
    );
    let e = fail_and_ignore(&admission, hook("bad.example.com", "/404", &ca)).await;
    assert_eq!(
        e.message,
        format!("{prefix}failed to call webhook: the server could not find the requested resource")
    );
    let e = fail_and_ignore(&admission, hook("bad.example.com", "/status", &ca)).await;
    assert_eq!(
        e.message,
        format!("{prefix}failed to call webhook: webhook is overloaded")
    );
    let e = fail_and_ignore(&admission, hook("bad.example.com", "/garbage", &ca)).await;
    assert!(
        e.message.starts_with(&format!(
            "{prefix}failed to call webhook: couldn't get version/kind; json parse error: "
        )),
        "{}",
        e.message
    );
    let e = fail_and_ignore(&admission, hook("bad.example.com", "/no-kind", &ca)).await;
    assert_eq!(
        e.message,
        format!(
            "{prefix}received invalid webhook response: expected webhook response of \
             admission.k8s.io/v1, Kind=AdmissionReview, got /, Kind="
        )
    );
}

#[tokio::test]
async fn f17_undecodable_patch_fails_per_policy() {
    let ca = Ca::new("ca");
    let server =
        WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| patch(r, json!({"op": "add"}))).await;
    let e = fail_and_ignore(
        &admission_to(server.addr),
        hook("patch.example.com", "/m", &ca),
    )
    .await;
    assert!(
        e.message.starts_with(
            "Internal error occurred: failed calling webhook \"patch.example.com\": \
             received undecodable patch in webhook response: "
        ),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn f17_patch_that_does_not_apply_is_500_whatever_the_policy() {
    // A real server treats a decodable patch that fails to apply as its own internal error,
    // not as a failure to call the webhook, so failurePolicy Ignore does not let it through.
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| {
        patch(
            r,
            json!([{"op": "replace", "path": "/spec/nodeName/missing", "value": "x"}]),
        )
    })
    .await;
    let admission = admission_to(server.addr);
    for policy in ["Fail", "Ignore"] {
        let webhook = with(
            hook("patch.example.com", "/m", &ca),
            "failurePolicy",
            json!(policy),
        );
        let e = admission
            .mutate(&[mutating("m", vec![webhook])], &pod_create("p"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.reason.as_str()),
            (500, "InternalError"),
            "{policy}"
        );
        assert!(
            e.message.starts_with("Internal error occurred: "),
            "{}",
            e.message
        );
        assert!(
            !e.message.contains("failed calling webhook"),
            "{}",
            e.message
        );
    }
}

#[tokio::test]
async fn f14_admission_review_versions_without_v1_fails_per_policy() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| allow(r)).await;
    let admission = admission_to(server.addr);
    let webhook = with(
        hook("v.example.com", "/m", &ca),
        "admissionReviewVersions",
        json!(["v2"]),
    );
    let e = fail_and_ignore(&admission, webhook).await;
    assert_eq!(
        e.message,
        "Internal error occurred: failed calling webhook \"v.example.com\": could not create admission objects: \
         webhook does not accept known AdmissionReview versions"
    );
    let webhook = with(
        hook("v.example.com", "/m", &ca),
        "admissionReviewVersions",
        json!(["v1beta1"]),
    );
    let e = fail_and_ignore(&admission, webhook).await;
    assert!(
        e.message
            .ends_with("kubesim does not implement AdmissionReview v1beta1"),
        "{}",
        e.message
    );
    assert!(server.seen().is_empty());
}

// ---------------------------------------------------------------- F18 dry run

#[tokio::test]
async fn f18_dry_run_is_rejected_with_400_for_side_effects_some_and_unknown() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| allow(r)).await;
    let admission = admission_to(server.addr);
    let mut attrs = pod_create("p");
    attrs.dry_run = true;
    for side_effects in ["Some", "Unknown"] {
        for policy in ["Fail", "Ignore"] {
            let webhook = with(
                hook("se.example.com", "/m", &ca),
                "sideEffects",
                json!(side_effects),
            );
            let webhook = with(webhook, "failurePolicy", json!(policy));
            let e = admission
                .mutate(&[mutating("m", vec![webhook.clone()])], &attrs)
                .await
                .unwrap_err();
            assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
            assert_eq!(
                e.message,
                "admission webhook \"se.example.com\" does not support dry run"
            );
            let e = admission
                .validate(&[validating("v", vec![webhook])], &attrs)
                .await
                .unwrap_err();
            assert_eq!(e.code, 400);
        }
    }
    assert!(server.seen().is_empty(), "the webhook is never called");
    // Without dry run the same webhook is called.
    let webhook = with(
        hook("se.example.com", "/m", &ca),
        "sideEffects",
        json!("Some"),
    );
    attrs.dry_run = false;
    admission
        .mutate(&[mutating("m", vec![webhook])], &attrs)
        .await
        .unwrap();
    assert_eq!(server.seen()[0].1["request"]["dryRun"], false);
}

#[tokio::test]
async fn f18_dry_run_reaches_none_and_none_on_dry_run_with_dry_run_true() {
    let ca = Ca::new("ca");
    let server =
        WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| set_label(r, "dry", "run")).await;
    let admission = admission_to(server.addr);
    let mut attrs = pod_create("p");
    attrs.dry_run = true;
    for side_effects in ["None", "NoneOnDryRun"] {
        let webhook = with(
            hook("se.example.com", "/m", &ca),
            "sideEffects",
            json!(side_effects),
        );
        let out = admission
            .mutate(&[mutating("m", vec![webhook])], &attrs)
            .await
            .unwrap();
        assert_eq!(label(&out.object, "dry").as_deref(), Some("run"));
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|(_, r)| r["request"]["dryRun"] == true));
}

// ---------------------------------------------------------------- F14 selection

#[tokio::test]
async fn f14_rules_select_by_operation_group_and_resource() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| allow(r)).await;
    let admission = admission_to(server.addr);
    let rules = |r: Value| {
        mutating(
            "m",
            vec![with(hook("r.example.com", "/m", &ca), "rules", r)],
        )
    };
    let attrs = pod_create("p");
    let misses = [
        json!([{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]),
        json!([{"operations": ["*"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["pods"]}]),
        json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["deployments"]}]),
        json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/status"]}]),
        json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["pods"], "scope": "Cluster"}]),
        json!([{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v2"], "resources": ["pods"]}]),
    ];
    for (i, rule) in misses.iter().enumerate() {
        let mut config = rules(rule.clone());
        if i == misses.len() - 1 {
            config["webhooks"][0]["matchPolicy"] = json!("Exact");
        }
        admission.mutate(&[config], &attrs).await.unwrap();
        assert!(
            server.seen().is_empty(),
            "rule {rule} must not select a pod CREATE"
        );
    }
    let hits = [
        json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]),
        json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/*"], "scope": "Namespaced"}]),
        json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["deployments"]},
               {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]),
        // matchPolicy Equivalent (the default): the same group and resource in another version.
        json!([{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v2"], "resources": ["pods"]}]),
    ];
    for (n, rule) in hits.iter().enumerate() {
        admission
            .mutate(&[rules(rule.clone())], &attrs)
            .await
            .unwrap();
        assert_eq!(
            server.seen().len(),
            n + 1,
            "rule {rule} must select a pod CREATE"
        );
    }
}

#[tokio::test]
async fn f14_namespace_selector_matches_the_namespace_labels() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| allow(r)).await;
    let admission = admission_to(server.addr);
    let selector = json!({
        "matchLabels": {"env": "prod"},
        "matchExpressions": [{"key": "skip-webhooks", "operator": "DoesNotExist"}]
    });
    let mut webhook = with(
        hook("ns.example.com", "/m", &ca),
        "namespaceSelector",
        selector,
    );
    webhook["rules"][0]["resources"] = json!(["*"]);
    webhook["rules"][0]["apiGroups"] = json!(["*"]);
    let configs = [mutating("m", vec![webhook])];
    let calls = || server.seen().len();

    let mut attrs = pod_create("p");
    attrs.namespace_labels = Some(labels(&[("env", "dev")]));
    admission.mutate(&configs, &attrs).await.unwrap();
    assert_eq!(calls(), 0);
    attrs.namespace_labels = Some(labels(&[("env", "prod"), ("skip-webhooks", "")]));
    admission.mutate(&configs, &attrs).await.unwrap();
    assert_eq!(calls(), 0);
    attrs.namespace_labels = Some(labels(&[("env", "prod")]));
    admission.mutate(&configs, &attrs).await.unwrap();
    assert_eq!(calls(), 1);

    // A cluster-scoped object other than a namespace is never excluded.
    let mut node = pod_create("node-1");
    node.namespace = String::new();
    node.namespace_labels = None;
    node.kind.kind = "Node".into();
    node.resource.resource = "nodes".into();
    admission.mutate(&configs, &node).await.unwrap();
    assert_eq!(calls(), 2);

    // A Namespace object is matched by its own labels.
    let mut ns = pod_create("team-a");
    ns.namespace = "team-a".into();
    ns.kind.kind = "Namespace".into();
    ns.resource.resource = "namespaces".into();
    ns.namespace_labels = None;
    ns.object = Some(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "labels": {"env": "dev"}}}),
    );
    admission.mutate(&configs, &ns).await.unwrap();
    assert_eq!(calls(), 2);
    ns.object.as_mut().unwrap()["metadata"]["labels"]["env"] = json!("prod");
    admission.mutate(&configs, &ns).await.unwrap();
    assert_eq!(calls(), 3);

    // A namespace that does not exist is an internal error, only for webhooks whose rules match.
    attrs.namespace = "gone".into();
    attrs.namespace_labels = None;
    let e = admission.mutate(&configs, &attrs).await.unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            500,
            "Internal error occurred: namespaces \"gone\" not found"
        )
    );
    let mut other = configs[0].clone();
    other["webhooks"][0]["rules"][0]["operations"] = json!(["DELETE"]);
    admission.mutate(&[other], &attrs).await.unwrap();
}

#[tokio::test]
async fn f14_object_selector_matches_the_new_or_the_old_object() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |_, r| allow(r)).await;
    let admission = admission_to(server.addr);
    let selector =
        json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gated"]}]});
    let configs = [mutating(
        "m",
        vec![with(
            hook("obj.example.com", "/m", &ca),
            "objectSelector",
            selector,
        )],
    )];
    let gated = |mut p: Value| {
        p["metadata"]["labels"]["tier"] = json!("gated");
        p
    };
    let mut attrs = pod_create("p");
    admission.mutate(&configs, &attrs).await.unwrap();
    assert_eq!(server.seen().len(), 0);
    attrs.object = Some(gated(pod("p")));
    admission.mutate(&configs, &attrs).await.unwrap();
    assert_eq!(server.seen().len(), 1);
    // UPDATE removing the label: the old object still matches.
    attrs.operation = Operation::Update;
    attrs.object = Some(pod("p"));
    attrs.old_object = Some(gated(pod("p")));
    admission.mutate(&configs, &attrs).await.unwrap();
    assert_eq!(server.seen().len(), 2);
    attrs.old_object = Some(pod("p"));
    admission.mutate(&configs, &attrs).await.unwrap();
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn f14_match_conditions_are_not_implemented_501() {
    let ca = Ca::new("ca");
    let admission = admission_to(closed_port().await);
    let conditions = json!([{"name": "not-system", "expression": "!request.userInfo.username.startsWith('system:')"}]);
    let webhook = with(
        hook("cel.example.com", "/m", &ca),
        "matchConditions",
        conditions,
    );
    let e = admission
        .mutate(&[mutating("m", vec![webhook])], &pod_create("p"))
        .await
        .unwrap_err();
    assert_eq!(e.code, 501);
    assert!(e.message.contains("matchConditions"), "{}", e.message);
}

// ---------------------------------------------------------------- F19 ordering

#[tokio::test]
async fn f19_configurations_run_sorted_by_name_webhooks_in_list_order_each_seeing_the_last() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |path, r| {
        // Each webhook appends its name to the `order` label of the object it receives.
        let current = r["request"]["object"]["metadata"]["labels"]["order"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let next = format!("{current}{}", path.trim_start_matches('/'));
        set_label(r, "order", &next)
    })
    .await;
    let admission = admission_to(server.addr);
    let configs = [
        mutating(
            "b-config",
            vec![
                hook("b1.example.com", "/b1", &ca),
                hook("b2.example.com", "/b2", &ca),
            ],
        ),
        mutating(
            "a-config",
            vec![
                hook("a2.example.com", "/a2", &ca),
                hook("a1.example.com", "/a1", &ca),
            ],
        ),
    ];
    let out = admission.mutate(&configs, &pod_create("p")).await.unwrap();
    assert_eq!(server.paths(), vec!["/a2", "/a1", "/b1", "/b2"]);
    assert_eq!(label(&out.object, "order").as_deref(), Some("a2a1b1b2"));
}

#[tokio::test]
async fn f19_if_needed_webhook_is_reinvoked_once_after_a_later_change() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |path, r| match path {
        // Idempotent: adds its label only when missing.
        "/first" | "/third"
            if r["request"]["object"]["metadata"]["labels"][&path[1..]].is_null() =>
        {
            set_label(r, &path[1..], "done")
        }
        "/second" => set_label(r, "second", "done"),
        _ => allow(r),
    })
    .await;
    let admission = admission_to(server.addr);
    let if_needed = |name: &str, path: &str| {
        with(
            hook(name, path, &ca),
            "reinvocationPolicy",
            json!("IfNeeded"),
        )
    };
    let configs = [mutating(
        "m",
        vec![
            if_needed("first.example.com", "/first"),
            hook("second.example.com", "/second", &ca),
            if_needed("third.example.com", "/third"),
        ],
    )];
    let out = admission.mutate(&configs, &pod_create("p")).await.unwrap();
    // first ran before second's (and third's) change: called again once. third changed the
    // object itself but nothing changed it afterwards, so it is not reinvoked; second is Never.
    assert_eq!(
        server.paths(),
        vec!["/first", "/second", "/third", "/first"]
    );
    let seen = server.seen();
    assert_eq!(
        seen[3].1["request"]["object"]["metadata"]["labels"]["third"], "done",
        "reinvocation sees the result"
    );
    for key in ["first", "second", "third"] {
        assert_eq!(label(&out.object, key).as_deref(), Some("done"));
    }

    // Nothing changes the object after the IfNeeded webhook: no reinvocation.
    let server2 = WebhookServer::start(&ca, &["svc.ns.svc"], |path, r| match path {
        "/first" => set_label(r, "first", "done"),
        _ => allow(r),
    })
    .await;
    let admission2 = admission_to(server2.addr);
    let configs2 = [mutating(
        "m",
        vec![
            if_needed("first.example.com", "/first"),
            hook("n.example.com", "/noop", &ca),
        ],
    )];
    admission2
        .mutate(&configs2, &pod_create("p"))
        .await
        .unwrap();
    assert_eq!(server2.paths(), vec!["/first", "/noop"]);
}

#[tokio::test]
async fn f19_validating_webhooks_see_the_object_given_and_collect_warnings() {
    let ca = Ca::new("ca");
    let server = WebhookServer::start(&ca, &["svc.ns.svc"], |path, r| match path {
        "/warn" => Answer::Review(
            json!({"uid": r["request"]["uid"], "allowed": true, "warnings": ["careful"]}),
        ),
        "/patching" => set_label(r, "x", "y"),
        "/deny-a" => deny(r, json!({"message": "a says no"})),
        "/deny-b" => deny(r, json!({"message": "b says no"})),
        _ => allow(r),
    })
    .await;
    let admission = admission_to(server.addr);
    let mut attrs = pod_create("p");
    attrs.object.as_mut().unwrap()["metadata"]["labels"]["mutated"] = json!("true");
    let configs = [validating(
        "v",
        vec![
            hook("ok.example.com", "/ok", &ca),
            hook("warn.example.com", "/warn", &ca),
        ],
    )];
    let warnings = admission.validate(&configs, &attrs).await.unwrap();
    assert_eq!(warnings, vec!["careful"]);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|(_, r)| r["request"]["object"] == *attrs.object.as_ref().unwrap())
    );

    // A validating webhook may not patch.
    let e = admission
        .validate(
            &[validating(
                "v",
                vec![hook("p.example.com", "/patching", &ca)],
            )],
            &attrs,
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        "Internal error occurred: failed calling webhook \"p.example.com\": received invalid webhook response: \
         unsupported fields in validating webhook response: patch, patchType"
    );

    // Several denials: the first in configuration order is returned.
    let configs = [
        validating("z", vec![hook("b.example.com", "/deny-b", &ca)]),
        validating("a", vec![hook("a.example.com", "/deny-a", &ca)]),
    ];
    let e = admission.validate(&configs, &attrs).await.unwrap_err();
    assert_eq!(
        e.message,
        "admission webhook \"a.example.com\" denied the request: a says no"
    );
}
