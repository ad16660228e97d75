//! Making KeptnTasks and KeptnEvaluations do their work (SPEC B §5, §6 with A15, A20).
//!
//! The phases create KeptnTask and KeptnEvaluation objects; this module runs them: a task
//! becomes a Job ([`build_job`], [`decide_task`]), an evaluation compares KeptnMetrics with its
//! objectives once per attempt ([`attempt_evaluation`]), and a KeptnTaskDefinition's inline code
//! becomes a ConfigMap the Job mounts ([`plan_function_config_map`]).
//!
//! All of it is pure: decisions over plain objects, tested without a server. The gate's
//! controller shell reads what a decision needs, applies it (create-if-absent, status merge
//! patches) and publishes events and metrics.

pub mod definition;
pub mod evaluation;
pub mod job;
pub mod runtime;
pub mod task;
#[cfg(test)]
mod tests;

pub use definition::{
    ConfigMapAction, FunctionConfigMap, config_map_action, function_config_map_name,
    plan_function_config_map, task_definition_status,
};
pub use evaluation::{
    EvaluationAction, MetricFetch, MetricSource, attempt_evaluation, check_value, metric_namespaces,
};
pub use job::{
    FUNCTION_CONTAINER, FUNCTION_VOLUME, build_job, job_name_for, job_suffix, keptn_context_json,
};
pub use runtime::FunctionRuntime;
pub use task::{JobLookup, TaskAction, TaskInput, decide_task, task_state_from_job};

/// Images of the function runtimes (B §0.2 `FUNCTION_RUNNER_IMAGE`, `PYTHON_RUNNER_IMAGE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerImages {
    /// Deno runtime image.
    pub function_runner_image: String,
    /// Python runtime image.
    pub python_runner_image: String,
}

impl RunnerImages {
    /// `FUNCTION_RUNNER_IMAGE` and `PYTHON_RUNNER_IMAGE` from `lookup` (B §0.2), each defaulting
    /// to Keptn's chart value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = RunnerImages::default();
        let get =
            |key: &str, default: String| lookup(key).filter(|v| !v.is_empty()).unwrap_or(default);
        RunnerImages {
            function_runner_image: get("FUNCTION_RUNNER_IMAGE", defaults.function_runner_image),
            python_runner_image: get("PYTHON_RUNNER_IMAGE", defaults.python_runner_image),
        }
    }

    /// [`RunnerImages::from_lookup`] on the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }
}

impl Default for RunnerImages {
    /// Keptn's chart defaults (B §0.2).
    fn default() -> Self {
        RunnerImages {
            function_runner_image: "ghcr.io/keptn/deno-runtime:v3.0.1".into(),
            python_runner_image: "ghcr.io/keptn/python-runtime:v1.0.8".into(),
        }
    }
}

/// A Kubernetes event on the object being reconciled (B §7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckEvent {
    pub warning: bool,
    /// Phase short name + state suffix, e.g. `CreateTaskNotFound`.
    pub reason: String,
    /// `<phase long name>: <text> / Namespace: <ns>, Name: <name>[, Version: <v>]`.
    pub message: String,
    /// Phase short name, for the event's `phase` annotation.
    pub phase: String,
}

impl CheckEvent {
    /// A Warning event in B §7.1's format.
    pub fn warning(
        short: &str,
        suffix: &str,
        long: &str,
        text: &str,
        object: &ObjectId<'_>,
    ) -> CheckEvent {
        CheckEvent {
            warning: true,
            reason: format!("{short}{suffix}"),
            message: object.message(long, text),
            phase: short.to_owned(),
        }
    }
}

/// B §7.1 event annotations of a KeptnTask.
pub fn task_event_annotations(
    task: &shared::crd::KeptnTask,
) -> std::collections::BTreeMap<String, String> {
    let c = &task.spec.context;
    std::collections::BTreeMap::from([
        ("appName".to_owned(), c.app_name.clone()),
        ("appVersion".to_owned(), c.app_version.clone()),
        ("workloadName".to_owned(), c.workload_name.clone()),
        ("workloadVersion".to_owned(), c.workload_version.clone()),
        (
            "taskName".to_owned(),
            task.metadata.name.clone().unwrap_or_default(),
        ),
        (
            "taskDefinitionName".to_owned(),
            task.spec.task_definition.clone(),
        ),
        (
            "traceparent".to_owned(),
            crate::events::traceparent_of(&task.metadata),
        ),
    ])
}

/// B §7.1 event annotations of a KeptnEvaluation.
pub fn evaluation_event_annotations(
    evaluation: &shared::crd::KeptnEvaluation,
) -> std::collections::BTreeMap<String, String> {
    let s = &evaluation.spec;
    std::collections::BTreeMap::from([
        ("appName".to_owned(), s.app_name.clone()),
        ("appVersion".to_owned(), s.app_version.clone()),
        ("workloadName".to_owned(), s.workload.clone()),
        ("workloadVersion".to_owned(), s.workload_version.clone()),
        (
            "evaluationName".to_owned(),
            evaluation.metadata.name.clone().unwrap_or_default(),
        ),
        (
            "evaluationDefinitionName".to_owned(),
            s.evaluation_definition.clone(),
        ),
        (
            "traceparent".to_owned(),
            crate::events::traceparent_of(&evaluation.metadata),
        ),
    ])
}

/// What an event message names: the object's namespace, name and version.
#[derive(Clone, Copy, Debug)]
pub struct ObjectId<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// Empty when no version is known.
    pub version: &'a str,
}

impl ObjectId<'_> {
    fn message(&self, long: &str, text: &str) -> String {
        crate::events::message(long, text, self.namespace, self.name, self.version)
    }
}

/// Why a task, an evaluation or a task definition could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// B §5.5: a function definition without code (texts as Keptn's).
    #[error(
        "no ConfigMap specified or HTTP source specified in TaskDefinition / Namespace: {namespace}, Name: {name}"
    )]
    NoSource { namespace: String, name: String },
    /// The definition defines neither `container`, `deno` nor `python`.
    #[error(
        "KeptnTaskDefinition {namespace}/{name} defines no runtime (one of container, deno, python)"
    )]
    NoRuntime { namespace: String, name: String },
    /// `functionRef` names a definition that does not exist (task namespace, then Keptn's).
    #[error("could not find KeptnTaskDefinition: {name}")]
    ParentNotFound { name: String },
    /// `functionRef` names a container definition, which has no function to run.
    #[error("functionRef {name} names a container KeptnTaskDefinition, not a deno or python one")]
    ParentNotFunction { name: String },
    /// A duration field that Go's ParseDuration would reject.
    #[error("invalid {field}: {source}")]
    Duration {
        field: &'static str,
        source: shared::crd::DurationError,
    },
    /// The object lacks metadata every stored object has (name, namespace, uid).
    #[error("{kind} lacks metadata.{field}")]
    Metadata {
        kind: &'static str,
        field: &'static str,
    },
    /// A Job with the task's deterministic name exists but belongs to another object.
    #[error("Job {job} exists but is not owned by KeptnTask {task}")]
    ForeignJob { job: String, task: String },
    /// A status could not be serialised into a patch.
    #[error("serialising a status patch: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl CheckError {
    /// Bounded label value for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckError::NoSource { .. } => "no_source",
            CheckError::NoRuntime { .. } => "no_runtime",
            CheckError::ParentNotFound { .. } => "parent_not_found",
            CheckError::ParentNotFunction { .. } => "parent_not_function",
            CheckError::Duration { .. } => "duration",
            CheckError::Metadata { .. } => "metadata",
            CheckError::ForeignJob { .. } => "foreign_job",
            CheckError::Serialize(_) => "serialize",
        }
    }
}

/// A controller owner reference to `owner`, blocking its deletion as Keptn's
/// `SetControllerReference` does (`None` without a name or uid).
pub fn controller_ref<K: kube_core::Resource<DynamicType = ()>>(
    owner: &K,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    let mut reference = owner.controller_owner_ref(&())?;
    reference.block_owner_deletion = Some(true);
    Some(reference)
}

/// JSON as Go's `json.Marshal` writes it (Keptn builds `DATA` and `KEPTN_CONTEXT` with it):
/// compact, with `<`, `>`, `&`, U+2028 and U+2029 escaped as `\uXXXX`. Those characters can only
/// occur inside JSON strings, so replacing them keeps the document equivalent.
pub fn go_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let plain = serde_json::to_string(value)?;
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Namespaces a definition is looked up in, in order (B §5.3, §6.2, §8 item 11): the object's
/// own, then the Keptn installation namespace (once when they are the same).
pub fn definition_namespaces<'a>(namespace: &'a str, install_namespace: &'a str) -> Vec<&'a str> {
    if namespace == install_namespace {
        vec![namespace]
    } else {
        vec![namespace, install_namespace]
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn b7_1_event_message_format() {
        let id = ObjectId {
            namespace: "ns",
            name: "pre-hello-12345",
            version: "0.4",
        };
        let e = CheckEvent::warning(
            "CreateTask",
            "NotFound",
            "Create Task",
            "could not find KeptnTaskDefinition: hello",
            &id,
        );
        assert_eq!(e.reason, "CreateTaskNotFound");
        assert_eq!(
            e.message,
            "Create Task: could not find KeptnTaskDefinition: hello / Namespace: ns, Name: pre-hello-12345, Version: 0.4"
        );
        let id = ObjectId { version: "", ..id };
        assert_eq!(
            id.message("Create Task", "x"),
            "Create Task: x / Namespace: ns, Name: pre-hello-12345"
        );
    }

    #[test]
    fn b0_2_runner_images_from_environment_with_chart_defaults() {
        let images = RunnerImages::from_lookup(|key| {
            (key == "PYTHON_RUNNER_IMAGE").then(|| "registry.local/python:1".to_owned())
        });
        assert_eq!(
            images,
            RunnerImages {
                function_runner_image: "ghcr.io/keptn/deno-runtime:v3.0.1".into(),
                python_runner_image: "registry.local/python:1".into(),
            }
        );
        assert_eq!(
            RunnerImages::from_lookup(|_| Some(String::new())),
            RunnerImages::default()
        );
    }

    #[test]
    fn b5_5_json_escaped_as_go_does() {
        let map = std::collections::BTreeMap::from([("q", "a<b && c>d \u{2028}é")]);
        let json = go_json(&map).unwrap();
        assert_eq!(json, r#"{"q":"a\u003cb \u0026\u0026 c\u003ed \u2028é"}"#);
        let back: std::collections::BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back["q"], "a<b && c>d \u{2028}é");
    }

    #[test]
    fn b7_1_event_object_with_annotations() {
        let task = crate::execution::tests::task(serde_json::json!({
            "metadata": {"annotations": {"traceparent": "00-abc-def-01"}}
        }));
        let id = ObjectId {
            namespace: "app",
            name: "pre-hello-12345",
            version: "0.4",
        };
        let e = CheckEvent::warning("CreateTask", "NotFound", "Create Task", "x", &id);
        let regarding = k8s_openapi::api::core::v1::ObjectReference {
            kind: Some("KeptnTask".into()),
            name: Some("pre-hello-12345".into()),
            namespace: Some("app".into()),
            ..Default::default()
        };
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let ev = crate::events::published_event(
            &(&e).into(),
            regarding,
            task_event_annotations(&task),
            "keptntask-controller",
            "gate-0",
            now,
        );
        assert_eq!(ev.reason.as_deref(), Some("CreateTaskNotFound"));
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(
            ev.reporting_controller.as_deref(),
            Some("keptntask-controller")
        );
        assert_eq!(ev.reporting_instance.as_deref(), Some("gate-0"));
        assert_eq!(ev.metadata.namespace.as_deref(), Some("app"));
        assert!(ev.metadata.name.unwrap().starts_with("pre-hello-12345."));
        let a = ev.metadata.annotations.unwrap();
        let want: std::collections::BTreeMap<String, String> = [
            ("appName", "waiter"),
            ("appVersion", ""),
            ("workloadName", "waiter-waiter"),
            ("workloadVersion", "0.4"),
            ("taskName", "pre-hello-12345"),
            ("taskDefinitionName", "hello"),
            ("traceparent", "00-abc-def-01"),
            ("namespace", "app"),
            ("name", "pre-hello-12345"),
            ("phase", "CreateTask"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(a, want);
        let long = CheckEvent {
            message: "é".repeat(600),
            ..e
        };
        let ev = crate::events::published_event(
            &(&long).into(),
            Default::default(),
            Default::default(),
            "c",
            "i",
            now,
        );
        // The API server's limit on an Event's note.
        assert!(ev.note.unwrap().len() <= 1024);
    }

    #[test]
    fn b7_1_evaluation_event_annotations() {
        let e = crate::execution::tests::evaluation(serde_json::json!({}));
        let a = evaluation_event_annotations(&e);
        assert_eq!(a["evaluationName"], "pre-eval-ready-23456");
        assert_eq!(a["evaluationDefinitionName"], "ready");
        assert_eq!(a["workloadName"], "waiter-waiter");
        assert_eq!(a["workloadVersion"], "0.4");
        assert_eq!(a["appName"], "waiter");
        assert_eq!(a["traceparent"], "");
    }

    #[test]
    fn b8_11_definition_lookup_order() {
        assert_eq!(
            definition_namespaces("app", "keptn-system"),
            vec!["app", "keptn-system"]
        );
        assert_eq!(
            definition_namespaces("keptn-system", "keptn-system"),
            vec!["keptn-system"]
        );
    }

    #[test]
    fn b5_5_no_source_error_text() {
        let e = CheckError::NoSource {
            namespace: "ns".into(),
            name: "d".into(),
        };
        assert_eq!(
            e.to_string(),
            "no ConfigMap specified or HTTP source specified in TaskDefinition / Namespace: ns, Name: d"
        );
    }
}
