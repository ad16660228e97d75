//! End-to-end tests of the gate's `/metrics`: Keptn's metric families under their Prometheus
//! names (B §7.3, A21) after real lifecycles on a real control plane, Portcullis's own `portcullis_`
//! families, and counters that a restarted gate does not inflate.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnState, KeptnWorkload, KeptnWorkloadVersion};

use e2e::*;

/// One sample of a scrape: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of a text exposition (label values here never hold `"`, `,` or `}`).
fn samples(body: &str) -> Vec<Sample> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let value = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}')?;
                    let labels = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .filter_map(|p| {
                            let (k, v) = p.split_once('=')?;
                            Some((k.to_owned(), v.trim_matches('"').to_owned()))
                        })
                        .collect();
                    (name, labels)
                }
            };
            Some(Sample {
                name: name.to_owned(),
                labels,
                value,
            })
        })
        .collect()
}

/// The samples of `name` whose labels include all of `want`.
fn matching<'a>(all: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    all.iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The one sample of `name` with labels `want`; panics (with the scrape) when there are several.
fn value(all: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let m = matching(all, name, want);
    assert!(m.len() <= 1, "several {name} samples match {want:?}: {m:?}");
    m.first().map(|s| s.value)
}

/// The label keys of `name`'s samples.
fn label_keys(all: &[Sample], name: &str) -> Vec<String> {
    let mut keys: Vec<String> = all
        .iter()
        .filter(|s| s.name == name)
        .flat_map(|s| s.labels.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Polls the scrape until `check` holds for it; returns the samples.
async fn wait_for_metrics(
    what: &str,
    port: u16,
    check: impl Fn(&[Sample]) -> bool + Copy,
) -> Vec<Sample> {
    wait_for(what, WAIT, || async move {
        let all = samples(&metrics_body(port).await?);
        check(&all).then_some(all)
    })
    .await
}

/// A container KeptnTaskDefinition whose Job's pod succeeds after 300 ms (kwok).
async fn task_definition(client: &Client, ns: &str, name: &str) {
    let def: shared::crd::KeptnTaskDefinition = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": name, "labels": {"kwok.portcullis.dev/outcome": "succeed"}, "annotations": {"kwok.portcullis.dev/run-for": "300ms"}},
        "spec": {"container": {"name": "check", "image": "busybox:1.36", "command": ["sh", "-c", "true"]},
                 "retries": 1, "timeout": "30s"}
    }))
    .expect("definition");
    Api::<shared::crd::KeptnTaskDefinition>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &def)
        .await
        .expect("definition created");
}

/// A KeptnMetric `error-rate` = 0.2 and an evaluation definition `error-rate-low` (< 1).
async fn passing_evaluation(client: &Client, ns: &str) {
    let api: Api<shared::crd::KeptnMetric> = Api::namespaced(client.clone(), ns);
    let m: shared::crd::KeptnMetric = serde_json::from_value(json!({
        "apiVersion": "metrics.keptn.sh/v1", "kind": "KeptnMetric",
        "metadata": {"name": "error-rate"},
        "spec": {"provider": {"name": "prometheus"}, "query": "q", "fetchIntervalSeconds": 10}
    }))
    .expect("metric");
    api.create(&PostParams::default(), &m)
        .await
        .expect("metric created");
    let raw = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "0.2");
    api.patch_status(
        "error-rate",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"value": "0.2", "rawValue": raw}})),
    )
    .await
    .expect("metric status");
    let ked: shared::crd::KeptnEvaluationDefinition = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluationDefinition",
        "metadata": {"name": "error-rate-low"},
        "spec": {"objectives": [{"keptnMetricRef": {"name": "error-rate"}, "evaluationTarget": "<1"}],
                 "retries": 3, "retryInterval": "300ms"}
    }))
    .expect("evaluation definition");
    Api::<shared::crd::KeptnEvaluationDefinition>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &ked)
        .await
        .expect("evaluation definition created");
}

/// Seconds since the epoch of a status time.
fn secs(t: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> f64 {
    t.expect("time set").0.as_nanosecond() as f64 / 1e9
}

async fn completed(client: &Client, ns: &str, kwv: &str, kav: &str) {
    let done = ("Completed".to_owned(), KeptnState::Succeeded);
    wait_for(&format!("{kwv} and {kav} Completed"), WAIT, || {
        let c = client.clone();
        let done = done.clone();
        async move {
            (kwv_state(&c, ns, kwv).await? == done && kav_state(&c, ns, kav).await? == done)
                .then_some(())
        }
    })
    .await;
}

/// B §7.3, §0.1, A21: after an app with a workload pre-deployment task, an app pre-deployment
/// evaluation and a promotion task goes from version 1 to version 2, `/metrics` exposes every
/// Keptn family under its Prometheus name with the `keptn_deployment_*` labels, each finished
/// version counted once, plus the gate's hold time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_keptn_family_is_exposed_after_an_upgrade() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "dora";
    env.namespace(ns).await;
    let gate = env.start_gate(&["--promotion-tasks-enabled"]);
    let port = env.admin_ports[gate];

    task_definition(&c, ns, "migrate").await;
    task_definition(&c, ns, "promote").await;
    passing_evaluation(&c, ns).await;
    let ctx: shared::crd::KeptnAppContext = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppContext",
        "metadata": {"name": "shop"},
        "spec": {"preDeploymentEvaluations": ["error-rate-low"], "promotionTasks": ["promote"]}
    }))
    .expect("context");
    Api::<shared::crd::KeptnAppContext>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &ctx)
        .await
        .expect("context created");
    let app: KeptnApp = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
        "metadata": {"name": "shop"},
        "spec": {"version": "1", "workloads": [{"name": "cart", "version": "1"}]}
    }))
    .expect("app");
    let apps: Api<KeptnApp> = Api::namespaced(c.clone(), ns);
    apps.create(&PostParams::default(), &app)
        .await
        .expect("app created");
    let rs = gated_deployment(&c, ns, "cart", "shop", "1", 1, json!({})).await;
    workload_objects(&c, ns, "shop", "cart", "1", &rs, &["migrate"]).await;
    completed(&c, ns, "shop-cart-1", "shop-1-6b86b273").await;

    // Version 2, as the webhook and the user would roll it out: a new pod template (new
    // ReplicaSet), the KeptnWorkload following it, the KeptnApp naming the new version.
    Api::<Deployment>::namespaced(c.clone(), ns)
        .patch(
            "cart",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"keptn.sh/version": "2"}},
                "spec": {"template": {
                    "metadata": {"annotations": {"keptn.sh/version": "2"}},
                    "spec": {"containers": [{"name": "cart", "image": "example/cart:2"}]}
                }}
            })),
        )
        .await
        .expect("deployment upgraded");
    let rs2 = wait_for("the second ReplicaSet", WAIT, || {
        let c = c.clone();
        let old = rs.0.clone();
        async move {
            let list = Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(c, ns)
                .list(&kube::api::ListParams::default().labels("app=cart"))
                .await
                .ok()?;
            list.items.into_iter().find_map(|r| {
                let name = r.metadata.name.clone()?;
                (name != old).then_some((name, r.metadata.uid.clone()?))
            })
        }
    })
    .await;
    Api::<KeptnWorkload>::namespaced(c.clone(), ns)
        .patch(
            "shop-cart",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "version": "2",
                "resourceReference": {"uid": rs2.1, "kind": "ReplicaSet", "name": rs2.0}
            }})),
        )
        .await
        .expect("workload upgraded");
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"version": "2", "workloads": [{"name": "cart", "version": "2"}]}}),
        ),
    )
    .await
    .expect("app upgraded");
    let kav2 = wait_for("the KeptnAppVersion of version 2", WAIT, || {
        let c = c.clone();
        async move {
            Api::<shared::crd::KeptnAppVersion>::namespaced(c, ns)
                .list(&kube::api::ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|k| k.spec.app.version == "2")
                .and_then(|k| k.metadata.name)
        }
    })
    .await;
    completed(&c, ns, "shop-cart-2", &kav2).await;

    let app1: &[(&str, &str)] = &[
        ("keptn_deployment_app_name", "shop"),
        ("keptn_deployment_app_version", "1"),
        ("keptn_deployment_app_namespace", ns),
    ];
    let app2: &[(&str, &str)] = &[
        ("keptn_deployment_app_name", "shop"),
        ("keptn_deployment_app_version", "2"),
        ("keptn_deployment_app_namespace", ns),
    ];
    let wl2: &[(&str, &str)] = &[
        ("keptn_deployment_app_name", "shop"),
        ("keptn_deployment_workload_name", "shop-cart"),
        ("keptn_deployment_workload_version", "2"),
        ("keptn_deployment_workload_namespace", ns),
    ];
    let succeeded = |base: &[(&'static str, &'static str)], key: &'static str| {
        let mut v = base.to_vec();
        v.push((key, "Succeeded"));
        v
    };
    // Counters are recorded right after the status write that finishes a version; gauges are
    // computed from the cache, which may lag the API by a moment.
    let all = wait_for_metrics("every family", port, |all| {
        let ended = |name: &str, want: &[(&str, &str)]| value(all, name, want) == Some(0.0);
        value(
            all,
            "keptn_app_count_total",
            &[("keptn_deployment_app_version", "2")],
        )
        .is_some()
            && value(
                all,
                "keptn_deployment_count_total",
                &[("keptn_deployment_workload_version", "2")],
            )
            .is_some()
            && ended("keptn_app_active", app2)
            && ended("keptn_deployment_active", wl2)
            && value(
                all,
                "keptn_app_deploymentinterval",
                &[("keptn_deployment_app_version", "2")],
            )
            .is_some()
            && value(
                all,
                "keptn_deployment_deploymentinterval",
                &[("keptn_deployment_workload_version", "2")],
            )
            .is_some()
            && !matching(all, "keptn_task_active", &[]).is_empty()
            && matching(all, "keptn_task_active", &[])
                .iter()
                .all(|s| s.value == 0.0)
            && !matching(all, "keptn_evaluation_active", &[]).is_empty()
            && matching(all, "keptn_evaluation_active", &[])
                .iter()
                .all(|s| s.value == 0.0)
    })
    .await;

    assert_eq!(value(&all, "keptn_lifecycle_active_total", &[]), Some(1.0));
    // Keptn's series carry the OTel exporter's scope labels; Portcullis's own do not.
    assert_eq!(
        matching(
            &all,
            "keptn_lifecycle_active_total",
            &[
                ("otel_scope_name", "keptn/task"),
                ("otel_scope_version", "")
            ]
        )
        .len(),
        1
    );
    assert_eq!(label_keys(&all, "portcullis_gated_pods"), ["age"]);

    // Finished versions: counted once each, with their status; durations only on success.
    for (app, version) in [(app1, "1"), (app2, "2")] {
        let labels = succeeded(app, "keptn_deployment_app_status");
        assert_eq!(
            value(&all, "keptn_app_count_total", &labels),
            Some(1.0),
            "app {version}"
        );
        assert_eq!(
            value(&all, "keptn_app_duration_seconds_count", &labels),
            Some(1.0)
        );
        assert_eq!(
            value(&all, "keptn_promotion_count_total", &labels),
            Some(1.0)
        );
        let wl = [
            ("keptn_deployment_app_name", "shop"),
            ("keptn_deployment_workload_name", "shop-cart"),
            ("keptn_deployment_workload_version", version),
            ("keptn_deployment_workload_namespace", ns),
            ("keptn_deployment_workload_status", "Succeeded"),
        ];
        assert_eq!(value(&all, "keptn_deployment_count_total", &wl), Some(1.0));
        assert_eq!(
            value(&all, "keptn_deployment_duration_seconds_count", &wl),
            Some(1.0)
        );
    }
    assert_eq!(
        label_keys(&all, "keptn_deployment_count_total"),
        [
            "keptn_deployment_app_name",
            "keptn_deployment_workload_name",
            "keptn_deployment_workload_namespace",
            "keptn_deployment_workload_status",
            "keptn_deployment_workload_version",
            "otel_scope_name",
            "otel_scope_version",
        ]
    );
    assert_eq!(
        label_keys(&all, "keptn_app_duration_seconds_bucket"),
        [
            "keptn_deployment_app_name",
            "keptn_deployment_app_namespace",
            "keptn_deployment_app_status",
            "keptn_deployment_app_version",
            "le",
            "otel_scope_name",
            "otel_scope_version",
        ]
    );
    // The OTel default boundaries of Keptn's exporter.
    assert!(
        !matching(
            &all,
            "keptn_deployment_duration_seconds_bucket",
            &[("le", "10000.0")]
        )
        .is_empty()
    );

    // Scrape-time gauges: both versions finished, durations and the interval of 2 after 1.
    assert_eq!(value(&all, "keptn_app_active", app1), Some(0.0));
    assert_eq!(
        label_keys(&all, "keptn_deployment_active"),
        [
            "keptn_deployment_app_name",
            "keptn_deployment_workload_name",
            "keptn_deployment_workload_namespace",
            "keptn_deployment_workload_version",
            "otel_scope_name",
            "otel_scope_version",
        ]
    );
    let d2 = value(
        &all,
        "keptn_app_deploymentduration",
        &[
            ("keptn_deployment_app_version", "2"),
            ("keptn_deployment_app_previousversion", "1"),
            ("keptn_deployment_app_name", "shop"),
            ("keptn_deployment_app_namespace", ns),
        ],
    )
    .expect("app deployment duration of 2");
    // The values are the differences of the objects' own (second-resolution) timestamps.
    let kav_times = |name: String| {
        let c = c.clone();
        async move {
            let s = get::<KeptnAppVersion>(&c, ns, &name)
                .await
                .and_then(|k| k.status)
                .expect("KAV status");
            (secs(s.start_time), secs(s.end_time))
        }
    };
    let kwv_times = |name: &'static str| {
        let c = c.clone();
        async move {
            let s = get::<KeptnWorkloadVersion>(&c, ns, name)
                .await
                .and_then(|k| k.status)
                .expect("KWV status");
            (secs(s.start_time), secs(s.end_time))
        }
    };
    let (_, end1) = kav_times("shop-1-6b86b273".to_owned()).await;
    let (start2, end2) = kav_times(kav2.clone()).await;
    assert_eq!(d2, end2 - start2);
    assert!(
        value(
            &all,
            "keptn_app_deploymentduration",
            &[
                ("keptn_deployment_app_version", "1"),
                ("keptn_deployment_app_previousversion", "")
            ]
        )
        .is_some()
    );
    let i2 = value(
        &all,
        "keptn_app_deploymentinterval",
        &[
            ("keptn_deployment_app_version", "2"),
            ("keptn_deployment_app_previousversion", "1"),
        ],
    )
    .expect("app interval");
    assert_eq!(i2, end2 - end1);
    assert_eq!(
        matching(&all, "keptn_app_deploymentinterval", &[]).len(),
        1,
        "version 1 has no predecessor"
    );
    let wl_dora = [
        ("keptn_deployment_app_name", "shop"),
        ("keptn_deployment_workload_name", "shop-cart"),
        ("keptn_deployment_workload_namespace", ns),
        ("keptn_deployment_workload_version", "2"),
        ("keptn_deployment_workload_previousversion", "1"),
    ];
    let (_, wend1) = kwv_times("shop-cart-1").await;
    let (wstart2, wend2) = kwv_times("shop-cart-2").await;
    assert_eq!(
        value(&all, "keptn_deployment_deploymentduration", &wl_dora),
        Some(wend2 - wstart2)
    );
    assert_eq!(
        value(&all, "keptn_deployment_deploymentinterval", &wl_dora),
        Some(wend2 - wend1)
    );

    // Tasks and evaluations: active gauges without status, counters with it.
    let pre = [
        ("keptn_deployment_app_name", "shop"),
        ("keptn_deployment_workload_name", "shop-cart"),
        ("keptn_deployment_workload_version", "1"),
        ("keptn_deployment_task_type", "pre"),
    ];
    assert_eq!(matching(&all, "keptn_task_active", &pre).len(), 1);
    assert_eq!(
        label_keys(&all, "keptn_task_active"),
        [
            "keptn_deployment_app_name",
            "keptn_deployment_app_version",
            "keptn_deployment_task_name",
            "keptn_deployment_task_type",
            "keptn_deployment_workload_name",
            "keptn_deployment_workload_version",
            "otel_scope_name",
            "otel_scope_version",
        ]
    );
    assert_eq!(
        matching(
            &all,
            "keptn_task_active",
            &[("keptn_deployment_task_type", "promotion")]
        )
        .len(),
        2,
        "one promotion task per app version"
    );
    let evaluations = matching(
        &all,
        "keptn_evaluation_active",
        &[
            ("keptn_deployment_app_name", "shop"),
            ("keptn_deployment_evaluation_type", "pre-eval"),
        ],
    );
    assert_eq!(evaluations.len(), 2, "{evaluations:?}");
    assert!(
        !evaluations[0]
            .labels
            .contains_key("keptn_deployment_evaluation_status")
    );
    let mut pre_counted = pre.to_vec();
    pre_counted.push(("keptn_deployment_task_status", "Succeeded"));
    assert_eq!(
        value(&all, "keptn_task_count_total", &pre_counted),
        Some(1.0)
    );
    assert!(!matching(&all, "keptn_evaluation_count_total", &[]).is_empty());

    // Portcullis's own families.
    assert!(value(&all, "portcullis_gate_hold_duration_seconds_count", &[]).expect("hold") >= 2.0);
    assert!(value(&all, "portcullis_gate_release_duration_seconds_count", &[]).is_some());
    assert_eq!(
        matching(&all, "portcullis_gated_pods", &[]).len(),
        4,
        "one point per age bucket"
    );
}

/// The deliberate divergence from Keptn (B §7.3 "repeated if reconciled again"): a finished
/// version is counted once, by the process that finished it; a restarted gate reconciles it
/// again and counts nothing, and its counters start at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_gate_does_not_count_finished_versions_again() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "recount";
    env.namespace(ns).await;
    let first = env.start_gate(&[]);
    let rs = gated_deployment(&c, ns, "waiter", "waiter", "0.4", 2, json!({})).await;
    workload_objects(&c, ns, "waiter", "waiter", "0.4", &rs, &[]).await;
    creation_request(&c, ns, "waiter", true).await;
    completed(&c, ns, "waiter-waiter-0.4", "waiter-0.4-6b86b273").await;
    let app: &[(&str, &str)] = &[
        ("keptn_deployment_app_name", "waiter"),
        ("keptn_deployment_app_version", "0.4"),
        ("keptn_deployment_app_namespace", ns),
        ("keptn_deployment_app_status", "Succeeded"),
    ];
    let workload: &[(&str, &str)] = &[
        ("keptn_deployment_app_name", "waiter"),
        ("keptn_deployment_workload_name", "waiter-waiter"),
        ("keptn_deployment_workload_version", "0.4"),
        ("keptn_deployment_workload_namespace", ns),
        ("keptn_deployment_workload_status", "Succeeded"),
    ];
    let port = env.admin_ports[first];
    let before = wait_for_metrics("the first gate's counts", port, |all| {
        value(all, "keptn_app_count_total", app).is_some()
            && value(all, "keptn_deployment_count_total", workload).is_some()
            && value(all, "keptn_app_active", &app[..3]) == Some(0.0)
    })
    .await;
    assert_eq!(value(&before, "keptn_app_count_total", app), Some(1.0));
    assert_eq!(
        value(&before, "keptn_deployment_count_total", workload),
        Some(1.0)
    );
    assert_eq!(
        value(&before, "keptn_lifecycle_active_total", &[]),
        Some(1.0)
    );
    assert!(
        value(&before, "portcullis_gate_hold_duration_seconds_count", &[]).expect("hold") >= 2.0
    );

    env.kill_gate(first).await;
    let second = env.start_gate(&[]);
    let port = env.admin_ports[second];
    // Wake both controllers on the finished objects once more after their start-up reconcile:
    // a controller never reconciles one object twice at once, so a second reconcile counted
    // means the first one (and whatever it recorded) is over.
    let reconciles = |all: &[Sample], controller: &str| {
        value(
            all,
            "portcullis_gate_reconciles_total",
            &[("controller", controller)],
        )
        .unwrap_or(0.0)
    };
    wait_for_metrics("the second gate reconciled both versions", port, |all| {
        reconciles(all, "keptnappversion") >= 1.0 && reconciles(all, "keptnworkloadversion") >= 1.0
    })
    .await;
    let touch = json!({"metadata": {"annotations": {"test.portcullis.dev/touch": "1"}}});
    Api::<shared::crd::KeptnAppVersion>::namespaced(c.clone(), ns)
        .patch(
            "waiter-0.4-6b86b273",
            &PatchParams::default(),
            &Patch::Merge(&touch),
        )
        .await
        .expect("kav touched");
    Api::<shared::crd::KeptnWorkloadVersion>::namespaced(c.clone(), ns)
        .patch(
            "waiter-waiter-0.4",
            &PatchParams::default(),
            &Patch::Merge(&touch),
        )
        .await
        .expect("kwv touched");
    let after = wait_for_metrics("the second gate reconciled them again", port, |all| {
        reconciles(all, "keptnappversion") >= 2.0
            && reconciles(all, "keptnworkloadversion") >= 2.0
            && value(all, "keptn_app_active", &app[..3]) == Some(0.0)
    })
    .await;
    assert_eq!(
        value(&after, "keptn_lifecycle_active_total", &[]),
        Some(1.0)
    );
    assert!(
        matching(&after, "keptn_app_count_total", &[]).is_empty(),
        "{:?}",
        matching(&after, "keptn_app_count_total", &[])
    );
    assert!(matching(&after, "keptn_deployment_count_total", &[]).is_empty());
    assert!(matching(&after, "keptn_app_duration_seconds_count", &[]).is_empty());
    assert!(matching(&after, "keptn_deployment_duration_seconds_count", &[]).is_empty());
    // The scrape-time gauges come from the cluster state, so the new process reports them.
    assert!(value(&after, "keptn_app_deploymentduration", &app[..3]).is_some());
    assert_eq!(
        value(&after, "keptn_deployment_active", &workload[..4]),
        Some(0.0)
    );
}

/// B §7.3: failed versions count too, with their status, but have no duration histogram; a
/// failed version is no longer active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_versions_are_counted_with_their_status_and_no_duration() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "fails";
    env.namespace(ns).await;
    env.config(ns, json!({"observabilityTimeout": "2s"})).await;
    let gate = env.start_gate(&[]);
    let port = env.admin_ports[gate];
    let rs = gated_deployment(
        &c,
        ns,
        "stuck",
        "stuck",
        "1",
        1,
        json!({"kwok.portcullis.dev/outcome": "never-ready"}),
    )
    .await;
    workload_objects(&c, ns, "stuck", "stuck", "1", &rs, &[]).await;
    creation_request(&c, ns, "stuck", true).await;
    wait_for("KWV and KAV failed", WAIT, || {
        let c = c.clone();
        async move {
            let w = kwv_state(&c, ns, "stuck-stuck-1").await?.1;
            let a = Api::<KeptnAppVersion>::namespaced(c, ns)
                .list(&kube::api::ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()?
                .status?
                .status;
            (w == KeptnState::Failed && a == KeptnState::Failed).then_some(())
        }
    })
    .await;
    let workload: &[(&str, &str)] = &[
        ("keptn_deployment_app_name", "stuck"),
        ("keptn_deployment_workload_name", "stuck-stuck"),
        ("keptn_deployment_workload_version", "1"),
        ("keptn_deployment_workload_namespace", ns),
        ("keptn_deployment_workload_status", "Failed"),
    ];
    let app: &[(&str, &str)] = &[
        ("keptn_deployment_app_name", "stuck"),
        ("keptn_deployment_app_version", "1"),
        ("keptn_deployment_app_namespace", ns),
        ("keptn_deployment_app_status", "Failed"),
    ];
    let all = wait_for_metrics("both failures counted", port, |all| {
        value(all, "keptn_deployment_count_total", workload).is_some()
            && value(all, "keptn_app_count_total", app).is_some()
            && value(all, "keptn_deployment_active", &workload[..4]) == Some(0.0)
            && value(all, "keptn_app_active", &app[..3]) == Some(0.0)
    })
    .await;
    assert_eq!(
        value(&all, "keptn_deployment_count_total", workload),
        Some(1.0)
    );
    assert_eq!(value(&all, "keptn_app_count_total", app), Some(1.0));
    assert_eq!(matching(&all, "keptn_deployment_count_total", &[]).len(), 1);
    assert_eq!(matching(&all, "keptn_app_count_total", &[]).len(), 1);
    for none in [
        "keptn_deployment_duration_seconds_count",
        "keptn_app_duration_seconds_count",
        "keptn_promotion_count_total",
    ] {
        assert!(matching(&all, none, &[]).is_empty(), "{none}");
    }
    // The scrape-time duration gauge covers every version with an endTime, failed ones too.
    assert!(value(&all, "keptn_deployment_deploymentduration", &workload[..4]).is_some());
    // Deployment started (then timed out): the pod was released once, and its hold time recorded.
    let released_pods = pods(&c, ns, "stuck")
        .await
        .iter()
        .filter(|p| released(p))
        .count();
    assert_eq!(released_pods, 1);
    assert_eq!(
        value(&all, "portcullis_gate_hold_duration_seconds_count", &[]),
        Some(1.0)
    );

    // Keptn's own metrics port (B §0.1; here 0 = a free port, read back from the log) serves the
    // same Keptn families and none of Portcullis's.
    let keptn_port = keptn_metrics_port(&env, gate);
    let keptn = samples(
        &metrics_body(keptn_port)
            .await
            .expect("Keptn metrics port answers"),
    );
    assert_eq!(value(&keptn, "keptn_app_count_total", app), Some(1.0));
    assert_eq!(
        value(&keptn, "keptn_deployment_count_total", workload),
        Some(1.0)
    );
    assert_eq!(
        value(&keptn, "keptn_lifecycle_active_total", &[]),
        Some(1.0)
    );
    assert!(
        keptn.iter().all(|s| s.name.starts_with("keptn_")),
        "only keptn_* families: {:?}",
        keptn.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}

/// The port of the Keptn metrics listener, from the gate's start-up log line.
fn keptn_metrics_port(env: &Env, gate: usize) -> u16 {
    let log = env.gate_log(gate);
    let line = log
        .lines()
        .find(|l| l.contains("Keptn metrics listening"))
        .unwrap_or_else(|| panic!("no Keptn metrics line in\n{log}"));
    let address = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("address="))
        .expect("address field");
    let address = address
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .rsplit(':')
        .next()
        .expect("port");
    address.parse().expect("numeric port")
}
