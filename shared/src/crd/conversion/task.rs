//! KeptnTask at v1alpha1, v1alpha2, v1alpha3 and v1beta1.
//!
//! v1alpha1 and v1alpha2 name the app and workload twice: at the top of the spec (`app`,
//! `appVersion`, `workload`, `workloadVersion`) and in `context`; v1 keeps only `context`. From
//! v1alpha3 on (after Keptn dropped the top-level copies) the spec is v1's, but for
//! `context.metadata` (v1beta1 on) and, before v1alpha3, `retries`, `timeout` and `status.reason`.

use serde::{Deserialize, Serialize};

use super::{Carry, Convert, Refusal, Spoke};
use crate::crd::TaskContext;
use crate::crd::common::{Duration, default_retries_i32, default_timeout};

pub(super) fn spokes() -> Vec<Spoke> {
    vec![
        Spoke::of::<v1alpha1::KeptnTask>(),
        Spoke::of::<v1alpha2::KeptnTask>(),
        Spoke::of::<v1alpha3::KeptnTask>(),
        Spoke::of::<v1beta1::KeptnTask>(),
    ]
}

/// `retries` and `timeout` for a version without them: what v1 left, else v1's defaults.
fn restore_limits(carry: &mut Carry) -> (i32, Duration) {
    (
        carry
            .restore("spec.retries")
            .unwrap_or_else(default_retries_i32),
        carry
            .restore("spec.timeout")
            .unwrap_or_else(default_timeout),
    )
}

/// Keeps `retries` and `timeout` unless they are the defaults a version without them reads back.
fn keep_limits(carry: &mut Carry, retries: i32, timeout: &Duration) {
    if retries != default_retries_i32() {
        carry.keep("spec.retries", &retries);
    }
    if *timeout != default_timeout() {
        carry.keep("spec.timeout", timeout);
    }
}

pub mod legacy {
    //! What v1alpha1 and v1alpha2 share: the required context and the top-level names.

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use schemars::JsonSchema;

    use super::*;
    use crate::crd::common::KeptnState;

    /// The context before `metadata`, every field required.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TaskContext {
        pub workload_name: String,
        pub app_name: String,
        pub app_version: String,
        pub workload_version: String,
        pub task_type: String,
        pub object_type: String,
    }

    /// The status before `reason`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct KeptnTaskStatus {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub job_name: String,
        #[serde(default)]
        pub status: KeptnState,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub start_time: Option<Time>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub end_time: Option<Time>,
    }

    /// The four top-level names, in the order of [`TopLevel::FIELDS`].
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct TopLevel {
        pub workload: String,
        pub workload_version: String,
        pub app: String,
        pub app_version: String,
    }

    /// Top-level names that differ from what v1's context ends up holding, carried as one object
    /// so that an empty string (which [`Carry::keep`] drops on its own) survives.
    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Differing {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workload: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workload_version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_version: Option<String>,
    }

    /// `ctx` with each empty name taken from the top level.
    ///
    /// The context wins where both are set: it is what Keptn handed the task's function and the
    /// only one v1 has (a top-level name that differs travels in the carry).
    fn filled(ctx: &TaskContext, top: &TopLevel) -> TaskContext {
        let or = |own: &String, top: &String| {
            if own.is_empty() {
                top.clone()
            } else {
                own.clone()
            }
        };
        TaskContext {
            workload_name: or(&ctx.workload_name, &top.workload),
            app_name: or(&ctx.app_name, &top.app),
            app_version: or(&ctx.app_version, &top.app_version),
            workload_version: or(&ctx.workload_version, &top.workload_version),
            task_type: ctx.task_type.clone(),
            object_type: ctx.object_type.clone(),
        }
    }

    fn without_metadata(ctx: &crate::crd::TaskContext) -> TaskContext {
        TaskContext {
            workload_name: ctx.workload_name.clone(),
            app_name: ctx.app_name.clone(),
            app_version: ctx.app_version.clone(),
            workload_version: ctx.workload_version.clone(),
            task_type: ctx.task_type.clone(),
            object_type: ctx.object_type.clone(),
        }
    }

    /// The v1 context of an old spec's `context` and top-level names.
    pub fn context_to_hub(
        ctx: TaskContext,
        top: TopLevel,
        carry: &mut Carry,
    ) -> crate::crd::TaskContext {
        let hub = filled(&ctx, &top);
        if hub != ctx {
            carry.keep("spec.context", &ctx);
        }
        let differ = |own: String, hub: &String| (own != *hub).then_some(own);
        carry.keep(
            "spec",
            &Differing {
                workload: differ(top.workload, &hub.workload_name),
                workload_version: differ(top.workload_version, &hub.workload_version),
                app: differ(top.app, &hub.app_name),
                app_version: differ(top.app_version, &hub.app_version),
            },
        );
        crate::crd::TaskContext {
            workload_name: hub.workload_name,
            app_name: hub.app_name,
            app_version: hub.app_version,
            workload_version: hub.workload_version,
            task_type: hub.task_type,
            object_type: hub.object_type,
            metadata: carry.restore("spec.context.metadata").unwrap_or_default(),
        }
    }

    /// The old `context` and top-level names of a v1 context.
    pub fn context_from_hub(
        hub: crate::crd::TaskContext,
        carry: &mut Carry,
    ) -> (TaskContext, TopLevel) {
        carry.keep("spec.context.metadata", &hub.metadata);
        let d: Differing = carry.restore("spec").unwrap_or_default();
        let top = TopLevel {
            workload: d.workload.unwrap_or_else(|| hub.workload_name.clone()),
            workload_version: d
                .workload_version
                .unwrap_or_else(|| hub.workload_version.clone()),
            app: d.app.unwrap_or_else(|| hub.app_name.clone()),
            app_version: d.app_version.unwrap_or_else(|| hub.app_version.clone()),
        };
        let derived = without_metadata(&hub);
        // The context as written comes back only while it still gives the v1 context (not if a
        // v1 client changed it meanwhile).
        let ctx = match carry.restore::<TaskContext>("spec.context") {
            Some(written) if filled(&written, &top) == derived => written,
            _ => derived,
        };
        (ctx, top)
    }

    pub fn status_to_hub(s: KeptnTaskStatus, carry: &mut Carry) -> crate::crd::KeptnTaskStatus {
        crate::crd::KeptnTaskStatus {
            job_name: s.job_name,
            status: s.status,
            message: s.message,
            start_time: s.start_time,
            end_time: s.end_time,
            reason: carry.restore("status.reason").unwrap_or_default(),
        }
    }

    pub fn status_from_hub(s: crate::crd::KeptnTaskStatus, carry: &mut Carry) -> KeptnTaskStatus {
        carry.keep("status.reason", &s.reason);
        KeptnTaskStatus {
            job_name: s.job_name,
            status: s.status,
            message: s.message,
            start_time: s.start_time,
            end_time: s.end_time,
        }
    }
}

/// v1alpha1 and v1alpha2 have the same fields.
macro_rules! task_with_top_level_names {
    ($version:literal) => {
        use schemars::JsonSchema;

        use super::legacy::{self, KeptnTaskStatus, TaskContext, TopLevel};
        use super::*;
        pub use crate::crd::{SecureParameters, TaskParameters};

        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema,
        )]
        #[kube(
            group = "lifecycle.keptn.sh",
            version = $version,
            kind = "KeptnTask",
            doc = "One run of a KeptnTaskDefinition (served for older manifests; v1 is stored).",
            namespaced,
            status = "KeptnTaskStatus",
            derive = "PartialEq",
            printcolumn(name = "AppName", type_ = "string", json_path = ".spec.app"),
            printcolumn(name = "AppVersion", type_ = "string", json_path = ".spec.appVersion"),
            printcolumn(name = "WorkloadName", type_ = "string", json_path = ".spec.workload"),
            printcolumn(
                name = "WorkloadVersion",
                type_ = "string",
                json_path = ".spec.workloadVersion"
            ),
            printcolumn(name = "Job Name", type_ = "string", json_path = ".status.jobName"),
            printcolumn(name = "Status", type_ = "string", json_path = ".status.status")
        )]
        #[serde(rename_all = "camelCase")]
        pub struct KeptnTaskSpec {
            pub workload: String,
            pub workload_version: String,
            pub app: String,
            pub app_version: String,
            pub task_definition: String,
            pub context: TaskContext,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub parameters: Option<TaskParameters>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub secure_parameters: Option<SecureParameters>,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub check_type: String,
        }

        impl Convert for KeptnTask {
            type Hub = crate::crd::KeptnTask;

            fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
                let s = self.spec;
                let top = TopLevel {
                    workload: s.workload,
                    workload_version: s.workload_version,
                    app: s.app,
                    app_version: s.app_version,
                };
                let context = legacy::context_to_hub(s.context, top, carry);
                let (retries, timeout) = restore_limits(carry);
                Ok(crate::crd::KeptnTask {
                    metadata: self.metadata,
                    spec: crate::crd::KeptnTaskSpec {
                        task_definition: s.task_definition,
                        context,
                        parameters: s.parameters,
                        secure_parameters: s.secure_parameters,
                        check_type: s.check_type,
                        retries,
                        timeout,
                    },
                    status: self.status.map(|st| legacy::status_to_hub(st, carry)),
                })
            }

            fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
                let s = hub.spec;
                keep_limits(carry, s.retries, &s.timeout);
                let (context, top) = legacy::context_from_hub(s.context, carry);
                Ok(KeptnTask {
                    metadata: hub.metadata,
                    spec: KeptnTaskSpec {
                        workload: top.workload,
                        workload_version: top.workload_version,
                        app: top.app,
                        app_version: top.app_version,
                        task_definition: s.task_definition,
                        context,
                        parameters: s.parameters,
                        secure_parameters: s.secure_parameters,
                        check_type: s.check_type,
                    },
                    status: hub.status.map(|st| legacy::status_from_hub(st, carry)),
                })
            }
        }
    };
}

pub mod v1alpha1 {
    //! KeptnTask with top-level app and workload names, no retries or timeout.
    task_with_top_level_names!("v1alpha1");
}

pub mod v1alpha2 {
    //! KeptnTask as v1alpha1.
    task_with_top_level_names!("v1alpha2");
}

/// How a version's context becomes v1's and back.
trait Context: Sized {
    fn to_hub(self, carry: &mut Carry) -> TaskContext;
    fn from_hub(hub: TaskContext, carry: &mut Carry) -> Self;
}

impl Context for TaskContext {
    fn to_hub(self, _: &mut Carry) -> TaskContext {
        self
    }

    fn from_hub(hub: TaskContext, _: &mut Carry) -> Self {
        hub
    }
}

/// v1alpha3 and v1beta1 have v1's spec; only the context type differs.
macro_rules! task_as_v1 {
    ($version:literal, $context:ty) => {
        use schemars::JsonSchema;

        use super::*;
        use crate::crd::common::no_schema_default;
        pub use crate::crd::{KeptnTaskStatus, SecureParameters, TaskParameters};

        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema,
        )]
        #[kube(
            group = "lifecycle.keptn.sh",
            version = $version,
            kind = "KeptnTask",
            doc = "One run of a KeptnTaskDefinition (served for older manifests; v1 is stored).",
            namespaced,
            status = "KeptnTaskStatus",
            derive = "PartialEq",
            // Keptn kept the columns of v1alpha1, whose paths no longer exist here.
            printcolumn(name = "AppName", type_ = "string", json_path = ".spec.app"),
            printcolumn(name = "AppVersion", type_ = "string", json_path = ".spec.appVersion"),
            printcolumn(name = "WorkloadName", type_ = "string", json_path = ".spec.workload"),
            printcolumn(
                name = "WorkloadVersion",
                type_ = "string",
                json_path = ".spec.workloadVersion"
            ),
            printcolumn(name = "Job Name", type_ = "string", json_path = ".status.jobName"),
            printcolumn(name = "Status", type_ = "string", json_path = ".status.status")
        )]
        #[serde(rename_all = "camelCase")]
        pub struct KeptnTaskSpec {
            pub task_definition: String,
            #[serde(default)]
            #[schemars(transform = no_schema_default)]
            pub context: $context,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub parameters: Option<TaskParameters>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub secure_parameters: Option<SecureParameters>,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub check_type: String,
            #[serde(default = "default_retries_i32")]
            pub retries: i32,
            #[serde(default = "default_timeout")]
            pub timeout: Duration,
        }

        impl Convert for KeptnTask {
            type Hub = crate::crd::KeptnTask;

            fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
                let s = self.spec;
                Ok(crate::crd::KeptnTask {
                    metadata: self.metadata,
                    spec: crate::crd::KeptnTaskSpec {
                        task_definition: s.task_definition,
                        context: Context::to_hub(s.context, carry),
                        parameters: s.parameters,
                        secure_parameters: s.secure_parameters,
                        check_type: s.check_type,
                        retries: s.retries,
                        timeout: s.timeout,
                    },
                    status: self.status,
                })
            }

            fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
                let s = hub.spec;
                Ok(KeptnTask {
                    metadata: hub.metadata,
                    spec: KeptnTaskSpec {
                        task_definition: s.task_definition,
                        context: Context::from_hub(s.context, carry),
                        parameters: s.parameters,
                        secure_parameters: s.secure_parameters,
                        check_type: s.check_type,
                        retries: s.retries,
                        timeout: s.timeout,
                    },
                    status: hub.status,
                })
            }
        }
    };
}

pub mod v1alpha3 {
    //! KeptnTask as at v1 but for `context.metadata`.

    use super::Context;

    task_as_v1!("v1alpha3", TaskContext);

    /// v1's context before `metadata`; nothing required.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TaskContext {
        #[serde(default)]
        #[schemars(transform = no_schema_default)]
        pub workload_name: String,
        #[serde(default)]
        #[schemars(transform = no_schema_default)]
        pub app_name: String,
        #[serde(default)]
        #[schemars(transform = no_schema_default)]
        pub app_version: String,
        #[serde(default)]
        #[schemars(transform = no_schema_default)]
        pub workload_version: String,
        #[serde(default)]
        #[schemars(transform = no_schema_default)]
        pub task_type: String,
        #[serde(default)]
        #[schemars(transform = no_schema_default)]
        pub object_type: String,
    }

    impl Context for TaskContext {
        fn to_hub(self, carry: &mut Carry) -> crate::crd::TaskContext {
            crate::crd::TaskContext {
                workload_name: self.workload_name,
                app_name: self.app_name,
                app_version: self.app_version,
                workload_version: self.workload_version,
                task_type: self.task_type,
                object_type: self.object_type,
                metadata: carry.restore("spec.context.metadata").unwrap_or_default(),
            }
        }

        fn from_hub(hub: crate::crd::TaskContext, carry: &mut Carry) -> Self {
            carry.keep("spec.context.metadata", &hub.metadata);
            TaskContext {
                workload_name: hub.workload_name,
                app_name: hub.app_name,
                app_version: hub.app_version,
                workload_version: hub.workload_version,
                task_type: hub.task_type,
                object_type: hub.object_type,
            }
        }
    }
}

pub mod v1beta1 {
    //! KeptnTask as at v1.

    use super::Context;

    task_as_v1!("v1beta1", crate::crd::TaskContext);
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::convert;
    use super::*;

    const V1: &str = "lifecycle.keptn.sh/v1";

    /// `x` as the typed struct of its version reads and writes it.
    fn normal<T: Serialize + serde::de::DeserializeOwned>(x: &Value) -> Value {
        serde_json::to_value(serde_json::from_value::<T>(x.clone()).unwrap()).unwrap()
    }

    fn back<T: Serialize + serde::de::DeserializeOwned>(hub: &Value, version: &str, old: &Value) {
        let again = convert(hub.clone(), &format!("lifecycle.keptn.sh/{version}")).unwrap();
        assert_eq!(normal::<T>(&again), normal::<T>(old));
    }

    fn legacy_manifest(version: &str) -> Value {
        json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnTask",
            "metadata": {"name": "pre-deploy-check-1", "namespace": "podtato"},
            "spec": {
                "workload": "podtato-head-frontend",
                "workloadVersion": "0.1.0",
                "app": "podtato-head",
                "appVersion": "",
                "taskDefinition": "check-entry",
                "context": {
                    "workloadName": "podtato-head-frontend",
                    "appName": "podtato-head",
                    "appVersion": "0.1.0",
                    "workloadVersion": "",
                    "taskType": "pre",
                    "objectType": "Workload"
                },
                "parameters": {"map": {"url": "http://frontend"}},
                "checkType": "pre"
            },
            "status": {"jobName": "klc-pre-check-entry-1", "status": "Succeeded"}
        })
    }

    fn legacy_round_trip<T: Serialize + serde::de::DeserializeOwned>(version: &str) {
        let old = legacy_manifest(version);
        let hub = convert(old.clone(), V1).unwrap();
        assert_eq!(hub["apiVersion"], V1);
        assert_eq!(
            hub["spec"]["context"],
            json!({
                "workloadName": "podtato-head-frontend",
                "appName": "podtato-head",
                "appVersion": "0.1.0",
                // empty in the context, so the top-level name fills it
                "workloadVersion": "0.1.0",
                "taskType": "pre",
                "objectType": "Workload"
            })
        );
        for gone in ["workload", "workloadVersion", "app", "appVersion"] {
            assert!(hub["spec"].get(gone).is_none(), "{gone}");
        }
        assert_eq!(hub["spec"]["retries"], 10);
        assert_eq!(hub["spec"]["timeout"], "5m");
        assert_eq!(
            hub["spec"]["parameters"],
            json!({"map": {"url": "http://frontend"}})
        );
        assert_eq!(hub["status"]["status"], "Succeeded");
        back::<T>(&hub, version, &old);

        // and a v1 task written by the operator reads at the old version and comes back whole
        let v1 = json!({
            "apiVersion": V1,
            "kind": "KeptnTask",
            "metadata": {"name": "post-notify-2", "namespace": "podtato"},
            "spec": {
                "taskDefinition": "notify",
                "context": {
                    "workloadName": "", "appName": "podtato-head", "appVersion": "0.2.0",
                    "workloadVersion": "", "taskType": "post", "objectType": "App",
                    "metadata": {"commit": "abc"}
                },
                "checkType": "post",
                "retries": 3,
                "timeout": "90s"
            },
            "status": {"status": "Failed", "reason": "BackoffLimitExceeded"}
        });
        let old = convert(v1.clone(), &format!("lifecycle.keptn.sh/{version}")).unwrap();
        assert_eq!(old["spec"]["app"], "podtato-head");
        assert_eq!(old["spec"]["appVersion"], "0.2.0");
        assert_eq!(old["spec"]["workload"], "");
        assert!(old["spec"]["context"].get("metadata").is_none());
        assert!(old["status"].get("reason").is_none());
        let again = convert(old, V1).unwrap();
        assert_eq!(
            normal::<crate::crd::KeptnTask>(&again),
            normal::<crate::crd::KeptnTask>(&v1)
        );
    }

    #[test]
    fn v1alpha1_moves_top_level_names_into_the_context() {
        legacy_round_trip::<v1alpha1::KeptnTask>("v1alpha1");
    }

    #[test]
    fn v1alpha2_moves_top_level_names_into_the_context() {
        legacy_round_trip::<v1alpha2::KeptnTask>("v1alpha2");
    }

    #[test]
    fn v1alpha2_context_wins_over_a_differing_top_level_name() {
        let mut old = legacy_manifest("v1alpha2");
        old["spec"]["app"] = json!("other-app");
        let hub = convert(old.clone(), V1).unwrap();
        assert_eq!(hub["spec"]["context"]["appName"], "podtato-head");
        back::<v1alpha2::KeptnTask>(&hub, "v1alpha2", &old);
    }

    /// The documentation's example of a task run by hand.
    #[test]
    fn v1alpha3_user_task_converts() {
        let old = json!({
            "apiVersion": "lifecycle.keptn.sh/v1alpha3",
            "kind": "KeptnTask",
            "metadata": {"name": "runonetimetaskwithparams-1", "namespace": "default"},
            "spec": {
                "taskDefinition": "hello-keptn-inline",
                "context": {
                    "appName": "my-app",
                    "appVersion": "1.0.0",
                    "objectType": "",
                    "taskType": "",
                    "workloadName": "my-workload",
                    "workloadVersion": "1.0.0"
                },
                "parameters": {"map": {"textMessage": "This is my configuration"}},
                "secureParameters": {"secret": "slack-token"}
            }
        });
        let hub = convert(old.clone(), V1).unwrap();
        assert_eq!(
            hub["spec"],
            json!({
                "taskDefinition": "hello-keptn-inline",
                "context": {
                    "appName": "my-app",
                    "appVersion": "1.0.0",
                    "objectType": "",
                    "taskType": "",
                    "workloadName": "my-workload",
                    "workloadVersion": "1.0.0"
                },
                "parameters": {"map": {"textMessage": "This is my configuration"}},
                "secureParameters": {"secret": "slack-token"},
                // the serde defaults, as the API server materialises them
                "retries": 10,
                "timeout": "5m"
            })
        );
        assert!(hub["metadata"].get("annotations").is_none());
        back::<v1alpha3::KeptnTask>(&hub, "v1alpha3", &old);
    }

    #[test]
    fn v1alpha3_carries_context_metadata() {
        let v1 = json!({
            "apiVersion": V1,
            "kind": "KeptnTask",
            "metadata": {"name": "t", "namespace": "default"},
            "spec": {
                "taskDefinition": "d",
                "context": {
                    "workloadName": "w", "appName": "a", "appVersion": "1", "workloadVersion": "1",
                    "taskType": "pre", "objectType": "Workload", "metadata": {"team": "x"}
                },
                "retries": 10,
                "timeout": "5m"
            },
            "status": {"status": "Progressing", "reason": "Running", "jobName": "j"}
        });
        let old = convert(v1.clone(), "lifecycle.keptn.sh/v1alpha3").unwrap();
        assert!(old["spec"]["context"].get("metadata").is_none());
        assert_eq!(old["status"]["reason"], "Running");
        let again = convert(old, V1).unwrap();
        assert_eq!(
            normal::<crate::crd::KeptnTask>(&again),
            normal::<crate::crd::KeptnTask>(&v1)
        );
    }

    #[test]
    fn v1beta1_is_v1() {
        let old = json!({
            "apiVersion": "lifecycle.keptn.sh/v1beta1",
            "kind": "KeptnTask",
            "metadata": {"name": "t", "namespace": "default"},
            "spec": {
                "taskDefinition": "d",
                "context": {
                    "workloadName": "w", "appName": "a", "appVersion": "1", "workloadVersion": "1",
                    "taskType": "pre", "objectType": "Workload", "metadata": {"team": "x"}
                },
                "checkType": "pre",
                "retries": 2,
                "timeout": "1m"
            },
            "status": {"status": "Succeeded", "reason": "Complete"}
        });
        let hub = convert(old.clone(), V1).unwrap();
        let mut expected = old.clone();
        expected["apiVersion"] = json!(V1);
        assert_eq!(hub, expected);
        back::<v1beta1::KeptnTask>(&hub, "v1beta1", &old);
    }
}
