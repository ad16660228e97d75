//! Test builders: the objects the pure decisions are tested with, shared with the gate's tests
//! (feature `fixtures`):
//! `kwv("waiter-waiter-0.4").in_namespace("ns").uid("kwv-uid").pre_tasks(&["migrate"]).build()`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shared::crd::{
    ItemStatus, KeptnApp, KeptnAppContextSpec, KeptnAppSpec, KeptnAppStatus, KeptnAppVersion,
    KeptnAppVersionSpec, KeptnAppVersionStatus, KeptnEvaluation, KeptnEvaluationDefinition,
    KeptnState, KeptnTask, KeptnTaskDefinition, KeptnWorkload, KeptnWorkloadRef, KeptnWorkloadSpec,
    KeptnWorkloadStatus, KeptnWorkloadVersion, KeptnWorkloadVersionSpec,
    KeptnWorkloadVersionStatus, ResourceReference,
};

use crate::execution::RunnerImages;

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
            "context": workload_context("waiter-waiter", "waiter", "0.4"),
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
pub fn merge(base: &mut Value, patch: Value) {
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

/// The `context` of a task of an app (`objectType: App`, `taskType: pre`), to patch into
/// [`task`]: `task(json!({"spec": {"context": app_context("waiter", "1.2")}}))`.
pub fn app_context(app_name: &str, app_version: &str) -> Value {
    json!({
        "workloadName": "", "appName": app_name, "appVersion": app_version,
        "workloadVersion": "", "taskType": "pre", "objectType": "App",
    })
}

/// The `context` of a pre-deployment task of a workload, to patch into [`task`].
pub fn workload_context(workload_name: &str, app_name: &str, workload_version: &str) -> Value {
    json!({
        "workloadName": workload_name, "appName": app_name, "appVersion": "",
        "workloadVersion": workload_version, "taskType": "pre", "objectType": "Workload",
    })
}

/// One entry of a phase's task or evaluation list in a version's status.
pub fn item(definition_name: &str, name: &str, status: KeptnState) -> ItemStatus {
    ItemStatus {
        definition_name: definition_name.into(),
        status,
        name: name.into(),
        ..Default::default()
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn resource_reference(kind: &str, name: &str, uid: &str) -> ResourceReference {
    ResourceReference {
        uid: uid.into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn workload_refs(workloads: &[(&str, &str)]) -> Vec<KeptnWorkloadRef> {
    workloads
        .iter()
        .map(|(name, version)| KeptnWorkloadRef {
            name: (*name).into(),
            version: (*version).into(),
        })
        .collect()
}

/// Workload version 0.4 of app `waiter`, running as ReplicaSet `rs` (uid `u`), no checks.
fn workload_spec() -> KeptnWorkloadSpec {
    KeptnWorkloadSpec {
        app: "waiter".into(),
        version: "0.4".into(),
        pre_deployment_tasks: vec![],
        post_deployment_tasks: vec![],
        pre_deployment_evaluations: vec![],
        post_deployment_evaluations: vec![],
        resource_reference: resource_reference("ReplicaSet", "rs", "u"),
        metadata: Default::default(),
    }
}

/// `in_namespace`, `uid`, `generation`, `labelled` and `build` for the builders below, each a
/// newtype around the object it builds.
macro_rules! object_builder {
    ($($builder:ident => $object:ty),* $(,)?) => {$(
        impl $builder {
            /// Sets `metadata.namespace`.
            pub fn in_namespace(mut self, namespace: &str) -> Self {
                self.0.metadata.namespace = Some(namespace.into());
                self
            }

            /// Sets `metadata.uid`.
            pub fn uid(mut self, uid: &str) -> Self {
                self.0.metadata.uid = Some(uid.into());
                self
            }

            /// Sets `metadata.generation`.
            pub fn generation(mut self, generation: i64) -> Self {
                self.0.metadata.generation = Some(generation);
                self
            }

            /// Sets a label.
            pub fn labelled(mut self, key: &str, value: &str) -> Self {
                self.0
                    .metadata
                    .labels
                    .get_or_insert_default()
                    .insert(key.into(), value.into());
                self
            }

            pub fn build(self) -> $object {
                self.0
            }
        }

        impl From<$builder> for $object {
            fn from(builder: $builder) -> Self {
                builder.0
            }
        }
    )*};
}

object_builder!(
    AppBuilder => KeptnApp,
    WorkloadBuilder => KeptnWorkload,
    AppVersionBuilder => KeptnAppVersion,
    WorkloadVersionBuilder => KeptnWorkloadVersion,
);

/// A KeptnApp under construction; see [`app`].
#[derive(Clone, Debug)]
pub struct AppBuilder(KeptnApp);

/// KeptnApp `name` at version 0.4, revision 1, without workloads, namespace or status.
pub fn app(name: &str) -> AppBuilder {
    AppBuilder(KeptnApp::new(
        name,
        KeptnAppSpec {
            version: "0.4".into(),
            revision: 1,
            workloads: vec![],
        },
    ))
}

impl AppBuilder {
    pub fn version(mut self, version: &str) -> Self {
        self.0.spec.version = version.into();
        self
    }

    pub fn revision(mut self, revision: i64) -> Self {
        self.0.spec.revision = revision;
        self
    }

    /// `spec.workloads` as (name, version) pairs.
    pub fn workloads(mut self, workloads: &[(&str, &str)]) -> Self {
        self.0.spec.workloads = workload_refs(workloads);
        self
    }

    /// A status with `currentVersion`.
    pub fn current_version(mut self, version: &str) -> Self {
        self.0.status = Some(KeptnAppStatus {
            current_version: version.into(),
        });
        self
    }
}

/// A KeptnWorkload under construction; see [`workload`].
#[derive(Clone, Debug)]
pub struct WorkloadBuilder(KeptnWorkload);

/// KeptnWorkload `name`: version 0.4 of app `waiter` running as ReplicaSet `rs` (uid `u`), no
/// checks, namespace or status.
pub fn workload(name: &str) -> WorkloadBuilder {
    WorkloadBuilder(KeptnWorkload::new(name, workload_spec()))
}

impl WorkloadBuilder {
    pub fn app(mut self, app: &str) -> Self {
        self.0.spec.app = app.into();
        self
    }

    pub fn version(mut self, version: &str) -> Self {
        self.0.spec.version = version.into();
        self
    }

    /// `spec.resourceReference`.
    pub fn resource(mut self, kind: &str, name: &str, uid: &str) -> Self {
        self.0.spec.resource_reference = resource_reference(kind, name, uid);
        self
    }

    /// A status with `currentVersion`.
    pub fn current_version(mut self, version: &str) -> Self {
        self.0.status = Some(KeptnWorkloadStatus {
            current_version: version.into(),
        });
        self
    }
}

/// A KeptnAppVersion under construction; see [`kav`].
#[derive(Clone, Debug)]
pub struct AppVersionBuilder(KeptnAppVersion);

/// KeptnAppVersion `name` of app `waiter` at version 0.4, revision 1: no context, workloads,
/// namespace or status.
pub fn kav(name: &str) -> AppVersionBuilder {
    AppVersionBuilder(KeptnAppVersion::new(
        name,
        KeptnAppVersionSpec {
            context: Default::default(),
            app: KeptnAppSpec {
                version: "0.4".into(),
                revision: 1,
                workloads: vec![],
            },
            app_name: "waiter".into(),
            previous_version: String::new(),
            trace_id: Default::default(),
        },
    ))
}

impl AppVersionBuilder {
    /// `spec.appName` and `spec.version`.
    pub fn app(mut self, app_name: &str, version: &str) -> Self {
        self.0.spec.app_name = app_name.into();
        self.0.spec.app.version = version.into();
        self
    }

    /// `spec.workloads` as (name, version) pairs.
    pub fn workloads(mut self, workloads: &[(&str, &str)]) -> Self {
        self.0.spec.app.workloads = workload_refs(workloads);
        self
    }

    /// The KeptnAppContext part of the spec (checks, metadata, span links).
    pub fn context(mut self, context: KeptnAppContextSpec) -> Self {
        self.0.spec.context = context;
        self
    }

    /// `spec.traceId`.
    pub fn trace_id(mut self, carrier: &[(&str, &str)]) -> Self {
        self.0.spec.trace_id = string_map(carrier);
        self
    }

    pub fn status(mut self, status: KeptnAppVersionStatus) -> Self {
        self.0.status = Some(status);
        self
    }
}

/// A KeptnWorkloadVersion under construction; see [`kwv`].
#[derive(Clone, Debug)]
pub struct WorkloadVersionBuilder(KeptnWorkloadVersion);

/// KeptnWorkloadVersion `name` of workload `waiter-waiter` (app `waiter`, version 0.4) running
/// as ReplicaSet `rs` (uid `u`): no checks, metadata, namespace or status.
pub fn kwv(name: &str) -> WorkloadVersionBuilder {
    WorkloadVersionBuilder(KeptnWorkloadVersion::new(
        name,
        KeptnWorkloadVersionSpec {
            workload: workload_spec(),
            workload_name: "waiter-waiter".into(),
            previous_version: String::new(),
            trace_id: Default::default(),
        },
    ))
}

impl WorkloadVersionBuilder {
    /// `spec.app`, `spec.workloadName` and `spec.version`.
    pub fn workload(mut self, app: &str, workload_name: &str, version: &str) -> Self {
        self.0.spec.workload.app = app.into();
        self.0.spec.workload_name = workload_name.into();
        self.0.spec.workload.version = version.into();
        self
    }

    /// `spec.resourceReference`.
    pub fn resource(mut self, kind: &str, name: &str, uid: &str) -> Self {
        self.0.spec.workload.resource_reference = resource_reference(kind, name, uid);
        self
    }

    /// `spec.preDeploymentTasks`.
    pub fn pre_tasks(mut self, definitions: &[&str]) -> Self {
        self.0.spec.workload.pre_deployment_tasks = strings(definitions);
        self
    }

    /// `spec.metadata`, handed to the tasks.
    pub fn metadata(mut self, metadata: &[(&str, &str)]) -> Self {
        self.0.spec.workload.metadata = string_map(metadata);
        self
    }

    /// The status; `None` leaves the version without one.
    pub fn status(mut self, status: impl Into<Option<KeptnWorkloadVersionStatus>>) -> Self {
        self.0.status = status.into();
        self
    }
}
