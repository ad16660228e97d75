//! proptest generators of the metadata, containers and owners the webhook sees, shared by the
//! property tests of the webhook and of `kubectl portcullis explain` (feature `fixtures`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

/// Keys of annotations and labels, the webhook's and some that only look like them.
pub const KEYS: [&str; 18] = [
    "keptn.sh/workload",
    "keptn.sh/version",
    "keptn.sh/app",
    "keptn.sh/container",
    "keptn.sh/pre-deployment-tasks",
    "keptn.sh/post-deployment-tasks",
    "keptn.sh/pre-deployment-evaluations",
    "keptn.sh/post-deployment-evaluations",
    "keptn.sh/metadata",
    "keptn.sh/scheduling-gate-removed",
    "app.kubernetes.io/name",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
    "kubernetes.io/config.mirror",
    "keptn.sh/workload~odd/key",
    "example.com/other",
    "keptn.sh/lifecycle-toolkit",
    "portcullis.dev/gated",
];

pub fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "web", "db", "Web_App", "1.4.2", "latest", "", " ", "a,b, c", ",,",
            "k=v,x=y=z,bad", "web-abc", "ü/~1 \"q\"\\", "UPPER.case", "-lead", "trail-",
            "web", "v1.0.0_rc1",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z0-9._-]{1,12}",
        1 => "\\PC{0,16}",
        1 => (0usize..400).prop_map(|n| "x".repeat(n)),
    ]
}

pub fn meta_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), odd_value(), 0..6)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// [`meta_map`], half the time with a plain workload key so that many objects are annotated.
pub fn annotated_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    (meta_map(), prop::option::of("[a-z][a-z0-9-]{0,8}")).prop_map(|(mut map, workload)| {
        if let Some(workload) = workload {
            map.insert("keptn.sh/workload".to_owned(), workload);
        }
        map
    })
}

pub fn container() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["web", "db", "sidecar", "Web"]),
        prop::sample::select(vec![
            "nginx:1.25",
            "nginx",
            "nginx:latest",
            "localhost:5000/app",
            "img@sha256:abc",
            "reg.io/a/b:",
            "",
        ]),
        prop::option::of(("[A-Z]{1,4}", odd_value())),
    )
        .prop_map(|(name, image, env)| {
            let mut c = json!({"name": name, "image": image, "resources": {}});
            if let Some((k, v)) = env {
                c["env"] = json!([{"name": k, "value": v}]);
            }
            c
        })
}

pub fn owner() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "Job",
            "Deployment",
            "Rollout",
            "Node",
        ]),
        prop::sample::select(vec!["web-abc", "web", "db"]),
    )
        .prop_map(|(kind, name)| {
            json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("{kind}-uid"),
                "controller": true, "blockOwnerDeletion": true})
        })
}
