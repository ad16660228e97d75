//! The KeptnTask and KeptnEvaluation objects the phases create (B §5.1, §6.1). Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use shared::crd::{
    KeptnAppVersion, KeptnEvaluation, KeptnEvaluationDefinition, KeptnEvaluationSpec, KeptnTask,
    KeptnTaskDefinition, KeptnTaskSpec, KeptnWorkloadVersion, TaskContext,
};

/// What a check runs for: the app or workload version that owns it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOwner {
    pub owner: OwnerReference,
    pub namespace: String,
    pub app_name: String,
    /// Set for app checks.
    pub app_version: String,
    /// KWV `spec.workloadName`; empty for app checks.
    pub workload_name: String,
    /// Set for workload checks.
    pub workload_version: String,
    /// Metadata handed to tasks (app context overlaid by the workload's).
    pub metadata: BTreeMap<String, String>,
}

impl CheckOwner {
    /// The owner identity of a KeptnAppVersion.
    pub fn app(kav: &KeptnAppVersion, owner: OwnerReference) -> Self {
        CheckOwner {
            owner,
            namespace: kav.metadata.namespace.clone().unwrap_or_default(),
            app_name: kav.spec.app_name.clone(),
            app_version: kav.spec.app.version.clone(),
            workload_name: String::new(),
            workload_version: String::new(),
            metadata: kav.spec.context.metadata.clone(),
        }
    }

    /// The owner identity of a KeptnWorkloadVersion whose status holds (or is about to hold)
    /// `app_context_metadata`; workload metadata wins on collisions.
    pub fn workload(
        kwv: &KeptnWorkloadVersion,
        app_context_metadata: &BTreeMap<String, String>,
        owner: OwnerReference,
    ) -> Self {
        let mut metadata = app_context_metadata.clone();
        metadata.extend(kwv.spec.workload.metadata.clone());
        CheckOwner {
            owner,
            namespace: kwv.metadata.namespace.clone().unwrap_or_default(),
            app_name: kwv.spec.workload.app.clone(),
            app_version: String::new(),
            workload_name: kwv.spec.workload_name.clone(),
            workload_version: kwv.spec.workload.version.clone(),
            metadata,
        }
    }

    fn object_type(&self) -> &'static str {
        if self.workload_name.is_empty() {
            "App"
        } else {
            "Workload"
        }
    }
}

/// A KeptnTask (B §5.1): labels and annotations from the definition, controller owner ref.
pub fn task(
    name: &str,
    owner: &CheckOwner,
    definition: &KeptnTaskDefinition,
    check_type: &str,
) -> KeptnTask {
    let non_empty = |m: &Option<BTreeMap<String, String>>| m.clone().filter(|m| !m.is_empty());
    KeptnTask {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(owner.namespace.clone()),
            labels: non_empty(&definition.metadata.labels),
            annotations: non_empty(&definition.metadata.annotations),
            owner_references: Some(vec![owner.owner.clone()]),
            ..Default::default()
        },
        spec: KeptnTaskSpec {
            task_definition: definition.metadata.name.clone().unwrap_or_default(),
            context: TaskContext {
                workload_name: owner.workload_name.clone(),
                app_name: owner.app_name.clone(),
                app_version: owner.app_version.clone(),
                workload_version: owner.workload_version.clone(),
                task_type: check_type.to_owned(),
                object_type: owner.object_type().to_owned(),
                metadata: owner.metadata.clone(),
            },
            parameters: None,
            secure_parameters: None,
            check_type: check_type.to_owned(),
            retries: definition.spec.retries,
            timeout: definition.spec.timeout.go_formatted(),
        },
        status: None,
    }
}

/// A KeptnEvaluation (B §6.1): no labels, controller owner ref, retries from the definition.
pub fn evaluation(
    name: &str,
    owner: &CheckOwner,
    definition: &KeptnEvaluationDefinition,
    check_type: &str,
) -> KeptnEvaluation {
    KeptnEvaluation {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(owner.namespace.clone()),
            owner_references: Some(vec![owner.owner.clone()]),
            ..Default::default()
        },
        spec: KeptnEvaluationSpec {
            workload: owner.workload_name.clone(),
            workload_version: owner.workload_version.clone(),
            app_name: owner.app_name.clone(),
            app_version: owner.app_version.clone(),
            evaluation_definition: definition.metadata.name.clone().unwrap_or_default(),
            check_type: check_type.to_owned(),
            retries: definition.spec.retries,
            retry_interval: definition.spec.retry_interval.go_formatted(),
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use shared::crd::{
        Duration, KeptnEvaluationDefinitionSpec, KeptnTaskDefinitionSpec,
        KeptnWorkloadVersionStatus,
    };

    fn owner_ref(kind: &str) -> OwnerReference {
        OwnerReference {
            api_version: "lifecycle.keptn.sh/v1".into(),
            kind: kind.into(),
            name: "x".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn workload_task_context_and_metadata_overlay() {
        let kwv = fixtures::kwv("waiter-waiter-0.4")
            .in_namespace("ns")
            .metadata(&[("k", "workload")])
            .status(KeptnWorkloadVersionStatus {
                app_context_metadata: [
                    ("k".to_owned(), "app".to_owned()),
                    ("env".to_owned(), "prod".to_owned()),
                ]
                .into(),
                ..Default::default()
            })
            .build();
        let app_context = kwv.status.clone().unwrap_or_default().app_context_metadata;
        let owner = CheckOwner::workload(&kwv, &app_context, owner_ref("KeptnWorkloadVersion"));
        let mut def = KeptnTaskDefinition::new("hello", KeptnTaskDefinitionSpec::default());
        def.metadata.labels = Some([("l".to_owned(), "v".to_owned())].into());
        def.spec.retries = 3;
        def.spec.timeout = Duration::new("1m");
        let t = task("pre-hello-12345", &owner, &def, "pre");
        assert_eq!(t.metadata.labels, def.metadata.labels);
        assert_eq!(t.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(t.spec.task_definition, "hello");
        assert_eq!(t.spec.retries, 3);
        assert_eq!(
            t.spec.timeout,
            Duration::new("1m0s"),
            "as Keptn's metav1.Duration copy prints it"
        );
        let c = &t.spec.context;
        assert_eq!(
            (
                c.workload_name.as_str(),
                c.app_name.as_str(),
                c.app_version.as_str(),
                c.workload_version.as_str(),
                c.task_type.as_str(),
                c.object_type.as_str()
            ),
            ("waiter-waiter", "waiter", "", "0.4", "pre", "Workload")
        );
        assert_eq!(c.metadata.get("k").map(String::as_str), Some("workload"));
        assert_eq!(c.metadata.get("env").map(String::as_str), Some("prod"));
    }

    #[test]
    fn app_evaluation_fields() {
        let kav = fixtures::kav("waiter-0.4-6b86b273")
            .in_namespace("ns")
            .build();
        let owner = CheckOwner::app(&kav, owner_ref("KeptnAppVersion"));
        let def = KeptnEvaluationDefinition::new(
            "slo",
            KeptnEvaluationDefinitionSpec {
                objectives: vec![],
                retries: 4,
                retry_interval: Duration::new("2s"),
            },
        );
        let e = evaluation("pre-eval-slo-12345", &owner, &def, "pre-eval");
        assert_eq!(e.spec.app_name, "waiter");
        assert_eq!(e.spec.app_version, "0.4");
        assert_eq!(e.spec.workload, "");
        assert_eq!(e.spec.workload_version, "");
        assert_eq!(e.spec.evaluation_definition, "slo");
        assert_eq!(e.spec.check_type, "pre-eval");
        assert_eq!(e.spec.retries, 4);
        assert_eq!(e.metadata.labels, None);
        assert_eq!(
            e.metadata.owner_references.unwrap()[0].kind,
            "KeptnAppVersion"
        );
    }
}
