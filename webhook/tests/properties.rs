//! Property suite over the admission endpoints (issue 9), bytes in, HTTP response out through the
//! real router. The checks live in `fuzz/src/oracle.rs`, shared with the cargo-fuzz target
//! `admission`; see [`oracle::check`] and [`oracle::check_all`] for the properties:
//! no panic; unreadable body → 400 with a message, else 200 echoing the uid; every patch is `add`
//! on `/spec/schedulingGates`, the gated label or `/metadata/annotations`, applies to the raw
//! object (A9) and leaves the pod gated and labelled (A8);
//! reinvocation on the patched object adds nothing (A8, A10); dry run answers the same and
//! writes nothing (A6); writes in the caches are not repeated (A10); bounded response size.
//!
//! Cases run from a fixed seed (deterministic); `PROPTEST_CASES=N` runs N cases per property.
//!
//! Generated inputs: pod reviews (keptn.sh / app.kubernetes.io keys with odd values, owners,
//! gates, nodeName, mirror annotation, operation, dryRun, namespace enablement, cache contents),
//! workload reviews, arbitrary bytes, and golden fixtures mutated as JSON and as bytes.

#[path = "../../fuzz/src/oracle.rs"]
mod oracle;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use shared::resolve::ObjectMetaView;
use webhook::fixtures;
use webhook::server::{POD_PATH, TASK_DEFINITION_PATH, WORKLOAD_PATH};
use webhook::snapshot::{MemorySnapshot, ParentKind};

use oracle::{Kind, World};
use webhook::strategies::{KEYS, annotated_map, container, meta_map, odd_value, owner};

const PATHS: [&str; 3] = [POD_PATH, WORKLOAD_PATH, TASK_DEFINITION_PATH];

/// `cases`, or `PROPTEST_CASES` when set (to explore longer: `PROPTEST_CASES=100000`).
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

/// Runs `strategy` for `cases` cases through `check`, failing with the shrunk input; then
/// asserts that every kind of answer in `expected` was seen, so that a generator that drifted
/// into producing only rejections (say) cannot pass vacuously.
fn run<S: Strategy>(
    cases: u32,
    strategy: S,
    expected: &[Kind],
    check: impl Fn(S::Value) -> Result<Kind, String>,
) where
    S::Value: std::fmt::Debug,
{
    let seen = RefCell::new(BTreeMap::<Kind, u32>::new());
    // A fixed seed: `make test` runs the same cases every time (set `PROPTEST_CASES` to go
    // further; the fuzzer explores at random).
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
    for kind in expected {
        assert!(
            seen.get(kind).is_some_and(|n| *n > 0),
            "no case answered {kind:?}: {seen:?}"
        );
    }
}

// ------------------------------------------------------------------ generators

/// Annotation and label keys the webhook reads, plus the mirror annotation and a stranger.
/// How the namespace `shop` looks.
#[derive(Debug, Clone, Copy)]
enum NsState {
    Annotated,
    Labelled,
    WrongValue,
    Missing,
}

fn ns_state() -> impl Strategy<Value = NsState> {
    prop_oneof![
        3 => Just(NsState::Annotated),
        2 => Just(NsState::Labelled),
        1 => Just(NsState::WrongValue),
        1 => Just(NsState::Missing),
    ]
}

fn gates() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(prop::sample::select(vec![
        Value::Null,
        json!([]),
        json!([{"name": "other.io/gate"}]),
        json!([{"name": "keptn-prechecks-gate"}]),
        json!([{"name": "other.io/gate"}, {"name": "keptn-prechecks-gate"}]),
        json!([{"name": "a"}, {"name": "b"}]),
    ]))
}

/// Everything about the world: namespace, whether the caches are warm, the ReplicaSet's owner,
/// the parents' metadata, failing writes.
#[derive(Debug, Clone)]
struct WorldCase {
    ns: NsState,
    warm: bool,
    rs_owner: Option<&'static str>,
    parent: Option<(BTreeMap<String, String>, BTreeMap<String, String>)>,
    fail_writes: bool,
}

fn world_case() -> impl Strategy<Value = WorldCase> {
    (
        ns_state(),
        prop::bool::weighted(0.7),
        prop::option::of(prop::sample::select(vec!["Deployment", "Rollout", "Job"])),
        prop::option::weighted(0.8, (annotated_map(), meta_map())),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(ns, warm, rs_owner, parent, fail_writes)| WorldCase {
            ns,
            warm,
            rs_owner,
            parent,
            fail_writes,
        })
}

fn build_world(case: &WorldCase) -> World {
    let mut full = MemorySnapshot::complete();
    let (annotations, labels) = match case.ns {
        NsState::Annotated => (json!({"keptn.sh/lifecycle-toolkit": "enabled"}), json!({})),
        NsState::Labelled => (json!({}), json!({"keptn.sh/lifecycle-toolkit": "enabled"})),
        NsState::WrongValue => (json!({"keptn.sh/lifecycle-toolkit": "Enabled"}), json!({})),
        NsState::Missing => (Value::Null, Value::Null),
    };
    if !annotations.is_null() {
        full = full.with_namespace(
            serde_json::from_value(fixtures::namespace("shop", annotations, labels)).unwrap(),
        );
    }
    let mut rs =
        json!({"metadata": {"name": "web-abc", "namespace": "shop", "uid": "ReplicaSet-uid"}});
    if let Some(kind) = case.rs_owner {
        rs["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": kind, "name": "web", "uid": "d"}]);
    }
    full = full.with_replica_set(serde_json::from_value(rs).unwrap());
    let mut parent_bytes = 0;
    if let Some((annotations, labels)) = &case.parent {
        let meta = ObjectMetaView {
            annotations: annotations.clone(),
            labels: labels.clone(),
        };
        parent_bytes = serde_json::to_string(&(annotations, labels)).unwrap().len();
        for kind in [
            ParentKind::Deployment,
            ParentKind::StatefulSet,
            ParentKind::DaemonSet,
        ] {
            full = full.with_parent(kind, "shop", "web", meta.clone());
        }
    }
    let caches = if case.warm {
        full.clone()
    } else {
        // Cold caches: everything is fetched (A5), from the cluster.
        MemorySnapshot::default()
    };
    World {
        caches,
        cluster: full,
        fail_writes: case.fail_writes,
        parent_bytes,
    }
}

#[derive(Debug, Clone)]
struct PodCase {
    annotations: Option<BTreeMap<String, String>>,
    /// `None`: the pod has no `metadata.labels` at all.
    labels: Option<BTreeMap<String, String>>,
    owners: Vec<Value>,
    gates: Option<Value>,
    node_name: Option<&'static str>,
    containers: Vec<Value>,
    operation: &'static str,
    dry_run: bool,
    /// 0: request and object name the namespace; 1: only the object; 2: neither.
    ns_mode: u8,
}

fn pod_case() -> impl Strategy<Value = PodCase> {
    (
        prop::option::weighted(0.8, annotated_map()),
        prop::option::weighted(0.8, meta_map()),
        prop::collection::vec(owner(), 0..3),
        gates(),
        prop::option::weighted(0.15, prop::sample::select(vec!["", "node-1"])),
        prop::collection::vec(container(), 0..3),
        prop_oneof![
            8 => Just("CREATE"),
            1 => Just("UPDATE"),
            1 => Just("DELETE"),
            1 => Just("CONNECT"),
        ],
        any::<bool>(),
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(
            |(
                annotations,
                labels,
                owners,
                gates,
                node_name,
                containers,
                operation,
                dry_run,
                ns_mode,
            )| {
                PodCase {
                    annotations,
                    labels,
                    owners,
                    gates,
                    node_name,
                    containers,
                    operation,
                    dry_run,
                    ns_mode,
                }
            },
        )
}

fn build_pod_review(case: &PodCase) -> Value {
    let mut pod = fixtures::pod("shop").build();
    let meta = &mut pod["metadata"];
    if let Some(annotations) = &case.annotations {
        meta["annotations"] = json!(annotations);
    }
    match &case.labels {
        Some(labels) => {
            for (k, v) in labels {
                meta["labels"][k] = json!(v);
            }
        }
        None => {
            if let Some(meta) = meta.as_object_mut() {
                meta.remove("labels");
            }
        }
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
    let old = (case.operation != "CREATE").then(|| pod.clone());
    let object = (case.operation != "DELETE").then(|| pod.clone());
    let mut review = fixtures::review(
        "",
        "v1",
        "Pod",
        "pods",
        case.operation,
        object.as_ref(),
        old.as_ref(),
        case.dry_run,
    );
    match case.ns_mode {
        0 => {}
        1 => review["request"]["namespace"] = Value::Null,
        _ => {
            review["request"]["namespace"] = json!("");
            if let Some(meta) = review
                .pointer_mut("/request/object/metadata")
                .and_then(Value::as_object_mut)
            {
                meta.remove("namespace");
            }
        }
    }
    review
}

// ------------------------------------------------------------------ properties

#[test]
fn generated_pod_reviews() {
    let rt = oracle::runtime();
    run(
        1500,
        (world_case(), pod_case()),
        &[Kind::Denied, Kind::Patched, Kind::Allowed],
        |(world, pod)| {
            let world = build_world(&world);
            let body = serde_json::to_vec(&build_pod_review(&pod)).unwrap();
            oracle::check_all(&rt, &world, POD_PATH, &body)
        },
    );
}

#[test]
fn generated_pod_reviews_are_gated_when_annotated() {
    // Not only "nothing bad": an annotated pod of an enabled namespace and a ReplicaSet owner,
    // on CREATE, unbound, no mirror or gate-removed marker, is gated (A8), and the check above
    // thus sees patches. Workload key and a version on the pod itself keep resolution simple.
    let rt = oracle::runtime();
    run(
        300,
        (
            pod_case(),
            "[a-z]{1,10}",
            "[0-9]\\.[0-9]{1,3}",
            any::<bool>(),
        ),
        &[Kind::Patched],
        |(mut pod, workload, version, warm)| {
            pod.operation = "CREATE";
            pod.node_name = None;
            pod.ns_mode = 0;
            pod.owners = vec![
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u"}),
            ];
            let annotations = pod.annotations.get_or_insert_with(BTreeMap::new);
            annotations.retain(|k, _| {
                !k.starts_with("keptn.sh/")
                    && !k.starts_with("kubernetes.io/")
                    && !k.starts_with("app.kubernetes.io/")
            });
            annotations.insert("keptn.sh/workload".into(), workload);
            annotations.insert("keptn.sh/version".into(), version);
            if let Some(labels) = &mut pod.labels {
                labels.retain(|k, _| {
                    !k.starts_with("keptn.sh/") && !k.starts_with("app.kubernetes.io/")
                });
            }
            let world = build_world(&WorldCase {
                ns: NsState::Annotated,
                warm,
                rs_owner: Some("Deployment"),
                parent: None,
                fail_writes: false,
            });
            let body = serde_json::to_vec(&build_pod_review(&pod)).unwrap();
            let outcome = oracle::post(&rt, &world, POD_PATH, &body);
            let answer = oracle::check(POD_PATH, &body, &outcome, &world)?
                .ok_or("generated review unreadable")?;
            if !answer.allowed || answer.patch.is_none() {
                return Err(format!("annotated pod not gated: {:?}", answer.message));
            }
            if !pod.dry_run && outcome.writes.len() != 2 {
                return Err(format!(
                    "expected KeptnWorkload and KACR writes: {:?}",
                    outcome.writes
                ));
            }
            oracle::check_all(&rt, &world, POD_PATH, &body)
        },
    );
}

#[derive(Debug, Clone)]
struct WorkloadCase {
    kind: &'static str,
    group: &'static str,
    operation: &'static str,
    name: &'static str,
    meta: BTreeMap<String, String>,
    template: PodCase,
}

fn workload_case() -> impl Strategy<Value = WorkloadCase> {
    (
        prop::sample::select(vec!["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]),
        prop_oneof![9 => Just("apps"), 1 => Just("")],
        prop_oneof![4 => Just("CREATE"), 4 => Just("UPDATE"), 1 => Just("DELETE")],
        prop::sample::select(vec!["web", "", "Web_1"]),
        meta_map(),
        pod_case(),
    )
        .prop_map(
            |(kind, group, operation, name, meta, template)| WorkloadCase {
                kind,
                group,
                operation,
                name,
                meta,
                template,
            },
        )
}

#[test]
fn generated_workload_reviews() {
    let rt = oracle::runtime();
    run(
        800,
        (world_case(), workload_case()),
        &[Kind::Denied, Kind::Wrote, Kind::Allowed],
        |(world, case)| {
            let world = build_world(&world);
            let pod = build_pod_review(&case.template)["request"]["object"].clone();
            let pod = if pod.is_null() {
                fixtures::pod("shop").build()
            } else {
                pod
            };
            let mut object = fixtures::workload(case.kind, "shop", case.name, &pod);
            object["metadata"]["annotations"] = json!(case.meta);
            let old = (case.operation != "CREATE").then(|| object.clone());
            let object = (case.operation != "DELETE").then_some(object);
            let review = fixtures::review(
                case.group,
                "v1",
                case.kind,
                "deployments",
                case.operation,
                object.as_ref(),
                old.as_ref(),
                case.template.dry_run,
            );
            oracle::check_all(
                &rt,
                &world,
                WORKLOAD_PATH,
                &serde_json::to_vec(&review).unwrap(),
            )
        },
    );
}

#[test]
fn arbitrary_bytes_on_every_path() {
    let rt = oracle::runtime();
    let world = build_world(&WorldCase {
        ns: NsState::Annotated,
        warm: true,
        rs_owner: Some("Deployment"),
        parent: None,
        fail_writes: false,
    });
    run(
        500,
        (
            prop::sample::select(PATHS.to_vec()),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..256),
                "\\PC{0,64}".prop_map(String::into_bytes),
                // Almost a review: the envelope with an arbitrary request.
                "\\PC{0,64}".prop_map(|s| format!(
                    r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{s}}}"#
                )
                .into_bytes()),
            ],
        ),
        &[Kind::Unreadable],
        |(path, body)| oracle::check_all(&rt, &world, path, &body),
    );
}

/// The golden fixtures: (file name, path, world, review).
fn golden() -> Vec<(String, String, World, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "fixtures missing from {}", dir.display());
    files
        .into_iter()
        .map(|file| {
            let case: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            (
                file.file_name().unwrap().to_string_lossy().into_owned(),
                case["path"].as_str().unwrap().to_owned(),
                oracle::fixture_world(&case["world"]),
                case["review"].clone(),
            )
        })
        .collect()
}

#[test]
fn golden_fixtures_satisfy_the_oracle() {
    let rt = oracle::runtime();
    for (name, path, world, review) in golden() {
        let body = serde_json::to_vec(&review).unwrap();
        oracle::check_all(&rt, &world, &path, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Every path, not only the fixture's own.
        for other in PATHS {
            oracle::check_all(&rt, &world, other, &body)
                .unwrap_or_else(|e| panic!("{name} on {other}: {e}"));
        }
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(1.5e300)),
        odd_value().prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
        Just(json!("keptn-prechecks-gate")),
        Just(json!([{"name": "keptn-prechecks-gate"}])),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
                    prop::sample::select(vec!["name", "kind", "metadata", "spec", "uid"])
                        .prop_map(str::to_owned),
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Walks `choices` into `doc` and replaces (or, for an object member, removes when `value` is
/// `None`) the node reached.
fn mutate(doc: &mut Value, choices: &[u32], value: Option<Value>) {
    let mut node = doc;
    for (i, choice) in choices.iter().enumerate() {
        let last = i + 1 == choices.len();
        let container = match node {
            Value::Object(map) => !map.is_empty(),
            Value::Array(list) => !list.is_empty(),
            _ => false,
        };
        if !container {
            if let Some(v) = value {
                *node = v;
            }
            return;
        }
        match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map
                    .keys()
                    .nth(*choice as usize % map.len())
                    .unwrap()
                    .clone();
                if last {
                    match value {
                        Some(v) => map.insert(key, v),
                        None => map.remove(&key),
                    };
                    return;
                }
                node = map.get_mut(&key).unwrap();
            }
            Value::Array(list) if !list.is_empty() => {
                let index = *choice as usize % list.len();
                if last {
                    match value {
                        Some(v) => list[index] = v,
                        None => {
                            list.remove(index);
                        }
                    }
                    return;
                }
                node = &mut list[index];
            }
            _ => return,
        }
    }
}

#[test]
fn mutated_golden_fixtures() {
    let rt = oracle::runtime();
    let golden = golden();
    let count = golden.len();
    run(
        800,
        (
            0..count,
            prop::collection::vec(
                (
                    prop::collection::vec(any::<u32>(), 1..9),
                    prop::option::weighted(0.85, json_value()),
                ),
                1..4,
            ),
        ),
        &[Kind::Unreadable, Kind::Denied, Kind::Patched, Kind::Allowed],
        |(index, mutations)| {
            let (_, path, world, review) = &golden[index];
            let mut review = review.clone();
            for (choices, value) in mutations {
                // Aim at the request object most of the time: that is where the webhook looks.
                match review.pointer_mut("/request/object") {
                    Some(object) if choices[0] % 4 != 0 => mutate(object, &choices, value),
                    _ => mutate(&mut review, &choices[1..], value),
                }
            }
            oracle::check_all(&rt, world, path, &serde_json::to_vec(&review).unwrap())
        },
    );
}

#[test]
fn byte_mutated_golden_fixtures() {
    let rt = oracle::runtime();
    let golden = golden();
    let count = golden.len();
    run(
        500,
        (
            0..count,
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        ),
        &[Kind::Unreadable],
        |(index, edits)| {
            let (_, path, world, review) = &golden[index];
            let mut body = serde_json::to_vec(review).unwrap();
            for (at, byte, how) in edits {
                if body.is_empty() {
                    break;
                }
                let i = at.index(body.len());
                match how {
                    0 => body[i] = byte,
                    1 => body.insert(i, byte),
                    _ => {
                        body.remove(i);
                    }
                }
            }
            oracle::check_all(&rt, world, path, &body)
        },
    );
}

// ------------------------------------------------------------------ regressions found by the properties

/// The fixture whose pod is gated from its annotated Deployment.
fn gated_fixture() -> (String, World, Value) {
    golden()
        .into_iter()
        .find(|(name, ..)| name == "deployment-pod-annotated-parent.json")
        .map(|(_, path, world, review)| (path, world, review))
        .expect("fixture deployment-pod-annotated-parent.json")
}

#[test]
fn regression_annotated_pod_without_spec_object_is_denied_not_patched() {
    // Found by `mutated_golden_fixtures`: the gate patch `add /spec/schedulingGates` was sent
    // for a pod without `spec` (or with a non-object one), and cannot apply.
    let rt = oracle::runtime();
    let (path, world, review) = gated_fixture();
    for spec in [None, Some(json!([])), Some(json!("x")), Some(Value::Null)] {
        let mut review = review.clone();
        let object = review["request"]["object"].as_object_mut().unwrap();
        match &spec {
            None => {
                object.remove("spec");
            }
            Some(value) => {
                object.insert("spec".into(), value.clone());
            }
        }
        let body = serde_json::to_vec(&review).unwrap();
        let outcome = oracle::post(&rt, &world, &path, &body);
        let answer = oracle::check(&path, &body, &outcome, &world)
            .unwrap_or_else(|e| panic!("{spec:?}: {e}"))
            .expect("readable");
        assert!(!answer.allowed, "{spec:?}");
        assert_eq!(
            answer.message.as_deref(),
            Some("the pod has no spec object to carry the scheduling gate"),
            "{spec:?}"
        );
        assert!(outcome.writes.is_empty(), "{spec:?}");
    }
}

#[test]
fn regression_review_of_another_kind_is_400() {
    // Found by `byte_mutated_golden_fixtures`: `"kind": "dmissionReview"` was answered with a
    // response of that kind instead of being refused like a wrong apiVersion.
    let rt = oracle::runtime();
    let (path, world, mut review) = gated_fixture();
    review["kind"] = json!("dmissionReview");
    let outcome = oracle::post(&rt, &world, &path, &serde_json::to_vec(&review).unwrap());
    assert_eq!(outcome.status, 400);
    assert_eq!(
        String::from_utf8(outcome.body).unwrap(),
        "unsupported kind 'dmissionReview', expected AdmissionReview"
    );
    assert!(outcome.writes.is_empty());
}
