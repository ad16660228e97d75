use serde_json::{Value, json};

use super::*;

fn deploy_gvk() -> Gvk {
    Gvk::new("apps", "v1", "Deployment")
}

fn pod_gvk() -> Gvk {
    Gvk::new("", "v1", "Pod")
}

fn smp(doc: &Value, patch: Value, gvk: &Gvk) -> Value {
    apply_strategic_merge_patch(doc, patch.to_string().as_bytes(), gvk).expect("patch applies")
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                     "finalizers": ["a.example/x"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "app:1", "args": ["--a", "--b"],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                        {"name": "sidecar", "image": "side:1"}
                    ],
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        }
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "schedulingGates": [{"name": "keptn.sh/gate"}, {"name": "other/gate"}],
            "containers": [{"name": "app", "image": "app:1"}]
        }
    })
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().expect("a name"))
        .collect()
}

// ---------- JSON Patch ----------

#[test]
fn json_patch_applies_every_operation() {
    let doc = json!({"a": {"b": 1, "list": [1, 2, 3]}, "c": "x"});
    let cases: &[(&str, Value, Value)] = &[
        (
            "add",
            json!([{"op": "add", "path": "/a/n", "value": 5}]),
            json!({"a": {"b": 1, "list": [1, 2, 3], "n": 5}, "c": "x"}),
        ),
        (
            "append",
            json!([{"op": "add", "path": "/a/list/-", "value": 4}]),
            json!({"a": {"b": 1, "list": [1, 2, 3, 4]}, "c": "x"}),
        ),
        (
            "remove",
            json!([{"op": "remove", "path": "/a/list/0"}]),
            json!({"a": {"b": 1, "list": [2, 3]}, "c": "x"}),
        ),
        (
            "replace",
            json!([{"op": "replace", "path": "/c", "value": "y"}]),
            json!({"a": {"b": 1, "list": [1, 2, 3]}, "c": "y"}),
        ),
        (
            "move",
            json!([{"op": "move", "from": "/c", "path": "/d"}]),
            json!({"a": {"b": 1, "list": [1, 2, 3]}, "d": "x"}),
        ),
        (
            "copy",
            json!([{"op": "copy", "from": "/a/b", "path": "/e"}]),
            json!({"a": {"b": 1, "list": [1, 2, 3]}, "c": "x", "e": 1}),
        ),
        (
            "test passes",
            json!([{"op": "test", "path": "/a/b", "value": 1}]),
            doc.clone(),
        ),
    ];
    for (name, patch, want) in cases {
        let got = apply_json_patch(&doc, patch.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&got, want, "{name}");
    }
}

#[test]
fn json_patch_failed_test_is_422() {
    let patch = json!([
        {"op": "test", "path": "/spec/schedulingGates/0/name", "value": "nope"},
        {"op": "remove", "path": "/spec/schedulingGates/0"}
    ]);
    let err = apply_json_patch(&pod(), patch.to_string().as_bytes()).expect_err("test must fail");
    let api = err.to_api_error();
    assert_eq!(api.code, 422);
    assert_eq!(api.reason, "Invalid");
    assert_eq!(
        api.message,
        "the server rejected our request due to an error in our request"
    );
    let status = api.to_status();
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "UnexpectedServerResponse"
    );
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "testing value /spec/schedulingGates/0/name failed: test failed"
    );
}

#[test]
fn json_patch_invalid_path_is_422_and_leaves_nothing_half_done() {
    let doc = json!({"a": 1});
    for patch in [
        json!([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/missing"}]),
        json!([{"op": "replace", "path": "/x/y", "value": 1}]),
        json!([{"op": "add", "path": "/a/list/99999999999999999999999", "value": 1}]),
        json!([{"op": "move", "from": "/nope", "path": "/z"}]),
    ] {
        let err = apply_json_patch(&doc, patch.to_string().as_bytes()).expect_err("must fail");
        assert_eq!(err.to_api_error().code, 422, "{patch}");
    }
    let err =
        apply_json_patch(&doc, br#"[{"op":"remove","path":"/missing"}]"#).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "remove operation does not apply: doc is missing path: \"/missing\": missing value"
    );
}

#[test]
fn json_patch_malformed_is_400() {
    for body in [
        &b"{not json"[..],
        b"{\"op\":\"add\"}",
        b"[{\"op\":\"frobnicate\",\"path\":\"/a\"}]",
        b"[{\"op\":\"add\"}]",
        b"\xff\xfe",
    ] {
        let err = apply_json_patch(&json!({}), body).expect_err("malformed");
        let api = err.to_api_error();
        assert_eq!(
            (api.code, api.reason.as_str()),
            (400, "BadRequest"),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn json_patch_with_too_many_operations_is_413() {
    let ops: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/a", "value": 1}))
        .collect();
    let err = apply_json_patch(&json!({"a": 1}), Value::Array(ops).to_string().as_bytes())
        .expect_err("too many");
    let api = err.to_api_error();
    assert_eq!(
        (api.code, api.reason.as_str()),
        (413, "RequestEntityTooLarge")
    );
    assert_eq!(
        api.message,
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got: 10001"
    );
}

#[test]
fn json_patch_replacing_the_whole_object_with_a_scalar_is_400() {
    let err = apply_json_patch(
        &json!({"a": 1}),
        br#"[{"op":"replace","path":"","value":3}]"#,
    )
    .expect_err("not an object");
    assert_eq!(err.to_api_error().code, 400);
}

#[test]
fn json_patch_removes_scheduling_gate_by_index_after_test() {
    // What a gate controller sends (kube-runtime finalizer style): test the index, then remove it.
    let patch = json!([
        {"op": "test", "path": "/spec/schedulingGates/0", "value": {"name": "keptn.sh/gate"}},
        {"op": "remove", "path": "/spec/schedulingGates/0"}
    ]);
    let got = apply_json_patch(&pod(), patch.to_string().as_bytes()).expect("applies");
    assert_eq!(
        got["spec"]["schedulingGates"],
        json!([{"name": "other/gate"}])
    );
}

// ---------- JSON merge patch ----------

#[test]
fn merge_patch_null_deletes_and_lists_replace() {
    let doc = deployment();
    let patch = json!({"metadata": {"labels": {"tier": null, "new": "1"}}, "spec": {"template": {"spec": {"containers": [{"name": "only"}]}}}});
    let got = apply_merge_patch(&doc, patch.to_string().as_bytes()).expect("applies");
    assert_eq!(got["metadata"]["labels"], json!({"app": "web", "new": "1"}));
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only"}])
    );
    assert_eq!(got["spec"]["replicas"], 2);
}

#[test]
fn merge_patch_malformed_or_not_an_object_is_400() {
    for body in [&b"{"[..], b"[1,2]", b"\"x\"", b"null"] {
        let err = apply_merge_patch(&json!({"a": 1}), body).expect_err("rejected");
        assert_eq!(
            err.to_api_error().code,
            400,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

// ---------- strategic merge patch ----------

#[test]
fn smp_kubectl_patch_adds_label() {
    // kubectl patch deploy web --type=strategic -p '{"metadata":{"labels":{"env":"prod"}}}'
    let got = smp(
        &deployment(),
        json!({"metadata": {"labels": {"env": "prod"}}}),
        &deploy_gvk(),
    );
    assert_eq!(
        got["metadata"]["labels"],
        json!({"app": "web", "tier": "front", "env": "prod"})
    );
    assert_eq!(got["spec"], deployment()["spec"]);
}

#[test]
fn smp_kubectl_set_image_merges_container_by_name() {
    // kubectl set image deployment/web app=app:2 (a two-way patch: the changed list comes
    // with its element order).
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"image": "app:2", "name": "app"}]
    }}}});
    let got = smp(&deployment(), patch, &deploy_gvk());
    let containers = &got["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["app", "sidecar"]);
    assert_eq!(containers[0]["image"], "app:2");
    assert_eq!(
        containers[0]["env"],
        deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(containers[1]["image"], "side:1");
}

#[test]
fn smp_kubectl_second_apply_of_deployment() {
    // kubectl apply of a changed manifest: image bumped, env C added, env B and the sidecar
    // dropped, label tier removed, replicas changed; kubectl computes this three-way patch from
    // the last-applied-configuration annotation and sends $setElementOrder for changed lists.
    let last_applied = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"labels":{"app":"web"},"name":"web","namespace":"default"},"spec":{"replicas":3}}
"#;
    let patch = json!({
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied},
            "labels": {"tier": null}
        },
        "spec": {
            "replicas": 3,
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [
                    {"$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                     "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                     "image": "app:2", "name": "app"},
                    {"$patch": "delete", "name": "sidecar"}
                ]
            }}
        }
    });
    let got = smp(&deployment(), patch, &deploy_gvk());
    assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        last_applied
    );
    assert_eq!(got["spec"]["replicas"], 3);
    let containers = &got["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["app"]);
    assert_eq!(containers[0]["image"], "app:2");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(containers[0]["args"], json!(["--a", "--b"]));
    assert_eq!(
        containers[0]["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data"}])
    );
}

#[test]
fn smp_set_element_order_reorders_containers() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}, {"name": "app"}],
        "containers": [{"name": "new", "image": "n:1"}]
    }}}});
    let got = smp(&deployment(), patch, &deploy_gvk());
    assert_eq!(
        names(&got["spec"]["template"]["spec"]["containers"]),
        ["sidecar", "new", "app"]
    );
}

#[test]
fn smp_set_element_order_keeps_server_only_elements_in_place() {
    // The real merge of the ordered and the server-only elements compares server positions.
    let cases = [
        (["a", "srv", "b"], ["srv", "b", "a"]),
        (["a", "b", "srv"], ["b", "a", "srv"]),
        (["srv", "a", "b"], ["srv", "b", "a"]),
    ];
    for (server, want) in cases {
        let list: Vec<Value> = server.iter().map(|n| json!({"name": n})).collect();
        let doc = json!({"spec": {"containers": list}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}], "containers": [{"name": "b", "image": "x"}]}});
        let got = smp(&doc, patch, &pod_gvk());
        assert_eq!(
            names(&got["spec"]["containers"]),
            want,
            "server order {server:?}"
        );
    }
}

#[test]
fn smp_set_element_order_orders_primitive_lists() {
    let doc = json!({"metadata": {"finalizers": ["a", "b"]}});
    let patch =
        json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}});
    let got = smp(&doc, patch, &pod_gvk());
    assert_eq!(got["metadata"]["finalizers"], json!(["c", "b", "a"]));
}

#[test]
fn smp_patch_delete_removes_container_by_name() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}}}});
    let got = smp(&deployment(), patch, &deploy_gvk());
    assert_eq!(
        names(&got["spec"]["template"]["spec"]["containers"]),
        ["app"]
    );
}

#[test]
fn smp_patch_replace_in_list_and_map() {
    let list = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "solo", "image": "s:1"}]}}}});
    let got = smp(&deployment(), list, &deploy_gvk());
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"],
        json!([{"name": "solo", "image": "s:1"}])
    );

    let map = json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}});
    let got = smp(&deployment(), map, &deploy_gvk());
    assert_eq!(got["metadata"]["labels"], json!({"only": "this"}));
}

#[test]
fn smp_patch_delete_in_map_empties_it() {
    let got = smp(
        &deployment(),
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
        &deploy_gvk(),
    );
    assert_eq!(got["metadata"]["labels"], json!({}));
}

#[test]
fn smp_retain_keys_clears_the_other_strategy_fields() {
    // kubectl apply switching the strategy to Recreate (DeploymentStrategy has retainKeys).
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
    let got = smp(&deployment(), patch, &deploy_gvk());
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn smp_retain_keys_not_covering_the_patch_is_422() {
    let patch =
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}});
    let err =
        apply_strategic_merge_patch(&deployment(), patch.to_string().as_bytes(), &deploy_gvk())
            .expect_err("mismatch");
    assert_eq!(err.to_api_error().code, 422);
}

#[test]
fn smp_finalizers_merge_as_set_and_delete_from_primitive_list() {
    let got = smp(
        &deployment(),
        json!({"metadata": {"finalizers": ["b.example/y", "a.example/x"]}}),
        &deploy_gvk(),
    );
    assert_eq!(
        got["metadata"]["finalizers"],
        json!(["a.example/x", "b.example/y"])
    );
    let got = smp(
        &got,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/x"]}}),
        &deploy_gvk(),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["b.example/y"]));
}

#[test]
fn smp_empty_list_on_a_merge_list_changes_nothing_but_replace_and_null_clear_it() {
    let doc = deployment();
    let got = smp(&doc, json!({"metadata": {"finalizers": []}}), &deploy_gvk());
    assert_eq!(got["metadata"]["finalizers"], json!(["a.example/x"]));
    let got = smp(
        &doc,
        json!({"metadata": {"finalizers": [{"$patch": "replace"}]}}),
        &deploy_gvk(),
    );
    assert_eq!(got["metadata"]["finalizers"], json!([]));
    let got = smp(
        &doc,
        json!({"metadata": {"finalizers": null}}),
        &deploy_gvk(),
    );
    assert!(got["metadata"].get("finalizers").is_none());
}

#[test]
fn smp_lists_without_strategy_replace() {
    let patch = json!({"spec": {"template": {"spec": {
        "tolerations": [{"key": "new", "operator": "Exists"}],
        "containers": [{"name": "app", "args": ["--c"], "command": ["run"]}]
    }}}});
    let got = smp(&deployment(), patch, &deploy_gvk());
    let spec = &got["spec"]["template"]["spec"];
    assert_eq!(
        spec["tolerations"],
        json!([{"key": "new", "operator": "Exists"}])
    );
    assert_eq!(spec["containers"][0]["args"], json!(["--c"]));
    assert_eq!(spec["containers"][0]["command"], json!(["run"]));
}

#[test]
fn smp_merges_nested_lists_by_their_keys() {
    let patch = json!({"spec": {"template": {"spec": {
        "containers": [{"name": "app",
            "env": [{"name": "B", "value": "two"}],
            "ports": [{"containerPort": 9090}],
            "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}],
        "volumes": [{"name": "cache", "emptyDir": {}}],
        "imagePullSecrets": [{"name": "reg"}]
    }}}});
    let got = smp(&deployment(), patch, &deploy_gvk());
    let c = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "two"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9090}])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );
    assert_eq!(
        names(&got["spec"]["template"]["spec"]["volumes"]),
        ["data", "cache"]
    );
    assert_eq!(
        got["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "reg"}])
    );
}

#[test]
fn smp_table_of_merge_keys_across_kinds() {
    let cases: Vec<(&str, Gvk, Value, Value, Value)> = vec![
        (
            "pod schedulingGates by name",
            pod_gvk(),
            json!({"spec": {"schedulingGates": [{"name": "keptn.sh/gate"}, {"name": "other/gate"}]}}),
            json!({"spec": {"schedulingGates": [{"$patch": "delete", "name": "keptn.sh/gate"}]}}),
            json!({"spec": {"schedulingGates": [{"name": "other/gate"}]}}),
        ),
        (
            "ownerReferences by uid",
            Gvk::new("apps", "v1", "ReplicaSet"),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "controller": true}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a", "controller": true}, {"uid": "2", "name": "b"}]}}),
        ),
        (
            "pod status conditions by type",
            pod_gvk(),
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}),
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}}),
        ),
        (
            "job conditions by type",
            Gvk::new("batch", "v1", "Job"),
            json!({"status": {"conditions": [{"type": "Complete", "status": "False"}]}}),
            json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
        ),
        (
            "cronjob template containers by name",
            Gvk::new("batch", "v1", "CronJob"),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "1"}, {"name": "d"}]}}}}}}),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "2"}]}}}}}}),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "2"}, {"name": "d"}]}}}}}}),
        ),
        (
            "service ports by port",
            Gvk::new("", "v1", "Service"),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
        ),
        (
            "node conditions and addresses by type",
            Gvk::new("", "v1", "Node"),
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}], "addresses": [{"type": "Hostname", "address": "a"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "1.2.3.4"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "Hostname", "address": "a"}, {"type": "InternalIP", "address": "1.2.3.4"}]}}),
        ),
        (
            "webhooks by name",
            Gvk::new(
                "admissionregistration.k8s.io",
                "v1",
                "MutatingWebhookConfiguration",
            ),
            json!({"webhooks": [{"name": "a.x", "timeoutSeconds": 10}, {"name": "b.x"}]}),
            json!({"webhooks": [{"name": "a.x", "timeoutSeconds": 5}]}),
            json!({"webhooks": [{"name": "a.x", "timeoutSeconds": 5}, {"name": "b.x"}]}),
        ),
        (
            "serviceaccount secrets by name",
            Gvk::new("", "v1", "ServiceAccount"),
            json!({"secrets": [{"name": "a"}]}),
            json!({"secrets": [{"name": "b"}]}),
            json!({"secrets": [{"name": "a"}, {"name": "b"}]}),
        ),
        (
            "statefulset init containers by name",
            Gvk::new("apps", "v1", "StatefulSet"),
            json!({"spec": {"template": {"spec": {"initContainers": [{"name": "i", "image": "1"}]}}}}),
            json!({"spec": {"template": {"spec": {"initContainers": [{"name": "j", "image": "2"}]}}}}),
            json!({"spec": {"template": {"spec": {"initContainers": [{"name": "i", "image": "1"}, {"name": "j", "image": "2"}]}}}}),
        ),
        (
            "configmap data merges as a map",
            Gvk::new("", "v1", "ConfigMap"),
            json!({"data": {"a": "1", "b": "2"}}),
            json!({"data": {"a": null, "c": "3"}}),
            json!({"data": {"b": "2", "c": "3"}}),
        ),
        (
            "custom resource lists replace",
            Gvk::new("lifecycle.keptn.sh", "v1", "KeptnApp"),
            json!({"spec": {"workloads": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"workloads": [{"name": "c"}]}}),
            json!({"spec": {"workloads": [{"name": "c"}]}}),
        ),
    ];
    for (name, gvk, doc, patch, want) in cases {
        assert_eq!(smp(&doc, patch, &gvk), want, "{name}");
    }
}

#[test]
fn smp_null_deletes_key_and_absent_values_are_created_without_directives() {
    let doc = json!({"spec": {"containers": [{"name": "a"}]}});
    let patch = json!({"spec": {"containers": null, "initContainers": [{"name": "i", "$patch": "merge"}], "x": {"$patch": "merge", "y": 1}}});
    let got = smp(&doc, patch, &pod_gvk());
    assert_eq!(
        got,
        json!({"spec": {"initContainers": [{"name": "i"}], "x": {"y": 1}}})
    );
}

#[test]
fn smp_element_without_merge_key_is_500_like_the_real_server() {
    let patch = json!({"spec": {"containers": [{"image": "x"}]}});
    let err = apply_strategic_merge_patch(&pod(), patch.to_string().as_bytes(), &pod_gvk())
        .expect_err("no key");
    let api = err.to_api_error();
    assert_eq!(api.code, 500);
    assert!(
        api.message
            .contains("does not contain declared merge key: name"),
        "{}",
        api.message
    );
}

#[test]
fn smp_unknown_patch_directive_is_rejected() {
    let patch = json!({"metadata": {"labels": {"$patch": "explode"}}});
    let err = apply_strategic_merge_patch(&pod(), patch.to_string().as_bytes(), &pod_gvk())
        .expect_err("unknown");
    assert!(
        err.to_string().starts_with("unknown patch type: explode"),
        "{err}"
    );
}

#[test]
fn smp_malformed_directives_are_400() {
    for patch in [
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
        json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
        json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
        json!({"spec": {"containers": ["not-a-map"]}}),
    ] {
        let err = apply_strategic_merge_patch(&pod(), patch.to_string().as_bytes(), &pod_gvk())
            .expect_err("bad");
        assert_eq!(err.to_api_error().code, 400, "{patch}");
    }
    for body in [&b"{"[..], b"[]", b"42"] {
        let err = apply_strategic_merge_patch(&pod(), body, &pod_gvk()).expect_err("bad body");
        assert_eq!(err.to_api_error().code, 400);
    }
}

// ---------- server-side apply ----------

const NOW: &str = "2026-01-01T00:00:00Z";
const LATER: &str = "2026-01-01T00:05:00Z";

fn apply(
    live: Option<&Value>,
    body: &Value,
    manager: &str,
    force: bool,
    gvk: &Gvk,
) -> Result<Value, PatchError> {
    apply_server_side(live, body.to_string().as_bytes(), manager, force, gvk, NOW)
}

fn applied_deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["operation"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["manager"] == manager))
        .expect("entry present")
}

#[test]
fn apply_creates_object_with_managed_fields() {
    let got = apply(
        None,
        &applied_deployment(2, "app:1"),
        "kubectl",
        false,
        &deploy_gvk(),
    )
    .expect("created");
    assert_eq!(got["spec"]["replicas"], 2);
    assert_eq!(got["metadata"]["name"], "web");
    let e = entry(&got, "kubectl");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], NOW);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(
        e["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                }
            }
        })
    );
}

#[test]
fn apply_accepts_yaml_body() {
    let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"1\"\n";
    let got = apply_server_side(
        None,
        yaml,
        "kubectl",
        false,
        &Gvk::new("", "v1", "ConfigMap"),
        NOW,
    )
    .expect("yaml applies");
    assert_eq!(got["data"], json!({"a": "1"}));
    assert_eq!(
        entry(&got, "kubectl")["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );
}

#[test]
fn apply_again_removes_fields_no_longer_applied() {
    let gvk = Gvk::new("", "v1", "ConfigMap");
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}});
    let live = apply(None, &first, "kubectl", false, &gvk).expect("create");
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"a": "1"}}, "data": {"x": "1"}});
    let got = apply(Some(&live), &second, "kubectl", false, &gvk).expect("apply");
    assert_eq!(got["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(got["data"], json!({"x": "1"}));
    assert_eq!(
        entry(&got, "kubectl")["fieldsV1"],
        json!({"f:data": {"f:x": {}}, "f:metadata": {"f:labels": {"f:a": {}}}})
    );
}

#[test]
fn apply_keeps_dropped_field_that_another_manager_also_owns() {
    let gvk = Gvk::new("", "v1", "ConfigMap");
    let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data});
    let live = apply(None, &cm(json!({"x": "1", "y": "2"})), "a", false, &gvk).expect("a creates");
    let live = apply(Some(&live), &cm(json!({"y": "2"})), "b", false, &gvk).expect("b co-owns y");
    let got = apply(Some(&live), &cm(json!({"x": "1"})), "a", false, &gvk).expect("a drops y");
    assert_eq!(
        got["data"],
        json!({"x": "1", "y": "2"}),
        "y stays: b still owns it"
    );
    let got = apply(Some(&got), &cm(json!({})), "b", false, &gvk).expect("b drops y");
    assert_eq!(got["data"], json!({"x": "1"}));
}

#[test]
fn apply_conflict_without_force() {
    let gvk = deploy_gvk();
    // Created by client-side apply (an Update manager), then applied server-side with other replicas.
    let mut live = applied_deployment(2, "app:1");
    record_update_manager(None, &mut live, "kubectl-client-side-apply", NOW);
    let err = apply(
        Some(&live),
        &applied_deployment(5, "app:1"),
        "kubectl",
        false,
        &gvk,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    let api = err.to_api_error();
    assert_eq!((api.code, api.reason.as_str()), (409, "Conflict"));
    let status = api.to_status();
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-client-side-apply\" using apps/v1", "field": ".spec.replicas"})
    );
}

#[test]
fn apply_conflicts_are_listed_per_manager() {
    let gvk = deploy_gvk();
    let live = apply(None, &applied_deployment(2, "app:1"), "ci", false, &gvk).expect("create");
    let err = apply(
        Some(&live),
        &applied_deployment(3, "app:2"),
        "kubectl",
        false,
        &gvk,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"ci\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"app\"].image"
    );
}

#[test]
fn apply_same_value_shares_ownership_without_conflict() {
    let gvk = deploy_gvk();
    let live = apply(None, &applied_deployment(2, "app:1"), "ci", false, &gvk).expect("create");
    let got = apply(
        Some(&live),
        &applied_deployment(2, "app:1"),
        "kubectl",
        false,
        &gvk,
    )
    .expect("same values");
    assert_eq!(
        managers(&got),
        [
            ("ci".to_string(), "Apply".to_string()),
            ("kubectl".to_string(), "Apply".to_string())
        ]
    );
    assert_eq!(
        entry(&got, "ci")["fieldsV1"],
        entry(&got, "kubectl")["fieldsV1"]
    );
}

#[test]
fn apply_force_takes_ownership() {
    let gvk = deploy_gvk();
    let live = apply(None, &applied_deployment(2, "app:1"), "ci", false, &gvk).expect("create");
    let got = apply(
        Some(&live),
        &applied_deployment(7, "app:1"),
        "kubectl",
        true,
        &gvk,
    )
    .expect("forced");
    assert_eq!(got["spec"]["replicas"], 7);
    assert!(entry(&got, "kubectl")["fieldsV1"]["f:spec"]["f:replicas"].is_object());
    assert!(
        entry(&got, "ci")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none(),
        "ci lost .spec.replicas"
    );
    // ci applying its old value again now conflicts with kubectl.
    let err = apply(
        Some(&got),
        &applied_deployment(2, "app:1"),
        "ci",
        false,
        &gvk,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
}

#[test]
fn apply_merges_containers_by_name_and_keeps_other_managers_elements() {
    let gvk = pod_gvk();
    let base = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": "app:1"}], "tolerations": [{"key": "a", "operator": "Exists"}]}});
    let live = apply(None, &base, "kubectl", false, &gvk).expect("create");
    let sidecar = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "sidecar", "image": "side:1"}]}});
    let got = apply(Some(&live), &sidecar, "injector", false, &gvk).expect("merge");
    assert_eq!(names(&got["spec"]["containers"]), ["app", "sidecar"]);
    assert_eq!(got["spec"]["tolerations"], base["spec"]["tolerations"]);
    // kubectl no longer applying its container removes it, the injector's stays.
    let without = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}});
    let got = apply(Some(&got), &without, "kubectl", false, &gvk).expect("drop");
    assert_eq!(names(&got["spec"]["containers"]), ["sidecar"]);
}

#[test]
fn apply_custom_resource_lists_are_atomic() {
    let gvk = Gvk::new("lifecycle.keptn.sh", "v1", "KeptnApp");
    let cr = |workloads: Value| json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp", "metadata": {"name": "a", "namespace": "d"}, "spec": {"version": "1", "workloads": workloads}});
    let live = apply(
        None,
        &cr(json!([{"name": "w1", "version": "1"}])),
        "kube-rs",
        false,
        &gvk,
    )
    .expect("create");
    assert_eq!(
        entry(&live, "kube-rs")["fieldsV1"],
        json!({"f:spec": {"f:version": {}, "f:workloads": {}}})
    );
    let got = apply(
        Some(&live),
        &cr(json!([{"name": "w2", "version": "1"}])),
        "kube-rs",
        false,
        &gvk,
    )
    .expect("replace");
    assert_eq!(
        got["spec"]["workloads"],
        json!([{"name": "w2", "version": "1"}])
    );
    let err = apply(
        Some(&got),
        &cr(json!([{"name": "w3"}])),
        "other",
        false,
        &gvk,
    )
    .expect_err("atomic list conflicts as a whole");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kube-rs\": .spec.workloads"
    );
}

#[test]
fn apply_without_change_keeps_entry_time() {
    let gvk = deploy_gvk();
    let live = apply(
        None,
        &applied_deployment(2, "app:1"),
        "kubectl",
        false,
        &gvk,
    )
    .expect("create");
    let again = apply_server_side(
        Some(&live),
        applied_deployment(2, "app:1").to_string().as_bytes(),
        "kubectl",
        false,
        &gvk,
        LATER,
    )
    .expect("again");
    assert_eq!(again, live);
    let changed = apply_server_side(
        Some(&live),
        applied_deployment(3, "app:1").to_string().as_bytes(),
        "kubectl",
        false,
        &gvk,
        LATER,
    )
    .expect("changed");
    assert_eq!(
        entry(&changed, "kubectl")["time"],
        NOW,
        "same field set: time unchanged"
    );
    let dropped = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let got = apply_server_side(
        Some(&changed),
        dropped.to_string().as_bytes(),
        "kubectl",
        false,
        &gvk,
        LATER,
    )
    .expect("dropped");
    assert_eq!(entry(&got, "kubectl")["time"], LATER);
    assert!(
        got["spec"].get("template").is_none() && got["metadata"].get("labels").is_none(),
        "{got}"
    );
}

#[test]
fn apply_to_untracked_object_conflicts_with_before_first_apply() {
    let live = applied_deployment(2, "app:1");
    let err = apply(
        Some(&live),
        &applied_deployment(4, "app:1"),
        "kubectl",
        false,
        &deploy_gvk(),
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn apply_rejects_bad_bodies_with_400() {
    let gvk = deploy_gvk();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\xff\x00{[".to_vec()),
        ("not an object", b"[1, 2]".to_vec()),
        ("kind mismatch", json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"}}).to_string().into_bytes()),
        ("apiVersion missing", json!({"kind": "Deployment", "metadata": {"name": "web"}}).to_string().into_bytes()),
        ("managedFields set", json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "managedFields": [{}]}}).to_string().into_bytes()),
        ("two YAML documents", b"a: 1\n---\nb: 2\n".to_vec()),
    ];
    for (name, body) in cases {
        let err = apply_server_side(None, &body, "kubectl", false, &gvk, NOW).expect_err(name);
        assert_eq!(err.to_api_error().code, 400, "{name}: {err}");
    }
    let err = apply(None, &applied_deployment(1, "a"), "", false, &gvk).expect_err("no manager");
    let api = err.to_api_error();
    assert_eq!((api.code, api.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        api.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let body = json!({"kind": "Deployment", "metadata": {"name": "web"}});
    let err = apply(None, &body, "kubectl", false, &gvk).expect_err("no apiVersion");
    assert_eq!(
        err.to_string(),
        "Incorrect version specified in apply patch. Specified patch version: , expected: apps/v1"
    );
    let err = apply(None, &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"managedFields": [{}]}}), "k", false, &gvk).expect_err("managedFields");
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");
}

#[test]
fn apply_kube_rs_pod_and_service_ports_keyed_with_protocol_default() {
    let gvk = Gvk::new("", "v1", "Service");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    let got = apply(None, &svc, "kube-rs", false, &gvk).expect("create");
    assert_eq!(
        entry(&got, "kube-rs")["fieldsV1"],
        json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}}}})
    );
    let mut live = got.clone();
    live["spec"]["ports"][0]["protocol"] = json!("TCP"); // what defaulting adds
    let err = apply(Some(&live), &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": 9090}]}}), "other", false, &gvk).expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kube-rs\": .spec.ports[port=80,protocol=\"TCP\"].targetPort"
    );
}

#[test]
fn apply_finalizers_are_a_set() {
    let gvk = Gvk::new("", "v1", "ConfigMap");
    let cm = |f: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": f}});
    let live = apply(None, &cm(json!(["a"])), "one", false, &gvk).expect("create");
    let got = apply(Some(&live), &cm(json!(["b"])), "two", false, &gvk).expect("union");
    assert_eq!(got["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        entry(&got, "two")["fieldsV1"],
        json!({"f:metadata": {"f:finalizers": {"v:\"b\"": {}}}})
    );
}

#[test]
fn apply_deeply_nested_yaml_is_400() {
    let body = format!(
        "apiVersion: v1\nkind: ConfigMap\ndata: {}",
        "[".repeat(200_000)
    );
    let err = apply_server_side(
        None,
        body.as_bytes(),
        "m",
        false,
        &Gvk::new("", "v1", "ConfigMap"),
        NOW,
    )
    .expect_err("too deep");
    assert_eq!(
        err.to_string(),
        "error decoding YAML: the apply configuration is nested too deeply"
    );
    let ok =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '[[[[', b: \"}}}}\"}\n";
    let got = apply_server_side(
        None,
        ok.as_bytes(),
        "m",
        false,
        &Gvk::new("", "v1", "ConfigMap"),
        NOW,
    )
    .expect("flow YAML");
    assert_eq!(got["data"], json!({"a": "[[[[", "b": "}}}}"}));
}

#[test]
fn managed_fields_entries_are_sorted_apply_first_then_by_time() {
    let gvk = Gvk::new("", "v1", "ConfigMap");
    let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    record_update_manager(None, &mut live, "zz-creator", NOW);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2"}});
    let got = apply_server_side(
        Some(&live),
        body.to_string().as_bytes(),
        "later-applier",
        false,
        &gvk,
        LATER,
    )
    .expect("apply");
    assert_eq!(
        managers(&got),
        [
            ("later-applier".to_string(), "Apply".to_string()),
            ("zz-creator".to_string(), "Update".to_string())
        ]
    );
}

#[test]
fn apply_job_conditions_are_atomic_although_strategic_patch_merges_them() {
    let gvk = Gvk::new("batch", "v1", "Job");
    let job = |conds: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {"conditions": conds}});
    let live = apply(
        None,
        &job(json!([{"type": "Complete", "status": "True"}])),
        "ctl",
        false,
        &gvk,
    )
    .expect("create");
    assert_eq!(
        entry(&live, "ctl")["fieldsV1"],
        json!({"f:status": {"f:conditions": {}}})
    );
    let got = apply(
        Some(&live),
        &job(json!([{"type": "Failed", "status": "True"}])),
        "ctl",
        false,
        &gvk,
    )
    .expect("replace");
    assert_eq!(
        got["status"]["conditions"],
        json!([{"type": "Failed", "status": "True"}])
    );
}

// ---------- managedFields of ordinary writes ----------

#[test]
fn record_update_manager_tracks_create_and_transfers_changed_fields() {
    let mut created = applied_deployment(2, "app:1");
    record_update_manager(None, &mut created, "kubectl-create", NOW);
    assert_eq!(
        managers(&created),
        [("kubectl-create".to_string(), "Update".to_string())]
    );
    assert!(entry(&created, "kubectl-create")["fieldsV1"]["f:spec"]["f:replicas"].is_object());

    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(4);
    record_update_manager(Some(&created), &mut scaled, "kubectl-scale", LATER);
    let scale = entry(&scaled, "kubectl-scale");
    assert_eq!(scale["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(scale["time"], LATER);
    assert!(
        entry(&scaled, "kubectl-create")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    assert_eq!(entry(&scaled, "kubectl-create")["time"], NOW);
}

#[test]
fn record_update_manager_drops_removed_fields_and_noop_writes_add_nothing() {
    let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    record_update_manager(None, &mut created, "creator", NOW);
    let mut same = created.clone();
    record_update_manager(Some(&created), &mut same, "noop", LATER);
    assert_eq!(same, created);

    let mut emptied = created.clone();
    emptied["data"] = json!({"b": "2"});
    record_update_manager(Some(&created), &mut emptied, "editor", LATER);
    assert_eq!(
        managers(&emptied),
        [("editor".to_string(), "Update".to_string())],
        "creator owned only data.a, now gone"
    );
}

#[test]
fn record_update_manager_clears_on_single_empty_entry() {
    let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    record_update_manager(None, &mut created, "creator", NOW);
    let mut cleared = created.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    record_update_manager(Some(&created), &mut cleared, "editor", LATER);
    assert!(cleared["metadata"].get("managedFields").is_none());
}

#[test]
fn update_after_apply_then_apply_again_conflicts_with_the_updater() {
    let gvk = deploy_gvk();
    let live = apply(
        None,
        &applied_deployment(2, "app:1"),
        "kubectl",
        false,
        &gvk,
    )
    .expect("create");
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:9");
    record_update_manager(Some(&live), &mut edited, "kubectl-set", LATER);
    let err = apply(
        Some(&edited),
        &applied_deployment(2, "app:1"),
        "kubectl",
        false,
        &gvk,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-set\" using apps/v1: .spec.template.spec.containers[name=\"app\"].image"
    );
}

#[test]
fn kubectl_csa_to_ssa_upgrade_then_server_side_apply_has_no_conflict() {
    let gvk = deploy_gvk();
    let mut live = applied_deployment(2, "app:1");
    record_update_manager(None, &mut live, "kubectl-client-side-apply", NOW);
    // kubectl apply --server-side first rewrites managedFields with a JSON Patch, handing the
    // client-side apply manager's fields to its own Apply entry.
    let mut upgraded_entries = live["metadata"]["managedFields"].clone();
    upgraded_entries[0]["manager"] = json!("kubectl");
    upgraded_entries[0]["operation"] = json!("Apply");
    let patch =
        json!([{"op": "replace", "path": "/metadata/managedFields", "value": upgraded_entries}]);
    let mut upgraded = apply_json_patch(&live, patch.to_string().as_bytes()).expect("json patch");
    record_update_manager(Some(&live), &mut upgraded, "kubectl", LATER);
    assert_eq!(
        managers(&upgraded),
        [("kubectl".to_string(), "Apply".to_string())]
    );
    let got = apply(
        Some(&upgraded),
        &applied_deployment(5, "app:2"),
        "kubectl",
        false,
        &gvk,
    )
    .expect("no conflict");
    assert_eq!(got["spec"]["replicas"], 5);
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["image"],
        "app:2"
    );
}

// ---------- robustness ----------

#[test]
fn no_input_panics() {
    let mut deep = String::new();
    for _ in 0..10_000 {
        deep.push('[');
    }
    let mut deep_obj = String::new();
    for _ in 0..10_000 {
        deep_obj.push_str("{\"a\":");
    }
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\xff\xfe\xfd".to_vec(),
        deep.into_bytes(),
        deep_obj.into_bytes(),
        b"{\"spec\":{\"containers\":{\"$patch\":\"delete\"}}}".to_vec(),
        b"{\"spec\":{\"containers\":[{\"name\":1,\"$patch\":7}]}}".to_vec(),
        b"{\"$setElementOrder/x\":[{\"name\":\"a\"}],\"x\":5}".to_vec(),
        b"{\"metadata\":{\"finalizers\":[[1]],\"$retainKeys\":[1]}}".to_vec(),
        b"{\"metadata\":{\"managedFields\":[{\"fieldsV1\":{\"k:notjson\":{},\"i:x\":{}}}]}}".to_vec(),
        b"[{\"op\":\"add\",\"path\":\"/a/-/b\",\"value\":1}]".to_vec(),
        b"apiVersion: apps/v1\nkind: Deployment\nspec: &a [*a]\n".to_vec(),
        b"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"spec\":{\"template\":{\"spec\":{\"containers\":[1,{\"x\":null}]}}}}".to_vec(),
    ];
    let docs = [
        pod(),
        deployment(),
        json!({"metadata": {"managedFields": [{"fieldsV1": {"k:notjson": {"i:x": {}}}}, 3]}}),
        json!([1]),
    ];
    for gvk in [pod_gvk(), deploy_gvk(), Gvk::new("x.io", "v1", "X")] {
        for doc in &docs {
            for input in &inputs {
                let _ = apply_json_patch(doc, input);
                let _ = apply_merge_patch(doc, input);
                let _ = apply_strategic_merge_patch(doc, input, &gvk);
                let _ = apply_server_side(Some(doc), input, "m", false, &gvk, NOW);
                let _ = apply_server_side(None, input, "m", true, &gvk, NOW);
                let mut new = doc.clone();
                record_update_manager(Some(doc), &mut new, "m", NOW);
            }
        }
    }
}
