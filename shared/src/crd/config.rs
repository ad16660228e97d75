//! KeptnConfig, `options.keptn.sh/v1alpha1` (SPEC B §2.12).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Duration, default_timeout, default_true};

/// Runtime options of the operator; any KeptnConfig in any namespace applies.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "options.keptn.sh",
    version = "v1alpha1",
    kind = "KeptnConfig",
    doc = "Runtime options of the Keptn lifecycle operator.",
    namespaced,
    status = "String",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnConfigSpec {
    /// OTLP/gRPC collector address (capitalised as in Keptn).
    #[serde(
        default,
        rename = "OTelCollectorUrl",
        skip_serializing_if = "String::is_empty"
    )]
    pub otel_collector_url: String,
    /// How long app discovery waits for more workloads before creating the KeptnApp.
    #[serde(default = "default_app_creation_request_timeout_seconds")]
    #[schemars(range(min = 0))]
    pub keptn_app_creation_request_timeout_seconds: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cloud_events_endpoint: String,
    /// When false, failed checks become `Warning` and the deployment proceeds.
    #[serde(default = "default_true")]
    pub block_deployment: bool,
    #[serde(default = "default_timeout")]
    pub observability_timeout: Duration,
    #[serde(default)]
    pub rest_api_enabled: bool,
}

impl Default for KeptnConfigSpec {
    /// The spec the API server materialises from `spec: {}`.
    fn default() -> Self {
        KeptnConfigSpec {
            otel_collector_url: String::new(),
            keptn_app_creation_request_timeout_seconds:
                default_app_creation_request_timeout_seconds(),
            cloud_events_endpoint: String::new(),
            block_deployment: true,
            observability_timeout: default_timeout(),
            rest_api_enabled: false,
        }
    }
}

fn default_app_creation_request_timeout_seconds() -> i64 {
    30
}
