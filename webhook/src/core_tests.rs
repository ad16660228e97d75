//! The decision core against in-memory snapshots: pods (B §1.2–§1.10, A4, A5, A8, A9, A10,
//! A22) and workloads (A7).

use json_patch::PatchOperation;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionRequest;
use serde_json::{Value, json};
use shared::crd::{KeptnApp, KeptnAppCreationRequest, KeptnWorkload};
use shared::gate::{GATE, GATED_LABEL, GATED_VALUE, REMOVED_MARKER, REMOVED_VALUE};
use shared::resolve::keys;

use crate::decision::{Decision, Needed, Verdict, Write};
use crate::fixtures::{
    self, MetaBuilder, NamespaceBuilder, PodBuilder, ReplicaSetBuilder, WorkloadBuilder, meta, ns,
    pod,
};
use crate::namespaces::{ENABLED, ENABLEMENT_KEY};
use crate::pods::{self, messages};
use crate::review::parse;
use crate::snapshot::{Fetched, MemorySnapshot, NamespaceMeta, ParentKind, Snapshot, WithFetched};
use crate::workloads;

const NS: &str = "shop";

fn enabled_namespace() -> NamespaceMeta {
    ns(NS).enabled().build()
}

fn enabled() -> MemorySnapshot {
    MemorySnapshot::complete().with_namespace(enabled_namespace())
}

/// ReplicaSet `name` (uid `rs-uid-1`) carrying `keptn.sh/workload` itself, which only counts
/// through a Deployment owner (B §1.3).
fn replica_set(name: &str) -> ReplicaSetBuilder {
    fixtures::replica_set(NS, name)
        .uid("rs-uid-1")
        .annotated(keys::WORKLOAD, "rs-own-annotation")
}

/// [`replica_set`] controlled by Deployment `deployment`.
fn replica_set_of(name: &str, deployment: &str) -> ReplicaSetBuilder {
    replica_set(name).controlled_by("apps/v1", "Deployment", deployment, "dep-uid")
}

/// `namespace` with Deployment `web` (metadata `parent`) and its ReplicaSet `web-abc`.
fn web_world(namespace: NamespaceBuilder, parent: MetaBuilder) -> MemorySnapshot {
    MemorySnapshot::complete()
        .with_namespace(namespace.build())
        .with_replica_set(replica_set_of("web-abc", "web").build())
        .with_parent(ParentKind::Deployment, NS, "web", parent.build())
}

/// An enabled namespace with Deployment `web` annotated as given and its ReplicaSet `web-abc`.
fn deployment_world(annotations: &[(&str, &str)]) -> MemorySnapshot {
    let parent = annotations
        .iter()
        .fold(meta(), |m, (k, v)| m.annotated(k, v));
    web_world(ns(NS).enabled(), parent)
}

fn deployment_pod() -> PodBuilder {
    pod(NS)
        .container("web", "nginx:1.25")
        .owned_by_replica_set("web-abc")
}

fn request(review: &Value) -> AdmissionRequest<DynamicObject> {
    parse(&serde_json::to_vec(review).unwrap()).unwrap()
}

fn admit_pod(pod: &Value, snapshot: &MemorySnapshot) -> Decision {
    pods::admit(&request(&fixtures::pod_review(pod, false)), snapshot).expect("decidable")
}

/// The pod admission of `req` against `base` with `fetched` filling its gaps.
fn admit_with(
    req: &AdmissionRequest<DynamicObject>,
    base: &impl Snapshot,
    fetched: &Fetched,
) -> Result<Decision, Needed> {
    pods::admit(req, &WithFetched { base, fetched })
}

fn patch_of(decision: &Decision) -> &[PatchOperation] {
    match &decision.verdict {
        Verdict::Allow { patch, .. } => patch,
        Verdict::Deny(d) => panic!("denied: {}", d.message),
    }
}

fn patch_paths(decision: &Decision) -> Vec<String> {
    patch_of(decision)
        .iter()
        .map(|op| op.path().to_string())
        .collect()
}

fn apply(pod: &Value, decision: &Decision) -> Value {
    let mut out = pod.clone();
    json_patch::patch(&mut out, patch_of(decision)).expect("patch applies to the raw pod");
    out
}

fn untouched(decision: &Decision, message: &str) {
    match &decision.verdict {
        Verdict::Allow { patch, message: m } => {
            assert!(patch.is_empty(), "no patch expected: {patch:?}");
            assert_eq!(m.as_deref(), Some(message));
        }
        Verdict::Deny(d) => panic!("denied: {}", d.message),
    }
    assert!(decision.writes.is_empty(), "no writes expected");
}

fn denied(decision: &Decision) -> &crate::decision::Denial {
    match &decision.verdict {
        Verdict::Deny(d) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn created_workload(decision: &Decision) -> &KeptnWorkload {
    decision
        .writes
        .iter()
        .find_map(|w| match w {
            Write::CreateWorkload(w) => Some(&**w),
            _ => None,
        })
        .expect("a KeptnWorkload create")
}

fn updated_workload(decision: &Decision) -> &KeptnWorkload {
    decision
        .writes
        .iter()
        .find_map(|w| match w {
            Write::UpdateWorkload(w) => Some(&**w),
            _ => None,
        })
        .expect("a KeptnWorkload update")
}

fn created_request(decision: &Decision) -> Option<&KeptnAppCreationRequest> {
    decision.writes.iter().find_map(|w| match w {
        Write::CreateAppCreationRequest(r) => Some(&**r),
        _ => None,
    })
}

fn annotations(pod: &Value) -> &serde_json::Map<String, Value> {
    pod["metadata"]["annotations"].as_object().unwrap()
}

// ---------------------------------------------------------------- pods: the happy paths

#[test]
fn deployment_pod_gated_from_annotated_parent() {
    let world = deployment_world(&[(keys::WORKLOAD, "web"), (keys::VERSION, "1.0")]);
    let pod = deployment_pod().build();
    let decision = admit_pod(&pod, &world);
    let out = apply(&pod, &decision);
    assert_eq!(out["spec"]["schedulingGates"], json!([{"name": GATE}]));
    assert_eq!(
        out["metadata"]["labels"],
        json!({"pod-template-hash": "7d4b9c8f6d", GATED_LABEL: GATED_VALUE}),
        "the gated label joins the pod's labels (A8)"
    );
    let a = annotations(&out);
    assert_eq!(a["keptn.sh/workload"], "web");
    assert_eq!(a["keptn.sh/version"], "1.0");
    assert_eq!(
        a["keptn.sh/app"], "web",
        "single-service app stamped (B §1.9)"
    );
    let kw = created_workload(&decision);
    assert_eq!(kw.metadata.name.as_deref(), Some("web-web"));
    assert_eq!(kw.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(kw.spec.app, "web");
    assert_eq!(kw.spec.version, "1.0");
    assert_eq!(kw.spec.resource_reference.kind, "ReplicaSet");
    assert_eq!(kw.spec.resource_reference.name, "web-abc");
    assert_eq!(kw.spec.resource_reference.uid, "rs-uid-1");
    let owners = kw.metadata.owner_references.as_ref().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].name.as_str()),
        ("ReplicaSet", "web-abc")
    );
    assert_eq!(owners[0].controller, None, "not a controller reference");
    let kacr = created_request(&decision).expect("a KACR");
    assert_eq!(kacr.metadata.name.as_deref(), Some("web"));
    assert_eq!(kacr.spec.app_name, "web");
    assert_eq!(
        kacr.metadata.annotations.as_ref().unwrap()[keys::APP_TYPE],
        "single-service"
    );
}

#[test]
fn pod_without_annotations_gets_the_map_in_one_operation() {
    let world = deployment_world(&[(keys::WORKLOAD, "web"), (keys::VERSION, "1.0")]);
    let pod = deployment_pod().build();
    assert!(pod["metadata"].get("annotations").is_none());
    let decision = admit_pod(&pod, &world);
    assert_eq!(
        patch_paths(&decision),
        [
            "/spec/schedulingGates",
            "/metadata/labels/portcullis.dev~1gated",
            "/metadata/annotations"
        ]
    );
}

#[test]
fn pod_without_labels_gets_the_label_map_in_one_operation() {
    let world = deployment_world(&[(keys::WORKLOAD, "web")]);
    let mut pod = deployment_pod().build();
    if let Some(meta) = pod["metadata"].as_object_mut() {
        meta.remove("labels");
    }
    let decision = admit_pod(&pod, &world);
    assert_eq!(
        patch_paths(&decision),
        [
            "/spec/schedulingGates",
            "/metadata/labels",
            "/metadata/annotations"
        ]
    );
    let out = apply(&pod, &decision);
    assert_eq!(out["metadata"]["labels"], json!({GATED_LABEL: GATED_VALUE}));
}

#[test]
fn pod_with_annotations_gets_escaped_keys() {
    let world = deployment_world(&[(keys::WORKLOAD, "web"), (keys::VERSION, "1.0")]);
    let pod = deployment_pod().annotated("team", "a").build();
    let decision = admit_pod(&pod, &world);
    assert_eq!(
        patch_paths(&decision),
        [
            "/spec/schedulingGates",
            "/metadata/labels/portcullis.dev~1gated",
            "/metadata/annotations/keptn.sh~1app",
            "/metadata/annotations/keptn.sh~1version",
            "/metadata/annotations/keptn.sh~1workload",
        ]
    );
    assert_eq!(annotations(&apply(&pod, &decision))["team"], "a");
}

#[test]
fn namespace_enabled_by_label_a4() {
    let world = web_world(
        ns(NS).labelled(ENABLEMENT_KEY, ENABLED),
        meta().annotated(keys::WORKLOAD, "web"),
    );
    let decision = admit_pod(&deployment_pod().build(), &world);
    assert_eq!(patch_of(&decision).len(), 3);
}

#[test]
fn namespace_not_enabled_untouched() {
    for namespace in [
        ns(NS),
        ns(NS).annotated(ENABLEMENT_KEY, "disabled"),
        ns(NS).annotated(ENABLEMENT_KEY, "Enabled"),
    ] {
        let world = web_world(namespace, meta().annotated(keys::WORKLOAD, "web"));
        untouched(
            &admit_pod(&deployment_pod().build(), &world),
            messages::NOT_ENABLED,
        );
    }
    // A namespace that does not exist at all.
    untouched(
        &admit_pod(&deployment_pod().build(), &MemorySnapshot::complete()),
        messages::NOT_ENABLED,
    );
}

#[test]
fn pod_annotated_itself_needs_no_parent() {
    // The ReplicaSet is not cached and would be Unknown: resolution must not ask for it.
    let world = MemorySnapshot::default().with_namespace(enabled_namespace());
    let pod = deployment_pod()
        .annotated(keys::WORKLOAD, "cart")
        .annotated(keys::VERSION, "2.1")
        .annotated(keys::APP, "shop")
        .annotated(keys::PRE_DEPLOYMENT_TASKS, "check-db, notify")
        .annotated(keys::METADATA, "team=a,tier=b")
        .build();
    let decision = admit_pod(&pod, &world);
    let out = apply(&pod, &decision);
    assert_eq!(out["spec"]["schedulingGates"], json!([{"name": GATE}]));
    let kw = created_workload(&decision);
    assert_eq!(kw.metadata.name.as_deref(), Some("shop-cart"));
    assert_eq!(kw.spec.app, "shop");
    assert_eq!(kw.spec.pre_deployment_tasks, ["check-db", "notify"]);
    assert_eq!(kw.spec.metadata.get("team").map(String::as_str), Some("a"));
    let kacr = created_request(&decision).unwrap();
    assert_eq!(kacr.spec.app_name, "shop");
    assert!(
        kacr.metadata.annotations.is_none(),
        "multi-service requests carry no app-type"
    );
}

#[test]
fn labels_only_with_kubernetes_recommended_keys() {
    let world = enabled();
    let pod = pod(NS)
        .container("api", "registry.example/api:3.2.1")
        .owned_by("apps/v1", "StatefulSet", "api", "sts-uid")
        .labelled("app.kubernetes.io/name", "api")
        .labelled("app.kubernetes.io/version", "3.2.1")
        .labelled("app.kubernetes.io/part-of", "Shop_Front")
        .build();
    let decision = admit_pod(&pod, &world);
    let out = apply(&pod, &decision);
    let a = annotations(&out);
    assert_eq!(a["keptn.sh/workload"], "api");
    assert_eq!(a["keptn.sh/version"], "3.2.1");
    assert_eq!(
        a["keptn.sh/app"], "Shop_Front",
        "stamp carries the raw value"
    );
    let kw = created_workload(&decision);
    assert_eq!(kw.metadata.name.as_deref(), Some("shop-front-api"));
    assert_eq!(kw.spec.app, "shop-front");
    assert_eq!(kw.spec.resource_reference.kind, "StatefulSet");
}

#[test]
fn statefulset_and_daemonset_pods_use_their_parent() {
    for (kind, parent_kind) in [
        ("StatefulSet", ParentKind::StatefulSet),
        ("DaemonSet", ParentKind::DaemonSet),
    ] {
        let world = enabled().with_parent(
            parent_kind,
            NS,
            "agent",
            meta()
                .annotated(keys::WORKLOAD, "agent")
                .annotated(keys::VERSION, "7")
                .build(),
        );
        let pod = pod(NS)
            .container("agent", "agent:7")
            .owned_by("apps/v1", kind, "agent", "uid-7")
            .build();
        let decision = admit_pod(&pod, &world);
        let kw = created_workload(&decision);
        assert_eq!(kw.spec.resource_reference.kind, kind, "{kind}");
        assert_eq!(kw.spec.resource_reference.uid, "uid-7", "{kind}");
        assert_eq!(kw.spec.version, "7", "{kind}");
        assert_eq!(
            apply(&pod, &decision)["spec"]["schedulingGates"][0]["name"],
            GATE
        );
    }
}

#[test]
fn version_derived_from_containers_is_stamped_and_stable() {
    let world = deployment_world(&[(keys::WORKLOAD, "web")]);
    let pod = deployment_pod().env("MODE", "prod").build();
    let first = admit_pod(&pod, &world);
    let version = annotations(&apply(&pod, &first))["keptn.sh/version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        version.parse::<u32>().is_ok(),
        "FNV-1a hash in decimal, got {version}"
    );
    assert_eq!(created_workload(&first).spec.version, version);
    let again = admit_pod(&pod, &world);
    assert_eq!(created_workload(&again).spec.version, version);
    let changed = deployment_pod().env("MODE", "test").build();
    assert_ne!(
        created_workload(&admit_pod(&changed, &world)).spec.version,
        version,
        "env values take part in the hash"
    );
}

// ---------------------------------------------------------------- pods: untouched (A8, A22)

#[test]
fn unsupported_owners_and_bare_pods_untouched_a22() {
    let world = enabled();
    let cases = [
        (
            "job",
            pod(NS).owned_by("batch/v1", "Job", "migrate", "job-uid"),
        ),
        (
            "cronjob",
            pod(NS).owned_by("batch/v1", "CronJob", "nightly", "cj-uid"),
        ),
        ("bare", pod(NS).named("bare")),
        (
            "other",
            pod(NS).owned_by("example.io/v1", "Thing", "t", "t-uid"),
        ),
    ];
    for (case, builder) in cases {
        let pod = builder
            .container("c", "img:1")
            .annotated(keys::WORKLOAD, "w")
            .build();
        let decision = admit_pod(&pod, &world);
        untouched(&decision, messages::OWNER_NOT_SUPPORTED);
        let _ = case;
    }
}

#[test]
fn last_supported_owner_wins() {
    let pod = pod(NS)
        .owned_by("apps/v1", "ReplicaSet", "first", "u1")
        .owned_by("batch/v1", "Job", "j", "u2")
        .owned_by("apps/v1", "StatefulSet", "last", "u3")
        .owned_by("example.io/v1", "Other", "o", "u4")
        .build();
    let object: DynamicObject = serde_json::from_value(pod).unwrap();
    let owner = pods::supported_owner(object.metadata.owner_references.as_deref()).unwrap();
    assert_eq!(owner.name, "last");
}

#[test]
fn bound_and_mirror_pods_never_gated_a8() {
    let world = deployment_world(&[(keys::WORKLOAD, "web")]);
    let bound = deployment_pod()
        .spec_field("nodeName", json!("node-1"))
        .build();
    untouched(&admit_pod(&bound, &world), messages::BOUND);
    let mirror = deployment_pod()
        .annotated(pods::MIRROR_ANNOTATION, "abc")
        .build();
    untouched(&admit_pod(&mirror, &world), messages::MIRROR);
}

#[test]
fn gate_removed_marker_untouched() {
    let world = deployment_world(&[(keys::WORKLOAD, "web")]);
    for pod in [
        deployment_pod().annotated(REMOVED_MARKER, REMOVED_VALUE),
        deployment_pod().labelled(REMOVED_MARKER, REMOVED_VALUE),
    ] {
        untouched(&admit_pod(&pod.build(), &world), messages::GATE_REMOVED);
    }
}

#[test]
fn not_annotated_anywhere_untouched() {
    let world = deployment_world(&[("team", "a")]);
    untouched(
        &admit_pod(&deployment_pod().build(), &world),
        messages::NOT_ANNOTATED,
    );
}

#[test]
fn bare_replica_set_metadata_ignored() {
    // The ReplicaSet carries keptn.sh/workload itself but has no Deployment owner (B §1.3).
    let world = enabled().with_replica_set(replica_set("web-abc").build());
    untouched(
        &admit_pod(&deployment_pod().build(), &world),
        messages::NOT_ANNOTATED,
    );
}

#[test]
fn update_and_delete_untouched() {
    let world = deployment_world(&[(keys::WORKLOAD, "web")]);
    let pod = deployment_pod().build();
    for op in ["UPDATE", "DELETE"] {
        let review = fixtures::pod_admission()
            .operation(op)
            .object(&pod)
            .old_object(&pod)
            .build();
        let decision = pods::admit(&request(&review), &world).unwrap();
        untouched(&decision, messages::NOT_CREATE);
    }
}

// ---------------------------------------------------------------- pods: gates and reinvocation

#[test]
fn other_gates_kept_and_gate_appended() {
    let world = deployment_world(&[(keys::WORKLOAD, "web")]);
    let pod = deployment_pod().gates(&["example.com/quota"]).build();
    let out = apply(&pod, &admit_pod(&pod, &world));
    assert_eq!(
        out["spec"]["schedulingGates"],
        json!([{"name": "example.com/quota"}, {"name": GATE}])
    );
}

#[test]
fn reinvocation_changes_nothing() {
    for world in [
        deployment_world(&[(keys::WORKLOAD, "web")]),
        deployment_world(&[(keys::WORKLOAD, "web"), (keys::APP, "shop")]),
    ] {
        let pod = deployment_pod().gates(&["other"]).build();
        let first = admit_pod(&pod, &world);
        let out = apply(&pod, &first);
        let second = admit_pod(&out, &world);
        untouched(&second, messages::ALREADY_GATED);
    }
}

#[test]
fn preset_gate_without_identity_is_stamped_not_duplicated() {
    let world = deployment_world(&[(keys::WORKLOAD, "web")]);
    let pod = deployment_pod().gates(&[GATE]).build();
    let decision = admit_pod(&pod, &world);
    let out = apply(&pod, &decision);
    assert_eq!(out["spec"]["schedulingGates"], json!([{"name": GATE}]));
    assert_eq!(annotations(&out)["keptn.sh/workload"], "web");
    assert_eq!(
        out["metadata"]["labels"][GATED_LABEL], GATED_VALUE,
        "labelled although the gate was there: the gate service sees only labelled pods"
    );
}

#[test]
fn reinvoked_pod_that_lost_the_label_gets_only_the_label() {
    let world = deployment_world(&[(keys::WORKLOAD, "web")]);
    let pod = deployment_pod().build();
    let mut out = apply(&pod, &admit_pod(&pod, &world));
    if let Some(labels) = out["metadata"]["labels"].as_object_mut() {
        labels.remove(GATED_LABEL);
    }
    let again = admit_pod(&out, &world);
    assert_eq!(
        patch_paths(&again),
        ["/metadata/labels/portcullis.dev~1gated"]
    );
    assert!(again.writes.is_empty());
    assert_eq!(
        apply(&out, &again)["metadata"]["labels"][GATED_LABEL],
        GATED_VALUE
    );
}

// ---------------------------------------------------------------- pods: caches (A5, A10)

#[test]
fn missing_namespace_and_replica_set_are_asked_for_once_each() {
    let base = MemorySnapshot::default();
    let pod = deployment_pod().build();
    let req = request(&fixtures::pod_review(&pod, false));
    assert_eq!(pods::admit(&req, &base), Err(Needed::Namespace(NS.into())));
    let mut fetched = Fetched::default();
    fetched
        .namespaces
        .insert(NS.into(), Some(std::sync::Arc::new(enabled_namespace())));
    assert_eq!(
        admit_with(&req, &base, &fetched),
        Err(Needed::ReplicaSet {
            namespace: NS.into(),
            name: "web-abc".into()
        })
    );
    fetched.replica_sets.insert(
        (NS.into(), "web-abc".into()),
        Some(std::sync::Arc::new(
            replica_set_of("web-abc", "web").build(),
        )),
    );
    assert_eq!(
        admit_with(&req, &base, &fetched),
        Err(Needed::Parent {
            kind: ParentKind::Deployment,
            namespace: NS.into(),
            name: "web".into()
        })
    );
    fetched.parents.insert(
        (ParentKind::Deployment, NS.into(), "web".into()),
        Some(meta().annotated(keys::WORKLOAD, "web").build()),
    );
    let decision = admit_with(&req, &base, &fetched).unwrap();
    assert_eq!(patch_of(&decision).len(), 3);
}

#[test]
fn replica_set_not_found_means_not_annotated() {
    let base = enabled();
    let pod = deployment_pod().build();
    let req = request(&fixtures::pod_review(&pod, false));
    let mut fetched = Fetched::default();
    fetched
        .replica_sets
        .insert((NS.into(), "web-abc".into()), None);
    let decision = admit_with(&req, &base, &fetched).unwrap();
    untouched(&decision, messages::NOT_ANNOTATED);
}

fn desired_workload(decision: &Decision) -> KeptnWorkload {
    let mut kw = created_workload(decision).clone();
    kw.metadata.resource_version = Some("7".into());
    kw.metadata.uid = Some("kw-uid".into());
    kw
}

#[test]
fn second_pod_of_a_rollout_writes_nothing_a10() {
    let world = deployment_world(&[(keys::WORKLOAD, "web"), (keys::VERSION, "1")]);
    let pod = deployment_pod().build();
    let first = admit_pod(&pod, &world);
    let kacr = created_request(&first).unwrap().clone();
    let world = world
        .with_workload(desired_workload(&first))
        .with_app_creation_request(kacr);
    let second = admit_pod(&pod, &world);
    assert!(second.writes.is_empty(), "{:?}", second.writes);
    assert_eq!(patch_of(&second).len(), 3, "the pod is still gated");
}

#[test]
fn app_in_sync_replaces_the_creation_request_a10() {
    let world = deployment_world(&[(keys::WORKLOAD, "web"), (keys::VERSION, "1")]);
    let pod = deployment_pod().build();
    let first = admit_pod(&pod, &world);
    let app = |labels: Value, version: &str| -> KeptnApp {
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
            "metadata": {"name": "web", "namespace": NS, "labels": labels},
            "spec": {"version": version, "workloads": [{"name": "web", "version": version}]}
        }))
        .unwrap()
    };
    let base = world.clone().with_workload(desired_workload(&first));
    let in_sync = base
        .clone()
        .with_app(app(json!({"app.kubernetes.io/managed-by": "keptn"}), "1"));
    assert!(admit_pod(&pod, &in_sync).writes.is_empty());
    let stale = base
        .clone()
        .with_app(app(json!({"app.kubernetes.io/managed-by": "keptn"}), "0"));
    assert!(created_request(&admit_pod(&pod, &stale)).is_some());
    let user_defined = base.with_app(app(json!({}), "0"));
    assert!(
        admit_pod(&pod, &user_defined).writes.is_empty(),
        "a user-defined app is never touched by a KACR (B §3.1)"
    );
}

#[test]
fn changed_metadata_updates_the_workload_b18() {
    let world = deployment_world(&[(keys::WORKLOAD, "web"), (keys::VERSION, "1")]);
    let pod = deployment_pod().build();
    let first = admit_pod(&pod, &world);
    let world = deployment_world(&[
        (keys::WORKLOAD, "web"),
        (keys::VERSION, "2"),
        (keys::POST_DEPLOYMENT_TASKS, "smoke"),
    ])
    .with_workload(desired_workload(&first));
    let decision = admit_pod(&pod, &world);
    let updated = updated_workload(&decision);
    assert_eq!(updated.spec.version, "2");
    assert_eq!(updated.spec.post_deployment_tasks, ["smoke"]);
    assert_eq!(
        updated.metadata.resource_version.as_deref(),
        Some("7"),
        "optimistic concurrency on the cached version"
    );
}

// ---------------------------------------------------------------- pods: bad input

#[test]
fn non_pod_on_the_pod_path_denied() {
    let d = fixtures::workload("Deployment", NS, "web", &deployment_pod().build());
    let review = fixtures::workload_admission("Deployment")
        .object(&d)
        .build();
    let decision = pods::admit(&request(&review), &enabled()).unwrap();
    let denial = denied(&decision);
    assert_eq!(denial.code, 400);
    assert!(
        denial.message.contains("Kind=Deployment"),
        "{}",
        denial.message
    );
}

#[test]
fn pod_without_object_denied() {
    let review = fixtures::pod_admission().build();
    let decision = pods::admit(&request(&review), &enabled()).unwrap();
    assert!(denied(&decision).message.contains("no object"));
}

#[test]
fn malformed_containers_denied_not_panicking() {
    let pod = deployment_pod()
        .spec_field("containers", json!("not-a-list"))
        .annotated(keys::WORKLOAD, "w")
        .build();
    let decision = admit_pod(&pod, &enabled());
    assert!(denied(&decision).message.contains("spec.containers"));
}

#[test]
fn unknown_container_on_pod_denied_on_parent_ignored() {
    let world = deployment_world(&[(keys::WORKLOAD, "web"), (keys::CONTAINER, "nope")]);
    let decision = admit_pod(&deployment_pod().build(), &world);
    match &decision.verdict {
        Verdict::Allow { patch, message } => {
            assert!(patch.is_empty());
            assert!(message.as_deref().unwrap().contains("keptn.sh/container"));
        }
        other => panic!("{other:?}"),
    }
    let pod = deployment_pod()
        .annotated(keys::WORKLOAD, "web")
        .annotated(keys::CONTAINER, "nope")
        .build();
    let decision = admit_pod(&pod, &enabled());
    assert!(
        denied(&decision)
            .message
            .contains("'nope' specified in keptn.sh/container")
    );
}

#[test]
fn unusable_name_denied() {
    let pod = deployment_pod().annotated(keys::WORKLOAD, "___").build();
    let decision = admit_pod(&pod, &enabled());
    assert!(denied(&decision).message.contains("keptn.sh/workload"));
}

// ---------------------------------------------------------------- workloads (A7)

/// Deployment `web` with `template` as its pod template.
fn deployment(template: PodBuilder) -> WorkloadBuilder {
    fixtures::deployment(NS, "web", template)
}

/// Deployment `web` running one container `web` of `image`.
fn web_deployment(image: &str) -> WorkloadBuilder {
    deployment(pod(NS).container("web", image))
}

fn admit_workload(kind: &str, object: &Value, op: &str, world: &MemorySnapshot) -> Decision {
    let mut review = fixtures::workload_admission(kind)
        .operation(op)
        .object(object);
    if op == "UPDATE" {
        review = review.old_object(object);
    }
    workloads::admit(&request(&review.build()), world).expect("decidable")
}

#[test]
fn annotated_deployment_create_writes_workload_and_request() {
    let d = web_deployment("nginx:1.25")
        .annotated(keys::WORKLOAD, "web")
        .annotated(keys::VERSION, "1.0")
        .build();
    let decision = admit_workload("Deployment", &d, "CREATE", &enabled());
    match &decision.verdict {
        Verdict::Allow { patch, .. } => assert!(patch.is_empty(), "the workload is not mutated"),
        other => panic!("{other:?}"),
    }
    let kw = created_workload(&decision);
    assert_eq!(kw.metadata.name.as_deref(), Some("web-web"));
    assert_eq!(kw.spec.resource_reference.kind, "Deployment");
    assert_eq!(kw.spec.resource_reference.name, "web");
    assert_eq!(kw.spec.resource_reference.uid, "", "uid empty on CREATE");
    assert!(
        kw.metadata.owner_references.is_none(),
        "no owner reference without a uid"
    );
    assert!(created_request(&decision).is_some());
}

#[test]
fn deployment_and_pod_agree_on_the_derived_version() {
    let template = pod(NS).container("web", "nginx").env("A", "1");
    let d = deployment(template.clone())
        .annotated(keys::WORKLOAD, "web")
        .build();
    let from_workload = admit_workload("Deployment", &d, "CREATE", &enabled());
    let world = deployment_world(&[(keys::WORKLOAD, "web")]);
    let from_pod = admit_pod(&template.owned_by_replica_set("web-abc").build(), &world);
    assert_eq!(
        created_workload(&from_workload).spec.version,
        created_workload(&from_pod).spec.version
    );
}

#[test]
fn workload_update_keeps_the_pods_reference() {
    let d = web_deployment("nginx:1")
        .annotated(keys::WORKLOAD, "web")
        .annotated(keys::VERSION, "1")
        .build();
    let world = deployment_world(&[(keys::WORKLOAD, "web"), (keys::VERSION, "1")]);
    let from_pod = admit_pod(&deployment_pod().build(), &world);
    let world = enabled().with_workload(desired_workload(&from_pod));
    // Replicas changed only: nothing to write.
    let unchanged = admit_workload("Deployment", &d, "UPDATE", &world);
    assert!(
        unchanged
            .writes
            .iter()
            .all(|w| !matches!(w, Write::UpdateWorkload(_) | Write::CreateWorkload(_))),
        "{:?}",
        unchanged.writes
    );
    // A new version: the spec changes and names the Deployment until the new ReplicaSet's first
    // pod names its owner (the old ReplicaSet's reference would be wrong for the new version).
    let d2 = web_deployment("nginx:2")
        .annotated(keys::WORKLOAD, "web")
        .annotated(keys::VERSION, "2")
        .build();
    let changed = admit_workload("Deployment", &d2, "UPDATE", &world);
    let updated = updated_workload(&changed);
    assert_eq!(updated.spec.version, "2");
    assert_eq!(updated.spec.resource_reference.kind, "Deployment");
    assert_eq!(updated.spec.resource_reference.name, "web");
}

#[test]
fn statefulset_and_daemonset_admitted() {
    for kind in ["StatefulSet", "DaemonSet"] {
        let object = deployment(pod(NS).container("agent", "agent:1"))
            .annotated(keys::WORKLOAD, "agent")
            .kind(kind)
            .build();
        let decision = admit_workload(kind, &object, "CREATE", &enabled());
        assert_eq!(
            created_workload(&decision).spec.resource_reference.kind,
            kind
        );
    }
}

#[test]
fn unresolvable_workload_rejected_naming_the_key() {
    let d = web_deployment("nginx:1")
        .annotated(keys::WORKLOAD, "web")
        .annotated(keys::CONTAINER, "sidecar")
        .build();
    let decision = admit_workload("Deployment", &d, "CREATE", &enabled());
    let denial = denied(&decision);
    assert_eq!(denial.code, 400);
    assert!(
        denial
            .message
            .contains("The container name 'sidecar' specified in keptn.sh/container"),
        "{}",
        denial.message
    );
    assert!(decision.writes.is_empty());
}

#[test]
fn workload_not_annotated_or_not_enabled_untouched() {
    let plain = web_deployment("nginx:1").build();
    untouched(
        &admit_workload("Deployment", &plain, "CREATE", &enabled()),
        workloads::messages::NOT_ANNOTATED,
    );
    let annotated = web_deployment("nginx:1")
        .annotated(keys::WORKLOAD, "web")
        .build();
    untouched(
        &admit_workload(
            "Deployment",
            &annotated,
            "CREATE",
            &MemorySnapshot::complete(),
        ),
        messages::NOT_ENABLED,
    );
}

#[test]
fn pod_on_the_workload_path_denied() {
    let review = fixtures::pod_review(&deployment_pod().build(), false);
    let decision = workloads::admit(&request(&review), &enabled()).unwrap();
    assert!(denied(&decision).message.contains("Kind=Pod"));
}

// ---------------------------------------------------------------- the pod matrix

/// Every combination of namespace enablement, owner, where the keys are, and the gates already
/// present: the rules of B §1.2–§1.4 and A4/A8/A22 stated independently of the code, plus the
/// invariants every answer must keep (the patch applies to the raw pod, other gates survive in
/// order, there is never a second Portcullis gate, writes happen only for gated pods, and
/// admitting the patched pod again changes nothing).
#[test]
fn pod_matrix() {
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Ns {
        Annotated,
        Labelled,
        Plain,
        WrongValue,
    }
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum OwnerCase {
        ReplicaSetOfDeployment,
        BareReplicaSet,
        ReplicaSetOfRollout,
        StatefulSet,
        DaemonSet,
        DirectDeployment,
        Job,
        CronJob,
        Bare,
    }
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Keys {
        PodAnnotations,
        PodK8sLabels,
        ParentAnnotations,
        ParentK8sLabels,
        Nowhere,
    }
    let namespaces = [Ns::Annotated, Ns::Labelled, Ns::Plain, Ns::WrongValue];
    let owners = [
        OwnerCase::ReplicaSetOfDeployment,
        OwnerCase::BareReplicaSet,
        OwnerCase::ReplicaSetOfRollout,
        OwnerCase::StatefulSet,
        OwnerCase::DaemonSet,
        OwnerCase::DirectDeployment,
        OwnerCase::Job,
        OwnerCase::CronJob,
        OwnerCase::Bare,
    ];
    let keys_cases = [
        Keys::PodAnnotations,
        Keys::PodK8sLabels,
        Keys::ParentAnnotations,
        Keys::ParentK8sLabels,
        Keys::Nowhere,
    ];
    let gate_cases: [&[&str]; 3] = [&[], &["a.io/one", "b.io/two"], &[GATE]];
    let mut cases = 0;
    for ns in namespaces {
        for owner in owners {
            for keys_at in keys_cases {
                for gates in gate_cases {
                    cases += 1;
                    let label = format!("{ns:?}/{owner:?}/{keys_at:?}/{gates:?}");
                    let namespace = match ns {
                        Ns::Annotated => fixtures::ns(NS).enabled(),
                        Ns::Labelled => fixtures::ns(NS).labelled(ENABLEMENT_KEY, ENABLED),
                        Ns::Plain => fixtures::ns(NS),
                        Ns::WrongValue => fixtures::ns(NS).annotated(ENABLEMENT_KEY, "true"),
                    };
                    let parent_meta = match keys_at {
                        Keys::ParentAnnotations => meta()
                            .annotated(keys::WORKLOAD, "svc")
                            .annotated(keys::VERSION, "2.0"),
                        Keys::ParentK8sLabels => meta()
                            .labelled("app.kubernetes.io/name", "svc")
                            .labelled("app.kubernetes.io/version", "2.0"),
                        _ => meta().annotated("unrelated", "x"),
                    };
                    // What the world holds for the owner (its ReplicaSet, the parent whose
                    // metadata is looked up) and the pod's owner reference (none: a bare pod).
                    let of_rs = Some(("apps/v1", "ReplicaSet", "svc-abc", "rs-uid"));
                    let (rs, parent, reference) = match owner {
                        OwnerCase::ReplicaSetOfDeployment => (
                            Some(replica_set_of("svc-abc", "svc")),
                            Some(ParentKind::Deployment),
                            of_rs,
                        ),
                        OwnerCase::BareReplicaSet => (Some(replica_set("svc-abc")), None, of_rs),
                        OwnerCase::ReplicaSetOfRollout => (
                            Some(fixtures::replica_set(NS, "svc-abc").owned_by(
                                "argoproj.io/v1alpha1",
                                "Rollout",
                                "svc",
                                "r",
                            )),
                            Some(ParentKind::Deployment),
                            of_rs,
                        ),
                        OwnerCase::StatefulSet => (
                            None,
                            Some(ParentKind::StatefulSet),
                            Some(("apps/v1", "StatefulSet", "svc", "sts-uid")),
                        ),
                        OwnerCase::DaemonSet => (
                            None,
                            Some(ParentKind::DaemonSet),
                            Some(("apps/v1", "DaemonSet", "svc", "ds-uid")),
                        ),
                        OwnerCase::DirectDeployment => (
                            None,
                            Some(ParentKind::Deployment),
                            Some(("apps/v1", "Deployment", "svc", "d-uid")),
                        ),
                        OwnerCase::Job => (None, None, Some(("batch/v1", "Job", "svc", "j-uid"))),
                        OwnerCase::CronJob => {
                            (None, None, Some(("batch/v1", "CronJob", "svc", "c-uid")))
                        }
                        OwnerCase::Bare => (None, None, None),
                    };
                    let mut world = MemorySnapshot::complete().with_namespace(namespace.build());
                    if let Some(rs) = rs {
                        world = world.with_replica_set(rs.build());
                    }
                    if let Some(kind) = parent {
                        world = world.with_parent(kind, NS, "svc", parent_meta.build());
                    }
                    let mut builder = pod(NS).container("svc", "svc:2.0");
                    builder = match reference {
                        Some((api_version, kind, name, uid)) => {
                            builder.owned_by(api_version, kind, name, uid)
                        }
                        None => builder.named("svc"),
                    };
                    builder = match keys_at {
                        Keys::PodAnnotations => builder
                            .annotated(keys::WORKLOAD, "svc")
                            .annotated(keys::VERSION, "2.0"),
                        Keys::PodK8sLabels => builder
                            .labelled("app.kubernetes.io/name", "svc")
                            .labelled("app.kubernetes.io/version", "2.0"),
                        _ => builder,
                    };
                    if !gates.is_empty() {
                        builder = builder.gates(gates);
                    }
                    let raw = builder.build();

                    // The rules, stated on their own.
                    let enabled = matches!(ns, Ns::Annotated | Ns::Labelled);
                    let supported =
                        !matches!(owner, OwnerCase::Job | OwnerCase::CronJob | OwnerCase::Bare);
                    let parent_counts = matches!(
                        owner,
                        OwnerCase::ReplicaSetOfDeployment
                            | OwnerCase::StatefulSet
                            | OwnerCase::DaemonSet
                    );
                    let annotated = match keys_at {
                        Keys::PodAnnotations | Keys::PodK8sLabels => true,
                        Keys::ParentAnnotations | Keys::ParentK8sLabels => parent_counts,
                        Keys::Nowhere => false,
                    };
                    let gated = enabled && supported && annotated;

                    let decision = admit_pod(&raw, &world);
                    let out = apply(&raw, &decision);
                    let got_gates: Vec<&str> = out["spec"]["schedulingGates"]
                        .as_array()
                        .map(|g| g.iter().filter_map(|x| x["name"].as_str()).collect())
                        .unwrap_or_default();
                    let ours = got_gates.iter().filter(|g| **g == GATE).count();
                    let others: Vec<&str> =
                        got_gates.iter().copied().filter(|g| *g != GATE).collect();
                    let others_before: Vec<&str> =
                        gates.iter().copied().filter(|g| *g != GATE).collect();
                    assert_eq!(others, others_before, "{label}: other gates kept in order");
                    assert!(ours <= 1, "{label}: at most one Portcullis gate");
                    if gated {
                        assert_eq!(ours, 1, "{label}: gated");
                        assert_eq!(
                            out["metadata"]["labels"][GATED_LABEL], GATED_VALUE,
                            "{label}"
                        );
                        let a = annotations(&out);
                        assert_eq!(a["keptn.sh/workload"], "svc", "{label}");
                        assert_eq!(a["keptn.sh/version"], "2.0", "{label}");
                        assert_eq!(a["keptn.sh/app"], "svc", "{label}");
                        let kw = created_workload(&decision);
                        assert_eq!(kw.metadata.name.as_deref(), Some("svc-svc"), "{label}");
                        assert_eq!(kw.spec.version, "2.0", "{label}");
                        assert!(created_request(&decision).is_some(), "{label}");
                        let again = admit_pod(&out, &world);
                        assert!(patch_of(&again).is_empty(), "{label}: reinvocation");
                        assert!(again.writes.is_empty(), "{label}: reinvocation writes");
                    } else {
                        assert!(patch_of(&decision).is_empty(), "{label}: untouched");
                        assert!(decision.writes.is_empty(), "{label}: nothing written");
                        assert_eq!(ours, usize::from(gates.contains(&GATE)), "{label}");
                    }
                }
            }
        }
    }
    assert_eq!(cases, 4 * 9 * 5 * 3);
}
