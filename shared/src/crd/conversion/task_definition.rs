//! KeptnTaskDefinition at v1alpha1, v1alpha2, v1alpha3 and v1beta1.
//!
//! v1alpha1 and v1alpha2 know one runtime, `function`, run by Deno: it is v1's `deno`. v1alpha3
//! and v1beta1 add `deno`, `python` and `container` and keep `function` as Deno's deprecated
//! name, so there it becomes `deno` when it is the only runtime; next to another runtime the
//! definition is refused (Keptn ran only the other one and dropped `function` without a word).

use k8s_openapi::api::core::v1::Container;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Carry, Convert, Refusal, Spoke};
use crate::crd::common::{Duration, default_retries_i32, default_timeout};
use crate::crd::task::default_ttl_seconds_after_finished;
use crate::crd::{
    AutomountServiceAccountTokenSpec, ImagePullSecret, KeptnTaskDefinitionStatus, RuntimeSpec,
    ServiceAccountSpec,
};

pub(super) fn spokes() -> Vec<Spoke> {
    vec![
        Spoke::of::<v1alpha1::KeptnTaskDefinition>(),
        Spoke::of::<v1alpha2::KeptnTaskDefinition>(),
        Spoke::of::<v1alpha3::KeptnTaskDefinition>(),
        Spoke::of::<v1beta1::KeptnTaskDefinition>(),
    ]
}

pub mod legacy {
    //! The function of v1alpha1 and v1alpha2: v1's runtime before `cmdParameters`.

    use super::*;
    use crate::crd::{
        ConfigMapReference, FunctionReference, HttpReference, Inline, SecureParameters,
        TaskParameters,
    };

    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct FunctionSpec {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub function_ref: Option<FunctionReference>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub inline: Option<Inline>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub http_ref: Option<HttpReference>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub config_map_ref: Option<ConfigMapReference>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parameters: Option<TaskParameters>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub secure_parameters: Option<SecureParameters>,
    }

    /// The v1 spec of an old `function`, with what v1 left for the fields the old version lacks.
    pub fn spec_to_hub(
        function: Option<FunctionSpec>,
        carry: &mut Carry,
    ) -> crate::crd::KeptnTaskDefinitionSpec {
        let cmd: String = carry
            .restore("spec.function.cmdParameters")
            .unwrap_or_default();
        // A python or container runtime read at this version comes back unless a function was
        // written in its place: none, or the very function it was read next to.
        let read_beside: Option<FunctionSpec> = carry.restore(FUNCTION_AS_READ);
        let (python, container) = if function.is_none() || function == read_beside {
            (
                carry.restore("spec.python"),
                carry.restore("spec.container"),
            )
        } else {
            (None, None)
        };
        crate::crd::KeptnTaskDefinitionSpec {
            python,
            deno: function.map(|f| RuntimeSpec {
                function_ref: f.function_ref,
                inline: f.inline,
                http_ref: f.http_ref,
                config_map_ref: f.config_map_ref,
                parameters: f.parameters,
                secure_parameters: f.secure_parameters,
                cmd_parameters: cmd,
            }),
            container,
            retries: carry
                .restore("spec.retries")
                .unwrap_or_else(default_retries_i32),
            timeout: carry
                .restore("spec.timeout")
                .unwrap_or_else(default_timeout),
            service_account: carry.restore("spec.serviceAccount"),
            automount_service_account_token: carry.restore("spec.automountServiceAccountToken"),
            ttl_seconds_after_finished: carry
                .restore("spec.ttlSecondsAfterFinished")
                .unwrap_or_else(default_ttl_seconds_after_finished),
            image_pull_secrets: carry.restore("spec.imagePullSecrets").unwrap_or_default(),
        }
    }

    /// The old `function` of a v1 spec; the rest travels in the carry.
    pub fn spec_from_hub(
        s: crate::crd::KeptnTaskDefinitionSpec,
        carry: &mut Carry,
    ) -> Option<FunctionSpec> {
        carry.keep_present("spec.python", &s.python);
        carry.keep("spec.container", &s.container);
        if s.retries != default_retries_i32() {
            carry.keep("spec.retries", &s.retries);
        }
        if s.timeout != default_timeout() {
            carry.keep("spec.timeout", &s.timeout);
        }
        carry.keep("spec.serviceAccount", &s.service_account);
        carry.keep(
            "spec.automountServiceAccountToken",
            &s.automount_service_account_token,
        );
        if s.ttl_seconds_after_finished != default_ttl_seconds_after_finished() {
            carry.keep(
                "spec.ttlSecondsAfterFinished",
                &s.ttl_seconds_after_finished,
            );
        }
        carry.keep("spec.imagePullSecrets", &s.image_pull_secrets);
        let function = s.deno.map(|d| {
            carry.keep("spec.function.cmdParameters", &d.cmd_parameters);
            FunctionSpec {
                function_ref: d.function_ref,
                inline: d.inline,
                http_ref: d.http_ref,
                config_map_ref: d.config_map_ref,
                parameters: d.parameters,
                secure_parameters: d.secure_parameters,
            }
        });
        if s.python.is_some() || s.container.is_some() {
            carry.keep_present(FUNCTION_AS_READ, &function);
        }
        function
    }

    /// The function a carried python or container runtime was read next to.
    const FUNCTION_AS_READ: &str = "spec.function (read beside python or container)";
}

/// v1alpha1 and v1alpha2 have the same fields.
macro_rules! definition_with_function_only {
    ($version:literal) => {
        use super::legacy::{self, FunctionSpec};
        use super::*;

        #[derive(
            kube::CustomResource,
            Clone,
            Debug,
            Default,
            PartialEq,
            Serialize,
            Deserialize,
            JsonSchema,
        )]
        #[kube(
                    group = "lifecycle.keptn.sh",
                    version = $version,
                    kind = "KeptnTaskDefinition",
                    doc = "What a KeptnTask runs (served for older manifests; v1 is stored).",
                    namespaced,
                    status = "KeptnTaskDefinitionStatus",
                    derive = "PartialEq"
                )]
        #[serde(rename_all = "camelCase")]
        pub struct KeptnTaskDefinitionSpec {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub function: Option<FunctionSpec>,
        }

        impl Convert for KeptnTaskDefinition {
            type Hub = crate::crd::KeptnTaskDefinition;

            fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
                Ok(crate::crd::KeptnTaskDefinition {
                    metadata: self.metadata,
                    spec: legacy::spec_to_hub(self.spec.function, carry),
                    status: self.status,
                })
            }

            fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
                Ok(KeptnTaskDefinition {
                    metadata: hub.metadata,
                    spec: KeptnTaskDefinitionSpec {
                        function: legacy::spec_from_hub(hub.spec, carry),
                    },
                    status: hub.status,
                })
            }
        }
    };
}

pub mod v1alpha1 {
    //! KeptnTaskDefinition with a Deno `function` only.
    definition_with_function_only!("v1alpha1");
}

pub mod v1alpha2 {
    //! KeptnTaskDefinition as v1alpha1.
    definition_with_function_only!("v1alpha2");
}

/// Set on a v1 object whose `deno` was written as `function`, so that it reads back as written.
const DENO_WRITTEN_AS_FUNCTION: &str = "spec.function";

/// A stored `function` next to another runtime, which Keptn ignored and v1 cannot hold.
const FUNCTION_IGNORED: &str = "spec.function (beside another runtime)";

/// Why a write with `function` next to another runtime is refused.
const FUNCTION_BESIDE_RUNTIME: &str = "spec.function is the deprecated name of deno and cannot be \
    set next to deno, python or container (Keptn ignored it there): remove spec.function, or \
    write the function as spec.deno and remove the other runtime";

/// v1alpha3 and v1beta1 have the same fields: v1's and `function`.
macro_rules! definition_with_runtimes {
    ($version:literal) => {
        use super::*;

        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema,
        )]
        #[kube(
            group = "lifecycle.keptn.sh",
            version = $version,
            kind = "KeptnTaskDefinition",
            doc = "What a KeptnTask runs (served for older manifests; v1 is stored).",
            namespaced,
            status = "KeptnTaskDefinitionStatus",
            derive = "PartialEq"
        )]
        #[serde(rename_all = "camelCase")]
        // Keptn ran the other runtime and silently ignored `function` next to it; a write at this
        // version says so instead. Checked by the API server on writes at this version only, so
        // a stored object of that shape still reads (A24).
        #[schemars(extend("x-kubernetes-validations" = [{
            "rule": "!has(self.function) || !(has(self.deno) || has(self.python) || has(self.container))",
            "message": FUNCTION_BESIDE_RUNTIME,
        }]))]
        pub struct KeptnTaskDefinitionSpec {
            /// Deprecated name of `deno`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub function: Option<RuntimeSpec>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub python: Option<RuntimeSpec>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub deno: Option<RuntimeSpec>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub container: Option<Container>,
            #[serde(default = "default_retries_i32")]
            pub retries: i32,
            #[serde(default = "default_timeout")]
            pub timeout: Duration,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub service_account: Option<ServiceAccountSpec>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub automount_service_account_token: Option<AutomountServiceAccountTokenSpec>,
            #[serde(default = "default_ttl_seconds_after_finished")]
            pub ttl_seconds_after_finished: i32,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub image_pull_secrets: Vec<ImagePullSecret>,
        }

        impl Convert for KeptnTaskDefinition {
            type Hub = crate::crd::KeptnTaskDefinition;

            fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
                let s = self.spec;
                let deno = match s.function {
                    None => s.deno,
                    // Only stored objects get here (writes are refused by the schema rule); the
                    // other runtime is what Keptn ran, and the function is kept as written.
                    Some(function)
                        if s.deno.is_some() || s.python.is_some() || s.container.is_some() =>
                    {
                        carry.keep_present(FUNCTION_IGNORED, &Some(function));
                        s.deno
                    }
                    Some(function) => {
                        carry.keep(DENO_WRITTEN_AS_FUNCTION, &true);
                        Some(function)
                    }
                };
                Ok(crate::crd::KeptnTaskDefinition {
                    metadata: self.metadata,
                    spec: crate::crd::KeptnTaskDefinitionSpec {
                        python: s.python,
                        deno,
                        container: s.container,
                        retries: s.retries,
                        timeout: s.timeout,
                        service_account: s.service_account,
                        automount_service_account_token: s.automount_service_account_token,
                        ttl_seconds_after_finished: s.ttl_seconds_after_finished,
                        image_pull_secrets: s.image_pull_secrets,
                    },
                    status: self.status,
                })
            }

            fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
                let s = hub.spec;
                let as_function = carry.restore::<bool>(DENO_WRITTEN_AS_FUNCTION) == Some(true)
                    && s.python.is_none()
                    && s.container.is_none();
                let (function, deno) = if as_function {
                    (s.deno, None)
                } else {
                    (carry.restore(FUNCTION_IGNORED), s.deno)
                };
                Ok(KeptnTaskDefinition {
                    metadata: hub.metadata,
                    spec: KeptnTaskDefinitionSpec {
                        function,
                        python: s.python,
                        deno,
                        container: s.container,
                        retries: s.retries,
                        timeout: s.timeout,
                        service_account: s.service_account,
                        automount_service_account_token: s.automount_service_account_token,
                        ttl_seconds_after_finished: s.ttl_seconds_after_finished,
                        image_pull_secrets: s.image_pull_secrets,
                    },
                    status: hub.status,
                })
            }
        }
    };
}

pub mod v1alpha3 {
    //! KeptnTaskDefinition with Deno, Python and container runtimes, and `function` deprecated.
    definition_with_runtimes!("v1alpha3");
}

pub mod v1beta1 {
    //! KeptnTaskDefinition as v1alpha3.
    definition_with_runtimes!("v1beta1");
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::convert;
    use super::*;

    const V1: &str = "lifecycle.keptn.sh/v1";

    fn normal<T: Serialize + serde::de::DeserializeOwned>(x: &Value) -> Value {
        serde_json::to_value(serde_json::from_value::<T>(x.clone()).unwrap()).unwrap()
    }

    fn back<T: Serialize + serde::de::DeserializeOwned>(hub: &Value, version: &str, old: &Value) {
        let again = convert(hub.clone(), &format!("lifecycle.keptn.sh/{version}")).unwrap();
        assert_eq!(normal::<T>(&again), normal::<T>(old));
    }

    fn v1_round_trip(v1: &Value, version: &str) -> Value {
        let old = convert(v1.clone(), &format!("lifecycle.keptn.sh/{version}")).unwrap();
        let again = convert(old.clone(), V1).unwrap();
        assert_eq!(
            normal::<crate::crd::KeptnTaskDefinition>(&again),
            normal::<crate::crd::KeptnTaskDefinition>(v1)
        );
        old
    }

    fn python_container_v1() -> Value {
        json!({
            "apiVersion": V1,
            "kind": "KeptnTaskDefinition",
            "metadata": {"name": "smoke", "namespace": "podtato"},
            "spec": {
                "container": {"name": "smoke", "image": "curlimages/curl:8.5.0",
                              "args": ["-f", "http://frontend"]},
                "retries": 2,
                "timeout": "30s",
                "serviceAccount": {"name": "tasks"},
                "automountServiceAccountToken": {"type": false},
                "ttlSecondsAfterFinished": 60,
                "imagePullSecrets": [{"name": "registry"}]
            },
            "status": {"function": {"configMap": ""}}
        })
    }

    fn legacy<T: Serialize + serde::de::DeserializeOwned>(version: &str) {
        let old = json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnTaskDefinition",
            "metadata": {"name": "slack-notify", "namespace": "podtato"},
            "spec": {
                "function": {
                    "httpRef": {"url": "https://example.com/notify.ts"},
                    "parameters": {"map": {"channel": "#deploys"}},
                    "secureParameters": {"secret": "slack-token"}
                }
            },
            "status": {"function": {"configMap": "keptnfn-slack-notify"}}
        });
        let hub = convert(old.clone(), V1).unwrap();
        assert_eq!(
            hub["spec"],
            json!({
                "deno": {
                    "httpRef": {"url": "https://example.com/notify.ts"},
                    "parameters": {"map": {"channel": "#deploys"}},
                    "secureParameters": {"secret": "slack-token"}
                },
                "retries": 10,
                "timeout": "5m",
                "ttlSecondsAfterFinished": 300
            })
        );
        assert_eq!(
            hub["status"]["function"]["configMap"],
            "keptnfn-slack-notify"
        );
        assert!(hub["metadata"].get("annotations").is_none());
        back::<T>(&hub, version, &old);

        // a v1 container definition has no place here but reads back whole
        let old = v1_round_trip(&python_container_v1(), version);
        assert_eq!(old["spec"], json!({}));
        // a deno function's cmdParameters too
        let mut v1 = python_container_v1();
        v1["spec"] = json!({"deno": {"inline": {"code": "console.log(1)"}, "cmdParameters": "-v"}});
        let old = v1_round_trip(&v1, version);
        assert_eq!(
            old["spec"],
            json!({"function": {"inline": {"code": "console.log(1)"}}})
        );
    }

    #[test]
    fn v1alpha1_function_is_deno() {
        legacy::<v1alpha1::KeptnTaskDefinition>("v1alpha1");
    }

    #[test]
    fn v1alpha2_function_is_deno() {
        legacy::<v1alpha2::KeptnTaskDefinition>("v1alpha2");
    }

    #[test]
    fn v1alpha1_function_written_over_a_carried_container_replaces_it() {
        let old = v1_round_trip(&python_container_v1(), "v1alpha1");
        let mut old = old;
        old["spec"] = json!({"function": {"inline": {"code": "console.log(1)"}}});
        let hub = convert(old, V1).unwrap();
        assert!(hub["spec"].get("container").is_none());
        assert_eq!(hub["spec"]["deno"]["inline"]["code"], "console.log(1)");
    }

    fn runtimes<T: Serialize + serde::de::DeserializeOwned>(version: &str) {
        let old = json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnTaskDefinition",
            "metadata": {"name": "check-entry", "namespace": "podtato"},
            "spec": {
                "python": {
                    "inline": {"code": "import os\nprint(os.environ['DATA'])"},
                    "parameters": {"map": {"url": "http://frontend"}},
                    "cmdParameters": "-h"
                },
                "retries": 3,
                "timeout": "1m",
                "serviceAccount": {"name": "tasks"},
                "ttlSecondsAfterFinished": 120
            }
        });
        let hub = convert(old.clone(), V1).unwrap();
        let mut expected = old["spec"].clone();
        expected["retries"] = json!(3);
        assert_eq!(hub["spec"], expected);
        back::<T>(&hub, version, &old);

        // the deprecated function alone is deno
        let old = json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnTaskDefinition",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"function": {"inline": {"code": "console.log('hi')"}}}
        });
        let hub = convert(old.clone(), V1).unwrap();
        assert_eq!(
            hub["spec"]["deno"],
            json!({"inline": {"code": "console.log('hi')"}})
        );
        assert!(hub["spec"].get("function").is_none());
        back::<T>(&hub, version, &old);

        v1_round_trip(&python_container_v1(), version);
    }

    #[test]
    fn v1alpha3_moves_runtimes_and_maps_function_to_deno() {
        runtimes::<v1alpha3::KeptnTaskDefinition>("v1alpha3");
    }

    #[test]
    fn v1beta1_moves_runtimes_and_maps_function_to_deno() {
        runtimes::<v1beta1::KeptnTaskDefinition>("v1beta1");
    }

    #[test]
    fn function_next_to_another_runtime_is_refused_on_write_and_kept_when_stored() {
        for version in ["v1alpha3", "v1beta1"] {
            let old = json!({
                "apiVersion": format!("lifecycle.keptn.sh/{version}"),
                "kind": "KeptnTaskDefinition",
                "metadata": {"name": "both", "namespace": "default"},
                "spec": {
                    "function": {"inline": {"code": "console.log('old')"}},
                    "container": {"name": "c", "image": "busybox"}
                }
            });
            // The write is refused by the version's schema, with the field named.
            let spoke = super::super::spokes()
                .iter()
                .find(|s| s.kind == "KeptnTaskDefinition" && s.version == version)
                .expect("served");
            let crd = (spoke.crd)();
            let rules = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema")
                ["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
                .clone();
            assert!(
                rules[0]["rule"]
                    .as_str()
                    .is_some_and(|r| r.contains("has(self.function)"))
            );
            assert!(
                rules[0]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("spec.function"))
            );
            // An object of that shape already stored converts: the container runs (as in
            // Keptn), the function comes back at this version.
            let v1 = convert(old.clone(), V1).expect("a stored object still reads");
            assert_eq!(v1["spec"]["container"]["image"], "busybox");
            assert!(v1["spec"].get("deno").is_none());
            let back = convert(v1, &format!("lifecycle.keptn.sh/{version}")).expect("back");
            let normal = |v: Value| (spoke.normalize)(v).expect("parses")["spec"].clone();
            assert_eq!(normal(back), normal(old));
        }
    }
}
