//! The emulator against FIDELITY.md (F1–F13, F23), driven over HTTP exactly as users drive a real
//! API server: through a kube-rs 5 client and the real `/usr/bin/kubectl` 1.32. Every test starts
//! its own in-process server and works in its own namespace.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Client;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kubesim::{Sim, SimConfig, SimHandle};
use serde_json::{Value, json};

const WIDGETS_CRD: &str = "tests/fixtures/widgets-crd.yaml";
/// Generous for a loaded machine: every wait ends as soon as what it waits for happens.
const DEADLINE: Duration = Duration::from_secs(60);

/// One emulator, a client, a namespace and a kubectl cache of its own.
struct Env {
    sim: SimHandle,
    client: Client,
    ns: String,
    cache: tempfile::TempDir,
}

async fn env_with(ns: &str, config: SimConfig) -> Env {
    let sim = Sim::start(config).await.expect("kubesim starts");
    let client = sim.client().expect("client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("namespace");
    Env {
        sim,
        client,
        ns: ns.to_string(),
        cache: tempfile::tempdir().unwrap(),
    }
}

async fn env(ns: &str) -> Env {
    env_with(ns, SimConfig::default()).await
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Env {
    /// Run the real kubectl against this emulator.
    async fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_stdin(args, None).await
    }

    async fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new("/usr/bin/kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.sim.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.env_remove("KUBECONFIG");
        let mut child = cmd.spawn().expect("kubectl runs");
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).await.unwrap();
        }
        drop(pipe);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finishes")
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    async fn kubectl_ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args).await;
        assert!(o.ok, "kubectl {args:?} failed: {}{}", o.stdout, o.stderr);
        o.stdout
    }

    async fn apply_file(&self, path: &Path) {
        self.kubectl_ok(&["apply", "-f", path.to_str().unwrap()])
            .await;
    }

    async fn widgets_crd(&self) -> ApiResource {
        self.apply_file(&crate_path(WIDGETS_CRD)).await;
        self.kubectl_ok(&[
            "wait",
            "--for=condition=established",
            "crd/widgets.example.com",
            "--timeout=20s",
        ])
        .await;
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("example.com", "v1", "Widget"),
            "widgets",
        )
    }

    fn dynamic(&self, ar: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, ar)
    }

    /// A raw request through the kube client (custom media types, query parameters).
    async fn raw(
        &self,
        method: &str,
        path: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Value, kube::Error> {
        let mut req = http::Request::builder().method(method).uri(path);
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if let Some(c) = content_type {
            req = req.header("Content-Type", c);
        }
        self.client.request::<Value>(req.body(body).unwrap()).await
    }

    /// Raw HTTP (for streams and status codes kube does not surface).
    async fn http(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.sim.url))
            .send()
            .await
            .unwrap()
    }
}

fn crate_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn api_err(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < DEADLINE {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn widget(name: &str, size: i64) -> DynamicObject {
    obj(
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}}),
    )
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f01_discovery_lists_crds_after_apply() {
    let e = env("f01").await;
    let version = e.raw("GET", "/version", None, None, vec![]).await.unwrap();
    assert_eq!(version["major"], "1");
    assert_eq!(version["minor"], "32");

    let before = e.kubectl_ok(&["api-resources"]).await;
    assert!(!before.contains("widgets"));
    for (name, short, namespaced) in [
        ("pods", "po", "true"),
        ("deployments", "deploy", "true"),
        ("namespaces", "ns", "false"),
        ("customresourcedefinitions", "crd,crds", "false"),
    ] {
        let line = before
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {before}"));
        assert!(line.contains(short) && line.contains(namespaced), "{line}");
    }
    e.widgets_crd().await;
    let after = e
        .kubectl_ok(&["api-resources", "--api-group=example.com"])
        .await;
    let line = after
        .lines()
        .find(|l| l.starts_with("widgets "))
        .expect("widgets served");
    assert!(
        line.contains("wd")
            && line.contains("example.com/v1")
            && line.contains("true")
            && line.contains("Widget"),
        "{line}"
    );
    // Categories: `kubectl get all` includes widgets.
    e.dynamic(&ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    ))
    .create(&PostParams::default(), &widget("w", 1))
    .await
    .unwrap();
    assert!(
        e.kubectl_ok(&["get", "all", "-n", "f01"])
            .await
            .contains("widget.example.com/w")
    );

    // kube-rs discovery sees verbs and subresources.
    let list = e
        .raw("GET", "/apis/example.com/v1", None, None, vec![])
        .await
        .unwrap();
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["widgets", "widgets/status", "widgets/scale"]);
    assert!(
        list["resources"][0]["verbs"]
            .as_array()
            .unwrap()
            .contains(&json!("watch"))
    );
    let discovery = kube::Discovery::new(e.client.clone()).run().await.unwrap();
    assert!(discovery.groups().any(|g| g.name() == "example.com"));
    assert!(discovery.groups().any(|g| g.name() == "events.k8s.io"));

    // Aggregated discovery (what kubectl 1.32 asks for first) lists the CRD with its subresources.
    let resp = reqwest::Client::new()
        .get(format!("{}/apis", e.sim.url))
        .header(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let agg: Value = resp.json().await.unwrap();
    let group = agg["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "example.com")
        .expect("example.com group");
    let res = &group["versions"][0]["resources"][0];
    assert_eq!(
        (res["resource"].as_str(), res["scope"].as_str()),
        (Some("widgets"), Some("Namespaced"))
    );
    assert_eq!(res["subresources"].as_array().unwrap().len(), 2);
    // Conversion webhooks are not emulated: refused loudly.
    let mut crd: Value =
        serde_yaml::from_str(&std::fs::read_to_string(crate_path(WIDGETS_CRD)).unwrap()).unwrap();
    crd["metadata"]["name"] = json!("gadgets.example.com");
    crd["spec"]["names"] = json!({"kind": "Gadget", "plural": "gadgets"});
    crd["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {"url": "https://127.0.0.1:1/convert"}}});
    let s = api_err(
        e.raw(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            None,
            Some("application/json"),
            serde_json::to_vec(&crd).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 501);
    // A CRD may not shadow a built-in resource.
    let mut shadow = crd.clone();
    shadow["metadata"]["name"] = json!("deployments.apps");
    shadow["spec"]["group"] = json!("apps");
    shadow["spec"]["names"] = json!({"kind": "Deployment", "plural": "deployments"});
    shadow["spec"].as_object_mut().unwrap().remove("conversion");
    let s = api_err(
        e.raw(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            None,
            Some("application/json"),
            serde_json::to_vec(&shadow).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 422, "{}", s.message);
    // Deleting the CRD stops serving it.
    e.kubectl_ok(&["delete", "crd", "widgets.example.com"])
        .await;
    let gone = e
        .raw("GET", "/apis/example.com/v1", None, None, vec![])
        .await
        .unwrap_err();
    assert_eq!(api_err(gone).code, 404);
    assert!(!e.kubectl_ok(&["api-resources"]).await.contains("widgets"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f02_table_output_evaluates_printer_columns() {
    let e = env("f02").await;
    let ar = e.widgets_crd().await;
    let mut w = widget("big", 7);
    w.data["spec"]["color"] = json!("red");
    e.dynamic(&ar)
        .create(&PostParams::default(), &w)
        .await
        .unwrap();
    let out = e.kubectl_ok(&["get", "widgets", "-n", "f02"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    // Declared printer columns replace the default AGE column, as on a real server.
    assert_eq!(header, vec!["NAME", "SIZE", "COLOR", "PHASE"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], &["big", "7", "red"]);

    let table = e
        .raw(
            "GET",
            "/apis/example.com/v1/namespaces/f02/widgets",
            Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
            None,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"][0]["cells"][1], 7);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(
        table["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );

    let pods: Api<Pod> = Api::namespaced(e.client.clone(), "f02");
    pods.create(&PostParams::default(), &obj(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})))
        .await
        .unwrap();
    let out = e.kubectl_ok(&["get", "pods", "-n", "f02"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(
        out.lines().nth(1).unwrap().contains("0/1") && out.contains("Pending"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f03_kubectl_apply_client_side_server_side_and_field_validation() {
    let e = env("f03").await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("cm.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: f03}\ndata: {a: '1', b: '2'}\n").unwrap();
    assert!(
        e.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()])
            .await
            .contains("configmap/settings created")
    );
    std::fs::write(&manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: f03}\ndata: {a: '3'}\n").unwrap();
    assert!(
        e.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()])
            .await
            .contains("configmap/settings configured")
    );
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f03");
    let cm = cms.get("settings").await.unwrap();
    let data = cm.data.clone().unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("3"));
    assert!(
        !data.contains_key("b"),
        "the strategic merge patch removed b"
    );
    assert!(
        cm.metadata
            .annotations
            .unwrap()
            .contains_key("kubectl.kubernetes.io/last-applied-configuration")
    );

    // Server-side apply records the manager.
    let ssa = dir.path().join("ssa.yaml");
    std::fs::write(
        &ssa,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: f03}\ndata: {x: '1'}\n",
    )
    .unwrap();
    e.kubectl_ok(&["apply", "--server-side", "-f", ssa.to_str().unwrap()])
        .await;
    let cm = cms.get("ssa").await.unwrap();
    let managers: Vec<String> = cm
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"kubectl".to_string()), "{managers:?}");

    // kubectl downloads OpenAPI v3 and uses server-side field validation (Strict).
    let index = e
        .raw("GET", "/openapi/v3", None, None, vec![])
        .await
        .unwrap();
    assert!(
        index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/api/v1?hash=")
    );
    e.widgets_crd().await;
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: typo, namespace: f03}\nspec: {size: 1, colour: red}\n").unwrap();
    let o = e.kubectl(&["apply", "-f", bad.to_str().unwrap()]).await;
    assert!(
        !o.ok && o.stderr.contains("unknown field \"spec.colour\""),
        "{}",
        o.stderr
    );
    let o = e
        .kubectl(&["apply", "--validate=warn", "-f", bad.to_str().unwrap()])
        .await;
    assert!(
        o.ok && o.stderr.contains("unknown field \"spec.colour\""),
        "{}{}",
        o.stdout,
        o.stderr
    );

    // kubectl logs answers with a clear error.
    let o = e.kubectl(&["logs", "nope", "-n", "f03"]).await;
    assert!(!o.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f04_errors_are_status_objects() {
    let e = env("f04").await;
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f04");
    let s = api_err(cms.get("missing").await.unwrap_err());
    assert_eq!(
        (s.code, s.reason.as_str(), s.message.as_str()),
        (404, "NotFound", "configmaps \"missing\" not found")
    );
    let cm: ConfigMap = obj(json!({"metadata": {"name": "one"}}));
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let s = api_err(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
    let s = api_err(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "Bad_Name"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"),
        "{}",
        s.message
    );
    let s = api_err(
        cms.list(&ListParams::default().labels("a b c"))
            .await
            .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    let s = api_err(
        e.raw("GET", "/api/v1/nothings", None, None, vec![])
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 404);
    // The raw body is a Status object.
    let resp = e
        .http(
            reqwest::Method::GET,
            "/api/v1/namespaces/f04/configmaps/missing",
        )
        .await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["details"]["name"], "missing");
    // Oversized bodies are refused (the real server's 3 MiB limit).
    let big = vec![b' '; 4 * 1024 * 1024];
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/namespaces/f04/configmaps", e.sim.url))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // Unimplemented things answer 501, never a silent success.
    let resp = e
        .http(reqwest::Method::GET, "/api/v1/namespaces/f04/pods/x/exec")
        .await;
    assert_eq!(resp.status(), 501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f05_generate_name_and_name_rules() {
    let e = env("f05").await;
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f05");
    let made = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"generateName": "cfg-"}})),
        )
        .await
        .unwrap();
    let name = made.metadata.name.unwrap();
    let suffix = name.strip_prefix("cfg-").expect("prefix kept");
    assert_eq!(suffix.len(), 5);
    assert!(
        suffix
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{name}"
    );
    let long = "a".repeat(254);
    let s = api_err(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": long}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    let s = api_err(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "ok", "labels": {"k": "x".repeat(64)}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    assert!(s.message.contains("metadata.labels"), "{}", s.message);
    let s = api_err(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "ok", "labels": {"k": "-x"}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    let s = api_err(
        cms.create(&PostParams::default(), &obj(json!({"metadata": {}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains("name or generateName is required"),
        "{}",
        s.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f06_server_sets_uid_timestamps_versions_and_generation() {
    let e = env("f06").await;
    let deploys: Api<Deployment> = Api::namespaced(e.client.clone(), "f06");
    let d: Deployment = obj(
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}),
    );
    let made = deploys
        .create(
            &PostParams {
                field_manager: Some("tester".into()),
                ..Default::default()
            },
            &d,
        )
        .await
        .unwrap();
    let m = &made.metadata;
    assert_eq!(m.uid.as_ref().unwrap().len(), 36);
    assert!(m.creation_timestamp.is_some());
    assert_eq!(m.generation, Some(1));
    assert!(
        m.managed_fields
            .as_ref()
            .unwrap()
            .iter()
            .any(|f| f.manager.as_deref() == Some("tester"))
    );
    let rv1: u64 = m.resource_version.as_ref().unwrap().parse().unwrap();
    // Metadata-only change: generation stays.
    let p = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(1));
    let rv2: u64 = p.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv2 > rv1);
    // Spec change bumps it.
    let p = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2));
    // Status writes never bump it (status subresource).
    let p = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3, "observedGeneration": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2));
    assert_eq!(p.status.unwrap().replicas, Some(3));
    // Custom resources: everything but metadata and status.
    let ar = e.widgets_crd().await;
    let widgets = e.dynamic(&ar);
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let w = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    let w = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2));
    // A no-op write keeps the resourceVersion.
    let again = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, w.metadata.resource_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f07_stale_update_conflicts_and_patches_do_not() {
    let e = env("f07").await;
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f07");
    let first = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "c"}, "data": {"v": "0"}})),
        )
        .await
        .unwrap();
    let mut second = first.clone();
    second.data = Some([("v".to_string(), "1".to_string())].into());
    cms.replace("c", &PostParams::default(), &second)
        .await
        .unwrap();
    let mut stale = first.clone();
    stale.data = Some([("v".to_string(), "2".to_string())].into());
    let s = api_err(
        cms.replace("c", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );
    // Patches without a resourceVersion never conflict, even when many race.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let cms = cms.clone();
        tasks.push(tokio::spawn(async move {
            cms.patch(
                "c",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {format!("k{i}"): "x"}})),
            )
            .await
            .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(cms.get("c").await.unwrap().data.unwrap().len(), 21);
    // A patch pinning a stale resourceVersion conflicts.
    let s = api_err(
        cms.patch("c", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"v": "3"}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f08_status_subresource_separates_spec_and_status() {
    let e = env("f08").await;
    let ar = e.widgets_crd().await;
    let widgets = e.dynamic(&ar);
    let mut w = widget("w", 1);
    w.data["status"] = json!({"phase": "Sneaky"});
    let made = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert!(
        made.data.get("status").is_none(),
        "status ignored on create: {:?}",
        made.data
    );
    let mut upd = made.clone();
    upd.data["status"] = json!({"phase": "Ignored"});
    upd.data["spec"]["size"] = json!(4);
    let after = widgets
        .replace("w", &PostParams::default(), &upd)
        .await
        .unwrap();
    assert_eq!(after.data["spec"]["size"], 4);
    assert!(after.data.get("status").is_none());
    let mut st = after.clone();
    st.data["status"] = json!({"phase": "Ready"});
    st.data["spec"]["size"] = json!(99);
    let after = widgets
        .replace_status("w", &PostParams::default(), &st)
        .await
        .unwrap();
    assert_eq!(after.data["status"]["phase"], "Ready");
    assert_eq!(after.data["spec"]["size"], 4, "spec ignored on /status");
    // Built-ins: a pod's status write keeps the spec but takes labels.
    let pods: Api<Pod> = Api::namespaced(e.client.clone(), "f08");
    pods.create(&PostParams::default(), &obj(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})))
        .await
        .unwrap();
    let p = pods
        .patch_status("p", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"l": "v"}}, "spec": {"nodeName": "x"}, "status": {"phase": "Running"}})))
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(p.spec.unwrap().node_name, None);
    assert_eq!(
        p.metadata.labels.unwrap().get("l").map(String::as_str),
        Some("v")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f09_patch_types() {
    let e = env("f09").await;
    let deploys: Api<Deployment> = Api::namespaced(e.client.clone(), "f09");
    let d: Deployment = obj(
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}),
    );
    deploys.create(&PostParams::default(), &d).await.unwrap();
    // Strategic merge: containers merge by name; `$patch: delete` removes one.
    let p = deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:2"}, {"name": "b", "$patch": "delete"}]}}}})))
        .await
        .unwrap();
    let cs = p.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].image.as_deref(), Some("a:2"));
    // JSON Patch with a failing test op changes nothing.
    let s = api_err(
        deploys
            .patch("web", &PatchParams::default(), &Patch::<Value>::Json(serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 5}, {"op": "replace", "path": "/spec/replicas", "value": 9}])).unwrap()))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    let p = deploys
        .patch("web", &PatchParams::default(), &Patch::<Value>::Json(serde_json::from_value(json!([{"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "a"}, {"op": "replace", "path": "/spec/replicas", "value": 2}])).unwrap()))
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().replicas, Some(2));
    // Merge patch.
    let p = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        p.metadata.annotations.unwrap().get("a").map(String::as_str),
        Some("b")
    );
    // Apply: fieldManager required, conflicts unless forced.
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f09");
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "one"}});
    let s = api_err(
        e.raw(
            "PATCH",
            "/api/v1/namespaces/f09/configmaps/cfg",
            None,
            Some("application/apply-patch+yaml"),
            serde_json::to_vec(&applied).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    assert!(s.message.contains("fieldManager"), "{}", s.message);
    cms.patch("cfg", &PatchParams::apply("alice"), &Patch::Apply(&applied))
        .await
        .unwrap();
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "two"}});
    let s = api_err(
        cms.patch("cfg", &PatchParams::apply("bob"), &Patch::Apply(&other))
            .await
            .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    let forced = cms
        .patch(
            "cfg",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(
        forced.data.unwrap().get("k").map(String::as_str),
        Some("two")
    );
    // Server-side apply of a custom resource's status, as controllers do: spec untouched,
    // the manager recorded for the status subresource.
    let ar = e.widgets_crd().await;
    let widgets = e.dynamic(&ar);
    widgets
        .create(&PostParams::default(), &widget("s", 3))
        .await
        .unwrap();
    let status =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {"phase": "Ready"}});
    let w = widgets
        .patch_status(
            "s",
            &PatchParams::apply("ctl").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(w.data["status"]["phase"], "Ready");
    assert_eq!(w.data["spec"]["size"], 3);
    let mf = w.metadata.managed_fields.unwrap();
    assert!(
        mf.iter().any(|m| m.manager.as_deref() == Some("ctl")
            && m.operation.as_deref() == Some("Apply")
            && m.subresource.as_deref() == Some("status")),
        "{mf:?}"
    );
    // Strategic merge patch on a custom resource: 415 with the real message.
    let ar = e.widgets_crd().await;
    e.dynamic(&ar)
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let s = api_err(
        e.dynamic(&ar)
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 2}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (415, "UnsupportedMediaType"));
    assert!(
        s.message
            .starts_with("the body of the request was in an unknown format"),
        "{}",
        s.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_crd_schema_prunes_defaults_and_validates() {
    let e = env("f10").await;
    let ar = e.widgets_crd().await;
    let widgets = e.dynamic(&ar);
    let mut w = widget("w", 2);
    w.data["spec"]["unknown"] = json!(1);
    w.data["spec"]["extra"] = json!({"free": {"form": true}});
    let pp = PostParams::default();
    let made = e
        .raw(
            "POST",
            "/apis/example.com/v1/namespaces/f10/widgets?fieldValidation=Ignore",
            None,
            Some("application/json"),
            serde_json::to_vec(&w).unwrap(),
        )
        .await
        .unwrap();
    assert!(made["spec"].get("unknown").is_none(), "pruned: {made}");
    assert_eq!(
        made["spec"]["extra"]["free"]["form"], true,
        "preserve-unknown-fields kept"
    );
    assert_eq!(made["spec"]["color"], "blue", "default applied");
    let mut bad = widget("bad", 0);
    bad.data["spec"]["color"] = json!("purple");
    let s = api_err(widgets.create(&pp, &bad).await.unwrap_err());
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message.contains("spec.color") && s.message.contains("spec.size"),
        "{}",
        s.message
    );
    let s = api_err(widgets.create(&pp, &obj(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "nospec"}, "spec": {}}))).await.unwrap_err());
    assert!(
        s.message.contains("spec.size: Required value"),
        "{}",
        s.message
    );
    let s = api_err(widgets.create(&pp, &obj(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "t"}, "spec": {"size": "big"}}))).await.unwrap_err());
    assert_eq!(s.code, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_namespaces_gate_and_cascade() {
    let e = env("f11").await;
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "nowhere");
    let s = api_err(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "c"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 404);
    assert_eq!(s.message, "namespaces \"nowhere\" not found");
    let nss: Api<Namespace> = Api::all(e.client.clone());
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "f11",
    ] {
        let n = nss.get(ns).await.unwrap();
        assert_eq!(
            n.metadata
                .labels
                .unwrap()
                .get("kubernetes.io/metadata.name")
                .map(String::as_str),
            Some(ns)
        );
    }
    let s = api_err(
        nss.delete("default", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (s.code, s.message.as_str()),
        (
            403,
            "namespaces \"default\" is forbidden: this namespace may not be deleted"
        )
    );
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f11");
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "plain"}})),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    nss.delete("f11", &DeleteParams::default()).await.unwrap();
    // Terminating: no new content, the finalized object waits.
    eventually("plain configmap gone", || async {
        cms.get_opt("plain").await.unwrap().is_none()
    })
    .await;
    let s = api_err(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "late"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 403);
    assert!(
        nss.get("f11")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref()
            == Some("Terminating")
    );
    assert!(
        cms.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("namespace gone", || async {
        nss.get_opt("f11").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_finalizers_and_propagation_policies() {
    let e = env("f12").await;
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f12");
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    cms.delete("f", &DeleteParams::default()).await.unwrap();
    let held = cms.get("f").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let s = api_err(
        cms.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 422, "no new finalizers while deleting");
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::<Value>::Json(
            serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers/0"}]))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("f").await.unwrap().is_none());

    async fn family(cms: &Api<ConfigMap>, owner: &str) -> ConfigMap {
        let o = cms
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": owner}})),
            )
            .await
            .unwrap();
        let r = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": o.metadata.uid, "controller": true, "blockOwnerDeletion": true}]);
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": format!("{owner}-child"), "ownerReferences": r}})),
        )
        .await
        .unwrap();
        o
    }
    // Background: the owner goes at once, the dependent soon after.
    family(&cms, "bg").await;
    cms.delete("bg", &DeleteParams::background()).await.unwrap();
    assert!(cms.get_opt("bg").await.unwrap().is_none());
    eventually("background dependent collected", || async {
        cms.get_opt("bg-child").await.unwrap().is_none()
    })
    .await;
    // Orphan: the dependent stays, without the owner reference.
    family(&cms, "or").await;
    cms.delete("or", &DeleteParams::orphan()).await.unwrap();
    eventually("orphaning owner gone", || async {
        cms.get_opt("or").await.unwrap().is_none()
    })
    .await;
    let child = cms.get("or-child").await.unwrap();
    assert!(
        child
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    // Foreground: the owner waits (foregroundDeletion) until the dependent is gone.
    family(&cms, "fg").await;
    cms.patch(
        "fg-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/slow"]}})),
    )
    .await
    .unwrap();
    cms.delete("fg", &DeleteParams::foreground()).await.unwrap();
    eventually("dependent marked for deletion", || async {
        cms.get("fg-child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    let owner = cms.get("fg").await.unwrap();
    assert!(
        owner
            .metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    cms.patch(
        "fg-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("foreground owner gone", || async {
        cms.get_opt("fg").await.unwrap().is_none()
    })
    .await;
    // kubectl delete waits for a finalizer-free object and reports it.
    assert!(
        e.kubectl_ok(&["delete", "configmap", "or-child", "-n", "f12"])
            .await
            .contains("deleted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_watch_streams_changes_bookmarks_and_selectors() {
    let e = env_with(
        "f13",
        SimConfig {
            bookmark_interval: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f13");
    let a = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "a", "labels": {"app": "x"}}})),
        )
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    let stream = cms
        .watch(&WatchParams::default().labels("app=x").timeout(10), &rv)
        .await
        .unwrap();
    let mut stream = stream.boxed();
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "other"}})),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "b", "labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    cms.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    cms.delete("b", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(DEADLINE, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match ev {
            WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.unwrap()),
            WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.unwrap()),
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        });
    }
    // `a` leaving the selector is a DELETED for this watch.
    assert_eq!(
        seen,
        vec!["ADDED b", "MODIFIED b", "DELETED a", "DELETED b"]
    );

    // Field selectors and bookmarks.
    let current = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(
            &WatchParams::default().fields("metadata.name=z").timeout(10),
            &current,
        )
        .await
        .unwrap()
        .boxed();
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "y"}})),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "z"}})),
    )
    .await
    .unwrap();
    let mut got_z = false;
    let mut bookmarks = 0;
    while !(got_z && bookmarks > 0) {
        match tokio::time::timeout(DEADLINE, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(o) => {
                assert_eq!(o.metadata.name.as_deref(), Some("z"));
                got_z = true;
            }
            WatchEvent::Bookmark(b) => {
                assert!(!b.metadata.resource_version.is_empty());
                bookmarks += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // timeoutSeconds closes the stream.
    let started = std::time::Instant::now();
    let mut s = cms
        .watch(&WatchParams::default().timeout(1), &current)
        .await
        .unwrap()
        .boxed();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("closed by the server")
    {
        ev.unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Metadata-only lists and watches (PartialObjectMetadata), as kube-rs's metadata_watcher uses.
    let meta = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert!(
        meta.items
            .iter()
            .any(|m| m.metadata.name.as_deref() == Some("z"))
    );
    let mut mw = cms
        .watch_metadata(&WatchParams::default().timeout(10), &current)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(DEADLINE, mw.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Added(m) => assert_eq!(m.metadata.name.as_deref(), Some("y")),
        other => panic!("unexpected {other:?}"),
    }
    // An unsupported field selector is refused.
    let s = api_err(
        cms.list(&ListParams::default().fields("data.k=v"))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.message, "field label not supported: data.k");

    // kube-rs's watcher (list then watch, bookmarks) sees a change.
    let w = kube::runtime::watcher(cms.clone(), kube::runtime::watcher::Config::default());
    let mut w = w.boxed();
    let mut saw_init = false;
    loop {
        match tokio::time::timeout(DEADLINE, w.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            kube::runtime::watcher::Event::InitDone => {
                saw_init = true;
                cms.create(
                    &PostParams::default(),
                    &obj(json!({"metadata": {"name": "late"}})),
                )
                .await
                .unwrap();
            }
            kube::runtime::watcher::Event::Apply(o)
                if saw_init && o.metadata.name.as_deref() == Some("late") =>
            {
                break;
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f13_watch_from_old_version_is_410() {
    let e = env_with(
        "f13old",
        SimConfig {
            watch_history: 5,
            ..Default::default()
        },
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f13old");
    let first = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "c0"}})),
        )
        .await
        .unwrap();
    for i in 1..10 {
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": format!("c{i}")}})),
        )
        .await
        .unwrap();
    }
    let old = first.metadata.resource_version.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(5), &old)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(DEADLINE, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(s) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
            assert!(
                s.message.starts_with("too old resource version"),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // kube-rs's watcher recovers by relisting (it never sees the 410 as fatal).
    let w = kube::runtime::watcher(cms.clone(), kube::runtime::watcher::Config::default());
    let objs: Vec<ConfigMap> = {
        use kube::runtime::WatchStreamExt;
        let mut s = w.default_backoff().applied_objects().boxed();
        let mut v = Vec::new();
        while v.len() < 10 {
            v.push(
                tokio::time::timeout(DEADLINE, s.try_next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap(),
            );
        }
        v
    };
    assert_eq!(objs.len(), 10);
    // kube-rs's streaming-list watcher (sendInitialEvents) gets the initial state and InitDone.
    let mut sl = kube::runtime::watcher(
        cms.clone(),
        kube::runtime::watcher::Config::default().streaming_lists(),
    )
    .boxed();
    let mut initial = 0;
    loop {
        match tokio::time::timeout(DEADLINE, sl.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            kube::runtime::watcher::Event::InitApply(_) => initial += 1,
            kube::runtime::watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, 10);
    // sendInitialEvents (streaming list) is served: initial ADDEDs, then the end bookmark.
    let resp = e.http(reqwest::Method::GET, "/api/v1/namespaces/f13old/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1").await;
    let text = resp.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.iter().filter(|e| e["type"] == "ADDED").count(), 10);
    let end = events
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("end bookmark");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f23_events_share_one_store_and_leases_use_optimistic_concurrency() {
    let e = env("f23").await;
    let pods: Api<Pod> = Api::namespaced(e.client.clone(), "f23");
    let pod = pods
        .create(&PostParams::default(), &obj(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})))
        .await
        .unwrap();
    // kube-rs's Recorder writes events.k8s.io/v1 Events.
    let recorder = kube::runtime::events::Recorder::new(
        e.client.clone(),
        kube::runtime::events::Reporter {
            controller: "f23-test".into(),
            instance: None,
        },
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some("p".into()),
        namespace: Some("f23".into()),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    };
    recorder
        .publish(
            &kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Warning,
                reason: "GateHeld".into(),
                note: Some("waiting for pre-deployment checks".into()),
                action: "Check".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .unwrap();
    // A repeat of the same event is folded into a series (a patch through events.k8s.io/v1).
    recorder
        .publish(
            &kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Warning,
                reason: "GateHeld".into(),
                note: Some("waiting for pre-deployment checks".into()),
                action: "Check".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .unwrap();
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(e.client.clone(), "f23");
    let listed = core
        .list(
            &ListParams::default()
                .fields("involvedObject.name=p,involvedObject.kind=Pod,type=Warning"),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].message.as_deref(),
        Some("waiting for pre-deployment checks")
    );
    assert_eq!(listed.items[0].reason.as_deref(), Some("GateHeld"));
    assert_eq!(
        listed.items[0].series.as_ref().and_then(|s| s.count),
        Some(2),
        "{:?}",
        listed.items[0]
    );
    let new: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(e.client.clone(), "f23");
    // A core Event is listed through events.k8s.io too.
    core.create(&PostParams::default(), &obj(json!({"metadata": {"name": "legacy"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "f23"},
        "reason": "Legacy", "message": "old style", "type": "Normal", "source": {"component": "old"}})))
        .await
        .unwrap();
    let all = new.list(&ListParams::default()).await.unwrap();
    let legacy = all
        .items
        .iter()
        .find(|e| e.metadata.name.as_deref() == Some("legacy"))
        .expect("core event visible in events.k8s.io");
    assert_eq!(legacy.note.as_deref(), Some("old style"));
    assert_eq!(
        legacy.regarding.as_ref().unwrap().name.as_deref(),
        Some("p")
    );
    // kubectl shows them.
    let out = e.kubectl_ok(&["get", "events", "-n", "f23"]).await;
    assert!(out.contains("GateHeld") && out.contains("Legacy"), "{out}");
    let out = e.kubectl_ok(&["describe", "pod", "p", "-n", "f23"]).await;
    assert!(
        out.contains("GateHeld") && out.contains("waiting for pre-deployment checks"),
        "{out}"
    );

    // Leases: a stale holder loses.
    let leases: Api<Lease> = Api::namespaced(e.client.clone(), "f23");
    let l = leases.create(&PostParams::default(), &obj(json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))).await.unwrap();
    let mut b = l.clone();
    b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("leader", &PostParams::default(), &b)
        .await
        .unwrap();
    let mut c = l.clone();
    c.spec.as_mut().unwrap().holder_identity = Some("c".into());
    assert_eq!(
        api_err(
            leases
                .replace("leader", &PostParams::default(), &c)
                .await
                .unwrap_err()
        )
        .code,
        409
    );
    assert_eq!(
        leases
            .get("leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("b")
    );
}

/// The "done when" of the issue: a scripted kubectl session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_session_from_the_issue() {
    let e = env("session-setup").await;
    let dir = tempfile::tempdir().unwrap();
    let crd = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/crds/keptnworkloads.lifecycle.keptn.sh.yaml");
    let manifests = dir.path().join("all.yaml");
    std::fs::write(
        &manifests,
        r#"apiVersion: v1
kind: Namespace
metadata: {name: session}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: session, labels: {app: web}}
spec:
  containers: [{name: app, image: "nginx:1"}]
"#,
    )
    .unwrap();
    e.kubectl_ok(&["apply", "-f", manifests.to_str().unwrap()])
        .await;
    e.kubectl_ok(&["apply", "-f", crd.to_str().unwrap()]).await;
    e.kubectl_ok(&[
        "wait",
        "--for=condition=established",
        "crd/keptnworkloads.lifecycle.keptn.sh",
        "--timeout=20s",
    ])
    .await;
    let cr = r#"apiVersion: lifecycle.keptn.sh/v1
kind: KeptnWorkload
metadata: {name: shop-web, namespace: session}
spec:
  app: shop
  version: "1.0"
  resourceReference: {kind: Deployment, name: web, uid: "00000000-0000-0000-0000-000000000000"}
"#;
    let o = e.kubectl_stdin(&["apply", "-f", "-"], Some(cr)).await;
    assert!(o.ok, "{}", o.stderr);
    // Printer columns shown.
    let out = e
        .kubectl_ok(&["get", "keptnworkloads", "-n", "session"])
        .await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "APPNAME", "VERSION"], "{out}");
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(3)
            .eq(["shop-web", "shop", "1.0"]),
        "{out}"
    );
    let out = e.kubectl_ok(&["get", "pod", "web", "-n", "session"]).await;
    assert!(out.contains("Pending"), "{out}");

    // `kubectl get -w` sees an update.
    let mut watch = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&e.sim.kubeconfig)
        .arg("--cache-dir")
        .arg(e.cache.path())
        .args([
            "get",
            "keptnworkloads",
            "-n",
            "session",
            "-w",
            "--request-timeout=30s",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = {
        use tokio::io::AsyncBufReadExt;
        tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines()
    };
    let first = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("NAME"), "{first}");
    tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    e.kubectl_ok(&[
        "patch",
        "keptnworkload",
        "shop-web",
        "-n",
        "session",
        "--type=merge",
        "-p",
        r#"{"spec":{"version":"2.0"}}"#,
    ])
    .await;
    let update = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        update.contains("shop-web") && update.contains("2.0"),
        "{update}"
    );
    watch.kill().await.unwrap();

    // Each patch type.
    e.kubectl_ok(&["patch", "keptnworkload", "shop-web", "-n", "session", "--type=json", "-p", r#"[{"op":"test","path":"/spec/version","value":"2.0"},{"op":"replace","path":"/spec/app","value":"store"}]"#]).await;
    e.kubectl_ok(&[
        "patch",
        "pod",
        "web",
        "-n",
        "session",
        "-p",
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    ])
    .await;
    e.kubectl_ok(&[
        "patch",
        "pod",
        "web",
        "-n",
        "session",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"note":"x"}}}"#,
    ])
    .await;
    let o = e
        .kubectl(&[
            "patch",
            "keptnworkload",
            "shop-web",
            "-n",
            "session",
            "-p",
            r#"{"spec":{"app":"x"}}"#,
        ])
        .await;
    assert!(
        !o.ok
            && o.stderr
                .contains("application/strategic-merge-patch+json is not supported"),
        "{}",
        o.stderr
    );
    let labels = e
        .kubectl_ok(&[
            "get",
            "pod",
            "web",
            "-n",
            "session",
            "-o",
            "jsonpath={.metadata.labels.tier} {.metadata.annotations.note}",
        ])
        .await;
    assert_eq!(labels, "front x");
    assert_eq!(
        e.kubectl_ok(&[
            "get",
            "keptnworkload",
            "shop-web",
            "-n",
            "session",
            "-o",
            "jsonpath={.spec.app}"
        ])
        .await,
        "store"
    );

    // create, describe, scale, set image, wait.
    let dep = dir.path().join("dep.yaml");
    std::fs::write(
        &dep,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: shop, namespace: session}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: shop}}\n  template:\n    metadata: {labels: {app: shop}}\n    spec:\n      containers: [{name: shop, image: \"shop:1\"}]\n",
    )
    .unwrap();
    assert!(
        e.kubectl_ok(&["create", "-f", dep.to_str().unwrap()])
            .await
            .contains("deployment.apps/shop created")
    );
    e.kubectl_ok(&[
        "scale",
        "deployment",
        "shop",
        "-n",
        "session",
        "--replicas=3",
    ])
    .await;
    e.kubectl_ok(&[
        "set",
        "image",
        "deployment/shop",
        "shop=shop:2",
        "-n",
        "session",
    ])
    .await;
    let got = e.kubectl_ok(&["get", "deployment", "shop", "-n", "session", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation}"]).await;
    assert_eq!(got, "3 shop:2 3");
    let described = e
        .kubectl_ok(&["describe", "deployment", "shop", "-n", "session"])
        .await;
    assert!(
        described.contains("shop:2") && described.contains("3 desired"),
        "{described}"
    );
    e.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.spec.replicas}=3",
        "deployment/shop",
        "-n",
        "session",
        "--timeout=20s",
    ])
    .await;
    let out = e.kubectl_ok(&["get", "deployments", "-n", "session"]).await;
    assert!(
        out.lines().next().unwrap().split_whitespace().eq([
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE"
        ]),
        "{out}"
    );
    // kubectl's typed generators send protobuf, which the emulator refuses loudly.
    let o = e
        .kubectl(&[
            "create",
            "configmap",
            "gen",
            "-n",
            "session",
            "--from-literal=a=b",
        ])
        .await;
    assert!(!o.ok && o.stderr.contains("protobuf"), "{}", o.stderr);

    // Delete with a finalizer pending: the object stays with a deletionTimestamp, then goes.
    e.kubectl_ok(&[
        "patch",
        "keptnworkload",
        "shop-web",
        "-n",
        "session",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["keptn.sh/hold"]}}"#,
    ])
    .await;
    e.kubectl_ok(&[
        "delete",
        "keptnworkload",
        "shop-web",
        "-n",
        "session",
        "--wait=false",
    ])
    .await;
    let ts = e
        .kubectl_ok(&[
            "get",
            "keptnworkload",
            "shop-web",
            "-n",
            "session",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .await;
    assert!(!ts.is_empty());
    e.kubectl_ok(&[
        "patch",
        "keptnworkload",
        "shop-web",
        "-n",
        "session",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    let o = e
        .kubectl(&["get", "keptnworkload", "shop-web", "-n", "session"])
        .await;
    assert!(!o.ok && o.stderr.contains("NotFound"), "{}", o.stderr);
    e.kubectl_ok(&["delete", "namespace", "session", "--timeout=20s"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f03_builtin_unknown_fields_follow_field_validation() {
    let e = env("f03b").await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("pod.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nmetadata: {name: typo, namespace: f03b}\nspec:\n  containers: [{name: c, image: nginx, imagePolicy: Always}]\n").unwrap();
    let o = e.kubectl(&["apply", "-f", bad.to_str().unwrap()]).await;
    assert!(
        !o.ok
            && o.stderr
                .contains("unknown field \"spec.containers[0].imagePolicy\""),
        "{}",
        o.stderr
    );
    let o = e
        .kubectl(&["apply", "--validate=false", "-f", bad.to_str().unwrap()])
        .await;
    assert!(o.ok, "{}", o.stderr);
    let pods: Api<Pod> = Api::namespaced(e.client.clone(), "f03b");
    let raw = e
        .raw(
            "GET",
            "/api/v1/namespaces/f03b/pods/typo",
            None,
            None,
            vec![],
        )
        .await
        .unwrap();
    assert!(
        raw["spec"]["containers"][0].get("imagePolicy").is_none(),
        "unknown field dropped"
    );
    pods.get("typo").await.unwrap();
    // Mistyped values are a decoding error (400), as on a real server.
    let s = api_err(
        e.raw(
            "POST",
            "/apis/apps/v1/namespaces/f03b/deployments",
            None,
            Some("application/json"),
            br#"{"metadata":{"name":"d"},"spec":{"replicas":"three"}}"#.to_vec(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 400);
    assert!(
        s.message
            .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment"),
        "{}",
        s.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f03_scale_binding_and_graceful_pod_deletion() {
    let e = env("f03s").await;
    let deploys: Api<Deployment> = Api::namespaced(e.client.clone(), "f03s");
    let d: Deployment = obj(
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}),
    );
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(
        deploys.get("web").await.unwrap().spec.unwrap().replicas,
        Some(5)
    );
    // The scheduler's binding, then a delete that waits for the kubelet.
    let pods: Api<Pod> = Api::namespaced(e.client.clone(), "f03s");
    pods.create(&PostParams::default(), &obj(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})))
        .await
        .unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "kubesim-node-1"}});
    e.raw(
        "POST",
        "/api/v1/namespaces/f03s/pods/p/binding",
        None,
        Some("application/json"),
        serde_json::to_vec(&binding).unwrap(),
    )
    .await
    .unwrap();
    let bound = pods.get("p").await.unwrap();
    assert_eq!(
        bound.spec.unwrap().node_name.as_deref(),
        Some("kubesim-node-1")
    );
    let s = api_err(
        e.raw(
            "POST",
            "/api/v1/namespaces/f03s/pods/p/binding",
            None,
            Some("application/json"),
            serde_json::to_vec(&binding).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 409);
    // Field selectors the scheduler, kubelet and kubectl use.
    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=kubesim-node-1"))
        .await
        .unwrap();
    assert_eq!(on_node.items.len(), 1);
    let unbound = pods
        .list(&ListParams::default().fields("spec.nodeName="))
        .await
        .unwrap();
    assert!(unbound.items.is_empty());
    let pending = pods
        .list(&ListParams::default().fields("status.phase=Pending,metadata.namespace=f03s"))
        .await
        .unwrap();
    assert_eq!(pending.items.len(), 1);
    assert!(
        pods.list(&ListParams::default().fields("status.phase!=Pending"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let terminating = pods.get("p").await.unwrap();
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    pods.delete(
        "p",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());
    // An unbound pod goes at once.
    pods.create(&PostParams::default(), &obj(json!({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})))
        .await
        .unwrap();
    pods.delete("q", &DeleteParams::default()).await.unwrap();
    assert!(pods.get_opt("q").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f18_dry_run_persists_nothing_and_deletecollection_selects() {
    let e = env("f18").await;
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "f18");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let made = cms
        .create(&dry, &obj(json!({"metadata": {"generateName": "dry-"}})))
        .await
        .unwrap();
    assert!(made.metadata.name.unwrap().starts_with("dry-"));
    assert!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": name, "labels": {"tier": tier}}})),
        )
        .await
        .unwrap();
    }
    cms.patch(
        "a",
        &PatchParams {
            dry_run: true,
            ..Default::default()
        },
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    assert!(cms.get("a").await.unwrap().data.is_none());
    cms.delete(
        "a",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(cms.get_opt("a").await.unwrap().is_some());
    let o = e
        .kubectl(&["delete", "configmap", "b", "-n", "f18", "--dry-run=server"])
        .await;
    assert!(
        o.ok && o.stdout.contains("(server dry run)"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    assert!(cms.get_opt("b").await.unwrap().is_some());
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, vec!["c".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robustness_bad_input_gets_status_errors_and_many_clients_work() {
    let e = env("rob").await;
    let http = reqwest::Client::new();
    let base = e.sim.url.clone();
    let cases: Vec<(reqwest::Method, &str, &str, &[u8])> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/rob/configmaps",
            "application/json",
            b"{not json",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/rob/configmaps",
            "application/json",
            b"[1,2]",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/rob/configmaps",
            "application/json",
            b"{\"metadata\": 5}",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/rob/configmaps",
            "application/json",
            b"{\"kind\": \"Pod\", \"metadata\": {\"name\": \"x\"}}",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/namespaces/rob/pods",
            "application/json",
            b"{\"metadata\": {\"name\": \"x\"}, \"spec\": \"nope\"}",
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/namespaces/rob/configmaps/nothere",
            "application/json",
            b"{}",
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/namespaces/rob/configmaps/x",
            "text/plain",
            b"{}",
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/namespaces/rob/configmaps/x",
            "application/json-patch+json",
            b"{}",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/namespaces/rob/configmaps?labelSelector=a%20in%20(",
            "",
            b"",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/namespaces/rob/configmaps?watch=1&resourceVersion=abc",
            "",
            b"",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/namespaces/rob/configmaps?limit=2&continue=%%%",
            "",
            b"",
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/namespaces/rob/configmaps/x",
            "application/json",
            b"{\"propagationPolicy\": \"Sideways\"}",
        ),
        (reqwest::Method::GET, "/apis/nope/v1/things", "", b""),
        (
            reqwest::Method::GET,
            "/api/v1/namespaces/rob/configmaps/x/y/z/w",
            "",
            b"",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/nodes/n/status",
            "application/json",
            b"{}",
        ),
    ];
    e.raw(
        "POST",
        "/api/v1/namespaces/rob/configmaps",
        None,
        Some("application/json"),
        br#"{"metadata":{"name":"x"}}"#.to_vec(),
    )
    .await
    .unwrap();
    let mut cases = cases;
    cases.push((
        reqwest::Method::PATCH,
        "/api/v1/namespaces/rob/configmaps/x",
        "application/json-patch+json",
        br#"[{"op":"replace","path":"","value":5}]"#,
    ));
    cases.push((
        reqwest::Method::PATCH,
        "/api/v1/namespaces/rob/configmaps/x",
        "application/merge-patch+json",
        b"[]",
    ));
    cases.push((
        reqwest::Method::PATCH,
        "/api/v1/namespaces/rob/configmaps/x",
        "application/strategic-merge-patch+json",
        b"{\"metadata\": []}",
    ));
    cases.push((
        reqwest::Method::PATCH,
        "/api/v1/namespaces/rob/configmaps/x",
        "application/apply-patch+yaml",
        b"- a\n- b",
    ));
    cases.push((
        reqwest::Method::PUT,
        "/api/v1/namespaces/rob/configmaps/x",
        "application/json",
        b"{\"metadata\": {\"name\": \"y\"}}",
    ));
    for (method, path, ct, body) in cases {
        let mut req = http
            .request(method.clone(), format!("{base}{path}"))
            .body(body.to_vec());
        if !ct.is_empty() {
            req = req.header("Content-Type", ct);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let status: Value = resp
            .json()
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: JSON Status"));
        assert!(
            (400..500).contains(&code),
            "{method} {path} -> {code} {status}"
        );
        assert_eq!(status["kind"], "Status", "{method} {path}");
        assert_eq!(status["code"], code);
    }
    // Many clients at once: every create lands with a distinct resourceVersion.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = e.sim.client().unwrap();
        tasks.push(tokio::spawn(async move {
            let cms: Api<ConfigMap> = Api::namespaced(client, "rob");
            cms.create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": format!("c{i}")}})),
            )
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap()
        }));
    }
    let mut rvs = Vec::new();
    for t in tasks {
        rvs.push(t.await.unwrap());
    }
    rvs.sort();
    rvs.dedup();
    assert_eq!(rvs.len(), 40);
    // Pagination.
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "rob");
    let page = cms.list(&ListParams::default().limit(15)).await.unwrap();
    assert_eq!(page.items.len(), 15);
    let token = page.metadata.continue_.clone().expect("continue token");
    let rest = cms
        .list(&ListParams::default().limit(100).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        rest.items.len(),
        26,
        "40 created plus x, 15 on the first page"
    );
    assert!(rest.metadata.continue_.is_none());
    // Shutdown closes open watches and returns promptly.
    let mut open = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let started = std::time::Instant::now();
    let Env { sim, .. } = e;
    sim.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    while let Some(ev) = tokio::time::timeout(DEADLINE, open.next())
        .await
        .expect("watch closed")
    {
        if ev.is_err() {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_with_simulated_controllers() {
    let config = SimConfig {
        controllers: true,
        controllers_config: Some(kubesim::controllers::ControllersConfig::fast(1)),
        ..Default::default()
    };
    let e = env_with("rollout", config).await;
    let dir = tempfile::tempdir().unwrap();
    let dep = dir.path().join("dep.yaml");
    std::fs::write(
        &dep,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: rollout}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: \"web:1\"}]\n",
    )
    .unwrap();
    e.kubectl_ok(&["apply", "-f", dep.to_str().unwrap()]).await;
    let out = e
        .kubectl_ok(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "rollout",
            "--timeout=60s",
        ])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    e.kubectl_ok(&[
        "set",
        "image",
        "deployment/web",
        "web=web:2",
        "-n",
        "rollout",
    ])
    .await;
    let out = e
        .kubectl_ok(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "rollout",
            "--timeout=60s",
        ])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    // `rollout status` counts no terminating pod: the old ones may still be on their way out
    // (their kubelet removes them), so their removal is waited for.
    let images = || async {
        e.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "rollout",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ])
        .await
    };
    eventually("only web:2 pods", || async {
        images().await.split_whitespace().all(|i| i == "web:2")
    })
    .await;
    let pods = images().await;
    assert!(pods.split_whitespace().all(|i| i == "web:2"), "{pods}");
}

/// The install base of the project (CRDs, RBAC, Deployments, Services, PDBs, webhook
/// configurations) applies with `kubectl apply -k`, as the demo does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_base_applies_with_kubectl_kustomize() {
    let e = env("deploy-base").await;
    let base = crate_path("../../deploy/base");
    let out = e.kubectl_ok(&["apply", "-k", base.to_str().unwrap()]).await;
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/keptnworkloads.lifecycle.keptn.sh created"), "{out}");
    assert!(
        out.contains("mutatingwebhookconfiguration.admissionregistration.k8s.io/"),
        "{out}"
    );
    // Idempotent: a second apply changes nothing. (kubectl still says "configured" for PDBs: their
    // selector has patchStrategy replace, so kubectl always sends it; the server sees a no-op.)
    let rvs = |out: String| out.split_whitespace().map(String::from).collect::<Vec<_>>();
    let args = [
        "get",
        "deploy,svc,pdb,sa,secret",
        "-n",
        "portcullis-system",
        "-o",
        "jsonpath={.items[*].metadata.resourceVersion}",
    ];
    let before = rvs(e.kubectl_ok(&args).await);
    let again = e.kubectl_ok(&["apply", "-k", base.to_str().unwrap()]).await;
    assert!(
        again
            .lines()
            .all(|l| l.ends_with("unchanged") || l.starts_with("poddisruptionbudget.policy/")),
        "{again}"
    );
    assert_eq!(rvs(e.kubectl_ok(&args).await), before);
    let crds = e.kubectl_ok(&["get", "crds", "-o", "name"]).await;
    assert_eq!(crds.lines().count(), 12, "{crds}");
}

/// Every install overlay applies with `kubectl apply -k`, and what the overlay changes is what
/// the server stores (issue "Deployable": overlays render and apply to kubesim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_overlays_apply_with_kubectl_kustomize() {
    let overlays = crate_path("../../deploy/overlays");
    let mut names: Vec<String> = std::fs::read_dir(&overlays)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kustomization.yaml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 6, "overlays found: {names:?}");
    for name in names {
        let e = env(&format!("overlay-{name}")).await;
        if name == "cert-manager" {
            e.apply_file(&crate_path("tests/fixtures/cert-manager-crds.yaml"))
                .await;
            e.kubectl_ok(&[
                "wait",
                "--for=condition=established",
                "crd/issuers.cert-manager.io",
                "crd/certificates.cert-manager.io",
            ])
            .await;
        }
        let dir = overlays.join(&name);
        let out = e.kubectl_ok(&["apply", "-k", dir.to_str().unwrap()]).await;
        assert!(
            out.contains("mutatingwebhookconfiguration.admissionregistration.k8s.io/"),
            "{name}: {out}"
        );
        let policies = e
            .kubectl_ok(&[
                "get",
                "mutatingwebhookconfigurations",
                "-o",
                "jsonpath={.items[*].webhooks[*].failurePolicy}",
            ])
            .await;
        let expected = if name == "failure-policy-ignore" {
            "Ignore"
        } else {
            "Fail"
        };
        assert!(
            !policies.is_empty() && policies.split_whitespace().all(|p| p == expected),
            "{name}: failurePolicy {policies}"
        );
        match name.as_str() {
            "cert-manager" => {
                let injected = e
                    .kubectl_ok(&[
                        "get",
                        "mutatingwebhookconfigurations",
                        "-o",
                        "jsonpath={.items[*].metadata.annotations.cert-manager\\.io/inject-ca-from}",
                    ])
                    .await;
                assert!(injected.contains("portcullis-system/"), "{injected}");
                let certs = e
                    .kubectl_ok(&[
                        "get",
                        "certificates",
                        "-n",
                        "portcullis-system",
                        "-o",
                        "name",
                    ])
                    .await;
                assert_eq!(certs.lines().count(), 2, "{certs}");
            }
            "host-network" => {
                let host = e
                    .kubectl_ok(&[
                        "get",
                        "deployments",
                        "-n",
                        "portcullis-system",
                        "-o",
                        "jsonpath={.items[*].spec.template.spec.hostNetwork}",
                    ])
                    .await;
                assert!(host.contains("true"), "{host}");
            }
            "promotion" => {
                let env_vars = e
                    .kubectl_ok(&[
                        "get",
                        "deployments",
                        "-n",
                        "portcullis-system",
                        "-o",
                        "jsonpath={.items[*].spec.template.spec.containers[*].env[*].name}",
                    ])
                    .await;
                assert!(env_vars.contains("PROMOTION_TASKS_ENABLED"), "{env_vars}");
            }
            "allowed-namespaces" | "denied-namespaces" => {
                let selector = e
                    .kubectl_ok(&[
                        "get",
                        "mutatingwebhookconfigurations",
                        "-o",
                        "jsonpath={.items[*].webhooks[*].namespaceSelector}",
                    ])
                    .await;
                let op = if name == "allowed-namespaces" {
                    "\"In\""
                } else {
                    "\"NotIn\""
                };
                assert!(selector.contains(op), "{name}: {selector}");
            }
            _ => {}
        }
        e.sim.shutdown().await;
    }
}

/// `kubesim serve` writes a kubeconfig that kubectl and kube-rs use unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_cli_writes_a_kubeconfig_for_kubectl_and_kube_rs() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--controllers=false",
            "--service",
            "webhooks/hook=127.0.0.1:9443",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually("kubeconfig written", || async { kubeconfig.exists() }).await;
    let out = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["get", "namespaces", "-o", "name"])
        .env_remove("KUBECONFIG")
        .output()
        .await
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        vec![
            "namespace/default",
            "namespace/kube-node-lease",
            "namespace/kube-public",
            "namespace/kube-system"
        ]
    );
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let client = Client::try_from(config).unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    child.kill().await.unwrap();
}

/// F21 through HTTP: scheduling gates can only be removed, other pod spec fields are immutable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f21_scheduling_gates_can_only_be_removed() {
    let e = env("f21").await;
    let pods: Api<Pod> = Api::namespaced(e.client.clone(), "f21");
    pods.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "gated"}, "spec": {"schedulingGates": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c", "image": "nginx:1"}]}})),
    )
    .await
    .unwrap();
    let add = json!([{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": "c"}}]);
    let s = api_err(
        pods.patch(
            "gated",
            &PatchParams::default(),
            &Patch::<Value>::Json(serde_json::from_value(add).unwrap()),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains("spec.schedulingGates")
            && s.message.contains("Forbidden: only deletion is allowed"),
        "{}",
        s.message
    );
    // The image may change; other spec fields may not.
    let image = json!({"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}});
    pods.patch("gated", &PatchParams::default(), &Patch::Strategic(image))
        .await
        .unwrap();
    let restart = json!({"spec": {"restartPolicy": "Never"}});
    let s = api_err(
        pods.patch("gated", &PatchParams::default(), &Patch::Merge(restart))
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 422, "{}", s.message);
    assert!(
        s.message.contains("pod updates may not change fields"),
        "{}",
        s.message
    );
    // Removing gates, in any order, is allowed.
    let remove = json!([{"op": "remove", "path": "/spec/schedulingGates/1"}]);
    pods.patch(
        "gated",
        &PatchParams::default(),
        &Patch::<Value>::Json(serde_json::from_value(remove).unwrap()),
    )
    .await
    .unwrap();
    let remove = json!([{"op": "remove", "path": "/spec/schedulingGates"}]);
    let p = pods
        .patch(
            "gated",
            &PatchParams::default(),
            &Patch::<Value>::Json(serde_json::from_value(remove).unwrap()),
        )
        .await
        .unwrap();
    assert!(
        p.spec
            .unwrap()
            .scheduling_gates
            .unwrap_or_default()
            .is_empty()
    );
}

/// The Service registry allocates cluster IPs and node ports, and keeps them on update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_cluster_ips_and_node_ports() {
    let e = env("svc").await;
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(e.client.clone(), "svc");
    let a = svcs
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}})),
        )
        .await
        .unwrap();
    let b = svcs
        .create(&PostParams::default(), &obj(json!({"metadata": {"name": "b"}, "spec": {"type": "NodePort", "ports": [{"port": 443}]}})))
        .await
        .unwrap();
    let (a, b) = (a.spec.unwrap(), b.spec.unwrap());
    assert!(
        a.cluster_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    assert_ne!(a.cluster_ip, b.cluster_ip);
    let node_port = b.ports.unwrap()[0].node_port.expect("node port");
    assert!((30000..=32767).contains(&node_port));
    let headless = svcs
        .create(&PostParams::default(), &obj(json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})))
        .await
        .unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    // kubectl apply of a manifest without the allocated values keeps them.
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("svc.yaml");
    std::fs::write(&m, "apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: svc}\nspec: {type: NodePort, ports: [{port: 443}], selector: {app: b}}\n").unwrap();
    e.kubectl_ok(&["replace", "-f", m.to_str().unwrap()]).await;
    let after = svcs.get("b").await.unwrap().spec.unwrap();
    assert_eq!(after.cluster_ip, b.cluster_ip);
    assert_eq!(after.ports.unwrap()[0].node_port, Some(node_port));
    let out = e.kubectl_ok(&["get", "svc", "-n", "svc"]).await;
    assert!(out.contains(a.cluster_ip.as_deref().unwrap()), "{out}");
}
