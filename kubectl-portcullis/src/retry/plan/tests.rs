use super::*;
use crate::status::report::tests::fixtures::{app, failed_kwv, kwv};
use serde_json::json;

fn workload(name: &str, app: &str, kind: &str) -> KeptnWorkload {
    serde_json::from_value(json!({
        "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkload",
        "metadata": {"name": name, "namespace": "shop", "uid": "uid-wl"},
        "spec": {"app": app, "version": "3",
                 "resourceReference": {"uid": "uid-rs", "kind": kind, "name": "api-abc"}},
        "status": {"currentVersion": "3"}
    }))
    .expect("workload")
}

/// The revision goes up by one; the next KeptnAppVersion is named after the next generation.
#[test]
fn app_retry_bumps_the_revision() {
    let a = app("api", "3", 1, 1);
    let r = plan_app_retry(&a);
    assert_eq!((r.old_revision, r.new_revision), (1, 2));
    assert_eq!(r.previous_app_version, "api-3-6b86b273");
    assert_eq!(r.next_app_version, "api-3-d4735e3a");
    assert_eq!((r.namespace.as_str(), r.app.as_str()), ("shop", "api"));
    assert_eq!(
        app_patch(&a, &r),
        json!({"metadata": {"resourceVersion": "42"}, "spec": {"revision": 2}}),
        "preconditioned on what was read"
    );
    // A revision bumped by hand before: generation and revision differ.
    let a = app("api", "3", 5, 2);
    let r = plan_app_retry(&a);
    assert_eq!(r.new_revision, 6);
    assert_eq!(r.next_app_version, shared::resolve::kav_name("api", "3", 3));
}

#[test]
fn workloads_by_full_or_annotated_name() {
    let all = vec![
        workload("api-api", "api", "ReplicaSet"),
        workload("shop-cart", "shop", "ReplicaSet"),
        workload("store-cart", "store", "ReplicaSet"),
    ];
    let name =
        |r: Result<&KeptnWorkload, String>| r.map(|w| w.metadata.name.clone().unwrap_or_default());
    assert_eq!(
        name(resolve_workload("api-api", None, &all)),
        Ok("api-api".into())
    );
    assert_eq!(
        name(resolve_workload("api", None, &all)),
        Ok("api-api".into())
    );
    assert_eq!(
        name(resolve_workload("cart", None, &all)),
        Err("cart is a workload of several apps; name the KeptnWorkload (shop-cart, store-cart) or give --app".into())
    );
    assert_eq!(
        name(resolve_workload("cart", Some("store"), &all)),
        Ok("store-cart".into())
    );
    assert_eq!(
        name(resolve_workload("shop-cart", Some("shop"), &all)),
        Ok("shop-cart".into())
    );
    assert_eq!(
        name(resolve_workload("cart", Some("api"), &all)),
        Err("no KeptnWorkload of app api named cart".into())
    );
    assert_eq!(
        name(resolve_workload("nope", None, &all)),
        Err("no KeptnWorkload named nope".into())
    );
}

/// Only a Failed current version is retried, and only where the KeptnWorkload controller
/// creates it again (lifecycle's `plan_workload`).
#[test]
fn workload_retry_needs_a_failed_version_the_gate_recreates() {
    let wl = workload("api-api", "api", "ReplicaSet");
    let failed = failed_kwv();
    let r = plan_workload_retry(&wl, Some(&failed)).expect("retried");
    assert_eq!(r.workload_version, "api-api-3");
    assert_eq!(r.uid, "uid-api-api-3");
    assert_eq!(r.failed_phase, "WorkloadPreDeployTasks");
    assert_eq!(
        r.failed_checks,
        ["KeptnTask pre-check-db-12345 ('check-db')"]
    );
    assert_eq!(
        plan_workload_retry(&wl, None),
        Err("nothing to retry: KeptnWorkloadVersion api-api-3 (KeptnWorkload api-api at version 3) does not exist".into())
    );
    let running = kwv(
        "api",
        "3",
        &[],
        json!({"currentPhase": "WorkloadPreDeployTasks", "status": "Progressing"}),
    );
    assert_eq!(
        plan_workload_retry(&wl, Some(&running)),
        Err("nothing to retry: KeptnWorkloadVersion api-api-3 is Progressing (phase WorkloadPreDeployTasks), its checks are still running; only a Failed workload version is retried".into())
    );
    let done = kwv(
        "api",
        "3",
        &[],
        json!({"currentPhase": "Completed", "status": "Succeeded"}),
    );
    assert!(
        plan_workload_retry(&wl, Some(&done))
            .is_err_and(|e| e.contains("is Succeeded (phase Completed), it passed"))
    );
    let waiting = kwv("api", "3", &[], serde_json::Value::Null);
    assert!(plan_workload_retry(&wl, Some(&waiting)).is_err_and(|e| e.contains("(not started)")));
    let on_deployment = workload("api-api", "api", "Deployment");
    assert!(
        plan_workload_retry(&on_deployment, Some(&failed))
            .is_err_and(|e| e.contains("names its Deployment"))
    );
}

#[test]
fn the_nudge_is_an_annotation() {
    assert_eq!(
        nudge_patch("2026-01-01T00:00:00Z"),
        json!({"metadata": {"annotations": {"portcullis.dev/retried-at": "2026-01-01T00:00:00Z"}}})
    );
}
