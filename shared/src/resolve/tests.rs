//! Resolution as a whole: pod path, parent path, single-service, stamp (B §1.4–§1.9, A7, A8).

use super::*;

/// Fixture builder: `meta().annotated(k, v).labelled(k, v)`.
fn meta() -> ObjectMetaView {
    ObjectMetaView::default()
}

trait MetaBuilder {
    fn annotated(self, key: &str, value: &str) -> Self;
    fn labelled(self, key: &str, value: &str) -> Self;
}

impl MetaBuilder for ObjectMetaView {
    fn annotated(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }
    fn labelled(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// Fixture builder: `container(name, image).env(k, v)`.
fn container(name: &str, image: &str) -> ContainerView {
    ContainerView {
        name: name.into(),
        image: image.into(),
        env: Vec::new(),
    }
}

trait ContainerBuilder {
    fn env(self, name: &str, value: &str) -> Self;
}

impl ContainerBuilder for ContainerView {
    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push(EnvVarView {
            name: name.into(),
            value: value.into(),
        });
        self
    }
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The A8 stamp of an identity: `keptn.sh/app`, `keptn.sh/workload` and `keptn.sh/version`.
fn stamp(app: &str, workload: &str, version: &str) -> BTreeMap<String, String> {
    annotations(&[
        (keys::APP, app),
        (keys::WORKLOAD, workload),
        (keys::VERSION, version),
    ])
}

fn resolved(
    pod: &ObjectMetaView,
    containers: &[ContainerView],
    parent: Option<&ObjectMetaView>,
) -> Identity {
    resolve(pod, containers, parent)
        .expect("resolvable")
        .expect("annotated")
}

#[test]
fn not_annotated_without_workload_key_anywhere() {
    let pod = meta()
        .annotated(keys::APP, "a")
        .labelled(keys::VERSION, "1");
    let parent = meta().annotated(keys::APP, "a");
    let cs = [container("c", "img:1")];
    assert_eq!(resolve(&pod, &cs, None), Ok(None), "no parent");
    assert_eq!(
        resolve(&pod, &cs, Some(&parent)),
        Ok(None),
        "parent without workload key"
    );
    let empty = meta().annotated(keys::WORKLOAD, "");
    assert_eq!(
        resolve(&empty, &cs, Some(&empty)),
        Ok(None),
        "empty workload value"
    );
}

#[test]
fn pod_path_single_service_waiter() {
    let pod = meta()
        .annotated(keys::WORKLOAD, "waiter")
        .annotated(keys::VERSION, "0.4");
    let id = resolved(&pod, &[container("waiter", "img")], None);
    assert_eq!(id.source, MetaSource::Pod);
    assert_eq!(id.app_type(), AppType::SingleService);
    assert!(!id.app_explicit);
    assert_eq!(id.app_value, "waiter");
    assert_eq!(
        id.names,
        ResourceNames {
            app_name: "waiter".into(),
            workload_name: "waiter-waiter".into(),
            version: "0.4".into(),
            workload_version_name: "waiter-waiter-0.4".into(),
        }
    );
    // B §1.9: single-service writes keptn.sh/app = raw workload value; A8 stamps the rest.
    assert_eq!(id.pod_annotations, stamp("waiter", "waiter", "0.4"));
    assert_eq!(AppType::SingleService.as_str(), "single-service");
}

#[test]
fn pod_path_version_lower_cased_and_underscore_in_name_only() {
    let pod = meta()
        .annotated(keys::WORKLOAD, "waiter")
        .labelled(keys::K8S_VERSION, "0.4.0_1-RC");
    let id = resolved(&pod, &[], None);
    assert_eq!(
        id.version_value, "0.4.0_1-RC",
        "raw value kept for the stamp"
    );
    assert_eq!(
        id.names.version, "0.4.0_1-rc",
        "§1.7 lower-cased, underscore kept"
    );
    assert_eq!(id.names.workload_version_name, "waiter-waiter-0.4.0-1-rc");
    assert_eq!(id.pod_annotations[keys::VERSION], "0.4.0_1-RC");
    let pod = meta()
        .annotated(keys::WORKLOAD, "waiter")
        .annotated(keys::VERSION, "0.4.0_1");
    assert_eq!(
        resolved(&pod, &[], None).names.workload_version_name,
        "waiter-waiter-0.4.0-1"
    );
}

#[test]
fn pod_path_explicit_app_multi_service() {
    let pod = meta()
        .labelled(keys::K8S_PART_OF, "podtato-head")
        .labelled(keys::K8S_NAME, "podtato-head-entry")
        .labelled(keys::K8S_VERSION, "0.1.0");
    let id = resolved(&pod, &[], None);
    assert_eq!(id.app_type(), AppType::MultiService);
    assert!(id.app_explicit);
    assert_eq!(id.names.app_name, "podtato-head");
    assert_eq!(id.names.workload_name, "podtato-head-podtato-head-entry");
    assert_eq!(
        id.names.workload_version_name,
        "podtato-head-podtato-head-entry-0.1.0"
    );
    // A8: the stamp turns label values into annotations.
    assert_eq!(
        id.pod_annotations,
        stamp("podtato-head", "podtato-head-entry", "0.1.0")
    );
}

/// LOOKUP precedence carried through resolution for workload, app and version.
#[test]
fn pod_path_lookup_precedence_annotation_over_label_keptn_over_k8s() {
    let pod = meta()
        .annotated(keys::K8S_NAME, "w-ann-k8s")
        .labelled(keys::WORKLOAD, "w-label-keptn")
        .labelled(keys::K8S_PART_OF, "app-label-k8s")
        .annotated(keys::K8S_PART_OF, "app-ann-k8s")
        .annotated(keys::VERSION, "v-ann-keptn")
        .labelled(keys::VERSION, "v-label-keptn");
    let id = resolved(&pod, &[], None);
    assert_eq!(id.workload_value, "w-label-keptn");
    assert_eq!(id.app_value, "app-ann-k8s");
    assert_eq!(id.version_value, "v-ann-keptn");
}

#[test]
fn pod_path_ignores_parent_completely() {
    let pod = meta().annotated(keys::WORKLOAD, "w");
    let parent = meta()
        .annotated(keys::WORKLOAD, "parent-w")
        .annotated(keys::APP, "parent-app")
        .annotated(keys::VERSION, "9.9")
        .annotated(keys::PRE_DEPLOYMENT_TASKS, "t")
        .annotated(keys::METADATA, "k=v")
        .annotated(keys::CONTAINER, "missing");
    let cs = [container("c", "img:1.0")];
    let id = resolved(&pod, &cs, Some(&parent));
    assert_eq!(id, resolved(&pod, &cs, None));
    assert_eq!(id.app_value, "w");
    assert!(id.pre_deployment_tasks.is_empty());
    assert!(id.metadata.is_empty());
}

#[test]
fn pod_path_version_from_container_tag_written_as_annotation() {
    let pod = meta()
        .annotated(keys::WORKLOAD, "w")
        .labelled(keys::CONTAINER, "app");
    let cs = [
        container("sidecar", "envoy:1"),
        container("app", "repo/app:2.3.4"),
    ];
    let id = resolved(&pod, &cs, None);
    assert_eq!(id.version_value, "2.3.4");
    assert_eq!(id.pod_annotations[keys::VERSION], "2.3.4");
    assert_eq!(id.names.workload_version_name, "w-w-2.3.4");
}

#[test]
fn pod_path_version_registry_port_without_tag_sanitised_in_name() {
    let pod = meta()
        .annotated(keys::WORKLOAD, "w")
        .annotated(keys::CONTAINER, "app");
    let id = resolved(&pod, &[container("app", "localhost:5000/app")], None);
    assert_eq!(id.version_value, "5000/app");
    assert_eq!(id.names.workload_version_name, "w-w-5000-app", "A18 `/`");
    let id = resolved(&pod, &[container("app", "img@sha256:ABC")], None);
    assert_eq!(id.version_value, "ABC", "digest hex, raw");
    assert_eq!(id.names.version, "abc");
}

#[test]
fn pod_path_version_hash_without_container_key() {
    let pod = meta().annotated(keys::WORKLOAD, "w");
    let cs = [container("a", "img:1.0").env("K", "V")];
    let id = resolved(&pod, &cs, None);
    // FNV-1a 32 of "aimg:1.0KV", decimal; the single container's tag is not used.
    assert_eq!(id.version_value, fnv1a32_decimal("aimg:1.0KV"));
    assert!(id.version_value.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(id.pod_annotations[keys::VERSION], id.version_value);
}

/// Independent textbook FNV-1a, to check the resolver's hash.
fn fnv1a32_decimal(s: &str) -> String {
    let mut h: u32 = 2_166_136_261;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(16_777_619);
    }
    h.to_string()
}

#[test]
fn pod_path_unmatched_container_is_an_error_naming_the_key() {
    let pod = meta()
        .annotated(keys::WORKLOAD, "w")
        .annotated(keys::CONTAINER, "nope");
    let err = resolve(&pod, &[container("app", "img:1")], None).unwrap_err();
    assert_eq!(
        err,
        ResolveError::ContainerNotFound {
            container: "nope".into(),
            key: keys::CONTAINER,
            origin: MetaSource::Pod,
        }
    );
    assert_eq!(
        err.to_string(),
        "The container name 'nope' specified in keptn.sh/container does not match any containers in the pod"
    );
    // With an explicit version the container key is never consulted.
    let pod = pod.annotated(keys::VERSION, "1");
    assert!(resolve(&pod, &[], None).is_ok());
}

#[test]
fn parent_path_copies_non_empty_keys() {
    let pod = meta().labelled("app", "x");
    let parent = meta()
        .annotated(keys::WORKLOAD, "w")
        .labelled(keys::K8S_PART_OF, "shop")
        .labelled(keys::K8S_VERSION, "1.0")
        .annotated(keys::PRE_DEPLOYMENT_TASKS, "a, b")
        .labelled(keys::POST_DEPLOYMENT_TASKS, "c")
        .annotated(keys::PRE_DEPLOYMENT_EVALUATIONS, "")
        .annotated(keys::POST_DEPLOYMENT_EVALUATIONS, "e")
        .annotated(keys::METADATA, "k=v,bad")
        .annotated(keys::CONTAINER, "app")
        .annotated("unrelated", "u");
    let id = resolved(&pod, &[container("app", "img:2.0")], Some(&parent));
    assert_eq!(id.source, MetaSource::Parent);
    assert_eq!(id.names.workload_name, "shop-w");
    assert_eq!(
        id.version_value, "1.0",
        "parent's version beats the container tag"
    );
    assert_eq!(id.pre_deployment_tasks, ["a", "b"]);
    assert_eq!(id.post_deployment_tasks, ["c"]);
    assert!(id.pre_deployment_evaluations.is_empty());
    assert_eq!(id.post_deployment_evaluations, ["e"]);
    assert_eq!(id.metadata, annotations(&[("k", "v")]));
    // Raw values are copied (untrimmed lists, unparsed metadata); empty ones and
    // keptn.sh/container are not.
    let mut copied = stamp("shop", "w", "1.0");
    copied.extend(annotations(&[
        (keys::PRE_DEPLOYMENT_TASKS, "a, b"),
        (keys::POST_DEPLOYMENT_TASKS, "c"),
        (keys::POST_DEPLOYMENT_EVALUATIONS, "e"),
        (keys::METADATA, "k=v,bad"),
    ]));
    assert_eq!(id.pod_annotations, copied);
}

#[test]
fn parent_path_version_computed_with_parents_container_key() {
    let pod = meta().annotated(keys::CONTAINER, "sidecar");
    let parent = meta()
        .annotated(keys::WORKLOAD, "w")
        .annotated(keys::CONTAINER, "app");
    let cs = [
        container("sidecar", "envoy:1.0"),
        container("app", "img:3.1"),
    ];
    let id = resolved(&pod, &cs, Some(&parent));
    assert_eq!(id.version_value, "3.1");
    assert_eq!(id.pod_annotations[keys::VERSION], "3.1");
    // Parent without keptn.sh/container: the pod's own key is not used, the version is the hash.
    let parent = meta().annotated(keys::WORKLOAD, "w");
    let id = resolved(&pod, &cs, Some(&parent));
    assert_eq!(
        id.version_value,
        fnv1a32_decimal("sidecarenvoy:1.0appimg:3.1")
    );
}

#[test]
fn parent_path_overrides_pod_version_and_falls_back_to_pod_keys() {
    // Copied annotations overwrite the pod's; keys the parent lacks still come from the pod.
    let pod = meta()
        .annotated(keys::VERSION, "pod-version")
        .labelled(keys::K8S_PART_OF, "pod-app")
        .annotated(keys::PRE_DEPLOYMENT_TASKS, "pod-task");
    let parent = meta()
        .annotated(keys::WORKLOAD, "w")
        .annotated(keys::VERSION, "2.0");
    let id = resolved(&pod, &[], Some(&parent));
    assert_eq!(id.version_value, "2.0");
    assert_eq!(id.app_value, "pod-app");
    assert!(id.app_explicit);
    assert_eq!(id.pre_deployment_tasks, ["pod-task"]);
    assert_eq!(id.pod_annotations[keys::APP], "pod-app");
    assert!(!id.pod_annotations.contains_key(keys::PRE_DEPLOYMENT_TASKS));
}

#[test]
fn parent_path_single_service() {
    let parent = meta()
        .labelled(keys::K8S_NAME, "waiter")
        .labelled(keys::K8S_VERSION, "0.4");
    let id = resolved(&meta(), &[], Some(&parent));
    assert_eq!(id.app_type(), AppType::SingleService);
    assert_eq!(id.names.workload_version_name, "waiter-waiter-0.4");
    assert_eq!(id.pod_annotations, stamp("waiter", "waiter", "0.4"));
}

#[test]
fn parent_path_unmatched_container_is_an_error_with_parent_origin() {
    let parent = meta()
        .annotated(keys::WORKLOAD, "w")
        .annotated(keys::CONTAINER, "nope");
    let err = resolve(&meta(), &[container("app", "img:1")], Some(&parent)).unwrap_err();
    assert!(matches!(
        &err,
        ResolveError::ContainerNotFound { container, origin: MetaSource::Parent, .. } if container == "nope"
    ));
    assert!(
        err.to_string()
            .contains("'nope' specified in keptn.sh/container")
    );
}

#[test]
fn a17_lists_trimmed_in_identity() {
    let pod = meta()
        .annotated(keys::WORKLOAD, "w")
        .annotated(keys::VERSION, "1")
        .annotated(keys::PRE_DEPLOYMENT_TASKS, " check-a , check-b,")
        .labelled(keys::POST_DEPLOYMENT_EVALUATIONS, "slo ,  ")
        .annotated(keys::METADATA, "team=x, env=prod");
    let id = resolved(&pod, &[], None);
    assert_eq!(id.pre_deployment_tasks, ["check-a", "check-b"]);
    assert_eq!(id.post_deployment_evaluations, ["slo"]);
    assert!(id.post_deployment_tasks.is_empty());
    assert_eq!(id.metadata, annotations(&[("team", "x"), (" env", "prod")]));
}

#[test]
fn a18_names_sanitised_in_identity() {
    let pod = meta()
        .annotated(keys::APP, "My App")
        .annotated(keys::WORKLOAD, "api:v2")
        .annotated(keys::VERSION, "1.0.0+build");
    let id = resolved(&pod, &[], None);
    assert_eq!(id.names.app_name, "my-app");
    assert_eq!(id.names.workload_name, "my-app-api-v2");
    assert_eq!(id.names.workload_version_name, "my-app-api-v2-1.0.0-build");
    assert_eq!(
        id.pod_annotations[keys::WORKLOAD],
        "api:v2",
        "stamp keeps raw values"
    );
}

#[test]
fn unusable_names_are_errors_naming_the_key() {
    let rows = [
        (
            "invalid_app_name_empty",
            meta()
                .annotated(keys::APP, "+++")
                .annotated(keys::WORKLOAD, "w"),
            "KeptnApp",
            keys::APP,
        ),
        (
            "invalid_single_service_app_blames_workload",
            meta().annotated(keys::WORKLOAD, "///"),
            "KeptnApp",
            keys::WORKLOAD,
        ),
        (
            "invalid_workload_name_double_dot",
            meta()
                .annotated(keys::APP, "a")
                .annotated(keys::WORKLOAD, "x..y"),
            "KeptnWorkload",
            keys::WORKLOAD,
        ),
        (
            "invalid_kwv_name_too_long",
            meta()
                .annotated(keys::WORKLOAD, "w")
                .annotated(keys::VERSION, &"1".repeat(300)),
            "KeptnWorkloadVersion",
            keys::VERSION,
        ),
    ];
    for (rule, pod, want_resource, want_key) in rows {
        let pod = if lookup_version(&pod).is_none() {
            pod.annotated(keys::VERSION, "1")
        } else {
            pod
        };
        match resolve(&pod, &[], None) {
            Err(ResolveError::InvalidName { resource, key, .. }) => {
                assert_eq!((resource, key), (want_resource, want_key), "{rule}");
            }
            other => panic!("{rule}: {other:?}"),
        }
    }
    let err = resolve(
        &meta()
            .annotated(keys::WORKLOAD, "///")
            .annotated(keys::VERSION, "1"),
        &[],
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid keptn.sh/workload: the KeptnApp name '' derived from it is unusable: it is empty after sanitising"
    );
}

#[test]
fn a8_stamp_gives_the_gate_the_same_names() {
    let cases = [
        meta()
            .annotated(keys::WORKLOAD, "Waiter")
            .labelled(keys::K8S_VERSION, "0.4.0_1"),
        meta()
            .labelled(keys::K8S_PART_OF, "My Shop")
            .labelled(keys::K8S_NAME, "cart")
            .annotated(keys::CONTAINER, "c"),
    ];
    for pod in cases {
        let id = resolved(&pod, &[container("c", "img:V2")], None);
        let mut stamped = pod.clone();
        stamped.annotations.extend(id.pod_annotations.clone());
        assert_eq!(
            ResourceNames::from_stamp(&stamped),
            Ok(Some(id.names.clone()))
        );
        // Re-resolving the stamped pod changes nothing but the single-service flag.
        let again = resolved(&stamped, &[container("c", "img:V2")], None);
        assert_eq!(again.names, id.names);
        assert_eq!(again.pod_annotations, id.pod_annotations);
        assert!(
            again.app_explicit,
            "the stamped keptn.sh/app reads as explicit"
        );
    }
    let unstamped = meta()
        .labelled(keys::APP, "a")
        .annotated(keys::WORKLOAD, "w");
    assert_eq!(
        ResourceNames::from_stamp(&unstamped),
        Ok(None),
        "labels are not a stamp"
    );
}

#[test]
fn a8_stamp_of_parent_path_pod() {
    let parent = meta()
        .annotated(keys::WORKLOAD, "w")
        .annotated(keys::APP, "a");
    let id = resolved(&meta(), &[container("c", "img")], Some(&parent));
    let mut stamped = meta();
    stamped.annotations.extend(id.pod_annotations.clone());
    assert_eq!(
        ResourceNames::from_stamp(&stamped),
        Ok(Some(id.names.clone()))
    );
    // The stamped pod now resolves on the pod path to the same identity.
    let again = resolved(&stamped, &[container("c", "img")], Some(&parent));
    assert_eq!(again.source, MetaSource::Pod);
    assert_eq!(again.names, id.names);
}

/// A7: a Deployment and its pod template, deserialised from raw admission JSON, resolve like a
/// pod with that Deployment as parent.
#[test]
fn a7_workload_template_with_workload_as_parent() {
    let deployment: WorkloadView = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "podtato-head-entry",
            "annotations": {
                "keptn.sh/app": "podtato-head",
                "keptn.sh/workload": "podtato-head-entry",
                "keptn.sh/container": "server"
            }
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"component": "entry"}},
                "spec": {"containers": [
                    {"name": "server", "image": "ghcr.io/podtato-head/entry:0.1.0",
                     "env": [{"name": "PORT", "value": "9000"}]}
                ]}
            }
        }
    }))
    .unwrap();
    let template = &deployment.spec.template;
    let id = resolved(
        &template.metadata,
        &template.spec.containers,
        Some(&deployment.metadata),
    );
    assert_eq!(
        id.names.workload_version_name,
        "podtato-head-podtato-head-entry-0.1.0"
    );

    let mut broken = deployment.clone();
    broken
        .metadata
        .annotations
        .insert(keys::CONTAINER.into(), "typo".into());
    let err = resolve(
        &template.metadata,
        &template.spec.containers,
        Some(&broken.metadata),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("keptn.sh/container"),
        "A7 rejection names the key"
    );
}

// ------------------------------------------------------------------ provenance

fn at(object: MetaSource, key: &'static str, place: Place) -> KeySource {
    KeySource { object, key, place }
}

#[test]
fn provenance_pod_path_names_keys_and_places() {
    let pod = meta()
        .labelled(keys::K8S_NAME, "web")
        .annotated(keys::K8S_PART_OF, "shop")
        .labelled(keys::VERSION, "1.2");
    let id = resolved(&pod, &[container("web", "img:9")], None);
    assert_eq!(
        id.provenance,
        Provenance {
            workload: at(MetaSource::Pod, keys::K8S_NAME, Place::Label),
            app: Some(at(MetaSource::Pod, keys::K8S_PART_OF, Place::Annotation)),
            version: VersionSource::Key(at(MetaSource::Pod, keys::VERSION, Place::Label)),
        }
    );
}

#[test]
fn provenance_single_service_has_no_app_source() {
    let pod = meta().annotated(keys::WORKLOAD, "web");
    let cs = [container("web", "img:9")];
    let id = resolved(&pod, &cs, None);
    assert_eq!(id.provenance.app, None);
    assert_eq!(
        id.provenance.version,
        VersionSource::ContainersHash { named: None }
    );
}

#[test]
fn provenance_version_from_image_tag_or_hash_of_named_container() {
    let pod = meta()
        .annotated(keys::WORKLOAD, "web")
        .labelled(keys::CONTAINER, "web");
    let id = resolved(&pod, &[container("web", "img:9")], None);
    assert_eq!(id.version_value, "9");
    assert_eq!(
        id.provenance.version,
        VersionSource::ImageTag {
            container: "web".into(),
            named_by: at(MetaSource::Pod, keys::CONTAINER, Place::Label),
        }
    );
    let id = resolved(&pod, &[container("web", "img:latest")], None);
    assert_eq!(
        id.provenance.version,
        VersionSource::ContainersHash {
            named: Some((
                "web".into(),
                at(MetaSource::Pod, keys::CONTAINER, Place::Label)
            )),
        }
    );
}

#[test]
fn provenance_parent_path_separates_copied_and_own_values() {
    // The parent gives workload and container; the app comes from the pod's own label.
    let pod = meta().labelled(keys::K8S_PART_OF, "shop");
    let parent = meta()
        .labelled(keys::WORKLOAD, "web")
        .annotated(keys::CONTAINER, "app");
    let cs = [container("sidecar", "envoy:1"), container("app", "img:2.0")];
    let id = resolved(&pod, &cs, Some(&parent));
    assert_eq!(id.source, MetaSource::Parent);
    assert_eq!(
        id.provenance,
        Provenance {
            workload: at(MetaSource::Parent, keys::WORKLOAD, Place::Label),
            app: Some(at(MetaSource::Pod, keys::K8S_PART_OF, Place::Label)),
            version: VersionSource::ImageTag {
                container: "app".into(),
                named_by: at(MetaSource::Parent, keys::CONTAINER, Place::Annotation),
            },
        }
    );
    // A version key on the parent, and its app, win over the pod's.
    let parent = parent
        .labelled(keys::K8S_VERSION, "3")
        .annotated(keys::K8S_PART_OF, "store");
    let pod = pod.annotated(keys::APP, "mine");
    let id = resolved(&pod, &cs, Some(&parent));
    assert_eq!(
        (id.app_value.as_str(), id.version_value.as_str()),
        ("store", "3")
    );
    assert_eq!(
        id.provenance.app,
        Some(at(MetaSource::Parent, keys::K8S_PART_OF, Place::Annotation))
    );
    assert_eq!(
        id.provenance.version,
        VersionSource::Key(at(MetaSource::Parent, keys::K8S_VERSION, Place::Label))
    );
}
