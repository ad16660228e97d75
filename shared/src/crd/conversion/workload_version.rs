//! KeptnWorkloadVersion at v1alpha4 and v1beta1.
//!
//! v1alpha4 is where Keptn renamed KeptnWorkloadInstance; it kept that kind's fields, so its spec
//! is the v1alpha3 KeptnWorkload spec (no `metadata`) plus the version fields, and its status
//! lacks `appContextMetadata` and `deploymentStartTime`. v1beta1 has v1's fields. Neither has
//! Portcullis's `conditions` / `observedGeneration` (SPEC A19). Whatever a version lacks travels
//! in the carry annotation of the older object and is back when the object returns to v1.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::workload::METADATA;
use super::{Carry, Convert, Refusal, Spoke};
use crate::crd::KeptnWorkloadVersionStatus as HubStatus;

pub(super) fn spokes() -> Vec<Spoke> {
    vec![
        Spoke::of::<v1alpha4::KeptnWorkloadVersion>(),
        Spoke::of::<v1beta1::KeptnWorkloadVersion>(),
    ]
}

const APP_CONTEXT_METADATA: &str = "status.appContextMetadata";
const DEPLOYMENT_START_TIME: &str = "status.deploymentStartTime";
const CONDITIONS: &str = "status.conditions";
const OBSERVED_GENERATION: &str = "status.observedGeneration";

/// The v1 status fields that no older version has.
#[derive(Default)]
struct PortcullisStatus {
    conditions: Vec<Condition>,
    observed_generation: Option<i64>,
}

impl PortcullisStatus {
    fn keep(self, carry: &mut Carry) {
        carry.keep(CONDITIONS, &self.conditions);
        carry.keep(OBSERVED_GENERATION, &self.observed_generation);
    }

    fn restore(carry: &mut Carry) -> Self {
        PortcullisStatus {
            conditions: carry.restore(CONDITIONS).unwrap_or_default(),
            observed_generation: carry.restore(OBSERVED_GENERATION),
        }
    }
}

/// The v1 status fields v1alpha4 lacks but v1beta1 has.
#[derive(Default)]
struct V1beta1Status {
    app_context_metadata: BTreeMap<String, String>,
    deployment_start_time: Option<Time>,
}

/// `phases` (the fields every version has) and the rest, as the v1 status.
fn status_to_hub(
    phases: v1alpha4::KeptnWorkloadVersionStatus,
    beta: V1beta1Status,
    ours: PortcullisStatus,
) -> HubStatus {
    HubStatus {
        pre_deployment_status: phases.pre_deployment_status,
        deployment_status: phases.deployment_status,
        pre_deployment_evaluation_status: phases.pre_deployment_evaluation_status,
        post_deployment_evaluation_status: phases.post_deployment_evaluation_status,
        post_deployment_status: phases.post_deployment_status,
        pre_deployment_task_status: phases.pre_deployment_task_status,
        post_deployment_task_status: phases.post_deployment_task_status,
        pre_deployment_evaluation_task_status: phases.pre_deployment_evaluation_task_status,
        post_deployment_evaluation_task_status: phases.post_deployment_evaluation_task_status,
        start_time: phases.start_time,
        end_time: phases.end_time,
        current_phase: phases.current_phase,
        phase_trace_ids: phases.phase_trace_ids,
        status: phases.status,
        app_context_metadata: beta.app_context_metadata,
        deployment_start_time: beta.deployment_start_time,
        conditions: ours.conditions,
        observed_generation: ours.observed_generation,
    }
}

/// The inverse of [`status_to_hub`].
fn status_from_hub(
    hub: HubStatus,
) -> (
    v1alpha4::KeptnWorkloadVersionStatus,
    V1beta1Status,
    PortcullisStatus,
) {
    let phases = v1alpha4::KeptnWorkloadVersionStatus {
        pre_deployment_status: hub.pre_deployment_status,
        deployment_status: hub.deployment_status,
        pre_deployment_evaluation_status: hub.pre_deployment_evaluation_status,
        post_deployment_evaluation_status: hub.post_deployment_evaluation_status,
        post_deployment_status: hub.post_deployment_status,
        pre_deployment_task_status: hub.pre_deployment_task_status,
        post_deployment_task_status: hub.post_deployment_task_status,
        pre_deployment_evaluation_task_status: hub.pre_deployment_evaluation_task_status,
        post_deployment_evaluation_task_status: hub.post_deployment_evaluation_task_status,
        start_time: hub.start_time,
        end_time: hub.end_time,
        current_phase: hub.current_phase,
        phase_trace_ids: hub.phase_trace_ids,
        status: hub.status,
    };
    let beta = V1beta1Status {
        app_context_metadata: hub.app_context_metadata,
        deployment_start_time: hub.deployment_start_time,
    };
    let ours = PortcullisStatus {
        conditions: hub.conditions,
        observed_generation: hub.observed_generation,
    };
    (phases, beta, ours)
}

pub mod v1alpha4 {
    //! KeptnWorkloadVersion with KeptnWorkloadInstance's fields.

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::crd::{ItemStatus, KeptnState};

    #[derive(kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1alpha4",
        kind = "KeptnWorkloadVersion",
        doc = "One version of a KeptnWorkload (served for older manifests; v1 is stored).",
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
        /// Keptn embedded the v1alpha3 KeptnWorkload spec here, so it is that type.
        #[serde(flatten)]
        pub workload: super::super::workload::v1alpha3::KeptnWorkloadSpec,
        pub workload_name: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub previous_version: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub trace_id: BTreeMap<String, String>,
    }

    /// The phase states every version has; v1beta1 adds two fields to it.
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
        /// Keptn spells the json name with capital `IDs`.
        #[serde(
            default,
            rename = "phaseTraceIDs",
            skip_serializing_if = "BTreeMap::is_empty"
        )]
        pub phase_trace_ids: BTreeMap<String, BTreeMap<String, String>>,
        #[serde(default)]
        pub status: KeptnState,
    }

    impl Convert for KeptnWorkloadVersion {
        type Hub = crate::crd::KeptnWorkloadVersion;

        fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
            let s = self.spec;
            let metadata = carry.restore(METADATA).unwrap_or_default();
            let beta = V1beta1Status {
                app_context_metadata: carry.restore(APP_CONTEXT_METADATA).unwrap_or_default(),
                deployment_start_time: carry.restore(DEPLOYMENT_START_TIME),
            };
            let ours = PortcullisStatus::restore(carry);
            Ok(crate::crd::KeptnWorkloadVersion {
                metadata: self.metadata,
                spec: crate::crd::KeptnWorkloadVersionSpec {
                    workload: s.workload.into_hub(metadata),
                    workload_name: s.workload_name,
                    previous_version: s.previous_version,
                    trace_id: s.trace_id,
                },
                status: self.status.map(|st| status_to_hub(st, beta, ours)),
            })
        }

        fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
            let s = hub.spec;
            let (workload, metadata) =
                super::super::workload::v1alpha3::KeptnWorkloadSpec::from_hub(s.workload);
            carry.keep(METADATA, &metadata);
            let status = hub.status.map(|st| {
                let (phases, beta, ours) = status_from_hub(st);
                carry.keep(APP_CONTEXT_METADATA, &beta.app_context_metadata);
                carry.keep(DEPLOYMENT_START_TIME, &beta.deployment_start_time);
                ours.keep(carry);
                phases
            });
            Ok(KeptnWorkloadVersion {
                metadata: hub.metadata,
                spec: KeptnWorkloadVersionSpec {
                    workload,
                    workload_name: s.workload_name,
                    previous_version: s.previous_version,
                    trace_id: s.trace_id,
                },
                status,
            })
        }
    }
}

pub mod v1beta1 {
    //! KeptnWorkloadVersion with v1's fields, but for Portcullis's status additions.

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1beta1",
        kind = "KeptnWorkloadVersion",
        doc = "One version of a KeptnWorkload (served for older manifests; v1 is stored).",
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
    pub struct KeptnWorkloadVersionSpec {
        /// Same json fields as v1; one definition keeps the two schemas from drifting apart.
        #[serde(flatten)]
        pub version: crate::crd::KeptnWorkloadVersionSpec,
    }

    /// v1alpha4's status and the two fields v1beta1 added.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct KeptnWorkloadVersionStatus {
        #[serde(flatten)]
        pub phases: super::v1alpha4::KeptnWorkloadVersionStatus,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub app_context_metadata: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub deployment_start_time: Option<Time>,
    }

    impl Convert for KeptnWorkloadVersion {
        type Hub = crate::crd::KeptnWorkloadVersion;

        fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
            let ours = PortcullisStatus::restore(carry);
            Ok(crate::crd::KeptnWorkloadVersion {
                metadata: self.metadata,
                spec: self.spec.version,
                status: self.status.map(|st| {
                    let beta = V1beta1Status {
                        app_context_metadata: st.app_context_metadata,
                        deployment_start_time: st.deployment_start_time,
                    };
                    status_to_hub(st.phases, beta, ours)
                }),
            })
        }

        fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
            let status = hub.status.map(|st| {
                let (phases, beta, ours) = status_from_hub(st);
                ours.keep(carry);
                KeptnWorkloadVersionStatus {
                    phases,
                    app_context_metadata: beta.app_context_metadata,
                    deployment_start_time: beta.deployment_start_time,
                }
            });
            Ok(KeptnWorkloadVersion {
                metadata: hub.metadata,
                spec: KeptnWorkloadVersionSpec { version: hub.spec },
                status,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::super::{CARRY_ANNOTATION_PREFIX, convert};
    use super::{v1alpha4, v1beta1};

    fn normalised<T: Serialize + DeserializeOwned>(v: Value) -> Value {
        serde_json::to_value(serde_json::from_value::<T>(v).unwrap()).unwrap()
    }

    fn carried(obj: &Value, version: &str) -> Value {
        let text = &obj["metadata"]["annotations"][format!("{CARRY_ANNOTATION_PREFIX}{version}")];
        serde_json::from_str(text.as_str().unwrap()).unwrap()
    }

    /// A workload version midway through its deployment, with the fields every version has.
    fn kwv(version: &str) -> Value {
        json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnWorkloadVersion",
            "metadata": {"name": "podtato-head-podtato-head-entry-0.3.0", "namespace": "podtato-kubectl"},
            "spec": {
                "app": "podtato-head",
                "version": "0.3.0",
                "preDeploymentTasks": ["check-entry-service"],
                "postDeploymentEvaluations": ["response-time"],
                "resourceReference": {
                    "uid": "957f825e-4025-4ea8-ad22-9292877ff7eb",
                    "kind": "ReplicaSet",
                    "name": "podtato-head-entry-6fc8964846"
                },
                "workloadName": "podtato-head-podtato-head-entry",
                "previousVersion": "0.2.7",
                "traceId": {"traceparent": "00-ecb7fdc1f2c5e4d8bde7e6f0a7b5c3d2-1234567890abcdef-01"}
            },
            "status": {
                "preDeploymentStatus": "Succeeded",
                "deploymentStatus": "Progressing",
                "preDeploymentEvaluationStatus": "Succeeded",
                "postDeploymentEvaluationStatus": "Pending",
                "postDeploymentStatus": "Pending",
                "preDeploymentTaskStatus": [{
                    "definitionName": "check-entry-service",
                    "status": "Succeeded",
                    "name": "pre-check-entry-service-12345",
                    "startTime": "2024-01-10T10:00:00Z",
                    "endTime": "2024-01-10T10:00:30Z"
                }],
                "startTime": "2024-01-10T10:00:00Z",
                "currentPhase": "WorkloadDeploy",
                "phaseTraceIDs": {"WorkloadDeploy": {"traceparent": "00-aa-bb-01"}},
                "status": "Progressing"
            }
        })
    }

    /// The Portcullis status fields no older version holds.
    fn with_portcullis_status(mut v1: Value) -> Value {
        v1["status"]["conditions"] = json!([{
            "type": "Ready",
            "status": "False",
            "reason": "WorkloadDeploy",
            "message": "waiting for the ReplicaSet",
            "lastTransitionTime": "2024-01-10T10:01:00Z"
        }]);
        v1["status"]["observedGeneration"] = json!(2);
        v1
    }

    #[test]
    fn v1alpha4_converts_to_v1_and_back() {
        let old = kwv("v1alpha4");
        let v1 = convert(old.clone(), "lifecycle.keptn.sh/v1").unwrap();
        assert_eq!(v1, kwv("v1"));
        let back = convert(v1, "lifecycle.keptn.sh/v1alpha4").unwrap();
        assert_eq!(
            normalised::<v1alpha4::KeptnWorkloadVersion>(back),
            normalised::<v1alpha4::KeptnWorkloadVersion>(old)
        );
    }

    #[test]
    fn v1alpha4_carries_what_it_cannot_hold() {
        let mut v1 = with_portcullis_status(kwv("v1"));
        v1["spec"]["metadata"] = json!({"commit-id": "1234"});
        v1["status"]["appContextMetadata"] = json!({"stage": "dev"});
        v1["status"]["deploymentStartTime"] = json!("2024-01-10T10:00:45Z");
        let old = convert(v1.clone(), "lifecycle.keptn.sh/v1alpha4").unwrap();
        assert_eq!(
            normalised::<v1alpha4::KeptnWorkloadVersion>(old.clone())["spec"],
            kwv("v1alpha4")["spec"]
        );
        let c = carried(&old, "v1");
        assert_eq!(c["spec.metadata"], json!({"commit-id": "1234"}));
        assert_eq!(c["status.appContextMetadata"], json!({"stage": "dev"}));
        assert_eq!(
            c["status.deploymentStartTime"],
            json!("2024-01-10T10:00:45Z")
        );
        assert_eq!(c["status.conditions"][0]["type"], json!("Ready"));
        assert_eq!(c["status.observedGeneration"], json!(2));
        let back = convert(old, "lifecycle.keptn.sh/v1").unwrap();
        assert_eq!(
            normalised::<crate::crd::KeptnWorkloadVersion>(back),
            normalised::<crate::crd::KeptnWorkloadVersion>(v1)
        );
    }

    #[test]
    fn v1beta1_converts_to_v1_and_back() {
        let mut old = kwv("v1beta1");
        old["spec"]["metadata"] = json!({"commit-id": "1234"});
        old["status"]["appContextMetadata"] = json!({"stage": "dev"});
        old["status"]["deploymentStartTime"] = json!("2024-01-10T10:00:45Z");
        let v1 = convert(old.clone(), "lifecycle.keptn.sh/v1").unwrap();
        let mut expected = old.clone();
        expected["apiVersion"] = json!("lifecycle.keptn.sh/v1");
        assert_eq!(v1, expected);
        let back = convert(v1, "lifecycle.keptn.sh/v1beta1").unwrap();
        assert_eq!(
            normalised::<v1beta1::KeptnWorkloadVersion>(back),
            normalised::<v1beta1::KeptnWorkloadVersion>(old)
        );
    }

    #[test]
    fn v1beta1_carries_portcullis_status() {
        let v1 = with_portcullis_status(kwv("v1"));
        let old = convert(v1.clone(), "lifecycle.keptn.sh/v1beta1").unwrap();
        assert_eq!(old["status"].get("conditions"), None);
        assert_eq!(old["status"].get("observedGeneration"), None);
        let c = carried(&old, "v1");
        assert_eq!(c["status.observedGeneration"], json!(2));
        let back = convert(old, "lifecycle.keptn.sh/v1").unwrap();
        assert_eq!(
            normalised::<crate::crd::KeptnWorkloadVersion>(back),
            normalised::<crate::crd::KeptnWorkloadVersion>(v1)
        );
    }

    #[test]
    fn without_status_nothing_is_carried() {
        let mut old = kwv("v1alpha4");
        old.as_object_mut().unwrap().remove("status");
        let v1 = convert(old.clone(), "lifecycle.keptn.sh/v1").unwrap();
        assert_eq!(v1.get("status"), None);
        let back = convert(v1, "lifecycle.keptn.sh/v1alpha4").unwrap();
        assert_eq!(back["metadata"].get("annotations"), None);
        assert_eq!(
            normalised::<v1alpha4::KeptnWorkloadVersion>(back),
            normalised::<v1alpha4::KeptnWorkloadVersion>(old)
        );
    }
}
