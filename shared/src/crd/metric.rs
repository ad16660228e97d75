//! KeptnMetric, `metrics.keptn.sh/v1`: read by evaluations, written by a metrics operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::require;

/// Largest raw answer a KeptnMetric's status may hold: 1 MiB of bytes.
pub const RAW_VALUE_MAX_BYTES: usize = 1 << 20;
/// `maxLength` of `status.rawValue`: the length of [`RAW_VALUE_MAX_BYTES`] in padded base64,
/// ceil(1048576 / 3) × 4 = 1398104. Base64 counts in 3-byte groups, so the bound admits up to
/// 1048578 bytes (two more than 1 MiB); the API server enforces it on the text.
pub const RAW_VALUE_MAX_LENGTH: usize = RAW_VALUE_MAX_BYTES.div_ceil(3) * 4;

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
    /// How often the metrics controller queries the provider (Go `uint`). Evaluations refuse a
    /// value older than three intervals.
    #[schemars(range(min = 0), extend("format" = "int64"))]
    pub fetch_interval_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSpec>,
}

impl KeptnMetricSpec {
    /// Name of the KeptnMetricsProvider (in the metric's namespace) the query is sent to.
    pub fn provider_name(&self) -> &str {
        &self.provider.name
    }
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
    /// The provider's raw answer, base64 (Go `[]byte`), limited to 1 MiB: the text may have at
    /// most ceil(1048576 / 3) × 4 = 1398104 characters, the length of 1 MiB in base64 (base64
    /// counts in 3-byte groups, so up to 1048578 bytes fit).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("format" = "byte"), length(max = RAW_VALUE_MAX_LENGTH))]
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
#[schemars(transform = require_interval_result_fields)]
pub struct IntervalResult {
    pub value: String,
    /// The range this result covers. Required, but may be `null` (a Go pointer in Keptn): absent
    /// or `null` reads as none, and none is written as `null`, as Go writes a nil pointer.
    #[serde(default)]
    pub range: Option<RangeSpec>,
    pub last_updated: Time,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub err_msg: String,
}

fn require_interval_result_fields(schema: &mut schemars::Schema) {
    require(schema, &["range"]);
}
