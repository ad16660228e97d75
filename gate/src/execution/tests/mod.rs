//! Unit tests of the pure decisions, named after the SPEC rule each one checks.

mod definition;
mod e2e;
mod evaluation;
mod job;
mod metrics;
mod shell;
mod task;

use serde_json::{Value, json};
use shared::crd::{KeptnEvaluation, KeptnEvaluationDefinition, KeptnTask, KeptnTaskDefinition};

use super::RunnerImages;

pub const TASK_UID: &str = "5f1c2d3e-0000-4000-8000-00000000task";

pub fn images() -> RunnerImages {
    RunnerImages {
        function_runner_image: "ghcr.io/keptn/deno-runtime:v3.0.1".into(),
        python_runner_image: "ghcr.io/keptn/python-runtime:v1.0.8".into(),
    }
}

/// A workload pre-deployment task of definition `hello` in namespace `app`, as the phases
/// create it; `patch` is merged into its JSON (top-level keys of `metadata`/`spec` replaced).
pub fn task(patch: Value) -> KeptnTask {
    let mut base = json!({
        "apiVersion": "lifecycle.keptn.sh/v1",
        "kind": "KeptnTask",
        "metadata": {
            "name": "pre-hello-12345",
            "namespace": "app",
            "uid": TASK_UID,
            "resourceVersion": "7",
            "labels": {"team": "blue"},
            "annotations": {"note": "from-definition"},
        },
        "spec": {
            "taskDefinition": "hello",
            "checkType": "pre",
            "retries": 3,
            "timeout": "2m",
            "context": {
                "workloadName": "waiter-waiter",
                "appName": "waiter",
                "appVersion": "",
                "workloadVersion": "0.4",
                "taskType": "pre",
                "objectType": "Workload",
            },
        },
    });
    merge(&mut base, patch);
    serde_json::from_value(base).expect("task fixture")
}

/// A KeptnTaskDefinition `name` in namespace `app` with `spec` (defaults applied by serde) and an
/// optional status.
pub fn definition(name: &str, spec: Value, status: Option<Value>) -> KeptnTaskDefinition {
    let mut v = json!({
        "apiVersion": "lifecycle.keptn.sh/v1",
        "kind": "KeptnTaskDefinition",
        "metadata": {"name": name, "namespace": "app", "uid": format!("uid-{name}")},
        "spec": spec,
    });
    if let Some(status) = status {
        v["status"] = status;
    }
    serde_json::from_value(v).expect("definition fixture")
}

pub fn evaluation(patch: Value) -> KeptnEvaluation {
    let mut base = json!({
        "apiVersion": "lifecycle.keptn.sh/v1",
        "kind": "KeptnEvaluation",
        "metadata": {"name": "pre-eval-ready-23456", "namespace": "app", "uid": "eval-uid"},
        "spec": {
            "appName": "waiter",
            "workload": "waiter-waiter",
            "workloadVersion": "0.4",
            "evaluationDefinition": "ready",
            "checkType": "pre-eval",
            "retries": 3,
            "retryInterval": "7s",
        },
    });
    merge(&mut base, patch);
    serde_json::from_value(base).expect("evaluation fixture")
}

pub fn evaluation_definition(objectives: Value) -> KeptnEvaluationDefinition {
    serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1",
        "kind": "KeptnEvaluationDefinition",
        "metadata": {"name": "ready", "namespace": "app"},
        "spec": {"objectives": objectives},
    }))
    .expect("evaluation definition fixture")
}

/// Shallow-merges `patch` into `base` one level below the top (metadata/spec/status keys).
fn merge(base: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else { return };
    for (k, v) in patch {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(p)) => {
                for (pk, pv) in p {
                    if pv.is_null() {
                        b.remove(&pk);
                    } else {
                        b.insert(pk, pv);
                    }
                }
            }
            (_, v) => {
                base[&k] = v;
            }
        }
    }
}
