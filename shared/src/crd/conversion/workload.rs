//! KeptnWorkload at v1alpha1, v1alpha2, v1alpha3 and v1beta1.
//!
//! Up to v1alpha3 a workload had no `metadata` map (added at v1beta1); it travels in the carry
//! annotation of the older object so that it is back when the object returns to v1. Every other
//! field has the same name and meaning at every version.

use std::collections::BTreeMap;

use super::{Carry, Convert, Refusal, Spoke};

pub(super) fn spokes() -> Vec<Spoke> {
    vec![
        Spoke::of::<v1alpha1::KeptnWorkload>(),
        Spoke::of::<v1alpha2::KeptnWorkload>(),
        Spoke::of::<v1alpha3::KeptnWorkload>(),
        Spoke::of::<v1beta1::KeptnWorkload>(),
    ]
}

/// Where v1 keeps the field the alpha versions lack (also in KeptnWorkloadVersion's spec).
pub(super) const METADATA: &str = "spec.metadata";

/// v1alpha1, v1alpha2 and v1alpha3 have the same fields: v1's without `metadata`.
macro_rules! workload_without_metadata {
    ($version:literal) => {
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        use super::*;
        pub use crate::crd::{KeptnWorkloadStatus, ResourceReference};

        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema,
        )]
        #[kube(
                    group = "lifecycle.keptn.sh",
                    version = $version,
                    kind = "KeptnWorkload",
                    doc = "A workload of a KeptnApp (served for older manifests; v1 is stored).",
                    namespaced,
                    status = "KeptnWorkloadStatus",
                    derive = "PartialEq",
                    printcolumn(name = "AppName", type_ = "string", json_path = ".spec.app"),
                    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version")
                )]
        #[serde(rename_all = "camelCase")]
        pub struct KeptnWorkloadSpec {
            pub app: String,
            pub version: String,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub pre_deployment_tasks: Vec<String>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub post_deployment_tasks: Vec<String>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub pre_deployment_evaluations: Vec<String>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub post_deployment_evaluations: Vec<String>,
            pub resource_reference: ResourceReference,
        }

        impl KeptnWorkloadSpec {
            /// The v1 spec, with the `metadata` this version cannot hold.
            pub(in super::super) fn into_hub(
                self,
                metadata: BTreeMap<String, String>,
            ) -> crate::crd::KeptnWorkloadSpec {
                crate::crd::KeptnWorkloadSpec {
                    app: self.app,
                    version: self.version,
                    pre_deployment_tasks: self.pre_deployment_tasks,
                    post_deployment_tasks: self.post_deployment_tasks,
                    pre_deployment_evaluations: self.pre_deployment_evaluations,
                    post_deployment_evaluations: self.post_deployment_evaluations,
                    resource_reference: self.resource_reference,
                    metadata,
                }
            }

            /// This version's spec and the v1 `metadata` it leaves out.
            pub(in super::super) fn from_hub(
                hub: crate::crd::KeptnWorkloadSpec,
            ) -> (Self, BTreeMap<String, String>) {
                let spec = KeptnWorkloadSpec {
                    app: hub.app,
                    version: hub.version,
                    pre_deployment_tasks: hub.pre_deployment_tasks,
                    post_deployment_tasks: hub.post_deployment_tasks,
                    pre_deployment_evaluations: hub.pre_deployment_evaluations,
                    post_deployment_evaluations: hub.post_deployment_evaluations,
                    resource_reference: hub.resource_reference,
                };
                (spec, hub.metadata)
            }
        }

        impl Convert for KeptnWorkload {
            type Hub = crate::crd::KeptnWorkload;

            fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
                let metadata = carry.restore(METADATA).unwrap_or_default();
                Ok(crate::crd::KeptnWorkload {
                    metadata: self.metadata,
                    spec: self.spec.into_hub(metadata),
                    status: self.status,
                })
            }

            fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
                let (spec, metadata) = KeptnWorkloadSpec::from_hub(hub.spec);
                carry.keep(METADATA, &metadata);
                Ok(KeptnWorkload {
                    metadata: hub.metadata,
                    spec,
                    status: hub.status,
                })
            }
        }
    };
}

pub mod v1alpha1 {
    //! KeptnWorkload without `metadata`.
    workload_without_metadata!("v1alpha1");
}

pub mod v1alpha2 {
    //! KeptnWorkload without `metadata` (as v1alpha1).
    workload_without_metadata!("v1alpha2");
}

pub mod v1alpha3 {
    //! KeptnWorkload without `metadata` (as v1alpha1).
    workload_without_metadata!("v1alpha3");
}

pub mod v1beta1 {
    //! KeptnWorkload as at v1.

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    pub use crate::crd::KeptnWorkloadStatus;

    #[derive(kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1beta1",
        kind = "KeptnWorkload",
        doc = "A workload of a KeptnApp (served for older manifests; v1 is stored).",
        namespaced,
        status = "KeptnWorkloadStatus",
        derive = "PartialEq",
        printcolumn(name = "AppName", type_ = "string", json_path = ".spec.app"),
        printcolumn(name = "Version", type_ = "string", json_path = ".spec.version")
    )]
    pub struct KeptnWorkloadSpec {
        /// Same json fields as v1; one definition keeps the two schemas from drifting apart.
        #[serde(flatten)]
        pub workload: crate::crd::KeptnWorkloadSpec,
    }

    impl Convert for KeptnWorkload {
        type Hub = crate::crd::KeptnWorkload;

        fn to_hub(self, _: &mut Carry) -> Result<Self::Hub, Refusal> {
            Ok(crate::crd::KeptnWorkload {
                metadata: self.metadata,
                spec: self.spec.workload,
                status: self.status,
            })
        }

        fn from_hub(hub: Self::Hub, _: &mut Carry) -> Result<Self, Refusal> {
            Ok(KeptnWorkload {
                metadata: hub.metadata,
                spec: KeptnWorkloadSpec { workload: hub.spec },
                status: hub.status,
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
    use super::{v1alpha1, v1alpha2, v1alpha3, v1beta1};

    fn normalised<T: Serialize + DeserializeOwned>(v: Value) -> Value {
        serde_json::to_value(serde_json::from_value::<T>(v).unwrap()).unwrap()
    }

    /// A workload as the pod webhook writes it, at `version`, without `metadata`.
    fn workload(version: &str) -> Value {
        json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnWorkload",
            "metadata": {"name": "podtato-head-podtato-head-entry", "namespace": "podtato-kubectl"},
            "spec": {
                "app": "podtato-head",
                "version": "0.3.0",
                "preDeploymentTasks": ["check-entry-service"],
                "postDeploymentTasks": ["notify"],
                "preDeploymentEvaluations": ["available-cpus"],
                "postDeploymentEvaluations": ["response-time"],
                "resourceReference": {
                    "uid": "957f825e-4025-4ea8-ad22-9292877ff7eb",
                    "kind": "ReplicaSet",
                    "name": "podtato-head-entry-6fc8964846"
                }
            },
            "status": {"currentVersion": "0.3.0"}
        })
    }

    /// `old` (without `metadata`) converts to the same object at v1, and back unchanged.
    fn round_trip<T: Serialize + DeserializeOwned>(version: &str) {
        let old = workload(version);
        let v1 = convert(old.clone(), "lifecycle.keptn.sh/v1").unwrap();
        assert_eq!(v1, workload("v1"));
        let back = convert(v1, &format!("lifecycle.keptn.sh/{version}")).unwrap();
        assert_eq!(normalised::<T>(back), normalised::<T>(old));
    }

    /// v1's `metadata` survives v1 -> `version` -> v1 through the carry annotation.
    fn metadata_is_carried<T: Serialize + DeserializeOwned>(version: &str) {
        let mut v1 = workload("v1");
        v1["spec"]["metadata"] = json!({"commit-id": "1234", "author": "me"});
        let old = convert(v1.clone(), &format!("lifecycle.keptn.sh/{version}")).unwrap();
        assert_eq!(old["spec"].get("metadata"), None);
        let carried = &old["metadata"]["annotations"][format!("{CARRY_ANNOTATION_PREFIX}v1")];
        let carried: Value = serde_json::from_str(carried.as_str().unwrap()).unwrap();
        assert_eq!(
            carried,
            json!({"spec.metadata": {"author": "me", "commit-id": "1234"}})
        );
        normalised::<T>(old.clone());
        let back = convert(old, "lifecycle.keptn.sh/v1").unwrap();
        assert_eq!(
            normalised::<crate::crd::KeptnWorkload>(back),
            normalised::<crate::crd::KeptnWorkload>(v1)
        );
    }

    #[test]
    fn v1alpha1_round_trips() {
        round_trip::<v1alpha1::KeptnWorkload>("v1alpha1");
        metadata_is_carried::<v1alpha1::KeptnWorkload>("v1alpha1");
    }

    #[test]
    fn v1alpha2_round_trips() {
        round_trip::<v1alpha2::KeptnWorkload>("v1alpha2");
        metadata_is_carried::<v1alpha2::KeptnWorkload>("v1alpha2");
    }

    #[test]
    fn v1alpha3_round_trips() {
        round_trip::<v1alpha3::KeptnWorkload>("v1alpha3");
        metadata_is_carried::<v1alpha3::KeptnWorkload>("v1alpha3");
    }

    #[test]
    fn v1beta1_holds_metadata_itself() {
        let mut old = workload("v1beta1");
        old["spec"]["metadata"] = json!({"commit-id": "1234"});
        let v1 = convert(old.clone(), "lifecycle.keptn.sh/v1").unwrap();
        let mut expected = workload("v1");
        expected["spec"]["metadata"] = json!({"commit-id": "1234"});
        assert_eq!(v1, expected);
        let back = convert(v1, "lifecycle.keptn.sh/v1beta1").unwrap();
        assert_eq!(
            normalised::<v1beta1::KeptnWorkload>(back),
            normalised::<v1beta1::KeptnWorkload>(old)
        );
    }
}
