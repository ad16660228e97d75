//! KeptnApp → KeptnAppVersion (B §3.2) and KeptnWorkload → KeptnWorkloadVersion (B §3.8). Pure.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_core::Resource;
use shared::crd::{
    KeptnApp, KeptnAppContextSpec, KeptnAppVersion, KeptnAppVersionSpec, KeptnState, KeptnWorkload,
    KeptnWorkloadVersion, KeptnWorkloadVersionSpec,
};
use shared::resolve::{kav_name, kwv_name};

/// What the KeptnApp controller does.
#[derive(Clone, Debug, PartialEq)]
pub struct AppPlan {
    /// The KAV to create if absent.
    pub create: Option<KeptnAppVersion>,
    /// `status.currentVersion` to write, when it differs.
    pub current_version: Option<String>,
    /// Names of older revisions of the same version to deprecate as a whole.
    pub deprecate: Vec<String>,
}

/// Plans the KeptnApp reconcile. Every step is idempotent, so a restart between two of them is
/// harmless (Keptn returns early once the KAV exists; Portcullis finishes the remaining steps).
pub fn plan_app(
    app: &KeptnApp,
    context: Option<&KeptnAppContextSpec>,
    existing: &dyn Fn(&str) -> Option<KeptnState>,
) -> AppPlan {
    let name = app.metadata.name.clone().unwrap_or_default();
    let generation = app.metadata.generation.unwrap_or(1);
    let version = &app.spec.version;
    let kav = kav_name(&name, version, generation);
    let current = app
        .status
        .as_ref()
        .map(|s| s.current_version.clone())
        .unwrap_or_default();
    let create = existing(&kav).is_none().then(|| {
        let previous_version = if current != *version {
            current.clone()
        } else {
            String::new()
        };
        let mut kav_obj = KeptnAppVersion::new(
            &kav,
            KeptnAppVersionSpec {
                context: context.cloned().unwrap_or_default(),
                app: app.spec.clone(),
                app_name: name.clone(),
                previous_version,
                trace_id: Default::default(),
            },
        );
        kav_obj.metadata.namespace = app.metadata.namespace.clone();
        kav_obj.metadata.owner_references = app.controller_owner_ref(&()).map(|o| vec![o]);
        kav_obj
    });
    let deprecate = (1..generation)
        .rev()
        .map(|g| kav_name(&name, version, g))
        .filter(|n| existing(n).is_some_and(|s| s != KeptnState::Deprecated))
        .collect();
    AppPlan {
        create,
        current_version: (current != *version).then(|| version.clone()),
        deprecate,
    }
}

/// What the KeptnWorkload controller does.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadPlan {
    /// Create this KWV if absent.
    Create(Box<KeptnWorkloadVersion>),
    /// Overwrite the KWV's embedded workload spec with the workload's.
    UpdateSpec(Box<KeptnWorkloadVersionSpec>),
    /// No KWV yet, and `status.currentVersion` left alone: the pods' owner is not known yet.
    AwaitPods,
    Nothing,
}

/// The KWV name of a workload: `CRN(workload name, spec.version)`.
pub fn workload_version_name(workload: &KeptnWorkload) -> String {
    kwv_name(
        workload.metadata.name.as_deref().unwrap_or_default(),
        &workload.spec.version,
    )
}

/// Whether the workload's `resourceReference` still names a Deployment: pods are owned by its
/// ReplicaSets, which the first pod's admission records.
pub fn awaits_its_pods(workload: &KeptnWorkload) -> bool {
    workload.spec.resource_reference.kind == "Deployment"
}

/// Whether an app's version must wait before its KeptnAppVersion is created: one of the
/// workloads it lists at their versions was admitted from its Deployment and its pods have not
/// arrived yet (`workload` looks a KeptnWorkload up by name). Keptn creates the app version only
/// after the first pod, and copies the KeptnAppContext into it then; waiting as long gives the
/// context applied together with the Deployment the same time to arrive, so the metadata every
/// task carries is final before the first task is created. Workloads not admitted yet do not
/// hold the app back (an app written by hand lists workloads that come later).
pub fn app_awaits_pods(
    app: &KeptnApp,
    workload: &dyn Fn(&str) -> Option<Arc<KeptnWorkload>>,
) -> bool {
    let app_name = app.metadata.name.as_deref().unwrap_or_default();
    app.spec.workloads.iter().any(|w| {
        workload(&format!("{app_name}-{}", w.name))
            .is_some_and(|wl| wl.spec.version == w.version && awaits_its_pods(&wl))
    })
}

/// Plans the KeptnWorkload reconcile (B §3.8); `existing` is the KWV of the current version.
pub fn plan_workload(
    workload: &KeptnWorkload,
    existing: Option<&KeptnWorkloadVersion>,
) -> WorkloadPlan {
    let name = workload.metadata.name.clone().unwrap_or_default();
    match existing {
        // Admitted from its Deployment (A7), the workload names the Deployment until the first
        // pod of this version names its ReplicaSet. The KWV waits for that owner, so that it is
        // created once with its final spec and keeps generation 1, as Keptn's do.
        None if awaits_its_pods(workload) => WorkloadPlan::AwaitPods,
        None => {
            let current = workload
                .status
                .as_ref()
                .map(|s| s.current_version.clone())
                .unwrap_or_default();
            let previous_version = if current != workload.spec.version {
                current
            } else {
                String::new()
            };
            let kwv = KeptnWorkloadVersion {
                metadata: ObjectMeta {
                    name: Some(workload_version_name(workload)),
                    namespace: workload.metadata.namespace.clone(),
                    owner_references: workload.controller_owner_ref(&()).map(|o| vec![o]),
                    ..Default::default()
                },
                spec: KeptnWorkloadVersionSpec {
                    workload: workload.spec.clone(),
                    workload_name: name,
                    previous_version,
                    trace_id: Default::default(),
                },
                status: None,
            };
            WorkloadPlan::Create(Box::new(kwv))
        }
        Some(kwv) if kwv.spec.workload != workload.spec => {
            let mut spec = kwv.spec.clone();
            spec.workload = workload.spec.clone();
            WorkloadPlan::UpdateSpec(Box::new(spec))
        }
        Some(_) => WorkloadPlan::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use shared::crd::ResourceReference;
    use std::collections::BTreeMap;

    fn app(generation: i64, version: &str, current: &str) -> KeptnApp {
        fixtures::app("waiter")
            .version(version)
            .revision(generation)
            .workloads(&[("waiter", "0.4")])
            .in_namespace("ns")
            .uid("app-uid")
            .generation(generation)
            .current_version(current)
            .build()
    }

    #[test]
    fn first_generation_creates_kav_with_owner_and_context() {
        let ctx = KeptnAppContextSpec {
            pre_deployment_tasks: vec!["t".into()],
            ..Default::default()
        };
        let p = plan_app(&app(1, "0.4", ""), Some(&ctx), &|_| None);
        let kav = p.create.unwrap();
        assert_eq!(kav.metadata.name.as_deref(), Some("waiter-0.4-6b86b273"));
        assert_eq!(kav.metadata.namespace.as_deref(), Some("ns"));
        let owner = &kav.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("KeptnApp", Some(true))
        );
        assert_eq!(kav.spec.app_name, "waiter");
        assert_eq!(kav.spec.context.pre_deployment_tasks, ["t"]);
        assert_eq!(kav.spec.previous_version, "");
        assert_eq!(p.current_version.as_deref(), Some("0.4"));
        assert!(p.deprecate.is_empty());
    }

    #[test]
    fn existing_kav_is_not_recreated() {
        let p = plan_app(&app(1, "0.4", "0.4"), None, &|n| {
            (n == "waiter-0.4-6b86b273").then_some(KeptnState::Progressing)
        });
        assert!(p.create.is_none());
        assert!(p.current_version.is_none());
    }

    #[test]
    fn previous_version_from_status() {
        let p = plan_app(&app(3, "0.5", "0.4"), None, &|_| None);
        assert_eq!(p.create.unwrap().spec.previous_version, "0.4");
    }

    /// §3.2 step 5: older generations of the *same* version are deprecated unless already so.
    #[test]
    fn revision_bump_deprecates_older_revisions_of_same_version() {
        let states: BTreeMap<String, KeptnState> = [
            ("waiter-0.4-6b86b273".to_owned(), KeptnState::Failed),
            ("waiter-0.4-d4735e3a".to_owned(), KeptnState::Deprecated),
        ]
        .into();
        let p = plan_app(&app(3, "0.4", "0.4"), None, &|n| states.get(n).cloned());
        assert_eq!(
            p.create.unwrap().metadata.name.as_deref(),
            Some("waiter-0.4-4e074085")
        );
        assert_eq!(p.deprecate, ["waiter-0.4-6b86b273"]);
    }

    #[test]
    fn version_change_leaves_old_kav_alone() {
        // Generation 2 with a new version: the gen-1 KAV has the old version's name.
        let states: BTreeMap<String, KeptnState> =
            [("waiter-0.4-6b86b273".to_owned(), KeptnState::Succeeded)].into();
        let p = plan_app(&app(2, "0.5", "0.4"), None, &|n| states.get(n).cloned());
        assert!(p.deprecate.is_empty());
    }

    fn workload(version: &str, current: &str) -> KeptnWorkload {
        fixtures::workload("waiter-waiter")
            .version(version)
            .resource("ReplicaSet", "waiter-abc", "rs-uid")
            .in_namespace("ns")
            .uid("wl-uid")
            .current_version(current)
            .build()
    }

    #[test]
    fn workload_creates_kwv_named_after_version() {
        let w = workload("0.4", "0.3");
        let WorkloadPlan::Create(kwv) = plan_workload(&w, None) else {
            panic!()
        };
        assert_eq!(kwv.metadata.name.as_deref(), Some("waiter-waiter-0.4"));
        assert_eq!(kwv.spec.workload_name, "waiter-waiter");
        assert_eq!(kwv.spec.previous_version, "0.3");
        assert_eq!(kwv.spec.workload, w.spec);
        let owner = &kwv.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "KeptnWorkload");
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn app_version_waits_for_the_pods_of_its_admitted_workloads() {
        let a = app(1, "0.4", "");
        let mut w = workload("0.4", "");
        w.metadata.name = Some("waiter-waiter".into());
        w.spec.resource_reference.kind = "Deployment".into();
        let found =
            |wl: KeptnWorkload| move |n: &str| (n == "waiter-waiter").then(|| Arc::new(wl.clone()));
        assert!(app_awaits_pods(&a, &found(w.clone())));
        assert!(!app_awaits_pods(&a, &|_| None), "not admitted yet");
        let mut other_version = w.clone();
        other_version.spec.version = "0.3".into();
        assert!(!app_awaits_pods(&a, &found(other_version)));
        w.spec.resource_reference.kind = "ReplicaSet".into();
        assert!(!app_awaits_pods(&a, &found(w)));
    }

    #[test]
    fn no_kwv_while_the_workload_names_its_deployment() {
        let mut w = workload("0.4", "0.3");
        w.spec.resource_reference = ResourceReference {
            uid: String::new(),
            kind: "Deployment".into(),
            name: "waiter".into(),
        };
        assert_eq!(plan_workload(&w, None), WorkloadPlan::AwaitPods);
        w.spec.resource_reference.kind = "ReplicaSet".into();
        w.spec.resource_reference.name = "waiter-abc".into();
        assert!(matches!(plan_workload(&w, None), WorkloadPlan::Create(_)));
    }

    #[test]
    fn workload_spec_change_updates_kwv_and_equal_does_nothing() {
        let w = workload("0.4", "0.4");
        let WorkloadPlan::Create(kwv) = plan_workload(&w, None) else {
            panic!()
        };
        assert_eq!(kwv.spec.previous_version, "");
        assert_eq!(plan_workload(&w, Some(&kwv)), WorkloadPlan::Nothing);
        let mut changed = w.clone();
        changed.spec.resource_reference.name = "waiter-def".into();
        match plan_workload(&changed, Some(&kwv)) {
            WorkloadPlan::UpdateSpec(spec) => {
                assert_eq!(spec.workload.resource_reference.name, "waiter-def");
                assert_eq!(spec.workload_name, "waiter-waiter");
            }
            other => panic!("{other:?}"),
        }
    }
}
