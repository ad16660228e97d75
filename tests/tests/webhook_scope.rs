//! The webhook's apps/v1 caches follow the Keptn-enabled namespaces (issue 18), on a real
//! control plane with the real webhook binary: a namespace's ReplicaSets and Deployments are
//! watched while it is enabled, never read while it is not, and pods of a namespace enabled at
//! start are admitted from the cache alone.

use e2e::{
    Cluster, INSTALL_NS, Processes, SERVICE, WAIT, certificates, default_service_account,
    free_port, gated, pods, register_webhooks, wait_for, wait_webhook_ready, webhook_https,
    webhook_url,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The webhook's `/metrics` over TLS, trusted through `ca`.
struct Metrics {
    https: reqwest::Client,
    url: String,
}

impl Metrics {
    fn new(ca: &str, port: u16) -> Metrics {
        Metrics {
            https: webhook_https(ca, port).build().expect("https client"),
            url: webhook_url(port, "/metrics"),
        }
    }

    /// The sum of the samples whose line starts with `prefix`.
    async fn sum(&self, prefix: &str) -> Option<f64> {
        let body = self
            .https
            .get(&self.url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(
            body.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    async fn wait_watched(&self, expected: f64) {
        wait_for(
            &format!("{expected} watched namespaces"),
            WAIT,
            || async move {
                let n = self.sum("portcullis_webhook_watched_namespaces ").await?;
                (n == expected).then_some(())
            },
        )
        .await;
    }

    /// Fallback reads of the kinds the scopes cache (A5).
    async fn apps_reads(&self) -> f64 {
        let mut total = 0.0;
        for resource in ["replicasets", "deployments", "statefulsets", "daemonsets"] {
            let prefix = format!(
                "portcullis_webhook_api_requests_total{{verb=\"get\",resource=\"{resource}\""
            );
            total += self.sum(&prefix).await.expect("metrics");
        }
        total
    }
}

async fn namespace(client: &Client, name: &str, enabled: bool) {
    let annotations = if enabled {
        json!({"keptn.sh/lifecycle-toolkit": "enabled"})
    } else {
        json!({})
    };
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "annotations": annotations}
    }))
    .expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    default_service_account(client, name).await;
}

async fn deployment(client: &Client, ns: &str, name: &str) {
    let deploy: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": name,
            "annotations": {"keptn.sh/app": "shop", "keptn.sh/workload": name, "keptn.sh/version": "1.0"}
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "example/web:1.0"}]}
            }
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .expect("deployment created");
}

async fn scale(client: &Client, ns: &str, name: &str, replicas: i32) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .expect("scaled");
}

/// Waits for `total` pods of `ns/name`, `gated_count` of them gated; a mismatch that persists
/// is reported with what was seen.
async fn wait_pods(client: &Client, ns: &str, name: &str, total: usize, gated_count: usize) {
    wait_for(
        &format!("{total} pods of {ns}/{name}, {gated_count} gated"),
        WAIT,
        || async move {
            let pods = pods(client, ns, name).await;
            let g = pods.iter().filter(|p| gated(p)).count();
            (pods.len() == total && g == gated_count).then_some(())
        },
    )
    .await;
}

async fn annotate(client: &Client, ns: &str, value: Option<&str>) {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"keptn.sh/lifecycle-toolkit": value}}}),
            ),
        )
        .await
        .expect("namespace annotated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_metadata_is_watched_only_in_enabled_namespaces() {
    let cluster = Cluster::with_crds().await;
    let client = cluster.client();
    // Workloads that exist before the webhook starts, in an enabled and a plain namespace.
    namespace(&client, "on", true).await;
    namespace(&client, "plain", false).await;
    deployment(&client, "on", "web").await;
    deployment(&client, "plain", "web").await;
    wait_pods(&client, "on", "web", 1, 0).await;
    wait_pods(&client, "plain", "web", 1, 0).await;

    let mut procs = Processes::new();
    let ca = certificates(procs.logs.path());
    let port = free_port();
    cluster
        .route_service_to_localhost(INSTALL_NS, SERVICE)
        .await;
    procs.spawn_webhook("webhook", port, &cluster.kubeconfig(), "info,webhook=debug");
    wait_webhook_ready(&ca, port).await;
    register_webhooks(&client, &ca, port, None).await;
    let metrics = Metrics::new(&ca, port);
    metrics.wait_watched(1.0).await;

    // Ready means the enabled namespace's caches have listed: its new pods resolve their
    // ReplicaSet and Deployment without a read of the API.
    scale(&client, "on", "web", 3).await;
    wait_pods(&client, "on", "web", 3, 2).await;
    // A plain namespace's pods are let through without its workloads being read.
    scale(&client, "plain", "web", 2).await;
    wait_pods(&client, "plain", "web", 2, 0).await;
    assert_eq!(metrics.apps_reads().await, 0.0, "no fallback read");

    // Enabled later: watched from then on, and its new pods are gated.
    annotate(&client, "plain", Some("enabled")).await;
    metrics.wait_watched(2.0).await;
    scale(&client, "plain", "web", 3).await;
    wait_pods(&client, "plain", "web", 3, 1).await;

    // Disabled, then deleted: no longer watched.
    annotate(&client, "on", None).await;
    metrics.wait_watched(1.0).await;
    scale(&client, "on", "web", 4).await;
    wait_pods(&client, "on", "web", 4, 2).await;
    Api::<Namespace>::all(client.clone())
        .delete("plain", &Default::default())
        .await
        .expect("namespace deleted");
    metrics.wait_watched(0.0).await;
    drop(procs);
}
