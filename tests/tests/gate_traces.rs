//! End-to-end tests of tracing (B §7.4, A21): the real `portcullis-gate` binary on a real control plane,
//! exporting over OTLP/gRPC to an in-process trace receiver bound on a free port.
//!
//! As in `e2e.rs`, the test plays the webhook (pods get the gate from their Deployment's pod
//! template; the test creates the KeptnWorkload and the KeptnAppCreationRequest). Waits poll with
//! a deadline.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::PostParams;
use kube::{Api, Client};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::json;
use shared::crd::{KeptnAppVersion, KeptnState, KeptnTaskDefinition, KeptnWorkloadVersion};

use e2e::*;

/// The gates' `OTEL_BSP_SCHEDULE_DELAY` in milliseconds (the SDK's default is 5 s).
const BATCH_DELAY_MS: u64 = 100;
/// How long no span may arrive before the receiver counts as drained: ten batch intervals
/// (well over the two a span queued just before the check needs to be exported).
const QUIET: Duration = Duration::from_millis(10 * BATCH_DELAY_MS);

/// One span as received, with its resource's `service.name`, its scope name and when the
/// receiver got it (the receiver's clock).
#[derive(Clone, Debug)]
struct Received {
    service: String,
    scope: String,
    span: Span,
    arrived: Instant,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<String> {
        string_value(&self.span.attributes, key)
    }
}

fn string_value(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// A minimal OTLP/gRPC trace collector.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let arrived = Instant::now();
        let mut spans = self.spans.lock().expect("lock");
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string_value(&r.attributes, "service.name"))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                let scope = ss.scope.map(|s| s.name).unwrap_or_default();
                for span in ss.spans {
                    spans.push(Received {
                        service: service.clone(),
                        scope: scope.clone(),
                        span,
                        arrived,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// Serves on a free port of 127.0.0.1; returns the port.
    async fn start(&self) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(service, incoming));
        port
    }

    fn named(&self, name: &str) -> Option<Received> {
        self.spans
            .lock()
            .expect("lock")
            .iter()
            .find(|r| r.span.name == name)
            .cloned()
    }

    fn count(&self) -> usize {
        self.spans.lock().expect("lock").len()
    }

    /// Waits (with a deadline) until no span arrived for [`QUIET`] by the receiver's clock, so a
    /// span exported in a later batch (e.g. a duplicate) is in before the caller checks.
    async fn wait_quiet(&self) {
        wait_for(&format!("no span for {QUIET:?}"), WAIT, || async {
            let spans = self.spans.lock().expect("lock");
            let last = spans.iter().map(|r| r.arrived).max();
            last.is_none_or(|l| l.elapsed() >= QUIET).then_some(())
        })
        .await
    }

    /// Waits until a span of every name arrived.
    async fn wait_for(&self, names: &[&str]) -> BTreeMap<String, Received> {
        wait_for(&format!("spans {names:?}"), WAIT, || async {
            let found: BTreeMap<String, Received> = names
                .iter()
                .filter_map(|n| Some(((*n).to_owned(), self.named(n)?)))
                .collect();
            (found.len() == names.len()).then_some(found)
        })
        .await
    }
}

/// Starts a gate like `Env::start_gate`, with extra environment variables (the batch delay
/// short, so spans arrive in well under the SDK's 5 s default).
fn start_gate_with_env(env: &mut Env, vars: &[(&str, &str)]) {
    let i = env.started;
    env.started += 1;
    let log = std::fs::File::create(env.logs.path().join(format!("gate-{i}.log"))).expect("log");
    let err = log.try_clone().expect("log");
    let port = free_port();
    env.admin_ports.push(port);
    let mut command = tokio::process::Command::new(e2e::binary("portcullis-gate"));
    command
        .arg("--kubeconfig")
        .arg(env.kubeconfig())
        .args(["--admin-address", &format!("127.0.0.1:{port}")])
        .args(["--sweep-interval-seconds", "1"])
        .args(["--keptn-metrics-port", "0"])
        .args(["--identity", &format!("gate-{i}")])
        .env("LOG_FILTER", "info,gate=debug,kube=warn")
        .env("OTEL_BSP_SCHEDULE_DELAY", BATCH_DELAY_MS.to_string())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("POD_NAMESPACE")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .kill_on_drop(true);
    for (k, v) in vars {
        command.env(k, v);
    }
    env.gates.push(command.spawn().expect("gate binary starts"));
}

/// A container task definition whose Job's pod succeeds quickly (kwok).
async fn quick_task(client: &Client, ns: &str, name: &str) {
    task_definition(client, ns, name, "200ms", "30s").await;
}

/// A container task definition whose Job's pod succeeds after `run_for` (kwok).
async fn task_definition(client: &Client, ns: &str, name: &str, run_for: &str, timeout: &str) {
    let def: KeptnTaskDefinition = serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": name, "labels": {"kwok.portcullis.dev/outcome": "succeed"}, "annotations": {"kwok.portcullis.dev/run-for": run_for}},
        "spec": {
            "container": {"name": "check", "image": "busybox:1.36", "command": ["true"]},
            "retries": 1, "timeout": timeout,
        }
    }))
    .expect("definition");
    Api::<KeptnTaskDefinition>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &def)
        .await
        .expect("definition created");
}

/// Starts a single-service rollout of `app` (workload `app`, version `version`, its
/// pre-deployment `tasks`): the gated Deployment, the webhook's objects, the creation request.
async fn start_rollout(client: &Client, ns: &str, app: &str, version: &str, tasks: &[&str]) {
    let rs = gated_deployment(client, ns, app, app, version, 1, json!({})).await;
    workload_objects(client, ns, app, app, version, &rs, tasks).await;
    creation_request(client, ns, app, true).await;
}

/// A single-service rollout of `app` (workload `app`, version `version`) up to the completed
/// KeptnAppVersion; returns the KAV and the KWV.
async fn rollout(
    client: &Client,
    ns: &str,
    app: &str,
    version: &str,
    tasks: &[&str],
) -> (KeptnAppVersion, KeptnWorkloadVersion) {
    start_rollout(client, ns, app, version, tasks).await;
    let kav_name = format!("{app}-{version}-6b86b273");
    let kwv_name = format!("{app}-{app}-{version}");
    wait_for("KWV and KAV Completed", WAIT, || async {
        let done = ("Completed".to_owned(), KeptnState::Succeeded);
        (kwv_state(client, ns, &kwv_name).await? == done
            && kav_state(client, ns, &kav_name).await? == done)
            .then_some(())
    })
    .await;
    let kav = get(client, ns, &kav_name).await.expect("kav");
    let kwv = get(client, ns, &kwv_name).await.expect("kwv");
    (kav, kwv)
}

/// Waits until the first gate's log holds `text`.
async fn wait_gate_log(env: &Env, text: &str) {
    wait_for(text, WAIT, || async {
        env.gate_log(0).contains(text).then_some(())
    })
    .await;
}

/// A collector, and a gate tracing the namespace `ns` to it (KeptnConfig `OTelCollectorUrl`).
async fn traced_gate(ns: &str) -> (Collector, Env) {
    let collector = Collector::default();
    let port = collector.start().await;
    let mut env = start_env().await;
    env.namespace(ns).await;
    env.config(ns, json!({"OTelCollectorUrl": format!("127.0.0.1:{port}")}))
        .await;
    start_gate_with_env(&mut env, &[]);
    wait_gate_log(&env, "tracing on").await;
    (collector, env)
}

/// The span id of a W3C traceparent, as bytes.
fn traceparent_span_id(traceparent: &str) -> Vec<u8> {
    let hex = traceparent.split('-').nth(2).expect("span id field");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// B §7.4, §3.9 step 0, A21: untraced by default (no `phaseTraceIDs`, no KWV `spec.traceId`,
/// generation 1); with a KeptnConfig `OTelCollectorUrl` without scheme the lifecycle arrives
/// as one trace: KAV root → AppDeploy → KWV root → `<workload>/WorkloadDeploy`, task spans under
/// their phase, Keptn's names, attributes, kind and service name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptnconfig_collector_receives_the_lifecycle_as_one_trace() {
    let collector = Collector::default();
    let port = collector.start().await;
    let mut env = start_env().await;
    let c = env.client.clone();
    start_gate_with_env(&mut env, &[]);

    // Off by default: nothing written, nothing exported.
    let ns = "untraced";
    env.namespace(ns).await;
    quick_task(&c, ns, "quiet").await;
    let (kav, kwv) = rollout(&c, ns, "plain", "1.0", &["quiet"]).await;
    assert!(
        kav.status.expect("status").phase_trace_ids.is_empty(),
        "no phaseTraceIDs while tracing is off"
    );
    assert!(kwv.spec.trace_id.is_empty());
    assert_eq!(
        kwv.metadata.generation,
        Some(1),
        "no spec write for a trace id"
    );
    assert!(kwv.status.expect("status").phase_trace_ids.is_empty());
    let untraced = tasks(&c, ns).await;
    assert_eq!(untraced.len(), 1);
    assert!(
        !untraced[0]
            .spec
            .context
            .metadata
            .contains_key("traceparent"),
        "no traceparent in task contexts while tracing is off"
    );

    let ns = "traced";
    env.namespace(ns).await;
    env.config(ns, json!({"OTelCollectorUrl": format!("127.0.0.1:{port}")}))
        .await;
    wait_gate_log(&env, "tracing on").await;
    quick_task(&c, ns, "smoke").await;
    let (kav, kwv) = rollout(&c, ns, "shop", "2.0", &["smoke"]).await;
    let kav_name = "shop-2.0-6b86b273";
    let kwv_name = "shop-shop-2.0";
    let task_name = kwv
        .status
        .as_ref()
        .expect("status")
        .pre_deployment_task_status[0]
        .name
        .clone();
    let spans = collector
        .wait_for(&[
            kav_name,
            "AppDeploy",
            "AppPreDeployTasks",
            kwv_name,
            "shop-shop/WorkloadPreDeployTasks",
            "shop-shop/WorkloadDeploy",
            &task_name,
        ])
        .await;
    eprintln!(
        "received {} spans: {:?}",
        collector.count(),
        collector
            .spans
            .lock()
            .expect("lock")
            .iter()
            .map(|r| r.span.name.clone())
            .collect::<Vec<_>>()
    );
    let kav_root = &spans[kav_name];
    let app_deploy = &spans["AppDeploy"];
    let kwv_root = &spans[kwv_name];
    let workload_deploy = &spans["shop-shop/WorkloadDeploy"];
    let workload_pre = &spans["shop-shop/WorkloadPreDeployTasks"];
    let task = &spans[task_name.as_str()];

    // One trace, linked parent to child.
    let trace_id = &kav_root.span.trace_id;
    assert_eq!(trace_id.len(), 16);
    for r in spans.values() {
        assert_eq!(
            &r.span.trace_id, trace_id,
            "{} in the same trace",
            r.span.name
        );
        assert_eq!(r.service, "lifecycle-operator");
        assert_eq!(r.span.kind, SpanKind::Consumer as i32, "{}", r.span.name);
        assert_eq!(
            r.span.status.as_ref().map(|s| s.code),
            Some(StatusCode::Ok as i32),
            "{}",
            r.span.name
        );
        assert!(r.span.start_time_unix_nano <= r.span.end_time_unix_nano);
    }
    assert!(
        kav_root.span.parent_span_id.is_empty(),
        "no user traceparent"
    );
    assert_eq!(app_deploy.span.parent_span_id, kav_root.span.span_id);
    assert_eq!(kwv_root.span.parent_span_id, app_deploy.span.span_id);
    assert_eq!(workload_deploy.span.parent_span_id, kwv_root.span.span_id);
    assert_eq!(task.span.parent_span_id, workload_pre.span.span_id);

    // Where the ids live in the cluster.
    let kav_status = kav.status.expect("status");
    let stored = &kav_status.phase_trace_ids["AppDeploy"]["traceparent"];
    assert_eq!(traceparent_span_id(stored), app_deploy.span.span_id);
    assert_eq!(
        kwv.spec.trace_id,
        BTreeMap::from([("traceparent".to_owned(), stored.clone())]),
        "the KWV carries the AppDeploy context, as Keptn's carrier: no tracestate"
    );
    let kwv_stored = &kwv.status.as_ref().expect("status").phase_trace_ids["WorkloadDeploy"];
    assert_eq!(
        traceparent_span_id(&kwv_stored["traceparent"]),
        workload_deploy.span.span_id
    );
    // B §5.1: the task's context (KEPTN_CONTEXT) carries its phase's traceparent, nothing else.
    let task_obj: shared::crd::KeptnTask = get(&c, ns, &task_name).await.expect("task");
    let task_meta = &task_obj.spec.context.metadata;
    let task_parent = task_meta
        .get("traceparent")
        .expect("traceparent in context");
    assert_eq!(traceparent_span_id(task_parent), workload_pre.span.span_id);
    assert!(!task_meta.contains_key("tracestate"));

    // Names, scopes and attributes as Keptn's (B §7.4).
    assert_eq!(kav_root.scope, "keptn/lifecycle-operator/appversion");
    assert_eq!(kwv_root.scope, "keptn/lifecycle-operator/workloadversion");
    for r in [kav_root, app_deploy] {
        assert_eq!(
            r.attribute("keptn.deployment.app.name").as_deref(),
            Some("shop")
        );
        assert_eq!(
            r.attribute("keptn.deployment.app.version").as_deref(),
            Some("2.0")
        );
        assert_eq!(
            r.attribute("keptn.deployment.app.namespace").as_deref(),
            Some(ns)
        );
    }
    for r in [kwv_root, workload_deploy] {
        assert_eq!(
            r.attribute("keptn.deployment.app.name").as_deref(),
            Some("shop")
        );
        assert_eq!(
            r.attribute("keptn.deployment.workload.name").as_deref(),
            Some("shop-shop")
        );
        assert_eq!(
            r.attribute("keptn.deployment.workload.version").as_deref(),
            Some("2.0")
        );
        assert_eq!(
            r.attribute("keptn.deployment.workload.namespace")
                .as_deref(),
            Some(ns)
        );
    }
    assert_eq!(
        task.attribute("keptn.deployment.task.name").as_deref(),
        Some(task_name.as_str())
    );
    assert_eq!(
        task.attribute("keptn.deployment.task.type").as_deref(),
        Some("pre")
    );
    assert!(
        app_deploy
            .span
            .events
            .iter()
            .any(|e| e.name == "App Deployment has succeeded")
    );
    // Roots span their object's lifetime (status startTime .. endTime).
    let start = kav_status.start_time.expect("startTime").0;
    assert_eq!(
        kav_root.span.start_time_unix_nano as i128,
        start.as_nanosecond()
    );
    assert!(app_deploy.span.start_time_unix_nano >= kav_root.span.start_time_unix_nano);
    assert!(app_deploy.span.end_time_unix_nano <= kav_root.span.end_time_unix_nano);
}

/// A21: `OTEL_EXPORTER_OTLP_ENDPOINT` alone turns tracing on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_endpoint_variable_turns_tracing_on() {
    let collector = Collector::default();
    let port = collector.start().await;
    let mut env = start_env().await;
    let c = env.client.clone();
    let endpoint = format!("http://127.0.0.1:{port}");
    start_gate_with_env(&mut env, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let ns = "env-traced";
    env.namespace(ns).await;
    let (kav, _) = rollout(&c, ns, "solo", "0.1", &[]).await;
    let spans = collector
        .wait_for(&["solo-0.1-6b86b273", "AppDeploy", "solo-solo/WorkloadDeploy"])
        .await;
    let stored = &kav.status.expect("status").phase_trace_ids["AppDeploy"]["traceparent"];
    assert_eq!(traceparent_span_id(stored), spans["AppDeploy"].span.span_id);
}

/// The start time a `phaseTraceIDs` entry carries in its `tracestate` (`portcullis=s:<ns>`).
fn tracestate_start(carrier: &BTreeMap<String, String>) -> u64 {
    let state = carrier.get("tracestate").expect("tracestate");
    let nanos = state
        .split(',')
        .find_map(|m| m.trim().strip_prefix("portcullis=s:"))
        .expect("portcullis member");
    nanos.parse().expect("nanoseconds")
}

/// B §7.4 without Keptn's in-memory span map: a gate killed (SIGKILL) while the KeptnAppVersion is
/// in AppDeploy and a workload task runs; the next gate finishes the same trace. The AppDeploy
/// span it exports starts when the first gate entered the phase and keeps its id, the workload
/// spans hang under it, and no span is exported twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gate_finishes_the_same_trace() {
    let ns = "restart";
    let (collector, mut env) = traced_gate(ns).await;
    let c = env.client.clone();
    task_definition(&c, ns, "slow", "3s", "60s").await;
    start_rollout(&c, ns, "cart", "3.1", &["slow"]).await;
    let kav_name = "cart-3.1-6b86b273";
    let kwv_name = "cart-cart-3.1";

    // Gate 0 entered AppDeploy and started the workload's task, then dies.
    let app_deploy_carrier = wait_for("AppDeploy entered and the task's Job running", WAIT, || {
        let c = c.clone();
        async move {
            let kav: KeptnAppVersion = get(&c, ns, kav_name).await?;
            let carrier = kav.status?.phase_trace_ids.get("AppDeploy")?.clone();
            let running = tasks(&c, ns)
                .await
                .iter()
                .any(|t| t.status.as_ref().is_some_and(|s| !s.job_name.is_empty()));
            running.then_some(carrier)
        }
    })
    .await;
    env.kill_gate(0).await;
    let before_restart = collector.count();
    start_gate_with_env(&mut env, &[]);

    let task_name = wait_for("the task's name", WAIT, || {
        let c = c.clone();
        async move {
            tasks(&c, ns)
                .await
                .first()
                .and_then(|t| t.metadata.name.clone())
        }
    })
    .await;
    let spans = collector
        .wait_for(&[
            kav_name,
            "AppDeploy",
            kwv_name,
            "cart-cart/WorkloadPreDeployTasks",
            &task_name,
            "cart-cart/WorkloadDeploy",
        ])
        .await;
    eprintln!(
        "{before_restart} spans before the restart, {} in all",
        collector.count()
    );
    let app_deploy = &spans["AppDeploy"];
    assert_eq!(
        app_deploy.span.start_time_unix_nano,
        tracestate_start(&app_deploy_carrier),
        "the phase start written by the first gate"
    );
    assert_eq!(
        traceparent_span_id(&app_deploy_carrier["traceparent"]),
        app_deploy.span.span_id
    );
    let trace_id = &spans[kav_name].span.trace_id;
    assert!(spans.values().all(|r| &r.span.trace_id == trace_id));
    assert_eq!(app_deploy.span.parent_span_id, spans[kav_name].span.span_id);
    assert_eq!(spans[kwv_name].span.parent_span_id, app_deploy.span.span_id);
    assert_eq!(
        spans["cart-cart/WorkloadPreDeployTasks"]
            .span
            .parent_span_id,
        spans[kwv_name].span.span_id
    );
    assert_eq!(
        spans[task_name.as_str()].span.parent_span_id,
        spans["cart-cart/WorkloadPreDeployTasks"].span.span_id
    );
    // A duplicate would come in a later batch: let the exports drain first.
    collector.wait_quiet().await;
    let received = collector.spans.lock().expect("lock").clone();
    let mut ids: Vec<&Vec<u8>> = received.iter().map(|r| &r.span.span_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), received.len(), "no span exported twice");
}

/// B §7.4, §5.1, §8.20: tracing turned off (KeptnConfig `OTelCollectorUrl` cleared) while a
/// workload's pre-deployment phase runs. The phase's `phaseTraceIDs` entry stays on the
/// unfinished KeptnWorkloadVersion, but the task created after that carries no `traceparent`
/// in its context; the one created while tracing was on does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_created_after_tracing_is_turned_off_carry_no_traceparent() {
    let ns = "off-again";
    let (_collector, env) = traced_gate(ns).await;
    let c = env.client.clone();
    // "later" has no definition yet: the phase waits for it (B §8.12).
    quick_task(&c, ns, "early").await;
    start_rollout(&c, ns, "mall", "1.0", &["early", "later"]).await;
    let kwv_name = "mall-mall-1.0";
    let task_of = |definition: &'static str| {
        let c = c.clone();
        move || {
            let c = c.clone();
            async move {
                tasks(&c, ns)
                    .await
                    .into_iter()
                    .find(|t| t.spec.task_definition == definition)
            }
        }
    };
    let early = wait_for("the task of \"early\"", WAIT, task_of("early")).await;
    // The task is created before the version's status records the phase's trace: wait for both.
    let entry = wait_for("the phase's trace on the version", WAIT, || {
        let c = c.clone();
        async move {
            let kwv: KeptnWorkloadVersion = get(&c, ns, kwv_name).await?;
            kwv.status?
                .phase_trace_ids
                .get("WorkloadPreDeployTasks")
                .cloned()
        }
    })
    .await;
    assert_eq!(
        early.spec.context.metadata.get("traceparent"),
        entry.get("traceparent"),
        "created while tracing is on: its phase's traceparent"
    );

    Api::<shared::crd::KeptnConfig>::namespaced(c.clone(), ns)
        .patch(
            "keptn-config",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"OTelCollectorUrl": ""}})),
        )
        .await
        .expect("config cleared");
    wait_gate_log(&env, "tracing off").await;
    quick_task(&c, ns, "later").await;
    let later = wait_for("the task of \"later\"", WAIT, task_of("later")).await;
    // The pass that created the task writes the version's status after it: wait for that status
    // (it lists the task), so the entry is checked as written with tracing off.
    let later_name = later.metadata.name.clone().expect("task name");
    let status = wait_for(
        "the version's status listing the task of \"later\"",
        WAIT,
        || {
            let c = c.clone();
            let later_name = later_name.clone();
            async move {
                let kwv: KeptnWorkloadVersion = get(&c, ns, kwv_name).await?;
                let status = kwv.status?;
                status
                    .pre_deployment_task_status
                    .iter()
                    .any(|t| t.name == later_name)
                    .then_some(status)
            }
        },
    )
    .await;
    assert_eq!(
        status.phase_trace_ids.get("WorkloadPreDeployTasks"),
        Some(&entry),
        "the entry written while tracing was on is still there"
    );
    assert!(
        !later.spec.context.metadata.contains_key("traceparent"),
        "no traceparent once tracing is off: {:?}",
        later.spec.context.metadata
    );
}
