//! End-to-end tests of `portcullis-metrics` (issue 14): the real binary against a real control
//! plane and a real Prometheus that scrapes a series the test sets. KeptnMetrics get their
//! values from the Prometheus HTTP API; the real `portcullis-gate` evaluates them.
//!
//! As in `gate_checks.rs`, the test plays the webhook. Every test runs its own control plane,
//! Prometheus, processes and namespace; waits poll with a deadline.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use shared::crd::{
    KeptnAppVersion, KeptnEvaluation, KeptnEvaluationDefinition, KeptnMetric, KeptnMetricsProvider,
    KeptnState,
};

use e2e::prometheus::{Options, Prometheus};
use e2e::*;

/// The series the tests set, and the query over it.
const SERIES: &str = "shop_error_rate";
const QUERY: &str = "shop_error_rate{app=\"shop\"}";

/// A running `portcullis-metrics`.
struct MetricsController {
    processes: Processes,
    port: u16,
    kubeconfig: std::path::PathBuf,
}

impl MetricsController {
    fn start(env: &Env) -> MetricsController {
        let mut c = MetricsController {
            processes: Processes::new(),
            port: free_port(),
            kubeconfig: env.kubeconfig(),
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let n = self.processes.names.len();
        let args = [
            format!("--address=127.0.0.1:{}", self.port),
            format!("--identity=metrics-{n}"),
        ];
        self.processes.spawn(
            &format!("metrics-{n}"),
            &binary("portcullis-metrics"),
            &args,
            &self.kubeconfig,
            "info,metrics=debug,kube=warn",
        );
    }

    /// SIGKILL, then a new process in its place.
    async fn restart(&mut self) {
        if let Some(child) = self.processes.children.last_mut() {
            child.start_kill().expect("kill");
            let _ = child.wait().await;
        }
        self.spawn();
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        wait_for("the metrics controller's HTTP server", WAIT, || {
            let url = url.clone();
            async move {
                let r = reqwest::get(&url).await.ok()?;
                let status = r.status().as_u16();
                Some((status, r.text().await.ok()?))
            }
        })
        .await
    }
}

async fn create<K>(client: &Client, ns: &str, value: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).expect("fixture");
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await
        .expect("created")
}

async fn provider(client: &Client, ns: &str, target: &str, secret: Option<&str>) {
    let mut spec = json!({"type": "prometheus", "targetServer": target});
    if let Some(secret) = secret {
        spec["secretKeyRef"] = json!({"name": secret});
    }
    create::<KeptnMetricsProvider>(
        client,
        ns,
        json!({
            "apiVersion": "metrics.keptn.sh/v1", "kind": "KeptnMetricsProvider",
            "metadata": {"name": "prometheus"}, "spec": spec,
        }),
    )
    .await;
}

async fn metric(client: &Client, ns: &str, name: &str, query: &str) {
    create::<KeptnMetric>(
        client,
        ns,
        json!({
            "apiVersion": "metrics.keptn.sh/v1", "kind": "KeptnMetric",
            "metadata": {"name": name},
            "spec": {"provider": {"name": "prometheus"}, "query": query, "fetchIntervalSeconds": 1},
        }),
    )
    .await;
}

async fn get_metric(client: &Client, ns: &str, name: &str) -> Option<KeptnMetric> {
    Api::<KeptnMetric>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// Waits until the KeptnMetric's status satisfies `f`.
async fn metric_where(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    f: impl Fn(&shared::crd::KeptnMetricStatus) -> bool,
) -> KeptnMetric {
    wait_for(what, WAIT, || {
        let c = client.clone();
        let f = &f;
        async move {
            let m = get_metric(&c, ns, name).await?;
            f(m.status.as_ref()?).then_some(m)
        }
    })
    .await
}

/// Prometheus scraped `value` and the metrics controller wrote it.
async fn fetched(client: &Client, prom: &Prometheus, ns: &str, name: &str, value: f64) {
    prom.wait_for_value(QUERY, value).await;
    let want = format!("{value}");
    metric_where(client, ns, name, &format!("{name} = {want}"), |s| {
        s.value == want && s.err_msg.is_empty()
    })
    .await;
}

/// The app `shop`: a KeptnAppContext asking for a pre-deployment evaluation of `error-rate < 0.5`
/// (`retries` attempts every `interval`) and a Deployment of one pod with its workload objects.
async fn shop_with_pre_evaluation(c: &Client, ns: &str, retries: i64, interval: &str) {
    create::<KeptnEvaluationDefinition>(
        c,
        ns,
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluationDefinition",
            "metadata": {"name": "error-rate-low"},
            "spec": {"objectives": [{"keptnMetricRef": {"name": "error-rate"}, "evaluationTarget": "<0.5"}],
                     "retries": retries, "retryInterval": interval},
        }),
    )
    .await;
    create::<shared::crd::KeptnAppContext>(
        c,
        ns,
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppContext",
            "metadata": {"name": "shop"},
            "spec": {"preDeploymentEvaluations": ["error-rate-low"]},
        }),
    )
    .await;
    let rs = gated_deployment(c, ns, "shop", "shop", "1", 1, json!({})).await;
    workload_objects(c, ns, "shop", "shop", "1", &rs, &[]).await;
    creation_request(c, ns, "shop", true).await;
}

/// The namespace's one KeptnEvaluation once its status satisfies `f`.
async fn the_evaluation(
    c: &Client,
    ns: &str,
    what: &str,
    f: impl Fn(&shared::crd::KeptnEvaluationStatus) -> bool,
) -> KeptnEvaluation {
    wait_for(what, WAIT, || {
        let c = c.clone();
        let f = &f;
        async move {
            let e = Api::<KeptnEvaluation>::namespaced(c, ns)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()?;
            f(e.status.as_ref()?).then_some(e)
        }
    })
    .await
}

/// Issue 14's scenario: a pre-deployment evaluation over a KeptnMetric that Prometheus feeds
/// holds the rollout while the value is bad and releases it once the series improves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_holds_the_rollout_until_the_series_improves() {
    let prom = Prometheus::start().await;
    prom.exporter().set(SERIES, &[("app", "shop")], 0.9);
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "metrics-rollout";
    env.namespace(ns).await;
    env.start_gate(&[]);
    let metrics = MetricsController::start(&env);
    provider(&c, ns, prom.url(), None).await;
    metric(&c, ns, "error-rate", QUERY).await;
    fetched(&c, &prom, ns, "error-rate", 0.9).await;

    shop_with_pre_evaluation(&c, ns, 60, "1s").await;

    // The bad value fails attempts; the pod stays gated meanwhile.
    let failing = the_evaluation(
        &c,
        ns,
        "a failed evaluation attempt on the bad value",
        |s| s.retry_count >= 2,
    )
    .await;
    let s = failing.status.expect("status");
    assert_eq!(s.overall_status, KeptnState::Progressing, "{s:?}");
    assert_eq!(s.evaluation_status["error-rate"].value, "0.9");
    assert!(
        s.evaluation_status["error-rate"].last_updated.is_some(),
        "the value's lastUpdated is recorded: {s:?}"
    );
    // The pod is the ReplicaSet controller's, created independently of the evaluation.
    let p = wait_pods(&c, ns, "shop", 1).await;
    assert!(
        p.iter().all(|p| !released(p)),
        "held while the value is bad"
    );

    // The series improves: Prometheus scrapes it, the controller fetches it, the next attempt
    // passes and the pod is released.
    prom.exporter().set(SERIES, &[("app", "shop")], 0.1);
    fetched(&c, &prom, ns, "error-rate", 0.1).await;
    wait_for("pod released and ready", WAIT, || {
        let c = c.clone();
        async move {
            let p = pods(&c, ns, "shop").await;
            (p.len() == 1 && p.iter().all(|p| released(p) && ready(p))).then_some(())
        }
    })
    .await;
    let e = Api::<KeptnEvaluation>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("evaluations")
        .items
        .into_iter()
        .next()
        .expect("the evaluation");
    let s = e.status.expect("status");
    assert_eq!(s.overall_status, KeptnState::Succeeded, "{s:?}");
    assert_eq!(s.evaluation_status["error-rate"].value, "0.1");
    let kav = wait_for("KAV Completed", WAIT, || {
        let c = c.clone();
        async move {
            let kavs = Api::<KeptnAppVersion>::namespaced(c, ns)
                .list(&ListParams::default())
                .await
                .ok()?
                .items;
            let k = kavs.into_iter().next()?;
            (k.status.as_ref()?.current_phase == "Completed").then_some(k)
        }
    })
    .await;
    assert_eq!(
        kav.status.expect("status").pre_deployment_evaluation_status,
        KeptnState::Succeeded
    );

    // Keptn's value endpoint, as KEDA's metrics-api scaler reads it, and the fetch metrics.
    let (code, body) = metrics
        .get(&format!("/api/v1/metrics/{ns}/error-rate"))
        .await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        v,
        json!({"namespace": ns, "metric": "error-rate", "value": "0.1"})
    );
    let (code, _) = metrics.get(&format!("/api/v1/metrics/{ns}/nope")).await;
    assert_eq!(code, 404);
    let (_, text) = metrics.get("/metrics").await;
    assert!(
        text.contains(
            "portcullis_metrics_fetch_duration_seconds_count{provider_type=\"prometheus\"}"
        ),
        "{text}"
    );
}

/// Failures land in `errMsg` and a Warning Event, and the last good value stays with its
/// `lastUpdated`: an unreachable server, a query returning two series, a missing provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_reported_and_the_last_good_value_is_kept() {
    let prom = Prometheus::start().await;
    prom.exporter().set(SERIES, &[("app", "shop")], 0.25);
    prom.exporter().set(SERIES, &[("app", "cart")], 0.5);
    let env = start_env().await;
    let c = env.client.clone();
    let ns = "metrics-errors";
    env.namespace(ns).await;
    let _metrics = MetricsController::start(&env);
    provider(&c, ns, prom.url(), None).await;
    metric(&c, ns, "error-rate", QUERY).await;
    metric(&c, ns, "both", SERIES).await;
    create::<KeptnMetric>(
        &c,
        ns,
        json!({
            "apiVersion": "metrics.keptn.sh/v1", "kind": "KeptnMetric",
            "metadata": {"name": "orphan"},
            "spec": {"provider": {"name": "missing"}, "query": "up", "fetchIntervalSeconds": 1},
        }),
    )
    .await;
    fetched(&c, &prom, ns, "error-rate", 0.25).await;

    let both = metric_where(&c, ns, "both", "two series reported", |s| {
        !s.err_msg.is_empty()
    })
    .await;
    let s = both.status.expect("status");
    assert!(s.err_msg.contains('2'), "{}", s.err_msg);
    assert_eq!(s.value, "", "no value was ever good");
    let orphan = metric_where(&c, ns, "orphan", "missing provider reported", |s| {
        !s.err_msg.is_empty()
    })
    .await;
    assert_eq!(
        orphan.status.expect("status").err_msg,
        format!("KeptnMetricsProvider {ns}/missing not found")
    );

    let good = get_metric(&c, ns, "error-rate")
        .await
        .and_then(|m| m.status)
        .expect("status");
    let url = prom.url().to_owned();
    drop(prom);
    let down = metric_where(
        &c,
        ns,
        "error-rate",
        "the unreachable server reported",
        |s| !s.err_msg.is_empty(),
    )
    .await;
    let s = down.status.expect("status");
    assert!(
        s.err_msg.contains(url.trim_end_matches('/')),
        "{}",
        s.err_msg
    );
    assert_eq!(s.value, "0.25", "the last good value stays");
    assert!(
        s.last_updated.is_some() && s.last_updated >= good.last_updated,
        "with its lastUpdated"
    );
    let event = wait_for_event(&c, ns, "FetchFailed").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

/// Basic auth from the provider's Secret (keys `user` and `password`); a missing Secret is the
/// metric's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_credentials_come_from_the_providers_secret() {
    let prom = Prometheus::start_with(Options {
        basic_auth: Some(("keptn".into(), "s3cret".into())),
        tls: false,
    })
    .await;
    prom.exporter().set(SERIES, &[("app", "shop")], 0.75);
    let env = start_env().await;
    let c = env.client.clone();
    let ns = "metrics-auth";
    env.namespace(ns).await;
    let _metrics = MetricsController::start(&env);
    provider(&c, ns, prom.url(), Some("prometheus-auth")).await;
    metric(&c, ns, "error-rate", QUERY).await;
    let missing = metric_where(&c, ns, "error-rate", "the missing Secret reported", |s| {
        !s.err_msg.is_empty()
    })
    .await;
    assert!(
        missing
            .status
            .expect("status")
            .err_msg
            .contains(&format!("Secret {ns}/prometheus-auth")),
    );
    create::<Secret>(
        &c,
        ns,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "prometheus-auth"},
            "stringData": {"user": "keptn", "password": "s3cret"},
        }),
    )
    .await;
    fetched(&c, &prom, ns, "error-rate", 0.75).await;
}

/// A restarted controller continues from the stored status: the value survives, fetching
/// resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_fetching() {
    let prom = Prometheus::start().await;
    prom.exporter().set(SERIES, &[("app", "shop")], 1.0);
    let env = start_env().await;
    let c = env.client.clone();
    let ns = "metrics-restart";
    env.namespace(ns).await;
    let mut metrics = MetricsController::start(&env);
    provider(&c, ns, prom.url(), None).await;
    metric(&c, ns, "error-rate", QUERY).await;
    fetched(&c, &prom, ns, "error-rate", 1.0).await;
    metrics.restart().await;
    prom.exporter().set(SERIES, &[("app", "shop")], 2.0);
    fetched(&c, &prom, ns, "error-rate", 2.0).await;
}

/// A value nobody refreshes is refused by an evaluation: `lastUpdated` older than
/// 3 × `fetchIntervalSeconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_value_is_refused_by_an_evaluation() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "metrics-stale";
    env.namespace(ns).await;
    env.start_gate(&[]);
    create::<KeptnMetric>(
        &c,
        ns,
        json!({
            "apiVersion": "metrics.keptn.sh/v1", "kind": "KeptnMetric",
            "metadata": {"name": "error-rate"},
            "spec": {"provider": {"name": "prometheus"}, "query": "q", "fetchIntervalSeconds": 10},
        }),
    )
    .await;
    let an_hour_ago = Timestamp::now() - jiff::SignedDuration::from_hours(1);
    Api::<KeptnMetric>::namespaced(c.clone(), ns)
        .patch_status(
            "error-rate",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "value": "0.1",
                "rawValue": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "0.1"),
                "lastUpdated": an_hour_ago.to_string(),
            }})),
        )
        .await
        .expect("stale status");
    shop_with_pre_evaluation(&c, ns, 2, "300ms").await;
    let e = the_evaluation(&c, ns, "the evaluation failed", |s| {
        s.overall_status == KeptnState::Failed
    })
    .await;
    let item = &e.status.expect("status").evaluation_status["error-rate"];
    assert!(item.message.contains("stale"), "{}", item.message);
    assert!(
        item.message.contains(&an_hour_ago.to_string()[..16]),
        "says when it was last fetched: {}",
        item.message
    );
    let p = wait_pods(&c, ns, "shop", 1).await;
    assert!(
        p.iter().all(|p| !released(p)),
        "the stale value held the rollout"
    );
}
