//! KeptnTaskDefinition and KeptnTask (SPEC B §2.7–2.8).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    Duration, KeptnState, default_retries_i32, default_timeout, no_schema_default,
};

/// What a task runs: a Deno or Python function, or a container.
///
/// Exactly one of `deno`, `python`, `container` is enforced by the validating webhook, not here.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnTaskDefinition",
    doc = "What a KeptnTask runs: a Deno or Python function, or a container.",
    namespaced,
    status = "KeptnTaskDefinitionStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnTaskDefinitionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<RuntimeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deno: Option<RuntimeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Job restarts before the task counts as failed.
    #[serde(default = "default_retries_i32")]
    pub retries: i32,
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<AutomountServiceAccountTokenSpec>,
    #[serde(default = "default_ttl_seconds_after_finished")]
    pub ttl_seconds_after_finished: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<ImagePullSecret>,
}

impl Default for KeptnTaskDefinitionSpec {
    /// The spec the API server materialises from `spec: {}`.
    fn default() -> Self {
        KeptnTaskDefinitionSpec {
            python: None,
            deno: None,
            container: None,
            retries: default_retries_i32(),
            timeout: default_timeout(),
            service_account: None,
            automount_service_account_token: None,
            ttl_seconds_after_finished: default_ttl_seconds_after_finished(),
            image_pull_secrets: Vec::new(),
        }
    }
}

pub(crate) fn default_ttl_seconds_after_finished() -> i32 {
    300
}

/// A function for the Deno or Python runtime and where its code comes from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSpec {
    /// Another KeptnTaskDefinition whose code to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_ref: Option<FunctionReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<Inline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_ref: Option<HttpReference>,
    /// A ConfigMap holding the code under the key `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<TaskParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_parameters: Option<SecureParameters>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cmd_parameters: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FunctionReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Inline {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HttpReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigMapReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// Plain parameters, handed to the task as JSON in the `DATA` environment variable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskParameters {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<String, String>,
}

/// Name of a Secret whose data the task receives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecureParameters {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceAccountSpec {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AutomountServiceAccountTokenSpec {
    #[serde(rename = "type")]
    pub type_: bool,
}

/// A Secret to pull the task's image with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImagePullSecret {
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptnTaskDefinitionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    /// The ConfigMap the function's code was written to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_map: String,
}

/// One run of a KeptnTaskDefinition for an app or workload version.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnTask",
    doc = "One run of a KeptnTaskDefinition for an app or workload version.",
    namespaced,
    status = "KeptnTaskStatus",
    derive = "PartialEq",
    printcolumn(
        name = "AppName",
        type_ = "string",
        json_path = ".spec.context.appName"
    ),
    printcolumn(
        name = "AppVersion",
        type_ = "string",
        json_path = ".spec.context.appVersion"
    ),
    printcolumn(
        name = "WorkloadName",
        type_ = "string",
        json_path = ".spec.context.workloadName"
    ),
    printcolumn(
        name = "WorkloadVersion",
        type_ = "string",
        json_path = ".spec.context.workloadVersion"
    ),
    printcolumn(name = "Job Name", type_ = "string", json_path = ".status.jobName"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status")
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnTaskSpec {
    /// Name of the KeptnTaskDefinition (task's namespace first, then the Keptn namespace).
    pub task_definition: String,
    #[serde(default)]
    #[schemars(transform = no_schema_default)]
    pub context: TaskContext,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<TaskParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_parameters: Option<SecureParameters>,
    /// `pre`, `post`, `promotion`, `pre-eval` or `post-eval`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub check_type: String,
    #[serde(default = "default_retries_i32")]
    pub retries: i32,
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

/// What a task runs for. All strings are written even when empty, as Keptn does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskContext {
    #[serde(default)]
    #[schemars(transform = no_schema_default)]
    pub workload_name: String,
    #[serde(default)]
    #[schemars(transform = no_schema_default)]
    pub app_name: String,
    #[serde(default)]
    #[schemars(transform = no_schema_default)]
    pub app_version: String,
    #[serde(default)]
    #[schemars(transform = no_schema_default)]
    pub workload_version: String,
    #[serde(default)]
    #[schemars(transform = no_schema_default)]
    pub task_type: String,
    /// `App` or `Workload`.
    #[serde(default)]
    #[schemars(transform = no_schema_default)]
    pub object_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptnTaskStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_name: String,
    #[serde(default)]
    pub status: KeptnState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Reason of the Job's last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}
