//! KeptnEvaluation at v1alpha1, v1alpha2, v1alpha3 and v1beta1.
//!
//! Up to v1alpha3 the spec had `failAction`, which Keptn never acted on; it travels in the carry
//! annotation. The per-objective results of every older version lack Portcullis' `lastUpdated`,
//! which travels the other way.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use super::{Carry, Convert, Refusal, Spoke};
use crate::crd::KeptnState;
use crate::crd::common::{no_schema_default, require};

pub(super) fn spokes() -> Vec<Spoke> {
    vec![
        Spoke::of::<v1alpha1::KeptnEvaluation>(),
        Spoke::of::<v1alpha2::KeptnEvaluation>(),
        Spoke::of::<v1alpha3::KeptnEvaluation>(),
        Spoke::of::<v1beta1::KeptnEvaluation>(),
    ]
}

/// The status of every older version: v1's, but for the result items.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_status_fields)]
pub struct KeptnEvaluationStatus {
    #[serde(default)]
    pub retry_count: i64,
    #[serde(default)]
    #[schemars(transform = no_schema_default)]
    pub evaluation_status: BTreeMap<String, EvaluationStatusItem>,
    #[serde(default)]
    pub overall_status: KeptnState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
}

// Keptn lists the three as required although the first and last have defaults.
fn require_status_fields(schema: &mut Schema) {
    require(schema, &["evaluationStatus", "overallStatus", "retryCount"]);
}

/// One objective's result as Keptn had it (no `lastUpdated`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvaluationStatusItem {
    pub value: String,
    pub status: KeptnState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Carry key of v1's per-result `lastUpdated`, by metric name.
const LAST_UPDATED: &str = "status.evaluationStatus.lastUpdated";

fn status_to_hub(
    status: Option<KeptnEvaluationStatus>,
    carry: &mut Carry,
) -> Option<crate::crd::KeptnEvaluationStatus> {
    let mut last_updated: BTreeMap<String, Time> = carry.restore(LAST_UPDATED).unwrap_or_default();
    status.map(|s| crate::crd::KeptnEvaluationStatus {
        retry_count: s.retry_count,
        evaluation_status: s
            .evaluation_status
            .into_iter()
            .map(|(name, item)| {
                let last_updated = last_updated.remove(&name);
                let item = crate::crd::EvaluationStatusItem {
                    value: item.value,
                    status: item.status,
                    message: item.message,
                    last_updated,
                };
                (name, item)
            })
            .collect(),
        overall_status: s.overall_status,
        start_time: s.start_time,
        end_time: s.end_time,
    })
}

fn status_from_hub(
    status: Option<crate::crd::KeptnEvaluationStatus>,
    carry: &mut Carry,
) -> Option<KeptnEvaluationStatus> {
    let status = status?;
    let last_updated: BTreeMap<&String, &Time> = status
        .evaluation_status
        .iter()
        .filter_map(|(name, item)| item.last_updated.as_ref().map(|t| (name, t)))
        .collect();
    carry.keep(LAST_UPDATED, &last_updated);
    Some(KeptnEvaluationStatus {
        retry_count: status.retry_count,
        evaluation_status: status
            .evaluation_status
            .into_iter()
            .map(|(name, item)| {
                let item = EvaluationStatusItem {
                    value: item.value,
                    status: item.status,
                    message: item.message,
                };
                (name, item)
            })
            .collect(),
        overall_status: status.overall_status,
        start_time: status.start_time,
        end_time: status.end_time,
    })
}

/// v1alpha1, v1alpha2 and v1alpha3 have the same fields: v1's and `failAction`.
macro_rules! evaluation_with_fail_action {
    ($version:literal) => {
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        use super::*;
        pub use super::KeptnEvaluationStatus;
        use crate::crd::Duration;
        use crate::crd::common::{default_retries, default_retry_interval};

        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema,
        )]
        #[kube(
            group = "lifecycle.keptn.sh",
            version = $version,
            kind = "KeptnEvaluation",
            doc = "One run of a KeptnEvaluationDefinition (served for older manifests; v1 is stored).",
            namespaced,
            status = "KeptnEvaluationStatus",
            derive = "PartialEq",
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
            pub workload_version: String,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub app_name: String,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub app_version: String,
            pub evaluation_definition: String,
            #[serde(default = "default_retries")]
            pub retries: i64,
            #[serde(default = "default_retry_interval")]
            pub retry_interval: Duration,
            /// Never acted on by Keptn; kept only so that it reads back.
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub fail_action: String,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub check_type: String,
        }

        impl Convert for KeptnEvaluation {
            type Hub = crate::crd::KeptnEvaluation;

            fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
                let s = self.spec;
                carry.keep("spec.failAction", &s.fail_action);
                Ok(crate::crd::KeptnEvaluation {
                    metadata: self.metadata,
                    spec: crate::crd::KeptnEvaluationSpec {
                        workload: s.workload,
                        workload_version: s.workload_version,
                        app_name: s.app_name,
                        app_version: s.app_version,
                        evaluation_definition: s.evaluation_definition,
                        check_type: s.check_type,
                        retries: s.retries,
                        retry_interval: s.retry_interval,
                    },
                    status: status_to_hub(self.status, carry),
                })
            }

            fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
                let s = hub.spec;
                Ok(KeptnEvaluation {
                    metadata: hub.metadata,
                    spec: KeptnEvaluationSpec {
                        workload: s.workload,
                        workload_version: s.workload_version,
                        app_name: s.app_name,
                        app_version: s.app_version,
                        evaluation_definition: s.evaluation_definition,
                        retries: s.retries,
                        retry_interval: s.retry_interval,
                        fail_action: carry.restore("spec.failAction").unwrap_or_default(),
                        check_type: s.check_type,
                    },
                    status: status_from_hub(hub.status, carry),
                })
            }
        }
    };
}

pub mod v1alpha1 {
    //! KeptnEvaluation with `failAction`.
    evaluation_with_fail_action!("v1alpha1");
}

pub mod v1alpha2 {
    //! KeptnEvaluation with `failAction` (as v1alpha1).
    evaluation_with_fail_action!("v1alpha2");
}

pub mod v1alpha3 {
    //! KeptnEvaluation with `failAction` (as v1alpha1).
    evaluation_with_fail_action!("v1alpha3");
}

pub mod v1beta1 {
    //! KeptnEvaluation with v1's spec; only the result items differ.

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    pub use super::KeptnEvaluationStatus;
    use super::*;
    use crate::crd::Duration;
    use crate::crd::common::{default_retries, default_retry_interval};

    #[derive(kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1beta1",
        kind = "KeptnEvaluation",
        doc = "One run of a KeptnEvaluationDefinition (served for older manifests; v1 is stored).",
        namespaced,
        status = "KeptnEvaluationStatus",
        derive = "PartialEq",
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
        pub workload_version: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub app_name: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub app_version: String,
        pub evaluation_definition: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub check_type: String,
        #[serde(default = "default_retries")]
        pub retries: i64,
        #[serde(default = "default_retry_interval")]
        pub retry_interval: Duration,
    }

    impl Convert for KeptnEvaluation {
        type Hub = crate::crd::KeptnEvaluation;

        fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
            let s = self.spec;
            Ok(crate::crd::KeptnEvaluation {
                metadata: self.metadata,
                spec: crate::crd::KeptnEvaluationSpec {
                    workload: s.workload,
                    workload_version: s.workload_version,
                    app_name: s.app_name,
                    app_version: s.app_version,
                    evaluation_definition: s.evaluation_definition,
                    check_type: s.check_type,
                    retries: s.retries,
                    retry_interval: s.retry_interval,
                },
                status: status_to_hub(self.status, carry),
            })
        }

        fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
            let s = hub.spec;
            Ok(KeptnEvaluation {
                metadata: hub.metadata,
                spec: KeptnEvaluationSpec {
                    workload: s.workload,
                    workload_version: s.workload_version,
                    app_name: s.app_name,
                    app_version: s.app_version,
                    evaluation_definition: s.evaluation_definition,
                    check_type: s.check_type,
                    retries: s.retries,
                    retry_interval: s.retry_interval,
                },
                status: status_from_hub(hub.status, carry),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::Resource;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::super::{CARRY_ANNOTATION_PREFIX, convert};
    use super::*;

    fn normalised<T: Serialize + DeserializeOwned>(v: Value) -> Value {
        serde_json::to_value(serde_json::from_value::<T>(v).expect("parses")).expect("serialises")
    }

    /// `old` converts to `v1` exactly, and `v1` converts back to `old`.
    fn old_to_v1_and_back<T>(old: Value, v1: Value)
    where
        T: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let hub = convert(old.clone(), "lifecycle.keptn.sh/v1").expect("converts to v1");
        assert_eq!(
            normalised::<crate::crd::KeptnEvaluation>(hub.clone()),
            normalised::<crate::crd::KeptnEvaluation>(v1)
        );
        let back = convert(hub, &T::api_version(&())).expect("converts back");
        assert_eq!(normalised::<T>(back), normalised::<T>(old));
    }

    /// `v1` converts to the older version and back to itself.
    fn v1_to_old_and_back<T>(v1: Value)
    where
        T: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let old = convert(v1.clone(), &T::api_version(&())).expect("converts to the old version");
        normalised::<T>(old.clone());
        let back = convert(old, "lifecycle.keptn.sh/v1").expect("converts back");
        assert_eq!(
            normalised::<crate::crd::KeptnEvaluation>(back),
            normalised::<crate::crd::KeptnEvaluation>(v1)
        );
    }

    fn status() -> Value {
        json!({
            "retryCount": 2,
            "evaluationStatus": {
                "available-cpus": {"value": "3", "status": "Succeeded"},
                "error-rate": {"value": "0.2", "status": "Failed", "message": "value 0.2 is not < 0.1"}
            },
            "overallStatus": "Failed",
            "startTime": "2023-03-01T10:00:00Z",
            "endTime": "2023-03-01T10:00:20Z"
        })
    }

    fn old_manifest(version: &str) -> Value {
        json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnEvaluation",
            "metadata": {"name": "pre-eval-app-pre-deploy-eval-2-48213", "namespace": "podtato-kubectl"},
            "spec": {
                "appName": "podtato-head",
                "appVersion": "0.1.1",
                "workloadVersion": "",
                "evaluationDefinition": "app-pre-deploy-eval-2",
                "checkType": "pre-eval",
                "retries": 5,
                "retryInterval": "10s",
                "failAction": "rollback"
            },
            "status": status()
        })
    }

    fn v1_of_old_manifest(version: &str) -> Value {
        let carried = json!({"spec.failAction": "rollback"}).to_string();
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1",
            "kind": "KeptnEvaluation",
            "metadata": {
                "name": "pre-eval-app-pre-deploy-eval-2-48213",
                "namespace": "podtato-kubectl",
                "annotations": {format!("{CARRY_ANNOTATION_PREFIX}{version}"): carried}
            },
            "spec": {
                "appName": "podtato-head",
                "appVersion": "0.1.1",
                "workloadVersion": "",
                "evaluationDefinition": "app-pre-deploy-eval-2",
                "checkType": "pre-eval",
                "retries": 5,
                "retryInterval": "10s"
            },
            "status": status()
        })
    }

    fn v1_manifest() -> Value {
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1",
            "kind": "KeptnEvaluation",
            "metadata": {"name": "post-eval-podtato-head-frontend-post-eval-51423", "namespace": "podtato-kubectl"},
            "spec": {
                "workload": "podtato-head-podtato-head-frontend",
                "workloadVersion": "0.1.0",
                "appName": "podtato-head",
                "evaluationDefinition": "frontend-post-eval",
                "checkType": "post-eval"
            },
            "status": {
                "retryCount": 1,
                "evaluationStatus": {
                    "available-cpus": {
                        "value": "4",
                        "status": "Succeeded",
                        "lastUpdated": "2024-05-02T08:15:00Z"
                    },
                    "not-measured": {"value": "", "status": "Failed", "message": "metric not found"}
                },
                "overallStatus": "Failed",
                "startTime": "2024-05-02T08:14:55Z"
            }
        })
    }

    #[test]
    fn v1alpha1_fail_action_is_carried() {
        old_to_v1_and_back::<v1alpha1::KeptnEvaluation>(
            old_manifest("v1alpha1"),
            v1_of_old_manifest("v1alpha1"),
        );
        v1_to_old_and_back::<v1alpha1::KeptnEvaluation>(v1_manifest());
    }

    #[test]
    fn v1alpha2_fail_action_is_carried() {
        old_to_v1_and_back::<v1alpha2::KeptnEvaluation>(
            old_manifest("v1alpha2"),
            v1_of_old_manifest("v1alpha2"),
        );
        v1_to_old_and_back::<v1alpha2::KeptnEvaluation>(v1_manifest());
    }

    #[test]
    fn v1alpha3_fail_action_is_carried() {
        old_to_v1_and_back::<v1alpha3::KeptnEvaluation>(
            old_manifest("v1alpha3"),
            v1_of_old_manifest("v1alpha3"),
        );
        v1_to_old_and_back::<v1alpha3::KeptnEvaluation>(v1_manifest());
    }

    #[test]
    fn v1beta1_moves_unchanged() {
        let mut old = old_manifest("v1beta1");
        old["spec"].as_object_mut().unwrap().remove("failAction");
        let mut v1 = old.clone();
        v1["apiVersion"] = json!("lifecycle.keptn.sh/v1");
        old_to_v1_and_back::<v1beta1::KeptnEvaluation>(old, v1);
        v1_to_old_and_back::<v1beta1::KeptnEvaluation>(v1_manifest());
    }

    #[test]
    fn last_updated_is_carried_at_older_versions() {
        let old = convert(v1_manifest(), "lifecycle.keptn.sh/v1beta1").unwrap();
        assert_eq!(
            old["status"]["evaluationStatus"]["available-cpus"],
            json!({"value": "4", "status": "Succeeded"})
        );
        let carried: Value = serde_json::from_str(
            old["metadata"]["annotations"][format!("{CARRY_ANNOTATION_PREFIX}v1")]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            carried,
            json!({LAST_UPDATED: {"available-cpus": "2024-05-02T08:15:00Z"}})
        );
    }
}
