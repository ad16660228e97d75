//! KeptnWorkload and KeptnWorkloadVersion (SPEC B §2.5–2.6).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ItemStatus, KeptnState};

/// A workload (Deployment, StatefulSet, DaemonSet or ReplicaSet) of an app, with its checks.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnWorkload",
    doc = "A workload of a KeptnApp and the checks around its deployment.",
    namespaced,
    status = "KeptnWorkloadStatus",
    derive = "PartialEq",
    printcolumn(name = "AppName", type_ = "string", json_path = ".spec.app"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version")
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnWorkloadSpec {
    /// Name of the KeptnApp.
    pub app: String,
    pub version: String,
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
    pub resource_reference: ResourceReference,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// The Kubernetes object a KeptnWorkload stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceReference {
    pub uid: String,
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptnWorkloadStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_version: String,
}

/// One version of a workload going through its lifecycle phases.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnWorkloadVersion",
    doc = "One version of a KeptnWorkload going through its lifecycle phases.",
    namespaced,
    status = "KeptnWorkloadVersionStatus",
    derive = "PartialEq",
    shortname = "kwv",
    printcolumn(name = "AppName", type_ = "string", json_path = ".spec.app"),
    printcolumn(
        name = "WorkloadName",
        type_ = "string",
        json_path = ".spec.workloadName"
    ),
    printcolumn(
        name = "WorkloadVersion",
        type_ = "string",
        json_path = ".spec.version"
    ),
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
        name = "DeploymentStatus",
        type_ = "string",
        json_path = ".status.deploymentStatus",
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
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnWorkloadVersionSpec {
    /// The KeptnWorkload spec fields, inline.
    #[serde(flatten)]
    pub workload: KeptnWorkloadSpec,
    pub workload_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub previous_version: String,
    /// OpenTelemetry propagation carrier (`traceparent`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trace_id: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptnWorkloadVersionStatus {
    #[serde(default)]
    pub pre_deployment_status: KeptnState,
    #[serde(default)]
    pub deployment_status: KeptnState,
    #[serde(default)]
    pub pre_deployment_evaluation_status: KeptnState,
    #[serde(default)]
    pub post_deployment_evaluation_status: KeptnState,
    #[serde(default)]
    pub post_deployment_status: KeptnState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_deployment_task_status: Vec<ItemStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_deployment_task_status: Vec<ItemStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_deployment_evaluation_task_status: Vec<ItemStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_deployment_evaluation_task_status: Vec<ItemStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_phase: String,
    /// Per phase short name, the OpenTelemetry carrier of the phase's span.
    #[serde(
        default,
        rename = "phaseTraceIDs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub phase_trace_ids: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub status: KeptnState,
    /// Metadata copied from the KeptnAppVersion's context.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub app_context_metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_start_time: Option<Time>,
    /// Portcullis addition (SPEC A19): standard `Ready` / `Progressing` conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Portcullis addition (SPEC A19): the generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
