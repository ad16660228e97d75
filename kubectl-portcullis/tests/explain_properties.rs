//! Property: over generated manifests, `explain` gives for an object the verdict, message,
//! patch, error and writes the webhook's core gives for the same object and the same namespace
//! and cache state; for a Deployment, StatefulSet or DaemonSet also for the pod its controller
//! creates; what it shows about the identity is what the webhook writes; and reading the
//! manifest back from YAML changes nothing.
//!
//! The generators mirror those of the webhook's property suite (`webhook/tests/properties.rs`):
//! keptn.sh / app.kubernetes.io keys with odd values, owners, gates, nodeName, containers,
//! namespace enablement, ReplicaSet owners and parent metadata. Fixed seed; `PROPTEST_CASES=N`
//! runs N cases per property.

use std::cell::RefCell;
use std::collections::BTreeMap;

use kube::ResourceExt;
use kubectl_portcullis::explain::{Explanation, Options, explain, manifest};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use shared::resolve::ObjectMetaView;
use webhook::decision::{Decision, Verdict, Write};
use webhook::fixtures;
use webhook::snapshot::{MemorySnapshot, NamespaceMeta, ParentKind, ReplicaSetMeta};
use webhook::strategies::{annotated_map, container, meta_map, owner};

// ------------------------------------------------------------------ runner

fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// What an explanation said, to check that every kind of answer was generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Enabled,
    NotEnabled,
    Rejected,
}

fn kind_of(e: &Explanation) -> Kind {
    if !e.allowed {
        Kind::Rejected
    } else if e.enabled {
        Kind::Enabled
    } else {
        Kind::NotEnabled
    }
}

fn run<S: Strategy>(cases: u32, strategy: S, check: impl Fn(S::Value) -> Result<Kind, String>)
where
    S::Value: std::fmt::Debug,
{
    let seen = RefCell::new(BTreeMap::<Kind, u32>::new());
    let mut runner = TestRunner::new_with_rng(
        config(cases),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let result = runner.run(&strategy, |input| {
        let kind = check(input).map_err(proptest::test_runner::TestCaseError::fail)?;
        *seen.borrow_mut().entry(kind).or_default() += 1;
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    let seen = seen.into_inner();
    eprintln!("answers over {cases} cases: {seen:?}");
    for kind in [Kind::Enabled, Kind::NotEnabled, Kind::Rejected] {
        assert!(
            seen.get(&kind).is_some_and(|n| *n > 0),
            "no case answered {kind:?}: {seen:?}"
        );
    }
}

// ------------------------------------------------------------------ generators

/// How the namespace `shop` is known.
#[derive(Debug, Clone, Copy)]
enum NsState {
    Annotated,
    Labelled,
    WrongValue,
    /// Neither in the manifests nor in the cluster.
    Missing,
    /// `--namespace-enabled`, no Namespace in the manifests.
    Flag,
    /// `--namespace-enabled` over a Namespace of the manifests that is not enabled.
    FlagOverWrongValue,
}

fn ns_state() -> impl Strategy<Value = NsState> {
    prop_oneof![
        3 => Just(NsState::Annotated),
        2 => Just(NsState::Labelled),
        1 => Just(NsState::WrongValue),
        1 => Just(NsState::Missing),
        2 => Just(NsState::Flag),
        1 => Just(NsState::FlagOverWrongValue),
    ]
}

fn gates() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(prop::sample::select(vec![
        Value::Null,
        json!([]),
        json!([{"name": "other.io/gate"}]),
        json!([{"name": "keptn-prechecks-gate"}]),
        json!([{"name": "a"}, {"name": "b"}]),
    ]))
}

/// The objects beside the explained one: namespace, ReplicaSet `web-abc`, parents `web`.
#[derive(Debug, Clone)]
struct WorldCase {
    ns: NsState,
    /// The ReplicaSet in the manifests, with its owner's kind (if any).
    rs: Option<Option<&'static str>>,
    /// Metadata of the parents `web` (Deployment, StatefulSet, DaemonSet) in the manifests.
    parent: Option<(BTreeMap<String, String>, BTreeMap<String, String>)>,
    parent_kinds: Vec<ParentKind>,
}

fn world_case() -> impl Strategy<Value = WorldCase> {
    (
        ns_state(),
        prop::option::weighted(
            0.8,
            prop::option::of(prop::sample::select(vec!["Deployment", "Rollout", "Job"])),
        ),
        prop::option::weighted(0.8, (annotated_map(), meta_map())),
        prop::sample::subsequence(
            vec![
                ParentKind::Deployment,
                ParentKind::StatefulSet,
                ParentKind::DaemonSet,
            ],
            0..=3,
        ),
    )
        .prop_map(|(ns, rs, parent, parent_kinds)| WorldCase {
            ns,
            rs,
            parent,
            parent_kinds,
        })
}

#[derive(Debug, Clone)]
struct PodCase {
    annotations: Option<BTreeMap<String, String>>,
    labels: BTreeMap<String, String>,
    owners: Vec<Value>,
    gates: Option<Value>,
    node_name: Option<&'static str>,
    containers: Vec<Value>,
    /// Whether the pod names its namespace (else it goes to the default one, `shop`).
    named_namespace: bool,
}

fn pod_case() -> impl Strategy<Value = PodCase> {
    (
        prop::option::weighted(0.8, annotated_map()),
        meta_map(),
        prop::collection::vec(owner(), 0..3),
        gates(),
        prop::option::weighted(0.15, prop::sample::select(vec!["", "node-1"])),
        prop::collection::vec(container(), 0..3),
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(annotations, labels, owners, gates, node_name, containers, named_namespace)| {
                PodCase {
                    annotations,
                    labels,
                    owners,
                    gates,
                    node_name,
                    containers,
                    named_namespace,
                }
            },
        )
}

fn build_pod(case: &PodCase) -> Value {
    let mut pod = fixtures::pod("shop").build();
    let meta = &mut pod["metadata"];
    if let Some(annotations) = &case.annotations {
        meta["annotations"] = json!(annotations);
    }
    for (k, v) in &case.labels {
        meta["labels"][k] = json!(v);
    }
    if !case.owners.is_empty() {
        meta["ownerReferences"] = Value::Array(case.owners.clone());
    }
    if let Some(gates) = &case.gates {
        pod["spec"]["schedulingGates"] = gates.clone();
    }
    if let Some(node) = case.node_name {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod["spec"]["containers"] = Value::Array(case.containers.clone());
    pod
}

fn without_namespace(mut object: Value) -> Value {
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    object
}

// ------------------------------------------------------------------ the two sides

/// The manifest's objects beside the explained one, and the complete snapshot the webhook's
/// core sees for the same state.
fn world(case: &WorldCase) -> (Vec<Value>, MemorySnapshot, Options) {
    let mut objects = Vec::new();
    let mut snapshot = MemorySnapshot::complete();
    let enabled = json!({"keptn.sh/lifecycle-toolkit": "enabled"});
    let wrong = json!({"keptn.sh/lifecycle-toolkit": "Enabled"});
    let (manifest_ns, known_ns) = match case.ns {
        NsState::Annotated => (Some((enabled.clone(), json!({}))), None),
        NsState::Labelled => (Some((json!({}), enabled.clone())), None),
        NsState::WrongValue => (Some((wrong.clone(), json!({}))), None),
        NsState::Missing => (None, None),
        NsState::Flag => (None, Some(enabled.clone())),
        NsState::FlagOverWrongValue => (Some((wrong.clone(), json!({}))), Some(enabled.clone())),
    };
    if let Some((annotations, labels)) = manifest_ns {
        let ns = fixtures::namespace("shop", annotations, labels);
        objects.push(ns.clone());
        snapshot = snapshot.with_namespace(serde_json::from_value::<NamespaceMeta>(ns).unwrap());
    }
    if let Some(annotations) = &known_ns {
        // The flag wins: the core sees an enabled namespace.
        let ns = fixtures::namespace("shop", annotations.clone(), json!({}));
        snapshot = snapshot.with_namespace(serde_json::from_value::<NamespaceMeta>(ns).unwrap());
    }
    if let Some(owner) = case.rs {
        let mut rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "shop", "uid": "ReplicaSet-uid"}});
        if let Some(kind) = owner {
            rs["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "apps/v1", "kind": kind, "name": "web", "uid": "d"}]);
        }
        objects.push(rs.clone());
        snapshot = snapshot.with_replica_set(serde_json::from_value::<ReplicaSetMeta>(rs).unwrap());
    }
    if let Some((annotations, labels)) = &case.parent {
        for kind in &case.parent_kinds {
            objects.push(json!({
                "apiVersion": "apps/v1", "kind": kind.as_str(),
                "metadata": {"name": "web", "namespace": "shop",
                    "annotations": annotations, "labels": labels}
            }));
            let meta = ObjectMetaView {
                annotations: annotations.clone(),
                labels: labels.clone(),
            };
            snapshot = snapshot.with_parent(*kind, "shop", "web", meta);
        }
    }
    let options = Options {
        default_namespace: "shop".into(),
        namespace_enabled: known_ns.is_some(),
        ..Options::default()
    };
    (objects, snapshot, options)
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// The explanation says what the core decided; when enabled, its identity is what the core
/// writes (and for a gated pod, the KeptnWorkloadVersion is the gate's for that write).
fn same(what: &str, e: &Explanation, decision: &Decision) -> Result<(), String> {
    let (allowed, message, patch, error) = match &decision.verdict {
        Verdict::Allow { patch, message } => (
            true,
            message.clone(),
            (!patch.is_empty()).then(|| json!(patch)),
            None,
        ),
        Verdict::Deny(denial) => (false, None, None, Some(denial.message.clone())),
    };
    let core = (allowed, message, patch, error);
    let explained = (
        e.allowed,
        e.message.clone(),
        e.patch.clone(),
        e.error.clone(),
    );
    ensure(explained == core, || {
        format!("{what}: explain said {explained:?}, the webhook {core:?}")
    })?;
    let writes: Vec<String> = decision.writes.iter().map(ToString::to_string).collect();
    ensure(e.writes == writes, || {
        format!("{what}: writes {:?} vs {writes:?}", e.writes)
    })?;
    let gated = allowed && e.patch.is_some() && e.webhook_path.as_deref() == Some("/mutate-v1-pod");
    if e.webhook_path.as_deref() == Some("/mutate-v1-pod") {
        ensure(e.enabled == gated, || {
            format!("{what}: enabled {}", e.enabled)
        })?;
    }
    if e.workload.is_some() {
        let written = decision.writes.iter().find_map(|w| match w {
            Write::CreateWorkload(w) | Write::UpdateWorkload(w) => Some(w),
            Write::CreateAppCreationRequest(_) => None,
        });
        let Some(w) = written else {
            // The KeptnWorkload in the caches is already as the identity wants it.
            return Ok(());
        };
        let version = e.version.as_ref().map(|v| v.value.to_lowercase());
        let shown = (
            e.keptn_workload.clone(),
            e.keptn_app.clone(),
            version,
            e.pre_deployment_tasks.clone(),
            e.post_deployment_evaluations.clone(),
            e.metadata.clone(),
        );
        let wrote = (
            w.metadata.name.clone(),
            Some(w.spec.app.clone()),
            Some(w.spec.version.clone()),
            w.spec.pre_deployment_tasks.clone(),
            w.spec.post_deployment_evaluations.clone(),
            w.spec.metadata.clone(),
        );
        ensure(shown == wrote, || {
            format!("{what}: shown {shown:?}, written {wrote:?}")
        })?;
        if e.enabled && e.kind == "Pod" {
            // Gated pods name their owner: the gate creates the KeptnWorkloadVersion, unless
            // the owner is a Deployment (whose ReplicaSet's pods it waits for).
            let kwv = (!lifecycle::versions::awaits_its_pods(w))
                .then(|| shared::resolve::kwv_name(&w.name_any(), &w.spec.version));
            ensure(e.keptn_workload_version == kwv, || {
                format!(
                    "{what}: KeptnWorkloadVersion {:?}",
                    e.keptn_workload_version
                )
            })?;
        }
    }
    Ok(())
}

/// Reading the manifest back from YAML explains the same.
fn same_from_yaml(
    objects: &[Value],
    options: &Options,
    want: &[Explanation],
) -> Result<(), String> {
    let yaml = serde_yaml::to_string(objects).map_err(|e| e.to_string())?;
    let read = manifest::parse(&yaml, "generated.yaml").map_err(|e| e.to_string())?;
    let again = explain(&read, options);
    ensure(again == want, || "explained differently from YAML".into())
}

fn core_pod(pod: &Value, snapshot: &MemorySnapshot) -> Decision {
    let review = fixtures::pod_review(pod, false);
    let request = webhook::review::parse(&serde_json::to_vec(&review).unwrap()).unwrap();
    webhook::pods::admit(&request, snapshot).expect("the snapshot is complete")
}

// ------------------------------------------------------------------ properties

#[test]
fn pods_are_explained_as_the_webhook_admits_them() {
    run(600, (world_case(), pod_case()), |(world_case, pod_case)| {
        let (mut objects, snapshot, options) = world(&world_case);
        let pod = build_pod(&pod_case);
        objects.push(if pod_case.named_namespace {
            pod.clone()
        } else {
            without_namespace(pod.clone())
        });
        let explanations = explain(&objects, &options);
        let e = explanations.last().ok_or("nothing explained")?;
        ensure(e.kind == "Pod", || format!("last explained: {}", e.kind))?;
        same("pod", e, &core_pod(&pod, &snapshot))?;
        same_from_yaml(&objects, &options, &explanations)?;
        Ok(kind_of(e))
    });
}

#[derive(Debug, Clone)]
struct WorkloadCase {
    kind: ParentKind,
    name: &'static str,
    meta: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    template: PodCase,
}

fn workload_case() -> impl Strategy<Value = WorkloadCase> {
    (
        prop::sample::select(vec![
            ParentKind::Deployment,
            ParentKind::StatefulSet,
            ParentKind::DaemonSet,
        ]),
        prop::sample::select(vec!["app", "App_1", ""]),
        annotated_map(),
        meta_map(),
        pod_case(),
    )
        .prop_map(|(kind, name, meta, labels, template)| WorkloadCase {
            kind,
            name,
            meta,
            labels,
            template,
        })
}

/// The pod the controller of `workload` creates, built here independently of `explain`: the
/// template, owned by a ReplicaSet of the Deployment (added to `snapshot`) or by the workload.
fn controller_pod(case: &WorkloadCase, workload: &Value, snapshot: &mut MemorySnapshot) -> Value {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": workload["spec"]["template"]["metadata"].clone(),
        "spec": workload["spec"]["template"]["spec"].clone()});
    pod["metadata"]["namespace"] = json!("shop");
    let owner = match case.kind {
        ParentKind::Deployment => {
            let rs = json!({"metadata": {"name": "some-rs", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                    "name": case.name, "uid": "u"}]}});
            *snapshot = snapshot
                .clone()
                .with_replica_set(serde_json::from_value(rs).unwrap());
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "some-rs", "uid": "r"})
        }
        kind => json!({"apiVersion": "apps/v1", "kind": kind.as_str(), "name": case.name,
            "uid": "w"}),
    };
    pod["metadata"]["ownerReferences"] = json!([owner]);
    pod
}

#[test]
fn workloads_and_their_pods_are_explained_as_the_webhook_admits_them() {
    run(
        400,
        (world_case(), workload_case()),
        |(world_case, case)| {
            let (mut objects, snapshot, options) = world(&world_case);
            let template = build_pod(&case.template);
            let mut workload = fixtures::workload(case.kind.as_str(), "shop", case.name, &template);
            workload["metadata"]["annotations"] = json!(case.meta);
            workload["metadata"]["labels"] = json!(case.labels);
            objects.push(workload.clone());
            let explanations = explain(&objects, &options);
            let e = explanations.last().ok_or("nothing explained")?;
            ensure(e.kind == case.kind.as_str(), || format!("last: {}", e.kind))?;

            let review = fixtures::review(
                "apps",
                "v1",
                case.kind.as_str(),
                "deployments",
                "CREATE",
                Some(&workload),
                None,
                false,
            );
            let request = webhook::review::parse(&serde_json::to_vec(&review).unwrap()).unwrap();
            let decision = webhook::workloads::admit(&request, &snapshot).expect("complete");
            same("workload", e, &decision)?;

            let pods = e.pods.as_deref().ok_or("no pods explained")?;
            if !case.name.is_empty() {
                let meta = ObjectMetaView {
                    annotations: case.meta.clone(),
                    labels: case.labels.clone(),
                };
                let mut snapshot = snapshot.with_parent(case.kind, "shop", case.name, meta);
                // The pods are admitted after their workload: its writes are in the caches.
                for write in &decision.writes {
                    snapshot = match write {
                        Write::CreateWorkload(w) | Write::UpdateWorkload(w) => {
                            snapshot.with_workload((**w).clone())
                        }
                        Write::CreateAppCreationRequest(r) => {
                            snapshot.with_app_creation_request((**r).clone())
                        }
                    };
                }
                let pod = controller_pod(&case, &workload, &mut snapshot);
                same("its pods", pods, &core_pod(&pod, &snapshot))?;
                // The pods' admission completes the KeptnWorkload: its version is theirs.
                let same_version = e.keptn_workload_version == pods.keptn_workload_version;
                ensure(!pods.enabled || same_version, || {
                    format!("KeptnWorkloadVersion {:?}", e.keptn_workload_version)
                })?;
            }
            same_from_yaml(&objects, &options, &explanations)?;
            Ok(kind_of(e))
        },
    );
}
