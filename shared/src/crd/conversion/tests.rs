//! The registry, the CRDs it generates and the dispatcher.

use super::*;

#[test]
fn every_older_version_keptn_serves_is_served() {
    let served = |kind: &str| -> Vec<&str> {
        let mut v: Vec<&str> = spokes_of(kind).map(|s| s.version).collect();
        v.sort();
        v
    };
    let five = ["v1alpha1", "v1alpha2", "v1alpha3", "v1beta1"];
    for kind in [
        "KeptnApp",
        "KeptnAppVersion",
        "KeptnEvaluation",
        "KeptnEvaluationDefinition",
        "KeptnTask",
        "KeptnTaskDefinition",
        "KeptnWorkload",
    ] {
        assert_eq!(served(kind), five, "{kind}");
    }
    assert_eq!(served("KeptnAppContext"), ["v1beta1"]);
    assert_eq!(served("KeptnAppCreationRequest"), ["v1alpha3", "v1beta1"]);
    assert_eq!(served("KeptnWorkloadVersion"), ["v1alpha4", "v1beta1"]);
}

/// The schema of `version` in `crd`: the whole object, with `apiVersion`, `kind` and `metadata`
/// set to what the API server would send.
fn objects(
    crd: &CustomResourceDefinition,
    version: &str,
) -> impl Strategy<Value = serde_json::Value> + use<> {
    let served = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == version)
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.clone())
        .unwrap_or_else(|| panic!("{} has a schema at {version}", crd.spec.names.kind));
    let (kind, api_version) = (crd.spec.names.kind.clone(), format!("{GROUP}/{version}"));
    (
        schema_strategy::value(&served),
        prop::option::of(prop::sample::select(vec!["a", "b"])),
    )
        .prop_map(move |(mut object, annotation)| {
            object["apiVersion"] = api_version.clone().into();
            object["kind"] = kind.clone().into();
            object["metadata"] = serde_json::json!({
                "name": "x", "namespace": "ns", "uid": "u", "resourceVersion": "3",
                "creationTimestamp": "2024-05-01T10:00:00Z",
            });
            if let Some(a) = annotation {
                object["metadata"]["annotations"] = serde_json::json!({"user": a});
            }
            object
        })
}

use proptest::prelude::*;

/// Every value the older version's schema admits comes back unchanged from `v1`, and every value
/// the `v1` schema admits comes back unchanged from the older version (A24): nothing is lost in
/// either direction. Values a spoke refuses are left out; refusals have their own tests.
#[test]
fn every_older_version_round_trips_through_v1_and_back() {
    let mut config = ProptestConfig::with_cases(256);
    config.max_global_rejects = 4096;
    for spoke in spokes() {
        let older = (spoke.crd)();
        let hub = (spoke.hub_crd)();
        let to = |v: &str| format!("{GROUP}/{v}");
        let mut runner = proptest::test_runner::TestRunner::new(config.clone());
        runner
            .run(&objects(&older, spoke.version), |object| {
                let want = (spoke.normalize)(object.clone()).map_err(|e| {
                    TestCaseError::fail(format!("schema admits what the type cannot parse: {e}"))
                })?;
                let Ok(v1) = convert(object, &to(HUB)) else {
                    return Err(TestCaseError::reject("refused"));
                };
                (spoke.normalize_hub)(v1.clone())
                    .map_err(|e| TestCaseError::fail(format!("v1 result does not parse: {e}")))?;
                let back = convert(v1.clone(), &to(spoke.version))
                    .map_err(|e| TestCaseError::fail(format!("v1 -> back refused: {e}")))?;
                let back = (spoke.normalize)(back).map_err(TestCaseError::fail)?;
                prop_assert_eq!(back, want, "via {}", v1);
                Ok(())
            })
            .unwrap_or_else(|e| {
                panic!(
                    "{} {} -> v1 -> {}: {e}",
                    spoke.kind, spoke.version, spoke.version
                )
            });
        let mut runner = proptest::test_runner::TestRunner::new(config.clone());
        runner
            .run(&objects(&hub, HUB), |object| {
                let want = (spoke.normalize_hub)(object.clone()).map_err(|e| {
                    TestCaseError::fail(format!("schema admits what the type cannot parse: {e}"))
                })?;
                let Ok(old) = convert(object, &to(spoke.version)) else {
                    return Err(TestCaseError::reject("refused"));
                };
                let back = convert(old.clone(), &to(HUB))
                    .map_err(|e| TestCaseError::fail(format!("back to v1 refused: {e}")))?;
                let back = (spoke.normalize_hub)(back).map_err(TestCaseError::fail)?;
                prop_assert_eq!(back, want, "via {}", old);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{} v1 -> {} -> v1: {e}", spoke.kind, spoke.version));
    }
}

#[test]
fn the_crds_serve_every_version_and_store_v1() {
    for crd in crate::crd::all() {
        if crd.spec.group != GROUP {
            continue;
        }
        let stored: Vec<_> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.storage)
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(stored, [HUB], "{}", crd.spec.names.kind);
        assert!(
            crd.spec.versions.iter().all(|v| v.served),
            "{}",
            crd.spec.names.kind
        );
        let names: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        let expected: Vec<_> = std::iter::once(HUB)
            .chain({
                let mut v: Vec<_> = spokes_of(&crd.spec.names.kind).map(|s| s.version).collect();
                v.sort_by_key(|n| version_order(n));
                v
            })
            .collect();
        assert_eq!(names, expected);
        // The older versions of these two are v1 under another name (Keptn's own facts).
        if ["KeptnAppContext", "KeptnAppCreationRequest"].contains(&crd.spec.names.kind.as_str()) {
            assert!(crd.spec.conversion.is_none());
        } else if names.len() > 1 {
            let conversion = crd
                .spec
                .conversion
                .as_ref()
                .unwrap_or_else(|| panic!("{} converts", crd.spec.names.kind));
            assert_eq!(conversion.strategy, "Webhook");
            let service = conversion
                .webhook
                .as_ref()
                .and_then(|w| w.client_config.as_ref())
                .and_then(|c| c.service.as_ref())
                .expect("a service");
            assert_eq!(service.path.as_deref(), Some(CONVERT_PATH));
        }
    }
}

#[test]
fn an_object_already_at_the_desired_version_is_returned_as_it_came() {
    let object = serde_json::json!({
        "apiVersion": "lifecycle.keptn.sh/v1alpha3", "kind": "KeptnApp",
        "metadata": {"name": "a", "annotations": {"x": "y"}}, "spec": {"version": "1", "extra": 1}
    });
    assert_eq!(
        convert(object.clone(), "lifecycle.keptn.sh/v1alpha3"),
        Ok(object)
    );
}

#[test]
fn metadata_the_typed_steps_could_not_parse_passes_through_untouched() {
    let object = serde_json::json!({
        "apiVersion": "lifecycle.keptn.sh/v1alpha3", "kind": "KeptnApp",
        "metadata": {"name": "a", "namespace": "ns", "creationTimestamp": "not a time",
            "ownerReferences": [{"odd": true}]},
        "spec": {"version": "1"}
    });
    let v1 = convert(object.clone(), "lifecycle.keptn.sh/v1").unwrap();
    assert_eq!(v1["metadata"], object["metadata"]);
}

#[test]
fn metadata_comes_back_unchanged_but_for_the_carry_annotation() {
    let metadata = serde_json::json!({
        "name": "shop", "namespace": "ns", "uid": "u", "resourceVersion": "42", "generation": 3,
        "labels": {"l": "v"}, "annotations": {"user": "kept"},
        "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "lifecycle.keptn.sh/v1alpha3",
            "time": "2024-05-01T10:00:00.123456Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
        "creationTimestamp": "2024-05-01T10:00:00Z",
    });
    let object = serde_json::json!({
        "apiVersion": "lifecycle.keptn.sh/v1alpha3", "kind": "KeptnApp", "metadata": metadata,
        "spec": {"version": "1", "revision": 1, "preDeploymentTasks": ["check"]}
    });
    let v1 = convert(object, "lifecycle.keptn.sh/v1").unwrap();
    let mut expected = metadata.clone();
    expected["annotations"][format!("{CARRY_ANNOTATION_PREFIX}v1alpha3")] =
        serde_json::json!(r#"{"spec.preDeploymentTasks":["check"]}"#);
    assert_eq!(v1["metadata"], expected);
    assert!(v1["spec"].get("preDeploymentTasks").is_none());
    let back = convert(v1, "lifecycle.keptn.sh/v1alpha3").unwrap();
    assert_eq!(
        back["metadata"], metadata,
        "the carry annotation is gone again"
    );
    assert_eq!(
        back["spec"]["preDeploymentTasks"],
        serde_json::json!(["check"])
    );
}

#[test]
fn malformed_objects_and_unknown_versions_are_errors_that_name_the_problem() {
    let app = |api: &str| serde_json::json!({"apiVersion": api, "kind": "KeptnApp", "metadata": {}, "spec": {"version": "1"}});
    assert!(matches!(
        convert(serde_json::json!([]), "lifecycle.keptn.sh/v1"),
        Err(ConversionError::Malformed(_))
    ));
    assert!(matches!(
        convert(app("apps/v1"), "lifecycle.keptn.sh/v1"),
        Err(ConversionError::Malformed(_))
    ));
    let err = convert(app("lifecycle.keptn.sh/v1"), "lifecycle.keptn.sh/v2").unwrap_err();
    assert!(
        err.to_string().contains("v2") && err.to_string().contains("v1beta1"),
        "{err}"
    );
    assert!(convert(app("lifecycle.keptn.sh/v1alpha3"), "lifecycle.keptn.sh/v1").is_ok());
    let no_spec = serde_json::json!({"apiVersion": "lifecycle.keptn.sh/v1alpha3", "kind": "KeptnApp", "metadata": {}});
    let err = convert(no_spec, "lifecycle.keptn.sh/v1").unwrap_err();
    assert!(matches!(err, ConversionError::Refused { .. }), "{err}");
}
