//! `explain` answers as the webhook does over the webhook's golden fixtures
//! (`webhook/tests/fixtures/*.json`): the fixture's world (Namespaces, ReplicaSets, parents) and
//! the reviewed object become one manifest; explaining it gives the same verdict, message, patch,
//! error and writes as the webhook's core on the fixture's review, and as the fixture expects.

use std::path::{Path, PathBuf};

use kube::ResourceExt;
use kubectl_portcullis::explain::{Explanation, Options, explain};
use serde_json::{Value, json};
use shared::resolve::ObjectMetaView;
use webhook::decision::{Decision, Verdict, Write};
use webhook::server::{POD_PATH, WORKLOAD_PATH};
use webhook::snapshot::{MemorySnapshot, NamespaceMeta, ParentKind, ReplicaSetMeta};

fn fixtures() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../webhook/tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "fixtures missing from {}", dir.display());
    files
        .into_iter()
        .map(|file| {
            let case = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            (
                file.file_name().unwrap().to_string_lossy().into_owned(),
                case,
            )
        })
        .collect()
}

/// The fixture's world as the webhook's tests build it (`webhook/tests/router.rs`): complete.
fn world_snapshot(world: &Value) -> MemorySnapshot {
    let mut snapshot = MemorySnapshot::complete();
    for ns in world["namespaces"].as_array().into_iter().flatten() {
        snapshot =
            snapshot.with_namespace(serde_json::from_value::<NamespaceMeta>(ns.clone()).unwrap());
    }
    for rs in world["replicaSets"].as_array().into_iter().flatten() {
        snapshot = snapshot
            .with_replica_set(serde_json::from_value::<ReplicaSetMeta>(rs.clone()).unwrap());
    }
    for p in world["parents"].as_array().into_iter().flatten() {
        let kind = match p["kind"].as_str().unwrap() {
            "Deployment" => ParentKind::Deployment,
            "StatefulSet" => ParentKind::StatefulSet,
            "DaemonSet" => ParentKind::DaemonSet,
            other => panic!("parent kind {other}"),
        };
        let meta: ObjectMetaView = serde_json::from_value(p["metadata"].clone()).unwrap();
        snapshot = snapshot.with_parent(
            kind,
            p["metadata"]["namespace"].as_str().unwrap(),
            p["metadata"]["name"].as_str().unwrap(),
            meta,
        );
    }
    snapshot
}

/// The manifest: the world's objects, then the reviewed object.
fn manifest(case: &Value) -> Vec<Value> {
    let world = &case["world"];
    let mut objects: Vec<Value> = ["namespaces", "replicaSets", "parents"]
        .iter()
        .flat_map(|k| world[k].as_array().cloned().unwrap_or_default())
        .collect();
    objects.push(case["review"]["request"]["object"].clone());
    objects
}

/// The webhook's core on the fixture's review.
fn core_decision(case: &Value) -> Decision {
    let body = serde_json::to_vec(&case["review"]).unwrap();
    let request = webhook::review::parse(&body).unwrap();
    let snapshot = world_snapshot(&case["world"]);
    match case["path"].as_str().unwrap() {
        POD_PATH => webhook::pods::admit(&request, &snapshot),
        WORKLOAD_PATH => webhook::workloads::admit(&request, &snapshot),
        other => panic!("path {other}"),
    }
    .expect("the world is complete")
}

/// Explanation and webhook agree on verdict, message, patch, error and writes.
fn assert_same(name: &str, e: &Explanation, decision: &Decision) {
    match &decision.verdict {
        Verdict::Allow { patch, message } => {
            assert!(e.allowed, "{name}: allowed");
            assert_eq!(&e.message, message, "{name}: message");
            let patch = (!patch.is_empty()).then(|| json!(patch));
            assert_eq!(e.patch, patch, "{name}: patch");
            assert_eq!(e.error, None, "{name}: error");
        }
        Verdict::Deny(denial) => {
            assert!(!e.allowed, "{name}: allowed");
            assert_eq!(e.error.as_deref(), Some(denial.message.as_str()), "{name}");
            assert_eq!(e.patch, None, "{name}: patch");
        }
    }
    let writes: Vec<String> = decision.writes.iter().map(ToString::to_string).collect();
    assert_eq!(e.writes, writes, "{name}: writes");
}

#[test]
fn explain_answers_as_the_webhook_on_every_golden_fixture() {
    let mut enabled = 0;
    for (name, case) in fixtures() {
        let options = Options {
            default_namespace: "default".into(),
            ..Options::default()
        };
        let explanations = explain(&manifest(&case), &options);
        let e = explanations
            .last()
            .expect("the reviewed object is explained");
        let object = &case["review"]["request"]["object"];
        assert_eq!(e.kind, object["kind"].as_str().unwrap(), "{name}: kind");
        assert_eq!(e.webhook_path.as_deref(), case["path"].as_str(), "{name}");
        let decision = core_decision(&case);
        assert_same(&name, e, &decision);

        // And as the fixture expects (what the router answers).
        let expect = &case["expect"];
        assert_eq!(
            json!(e.allowed),
            expect["allowed"],
            "{name}: expected allowed"
        );
        assert_eq!(
            e.patch.clone().unwrap_or(Value::Null),
            expect["patch"],
            "{name}: expected patch"
        );
        if let Some(message) = expect.get("message").and_then(Value::as_str) {
            let said = e.message.as_deref().or(e.error.as_deref());
            assert_eq!(said, Some(message), "{name}: expected message");
        }

        // What is shown about the identity is what the webhook wrote.
        if e.enabled {
            enabled += 1;
            let workload = decision
                .writes
                .iter()
                .find_map(|w| match w {
                    Write::CreateWorkload(w) => Some(w),
                    _ => None,
                })
                .expect("a KeptnWorkload");
            assert_eq!(
                e.keptn_workload.as_deref(),
                workload.metadata.name.as_deref()
            );
            assert_eq!(e.keptn_app.as_deref(), Some(workload.spec.app.as_str()));
            let version = e.version.as_ref().expect("version").value.to_lowercase();
            assert_eq!(version, workload.spec.version, "{name}");
            assert_eq!(e.pre_deployment_tasks, workload.spec.pre_deployment_tasks);
            assert_eq!(
                e.keptn_workload_version,
                Some(format!("{}-{}", workload.name_any(), workload.spec.version))
            );
            assert!(e.keptn_app_version.is_some(), "{name}: KeptnAppVersion");
        } else {
            assert!(e.keptn_workload.is_none(), "{name}: no KeptnWorkload");
            assert!(!e.reason.is_empty(), "{name}: a reason");
        }
    }
    assert!(enabled >= 4, "too few gated fixtures: {enabled}");
}

fn fixture(name: &str) -> Value {
    fixtures()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, case)| case)
        .unwrap_or_else(|| panic!("fixture {name}"))
}

fn explained(name: &str) -> Explanation {
    let options = Options {
        default_namespace: "default".into(),
        ..Options::default()
    };
    explain(&manifest(&fixture(name)), &options).pop().unwrap()
}

#[test]
fn reasons_and_sources_of_the_fixtures() {
    let e = explained("job-pod-untouched.json");
    assert!(!e.enabled);
    assert_eq!(
        e.reason,
        "owned by Job migrate: pods of Jobs (and CronJobs) are never gated"
    );

    let e = explained("bare-pod-untouched.json");
    assert!(
        e.reason.starts_with("a bare pod (no owner)"),
        "{}",
        e.reason
    );

    let e = explained("namespace-not-enabled.json");
    assert!(
        e.reason.starts_with("namespace shop is not enabled"),
        "{}",
        e.reason
    );

    let e = explained("parent-not-annotated.json");
    assert!(e.reason.starts_with("no workload key"), "{}", e.reason);

    let e = explained("deployment-unknown-container.json");
    assert!(!e.enabled);
    assert_eq!(
        e.error.as_deref(),
        Some(
            "Deployment web: The container name 'sidecar' specified in keptn.sh/container does \
             not match any containers in the pod"
        )
    );
    // Its pods would be left alone (the parent path ignores the key), but the Deployment
    // itself is rejected.
    assert!(
        e.reason.starts_with("rejected by the webhook: "),
        "{}",
        e.reason
    );

    let e = explained("deployment-pod-annotated-parent.json");
    assert!(e.enabled);
    let source = |s: &Option<kubectl_portcullis::explain::Sourced>| {
        s.as_ref().map(|s| (s.value.clone(), s.source.clone()))
    };
    assert_eq!(
        source(&e.workload),
        Some((
            "web".into(),
            "annotation keptn.sh/workload of the Deployment web".into()
        ))
    );
    assert_eq!(
        source(&e.version),
        Some((
            "1.4.2".into(),
            "annotation keptn.sh/version of the Deployment web".into()
        ))
    );
    assert_eq!(e.app_type.as_deref(), Some("single-service"));
    assert_eq!(e.pre_deployment_tasks, ["check-db"]);
    assert_eq!(e.keptn_workload_version.as_deref(), Some("web-web-1.4.2"));
    assert_eq!(
        e.keptn_app_version,
        Some(shared::resolve::kav_name("web", "1.4.2", 1))
    );

    let e = explained("statefulset-pod-labels-only.json");
    assert!(e.enabled);
    assert_eq!(
        source(&e.app),
        Some((
            "shop".into(),
            "label app.kubernetes.io/part-of of the pod".into()
        ))
    );
    // Its own workload key: the StatefulSet (not in the manifest) is never looked at.
    assert!(
        !e.notes.iter().any(|n| n.contains("StatefulSet")),
        "{:?}",
        e.notes
    );

    // Without the ReplicaSet in the manifest the pod's parent is unknown: taken as absent (as
    // the webhook would find it if the cluster lacked it), said in a note.
    let mut case = fixture("deployment-pod-annotated-parent.json");
    case["world"]["replicaSets"] = json!([]);
    let options = Options {
        default_namespace: "default".into(),
        ..Options::default()
    };
    let e = explain(&manifest(&case), &options).pop().unwrap();
    assert!(!e.enabled);
    assert_eq!(
        e.notes,
        [
            "ReplicaSet shop/web-7d4b9c8f6d is not in the manifests: taken as absent (the webhook \
          reads it from the cluster)"
        ]
    );

    let e = explained("daemonset-pod-annotated-parent-other-gate.json");
    assert!(e.enabled);
    assert_eq!(
        source(&e.version).map(|(_, s)| s),
        Some(
            "hash of the containers' names, images and env (no keptn.sh/version, \
             app.kubernetes.io/version or keptn.sh/container)"
                .into()
        )
    );
}
