//! `explain`'s output for one annotated Deployment (the README's): the table exactly, the JSON
//! fields, colour, and the command itself (files, stdin, exit codes).

use std::io::Write as _;
use std::process::{Command, Stdio};

use kubectl_portcullis::cli::Format;
use kubectl_portcullis::explain::{Options, explain, manifest, render};
use kubectl_portcullis::output::Style;
use serde_json::{Value, json};

const MANIFEST: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {keptn.sh/lifecycle-toolkit: enabled}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: checkout}}
  template:
    metadata:
      labels: {app: checkout}
      annotations:
        keptn.sh/app: shop
        keptn.sh/workload: checkout
        keptn.sh/version: \"0.9.3\"
        keptn.sh/pre-deployment-tasks: migrate-db
    spec:
      containers: [{name: checkout, image: ghcr.io/example/shop-checkout:0.9.3}]
";

fn objects() -> Vec<Value> {
    manifest::parse(MANIFEST, "shop.yaml").unwrap()
}

fn options() -> Options {
    Options {
        default_namespace: "default".into(),
        ..Options::default()
    }
}

const TABLE: &str = "\
Deployment shop/checkout
  Enabled:                      yes, pods get the scheduling gate keptn-prechecks-gate until the workload's pre-deployment checks pass
  App:                          shop (annotation keptn.sh/app of the pod template)
  Workload:                     checkout (annotation keptn.sh/workload of the pod template)
  Version:                      0.9.3 (annotation keptn.sh/version of the pod template)
  KeptnApp:                     shop (multi-service)
  KeptnWorkload:                shop-checkout
  KeptnWorkloadVersion:         shop-checkout-0.9.3
  KeptnAppVersion:              shop-0.9.3-6b86b273
  Pre-deployment tasks:         migrate-db
  Pre-deployment evaluations:   none
  Post-deployment tasks:        none
  Post-deployment evaluations:  none
  Webhook:                      allowed: KeptnWorkload and KeptnAppCreationRequest ensured (/mutate-workloads)
  Writes:                       create KeptnWorkload shop/shop-checkout
                                create KeptnAppCreationRequest shop/shop
  Pods:                         allowed with a patch (/mutate-v1-pod)
  Pod patch:                    add /spec/schedulingGates [{\"name\":\"keptn-prechecks-gate\"}]
                                add /metadata/labels/portcullis.dev~1gated \"true\"
  Note:                         KeptnAppVersion of a new KeptnApp shop made of the workloads of these manifests (shop-checkout); other workloads of the app in the cluster change it
";

#[test]
fn table_of_an_annotated_deployment() {
    let style = Style {
        format: Format::Table,
        color: false,
    };
    let explanations = explain(&objects(), &options());
    assert_eq!(render::table(&explanations, &style), TABLE);
}

#[test]
fn table_colours_only_when_asked() {
    let style = Style {
        format: Format::Table,
        color: true,
    };
    let text = render::table(&explain(&objects(), &options()), &style);
    assert!(text.starts_with("\u{1b}[1mDeployment shop/checkout\u{1b}[0m\n"));
    assert!(text.contains("Enabled:                      \u{1b}[32myes\u{1b}[0m, pods get"));
    let plain = text
        .replace("\u{1b}[1m", "")
        .replace("\u{1b}[32m", "")
        .replace("\u{1b}[0m", "");
    assert_eq!(plain, TABLE);
}

#[test]
fn json_of_an_annotated_deployment() {
    let explanations = explain(&objects(), &options());
    let json = serde_json::to_value(&explanations).unwrap();
    let d = &json[0];
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["namespace"], "shop");
    assert_eq!(d["name"], "checkout");
    assert_eq!(d["enabled"], true);
    assert_eq!(
        d["app"],
        json!({"value": "shop", "source": "annotation keptn.sh/app of the pod template"})
    );
    assert_eq!(
        d["workload"],
        json!({"value": "checkout", "source": "annotation keptn.sh/workload of the pod template"})
    );
    assert_eq!(
        d["version"],
        json!({"value": "0.9.3", "source": "annotation keptn.sh/version of the pod template"})
    );
    assert_eq!(d["appType"], "multi-service");
    assert_eq!(d["keptnApp"], "shop");
    assert_eq!(d["keptnWorkload"], "shop-checkout");
    assert_eq!(d["keptnWorkloadVersion"], "shop-checkout-0.9.3");
    assert_eq!(d["keptnAppVersion"], "shop-0.9.3-6b86b273");
    assert_eq!(d["preDeploymentTasks"], json!(["migrate-db"]));
    assert_eq!(d["postDeploymentEvaluations"], json!([]));
    assert_eq!(d["webhookPath"], "/mutate-workloads");
    assert_eq!(d["allowed"], true);
    assert_eq!(d["patch"], Value::Null, "workloads are never mutated");
    assert_eq!(d["error"], Value::Null);
    assert_eq!(
        d["writes"],
        json!([
            "create KeptnWorkload shop/shop-checkout",
            "create KeptnAppCreationRequest shop/shop"
        ])
    );
    let pods = &d["pods"];
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["name"], "checkout-<hash>-");
    assert_eq!(pods["enabled"], true);
    assert_eq!(
        pods["patch"],
        json!([{"op": "add", "path": "/spec/schedulingGates",
            "value": [{"name": "keptn-prechecks-gate"}]},
            {"op": "add", "path": "/metadata/labels/portcullis.dev~1gated", "value": "true"}])
    );
    assert_eq!(pods["keptnWorkloadVersion"], "shop-checkout-0.9.3");
    // They come after the Deployment: its KeptnWorkload now names their ReplicaSet.
    assert_eq!(
        pods["writes"],
        json!(["update KeptnWorkload shop/shop-checkout"])
    );
    // The Namespace of the manifests is the only explained-away object.
    assert_eq!(json.as_array().unwrap().len(), 1);
}

// ------------------------------------------------------------------ the command

fn command(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-portcullis"))
        .args(args)
        .current_dir(dir.path())
        // No cluster: the namespace is read from nowhere.
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn command_reads_stdin_and_prints_yaml() {
    let (code, stdout, stderr) = command(&["explain", "-f", "-", "-o", "yaml"], Some(MANIFEST));
    assert_eq!(code, 0, "{stderr}");
    let read: Value = serde_yaml::from_str(&stdout).unwrap();
    assert_eq!(read[0]["keptnAppVersion"], "shop-0.9.3-6b86b273");
}

#[test]
fn command_table_from_a_file_matches() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, MANIFEST).unwrap();
    let (code, stdout, stderr) = command(&["explain", "-f", file.to_str().unwrap()], None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, TABLE);
}

#[test]
fn command_without_namespace_or_cluster_assumes_not_enabled_and_exits_0() {
    let deployment = MANIFEST.split("---\n").nth(1).unwrap();
    let (code, stdout, stderr) = command(&["explain", "-f", "-", "-o", "json"], Some(deployment));
    assert_eq!(code, 0, "{stderr}");
    let read: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(read[0]["enabled"], false);
    assert_eq!(
        read[0]["message"],
        "namespace is not enabled for lifecycle operator"
    );
    let note = read[0]["notes"][0].as_str().unwrap();
    assert!(
        note.starts_with("namespace shop is not in the manifests and could not be read from the cluster (no cluster: "),
        "{note}"
    );
    // --namespace-enabled says otherwise.
    let (code, stdout, _) = command(
        &["explain", "-f", "-", "-o", "json", "--namespace-enabled"],
        Some(deployment),
    );
    assert_eq!(code, 0);
    let read: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(read[0]["enabled"], true);
    assert_eq!(
        read[0]["notes"].as_array().unwrap().len(),
        1,
        "only the app note"
    );
}

#[test]
fn command_fails_only_on_unreadable_input() {
    let (code, stdout, stderr) = command(&["explain", "-f", "-"], Some("kind: [unclosed\n"));
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.starts_with("error: -: invalid YAML: "), "{stderr}");
    let (code, _, stderr) = command(&["explain", "-f", "missing.yaml"], None);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("error: cannot read missing.yaml: "),
        "{stderr}"
    );
    // A rejected workload is an answer, not a failure.
    let rejected = MANIFEST.replace("keptn.sh/version: \"0.9.3\"", "keptn.sh/container: nope");
    let (code, stdout, _) = command(&["explain", "-f", "-", "-o", "json"], Some(&rejected));
    assert_eq!(code, 0);
    let read: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(read[0]["allowed"], false);
    assert_eq!(
        read[0]["error"],
        "Deployment checkout: The container name 'nope' specified in keptn.sh/container does not \
         match any containers in the pod"
    );
}
