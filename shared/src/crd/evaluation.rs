//! KeptnEvaluationDefinition and KeptnEvaluation (SPEC B §2.9–2.10).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use super::common::{Duration, KeptnState, default_retries, default_retry_interval, require};

/// Objectives on KeptnMetrics that an evaluation checks.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnEvaluationDefinition",
    doc = "Objectives on KeptnMetrics that a KeptnEvaluation checks.",
    namespaced,
    status = "String",
    derive = "PartialEq",
    shortname = "ked"
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnEvaluationDefinitionSpec {
    pub objectives: Vec<Objective>,
    /// Attempts before the evaluation counts as failed.
    #[serde(default = "default_retries")]
    pub retries: i64,
    #[serde(default = "default_retry_interval")]
    pub retry_interval: Duration,
}

/// One check: a KeptnMetric compared with a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    pub keptn_metric_ref: KeptnMetricReference,
    /// `<` or `>` followed by the target value, e.g. `<10`.
    pub evaluation_target: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeptnMetricReference {
    pub name: String,
    /// Defaults to the evaluation's namespace when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// One run of a KeptnEvaluationDefinition for an app or workload version.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lifecycle.keptn.sh",
    version = "v1",
    kind = "KeptnEvaluation",
    doc = "One run of a KeptnEvaluationDefinition for an app or workload version.",
    namespaced,
    status = "KeptnEvaluationStatus",
    derive = "PartialEq",
    shortname = "ke",
    printcolumn(name = "AppName", type_ = "string", json_path = ".spec.appName"),
    printcolumn(name = "AppVersion", type_ = "string", json_path = ".spec.appVersion"),
    printcolumn(name = "WorkloadName", type_ = "string", json_path = ".spec.workload"),
    printcolumn(
        name = "WorkloadVersion",
        type_ = "string",
        json_path = ".spec.workloadVersion"
    ),
    printcolumn(
        name = "RetryCount",
        type_ = "string",
        json_path = ".status.retryCount"
    ),
    printcolumn(
        name = "EvaluationStatus",
        type_ = "string",
        json_path = ".status.evaluationStatus"
    ),
    printcolumn(
        name = "OverallStatus",
        type_ = "string",
        json_path = ".status.overallStatus"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnEvaluationSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload: String,
    /// Required, but the empty string (an app-level evaluation) satisfies it.
    pub workload_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_version: String,
    pub evaluation_definition: String,
    /// `pre-eval` or `post-eval`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub check_type: String,
    #[serde(default = "default_retries")]
    pub retries: i64,
    #[serde(default = "default_retry_interval")]
    pub retry_interval: Duration,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_evaluation_status_fields)]
pub struct KeptnEvaluationStatus {
    #[serde(default)]
    pub retry_count: i64,
    /// Per metric name.
    #[serde(default)]
    #[schemars(transform = super::common::no_schema_default)]
    pub evaluation_status: BTreeMap<String, EvaluationStatusItem>,
    #[serde(default)]
    pub overall_status: KeptnState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
}

fn require_evaluation_status_fields(schema: &mut Schema) {
    require(schema, &["evaluationStatus", "overallStatus", "retryCount"]);
}

/// Result of one objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvaluationStatusItem {
    /// The metric's value that was compared.
    pub value: String,
    pub status: KeptnState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `status.lastUpdated` of the KeptnMetric as the attempt that produced this result read it;
    /// absent when the metric was not found or had none. A Portcullis addition (Keptn's item has
    /// `value`, `status` and `message` only).
    #[serde(
        default,
        rename = "lastUpdated",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_updated: Option<Time>,
}
