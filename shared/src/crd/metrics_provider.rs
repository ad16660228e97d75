//! KeptnMetricsProvider, `metrics.keptn.sh/v1`: where the metrics controller sends the queries of
//! the KeptnMetrics that name it.
//!
//! The printer columns `Type` and `TargetServer` are a Portcullis addition for `kubectl get kmp`;
//! `Type` is blank when the object's name is its type ([`KeptnMetricsProvider::provider_type`]).

use k8s_openapi::api::core::v1::SecretKeySelector;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// The provider types Keptn accepts in `spec.type`, as its CRD validates them (kept verbatim:
/// the alternation is not anchored, so any string containing one of the names passes).
pub const PROVIDER_TYPE_PATTERN: &str = "cortex|datadog|dql|dynatrace|prometheus|thanos|elastic";

/// Key of the basic-auth user name in the Secret named by `spec.secretKeyRef`.
pub const BASIC_AUTH_USER_KEY: &str = "user";
/// Key of the basic-auth password in the Secret named by `spec.secretKeyRef`.
pub const BASIC_AUTH_PASSWORD_KEY: &str = "password";

/// A metrics backend that KeptnMetrics are queried against.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "metrics.keptn.sh",
    version = "v1",
    kind = "KeptnMetricsProvider",
    plural = "keptnmetricsproviders",
    doc = "A metrics backend that KeptnMetrics are queried against.",
    namespaced,
    status = "String",
    derive = "PartialEq",
    shortname = "kmp",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "TargetServer",
        type_ = "string",
        json_path = ".spec.targetServer"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KeptnMetricsProviderSpec {
    /// The backend: one of cortex, datadog, dql, dynatrace, prometheus, thanos or elastic. When
    /// empty the object's name is the type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("pattern" = PROVIDER_TYPE_PATTERN))]
    pub r#type: String,
    /// URL of the backend, with scheme and port (e.g. `http://prometheus.monitoring:9090`).
    pub target_server: String,
    /// Credentials for the backend. Portcullis reads HTTP basic-auth credentials from the Secret
    /// this names (`name`, in the provider's namespace): the user name from its key `user` and
    /// the password from its key `password`. The selector's `key` is required by the schema (as
    /// in Keptn) but not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "secret_key_ref_schema")]
    pub secret_key_ref: Option<SecretKeySelector>,
    /// Accept any TLS certificate from the backend.
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
}

impl KeptnMetricsProvider {
    /// The provider type: `spec.type`, or the object's name when that is empty (as Keptn reads
    /// it, so a provider named `prometheus` needs no type).
    pub fn provider_type(&self) -> &str {
        if self.spec.r#type.is_empty() {
            self.metadata.name.as_deref().unwrap_or_default()
        } else {
            &self.spec.r#type
        }
    }

    /// The name of the Secret holding the basic-auth credentials, when `spec.secretKeyRef` names
    /// one (a blank name counts as none).
    pub fn secret_name(&self) -> Option<&str> {
        self.spec
            .secret_key_ref
            .as_ref()
            .map(|s| s.name.as_str())
            .filter(|n| !n.trim().is_empty())
    }
}

/// `SecretKeySelector`'s schema with only `key` required, as in Keptn's CRD: Go writes the
/// selector with an empty `name` omitted, so requiring `name` would refuse objects Keptn accepts.
fn secret_key_ref_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = SecretKeySelector::json_schema(generator);
    if let Some(serde_json::Value::Array(required)) = schema.get_mut("required") {
        required.retain(|f| f != "name");
    }
    schema.insert("x-kubernetes-map-type".to_owned(), "atomic".into());
    schema
}
