//! KeptnApp, KeptnAppContext, KeptnAppCreationRequest and KeptnAppVersion (SPEC B §2.1–2.4).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ItemStatus, KeptnState, default_revision};

/// A deployable application: the workloads (name and version) that make up one version of it.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnApp",
    doc = "A deployable application: the workloads (name and version) that make up one version of it.",
    namespaced,
    status = "KeptnAppStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnAppSpec {
    pub version: String,
    /// Bumped by the user to run the same version again.
    #[serde(default = "default_revision")]
    #[schemars(range(min = 0))]
    pub revision: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<KeptnWorkloadRef>,
}

/// A workload of an app, by name and version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeptnWorkloadRef {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptnAppStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_version: String,
}

/// Checks and metadata of an app; same name and namespace as the KeptnApp it belongs to.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnAppContext",
    doc = "Checks and metadata of a KeptnApp (same name and namespace).",
    namespaced,
    status = "KeptnAppContextStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnAppContextSpec {
    /// KeptnTaskDefinition names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_deployment_tasks: Vec<String>,
    /// KeptnTaskDefinition names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_deployment_tasks: Vec<String>,
    /// KeptnEvaluationDefinition names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_deployment_evaluations: Vec<String>,
    /// KeptnEvaluationDefinition names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_deployment_evaluations: Vec<String>,
    /// KeptnTaskDefinition names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotion_tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// W3C `traceparent` values the app's trace links to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub span_links: Vec<String>,
}

/// Unused by the operator; present so the schema keeps what Keptn stores.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeptnAppContextStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
}

/// Asks for a KeptnApp to be created for a workload that names an app that does not exist.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnAppCreationRequest",
    doc = "Request to create a KeptnApp for workloads that name an app that does not exist.",
    namespaced,
    status = "String",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnAppCreationRequestSpec {
    pub app_name: String,
}

/// One version (and revision) of an app going through its lifecycle phases.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnAppVersion",
    doc = "One version and revision of a KeptnApp going through its lifecycle phases.",
    namespaced,
    status = "KeptnAppVersionStatus",
    derive = "PartialEq",
    shortname = "kav",
    printcolumn(name = "AppName", type_ = "string", json_path = ".spec.appName"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.currentPhase"),
    printcolumn(
        name = "PreDeploymentStatus",
        type_ = "string",
        json_path = ".status.preDeploymentStatus",
        priority = 1
    ),
    printcolumn(
        name = "PreDeploymentEvaluationStatus",
        type_ = "string",
        json_path = ".status.preDeploymentEvaluationStatus",
        priority = 1
    ),
    printcolumn(
        name = "WorkloadOverallStatus",
        type_ = "string",
        json_path = ".status.workloadOverallStatus",
        priority = 1
    ),
    printcolumn(
        name = "PostDeploymentStatus",
        type_ = "string",
        json_path = ".status.postDeploymentStatus",
        priority = 1
    ),
    printcolumn(
        name = "PostDeploymentEvaluationStatus",
        type_ = "string",
        json_path = ".status.postDeploymentEvaluationStatus",
        priority = 1
    ),
    printcolumn(
        name = "PromotionStatus",
        type_ = "string",
        json_path = ".status.promotionStatus",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnAppVersionSpec {
    /// The KeptnAppContext spec fields, inline.
    #[serde(flatten)]
    pub context: KeptnAppContextSpec,
    /// The KeptnApp spec fields, inline.
    #[serde(flatten)]
    pub app: KeptnAppSpec,
    pub app_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub previous_version: String,
    /// OpenTelemetry propagation carrier (`traceparent`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trace_id: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptnAppVersionStatus {
    #[serde(default)]
    pub pre_deployment_status: KeptnState,
    #[serde(default)]
    pub post_deployment_status: KeptnState,
    #[serde(default)]
    pub promotion_status: KeptnState,
    #[serde(default)]
    pub pre_deployment_evaluation_status: KeptnState,
    #[serde(default)]
    pub post_deployment_evaluation_status: KeptnState,
    #[serde(default)]
    pub workload_overall_status: KeptnState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload_status: Vec<WorkloadStatus>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_phase: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_deployment_task_status: Vec<ItemStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_deployment_task_status: Vec<ItemStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotion_task_status: Vec<ItemStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_deployment_evaluation_task_status: Vec<ItemStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_deployment_evaluation_task_status: Vec<ItemStatus>,
    /// Per phase short name, the OpenTelemetry carrier of the phase's span.
    #[serde(
        default,
        rename = "phaseTraceIDs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub phase_trace_ids: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub status: KeptnState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Portcullis addition (SPEC A19): standard `Ready` / `Progressing` conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Portcullis addition (SPEC A19): the generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// State of one workload of an app version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkloadStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<KeptnWorkloadRef>,
    #[serde(default)]
    pub status: KeptnState,
}
