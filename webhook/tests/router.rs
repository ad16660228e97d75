//! In-process router tests (`tower::ServiceExt::oneshot`): golden AdmissionReview fixtures
//! (FIDELITY F16), bad input, dry run (A6), the fallback GET (A5), write failures (B §1.8/§1.9),
//! health, readiness and metrics.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::resolve::ObjectMetaView;
use tower::ServiceExt;
use webhook::cluster::{Cluster, ClusterError};
use webhook::decision::{Needed, Write};
use webhook::fixtures;
use webhook::metrics::Metrics;
use webhook::server::{self, App, Limits};
use webhook::snapshot::{Fetched, MemorySnapshot, NamespaceMeta, ParentKind, ReplicaSetMeta};

/// Records what the shell asks of the cluster; answers fetches from `world`.
#[derive(Default)]
struct FakeCluster {
    writes: Mutex<Vec<String>>,
    fetches: Mutex<Vec<Needed>>,
    failures: Mutex<Vec<String>>,
    fail_writes: AtomicBool,
    world: MemorySnapshot,
}

impl Cluster for FakeCluster {
    fn fetch<'a>(
        &'a self,
        needed: &'a Needed,
        fetched: &'a mut Fetched,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        self.fetches.lock().unwrap().push(needed.clone());
        fetched.record(needed, &self.world);
        Box::pin(async { Ok(()) })
    }

    fn write<'a>(&'a self, write: &'a Write) -> BoxFuture<'a, Result<(), ClusterError>> {
        self.writes.lock().unwrap().push(write.to_string());
        let fail = self.fail_writes.load(Ordering::SeqCst);
        Box::pin(async move {
            if fail {
                Err(ClusterError::Api(kube::Error::Api(
                    kube::core::Status::failure("the server is unavailable", "ServiceUnavailable")
                        .with_code(503)
                        .boxed(),
                )))
            } else {
                Ok(())
            }
        })
    }

    fn report_failure(&self, write: &Write, _error: &ClusterError) {
        self.failures
            .lock()
            .unwrap()
            .push(webhook::cluster::failure_event(write).0.to_owned());
    }
}

const LIMITS: Limits = Limits {
    body_bytes: 1024 * 1024,
    header_read: Duration::from_secs(5),
    request: Duration::from_secs(5),
    drain: Duration::from_secs(5),
};

struct Harness {
    app: axum::Router,
    cluster: Arc<FakeCluster>,
    metrics: Arc<Metrics>,
}

fn harness(snapshot: MemorySnapshot, cluster: FakeCluster) -> Harness {
    let cluster = Arc::new(cluster);
    let metrics = Arc::new(Metrics::new());
    let app = Arc::new(App {
        snapshot: Arc::new(snapshot),
        cluster: cluster.clone(),
        metrics: metrics.clone(),
        ready: Arc::new(|| true),
    });
    Harness {
        app: server::router(app, LIMITS),
        cluster,
        metrics,
    }
}

async fn post(app: &axum::Router, path: &str, body: impl Into<Body>) -> (StatusCode, Vec<u8>) {
    let response = app
        .clone()
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn response_of(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).expect("JSON AdmissionReview");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    review["response"].clone()
}

fn decoded_patch(response: &Value) -> Option<Value> {
    let patch = response.get("patch")?.as_str()?;
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("base64 patch");
    Some(serde_json::from_slice(&bytes).expect("JSON patch"))
}

fn meta_of(object: &Value) -> ObjectMetaView {
    serde_json::from_value(object["metadata"].clone()).unwrap()
}

/// A snapshot from a fixture's `world` (complete: anything missing is known absent).
fn world_snapshot(world: &Value) -> MemorySnapshot {
    let mut snapshot = MemorySnapshot::complete();
    for ns in world["namespaces"].as_array().into_iter().flatten() {
        snapshot =
            snapshot.with_namespace(serde_json::from_value::<NamespaceMeta>(ns.clone()).unwrap());
    }
    for rs in world["replicaSets"].as_array().into_iter().flatten() {
        snapshot = snapshot
            .with_replica_set(serde_json::from_value::<ReplicaSetMeta>(rs.clone()).unwrap());
    }
    for p in world["parents"].as_array().into_iter().flatten() {
        let kind = match p["kind"].as_str().unwrap() {
            "Deployment" => ParentKind::Deployment,
            "StatefulSet" => ParentKind::StatefulSet,
            "DaemonSet" => ParentKind::DaemonSet,
            other => panic!("parent kind {other}"),
        };
        snapshot = snapshot.with_parent(
            kind,
            p["metadata"]["namespace"].as_str().unwrap(),
            p["metadata"]["name"].as_str().unwrap(),
            meta_of(p),
        );
    }
    snapshot
}

#[tokio::test]
async fn golden_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "fixtures missing from {}", dir.display());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let case: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let h = harness(world_snapshot(&case["world"]), FakeCluster::default());
        let (status, body) = post(
            &h.app,
            case["path"].as_str().unwrap(),
            serde_json::to_vec(&case["review"]).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let response = response_of(&body);
        let expect = &case["expect"];
        assert_eq!(
            response["uid"], case["review"]["request"]["uid"],
            "{name}: uid echoed"
        );
        assert_eq!(response["allowed"], expect["allowed"], "{name}: allowed");
        assert_eq!(
            decoded_patch(&response).unwrap_or(Value::Null),
            expect["patch"],
            "{name}: patch"
        );
        if let Some(message) = expect.get("message") {
            assert_eq!(&response["status"]["message"], message, "{name}: message");
        }
        if let Some(code) = expect.get("code") {
            assert_eq!(&response["status"]["code"], code, "{name}: code");
        }
        let writes = h.cluster.writes.lock().unwrap().clone();
        let want: Vec<String> = serde_json::from_value(expect["writes"].clone()).unwrap();
        assert_eq!(writes, want, "{name}: writes");
        // Applying the patch to the raw object works, and admitting the result again
        // (reinvocation, F19) changes nothing.
        if let Some(patch) = decoded_patch(&response) {
            let mut object = case["review"]["request"]["object"].clone();
            let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
            json_patch::patch(&mut object, &patch).expect("{name}: patch applies");
            let mut again = case["review"].clone();
            again["request"]["object"] = object;
            let (_, body) = post(
                &h.app,
                case["path"].as_str().unwrap(),
                serde_json::to_vec(&again).unwrap(),
            )
            .await;
            assert_eq!(
                decoded_patch(&response_of(&body)),
                None,
                "{name}: reinvocation"
            );
        }
    }
}

fn enabled_world() -> MemorySnapshot {
    MemorySnapshot::complete().with_namespace(
        serde_json::from_value(fixtures::namespace(
            "shop",
            json!({"keptn.sh/lifecycle-toolkit": "enabled"}),
            json!({}),
        ))
        .unwrap(),
    )
}

fn annotated_pod() -> Value {
    fixtures::pod("shop")
        .container("web", "nginx:1.25")
        .owned_by_replica_set("web-abc")
        .annotated("keptn.sh/workload", "web")
        .annotated("keptn.sh/version", "1")
        .build()
}

// ------------------------------------------------------------------ bad input

#[tokio::test]
async fn malformed_json_is_400() {
    for body in [&b"{not json"[..], b"", b"[]", b"null", b"\xff\xfe"] {
        let h = harness(enabled_world(), FakeCluster::default());
        let (status, text) = post(&h.app, server::POD_PATH, body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert!(
            String::from_utf8_lossy(&text).contains("not a valid AdmissionReview"),
            "{body:?}"
        );
    }
}

#[tokio::test]
async fn missing_request_is_400() {
    let h = harness(enabled_world(), FakeCluster::default());
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
    let (status, text) = post(&h.app, server::POD_PATH, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "the AdmissionReview has no request"
    );
}

#[tokio::test]
async fn wrong_review_version_is_400() {
    let h = harness(enabled_world(), FakeCluster::default());
    let mut body = fixtures::pod_review(&annotated_pod(), false);
    body["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (status, text) = post(&h.app, server::POD_PATH, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8(text).unwrap().contains("v1beta1"));
}

#[tokio::test]
async fn wrong_kind_is_a_clear_denial() {
    let h = harness(enabled_world(), FakeCluster::default());
    let deployment = fixtures::workload("Deployment", "shop", "web", &annotated_pod());
    let review = fixtures::review(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "CREATE",
        Some(&deployment),
        None,
        false,
    );
    let (status, body) = post(
        &h.app,
        server::POD_PATH,
        serde_json::to_vec(&review).unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a readable review gets an AdmissionResponse"
    );
    let response = response_of(&body);
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    assert_eq!(
        response["status"]["message"],
        "this endpoint admits pods (v1 Pod), got apps/v1, Kind=Deployment"
    );
    // A pod sent to the workload path and a pod sent to the task definition path.
    let review = fixtures::pod_review(&annotated_pod(), false);
    for path in [server::WORKLOAD_PATH, server::TASK_DEFINITION_PATH] {
        let (_, body) = post(&h.app, path, serde_json::to_vec(&review).unwrap()).await;
        let response = response_of(&body);
        assert_eq!(response["allowed"], false, "{path}");
        assert!(
            response["status"]["message"]
                .as_str()
                .unwrap()
                .contains("got v1, Kind=Pod"),
            "{path}"
        );
    }
    assert!(h.cluster.writes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn object_that_is_not_a_pod_on_the_pod_path() {
    // Kind says Pod but the object is garbage: containers is a string.
    let h = harness(enabled_world(), FakeCluster::default());
    let mut pod = annotated_pod();
    pod["spec"]["containers"] = json!("web");
    let (status, body) = post(
        &h.app,
        server::POD_PATH,
        serde_json::to_vec(&fixtures::pod_review(&pod, false)).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response = response_of(&body);
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read spec.containers")
    );
    // The object is not even an object.
    let mut review = fixtures::pod_review(&annotated_pod(), false);
    review["request"]["object"] = json!(42);
    let (status, _) = post(
        &h.app,
        server::POD_PATH,
        serde_json::to_vec(&review).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn giant_body_is_413() {
    let h = harness(enabled_world(), FakeCluster::default());
    let mut pod = annotated_pod();
    pod["metadata"]["annotations"]["big"] = json!("x".repeat(2 * 1024 * 1024));
    let (status, _) = post(
        &h.app,
        server::POD_PATH,
        serde_json::to_vec(&fixtures::pod_review(&pod, false)).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn body_of_a_few_mib_is_accepted() {
    // The default limit (8 MiB) takes an UPDATE review of two ~1.5 MiB objects.
    let h = harness(enabled_world(), FakeCluster::default());
    let limits = Limits {
        body_bytes: 8 * 1024 * 1024,
        ..LIMITS
    };
    let app = server::router(
        Arc::new(App {
            snapshot: Arc::new(enabled_world()),
            cluster: h.cluster.clone(),
            metrics: h.metrics.clone(),
            ready: Arc::new(|| true),
        }),
        limits,
    );
    let mut pod = annotated_pod();
    pod["metadata"]["annotations"]["big"] = json!("x".repeat(3 * 1024 * 1024 / 2));
    let review = fixtures::review(
        "",
        "v1",
        "Pod",
        "pods",
        "UPDATE",
        Some(&pod),
        Some(&pod),
        false,
    );
    let (status, body) = post(&app, server::POD_PATH, serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response_of(&body)["allowed"], true);
}

#[tokio::test]
async fn deeply_nested_body_is_400_not_a_crash() {
    let h = harness(enabled_world(), FakeCluster::default());
    let depth = 100_000;
    let mut body = String::from(
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{"metadata":{"name":"p"},"spec":{"x":"#,
    );
    body.push_str(&"[".repeat(depth));
    body.push_str(&"]".repeat(depth));
    body.push_str("}}}}");
    let (status, text) = post(&h.app, server::POD_PATH, body.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("recursion limit"), "{text}");
}

// ------------------------------------------------------------------ behaviour of the shell

#[tokio::test]
async fn dry_run_same_patch_no_writes_a6() {
    let h = harness(enabled_world(), FakeCluster::default());
    let pod = annotated_pod();
    let (_, wet) = post(
        &h.app,
        server::POD_PATH,
        serde_json::to_vec(&fixtures::pod_review(&pod, false)).unwrap(),
    )
    .await;
    assert_eq!(h.cluster.writes.lock().unwrap().len(), 2);
    let (_, dry) = post(
        &h.app,
        server::POD_PATH,
        serde_json::to_vec(&fixtures::pod_review(&pod, true)).unwrap(),
    )
    .await;
    assert_eq!(
        h.cluster.writes.lock().unwrap().len(),
        2,
        "dry run wrote something"
    );
    assert_eq!(
        decoded_patch(&response_of(&wet)),
        decoded_patch(&response_of(&dry))
    );
    assert!(decoded_patch(&response_of(&dry)).is_some());
}

#[tokio::test]
async fn write_failure_rejects_with_event() {
    let cluster = FakeCluster::default();
    cluster.fail_writes.store(true, Ordering::SeqCst);
    let h = harness(enabled_world(), cluster);
    let (status, body) = post(
        &h.app,
        server::POD_PATH,
        serde_json::to_vec(&fixtures::pod_review(&annotated_pod(), false)).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response = response_of(&body);
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("could not create KeptnWorkload shop/web-web: "),
        "{response}"
    );
    assert_eq!(
        *h.cluster.failures.lock().unwrap(),
        ["CreateWorkloadFailed"]
    );
}

#[tokio::test]
async fn replica_set_missing_from_cache_costs_one_get_a5() {
    let rs: ReplicaSetMeta = serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "namespace": "shop", "uid": "rs-uid-1",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d"}]}
    }))
    .unwrap();
    let cluster = FakeCluster {
        world: MemorySnapshot::complete().with_replica_set(rs),
        ..FakeCluster::default()
    };
    // The caches know the namespace and the Deployment but not the brand-new ReplicaSet.
    let mut caches = enabled_world().with_parent(
        ParentKind::Deployment,
        "shop",
        "web",
        ObjectMetaView {
            annotations: [("keptn.sh/workload".to_string(), "web".to_string())].into(),
            labels: Default::default(),
        },
    );
    caches.complete = false;
    let h = harness(caches, cluster);
    let pod = fixtures::pod("shop")
        .container("web", "nginx:1.25")
        .owned_by_replica_set("web-abc")
        .build();
    let (_, body) = post(
        &h.app,
        server::POD_PATH,
        serde_json::to_vec(&fixtures::pod_review(&pod, false)).unwrap(),
    )
    .await;
    assert!(decoded_patch(&response_of(&body)).is_some());
    assert_eq!(
        *h.cluster.fetches.lock().unwrap(),
        [Needed::ReplicaSet {
            namespace: "shop".into(),
            name: "web-abc".into()
        }]
    );
}

#[tokio::test]
async fn task_definition_validation_b112() {
    let h = harness(enabled_world(), FakeCluster::default());
    let td = json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": "check", "namespace": "shop"},
        "spec": {"deno": {"inline": {"code": "1"}}, "container": {"name": "c", "image": "i"}}
    });
    let review = fixtures::review(
        "lifecycle.keptn.sh",
        "v1",
        "KeptnTaskDefinition",
        "keptntaskdefinitions",
        "CREATE",
        Some(&td),
        None,
        false,
    );
    let (_, body) = post(
        &h.app,
        server::TASK_DEFINITION_PATH,
        serde_json::to_vec(&review).unwrap(),
    )
    .await;
    let response = response_of(&body);
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422);
    assert_eq!(response["status"]["reason"], "Invalid");
    assert_eq!(
        response["status"]["message"],
        "KeptnTaskDefinition.lifecycle.keptn.sh \"check\" is invalid: spec: Forbidden: Forbidden! Only one of Container, Python, or Deno field can be defined"
    );
    assert_eq!(response["status"]["details"]["causes"][0]["field"], "spec");
}

#[tokio::test]
async fn health_readiness_metrics() {
    let h = harness(enabled_world(), FakeCluster::default());
    assert_eq!(get(&h.app, "/healthz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(get(&h.app, "/readyz").await.0, StatusCode::OK);
    let _ = post(
        &h.app,
        server::POD_PATH,
        serde_json::to_vec(&fixtures::pod_review(&annotated_pod(), false)).unwrap(),
    )
    .await;
    let (status, text) = get(&h.app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(
        "portcullis_webhook_requests_total{path=\"/mutate-v1-pod\",decision=\"patched\"} 1"
    ));
    assert!(
        text.contains(
            "portcullis_webhook_request_duration_seconds_count{path=\"/mutate-v1-pod\"} 1"
        )
    );

    let not_ready = Arc::new(App {
        snapshot: Arc::new(enabled_world()),
        cluster: Arc::new(FakeCluster::default()),
        metrics: Arc::new(Metrics::new()),
        ready: Arc::new(|| false),
    });
    let app = server::router(not_ready, LIMITS);
    assert_eq!(
        get(&app, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
