//! The API types against SPEC B §2: documents as a Keptn user writes them round-trip unchanged,
//! minimal documents get the defaults, and the generated CRDs carry the names, columns,
//! subresources, required lists and defaults SPEC gives.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::crd::*;

// ---------------------------------------------------------------------------------------------
// helpers

fn yaml(doc: &str) -> Value {
    serde_yaml::from_str(doc).expect("test YAML parses")
}

/// Deserialises `doc` into `K`, serialises it again and asserts nothing was lost or invented.
fn assert_round_trip<K: DeserializeOwned + Serialize>(doc: &str) -> K {
    let original = yaml(doc);
    let typed: K = serde_json::from_value(original.clone()).expect("document deserialises");
    let again = serde_json::to_value(&typed).expect("object serialises");
    assert_eq!(again, original, "round trip changed the document");
    typed
}

/// Deserialises `doc` and returns what the type writes back (defaults materialised).
fn normalised<K: DeserializeOwned + Serialize>(doc: &str) -> Value {
    let typed: K = serde_json::from_value(yaml(doc)).expect("document deserialises");
    serde_json::to_value(&typed).expect("object serialises")
}

fn crd(plural: &str) -> CustomResourceDefinition {
    let all = all();
    assert_eq!(all.len(), 13, "thirteen CRDs");
    all.into_iter()
        .find(|c| c.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("no CRD with plural {plural}"))
}

/// The schema of `v1`, the stored version Portcullis reads (the older versions have their own
/// tests in `shared::crd::conversion`).
fn root_schema(crd: &CustomResourceDefinition) -> &JSONSchemaProps {
    let v1 = crd
        .spec
        .versions
        .iter()
        .find(|v| v.storage)
        .unwrap_or_else(|| panic!("{}: a stored version", crd.spec.names.plural));
    assert!(
        v1.name == "v1" || crd.spec.group == "options.keptn.sh",
        "{}: stores {}",
        crd.spec.names.plural,
        v1.name
    );
    v1.schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("version has a schema")
}

/// The schema node at a dotted path of property names; `[]` steps into array items and `{}`
/// into map values.
fn node<'a>(crd: &'a CustomResourceDefinition, path: &str) -> &'a JSONSchemaProps {
    let mut cur = root_schema(crd);
    for step in path.split('.') {
        cur = match step {
            "[]" => match cur.items.as_ref() {
                Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s)) => s,
                other => panic!("{path}: no items schema at [] ({other:?})"),
            },
            "{}" => match cur.additional_properties.as_ref() {
                Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(s)) => s,
                other => panic!("{path}: no map value schema at {{}} ({other:?})"),
            },
            name => cur
                .properties
                .as_ref()
                .and_then(|p| p.get(name))
                .unwrap_or_else(|| panic!("{}: no property {path}", crd.spec.names.plural)),
        };
    }
    cur
}

fn required(crd: &CustomResourceDefinition, path: &str) -> Vec<String> {
    let mut r = node(crd, path).required.clone().unwrap_or_default();
    r.sort();
    r
}

fn default_of(crd: &CustomResourceDefinition, path: &str) -> Option<Value> {
    node(crd, path).default.as_ref().map(|d| d.0.clone())
}

fn columns(crd: &CustomResourceDefinition) -> Vec<(String, String, i32)> {
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| {
            assert_eq!(c.type_, "string", "column {} is a string column", c.name);
            (c.name.clone(), c.json_path.clone(), c.priority.unwrap_or(0))
        })
        .collect()
}

fn col(name: &str, path: &str, priority: i32) -> (String, String, i32) {
    (name.to_owned(), path.to_owned(), priority)
}

/// The priority-1 column `name` showing `.status.<name in lowerCamelCase>` (the phase statuses of
/// KeptnAppVersion and KeptnWorkloadVersion).
fn status_col(name: &str) -> (String, String, i32) {
    let mut field = name.to_owned();
    field[..1].make_ascii_lowercase();
    col(name, &format!(".status.{field}"), 1)
}

// ---------------------------------------------------------------------------------------------
// round trips: every optional field set, as a Keptn user (or the operator) writes it

#[test]
fn keptn_app_round_trips() {
    let app: KeptnApp = assert_round_trip(
        r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnApp
metadata: {name: podtato-head, namespace: podtato-kubectl}
spec:
  version: "0.1.1"
  revision: 2
  workloads:
    - name: podtato-head-left-arm
      version: "0.2.7"
    - name: podtato-head-entry
      version: "0.2.7"
status:
  currentVersion: "0.1.1"
"#,
    );
    assert_eq!(app.spec.revision, 2);
    assert_eq!(app.spec.workloads[1].name, "podtato-head-entry");
}

#[test]
fn keptn_app_context_round_trips() {
    let ctx: KeptnAppContext = assert_round_trip(
        r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnAppContext
metadata: {name: podtato-head, namespace: podtato-kubectl}
spec:
  preDeploymentTasks: [check-entry-service]
  postDeploymentTasks: [post-deployment-hello]
  preDeploymentEvaluations: [app-pre-deploy-eval-1]
  postDeploymentEvaluations: [app-post-deploy-eval-1]
  promotionTasks: [promote]
  metadata:
    commit-id: "1234"
    author: myUser
  spanLinks:
    - "00-c088f5c586bab8649159ccc39a9862f7-f862289833f1fba3-01"
status:
  status: unused
"#,
    );
    assert_eq!(ctx.spec.promotion_tasks, ["promote"]);
}

#[test]
fn keptn_app_creation_request_round_trips() {
    let kacr: KeptnAppCreationRequest = assert_round_trip(
        r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnAppCreationRequest
metadata:
  name: podtato-head
  namespace: podtato-kubectl
  annotations: {keptn.sh/app-type: single-service}
spec:
  appName: podtato-head
status: whatever
"#,
    );
    assert_eq!(kacr.status.as_deref(), Some("whatever"));
}

const KAV_FULL: &str = r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnAppVersion
metadata: {name: podtato-head-0.1.1-6b86b273, namespace: podtato-kubectl, generation: 3}
spec:
  preDeploymentTasks: [a]
  postDeploymentTasks: [b]
  preDeploymentEvaluations: [c]
  postDeploymentEvaluations: [d]
  promotionTasks: [e]
  metadata: {k: v}
  spanLinks: ["00-aaaa-bbbb-01"]
  version: "0.1.1"
  revision: 1
  workloads:
    - {name: podtato-head-entry, version: "0.2.7"}
  appName: podtato-head
  previousVersion: "0.1.0"
  traceId: {traceparent: "00-c088f5c586bab8649159ccc39a9862f7-f862289833f1fba3-01"}
status:
  preDeploymentStatus: Succeeded
  postDeploymentStatus: Progressing
  promotionStatus: Pending
  preDeploymentEvaluationStatus: Succeeded
  postDeploymentEvaluationStatus: Pending
  workloadOverallStatus: Succeeded
  status: Progressing
  workloadStatus:
    - workload: {name: podtato-head-entry, version: "0.2.7"}
      status: Succeeded
  currentPhase: AppPostDeployTasks
  preDeploymentTaskStatus:
    - definitionName: a
      status: Succeeded
      name: pre-a-12345
      startTime: "2024-05-01T10:00:00Z"
      endTime: "2024-05-01T10:00:07Z"
  postDeploymentTaskStatus:
    - {definitionName: b, status: Progressing, name: post-b-23456, startTime: "2024-05-01T10:02:00Z"}
  promotionTaskStatus:
    - {definitionName: e, status: Pending, name: promotion-e-34567}
  preDeploymentEvaluationTaskStatus:
    - {definitionName: c, status: Succeeded, name: pre-eval-c-45678}
  postDeploymentEvaluationTaskStatus:
    - {definitionName: d, status: Pending, name: post-eval-d-56789}
  phaseTraceIDs:
    AppPreDeployTasks: {traceparent: "00-1111-2222-01"}
    AppDeploy: {traceparent: "00-3333-4444-01"}
  startTime: "2024-05-01T09:59:58Z"
  endTime: "2024-05-01T10:05:00Z"
  observedGeneration: 3
  conditions:
    - type: Ready
      status: "False"
      observedGeneration: 3
      lastTransitionTime: "2024-05-01T10:00:00Z"
      reason: PostDeploymentTasks
      message: post-deployment tasks running
    - type: Progressing
      status: "True"
      observedGeneration: 3
      lastTransitionTime: "2024-05-01T10:00:00Z"
      reason: PostDeploymentTasks
      message: post-deployment tasks running
"#;

#[test]
fn keptn_app_version_round_trips() {
    let kav: KeptnAppVersion = assert_round_trip(KAV_FULL);
    assert_eq!(kav.spec.app_name, "podtato-head");
    assert_eq!(kav.spec.app.version, "0.1.1");
    assert_eq!(kav.spec.context.pre_deployment_tasks, ["a"]);
    let status = kav.status.expect("status");
    assert_eq!(status.post_deployment_status, KeptnState::Progressing);
    assert_eq!(
        status.phase_trace_ids["AppDeploy"]["traceparent"],
        "00-3333-4444-01"
    );
    assert_eq!(status.conditions.len(), 2);
}

#[test]
fn keptn_workload_round_trips() {
    let kw: KeptnWorkload = assert_round_trip(
        r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnWorkload
metadata: {name: podtato-head-podtato-head-entry, namespace: podtato-kubectl}
spec:
  app: podtato-head
  version: "0.2.7"
  preDeploymentTasks: [a]
  postDeploymentTasks: [b]
  preDeploymentEvaluations: [c]
  postDeploymentEvaluations: [d]
  resourceReference:
    uid: 957f825e-4025-4ea8-ad22-9292877ff7eb
    kind: ReplicaSet
    name: podtato-head-entry-6bd9f8b6c4
  metadata: {commit: abc}
status:
  currentVersion: "0.2.7"
"#,
    );
    assert_eq!(kw.spec.resource_reference.kind, "ReplicaSet");
}

const KWV_FULL: &str = r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnWorkloadVersion
metadata: {name: podtato-head-podtato-head-entry-0.2.7, namespace: podtato-kubectl}
spec:
  app: podtato-head
  version: "0.2.7"
  preDeploymentTasks: [a]
  postDeploymentTasks: [b]
  preDeploymentEvaluations: [c]
  postDeploymentEvaluations: [d]
  resourceReference: {uid: "957f825e", kind: ReplicaSet, name: podtato-head-entry-6bd9f8b6c4}
  metadata: {commit: abc}
  workloadName: podtato-head-podtato-head-entry
  previousVersion: "0.2.6"
  traceId: {traceparent: "00-aaaa-bbbb-01"}
status:
  preDeploymentStatus: Succeeded
  deploymentStatus: Progressing
  preDeploymentEvaluationStatus: Succeeded
  postDeploymentEvaluationStatus: Pending
  postDeploymentStatus: Pending
  status: Progressing
  preDeploymentTaskStatus:
    - {definitionName: a, status: Succeeded, name: pre-a-11111, startTime: "2024-05-01T10:00:00Z", endTime: "2024-05-01T10:00:05Z"}
  postDeploymentTaskStatus:
    - {definitionName: b, status: Pending, name: post-b-22222}
  preDeploymentEvaluationTaskStatus:
    - {definitionName: c, status: Succeeded, name: pre-eval-c-33333}
  postDeploymentEvaluationTaskStatus:
    - {definitionName: d, status: Pending, name: post-eval-d-44444}
  startTime: "2024-05-01T10:00:00Z"
  endTime: "2024-05-01T10:09:00Z"
  deploymentStartTime: "2024-05-01T10:00:06Z"
  currentPhase: WorkloadDeploy
  phaseTraceIDs:
    WorkloadPreDeployTasks: {traceparent: "00-1111-2222-01"}
  appContextMetadata: {commit-id: "1234"}
  observedGeneration: 1
  conditions:
    - type: Ready
      status: "False"
      observedGeneration: 1
      lastTransitionTime: "2024-05-01T10:00:06Z"
      reason: Deployment
      message: waiting for the workload to be available
"#;

#[test]
fn keptn_workload_version_round_trips() {
    let kwv: KeptnWorkloadVersion = assert_round_trip(KWV_FULL);
    assert_eq!(kwv.spec.workload.app, "podtato-head");
    assert_eq!(kwv.spec.workload_name, "podtato-head-podtato-head-entry");
    let status = kwv.status.expect("status");
    assert_eq!(status.deployment_status, KeptnState::Progressing);
    assert_eq!(status.pre_deployment_task_status[0].name, "pre-a-11111");
}

#[test]
fn keptn_task_definition_round_trips() {
    let ktd: KeptnTaskDefinition = assert_round_trip(
        r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnTaskDefinition
metadata: {name: all-fields, namespace: default}
spec:
  deno:
    functionRef: {name: other-definition}
    inline:
      code: |
        console.log("hello");
    httpRef: {url: "https://example.com/hello.ts"}
    configMapRef: {name: my-code}
    parameters:
      map: {user: world}
    secureParameters: {secret: my-secret}
    cmdParameters: "-h"
  python:
    inline: {code: "print('hi')"}
    parameters: {map: {a: b}}
    secureParameters: {secret: py-secret}
    cmdParameters: "-v"
  container:
    name: testy-test
    image: busybox:1.36.1
    command: [sh, -c]
    args: ["echo Hello $DATA"]
    env:
      - {name: FOO, value: bar}
    resources:
      limits: {cpu: 500m, memory: 64Mi}
  retries: 3
  timeout: 1h30m
  serviceAccount: {name: task-runner}
  automountServiceAccountToken: {type: false}
  ttlSecondsAfterFinished: 60
  imagePullSecrets:
    - name: regcred
status:
  function:
    configMap: keptnfn-all-fields
"#,
    );
    assert_eq!(ktd.spec.timeout.as_str(), "1h30m");
    assert_eq!(
        ktd.spec.container.as_ref().map(|c| c.name.as_str()),
        Some("testy-test")
    );
    assert!(
        !ktd.spec
            .automount_service_account_token
            .as_ref()
            .expect("set")
            .type_
    );
}

#[test]
fn keptn_task_round_trips() {
    let task: KeptnTask = assert_round_trip(
        r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnTask
metadata: {name: pre-check-entry-12345, namespace: podtato-kubectl}
spec:
  taskDefinition: check-entry-service
  context:
    workloadName: podtato-head-entry
    appName: podtato-head
    appVersion: ""
    workloadVersion: "0.2.7"
    taskType: pre
    objectType: Workload
    metadata: {commit: abc}
  parameters:
    map: {url: "http://entry"}
  secureParameters:
    secret: my-secret
  checkType: pre
  retries: 2
  timeout: 90s
status:
  jobName: check-entry-service-54321
  status: Failed
  message: Job failed
  reason: BackoffLimitExceeded
  startTime: "2024-05-01T10:00:00Z"
  endTime: "2024-05-01T10:01:00Z"
"#,
    );
    assert_eq!(
        task.spec.context.app_version, "",
        "empty context strings are kept"
    );
    assert_eq!(task.status.expect("status").status, KeptnState::Failed);
}

#[test]
fn keptn_evaluation_definition_round_trips() {
    let ked: KeptnEvaluationDefinition = assert_round_trip(
        r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnEvaluationDefinition
metadata: {name: app-pre-deploy-eval-1, namespace: podtato-kubectl}
spec:
  objectives:
    - keptnMetricRef: {name: available-cpus, namespace: podtato-kubectl}
      evaluationTarget: ">1"
    - keptnMetricRef: {name: cpu-throttling}
      evaluationTarget: "<0.5"
  retries: 5
  retryInterval: 10s
status: unused
"#,
    );
    assert_eq!(ked.spec.objectives[1].keptn_metric_ref.namespace, "");
}

#[test]
fn keptn_evaluation_round_trips() {
    let ke: KeptnEvaluation = assert_round_trip(
        r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnEvaluation
metadata: {name: pre-eval-app-pre-deploy-eval-1-12345, namespace: podtato-kubectl}
spec:
  workload: podtato-head-entry
  workloadVersion: "0.2.7"
  appName: podtato-head
  appVersion: "0.1.1"
  evaluationDefinition: app-pre-deploy-eval-1
  checkType: pre-eval
  retries: 3
  retryInterval: 2s
status:
  retryCount: 1
  evaluationStatus:
    available-cpus:
      value: "4"
      status: Succeeded
    cpu-throttling:
      value: "0.9"
      status: Failed
      message: value '0.9' did not meet objective '<0.5'
  overallStatus: Failed
  startTime: "2024-05-01T10:00:00Z"
  endTime: "2024-05-01T10:00:12Z"
"#,
    );
    let status = ke.status.expect("status");
    assert_eq!(status.retry_count, 1);
    assert_eq!(
        status.evaluation_status["cpu-throttling"].status,
        KeptnState::Failed
    );
}

#[test]
fn keptn_config_round_trips() {
    let cfg: KeptnConfig = assert_round_trip(
        r#"
apiVersion: options.keptn.sh/v1alpha1
kind: KeptnConfig
metadata: {name: keptn-config, namespace: keptn-system}
spec:
  OTelCollectorUrl: otel-collector:4317
  keptnAppCreationRequestTimeoutSeconds: 40
  cloudEventsEndpoint: http://events.example.com
  blockDeployment: false
  observabilityTimeout: 10m
  restApiEnabled: true
status: unused
"#,
    );
    assert_eq!(cfg.spec.otel_collector_url, "otel-collector:4317");
    assert!(!cfg.spec.block_deployment);
}

#[test]
fn keptn_metric_round_trips() {
    let metric: KeptnMetric = assert_round_trip(
        r#"
apiVersion: metrics.keptn.sh/v1
kind: KeptnMetric
metadata: {name: available-cpus, namespace: podtato-kubectl}
spec:
  provider: {name: my-provider}
  query: sum(kube_node_status_capacity{resource="cpu"})
  fetchIntervalSeconds: 10
  range:
    interval: 3m
    step: 1m
    aggregation: max
    storedResults: 4
status:
  value: "4"
  rawValue: NA==
  lastUpdated: "2024-05-01T10:00:00Z"
  errMsg: ""
  intervalResults:
    - value: "3"
      range: {interval: 3m}
      lastUpdated: "2024-05-01T09:57:00Z"
      errMsg: timeout
"#
        // errMsg "" is omitted by the writer (Go omitempty); drop it from the expectation.
        .replace("  errMsg: \"\"\n", "")
        .as_str(),
    );
    assert_eq!(metric.status.expect("status").value, "4");
}

#[test]
fn keptn_metrics_provider_round_trips() {
    let provider: KeptnMetricsProvider = assert_round_trip(
        r#"
apiVersion: metrics.keptn.sh/v1
kind: KeptnMetricsProvider
metadata: {name: my-provider, namespace: podtato-kubectl}
spec:
  type: prometheus
  targetServer: "http://prometheus-k8s.monitoring.svc.cluster.local:9090"
  secretKeyRef:
    name: prometheus-secret
    key: credentials
    optional: false
  insecureSkipTlsVerify: true
status: unused
"#,
    );
    assert_eq!(provider.provider_type(), "prometheus");
    assert_eq!(provider.secret_name(), Some("prometheus-secret"));
    assert!(provider.spec.insecure_skip_tls_verify);
    assert_eq!(provider.status.as_deref(), Some("unused"));
}

#[test]
fn keptn_metric_interval_result_range_may_be_null_or_absent() {
    let doc = |range: &str| {
        format!(
            "apiVersion: metrics.keptn.sh/v1\nkind: KeptnMetric\nmetadata: {{name: m}}\n\
             spec: {{provider: {{name: p}}, query: q, fetchIntervalSeconds: 5}}\n\
             status:\n  intervalResults:\n    - {{value: '1', lastUpdated: '2024-05-01T10:00:00Z'{range}}}\n"
        )
    };
    // Go writes a nil pointer as null; so does Portcullis.
    let metric: KeptnMetric = assert_round_trip(&doc(", range: null"));
    assert_eq!(
        metric.status.expect("status").interval_results[0].range,
        None
    );
    let v = normalised::<KeptnMetric>(&doc(""));
    assert_eq!(v["status"]["intervalResults"][0]["range"], Value::Null);
    let v = normalised::<KeptnMetric>(&doc(", range: {interval: 3m}"));
    assert_eq!(
        v["status"]["intervalResults"][0]["range"],
        json!({"interval": "3m"})
    );
}

#[test]
fn keptn_metric_helpers_and_unsigned_interval() {
    let metric: KeptnMetric = serde_json::from_value(yaml(
        "apiVersion: metrics.keptn.sh/v1\nkind: KeptnMetric\nmetadata: {name: m}\nspec: {provider: {name: prom}, query: q, fetchIntervalSeconds: 10}\n",
    ))
    .expect("metric");
    assert_eq!(metric.spec.provider_name(), "prom");
    assert_eq!(metric.spec.fetch_interval_seconds, 10u64);
    let negative = "apiVersion: metrics.keptn.sh/v1\nkind: KeptnMetric\nmetadata: {name: m}\nspec: {provider: {name: p}, query: q, fetchIntervalSeconds: -1}\n";
    assert!(serde_json::from_value::<KeptnMetric>(yaml(negative)).is_err());
}

#[test]
fn evaluation_result_last_updated_round_trips() {
    let ke: KeptnEvaluation = assert_round_trip(
        r#"
apiVersion: lifecycle.keptn.sh/v1
kind: KeptnEvaluation
metadata: {name: e, namespace: app}
spec: {workloadVersion: "", evaluationDefinition: d, retries: 10, retryInterval: 5s}
status:
  retryCount: 1
  evaluationStatus:
    cpu: {value: "4", status: Succeeded, message: ok, lastUpdated: "2024-05-01T10:00:00Z"}
    ready: {value: "1", status: Succeeded}
  overallStatus: Succeeded
"#,
    );
    let status = ke.status.expect("status");
    assert!(status.evaluation_status["cpu"].last_updated.is_some());
    assert_eq!(status.evaluation_status["ready"].last_updated, None);
}

// ---------------------------------------------------------------------------------------------
// minimal documents get the defaults

#[test]
fn minimal_keptn_app_gets_revision_one() {
    let v = normalised::<KeptnApp>(
        "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnApp\nmetadata: {name: a}\nspec: {version: v1}\n",
    );
    assert_eq!(v["spec"], json!({"version": "v1", "revision": 1}));
}

#[test]
fn minimal_task_definition_gets_defaults() {
    let v = normalised::<KeptnTaskDefinition>(
        "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnTaskDefinition\nmetadata: {name: t}\nspec:\n  deno:\n    inline: {code: x}\n  imagePullSecrets: [{}]\n",
    );
    assert_eq!(
        v["spec"],
        json!({
            "deno": {"inline": {"code": "x"}},
            "retries": 10,
            "timeout": "5m",
            "ttlSecondsAfterFinished": 300,
            "imagePullSecrets": [{"name": ""}],
        })
    );
}

#[test]
fn minimal_task_gets_defaults_and_writes_every_context_string() {
    let v = normalised::<KeptnTask>(
        "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnTask\nmetadata: {name: t}\nspec: {taskDefinition: d}\nstatus: {}\n",
    );
    assert_eq!(
        v["spec"],
        json!({
            "taskDefinition": "d",
            "context": {
                "workloadName": "", "appName": "", "appVersion": "",
                "workloadVersion": "", "taskType": "", "objectType": "",
            },
            "retries": 10,
            "timeout": "5m",
        })
    );
    assert_eq!(v["status"], json!({"status": "Pending"}));
}

#[test]
fn minimal_evaluation_documents_get_defaults() {
    let v = normalised::<KeptnEvaluationDefinition>(
        "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnEvaluationDefinition\nmetadata: {name: e}\nspec:\n  objectives: [{keptnMetricRef: {name: m}, evaluationTarget: '>1'}]\n",
    );
    assert_eq!(v["spec"]["retries"], json!(10));
    assert_eq!(v["spec"]["retryInterval"], json!("5s"));

    let v = normalised::<KeptnEvaluation>(
        "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnEvaluation\nmetadata: {name: e}\nspec: {evaluationDefinition: d, workloadVersion: ''}\nstatus: {}\n",
    );
    assert_eq!(
        v["spec"],
        json!({"workloadVersion": "", "evaluationDefinition": "d", "retries": 10, "retryInterval": "5s"})
    );
    assert_eq!(
        v["status"],
        json!({"retryCount": 0, "evaluationStatus": {}, "overallStatus": "Pending"})
    );
}

#[test]
fn minimal_config_gets_defaults() {
    let v = normalised::<KeptnConfig>(
        "apiVersion: options.keptn.sh/v1alpha1\nkind: KeptnConfig\nmetadata: {name: c}\nspec: {}\n",
    );
    assert_eq!(
        v["spec"],
        json!({
            "keptnAppCreationRequestTimeoutSeconds": 30,
            "blockDeployment": true,
            "observabilityTimeout": "5m",
            "restApiEnabled": false,
        })
    );
    assert_eq!(
        serde_json::to_value(KeptnConfigSpec::default()).ok(),
        Some(v["spec"].clone())
    );
}

#[test]
fn empty_version_statuses_are_all_pending() {
    let kav = normalised::<KeptnAppVersion>(
        "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnAppVersion\nmetadata: {name: a}\nspec: {appName: a, version: v}\nstatus:\n  workloadStatus: [{workload: {name: w, version: v}}]\n  preDeploymentTaskStatus: [{definitionName: t}]\n",
    );
    assert_eq!(
        kav["spec"],
        json!({"appName": "a", "version": "v", "revision": 1})
    );
    assert_eq!(
        kav["status"],
        json!({
            "preDeploymentStatus": "Pending",
            "postDeploymentStatus": "Pending",
            "promotionStatus": "Pending",
            "preDeploymentEvaluationStatus": "Pending",
            "postDeploymentEvaluationStatus": "Pending",
            "workloadOverallStatus": "Pending",
            "status": "Pending",
            "workloadStatus": [{"workload": {"name": "w", "version": "v"}, "status": "Pending"}],
            "preDeploymentTaskStatus": [{"definitionName": "t", "status": "Pending"}],
        })
    );

    let kwv = normalised::<KeptnWorkloadVersion>(
        "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnWorkloadVersion\nmetadata: {name: w}\nspec: {app: a, version: v, workloadName: w, resourceReference: {uid: u, kind: ReplicaSet, name: r}}\nstatus: {}\n",
    );
    assert_eq!(
        kwv["status"],
        json!({
            "preDeploymentStatus": "Pending",
            "deploymentStatus": "Pending",
            "preDeploymentEvaluationStatus": "Pending",
            "postDeploymentEvaluationStatus": "Pending",
            "postDeploymentStatus": "Pending",
            "status": "Pending",
        })
    );
}

#[test]
fn metric_range_interval_defaults_to_five_minutes() {
    let v = normalised::<KeptnMetric>(
        "apiVersion: metrics.keptn.sh/v1\nkind: KeptnMetric\nmetadata: {name: m}\nspec: {provider: {name: p}, query: q, fetchIntervalSeconds: 5, range: {step: 1m}}\n",
    );
    assert_eq!(v["spec"]["range"], json!({"interval": "5m", "step": "1m"}));
}

#[test]
fn minimal_metrics_provider_gets_defaults_and_its_name_is_its_type() {
    let doc = "apiVersion: metrics.keptn.sh/v1\nkind: KeptnMetricsProvider\nmetadata: {name: prometheus}\nspec: {targetServer: 'http://prom:9090'}\n";
    let v = normalised::<KeptnMetricsProvider>(doc);
    assert_eq!(
        v["spec"],
        json!({"targetServer": "http://prom:9090", "insecureSkipTlsVerify": false})
    );
    assert!(v.get("status").is_none());
    let provider: KeptnMetricsProvider = serde_json::from_value(yaml(doc)).expect("provider");
    assert_eq!(provider.provider_type(), "prometheus");
    assert_eq!(provider.secret_name(), None);
    assert!(!provider.spec.insecure_skip_tls_verify);

    // An explicit type wins over the name; a selector without a name names no Secret (Go writes
    // Keptn's non-pointer selector as `{key: ""}`).
    let typed = "apiVersion: metrics.keptn.sh/v1\nkind: KeptnMetricsProvider\nmetadata: {name: my-thanos}\nspec: {type: thanos, targetServer: 'http://t:9090', secretKeyRef: {key: ''}}\n";
    let provider: KeptnMetricsProvider = serde_json::from_value(yaml(typed)).expect("provider");
    assert_eq!(provider.provider_type(), "thanos");
    assert_eq!(provider.secret_name(), None);

    let no_target = "apiVersion: metrics.keptn.sh/v1\nkind: KeptnMetricsProvider\nmetadata: {name: p}\nspec: {type: prometheus}\n";
    assert!(serde_json::from_value::<KeptnMetricsProvider>(yaml(no_target)).is_err());
    assert_eq!(BASIC_AUTH_USER_KEY, "user");
    assert_eq!(BASIC_AUTH_PASSWORD_KEY, "password");
}

#[test]
fn required_fields_are_enforced_on_read() {
    let missing_version = "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnApp\nmetadata: {name: a}\nspec: {revision: 2}\n";
    assert!(serde_json::from_value::<KeptnApp>(yaml(missing_version)).is_err());
    let missing_ref = "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnWorkload\nmetadata: {name: w}\nspec: {app: a, version: v}\n";
    assert!(serde_json::from_value::<KeptnWorkload>(yaml(missing_ref)).is_err());
}

#[test]
fn container_quantities_may_be_integers() {
    let v = normalised::<KeptnTaskDefinition>(
        "apiVersion: lifecycle.keptn.sh/v1\nkind: KeptnTaskDefinition\nmetadata: {name: t}\nspec:\n  container:\n    name: c\n    image: busybox\n    resources: {limits: {cpu: 1}}\n",
    );
    assert_eq!(
        v["spec"]["container"]["resources"]["limits"]["cpu"],
        json!("1")
    );
}

// ---------------------------------------------------------------------------------------------
// KeptnState

#[test]
fn keptn_state_known_values_and_unknown_strings() {
    for (s, state) in [
        ("Pending", KeptnState::Pending),
        ("Progressing", KeptnState::Progressing),
        ("Succeeded", KeptnState::Succeeded),
        ("Failed", KeptnState::Failed),
        ("Unknown", KeptnState::Unknown),
        ("Deprecated", KeptnState::Deprecated),
        ("Warning", KeptnState::Warning),
    ] {
        assert_eq!(
            serde_json::from_value::<KeptnState>(json!(s)).ok(),
            Some(state.clone())
        );
        assert_eq!(serde_json::to_value(&state).ok(), Some(json!(s)));
    }
    let odd: KeptnState = serde_json::from_value(json!("Paused")).expect("unknown value reads");
    assert_eq!(odd, KeptnState::Other("Paused".into()));
    assert_eq!(serde_json::to_value(&odd).ok(), Some(json!("Paused")));
    assert!(!odd.is_completed());
}

#[test]
fn unknown_state_in_a_status_survives_a_round_trip() {
    let doc = KWV_FULL.replace("deploymentStatus: Progressing", "deploymentStatus: Paused");
    let kwv: KeptnWorkloadVersion = assert_round_trip(&doc);
    assert_eq!(
        kwv.status.expect("status").deployment_status,
        KeptnState::Other("Paused".into())
    );
}

#[test]
fn keptn_state_completion_and_success() {
    use KeptnState::*;
    for s in [Succeeded, Failed, Deprecated, Warning] {
        assert!(s.is_completed(), "{s} is completed");
    }
    for s in [Pending, Progressing, Unknown, Other(String::new())] {
        assert!(!s.is_completed(), "{s:?} is not completed");
    }
    assert!(Succeeded.is_succeeded(true) && Succeeded.is_succeeded(false));
    assert!(!Warning.is_succeeded(true) && Warning.is_succeeded(false));
    assert!(!Failed.is_succeeded(false));
}

// ---------------------------------------------------------------------------------------------
// generated CRDs

#[test]
fn crds_have_the_right_groups_versions_and_file_names() {
    let mut names: Vec<String> = all().iter().map(file_name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "keptnappcontexts.lifecycle.keptn.sh.yaml",
            "keptnappcreationrequests.lifecycle.keptn.sh.yaml",
            "keptnapps.lifecycle.keptn.sh.yaml",
            "keptnappversions.lifecycle.keptn.sh.yaml",
            "keptnconfigs.options.keptn.sh.yaml",
            "keptnevaluationdefinitions.lifecycle.keptn.sh.yaml",
            "keptnevaluations.lifecycle.keptn.sh.yaml",
            "keptnmetrics.metrics.keptn.sh.yaml",
            "keptnmetricsproviders.metrics.keptn.sh.yaml",
            "keptntaskdefinitions.lifecycle.keptn.sh.yaml",
            "keptntasks.lifecycle.keptn.sh.yaml",
            "keptnworkloads.lifecycle.keptn.sh.yaml",
            "keptnworkloadversions.lifecycle.keptn.sh.yaml",
        ]
    );
    for c in all() {
        let expected_version = match c.spec.group.as_str() {
            "lifecycle.keptn.sh" | "metrics.keptn.sh" => "v1",
            "options.keptn.sh" => "v1alpha1",
            other => panic!("unexpected group {other}"),
        };
        assert_eq!(
            c.spec.scope, "Namespaced",
            "{} is namespaced",
            c.spec.names.plural
        );
        let v = &c.spec.versions[0];
        assert_eq!(v.name, expected_version);
        assert!(v.served && v.storage);
        let status = v.subresources.as_ref().and_then(|s| s.status.as_ref());
        assert!(
            status.is_some(),
            "{} has the status subresource",
            c.spec.names.plural
        );
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.scale.as_ref())
                .is_none(),
            "no scale subresource"
        );
    }
}

#[test]
fn short_names_are_exactly_kav_kwv_ke_ked_kmp() {
    let mut with_short_names: Vec<(String, Vec<String>)> = all()
        .into_iter()
        .filter_map(|c| {
            c.spec
                .names
                .short_names
                .clone()
                .map(|s| (c.spec.names.kind.clone(), s))
        })
        .collect();
    with_short_names.sort();
    assert_eq!(
        with_short_names,
        [
            ("KeptnAppVersion".to_owned(), vec!["kav".to_owned()]),
            ("KeptnEvaluation".to_owned(), vec!["ke".to_owned()]),
            (
                "KeptnEvaluationDefinition".to_owned(),
                vec!["ked".to_owned()]
            ),
            ("KeptnMetricsProvider".to_owned(), vec!["kmp".to_owned()]),
            ("KeptnWorkloadVersion".to_owned(), vec!["kwv".to_owned()]),
        ]
    );
}

#[test]
fn printer_columns_match_spec() {
    for plural in [
        "keptnapps",
        "keptnappcontexts",
        "keptnappcreationrequests",
        "keptntaskdefinitions",
        "keptnevaluationdefinitions",
        "keptnconfigs",
    ] {
        assert!(
            columns(&crd(plural)).is_empty(),
            "{plural} has no printer columns"
        );
    }
    assert_eq!(
        columns(&crd("keptnappversions")),
        [
            col("AppName", ".spec.appName", 0),
            col("Version", ".spec.version", 0),
            col("Phase", ".status.currentPhase", 0),
            status_col("PreDeploymentStatus"),
            status_col("PreDeploymentEvaluationStatus"),
            status_col("WorkloadOverallStatus"),
            status_col("PostDeploymentStatus"),
            status_col("PostDeploymentEvaluationStatus"),
            status_col("PromotionStatus"),
        ]
    );
    assert_eq!(
        columns(&crd("keptnworkloads")),
        [
            col("AppName", ".spec.app", 0),
            col("Version", ".spec.version", 0)
        ]
    );
    assert_eq!(
        columns(&crd("keptnworkloadversions")),
        [
            col("AppName", ".spec.app", 0),
            col("WorkloadName", ".spec.workloadName", 0),
            col("WorkloadVersion", ".spec.version", 0),
            col("Phase", ".status.currentPhase", 0),
            status_col("PreDeploymentStatus"),
            status_col("PreDeploymentEvaluationStatus"),
            status_col("DeploymentStatus"),
            status_col("PostDeploymentStatus"),
            status_col("PostDeploymentEvaluationStatus"),
        ]
    );
    // SPEC A20: KeptnTask's columns read spec.context.*.
    assert_eq!(
        columns(&crd("keptntasks")),
        [
            col("AppName", ".spec.context.appName", 0),
            col("AppVersion", ".spec.context.appVersion", 0),
            col("WorkloadName", ".spec.context.workloadName", 0),
            col("WorkloadVersion", ".spec.context.workloadVersion", 0),
            col("Job Name", ".status.jobName", 0),
            col("Status", ".status.status", 0),
        ]
    );
    assert_eq!(
        columns(&crd("keptnevaluations")),
        [
            col("AppName", ".spec.appName", 0),
            col("AppVersion", ".spec.appVersion", 0),
            col("WorkloadName", ".spec.workload", 0),
            col("WorkloadVersion", ".spec.workloadVersion", 0),
            col("RetryCount", ".status.retryCount", 0),
            col("EvaluationStatus", ".status.evaluationStatus", 0),
            col("OverallStatus", ".status.overallStatus", 0),
        ]
    );
    // A Portcullis addition: Keptn's KeptnMetricsProvider has no columns.
    assert_eq!(
        columns(&crd("keptnmetricsproviders")),
        [
            col("Type", ".spec.type", 0),
            col("TargetServer", ".spec.targetServer", 0),
        ]
    );
}

#[test]
fn every_printer_column_path_exists_in_the_schema() {
    for c in all() {
        for (name, path, _) in columns(&c) {
            let dotted = path.trim_start_matches('.');
            // `node` panics when a step is missing.
            let _ = node(&c, dotted);
            assert!(!dotted.is_empty(), "{name}");
        }
    }
}

#[test]
fn required_lists_match_spec() {
    let r = |plural: &str, path: &str| required(&crd(plural), path);
    assert_eq!(r("keptnapps", "spec"), ["version"]);
    assert_eq!(r("keptnapps", "spec.workloads.[]"), ["name", "version"]);
    assert!(r("keptnappcontexts", "spec").is_empty());
    assert_eq!(r("keptnappcreationrequests", "spec"), ["appName"]);
    assert_eq!(r("keptnappversions", "spec"), ["appName", "version"]);
    assert!(r("keptnappversions", "status").is_empty());
    assert_eq!(
        r("keptnworkloads", "spec"),
        ["app", "resourceReference", "version"]
    );
    assert_eq!(
        r("keptnworkloads", "spec.resourceReference"),
        ["kind", "name", "uid"]
    );
    assert_eq!(
        r("keptnworkloadversions", "spec"),
        ["app", "resourceReference", "version", "workloadName"]
    );
    assert!(r("keptntaskdefinitions", "spec").is_empty());
    assert_eq!(r("keptntaskdefinitions", "spec.container"), ["name"]);
    assert_eq!(r("keptntaskdefinitions", "spec.serviceAccount"), ["name"]);
    assert_eq!(
        r("keptntaskdefinitions", "spec.automountServiceAccountToken"),
        ["type"]
    );
    assert!(r("keptntaskdefinitions", "spec.imagePullSecrets.[]").is_empty());
    assert_eq!(r("keptntasks", "spec"), ["taskDefinition"]);
    assert!(r("keptntasks", "spec.context").is_empty());
    assert_eq!(r("keptnevaluationdefinitions", "spec"), ["objectives"]);
    assert_eq!(
        r("keptnevaluationdefinitions", "spec.objectives.[]"),
        ["evaluationTarget", "keptnMetricRef"]
    );
    assert_eq!(
        r(
            "keptnevaluationdefinitions",
            "spec.objectives.[].keptnMetricRef"
        ),
        ["name"]
    );
    assert_eq!(
        r("keptnevaluations", "spec"),
        ["evaluationDefinition", "workloadVersion"]
    );
    assert_eq!(
        r("keptnevaluations", "status"),
        ["evaluationStatus", "overallStatus", "retryCount"]
    );
    assert_eq!(
        r("keptnevaluations", "status.evaluationStatus.{}"),
        ["status", "value"]
    );
    assert!(r("keptnconfigs", "spec").is_empty());
    assert_eq!(
        r("keptnmetrics", "spec"),
        ["fetchIntervalSeconds", "provider", "query"]
    );
    assert_eq!(
        r("keptnmetrics", "status.intervalResults.[]"),
        ["lastUpdated", "range", "value"]
    );
    assert_eq!(r("keptnmetricsproviders", "spec"), ["targetServer"]);
    assert_eq!(r("keptnmetricsproviders", "spec.secretKeyRef"), ["key"]);
    // A19: conditions have the metav1.Condition shape.
    for plural in ["keptnappversions", "keptnworkloadversions"] {
        assert_eq!(
            r(plural, "status.conditions.[]"),
            ["lastTransitionTime", "message", "reason", "status", "type"]
        );
        let c = crd(plural);
        let conditions = node(&c, "status.conditions");
        assert_eq!(conditions.x_kubernetes_list_type.as_deref(), Some("map"));
        assert_eq!(
            conditions.x_kubernetes_list_map_keys,
            Some(vec!["type".to_owned()])
        );
        assert_eq!(
            node(&crd(plural), "status.observedGeneration")
                .type_
                .as_deref(),
            Some("integer")
        );
    }
}

#[test]
fn spec_without_required_fields_is_optional_and_defaults_to_empty() {
    for plural in ["keptnappcontexts", "keptntaskdefinitions", "keptnconfigs"] {
        let c = crd(plural);
        assert!(
            !root_schema(&c)
                .required
                .iter()
                .flatten()
                .any(|f| f == "spec"),
            "{plural}: spec not required"
        );
        assert_eq!(
            default_of(&c, "spec"),
            Some(json!({})),
            "{plural}: spec defaults to {{}}"
        );
    }
    for plural in [
        "keptnapps",
        "keptnappversions",
        "keptntasks",
        "keptnevaluations",
    ] {
        let c = crd(plural);
        assert!(
            root_schema(&c)
                .required
                .iter()
                .flatten()
                .any(|f| f == "spec"),
            "{plural}: spec required"
        );
    }
}

#[test]
fn schema_defaults_match_spec() {
    let d = |plural: &str, path: &str| default_of(&crd(plural), path);
    let app_version_states: &[&str] = &[
        "preDeploymentStatus",
        "postDeploymentStatus",
        "promotionStatus",
        "preDeploymentEvaluationStatus",
        "postDeploymentEvaluationStatus",
        "workloadOverallStatus",
        "status",
        "workloadStatus.[].status",
        "preDeploymentTaskStatus.[].status",
        "postDeploymentTaskStatus.[].status",
        "promotionTaskStatus.[].status",
        "preDeploymentEvaluationTaskStatus.[].status",
        "postDeploymentEvaluationTaskStatus.[].status",
    ];
    let workload_version_states: &[&str] = &[
        "preDeploymentStatus",
        "deploymentStatus",
        "preDeploymentEvaluationStatus",
        "postDeploymentEvaluationStatus",
        "postDeploymentStatus",
        "status",
        "preDeploymentTaskStatus.[].status",
        "postDeploymentTaskStatus.[].status",
        "preDeploymentEvaluationTaskStatus.[].status",
        "postDeploymentEvaluationTaskStatus.[].status",
    ];
    for (plural, fields) in [
        ("keptnappversions", app_version_states),
        ("keptnworkloadversions", workload_version_states),
    ] {
        for field in fields {
            assert_eq!(
                d(plural, &format!("status.{field}")),
                Some(json!("Pending")),
                "{plural} {field}"
            );
        }
    }
    for (plural, path, default) in [
        ("keptnapps", "spec.revision", json!(1)),
        ("keptnappversions", "spec.revision", json!(1)),
        ("keptntaskdefinitions", "spec.retries", json!(10)),
        ("keptntaskdefinitions", "spec.timeout", json!("5m")),
        (
            "keptntaskdefinitions",
            "spec.ttlSecondsAfterFinished",
            json!(300),
        ),
        (
            "keptntaskdefinitions",
            "spec.imagePullSecrets.[].name",
            json!(""),
        ),
        ("keptntasks", "spec.retries", json!(10)),
        ("keptntasks", "spec.timeout", json!("5m")),
        ("keptntasks", "status.status", json!("Pending")),
        ("keptnevaluationdefinitions", "spec.retries", json!(10)),
        (
            "keptnevaluationdefinitions",
            "spec.retryInterval",
            json!("5s"),
        ),
        ("keptnevaluations", "spec.retries", json!(10)),
        ("keptnevaluations", "spec.retryInterval", json!("5s")),
        ("keptnevaluations", "status.retryCount", json!(0)),
        ("keptnevaluations", "status.overallStatus", json!("Pending")),
        (
            "keptnconfigs",
            "spec.keptnAppCreationRequestTimeoutSeconds",
            json!(30),
        ),
        ("keptnconfigs", "spec.blockDeployment", json!(true)),
        ("keptnconfigs", "spec.observabilityTimeout", json!("5m")),
        ("keptnconfigs", "spec.restApiEnabled", json!(false)),
        ("keptnmetrics", "spec.range.interval", json!("5m")),
        (
            "keptnmetricsproviders",
            "spec.insecureSkipTlsVerify",
            json!(false),
        ),
    ] {
        assert_eq!(d(plural, path), Some(default), "{plural} {path}");
    }

    // Fields Keptn does not default must not be materialised by the API server.
    for path in [
        "spec.context",
        "spec.context.workloadName",
        "spec.context.appName",
        "spec.context.appVersion",
        "spec.context.workloadVersion",
        "spec.context.taskType",
        "spec.context.objectType",
    ] {
        assert_eq!(d("keptntasks", path), None, "{path}");
    }
    assert_eq!(d("keptnevaluations", "status.evaluationStatus"), None);
    assert_eq!(
        d("keptnevaluations", "status.evaluationStatus.{}.status"),
        None
    );
}

#[test]
fn metrics_crds_carry_keptns_validation() {
    let kmp = crd("keptnmetricsproviders");
    assert_eq!(kmp.spec.group, "metrics.keptn.sh");
    assert_eq!(kmp.spec.names.kind, "KeptnMetricsProvider");
    assert_eq!(kmp.spec.names.short_names, Some(vec!["kmp".to_owned()]));
    let pattern = "cortex|datadog|dql|dynatrace|prometheus|thanos|elastic";
    assert_eq!(PROVIDER_TYPE_PATTERN, pattern);
    let ty = node(&kmp, "spec.type");
    assert_eq!(ty.pattern.as_deref(), Some(pattern));
    assert_eq!(ty.type_.as_deref(), Some("string"));
    assert_eq!(
        node(&kmp, "spec.insecureSkipTlsVerify").type_.as_deref(),
        Some("boolean")
    );
    for field in ["name", "key", "optional"] {
        let _ = node(&kmp, &format!("spec.secretKeyRef.{field}"));
    }

    let km = crd("keptnmetrics");
    // 1 MiB of bytes in padded base64: ceil(1048576 / 3) * 4.
    assert_eq!(RAW_VALUE_MAX_BYTES, 1_048_576);
    assert_eq!(RAW_VALUE_MAX_LENGTH, 1_398_104);
    let raw = node(&km, "status.rawValue");
    assert_eq!(raw.max_length, Some(1_398_104));
    assert_eq!(raw.format.as_deref(), Some("byte"));
    let interval = node(&km, "spec.fetchIntervalSeconds");
    assert_eq!(interval.type_.as_deref(), Some("integer"));
    assert_eq!(interval.format.as_deref(), Some("int64"));
    assert_eq!(interval.minimum, Some(0.0));
    assert_eq!(
        node(&km, "status.intervalResults.[].range").nullable,
        Some(true)
    );

    let ke = crd("keptnevaluations");
    let last_updated = node(&ke, "status.evaluationStatus.{}.lastUpdated");
    assert_eq!(last_updated.format.as_deref(), Some("date-time"));
}

#[test]
fn durations_carry_the_keptn_pattern() {
    let keptn = r"^0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
    assert_eq!(DURATION_PATTERN, keptn);
    let pattern = Some(keptn);
    for (plural, path) in [
        ("keptntaskdefinitions", "spec.timeout"),
        ("keptntasks", "spec.timeout"),
        ("keptnevaluationdefinitions", "spec.retryInterval"),
        ("keptnevaluations", "spec.retryInterval"),
        ("keptnconfigs", "spec.observabilityTimeout"),
    ] {
        let c = crd(plural);
        let n = node(&c, path);
        assert_eq!(n.pattern.as_deref(), pattern, "{plural} {path}");
        assert_eq!(n.type_.as_deref(), Some("string"), "{plural} {path}");
    }
}

#[test]
fn keptn_state_fields_are_plain_strings() {
    for (plural, path) in [
        ("keptnappversions", "status.status"),
        ("keptnappversions", "status.workloadStatus.[].status"),
        ("keptnworkloadversions", "status.deploymentStatus"),
        (
            "keptnworkloadversions",
            "status.preDeploymentTaskStatus.[].status",
        ),
        ("keptntasks", "status.status"),
        ("keptnevaluations", "status.overallStatus"),
        ("keptnevaluations", "status.evaluationStatus.{}.status"),
    ] {
        let c = crd(plural);
        let n = node(&c, path);
        assert_eq!(n.type_.as_deref(), Some("string"), "{plural} {path}");
        assert!(n.enum_.is_none(), "{plural} {path}: no enum validation");
    }
}

#[test]
fn field_names_are_keptns() {
    let cfg = crd("keptnconfigs");
    let mut spec_fields: Vec<&String> = node(&cfg, "spec")
        .properties
        .as_ref()
        .expect("properties")
        .keys()
        .collect();
    spec_fields.sort();
    assert_eq!(
        spec_fields,
        [
            "OTelCollectorUrl",
            "blockDeployment",
            "cloudEventsEndpoint",
            "keptnAppCreationRequestTimeoutSeconds",
            "observabilityTimeout",
            "restApiEnabled",
        ]
    );
    for (plural, path) in [
        ("keptnappversions", "status.phaseTraceIDs"),
        ("keptnworkloadversions", "status.phaseTraceIDs"),
        ("keptnworkloadversions", "status.appContextMetadata"),
        ("keptnworkloadversions", "status.deploymentStartTime"),
        ("keptntaskdefinitions", "spec.deno.functionRef.name"),
        ("keptntaskdefinitions", "spec.python.configMapRef.name"),
        ("keptntaskdefinitions", "spec.deno.httpRef.url"),
        ("keptntaskdefinitions", "spec.deno.parameters.map"),
        ("keptntaskdefinitions", "spec.deno.secureParameters.secret"),
        ("keptntaskdefinitions", "spec.deno.cmdParameters"),
        ("keptntaskdefinitions", "status.function.configMap"),
        (
            "keptnevaluationdefinitions",
            "spec.objectives.[].keptnMetricRef.namespace",
        ),
        ("keptnmetrics", "status.value"),
        ("keptnmetrics", "status.rawValue"),
    ] {
        let _ = node(&crd(plural), path);
    }
    for plural in [
        "keptnappcreationrequests",
        "keptnevaluationdefinitions",
        "keptnconfigs",
        "keptnmetricsproviders",
    ] {
        assert_eq!(
            node(&crd(plural), "status").type_.as_deref(),
            Some("string"),
            "{plural}: status is a plain string"
        );
    }
}

/// Walks every schema node and checks the structural-schema rules the API server enforces.
fn assert_structural(plural: &str, path: &str, s: &JSONSchemaProps) {
    assert!(s.ref_path.is_none(), "{plural} {path}: $ref");
    assert!(
        s.all_of.is_none() && s.one_of.is_none() && s.any_of.is_none() && s.not.is_none(),
        "{plural} {path}: combinators"
    );
    assert!(
        s.x_kubernetes_preserve_unknown_fields.is_none(),
        "{plural} {path}: preserve-unknown-fields is not needed anywhere"
    );
    let int_or_string = s.x_kubernetes_int_or_string == Some(true);
    assert!(
        s.type_.is_some() || int_or_string,
        "{plural} {path}: no type"
    );
    if int_or_string {
        assert!(
            s.type_.is_none(),
            "{plural} {path}: int-or-string with a type"
        );
    }
    if s.properties.is_some() || s.additional_properties.is_some() {
        assert_eq!(s.type_.as_deref(), Some("object"), "{plural} {path}");
    }
    for (name, p) in s.properties.iter().flatten() {
        assert_structural(plural, &format!("{path}.{name}"), p);
    }
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(i)) => {
            assert_structural(plural, &format!("{path}[]"), i)
        }
        Some(JSONSchemaPropsOrArray::Schemas(_)) => panic!("{plural} {path}: tuple items"),
        None => assert_ne!(
            s.type_.as_deref(),
            Some("array"),
            "{plural} {path}: array without items"
        ),
    }
    if let Some(JSONSchemaPropsOrBool::Schema(a)) = &s.additional_properties {
        assert_structural(plural, &format!("{path}{{}}"), a);
    }
}

#[test]
fn schemas_are_structural() {
    for c in all() {
        // Every served version, the older ones included (A24).
        for version in &c.spec.versions {
            let root = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("version has a schema");
            assert_eq!(root.type_.as_deref(), Some("object"));
            let props = root.properties.as_ref().expect("root properties");
            assert!(props.contains_key("spec") && props.contains_key("status"));
            assert!(
                !props.contains_key("metadata"),
                "metadata is left to the API server"
            );
            let at = format!("{} {}", c.spec.names.plural, version.name);
            assert_structural(&at, "", root);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// portcullis-crdgen

fn crdgen(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-crdgen"))
        .args(args)
        .output()
        .expect("portcullis-crdgen runs")
}

/// `portcullis-crdgen --check dir`, which must fail (`why`): what it wrote to stderr.
fn failed_check(dir: &std::ffi::OsStr, why: &str) -> String {
    let out = crdgen(&["--check".as_ref(), dir]);
    assert!(!out.status.success(), "{why}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn crdgen_writes_checks_and_reports_drift() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().as_os_str();

    let stderr = failed_check(d, "empty dir fails the check");
    assert_eq!(stderr.matches("missing: ").count(), 13, "13 CRDs: {stderr}");

    assert!(crdgen(&[d]).status.success());
    let first: Vec<(String, String)> = read_dir(dir.path());
    assert_eq!(first.len(), 13);
    assert!(
        crdgen(&["--check".as_ref(), d]).status.success(),
        "fresh output passes"
    );

    // Deterministic: a second run writes the same bytes.
    assert!(crdgen(&[d]).status.success());
    assert_eq!(read_dir(dir.path()), first);

    // Each CRD file parses back to the CRD the types generate.
    for (name, text) in &first {
        let parsed: CustomResourceDefinition = serde_yaml::from_str(text).expect("CRD YAML parses");
        assert_eq!(&file_name(&parsed), name);
        let generated = all()
            .into_iter()
            .find(|c| &file_name(c) == name)
            .expect("known CRD");
        assert_eq!(parsed, generated);
    }

    let victim = dir.path().join("keptntasks.lifecycle.keptn.sh.yaml");
    let edited = first
        .iter()
        .find(|(n, _)| n == "keptntasks.lifecycle.keptn.sh.yaml")
        .map(|(_, t)| t.replace(".spec.context.appName", ".spec.app"))
        .expect("keptntasks written");
    std::fs::write(&victim, edited).expect("edit");
    let stderr = failed_check(d, "an edited CRD fails the check");
    assert!(
        stderr.contains("differs: ") && stderr.contains("keptntasks.lifecycle.keptn.sh.yaml"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("differs: ").count(), 1, "{stderr}");
}

#[test]
fn committed_crds_are_up_to_date() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/portcullis/files/crds");
    let out = crdgen(&["--check".as_ref(), dir.as_os_str()]);
    assert!(
        out.status.success(),
        "charts/portcullis/files/crds is stale, run `make crds`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_dir(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let text = std::fs::read_to_string(e.path()).expect("read file");
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// durations

#[test]
fn durations_parse_as_go_does() {
    use std::time::Duration as Std;
    let ok = |s: &str| Duration::new(s).to_std();
    for (written, duration) in [
        ("5m", Std::from_secs(300)),
        ("5s", Std::from_secs(5)),
        ("0", Std::ZERO),
        ("1h30m", Std::from_secs(5400)),
        ("1.5h", Std::from_secs(5400)),
        ("2m3.5s", Std::from_millis(123_500)),
        (".5s", Std::from_millis(500)),
        ("300ms", Std::from_millis(300)),
        ("7us", Std::from_micros(7)),
        ("7µs", Std::from_micros(7)),
        ("9ns", Std::from_nanos(9)),
        ("+10s", Std::from_secs(10)),
    ] {
        assert_eq!(ok(written), Ok(duration), "{written}");
    }
    assert_eq!(
        ok("1.0000000001s"),
        Ok(Std::from_secs(1)),
        "sub-nanosecond digits truncate"
    );
    assert_eq!(ok("-0s"), Ok(Std::ZERO));

    assert!(matches!(ok(""), Err(DurationError::Invalid(_))));
    assert!(matches!(ok("."), Err(DurationError::Invalid(_))));
    assert!(matches!(ok("5"), Err(DurationError::MissingUnit(_))));
    assert!(
        matches!(ok("0abc"), Err(DurationError::UnknownUnit { .. })),
        "passes the CRD pattern"
    );
    assert!(matches!(ok("5d"), Err(DurationError::UnknownUnit { .. })));
    assert!(matches!(ok("-5s"), Err(DurationError::Negative(_))));
    assert!(matches!(ok("9999999999h"), Err(DurationError::Overflow(_))));
    assert!(ok("2562047h").is_ok(), "just below Go's limit");
    assert!(matches!(ok("2562048h"), Err(DurationError::Overflow(_))));
    assert_eq!(
        ok("1s2x").map_err(|e| e.to_string()),
        Err(r#"unknown unit "x" in duration "1s2x""#.to_owned())
    );
}

/// Keptn copies a definition's `metav1.Duration` into the objects it creates, which serialises it
/// with Go's `time.Duration.String`; Portcullis writes the same text.
#[test]
fn copied_durations_are_written_as_go_prints_them() {
    let go = |s: &str| Duration::new(s).go_formatted().0;
    for (written, printed) in [
        ("5m", "5m0s"),
        ("30s", "30s"),
        ("1h", "1h0m0s"),
        ("90s", "1m30s"),
        ("2h45m", "2h45m0s"),
        ("72h3m0.5s", "72h3m0.5s"),
        ("1.5s", "1.5s"),
        ("500ms", "500ms"),
        ("1500us", "1.5ms"),
        ("1.000001ms", "1.000001ms"),
        ("7us", "7µs"),
        ("100ns", "100ns"),
        ("0", "0s"),
    ] {
        assert_eq!(go(written), printed, "{written}");
    }
    assert_eq!(go("5m0s"), "5m0s", "already Go's form");
    assert_eq!(go("0abc"), "0abc", "unparseable text is kept as written");
    assert_eq!(
        format_go_duration(std::time::Duration::from_secs(2_562_047 * 3600)),
        "2562047h0m0s"
    );
}
