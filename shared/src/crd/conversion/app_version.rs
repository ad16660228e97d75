//! KeptnAppVersion at v1alpha1, v1alpha2, v1alpha3 and v1beta1.
//!
//! At every version Keptn builds this spec from the KeptnApp spec of the same version plus
//! `appName`, `previousVersion` and `traceId`; from v1beta1 on the KeptnAppContext fields join
//! it. The types here do the same, so the older KeptnApp specs of `super::app` are reused.
//!
//! The alphas' check lists are the ones v1 keeps in its context part. What v1 has and they
//! lack (promotion, context metadata, span links) and Portcullis' status conditions travel in
//! the carry annotation. v1alpha1's task and evaluation status items only had other field names.
//! States are copied verbatim, as Keptn did (its alphas wrote `Cancelled` where v1 writes
//! `Deprecated`; the operator only writes v1, so there is nothing to translate).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::{Carry, Convert, Refusal, Spoke};
use crate::crd::common::{ItemStatus, KeptnState, default_revision};
use crate::crd::{KeptnAppContextSpec, KeptnAppSpec};

pub(super) fn spokes() -> Vec<Spoke> {
    vec![
        Spoke::of::<v1alpha1::KeptnAppVersion>(),
        Spoke::of::<v1alpha2::KeptnAppVersion>(),
        Spoke::of::<v1alpha3::KeptnAppVersion>(),
        Spoke::of::<v1beta1::KeptnAppVersion>(),
    ]
}

type HubSpec = crate::crd::KeptnAppVersionSpec;
type HubStatus = crate::crd::KeptnAppVersionStatus;

const REVISION: &str = "spec.revision";
const PROMOTION_TASKS: &str = "spec.promotionTasks";
const METADATA: &str = "spec.metadata";
const SPAN_LINKS: &str = "spec.spanLinks";
const PROMOTION_STATUS: &str = "status.promotionStatus";
const PROMOTION_TASK_STATUS: &str = "status.promotionTaskStatus";
const CONDITIONS: &str = "status.conditions";
const OBSERVED_GENERATION: &str = "status.observedGeneration";

/// Pre/post deployment tasks, then pre/post deployment evaluations.
type CheckLists = [Vec<String>; 4];

/// An older KeptnApp spec as embedded in a KeptnAppVersion spec: split into v1's app part and
/// the check lists v1 keeps in the context part, and joined back.
trait EmbeddedApp: Sized {
    fn split(self, carry: &mut Carry) -> (KeptnAppSpec, CheckLists);
    fn join(app: KeptnAppSpec, checks: CheckLists, carry: &mut Carry) -> Self;
}

impl EmbeddedApp for super::app::v1alpha1::KeptnAppSpec {
    fn split(self, carry: &mut Carry) -> (KeptnAppSpec, CheckLists) {
        let app = KeptnAppSpec {
            version: self.version,
            revision: carry.restore(REVISION).unwrap_or_else(default_revision),
            workloads: self.workloads,
        };
        let checks = [
            self.pre_deployment_tasks,
            self.post_deployment_tasks,
            self.pre_deployment_evaluations,
            self.post_deployment_evaluations,
        ];
        (app, checks)
    }

    fn join(
        app: KeptnAppSpec,
        [pre_t, post_t, pre_e, post_e]: CheckLists,
        carry: &mut Carry,
    ) -> Self {
        // No revision at v1alpha1: only a bumped one needs to come back.
        if app.revision != default_revision() {
            carry.keep(REVISION, &app.revision);
        }
        Self {
            version: app.version,
            workloads: app.workloads,
            pre_deployment_tasks: pre_t,
            post_deployment_tasks: post_t,
            pre_deployment_evaluations: pre_e,
            post_deployment_evaluations: post_e,
        }
    }
}

/// v1alpha2's and v1alpha3's KeptnApp specs hold every field of v1's app part.
macro_rules! embedded_app_with_revision {
    ($($app:ty),+) => {$(
        impl EmbeddedApp for $app {
            fn split(self, _: &mut Carry) -> (KeptnAppSpec, CheckLists) {
                let app = KeptnAppSpec {
                    version: self.version,
                    revision: self.revision,
                    workloads: self.workloads,
                };
                let checks = [
                    self.pre_deployment_tasks,
                    self.post_deployment_tasks,
                    self.pre_deployment_evaluations,
                    self.post_deployment_evaluations,
                ];
                (app, checks)
            }

            fn join(
                app: KeptnAppSpec,
                [pre_t, post_t, pre_e, post_e]: CheckLists,
                _: &mut Carry,
            ) -> Self {
                Self {
                    version: app.version,
                    revision: app.revision,
                    workloads: app.workloads,
                    pre_deployment_tasks: pre_t,
                    post_deployment_tasks: post_t,
                    pre_deployment_evaluations: pre_e,
                    post_deployment_evaluations: post_e,
                }
            }
        }
    )+};
}

embedded_app_with_revision!(
    super::app::v1alpha2::KeptnAppSpec,
    super::app::v1alpha3::KeptnAppSpec
);

/// v1's context part from the alphas' check lists and what was carried.
fn context_to_hub(
    [pre_t, post_t, pre_e, post_e]: CheckLists,
    carry: &mut Carry,
) -> KeptnAppContextSpec {
    KeptnAppContextSpec {
        pre_deployment_tasks: pre_t,
        post_deployment_tasks: post_t,
        pre_deployment_evaluations: pre_e,
        post_deployment_evaluations: post_e,
        promotion_tasks: carry.restore(PROMOTION_TASKS).unwrap_or_default(),
        metadata: carry.restore(METADATA).unwrap_or_default(),
        span_links: carry.restore(SPAN_LINKS).unwrap_or_default(),
    }
}

/// The alphas' check lists; the rest of the context part is carried.
fn context_from_hub(context: KeptnAppContextSpec, carry: &mut Carry) -> CheckLists {
    carry.keep(PROMOTION_TASKS, &context.promotion_tasks);
    carry.keep(METADATA, &context.metadata);
    carry.keep(SPAN_LINKS, &context.span_links);
    [
        context.pre_deployment_tasks,
        context.post_deployment_tasks,
        context.pre_deployment_evaluations,
        context.post_deployment_evaluations,
    ]
}

/// Keeps a state unless it is the default; wrapped in a one-item list so that an empty string
/// (which the carry would read as absent) comes back as written.
fn keep_state(carry: &mut Carry, field: &str, state: &KeptnState) {
    if *state != KeptnState::default() {
        carry.keep(field, &[state]);
    }
}

fn restore_state(carry: &mut Carry, field: &str) -> KeptnState {
    carry
        .restore::<[KeptnState; 1]>(field)
        .map(|[state]| state)
        .unwrap_or_default()
}

/// Portcullis' status additions (SPEC A19), which no older version has.
fn keep_conditions(carry: &mut Carry, status: &HubStatus) {
    carry.keep(CONDITIONS, &status.conditions);
    carry.keep(OBSERVED_GENERATION, &status.observed_generation);
}

fn restore_conditions(carry: &mut Carry) -> (Vec<Condition>, Option<i64>) {
    (
        carry.restore(CONDITIONS).unwrap_or_default(),
        carry.restore(OBSERVED_GENERATION),
    )
}

fn items<A: Into<B>, B>(list: Vec<A>) -> Vec<B> {
    list.into_iter().map(Into::into).collect()
}

/// The three alphas: `$app` is the KeptnApp spec of that version, `$task` and `$evaluation`
/// the status items of its task and evaluation lists.
macro_rules! alpha {
    ($version:literal, $app:ty, $task:ty, $evaluation:ty) => {
        use std::collections::BTreeMap;

        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        use super::*;
        pub use crate::crd::WorkloadStatus;

        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema,
        )]
        #[kube(
            group = "lifecycle.keptn.sh",
            version = $version,
            kind = "KeptnAppVersion",
            doc = "One version of a KeptnApp in its phases (served for older manifests; v1 is stored).",
            namespaced,
            status = "KeptnAppVersionStatus",
            derive = "PartialEq",
            shortname = "kav",
            printcolumn(name = "AppName", type_ = "string", json_path = ".spec.appName"),
            printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
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
                name = "WorkloadOverallStatus",
                type_ = "string",
                json_path = ".status.workloadOverallStatus",
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
        pub struct KeptnAppVersionSpec {
            /// The KeptnApp spec of this version, inline.
            #[serde(flatten)]
            pub app: $app,
            pub app_name: String,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub previous_version: String,
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub trace_id: BTreeMap<String, String>,
        }

        /// State of the phases; this version has no promotion phase.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct KeptnAppVersionStatus {
            #[serde(default)]
            pub pre_deployment_status: KeptnState,
            #[serde(default)]
            pub post_deployment_status: KeptnState,
            #[serde(default)]
            pub pre_deployment_evaluation_status: KeptnState,
            #[serde(default)]
            pub post_deployment_evaluation_status: KeptnState,
            #[serde(default)]
            pub workload_overall_status: KeptnState,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub workload_status: Vec<WorkloadStatus>,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub current_phase: String,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub pre_deployment_task_status: Vec<$task>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub post_deployment_task_status: Vec<$task>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub pre_deployment_evaluation_task_status: Vec<$evaluation>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub post_deployment_evaluation_task_status: Vec<$evaluation>,
            #[serde(
                default,
                rename = "phaseTraceIDs",
                skip_serializing_if = "BTreeMap::is_empty"
            )]
            pub phase_trace_ids: BTreeMap<String, BTreeMap<String, String>>,
            #[serde(default)]
            pub status: KeptnState,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub start_time: Option<Time>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub end_time: Option<Time>,
        }

        impl KeptnAppVersionStatus {
            fn into_hub(self, carry: &mut Carry) -> HubStatus {
                let (conditions, observed_generation) = restore_conditions(carry);
                HubStatus {
                    pre_deployment_status: self.pre_deployment_status,
                    post_deployment_status: self.post_deployment_status,
                    promotion_status: restore_state(carry, PROMOTION_STATUS),
                    pre_deployment_evaluation_status: self.pre_deployment_evaluation_status,
                    post_deployment_evaluation_status: self.post_deployment_evaluation_status,
                    workload_overall_status: self.workload_overall_status,
                    workload_status: self.workload_status,
                    current_phase: self.current_phase,
                    pre_deployment_task_status: items(self.pre_deployment_task_status),
                    post_deployment_task_status: items(self.post_deployment_task_status),
                    promotion_task_status: carry
                        .restore(PROMOTION_TASK_STATUS)
                        .unwrap_or_default(),
                    pre_deployment_evaluation_task_status: items(
                        self.pre_deployment_evaluation_task_status,
                    ),
                    post_deployment_evaluation_task_status: items(
                        self.post_deployment_evaluation_task_status,
                    ),
                    phase_trace_ids: self.phase_trace_ids,
                    status: self.status,
                    start_time: self.start_time,
                    end_time: self.end_time,
                    conditions,
                    observed_generation,
                }
            }

            fn from_hub(hub: HubStatus, carry: &mut Carry) -> Self {
                keep_conditions(carry, &hub);
                keep_state(carry, PROMOTION_STATUS, &hub.promotion_status);
                carry.keep(PROMOTION_TASK_STATUS, &hub.promotion_task_status);
                KeptnAppVersionStatus {
                    pre_deployment_status: hub.pre_deployment_status,
                    post_deployment_status: hub.post_deployment_status,
                    pre_deployment_evaluation_status: hub.pre_deployment_evaluation_status,
                    post_deployment_evaluation_status: hub.post_deployment_evaluation_status,
                    workload_overall_status: hub.workload_overall_status,
                    workload_status: hub.workload_status,
                    current_phase: hub.current_phase,
                    pre_deployment_task_status: items(hub.pre_deployment_task_status),
                    post_deployment_task_status: items(hub.post_deployment_task_status),
                    pre_deployment_evaluation_task_status: items(
                        hub.pre_deployment_evaluation_task_status,
                    ),
                    post_deployment_evaluation_task_status: items(
                        hub.post_deployment_evaluation_task_status,
                    ),
                    phase_trace_ids: hub.phase_trace_ids,
                    status: hub.status,
                    start_time: hub.start_time,
                    end_time: hub.end_time,
                }
            }
        }

        impl Convert for KeptnAppVersion {
            type Hub = crate::crd::KeptnAppVersion;

            fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
                let s = self.spec;
                let (app, checks) = s.app.split(carry);
                Ok(crate::crd::KeptnAppVersion {
                    metadata: self.metadata,
                    spec: HubSpec {
                        context: context_to_hub(checks, carry),
                        app,
                        app_name: s.app_name,
                        previous_version: s.previous_version,
                        trace_id: s.trace_id,
                    },
                    status: self.status.map(|status| status.into_hub(carry)),
                })
            }

            fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
                let s = hub.spec;
                let checks = context_from_hub(s.context, carry);
                Ok(KeptnAppVersion {
                    metadata: hub.metadata,
                    spec: KeptnAppVersionSpec {
                        app: EmbeddedApp::join(s.app, checks, carry),
                        app_name: s.app_name,
                        previous_version: s.previous_version,
                        trace_id: s.trace_id,
                    },
                    status: hub
                        .status
                        .map(|status| KeptnAppVersionStatus::from_hub(status, carry)),
                })
            }
        }
    };
}

pub mod v1alpha1 {
    //! KeptnAppVersion before `revision`, with task and evaluation status items of their own.

    alpha!(
        "v1alpha1",
        crate::crd::conversion::app::v1alpha1::KeptnAppSpec,
        TaskStatus,
        EvaluationStatus
    );

    /// State of one task of a phase.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TaskStatus {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub task_definition_name: String,
        #[serde(default)]
        pub status: KeptnState,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub task_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub start_time: Option<Time>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub end_time: Option<Time>,
    }

    /// State of one evaluation of a phase.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct EvaluationStatus {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub evaluation_definition_name: String,
        #[serde(default)]
        pub status: KeptnState,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub evaluation_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub start_time: Option<Time>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub end_time: Option<Time>,
    }

    impl From<TaskStatus> for ItemStatus {
        fn from(t: TaskStatus) -> Self {
            ItemStatus {
                definition_name: t.task_definition_name,
                status: t.status,
                name: t.task_name,
                start_time: t.start_time,
                end_time: t.end_time,
            }
        }
    }

    impl From<ItemStatus> for TaskStatus {
        fn from(i: ItemStatus) -> Self {
            TaskStatus {
                task_definition_name: i.definition_name,
                status: i.status,
                task_name: i.name,
                start_time: i.start_time,
                end_time: i.end_time,
            }
        }
    }

    impl From<EvaluationStatus> for ItemStatus {
        fn from(e: EvaluationStatus) -> Self {
            ItemStatus {
                definition_name: e.evaluation_definition_name,
                status: e.status,
                name: e.evaluation_name,
                start_time: e.start_time,
                end_time: e.end_time,
            }
        }
    }

    impl From<ItemStatus> for EvaluationStatus {
        fn from(i: ItemStatus) -> Self {
            EvaluationStatus {
                evaluation_definition_name: i.definition_name,
                status: i.status,
                evaluation_name: i.name,
                start_time: i.start_time,
                end_time: i.end_time,
            }
        }
    }
}

pub mod v1alpha2 {
    //! KeptnAppVersion with `revision` and v1's status items, without promotion.
    alpha!(
        "v1alpha2",
        crate::crd::conversion::app::v1alpha2::KeptnAppSpec,
        ItemStatus,
        ItemStatus
    );
}

pub mod v1alpha3 {
    //! KeptnAppVersion as at v1alpha2.
    alpha!(
        "v1alpha3",
        crate::crd::conversion::app::v1alpha3::KeptnAppSpec,
        ItemStatus,
        ItemStatus
    );
}

pub mod v1beta1 {
    //! KeptnAppVersion with v1's fields; only Portcullis' status conditions are carried.

    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    pub use crate::crd::WorkloadStatus;

    #[derive(kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1beta1",
        kind = "KeptnAppVersion",
        doc = "One version of a KeptnApp in its phases (served for older manifests; v1 is stored).",
        namespaced,
        status = "KeptnAppVersionStatus",
        derive = "PartialEq",
        shortname = "kav",
        printcolumn(name = "AppName", type_ = "string", json_path = ".spec.appName"),
        printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
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
            name = "WorkloadOverallStatus",
            type_ = "string",
            json_path = ".status.workloadOverallStatus",
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
        ),
        printcolumn(
            name = "PromotionStatus",
            type_ = "string",
            json_path = ".status.promotionStatus",
            priority = 1
        )
    )]
    #[serde(rename_all = "camelCase")]
    pub struct KeptnAppVersionSpec {
        /// The KeptnAppContext spec fields, inline.
        #[serde(flatten)]
        pub context: KeptnAppContextSpec,
        /// The KeptnApp spec fields, inline.
        #[serde(flatten)]
        pub app: KeptnAppSpec,
        pub app_name: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub previous_version: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub trace_id: BTreeMap<String, String>,
    }

    /// State of the phases (as at v1, without the conditions Portcullis adds).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct KeptnAppVersionStatus {
        #[serde(default)]
        pub pre_deployment_status: KeptnState,
        #[serde(default)]
        pub post_deployment_status: KeptnState,
        #[serde(default)]
        pub promotion_status: KeptnState,
        #[serde(default)]
        pub pre_deployment_evaluation_status: KeptnState,
        #[serde(default)]
        pub post_deployment_evaluation_status: KeptnState,
        #[serde(default)]
        pub workload_overall_status: KeptnState,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub workload_status: Vec<WorkloadStatus>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub current_phase: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub pre_deployment_task_status: Vec<ItemStatus>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub post_deployment_task_status: Vec<ItemStatus>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub promotion_task_status: Vec<ItemStatus>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub pre_deployment_evaluation_task_status: Vec<ItemStatus>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub post_deployment_evaluation_task_status: Vec<ItemStatus>,
        #[serde(
            default,
            rename = "phaseTraceIDs",
            skip_serializing_if = "BTreeMap::is_empty"
        )]
        pub phase_trace_ids: BTreeMap<String, BTreeMap<String, String>>,
        #[serde(default)]
        pub status: KeptnState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub start_time: Option<Time>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub end_time: Option<Time>,
    }

    impl KeptnAppVersionStatus {
        fn into_hub(self, carry: &mut Carry) -> HubStatus {
            let (conditions, observed_generation) = restore_conditions(carry);
            HubStatus {
                pre_deployment_status: self.pre_deployment_status,
                post_deployment_status: self.post_deployment_status,
                promotion_status: self.promotion_status,
                pre_deployment_evaluation_status: self.pre_deployment_evaluation_status,
                post_deployment_evaluation_status: self.post_deployment_evaluation_status,
                workload_overall_status: self.workload_overall_status,
                workload_status: self.workload_status,
                current_phase: self.current_phase,
                pre_deployment_task_status: self.pre_deployment_task_status,
                post_deployment_task_status: self.post_deployment_task_status,
                promotion_task_status: self.promotion_task_status,
                pre_deployment_evaluation_task_status: self.pre_deployment_evaluation_task_status,
                post_deployment_evaluation_task_status: self.post_deployment_evaluation_task_status,
                phase_trace_ids: self.phase_trace_ids,
                status: self.status,
                start_time: self.start_time,
                end_time: self.end_time,
                conditions,
                observed_generation,
            }
        }

        fn from_hub(hub: HubStatus, carry: &mut Carry) -> Self {
            keep_conditions(carry, &hub);
            KeptnAppVersionStatus {
                pre_deployment_status: hub.pre_deployment_status,
                post_deployment_status: hub.post_deployment_status,
                promotion_status: hub.promotion_status,
                pre_deployment_evaluation_status: hub.pre_deployment_evaluation_status,
                post_deployment_evaluation_status: hub.post_deployment_evaluation_status,
                workload_overall_status: hub.workload_overall_status,
                workload_status: hub.workload_status,
                current_phase: hub.current_phase,
                pre_deployment_task_status: hub.pre_deployment_task_status,
                post_deployment_task_status: hub.post_deployment_task_status,
                promotion_task_status: hub.promotion_task_status,
                pre_deployment_evaluation_task_status: hub.pre_deployment_evaluation_task_status,
                post_deployment_evaluation_task_status: hub.post_deployment_evaluation_task_status,
                phase_trace_ids: hub.phase_trace_ids,
                status: hub.status,
                start_time: hub.start_time,
                end_time: hub.end_time,
            }
        }
    }

    impl Convert for KeptnAppVersion {
        type Hub = crate::crd::KeptnAppVersion;

        fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
            let s = self.spec;
            Ok(crate::crd::KeptnAppVersion {
                metadata: self.metadata,
                spec: HubSpec {
                    context: s.context,
                    app: s.app,
                    app_name: s.app_name,
                    previous_version: s.previous_version,
                    trace_id: s.trace_id,
                },
                status: self.status.map(|status| status.into_hub(carry)),
            })
        }

        fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
            let s = hub.spec;
            Ok(KeptnAppVersion {
                metadata: hub.metadata,
                spec: KeptnAppVersionSpec {
                    context: s.context,
                    app: s.app,
                    app_name: s.app_name,
                    previous_version: s.previous_version,
                    trace_id: s.trace_id,
                },
                status: hub
                    .status
                    .map(|status| KeptnAppVersionStatus::from_hub(status, carry)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::super::convert;
    use super::{v1alpha1, v1alpha2, v1alpha3, v1beta1};
    use crate::crd::KeptnAppVersion;

    const V1: &str = "lifecycle.keptn.sh/v1";

    fn typed<T: Serialize + DeserializeOwned>(v: Value) -> Value {
        serde_json::to_value(serde_json::from_value::<T>(v).expect("parses")).expect("serialises")
    }

    /// `old` converts to exactly `v1` (both read through their types, so schema defaults are
    /// filled in) and back to itself.
    fn assert_round_trip<T: Serialize + DeserializeOwned>(old: Value, v1: Value) {
        let version = old["apiVersion"].as_str().unwrap().to_string();
        let hub = convert(old.clone(), V1).expect("converts to v1");
        assert_eq!(
            typed::<KeptnAppVersion>(hub.clone()),
            typed::<KeptnAppVersion>(v1)
        );
        let back = convert(hub, &version).expect("converts back");
        assert_eq!(typed::<T>(back), typed::<T>(old));
    }

    /// `v1` converts to `version` without the fields it cannot hold and back to itself.
    fn assert_hub_round_trip<T: Serialize + DeserializeOwned>(v1: Value, version: &str) -> Value {
        let old = convert(v1.clone(), version).expect("converts from v1");
        let old = typed::<T>(old);
        let hub = convert(old.clone(), V1).expect("converts back");
        assert_eq!(typed::<KeptnAppVersion>(hub), typed::<KeptnAppVersion>(v1));
        old
    }

    fn metadata() -> Value {
        json!({"name": "podtato-head-0.1.1-6b86b273", "namespace": "podtato-kubectl"})
    }

    /// A v1 object that uses everything v1 has beyond the older versions.
    fn full_v1() -> Value {
        json!({
            "apiVersion": V1,
            "kind": "KeptnAppVersion",
            "metadata": metadata(),
            "spec": {
                "appName": "podtato-head",
                "version": "0.1.1",
                "revision": 3,
                "workloads": [{"name": "podtato-head-entry", "version": "0.1.1"}],
                "preDeploymentTasks": ["check-db"],
                "postDeploymentEvaluations": ["error-rate"],
                "promotionTasks": ["promote-to-prod"],
                "metadata": {"team": "checkout"},
                "spanLinks": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
                "previousVersion": "0.1.0",
                "traceId": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
            },
            "status": {
                "currentPhase": "AppPromotion",
                "preDeploymentStatus": "Succeeded",
                "workloadOverallStatus": "Succeeded",
                "postDeploymentEvaluationStatus": "Succeeded",
                "promotionStatus": "",
                "status": "Progressing",
                "preDeploymentTaskStatus": [{
                    "definitionName": "check-db",
                    "name": "pre-check-db-38016",
                    "status": "Succeeded",
                    "startTime": "2024-03-01T10:00:00Z",
                    "endTime": "2024-03-01T10:00:30Z"
                }],
                "postDeploymentEvaluationTaskStatus": [{
                    "definitionName": "error-rate",
                    "name": "post-eval-error-rate-51234",
                    "status": "Succeeded"
                }],
                "promotionTaskStatus": [{
                    "definitionName": "promote-to-prod",
                    "name": "promotion-promote-to-prod-1",
                    "status": "Progressing"
                }],
                "workloadStatus": [{
                    "workload": {"name": "podtato-head-entry", "version": "0.1.1"},
                    "status": "Succeeded"
                }],
                "phaseTraceIDs": {"AppPromotion": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-aaaaaaaaaaaaaaaa-01"}},
                "startTime": "2024-03-01T09:59:58Z",
                "conditions": [{
                    "type": "Ready",
                    "status": "False",
                    "reason": "Progressing",
                    "message": "promotion running",
                    "lastTransitionTime": "2024-03-01T10:05:00Z",
                    "observedGeneration": 4
                }],
                "observedGeneration": 4
            }
        })
    }

    #[test]
    fn v1alpha1_renames_item_fields_and_defaults_revision() {
        let old = json!({
            "apiVersion": "lifecycle.keptn.sh/v1alpha1",
            "kind": "KeptnAppVersion",
            "metadata": metadata(),
            "spec": {
                "appName": "podtato-head",
                "version": "0.1.1",
                "workloads": [{"name": "podtato-head-entry", "version": "0.1.1"}],
                "preDeploymentTasks": ["check-db"],
                "postDeploymentEvaluations": ["error-rate"],
                "previousVersion": "0.1.0",
                "traceId": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
            },
            "status": {
                "currentPhase": "AppPostDeployEvaluations",
                "preDeploymentStatus": "Succeeded",
                "status": "Progressing",
                "preDeploymentTaskStatus": [{
                    "taskDefinitionName": "check-db",
                    "taskName": "pre-check-db-38016",
                    "status": "Succeeded",
                    "startTime": "2024-03-01T10:00:00Z"
                }],
                "postDeploymentEvaluationTaskStatus": [{
                    "evaluationDefinitionName": "error-rate",
                    "evaluationName": "post-eval-error-rate-51234",
                    "status": "Progressing"
                }]
            }
        });
        let v1 = json!({
            "apiVersion": V1,
            "kind": "KeptnAppVersion",
            "metadata": metadata(),
            "spec": {
                "appName": "podtato-head",
                "version": "0.1.1",
                "revision": 1,
                "workloads": [{"name": "podtato-head-entry", "version": "0.1.1"}],
                "preDeploymentTasks": ["check-db"],
                "postDeploymentEvaluations": ["error-rate"],
                "previousVersion": "0.1.0",
                "traceId": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
            },
            "status": {
                "currentPhase": "AppPostDeployEvaluations",
                "preDeploymentStatus": "Succeeded",
                "status": "Progressing",
                "preDeploymentTaskStatus": [{
                    "definitionName": "check-db",
                    "name": "pre-check-db-38016",
                    "status": "Succeeded",
                    "startTime": "2024-03-01T10:00:00Z"
                }],
                "postDeploymentEvaluationTaskStatus": [{
                    "definitionName": "error-rate",
                    "name": "post-eval-error-rate-51234",
                    "status": "Progressing"
                }]
            }
        });
        assert_round_trip::<v1alpha1::KeptnAppVersion>(old, v1);
    }

    /// v1alpha2 and v1alpha3 have the same fields.
    fn alpha_with_revision(api_version: &str) -> (Value, Value) {
        let spec = json!({
            "appName": "podtato-head",
            "version": "0.1.1",
            "revision": 2,
            "workloads": [{"name": "podtato-head-entry", "version": "0.1.1"}],
            "preDeploymentEvaluations": ["db-ready"],
            "postDeploymentTasks": ["notify"]
        });
        let status = json!({
            "currentPhase": "AppDeploy",
            "preDeploymentEvaluationStatus": "Succeeded",
            "workloadOverallStatus": "Cancelled",
            "status": "Failed",
            "preDeploymentEvaluationTaskStatus": [{
                "definitionName": "db-ready",
                "name": "pre-eval-db-ready-1",
                "status": "Succeeded"
            }],
            "workloadStatus": [{
                "workload": {"name": "podtato-head-entry", "version": "0.1.1"},
                "status": "Failed"
            }]
        });
        let old = json!({
            "apiVersion": api_version,
            "kind": "KeptnAppVersion",
            "metadata": metadata(),
            "spec": spec,
            "status": status
        });
        // Everything stays where it was; only the apiVersion changes.
        let v1 = json!({
            "apiVersion": V1,
            "kind": "KeptnAppVersion",
            "metadata": metadata(),
            "spec": spec,
            "status": status
        });
        (old, v1)
    }

    #[test]
    fn v1alpha2_keeps_revision_and_items() {
        let (old, v1) = alpha_with_revision("lifecycle.keptn.sh/v1alpha2");
        assert_round_trip::<v1alpha2::KeptnAppVersion>(old, v1);
    }

    #[test]
    fn v1alpha3_keeps_revision_and_items() {
        let (old, v1) = alpha_with_revision("lifecycle.keptn.sh/v1alpha3");
        assert_round_trip::<v1alpha3::KeptnAppVersion>(old, v1);
    }

    #[test]
    fn v1beta1_is_v1_without_conditions() {
        let mut old = full_v1();
        old["apiVersion"] = json!("lifecycle.keptn.sh/v1beta1");
        let status = old["status"].as_object_mut().unwrap();
        status.remove("conditions");
        status.remove("observedGeneration");
        let mut v1 = full_v1();
        let status = v1["status"].as_object_mut().unwrap();
        status.remove("conditions");
        status.remove("observedGeneration");
        assert_round_trip::<v1beta1::KeptnAppVersion>(old, v1);
    }

    #[test]
    fn v1alpha1_carries_what_v1_adds() {
        let old = assert_hub_round_trip::<v1alpha1::KeptnAppVersion>(
            full_v1(),
            "lifecycle.keptn.sh/v1alpha1",
        );
        assert_eq!(
            old["status"]["preDeploymentTaskStatus"][0]["taskDefinitionName"],
            "check-db"
        );
        assert_eq!(
            old["status"]["postDeploymentEvaluationTaskStatus"][0]["evaluationName"],
            "post-eval-error-rate-51234"
        );
        assert!(old["spec"].get("revision").is_none());
        assert!(old["spec"].get("promotionTasks").is_none());
        assert!(old["status"].get("promotionTaskStatus").is_none());
        let carried: Value = serde_json::from_str(
            old["metadata"]["annotations"]["conversion.portcullis.dev/v1"]
                .as_str()
                .expect("carry annotation"),
        )
        .unwrap();
        assert_eq!(carried["spec.revision"], 3);
        assert_eq!(carried["spec.promotionTasks"], json!(["promote-to-prod"]));
        assert_eq!(carried["spec.metadata"], json!({"team": "checkout"}));
        assert_eq!(carried["status.promotionStatus"], json!([""]));
        assert_eq!(carried["status.observedGeneration"], 4);
    }

    #[test]
    fn v1alpha2_and_v1alpha3_carry_what_v1_adds() {
        for version in ["lifecycle.keptn.sh/v1alpha2", "lifecycle.keptn.sh/v1alpha3"] {
            let old = if version.ends_with("alpha2") {
                assert_hub_round_trip::<v1alpha2::KeptnAppVersion>(full_v1(), version)
            } else {
                assert_hub_round_trip::<v1alpha3::KeptnAppVersion>(full_v1(), version)
            };
            assert_eq!(old["spec"]["revision"], 3);
            assert_eq!(
                old["status"]["preDeploymentTaskStatus"][0]["definitionName"],
                "check-db"
            );
            assert!(old["spec"].get("spanLinks").is_none());
            assert!(old["status"].get("promotionStatus").is_none());
            assert!(old["status"].get("conditions").is_none());
        }
    }

    #[test]
    fn v1beta1_carries_only_conditions() {
        let old = assert_hub_round_trip::<v1beta1::KeptnAppVersion>(
            full_v1(),
            "lifecycle.keptn.sh/v1beta1",
        );
        assert_eq!(old["spec"]["promotionTasks"], json!(["promote-to-prod"]));
        assert_eq!(old["status"]["promotionStatus"], "");
        assert!(old["status"].get("conditions").is_none());
        let carried: Value = serde_json::from_str(
            old["metadata"]["annotations"]["conversion.portcullis.dev/v1"]
                .as_str()
                .expect("carry annotation"),
        )
        .unwrap();
        let keys: Vec<&String> = carried.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["status.conditions", "status.observedGeneration"]);
    }

    #[test]
    fn older_versions_are_converted_between_each_other_through_v1() {
        let old = assert_hub_round_trip::<v1alpha1::KeptnAppVersion>(
            full_v1(),
            "lifecycle.keptn.sh/v1alpha1",
        );
        let beta = convert(old, "lifecycle.keptn.sh/v1beta1").expect("converts");
        let hub = convert(beta, V1).expect("converts");
        assert_eq!(
            typed::<KeptnAppVersion>(hub),
            typed::<KeptnAppVersion>(full_v1())
        );
    }
}
