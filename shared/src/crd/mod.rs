//! The custom resources Portcullis reads and writes, wire-compatible with Keptn:
//! `lifecycle.keptn.sh/v1` (ten kinds), `options.keptn.sh/v1alpha1` KeptnConfig and
//! `metrics.keptn.sh/v1` KeptnMetric and KeptnMetricsProvider.
//!
//! Optional fields follow Go's `omitempty`: absent and empty are the same, and empty is never
//! written. Fields with a CRD default carry it both as a serde default and as a schema `default`.
//! [`all`] returns the CustomResourceDefinitions to install; use it rather than the derived
//! `Kind::crd()`, which lacks the adjustments described there.

// Repeated `printcolumn(type_ = "string", priority = 1)` items inside `#[kube(..)]` are separate
// columns, not duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod app;
mod common;
mod config;
pub mod conversion;
mod evaluation;
mod metric;
mod metrics_provider;
mod task;
mod workload;

pub use app::*;
pub use common::{
    DURATION_PATTERN, Duration, DurationError, ItemStatus, KeptnState, format_go_duration,
};
pub use config::*;
pub use evaluation::*;
pub use metric::*;
pub use metrics_provider::*;
pub use task::*;
pub use workload::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

/// Every CRD Portcullis installs, in a fixed order.
///
/// Adjustment to kube's derived CRD: for kinds whose spec has no required field (KeptnAppContext,
/// KeptnTaskDefinition, KeptnConfig) `spec` is not required but defaults to `{}`, so an object
/// written without a spec is accepted as by Keptn and is stored with the spec defaults applied.
///
/// The `lifecycle.keptn.sh` kinds also serve the older versions of Keptn's chart, converted by the
/// webhook ([`conversion`]).
pub fn all() -> Vec<CustomResourceDefinition> {
    let crds = vec![
        KeptnApp::crd(),
        KeptnAppContext::crd(),
        KeptnAppCreationRequest::crd(),
        KeptnAppVersion::crd(),
        KeptnWorkload::crd(),
        KeptnWorkloadVersion::crd(),
        KeptnTaskDefinition::crd(),
        KeptnTask::crd(),
        KeptnEvaluationDefinition::crd(),
        KeptnEvaluation::crd(),
        KeptnConfig::crd(),
        KeptnMetric::crd(),
        KeptnMetricsProvider::crd(),
    ];
    crds.into_iter()
        .map(|crd| {
            // Every older version is generated for the kind it names; a mismatch is a bug in the
            // types, caught by the CRD tests, not something an install could run into.
            let crd = conversion::with_older_versions(crd)
                .unwrap_or_else(|e| panic!("merging the older versions of a CRD: {e}"));
            match crd.spec.names.kind.as_str() {
                "KeptnAppContext" | "KeptnTaskDefinition" | "KeptnConfig" => {
                    spec_defaults_to_empty(crd)
                }
                _ => crd,
            }
        })
        .collect()
}

/// The file name a CRD is written to: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.{}.yaml", crd.spec.names.plural, crd.spec.group)
}

fn spec_defaults_to_empty(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        if let Some(required) = root.required.as_mut() {
            required.retain(|f| f != "spec");
            if required.is_empty() {
                root.required = None;
            }
        }
        if let Some(spec) = root.properties.as_mut().and_then(|p| p.get_mut("spec")) {
            *spec = JSONSchemaProps {
                default: Some(
                    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON(
                        serde_json::json!({}),
                    ),
                ),
                ..std::mem::take(spec)
            };
        }
    }
    crd
}
