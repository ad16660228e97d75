//! KeptnEvaluationDefinition at v1alpha1, v1alpha2, v1alpha3 and v1beta1.
//!
//! v1alpha1 and v1alpha2 named a provider (`source`) and gave each objective as a raw query to it;
//! from v1alpha3 on an objective refers to a KeptnMetric, which holds provider and query. A raw
//! query has no KeptnMetric to refer to, and Keptn's `strategy: None` turned such an objective
//! into one without a metric, so writing one is refused with what to write instead (a schema
//! rule, checked on writes at these versions only; a stored one still reads, its query carried).
//! An objective
//! whose `query` is empty names the KeptnMetric to evaluate: that is the form a v1 definition
//! reads back as at these versions. `retries` and `retryInterval` came with v1beta1; before,
//! they are carried when not the defaults.

use super::{Carry, Convert, Refusal, Spoke};

/// Carry key of raw queries, by objective index, of an object stored before the schema rule.
const RAW_QUERIES: &str = "spec.objectives.query";
use crate::crd::common::{default_retries, default_retry_interval};
use crate::crd::{Duration, KeptnMetricReference};

pub(super) fn spokes() -> Vec<Spoke> {
    vec![
        Spoke::of::<v1alpha1::KeptnEvaluationDefinition>(),
        Spoke::of::<v1alpha2::KeptnEvaluationDefinition>(),
        Spoke::of::<v1alpha3::KeptnEvaluationDefinition>(),
        Spoke::of::<v1beta1::KeptnEvaluationDefinition>(),
    ]
}

/// v1's failure conditions, kept on the way to a version without them unless the defaults.
fn keep_failure_conditions(carry: &mut Carry, retries: i64, retry_interval: &Duration) {
    if retries != default_retries() {
        carry.keep("spec.retries", &retries);
    }
    if *retry_interval != default_retry_interval() {
        carry.keep("spec.retryInterval", retry_interval);
    }
}

fn restore_failure_conditions(carry: &mut Carry) -> (i64, Duration) {
    (
        carry
            .restore("spec.retries")
            .unwrap_or_else(default_retries),
        carry
            .restore("spec.retryInterval")
            .unwrap_or_else(default_retry_interval),
    )
}

/// Carry key of v1's metric references when one has a namespace (the objectives keep the name).
const METRIC_REFS: &str = "spec.objectives.keptnMetricRef";

/// v1alpha1 and v1alpha2 have the same fields: a provider and raw queries.
macro_rules! definition_with_queries {
    ($version:literal) => {
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        use super::*;

        #[derive(
            kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema,
        )]
        #[kube(
            group = "lifecycle.keptn.sh",
            version = $version,
            kind = "KeptnEvaluationDefinition",
            doc = "Objectives an evaluation checks (served for older manifests; v1 is stored).",
            namespaced,
            status = "String",
            derive = "PartialEq"
        )]
        #[serde(rename_all = "camelCase")]
        pub struct KeptnEvaluationDefinitionSpec {
            /// The provider the queries were sent to.
            pub source: String,
            pub objectives: Vec<Objective>,
        }

        /// A raw provider query compared with a target.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        #[schemars(extend("x-kubernetes-validations" = [{
            "rule": "self.query == ''",
            "message": RAW_QUERY,
        }]))]
        pub struct Objective {
            pub name: String,
            pub query: String,
            pub evaluation_target: String,
        }

        impl Convert for KeptnEvaluationDefinition {
            type Hub = crate::crd::KeptnEvaluationDefinition;

            fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
                let s = self.spec;
                let refs: Vec<KeptnMetricReference> =
                    carry.restore(METRIC_REFS).unwrap_or_default();
                // Raw queries only reach here from objects stored before the schema rule: kept
                // for the way back, the objective names the KeptnMetric of its name.
                let queries: Vec<&str> = s.objectives.iter().map(|o| o.query.as_str()).collect();
                if queries.iter().any(|q| !q.is_empty()) {
                    carry.keep(RAW_QUERIES, &queries);
                }
                let objectives = s
                    .objectives
                    .into_iter()
                    .enumerate()
                    .map(|(i, o)| {
                        // The namespace comes back only for the objective it was taken from.
                        let namespace = refs
                            .get(i)
                            .filter(|r| r.name == o.name)
                            .map(|r| r.namespace.clone())
                            .unwrap_or_default();
                        crate::crd::Objective {
                            keptn_metric_ref: KeptnMetricReference {
                                name: o.name,
                                namespace,
                            },
                            evaluation_target: o.evaluation_target,
                        }
                    })
                    .collect();
                carry.keep("spec.source", &s.source);
                let (retries, retry_interval) = restore_failure_conditions(carry);
                Ok(crate::crd::KeptnEvaluationDefinition {
                    metadata: self.metadata,
                    spec: crate::crd::KeptnEvaluationDefinitionSpec {
                        objectives,
                        retries,
                        retry_interval,
                    },
                    status: self.status,
                })
            }

            fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
                let s = hub.spec;
                keep_failure_conditions(carry, s.retries, &s.retry_interval);
                if s
                    .objectives
                    .iter()
                    .any(|o| !o.keptn_metric_ref.namespace.is_empty())
                {
                    let refs: Vec<&KeptnMetricReference> =
                        s.objectives.iter().map(|o| &o.keptn_metric_ref).collect();
                    carry.keep(METRIC_REFS, &refs);
                }
                Ok(KeptnEvaluationDefinition {
                    metadata: hub.metadata,
                    spec: KeptnEvaluationDefinitionSpec {
                        source: carry.restore("spec.source").unwrap_or_default(),
                        objectives: {
                            let queries: Vec<String> =
                                carry.restore(RAW_QUERIES).unwrap_or_default();
                            s.objectives
                                .into_iter()
                                .enumerate()
                                .map(|(i, o)| Objective {
                                    name: o.keptn_metric_ref.name,
                                    query: queries.get(i).cloned().unwrap_or_default(),
                                    evaluation_target: o.evaluation_target,
                                })
                            .collect()
                        },
                    },
                    status: hub.status,
                })
            }
        }
    };
}

/// Why a write of a raw query is refused.
const RAW_QUERY: &str = "spec.objectives[].query: objectives are evaluated only through \
    KeptnMetrics since v1alpha3; create a KeptnMetric (metrics.keptn.sh/v1) with the provider and \
    this query, then refer to it: `keptnMetricRef: {name: <metric>}` at v1, or `name: <metric>` \
    with `query: \"\"` here";

pub mod v1alpha1 {
    //! KeptnEvaluationDefinition with a provider and raw queries.
    definition_with_queries!("v1alpha1");
}

pub mod v1alpha2 {
    //! KeptnEvaluationDefinition with a provider and raw queries (as v1alpha1).
    definition_with_queries!("v1alpha2");
}

pub mod v1alpha3 {
    //! KeptnEvaluationDefinition on KeptnMetrics, without failure conditions.

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    pub use crate::crd::Objective;

    #[derive(kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1alpha3",
        kind = "KeptnEvaluationDefinition",
        doc = "Objectives an evaluation checks (served for older manifests; v1 is stored).",
        namespaced,
        status = "String",
        derive = "PartialEq"
    )]
    #[serde(rename_all = "camelCase")]
    pub struct KeptnEvaluationDefinitionSpec {
        pub objectives: Vec<Objective>,
    }

    impl Convert for KeptnEvaluationDefinition {
        type Hub = crate::crd::KeptnEvaluationDefinition;

        fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal> {
            let (retries, retry_interval) = restore_failure_conditions(carry);
            Ok(crate::crd::KeptnEvaluationDefinition {
                metadata: self.metadata,
                spec: crate::crd::KeptnEvaluationDefinitionSpec {
                    objectives: self.spec.objectives,
                    retries,
                    retry_interval,
                },
                status: self.status,
            })
        }

        fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal> {
            let s = hub.spec;
            keep_failure_conditions(carry, s.retries, &s.retry_interval);
            Ok(KeptnEvaluationDefinition {
                metadata: hub.metadata,
                spec: KeptnEvaluationDefinitionSpec {
                    objectives: s.objectives,
                },
                status: hub.status,
            })
        }
    }
}

pub mod v1beta1 {
    //! KeptnEvaluationDefinition as at v1.

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    pub use crate::crd::Objective;

    #[derive(kube::CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "lifecycle.keptn.sh",
        version = "v1beta1",
        kind = "KeptnEvaluationDefinition",
        doc = "Objectives an evaluation checks (served for older manifests; v1 is stored).",
        namespaced,
        status = "String",
        derive = "PartialEq"
    )]
    #[serde(rename_all = "camelCase")]
    pub struct KeptnEvaluationDefinitionSpec {
        pub objectives: Vec<Objective>,
        #[serde(default = "default_retries")]
        pub retries: i64,
        #[serde(default = "default_retry_interval")]
        pub retry_interval: Duration,
    }

    impl Convert for KeptnEvaluationDefinition {
        type Hub = crate::crd::KeptnEvaluationDefinition;

        fn to_hub(self, _: &mut Carry) -> Result<Self::Hub, Refusal> {
            let s = self.spec;
            Ok(crate::crd::KeptnEvaluationDefinition {
                metadata: self.metadata,
                spec: crate::crd::KeptnEvaluationDefinitionSpec {
                    objectives: s.objectives,
                    retries: s.retries,
                    retry_interval: s.retry_interval,
                },
                status: self.status,
            })
        }

        fn from_hub(hub: Self::Hub, _: &mut Carry) -> Result<Self, Refusal> {
            let s = hub.spec;
            Ok(KeptnEvaluationDefinition {
                metadata: hub.metadata,
                spec: KeptnEvaluationDefinitionSpec {
                    objectives: s.objectives,
                    retries: s.retries,
                    retry_interval: s.retry_interval,
                },
                status: hub.status,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::Resource;
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::super::{CARRY_ANNOTATION_PREFIX, convert};
    use super::*;

    type Hub = crate::crd::KeptnEvaluationDefinition;

    fn normalised<T: Serialize + DeserializeOwned>(v: Value) -> Value {
        serde_json::to_value(serde_json::from_value::<T>(v).expect("parses")).expect("serialises")
    }

    /// `old` converts to `v1` exactly, and `v1` converts back to `old`.
    fn old_to_v1_and_back<T>(old: Value, v1: Value)
    where
        T: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let hub = convert(old.clone(), "lifecycle.keptn.sh/v1").expect("converts to v1");
        assert_eq!(normalised::<Hub>(hub.clone()), normalised::<Hub>(v1));
        let back = convert(hub, &T::api_version(&())).expect("converts back");
        assert_eq!(normalised::<T>(back), normalised::<T>(old));
    }

    /// `v1` converts to the older version and back to itself; returns the older form.
    fn v1_to_old_and_back<T>(v1: Value) -> Value
    where
        T: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let old = convert(v1.clone(), &T::api_version(&())).expect("converts to the old version");
        let back = convert(old.clone(), "lifecycle.keptn.sh/v1").expect("converts back");
        assert_eq!(normalised::<Hub>(back), normalised::<Hub>(v1));
        normalised::<T>(old)
    }

    fn metadata() -> Value {
        json!({"name": "app-pre-deploy-eval-2", "namespace": "podtato-kubectl"})
    }

    fn carried(version: &str, fields: Value) -> Value {
        json!({
            "name": "app-pre-deploy-eval-2",
            "namespace": "podtato-kubectl",
            "annotations": {format!("{CARRY_ANNOTATION_PREFIX}{version}"): fields.to_string()}
        })
    }

    /// A v1 definition using everything v1 has.
    fn v1_manifest() -> Value {
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1",
            "kind": "KeptnEvaluationDefinition",
            "metadata": metadata(),
            "spec": {
                "objectives": [
                    {"keptnMetricRef": {"name": "available-cpus", "namespace": "keptn-system"}, "evaluationTarget": ">1"},
                    {"keptnMetricRef": {"name": "error-rate"}, "evaluationTarget": "<0.1"}
                ],
                "retries": 3,
                "retryInterval": "30s"
            }
        })
    }

    fn metric_objectives() -> Value {
        json!([
            {"keptnMetricRef": {"name": "available-cpus", "namespace": "keptn-system"}, "evaluationTarget": ">1"},
            {"keptnMetricRef": {"name": "error-rate"}, "evaluationTarget": "<0.1"}
        ])
    }

    fn named_objectives() -> Value {
        json!([
            {"name": "available-cpus", "query": "", "evaluationTarget": ">1"},
            {"name": "error-rate", "query": "", "evaluationTarget": "<0.1"}
        ])
    }

    /// A user who moved the queries into KeptnMetrics but kept the old apiVersion.
    fn named_manifest(version: &str) -> Value {
        json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnEvaluationDefinition",
            "metadata": metadata(),
            "spec": {"source": "prometheus", "objectives": named_objectives()}
        })
    }

    fn named_manifest_in_v1(version: &str) -> Value {
        json!({
            "apiVersion": "lifecycle.keptn.sh/v1",
            "kind": "KeptnEvaluationDefinition",
            "metadata": carried(version, json!({"spec.source": "prometheus"})),
            "spec": {
                "objectives": [
                    {"keptnMetricRef": {"name": "available-cpus"}, "evaluationTarget": ">1"},
                    {"keptnMetricRef": {"name": "error-rate"}, "evaluationTarget": "<0.1"}
                ],
                "retries": 10,
                "retryInterval": "5s"
            }
        })
    }

    fn with_queries<T>(version: &str)
    where
        T: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        old_to_v1_and_back::<T>(named_manifest(version), named_manifest_in_v1(version));
        let old = v1_to_old_and_back::<T>(v1_manifest());
        assert_eq!(old["spec"]["source"], json!(""));
        assert_eq!(old["spec"]["objectives"], named_objectives());
    }

    fn raw_query_is_refused_on_write_and_kept_when_stored(version: &str) {
        let manifest = json!({
            "apiVersion": format!("lifecycle.keptn.sh/{version}"),
            "kind": "KeptnEvaluationDefinition",
            "metadata": metadata(),
            "spec": {
                "source": "prometheus",
                "objectives": [
                    {"name": "available-cpus", "query": "", "evaluationTarget": ">1"},
                    {"name": "error-rate", "query": "rate(http_errors_total[5m])", "evaluationTarget": "<0.1"}
                ]
            }
        });
        let spoke = super::super::spokes()
            .iter()
            .find(|s| s.kind == "KeptnEvaluationDefinition" && s.version == version)
            .expect("served");
        // A write is refused by the objective's schema rule, which names the field.
        let schema = serde_json::to_value(&(spoke.crd)().spec.versions[0].schema).expect("schema");
        let rule = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["objectives"]["items"]
            ["x-kubernetes-validations"][0];
        assert_eq!(rule["rule"], "self.query == ''");
        assert!(
            rule["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("spec.objectives[].query"))
        );
        // One stored before the rule still reads, and its query comes back at this version.
        let v1 = convert(manifest.clone(), "lifecycle.keptn.sh/v1").expect("reads");
        assert_eq!(
            v1["spec"]["objectives"][1]["keptnMetricRef"]["name"],
            "error-rate"
        );
        let back = convert(v1, &format!("lifecycle.keptn.sh/{version}")).expect("back");
        let normal = |v: Value| (spoke.normalize)(v).expect("parses")["spec"].clone();
        assert_eq!(normal(back), normal(manifest));
    }

    #[test]
    fn v1alpha1_named_objectives_refer_to_metrics() {
        with_queries::<v1alpha1::KeptnEvaluationDefinition>("v1alpha1");
    }

    #[test]
    fn v1alpha2_named_objectives_refer_to_metrics() {
        with_queries::<v1alpha2::KeptnEvaluationDefinition>("v1alpha2");
    }

    #[test]
    fn v1alpha1_raw_query_is_refused() {
        raw_query_is_refused_on_write_and_kept_when_stored("v1alpha1");
    }

    #[test]
    fn v1alpha2_raw_query_is_refused() {
        raw_query_is_refused_on_write_and_kept_when_stored("v1alpha2");
    }

    #[test]
    fn v1alpha3_gets_default_failure_conditions() {
        let old = json!({
            "apiVersion": "lifecycle.keptn.sh/v1alpha3",
            "kind": "KeptnEvaluationDefinition",
            "metadata": metadata(),
            "spec": {"objectives": metric_objectives()}
        });
        let v1 = json!({
            "apiVersion": "lifecycle.keptn.sh/v1",
            "kind": "KeptnEvaluationDefinition",
            "metadata": metadata(),
            "spec": {"objectives": metric_objectives(), "retries": 10, "retryInterval": "5s"}
        });
        old_to_v1_and_back::<v1alpha3::KeptnEvaluationDefinition>(old, v1);
        let old = v1_to_old_and_back::<v1alpha3::KeptnEvaluationDefinition>(v1_manifest());
        assert_eq!(
            old["metadata"],
            carried(
                "v1",
                json!({"spec.retries": 3, "spec.retryInterval": "30s"})
            )
        );
    }

    #[test]
    fn v1beta1_moves_unchanged() {
        let old = json!({
            "apiVersion": "lifecycle.keptn.sh/v1beta1",
            "kind": "KeptnEvaluationDefinition",
            "metadata": metadata(),
            "spec": {"objectives": metric_objectives(), "retries": 3, "retryInterval": "30s"}
        });
        old_to_v1_and_back::<v1beta1::KeptnEvaluationDefinition>(old, v1_manifest());
        v1_to_old_and_back::<v1beta1::KeptnEvaluationDefinition>(v1_manifest());
    }
}
