//! KeptnMetric, `metrics.keptn.sh/v1`: read by evaluations, written by a metrics operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A query against a metrics provider and its latest result.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metrics.keptn.sh",
    version = "v1",
    kind = "KeptnMetric",
    doc = "A query against a metrics provider and its latest result.",
    namespaced,
    status = "KeptnMetricStatus",
    derive = "PartialEq",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider.name"),
    printcolumn(name = "Query", type_ = "string", json_path = ".spec.query"),
    printcolumn(
        name = "Interval",
        type_ = "string",
        json_path = ".spec.range.interval"
    ),
    printcolumn(name = "Value", type_ = "string", json_path = ".status.value"),
    printcolumn(name = "Step", type_ = "string", json_path = ".spec.range.step"),
    printcolumn(
        name = "Aggregation",
        type_ = "string",
        json_path = ".spec.range.aggregation"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnMetricSpec {
    pub provider: ProviderRef,
    pub query: String,
    #[schemars(range(min = 0))]
    pub fetch_interval_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSpec>,
}

/// A KeptnMetricsProvider, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderRef {
    pub name: String,
}

/// The time range a query covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RangeSpec {
    #[serde(default = "default_interval")]
    pub interval: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub step: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["p90", "p95", "p99", "max", "min", "avg", "median"]))]
    pub aggregation: String,
    /// How many past results the status keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 255))]
    pub stored_results: Option<i64>,
}

fn default_interval() -> String {
    "5m".to_owned()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptnMetricStatus {
    /// The result as a decimal string; what evaluations compare.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The provider's raw answer, base64 (Go `[]byte`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("format" = "byte"))]
    pub raw_value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub err_msg: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interval_results: Vec<IntervalResult>,
}

/// A result kept for a past range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntervalResult {
    pub value: String,
    pub range: RangeSpec,
    pub last_updated: Time,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub err_msg: String,
}
