//! Opt-in RBAC (`SimConfig::rbac`) over HTTP: ServiceAccount tokens through kube-rs and the real
//! `/usr/bin/kubectl`, 401 for unknown tokens, 403 `Forbidden` Status for denied requests, and
//! the simulated control plane still working under enforcement.

use std::path::Path;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::{Client, Config};
use kubesim::{Sim, SimConfig, SimHandle};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

async fn start(rbac: bool) -> SimHandle {
    Sim::start(SimConfig {
        rbac,
        ..Default::default()
    })
    .await
    .expect("kubesim starts")
}

async fn client_of(kubeconfig: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

async fn apply(admin: &Client, ns: &str, objects: serde_json::Value) {
    for obj in objects.as_array().expect("array") {
        let kind = obj["kind"].as_str().expect("kind");
        let plural = match kind {
            "Namespace" => "namespaces",
            "Role" => "roles",
            "RoleBinding" => "rolebindings",
            "ClusterRole" => "clusterroles",
            "ClusterRoleBinding" => "clusterrolebindings",
            other => panic!("{other}"),
        };
        let ar = kube::core::ApiResource {
            group: if kind == "Namespace" {
                String::new()
            } else {
                "rbac.authorization.k8s.io".into()
            },
            version: "v1".into(),
            api_version: obj["apiVersion"].as_str().expect("apiVersion").into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let dynobj: kube::core::DynamicObject =
            serde_json::from_value(obj.clone()).expect("object");
        let api: Api<kube::core::DynamicObject> = if matches!(kind, "Role" | "RoleBinding") {
            Api::namespaced_with(admin.clone(), ns, &ar)
        } else {
            Api::all_with(admin.clone(), &ar)
        };
        api.create(&PostParams::default(), &dynobj)
            .await
            .unwrap_or_else(|e| panic!("creating {kind}: {e}"));
    }
}

/// Namespaces `a` and `b`, a ServiceAccount `a/app` that may read and create ConfigMaps in `a`
/// (a RoleBinding to a ClusterRole), touch only the Lease `mine` in `a`, and list pods
/// cluster-wide but not patch their status.
async fn policy(admin: &Client) {
    apply(
        admin,
        "a",
        json!([
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "cm-rw"},
             "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "app-cm", "namespace": "a"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-rw"},
             "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "a"}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "lease", "namespace": "a"},
             "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                       {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["mine"], "verbs": ["get", "update", "delete"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "lease", "namespace": "a"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lease"},
             "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "a"}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "pod-reader"},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "get"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "app-pods"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
             "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "a"}]}
        ]),
    )
    .await;
}

/// kubesim with RBAC on and [`policy`] applied; returns it and the admin client.
async fn start_with_policy() -> (SimHandle, Client) {
    let sim = start(true).await;
    let admin = sim.client().unwrap();
    policy(&admin).await;
    (sim, admin)
}

/// `GET /api/v1/namespaces` on `sim`, with `token` as the bearer token if given.
async fn list_namespaces(sim: &SimHandle, token: Option<&str>) -> reqwest::Response {
    let request = reqwest::Client::new().get(format!("{}/api/v1/namespaces", sim.url));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

/// Runs `/usr/bin/kubectl` with `kubeconfig` (and no `KUBECONFIG` from the environment).
async fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("kubectl runs")
}

fn status_code(e: &kube::Error) -> Option<(u16, String, String)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.reason.clone(), s.message.clone())),
        _ => None,
    }
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

fn lease(name: &str) -> Lease {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {}})).unwrap()
}

#[tokio::test]
async fn service_account_gets_what_its_bindings_grant_and_403_otherwise() {
    let (sim, admin) = start_with_policy().await;
    let sa = client_of(&sim.service_account_kubeconfig("a", "app").unwrap()).await;

    // RoleBinding to a ClusterRole: allowed in its namespace only.
    let cms_a: Api<ConfigMap> = Api::namespaced(sa.clone(), "a");
    cms_a
        .create(&PostParams::default(), &cm("c1"))
        .await
        .unwrap();
    cms_a.get("c1").await.unwrap();
    assert_eq!(
        cms_a
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let e = cms_a
        .delete("c1", &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        status_code(&e),
        Some((
            403,
            "Forbidden".into(),
            "configmaps \"c1\" is forbidden: User \"system:serviceaccount:a:app\" cannot delete resource \"configmaps\" in API group \"\" in the namespace \"a\"".into()
        ))
    );
    let cms_b: Api<ConfigMap> = Api::namespaced(sa.clone(), "b");
    let e = cms_b
        .create(&PostParams::default(), &cm("c1"))
        .await
        .unwrap_err();
    assert_eq!(status_code(&e).map(|s| s.0), Some(403));
    let e = cms_b.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(
        status_code(&e).map(|s| s.2),
        Some("configmaps is forbidden: User \"system:serviceaccount:a:app\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"b\"".into())
    );
    // A cluster-wide list is not granted by a RoleBinding.
    let all: Api<ConfigMap> = Api::all(sa.clone());
    let e = all.list(&ListParams::default()).await.unwrap_err();
    assert!(
        status_code(&e).unwrap().2.ends_with("at the cluster scope"),
        "{e}"
    );
    // The admin is not limited.
    Api::<ConfigMap>::namespaced(admin.clone(), "a")
        .delete("c1", &DeleteParams::default())
        .await
        .unwrap();
    // kubesim recorded each refusal.
    let denials = sim.rbac_denials();
    assert_eq!(denials.len(), 4, "{denials:#?}");
    assert!(denials[0].starts_with("configmaps \"c1\" is forbidden"));
    // Nothing was deleted by the denied request before that.
    assert!(
        cms_a
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn resource_names_watch_and_subresources() {
    let (sim, admin) = start_with_policy().await;
    let sa = client_of(&sim.service_account_kubeconfig("a", "app").unwrap()).await;

    // Leases: create is allowed without a name, everything else only on `mine`.
    let leases: Api<Lease> = Api::namespaced(sa.clone(), "a");
    leases
        .create(&PostParams::default(), &lease("mine"))
        .await
        .unwrap();
    leases
        .create(&PostParams::default(), &lease("other"))
        .await
        .unwrap();
    let mut l = leases.get("mine").await.unwrap();
    l.spec.as_mut().unwrap().holder_identity = Some("me".into());
    leases
        .replace("mine", &PostParams::default(), &l)
        .await
        .unwrap();
    let e = leases.get("other").await.unwrap_err();
    assert_eq!(status_code(&e).map(|s| s.0), Some(403));
    let e = leases.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(
        status_code(&e).map(|s| s.0),
        Some(403),
        "list ignores resourceNames rules"
    );
    leases
        .delete("mine", &DeleteParams::default())
        .await
        .unwrap();
    let e = leases
        .delete("other", &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(status_code(&e).map(|s| s.0), Some(403));

    // ConfigMaps in `a`: watch is its own verb (granted); pods: list granted, watch not.
    let cms: Api<ConfigMap> = Api::namespaced(sa.clone(), "a");
    let mut stream = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    Api::<ConfigMap>::namespaced(admin.clone(), "a")
        .create(&PostParams::default(), &cm("seen"))
        .await
        .unwrap();
    let ev = tokio::time::timeout(DEADLINE, stream.try_next())
        .await
        .expect("a watch event")
        .unwrap();
    assert!(ev.is_some());
    let pods: Api<Pod> = Api::all(sa.clone());
    pods.list(&ListParams::default()).await.unwrap();
    let e = pods.watch(&WatchParams::default(), "0").await.err();
    assert_eq!(e.as_ref().and_then(status_code).map(|s| s.0), Some(403));

    // pods/status needs its own rule: `get pods` does not grant it.
    let admin_pods: Api<Pod> = Api::namespaced(admin.clone(), "a");
    admin_pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let sa_pods: Api<Pod> = Api::namespaced(sa.clone(), "a");
    sa_pods.get("p").await.unwrap();
    let e = sa_pods
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"message": "x"}})),
        )
        .await
        .unwrap_err();
    let (code, _, message) = status_code(&e).unwrap();
    assert_eq!(code, 403);
    assert!(
        message.contains("cannot patch resource \"pods/status\""),
        "{message}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_tokens_get_401_and_no_token_is_anonymous() {
    let sim = start(true).await;
    let http = reqwest::Client::new();
    let r = list_namespaces(&sim, Some("not-issued")).await;
    assert_eq!(r.status().as_u16(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
    let r = list_namespaces(&sim, None).await;
    assert_eq!(r.status().as_u16(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        "namespaces is forbidden: User \"system:anonymous\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    let r = http
        .get(format!("{}/healthz", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    sim.shutdown().await;

    // RBAC off: no token is the admin, an unknown token is still refused.
    let sim = start(false).await;
    let r = list_namespaces(&sim, None).await;
    assert_eq!(r.status().as_u16(), 200);
    let r = list_namespaces(&sim, Some("not-issued")).await;
    assert_eq!(r.status().as_u16(), 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn kubectl_prints_the_forbidden_error() {
    let (sim, _admin) = start_with_policy().await;
    let kubeconfig = sim.service_account_kubeconfig("a", "app").unwrap();
    let cache = tempfile::tempdir().unwrap();
    // The admin kubeconfig works with kubectl too.
    let admin_out = kubectl(
        &sim.kubeconfig,
        cache.path(),
        &["get", "configmaps", "-n", "b"],
    )
    .await;
    assert!(
        admin_out.status.success(),
        "{}",
        String::from_utf8_lossy(&admin_out.stderr)
    );
    let ok = kubectl(&kubeconfig, cache.path(), &["get", "configmaps", "-n", "a"]).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let denied = kubectl(&kubeconfig, cache.path(), &["get", "configmaps", "-n", "b"]).await;
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("Error from server (Forbidden): configmaps is forbidden: User \"system:serviceaccount:a:app\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"b\""),
        "{stderr}"
    );
    sim.shutdown().await;
}

/// The simulated control plane works under enforcement: a Deployment created by the admin gets
/// Ready pods (the controllers talk to the server as the admin).
#[tokio::test]
async fn controllers_keep_working_with_rbac_on() {
    let sim = Sim::start(SimConfig {
        rbac: true,
        controllers: true,
        controllers_config: Some(kubesim::controllers::ControllersConfig::fast(1)),
        ..Default::default()
    })
    .await
    .expect("kubesim starts");
    let admin = sim.client().unwrap();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {"replicas": 1,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let d = deployments.get("d").await.unwrap();
        if d.status.and_then(|s| s.ready_replicas) == Some(1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deployment never ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.shutdown().await;
}
