//! KeptnAppCreationRequest handling (B §3.1): when and how discovery creates or updates the
//! KeptnApp. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use shared::crd::{KeptnApp, KeptnAppSpec, KeptnWorkload, KeptnWorkloadRef};
use shared::resolve::{app_version, keys};

/// Label marking a KeptnApp created by discovery.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY_KEPTN: &str = "keptn";

/// What to do with a KeptnAppCreationRequest.
#[derive(Clone, Debug, PartialEq)]
pub enum Discovery {
    /// The app was made by a user: never touched; the request is deleted.
    UserApp,
    /// Multi-service discovery window still open: look again after this long.
    Wait(Duration),
    /// No KeptnWorkload of the app is known yet (the cache may lag behind the webhook's write):
    /// wait for one to appear (a KeptnWorkload change wakes the request).
    NoWorkloads,
    /// Create the KeptnApp with this spec, then delete the request.
    Create {
        spec: KeptnAppSpec,
        annotations: BTreeMap<String, String>,
    },
    /// Update the managed KeptnApp's spec to this, then delete the request.
    Update(KeptnAppSpec),
    /// The managed app is already as discovery wants it: delete the request.
    Unchanged,
}

/// Inputs of a decision.
pub struct DiscoveryInput<'a> {
    pub app_name: &'a str,
    /// The request's annotations (`keptn.sh/app-type: single-service`, trace carrier).
    pub annotations: &'a BTreeMap<String, String>,
    pub created: Option<Timestamp>,
    pub app: Option<&'a KeptnApp>,
    /// KeptnWorkloads of the namespace with `spec.app == appName` (any order).
    pub workloads: &'a [&'a KeptnWorkload],
    /// `keptnAppCreationRequestTimeoutSeconds`.
    pub window: Duration,
    pub now: Timestamp,
}

/// Whether the request is for a single-service app (no discovery window).
pub fn is_single_service(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(keys::APP_TYPE).map(String::as_str) == Some("single-service")
}

/// Decides what a KeptnAppCreationRequest leads to (B §3.1).
pub fn plan_discovery(input: &DiscoveryInput<'_>) -> Discovery {
    if let Some(app) = input.app {
        let managed = app
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY))
            .is_some_and(|v| v == MANAGED_BY_KEPTN);
        if !managed {
            return Discovery::UserApp;
        }
    }
    if !is_single_service(input.annotations)
        && let Some(created) = input.created
    {
        let window = jiff::SignedDuration::try_from(input.window).unwrap_or_default();
        let closes = created + window;
        if input.now <= closes {
            let left = Duration::try_from(closes.duration_since(input.now)).unwrap_or_default();
            return Discovery::Wait(left + Duration::from_millis(100));
        }
    }
    let mut workloads: Vec<&KeptnWorkload> = input.workloads.to_vec();
    if workloads.is_empty() {
        return Discovery::NoWorkloads;
    }
    workloads.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let prefix = format!("{}-", input.app_name);
    let refs: Vec<KeptnWorkloadRef> = workloads
        .iter()
        .map(|w| {
            let full = w.metadata.name.as_deref().unwrap_or_default();
            KeptnWorkloadRef {
                name: full.strip_prefix(&prefix).unwrap_or(full).to_owned(),
                version: w.spec.version.clone(),
            }
        })
        .collect();
    let hashed: Vec<(&str, &str)> = workloads
        .iter()
        .map(|w| {
            (
                w.metadata.name.as_deref().unwrap_or_default(),
                w.spec.version.as_str(),
            )
        })
        .collect();
    let version = app_version(&hashed);
    match input.app {
        None => Discovery::Create {
            spec: KeptnAppSpec {
                version,
                revision: 1,
                workloads: refs,
            },
            annotations: input.annotations.clone(),
        },
        Some(app) => {
            let mut spec = app.spec.clone();
            // Add missing workloads, fix versions, drop entries without a workload.
            let mut merged: Vec<KeptnWorkloadRef> = spec
                .workloads
                .iter()
                .filter_map(|existing| refs.iter().find(|r| r.name == existing.name).cloned())
                .collect();
            for r in &refs {
                if !merged.iter().any(|m| m.name == r.name) {
                    merged.push(r.clone());
                }
            }
            spec.workloads = merged;
            spec.version = version;
            if spec == app.spec {
                Discovery::Unchanged
            } else {
                Discovery::Update(spec)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn wl(name: &str, version: &str) -> KeptnWorkload {
        fixtures::workload(name)
            .app("shop")
            .version(version)
            .build()
    }

    fn app(managed: bool, workloads: &[(&str, &str)], version: &str) -> KeptnApp {
        let app = fixtures::app("shop").version(version).workloads(workloads);
        if managed {
            app.labelled(MANAGED_BY, MANAGED_BY_KEPTN).build()
        } else {
            app.build()
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn input<'a>(
        annotations: &'a BTreeMap<String, String>,
        app: Option<&'a KeptnApp>,
        workloads: &'a [&'a KeptnWorkload],
        now: i64,
    ) -> DiscoveryInput<'a> {
        DiscoveryInput {
            app_name: "shop",
            annotations,
            created: Some(t(1000)),
            app,
            workloads,
            window: Duration::from_secs(30),
            now: t(now),
        }
    }

    fn single() -> BTreeMap<String, String> {
        [(keys::APP_TYPE.to_owned(), "single-service".to_owned())].into()
    }

    #[test]
    fn user_app_is_respected() {
        let a = app(false, &[], "1");
        let w = wl("shop-a", "1");
        let none = BTreeMap::new();
        assert_eq!(
            plan_discovery(&input(&none, Some(&a), &[&w], 2000)),
            Discovery::UserApp
        );
        // Even single-service and inside the window.
        let s = single();
        assert_eq!(
            plan_discovery(&input(&s, Some(&a), &[&w], 1001)),
            Discovery::UserApp
        );
    }

    #[test]
    fn multi_service_waits_for_the_window() {
        let w = wl("shop-a", "1");
        let none = BTreeMap::new();
        match plan_discovery(&input(&none, None, &[&w], 1010)) {
            Discovery::Wait(d) => {
                assert!(d >= Duration::from_secs(20) && d <= Duration::from_secs(21))
            }
            other => panic!("{other:?}"),
        }
        // At exactly the end of the window Keptn still waits (now <= created + timeout).
        assert!(matches!(
            plan_discovery(&input(&none, None, &[&w], 1030)),
            Discovery::Wait(_)
        ));
        assert!(matches!(
            plan_discovery(&input(&none, None, &[&w], 1031)),
            Discovery::Create { .. }
        ));
    }

    #[test]
    fn single_service_creates_immediately_with_workload_version() {
        let w = wl("shop-shop", "0.4");
        let s = single();
        match plan_discovery(&input(&s, None, &[&w], 1000)) {
            Discovery::Create { spec, annotations } => {
                assert_eq!(spec.version, "0.4");
                assert_eq!(spec.revision, 1);
                assert_eq!(
                    spec.workloads,
                    [KeptnWorkloadRef {
                        name: "shop".into(),
                        version: "0.4".into()
                    }]
                );
                assert_eq!(annotations, s);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn multi_service_version_is_hash_of_sorted_workloads() {
        let (b, a) = (wl("shop-b", "2"), wl("shop-a", "1"));
        let none = BTreeMap::new();
        match plan_discovery(&input(&none, None, &[&b, &a], 2000)) {
            Discovery::Create { spec, .. } => {
                assert_eq!(spec.workloads[0].name, "a");
                assert_eq!(spec.workloads[1].name, "b");
                assert_eq!(
                    spec.version,
                    app_version(&[("shop-a", "1"), ("shop-b", "2")])
                );
                assert_eq!(spec.version.len(), 10);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_workloads_waits() {
        let s = single();
        assert_eq!(
            plan_discovery(&input(&s, None, &[], 1000)),
            Discovery::NoWorkloads
        );
    }

    #[test]
    fn managed_app_is_updated_or_unchanged() {
        let a = app(true, &[("a", "1"), ("gone", "9")], "old");
        let (wa, wb) = (wl("shop-a", "2"), wl("shop-b", "1"));
        let none = BTreeMap::new();
        match plan_discovery(&input(&none, Some(&a), &[&wa, &wb], 2000)) {
            Discovery::Update(spec) => {
                let names: Vec<_> = spec
                    .workloads
                    .iter()
                    .map(|w| (w.name.as_str(), w.version.as_str()))
                    .collect();
                assert_eq!(names, [("a", "2"), ("b", "1")]);
                assert_eq!(
                    spec.version,
                    app_version(&[("shop-a", "2"), ("shop-b", "1")])
                );
            }
            other => panic!("{other:?}"),
        }
        let v = app_version(&[("shop-a", "2"), ("shop-b", "1")]);
        let same = app(true, &[("a", "2"), ("b", "1")], &v);
        assert_eq!(
            plan_discovery(&input(&none, Some(&same), &[&wa, &wb], 2000)),
            Discovery::Unchanged
        );
    }
}
