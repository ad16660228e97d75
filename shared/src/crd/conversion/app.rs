//! KeptnApp at v1alpha1, v1alpha2, v1alpha3 and v1beta1.
//!
//! Up to v1alpha3 an app listed its own checks; from v1beta1 on they live in the
//! KeptnAppContext of the same name, which a conversion cannot create. The lists travel in the
//! carry annotation of the v1 object (so they read back at the older versions) and are not run,
//! as with Keptn (B §1.12); README "Moving from Keptn" points to KeptnAppContext.

use super::{Carry, Convert, Refusal, Spoke};
use crate::crd::common::default_revision;

pub(super) fn spokes() -> Vec<Spoke> {
    vec![
        Spoke::of::<v1alpha1::KeptnApp>(),
        Spoke::of::<v1alpha2::KeptnApp>(),
        Spoke::of::<v1alpha3::KeptnApp>(),
        Spoke::of::<v1beta1::KeptnApp>(),
    ]
}

/// The per-app check lists of v1alpha1–v1alpha3, in spec order.
type CheckLists = [Vec<String>; 4];

const CHECK_FIELDS: [&str; 4] = [
    "spec.preDeploymentTasks",
    "spec.postDeploymentTasks",
    "spec.preDeploymentEvaluations",
    "spec.postDeploymentEvaluations",
];

fn keep_checks(carry: &mut Carry, lists: CheckLists) {
    for (field, list) in CHECK_FIELDS.iter().zip(lists) {
        carry.keep(field, &list);
    }
}

fn restore_checks(carry: &mut Carry) -> CheckLists {
    CHECK_FIELDS.map(|field| carry.restore(field).unwrap_or_default())
}

pub mod v1alpha1 {
    //! KeptnApp before `revision` existed.

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    pub use crate::crd::{KeptnAppStatus, KeptnWorkloadRef};

    #[derive(kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1alpha1",
        kind = "KeptnApp",
        doc = "A deployable application (served for older manifests; v1 is stored).",
        namespaced,
        status = "KeptnAppStatus",
        derive = "PartialEq"
    )]
    #[serde(rename_all = "camelCase")]
    pub struct KeptnAppSpec {
        pub version: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub workloads: Vec<KeptnWorkloadRef>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub pre_deployment_tasks: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub post_deployment_tasks: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub pre_deployment_evaluations: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub post_deployment_evaluations: Vec<String>,
    }

    impl Convert for KeptnApp {
        type Hub = crate::crd::KeptnApp;

        fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
            let s = self.spec;
            keep_checks(
                carry,
                [
                    s.pre_deployment_tasks,
                    s.post_deployment_tasks,
                    s.pre_deployment_evaluations,
                    s.post_deployment_evaluations,
                ],
            );
            Ok(crate::crd::KeptnApp {
                metadata: self.metadata,
                spec: crate::crd::KeptnAppSpec {
                    version: s.version,
                    revision: carry
                        .restore("spec.revision")
                        .unwrap_or_else(default_revision),
                    workloads: s.workloads,
                },
                status: self.status,
            })
        }

        fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
            let s = hub.spec;
            if s.revision != default_revision() {
                carry.keep("spec.revision", &s.revision);
            }
            let [pre_t, post_t, pre_e, post_e] = restore_checks(carry);
            Ok(KeptnApp {
                metadata: hub.metadata,
                spec: KeptnAppSpec {
                    version: s.version,
                    workloads: s.workloads,
                    pre_deployment_tasks: pre_t,
                    post_deployment_tasks: post_t,
                    pre_deployment_evaluations: pre_e,
                    post_deployment_evaluations: post_e,
                },
                status: hub.status,
            })
        }
    }
}

/// v1alpha2 and v1alpha3 have the same fields: v1alpha1's and `revision`.
macro_rules! app_with_revision {
    ($version:literal) => {
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        use super::*;
        pub use crate::crd::{KeptnAppStatus, KeptnWorkloadRef};

        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema,
        )]
        #[kube(
                    group = "lifecycle.keptn.sh",
                    version = $version,
                    kind = "KeptnApp",
                    doc = "A deployable application (served for older manifests; v1 is stored).",
                    namespaced,
                    status = "KeptnAppStatus",
                    derive = "PartialEq"
                )]
        #[serde(rename_all = "camelCase")]
        pub struct KeptnAppSpec {
            pub version: String,
            #[serde(default = "default_revision")]
            #[schemars(range(min = 0))]
            pub revision: i64,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub workloads: Vec<KeptnWorkloadRef>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub pre_deployment_tasks: Vec<String>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub post_deployment_tasks: Vec<String>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub pre_deployment_evaluations: Vec<String>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub post_deployment_evaluations: Vec<String>,
        }

        impl Convert for KeptnApp {
            type Hub = crate::crd::KeptnApp;

            fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
                let s = self.spec;
                keep_checks(
                    carry,
                    [
                        s.pre_deployment_tasks,
                        s.post_deployment_tasks,
                        s.pre_deployment_evaluations,
                        s.post_deployment_evaluations,
                    ],
                );
                Ok(crate::crd::KeptnApp {
                    metadata: self.metadata,
                    spec: crate::crd::KeptnAppSpec {
                        version: s.version,
                        revision: s.revision,
                        workloads: s.workloads,
                    },
                    status: self.status,
                })
            }

            fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
                let s = hub.spec;
                let [pre_t, post_t, pre_e, post_e] = restore_checks(carry);
                Ok(KeptnApp {
                    metadata: hub.metadata,
                    spec: KeptnAppSpec {
                        version: s.version,
                        revision: s.revision,
                        workloads: s.workloads,
                        pre_deployment_tasks: pre_t,
                        post_deployment_tasks: post_t,
                        pre_deployment_evaluations: pre_e,
                        post_deployment_evaluations: post_e,
                    },
                    status: hub.status,
                })
            }
        }
    };
}

pub mod v1alpha2 {
    //! KeptnApp with `revision` and its own check lists.
    app_with_revision!("v1alpha2");
}

pub mod v1alpha3 {
    //! KeptnApp with `revision` and its own check lists (as v1alpha2).
    app_with_revision!("v1alpha3");
}

pub mod v1beta1 {
    //! KeptnApp as at v1: the checks moved to KeptnAppContext.

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    pub use crate::crd::KeptnAppStatus;

    #[derive(kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1beta1",
        kind = "KeptnApp",
        doc = "A deployable application (served for older manifests; v1 is stored).",
        namespaced,
        status = "KeptnAppStatus",
        derive = "PartialEq"
    )]
    pub struct KeptnAppSpec {
        /// Same json fields as v1; one definition keeps the two schemas from drifting apart.
        #[serde(flatten)]
        pub app: crate::crd::KeptnAppSpec,
    }

    impl Convert for KeptnApp {
        type Hub = crate::crd::KeptnApp;

        fn to_hub(self, _: &mut Carry) -> Result<Self::Hub, Refusal> {
            Ok(crate::crd::KeptnApp {
                metadata: self.metadata,
                spec: self.spec.app,
                status: self.status,
            })
        }

        fn from_hub(hub: Self::Hub, _: &mut Carry) -> Result<Self, Refusal> {
            Ok(KeptnApp {
                metadata: hub.metadata,
                spec: KeptnAppSpec { app: hub.spec },
                status: hub.status,
            })
        }
    }
}
