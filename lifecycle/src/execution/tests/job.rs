use k8s_openapi::api::batch::v1::Job;
use serde_json::{Value, json};
use shared::checks::check_suffix;
use shared::crd::{KeptnTask, KeptnTaskDefinition};

use super::{TASK_UID, app_context, definition, images, task, workload_context};
use crate::execution::{CheckError, build_job, job_name_for, job_suffix, keptn_context_json};

fn job_json(job: &Job) -> Value {
    serde_json::to_value(job).unwrap()
}

/// The Job of `t` (suffix 10000) under `def`, whose `functionRef` names `parent`.
fn build(
    t: &KeptnTask,
    def: &KeptnTaskDefinition,
    parent: Option<&KeptnTaskDefinition>,
) -> Result<Job, CheckError> {
    build_job(t, def, parent, &images(), 10000)
}

/// The Job of `t` under `def` (no parent), as JSON.
fn job_of(t: &KeptnTask, def: &KeptnTaskDefinition) -> Value {
    job_json(&build(t, def, None).unwrap())
}

/// Definition `hello` with `spec`, without status.
fn hello(spec: Value) -> KeptnTaskDefinition {
    definition("hello", spec, None)
}

fn env_of(job: &Value) -> Value {
    job["spec"]["template"]["spec"]["containers"][0]["env"].clone()
}

fn deno_inline() -> KeptnTaskDefinition {
    definition(
        "hello",
        json!({"deno": {"inline": {"code": "console.log('hi')"}}}),
        Some(json!({"function": {"configMap": "keptnfn-hello"}})),
    )
}

const WORKLOAD_CONTEXT: &str = r#"{"workloadName":"waiter-waiter","appName":"waiter","appVersion":"","workloadVersion":"0.4","taskType":"pre","objectType":"Workload"}"#;

#[test]
fn b5_5_deno_inline_job_field_by_field() {
    let job = build_job(&task(json!({})), &deno_inline(), None, &images(), 54321).unwrap();
    let got = job_json(&job);
    let want = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "pre-hello-12345-54321",
            "namespace": "app",
            "labels": {"team": "blue"},
            "annotations": {
                "note": "from-definition",
                "keptn.sh/app": "waiter",
                "keptn.sh/version": "0.4",
                "keptn.sh/workload": "waiter-waiter",
                "keptn.sh/task-name": "pre-hello-12345",
            },
            "ownerReferences": [{
                "apiVersion": "lifecycle.keptn.sh/v1",
                "kind": "KeptnTask",
                "name": "pre-hello-12345",
                "uid": TASK_UID,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": 120,
            "ttlSecondsAfterFinished": 300,
            "template": {
                "metadata": {
                    "labels": {"team": "blue"},
                    "annotations": {"note": "from-definition"},
                },
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "keptn-function-runner",
                        "image": "ghcr.io/keptn/deno-runtime:v3.0.1",
                        "imagePullPolicy": "IfNotPresent",
                        "env": [
                            {"name": "KEPTN_CONTEXT", "value": WORKLOAD_CONTEXT},
                            {"name": "CMD_ARGS", "value": ""},
                            {"name": "SCRIPT", "value": "/var/data/function.ts"},
                        ],
                        "volumeMounts": [{
                            "name": "function-mount",
                            "mountPath": "/var/data/function.ts",
                            "subPath": "code",
                            "readOnly": true,
                        }],
                    }],
                    "volumes": [{
                        "name": "function-mount",
                        "configMap": {"name": "keptnfn-hello"},
                    }],
                },
            },
        },
    });
    for key in ["apiVersion", "kind", "metadata"] {
        assert_eq!(got[key], want[key], "{key}");
    }
    for key in [
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        assert_eq!(got["spec"][key], want["spec"][key], "spec.{key}");
    }
    assert_eq!(
        got["spec"]["template"]["metadata"],
        want["spec"]["template"]["metadata"]
    );
    let (g, w) = (
        &got["spec"]["template"]["spec"],
        &want["spec"]["template"]["spec"],
    );
    assert_eq!(
        g["containers"][0]["env"], w["containers"][0]["env"],
        "env order"
    );
    assert_eq!(g["containers"], w["containers"]);
    assert_eq!(g["volumes"], w["volumes"]);
    assert_eq!(got, want, "whole Job");
}

#[test]
fn b5_4_app_task_annotations_have_no_workload_key_and_app_version() {
    let app_task = task(json!({"spec": {
        "taskDefinition": "hello",
        "context": app_context("waiter", "1.2"),
    }}));
    let job = job_of(&app_task, &deno_inline());
    assert_eq!(
        job["metadata"]["annotations"],
        json!({
            "note": "from-definition",
            "keptn.sh/app": "waiter",
            "keptn.sh/version": "1.2",
            "keptn.sh/task-name": "pre-hello-12345",
        })
    );
}

#[test]
fn b5_4_keptn_annotations_win_over_task_annotations_and_stay_off_the_pod() {
    let t = task(json!({"metadata": {"annotations": {"keptn.sh/app": "spoofed", "x": "y"}}}));
    let job = job_of(&t, &deno_inline());
    assert_eq!(job["metadata"]["annotations"]["keptn.sh/app"], "waiter");
    assert_eq!(job["metadata"]["annotations"]["x"], "y");
    assert_eq!(
        job["spec"]["template"]["metadata"]["annotations"],
        json!({"keptn.sh/app": "spoofed", "x": "y"})
    );
}

#[test]
fn b5_4_task_without_labels_or_annotations_gives_none_on_the_pod() {
    let t = task(json!({"metadata": {"labels": null, "annotations": null}}));
    let job = job_of(&t, &deno_inline());
    assert!(job["metadata"].get("labels").is_none());
    assert_eq!(job["spec"]["template"]["metadata"], json!({}));
}

#[test]
fn b5_4_pod_spec_passes_service_account_token_and_pull_secrets() {
    let def = hello(json!({
        "deno": {"httpRef": {"url": "https://example.com/f.ts"}},
        "serviceAccount": {"name": "runner"},
        "automountServiceAccountToken": {"type": false},
        "imagePullSecrets": [{"name": "regcred"}, {"name": "other"}],
        "ttlSecondsAfterFinished": 60,
    }));
    let job = job_of(&task(json!({})), &def);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "runner");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{"name": "regcred"}, {"name": "other"}])
    );
    assert_eq!(pod["restartPolicy"], "OnFailure");
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 60);
    // Without the optional fields they are absent.
    let job = job_of(&task(json!({})), &deno_inline());
    let pod = &job["spec"]["template"]["spec"];
    for key in [
        "serviceAccountName",
        "automountServiceAccountToken",
        "imagePullSecrets",
    ] {
        assert!(pod.get(key).is_none(), "{key}");
    }
}

#[test]
fn b3_13_backoff_limit_and_deadline_from_task() {
    let rows = [
        ("timeout_default_5m", "5m", 10, 300),
        ("timeout_compound", "1m30s", 0, 90),
        ("timeout_fraction_truncated", "1.9s", 2, 1),
        ("timeout_hours", "1h", 5, 3600),
        ("timeout_sub_second_truncated_to_zero", "500ms", 1, 0),
        ("timeout_zero", "0", 1, 0),
    ];
    for (name, timeout, retries, want_deadline) in rows {
        let t = task(
            json!({"spec": {"taskDefinition": "hello", "retries": retries, "timeout": timeout,
            "context": workload_context("w", "a", "1")}}),
        );
        let job = job_of(&t, &deno_inline());
        assert_eq!(job["spec"]["backoffLimit"], retries, "{name}");
        assert_eq!(
            job["spec"]["activeDeadlineSeconds"], want_deadline,
            "{name}"
        );
    }
}

#[test]
fn b3_13_unparsable_timeout_is_a_clear_error() {
    for timeout in ["5x", "m", "-1s"] {
        let t = task(json!({"spec": {"taskDefinition": "hello", "timeout": timeout}}));
        let err = build(&t, &deno_inline(), None).unwrap_err();
        assert_eq!(err.kind(), "duration", "{timeout}: {err}");
        assert!(
            err.to_string().starts_with("invalid spec.timeout: "),
            "{err}"
        );
    }
}

#[test]
fn b5_5_python_http_ref_job() {
    let def = hello(json!({"python": {
        "httpRef": {"url": "https://example.com/check.py"},
        "cmdParameters": "-h",
    }}));
    let job = job_of(&task(json!({})), &def);
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/keptn/python-runtime:v1.0.8");
    assert_eq!(
        c["env"],
        json!([
            {"name": "KEPTN_CONTEXT", "value": WORKLOAD_CONTEXT},
            {"name": "CMD_ARGS", "value": "-h"},
            {"name": "SCRIPT", "value": "https://example.com/check.py"},
        ])
    );
    assert!(c.get("volumeMounts").is_none());
    assert!(job["spec"]["template"]["spec"].get("volumes").is_none());
}

#[test]
fn b5_5_python_inline_mounts_at_function_py() {
    let def = definition(
        "hello",
        json!({"python": {"inline": {"code": "print(1)"}}}),
        Some(json!({"function": {"configMap": "keptnfn-hello"}})),
    );
    let job = job_of(&task(json!({})), &def);
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/keptn/python-runtime:v1.0.8");
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/var/data/function.py");
    assert_eq!(
        env_of(&job)[2],
        json!({"name": "SCRIPT", "value": "/var/data/function.py"})
    );
}

#[test]
fn b5_5_runtime_choice_deno_when_non_empty_else_python() {
    // An empty deno next to a python runtime: python runs.
    let def = hello(json!({"deno": {}, "python": {"httpRef": {"url": "u"}}}));
    let job = job_of(&task(json!({})), &def);
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/keptn/python-runtime:v1.0.8"
    );
    // Both non-empty: deno.
    let def =
        hello(json!({"deno": {"httpRef": {"url": "d"}}, "python": {"httpRef": {"url": "p"}}}));
    let job = job_of(&task(json!({})), &def);
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/keptn/deno-runtime:v3.0.1"
    );
    assert_eq!(env_of(&job)[2]["value"], "d");
}

#[test]
fn b5_5_source_resolution() {
    let rows = [
        (
            "config_map_wins_over_url",
            json!({"deno": {"httpRef": {"url": "https://x/f.ts"}}}),
            Some(json!({"function": {"configMap": "cm"}})),
            Ok("/var/data/function.ts"),
        ),
        (
            "url_when_no_config_map",
            json!({"deno": {"httpRef": {"url": "https://x/f.ts"}}}),
            None,
            Ok("https://x/f.ts"),
        ),
        // Inline code whose ConfigMap is not written yet: no source yet.
        (
            "inline_before_config_map",
            json!({"deno": {"inline": {"code": "x"}}}),
            None,
            Err(()),
        ),
        ("nothing", json!({"deno": {}}), None, Err(())),
    ];
    for (name, spec, status, want) in rows {
        let def = definition("hello", spec, status);
        let got = build(&task(json!({})), &def, None);
        match want {
            Ok(script) => {
                let job = job_json(&got.unwrap());
                let env = env_of(&job);
                let last = env.as_array().unwrap().last().unwrap().clone();
                assert_eq!(last, json!({"name": "SCRIPT", "value": script}), "{name}");
            }
            Err(()) => assert_eq!(
                got.unwrap_err().to_string(),
                "no ConfigMap specified or HTTP source specified in TaskDefinition / Namespace: app, Name: hello",
                "{name}"
            ),
        }
    }
}

#[test]
fn b5_5_no_runtime_at_all_is_an_error() {
    let def = hello(json!({}));
    let err = build(&task(json!({})), &def, None).unwrap_err();
    assert!(matches!(err, CheckError::NoRuntime { .. }), "{err}");
}

#[test]
fn b5_5_parameters_definition_keys_win_and_data_is_sorted_json() {
    let def = hello(json!({"deno": {
        "httpRef": {"url": "u"},
        "parameters": {"map": {"zeta": "def", "shared": "from-definition"}},
    }}));
    let t = task(json!({"spec": {"taskDefinition": "hello",
        "parameters": {"map": {"shared": "from-task", "alpha": "task"}}}}));
    let job = job_of(&t, &def);
    assert_eq!(
        env_of(&job)[0],
        json!({"name": "DATA", "value": r#"{"alpha":"task","shared":"from-definition","zeta":"def"}"#})
    );
}

#[test]
fn b5_5_secure_parameters_task_secret_overrides_definition() {
    let rows = [
        (
            "definition_only",
            None,
            Some("def-secret"),
            Some("def-secret"),
        ),
        (
            "task_overrides",
            Some("task-secret"),
            Some("def-secret"),
            Some("task-secret"),
        ),
        ("task_only", Some("task-secret"), None, Some("task-secret")),
        ("none", None, None, None),
    ];
    for (name, task_secret, def_secret, want) in rows {
        let mut deno = json!({"httpRef": {"url": "u"}});
        if let Some(s) = def_secret {
            deno["secureParameters"] = json!({"secret": s});
        }
        let def = hello(json!({"deno": deno}));
        let mut spec = json!({"taskDefinition": "hello"});
        if let Some(s) = task_secret {
            spec["secureParameters"] = json!({"secret": s});
        }
        let job = job_of(&task(json!({"spec": spec})), &def);
        let env = env_of(&job);
        let names: Vec<&str> = env
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        match want {
            Some(secret) => {
                assert_eq!(
                    names,
                    ["KEPTN_CONTEXT", "CMD_ARGS", "SECURE_DATA", "SCRIPT"],
                    "{name}"
                );
                assert_eq!(
                    env[2],
                    json!({"name": "SECURE_DATA", "valueFrom": {"secretKeyRef": {"name": secret, "key": "SECURE_DATA"}}}),
                    "{name}"
                );
            }
            None => assert_eq!(names, ["KEPTN_CONTEXT", "CMD_ARGS", "SCRIPT"], "{name}"),
        }
    }
}

#[test]
fn b5_5_env_order_with_everything() {
    let def = hello(json!({"python": {
        "httpRef": {"url": "u"},
        "parameters": {"map": {"k": "v"}},
        "secureParameters": {"secret": "s"},
        "cmdParameters": "--x",
    }}));
    let job = job_of(&task(json!({})), &def);
    let names: Vec<String> = env_of(&job)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["DATA", "KEPTN_CONTEXT", "CMD_ARGS", "SECURE_DATA", "SCRIPT"]
    );
}

#[test]
fn b5_5_keptn_context_key_order_exact() {
    assert_eq!(
        keptn_context_json(&task(json!({}))).unwrap(),
        WORKLOAD_CONTEXT
    );
    let with_metadata = task(json!({"spec": {"taskDefinition": "hello", "context": {
        "objectType": "App", "taskType": "post", "workloadVersion": "", "appVersion": "2",
        "appName": "a", "workloadName": "", "metadata": {"z": "1", "commit": "abc"},
    }}}));
    assert_eq!(
        keptn_context_json(&with_metadata).unwrap(),
        r#"{"workloadName":"","appName":"a","appVersion":"2","workloadVersion":"","taskType":"post","objectType":"App","metadata":{"commit":"abc","z":"1"}}"#
    );
}

fn parent_and_child() -> (KeptnTaskDefinition, KeptnTaskDefinition) {
    let parent = definition(
        "base",
        json!({"python": {
            "inline": {"code": "print(1)"},
            "parameters": {"map": {"shared": "parent", "only-parent": "p"}},
            "secureParameters": {"secret": "parent-secret"},
            "cmdParameters": "--parent",
        }}),
        Some(json!({"function": {"configMap": "keptnfn-base"}})),
    );
    let child = definition(
        "hello",
        json!({"deno": {
            "functionRef": {"name": "base"},
            "httpRef": {"url": "https://child/ignored.ts"},
            "parameters": {"map": {"shared": "child", "only-child": "c"}},
        }}),
        Some(json!({"function": {"configMap": "keptnfn-hello-ignored"}})),
    );
    (parent, child)
}

#[test]
fn b5_5_function_ref_runs_parent_code_and_runtime_with_child_values() {
    let (parent, child) = parent_and_child();
    let job = job_json(&build(&task(json!({})), &child, Some(&parent)).unwrap());
    let pod = &job["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    // Image and mount path of the parent's (python) runtime, code from the parent's ConfigMap.
    assert_eq!(c["image"], "ghcr.io/keptn/python-runtime:v1.0.8");
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/var/data/function.py");
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "keptnfn-base");
    assert_eq!(
        c["env"],
        json!([
            {"name": "DATA", "value": r#"{"only-child":"c","only-parent":"p","shared":"child"}"#},
            {"name": "KEPTN_CONTEXT", "value": WORKLOAD_CONTEXT},
            {"name": "CMD_ARGS", "value": "--parent"},
            {"name": "SECURE_DATA", "valueFrom": {"secretKeyRef": {"name": "parent-secret", "key": "SECURE_DATA"}}},
            {"name": "SCRIPT", "value": "/var/data/function.py"},
        ])
    );
}

#[test]
fn b5_5_parameter_precedence_child_then_parent_then_task() {
    let (parent, child) = parent_and_child();
    let t = task(
        json!({"spec": {"taskDefinition": "hello", "secureParameters": {"secret": "task-secret"},
        "parameters": {"map": {"shared": "task", "only-parent": "task", "only-task": "t"}}}}),
    );
    let job = job_json(&build(&t, &child, Some(&parent)).unwrap());
    let env = env_of(&job);
    assert_eq!(
        env[0],
        json!({"name": "DATA", "value": r#"{"only-child":"c","only-parent":"p","only-task":"t","shared":"child"}"#})
    );
    assert_eq!(env[3]["valueFrom"]["secretKeyRef"]["name"], "task-secret");
}

#[test]
fn b5_5_function_ref_child_secret_and_url_parent() {
    let parent = definition(
        "base",
        json!({"deno": {"httpRef": {"url": "https://parent/f.ts"}}}),
        None,
    );
    let child = hello(
        json!({"python": {"functionRef": {"name": "base"}, "secureParameters": {"secret": "child-secret"}}}),
    );
    let job = job_json(&build(&task(json!({})), &child, Some(&parent)).unwrap());
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/keptn/deno-runtime:v3.0.1");
    assert_eq!(
        c["env"],
        json!([
            {"name": "KEPTN_CONTEXT", "value": WORKLOAD_CONTEXT},
            {"name": "CMD_ARGS", "value": ""},
            {"name": "SECURE_DATA", "valueFrom": {"secretKeyRef": {"name": "child-secret", "key": "SECURE_DATA"}}},
            {"name": "SCRIPT", "value": "https://parent/f.ts"},
        ])
    );
}

#[test]
fn b5_5_function_ref_errors() {
    let (_, child) = parent_and_child();
    let err = build(&task(json!({})), &child, None).unwrap_err();
    assert_eq!(err.to_string(), "could not find KeptnTaskDefinition: base");
    // A parent without code of its own (its functionRef is not followed): no source, naming it.
    let grandparent_only = definition(
        "base",
        json!({"deno": {"functionRef": {"name": "root"}}}),
        None,
    );
    let err = build(&task(json!({})), &child, Some(&grandparent_only)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no ConfigMap specified or HTTP source specified in TaskDefinition / Namespace: app, Name: base"
    );
    let container_parent = definition(
        "base",
        json!({"container": {"name": "c", "image": "busybox"}}),
        None,
    );
    let err = build(&task(json!({})), &child, Some(&container_parent)).unwrap_err();
    assert!(matches!(err, CheckError::ParentNotFunction { .. }), "{err}");
}

#[test]
fn b5_6_container_with_volume_mounts_and_no_limits_gets_1gi_memory_emptydir() {
    let def = hello(json!({"container": {
        "name": "curl",
        "image": "curlimages/curl:8.5.0",
        "command": ["sh", "-c"],
        "args": ["curl -s https://example.com"],
        "env": [{"name": "A", "value": "1"}],
        "volumeMounts": [
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "other", "mountPath": "/other"},
        ],
    }}));
    let t = task(
        json!({"spec": {"taskDefinition": "hello", "secureParameters": {"secret": "ignored"},
        "parameters": {"map": {"ignored": "yes"}},
        "context": workload_context("waiter-waiter", "waiter", "0.4")}}),
    );
    let job = job_of(&t, &def);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"],
        json!([{
            "name": "curl",
            "image": "curlimages/curl:8.5.0",
            "command": ["sh", "-c"],
            "args": ["curl -s https://example.com"],
            "env": [{"name": "A", "value": "1"}, {"name": "KEPTN_CONTEXT", "value": WORKLOAD_CONTEXT}],
            "volumeMounts": [
                {"name": "scratch", "mountPath": "/scratch"},
                {"name": "other", "mountPath": "/other"},
            ],
        }])
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}])
    );
}

#[test]
fn b5_6_container_memory_limit_sizes_the_volume_and_context_is_overwritten() {
    let def = hello(json!({"container": {
        "name": "c",
        "image": "busybox",
        "env": [
            {"name": "KEPTN_CONTEXT", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}},
            {"name": "B", "value": "2"},
        ],
        "resources": {"limits": {"memory": "256Mi", "cpu": "1"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }}));
    let job = job_of(&task(json!({})), &def);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["env"],
        json!([{"name": "KEPTN_CONTEXT", "value": WORKLOAD_CONTEXT}, {"name": "B", "value": "2"}])
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}])
    );
}

#[test]
fn b5_6_container_without_mounts_has_no_volume() {
    let def = hello(json!({"container": {"name": "c", "image": "busybox"}}));
    let job = job_of(&task(json!({})), &def);
    let pod = &job["spec"]["template"]["spec"];
    assert!(pod.get("volumes").is_none());
    assert_eq!(
        pod["containers"],
        json!([{"name": "c", "image": "busybox", "env": [{"name": "KEPTN_CONTEXT", "value": WORKLOAD_CONTEXT}]}])
    );
}

#[test]
fn a15_job_name_is_deterministic_from_task_uid() {
    let t = task(json!({}));
    let suffix = job_suffix(&t).unwrap();
    assert_eq!(suffix, check_suffix(TASK_UID, "hello", 0));
    assert_eq!(
        job_name_for(&t).unwrap(),
        format!("pre-hello-12345-{suffix}")
    );
    let other = task(json!({"metadata": {"uid": "another-uid"}}));
    assert_ne!(job_name_for(&other).unwrap(), job_name_for(&t).unwrap());
    let no_uid = task(json!({"metadata": {"uid": null}}));
    assert!(job_name_for(&no_uid).is_err());
}
