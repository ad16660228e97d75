//! Secret manifests and filling the install manifest deploy/portcullis.yaml.

mod common;

use base64::Engine;
use certs::manifest::{Install, SecretRef, ca_secret_yaml, patch_manifests, tls_secret_yaml};
use certs::rotation::create;
use certs::{CertError, Material, ServiceName};
use common::{names, short_policy, t0};
use serde_yaml::Value;

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn decode(v: &Value) -> String {
    let b = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap();
    String::from_utf8(b).unwrap()
}

/// The static install as `deploy/portcullis.yaml` has it (the chart's defaults) less the CRDs:
/// the webhook configurations, the empty certificate Secret and everything else.
fn base_manifests() -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/portcullis.yaml"
    ))
    .unwrap();
    text.split("\n---\n")
        .filter(|d| !d.contains("\nkind: CustomResourceDefinition\n"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn install<'a>(names: &'a ServiceName, material: &'a Material) -> Install<'a> {
    Install {
        service: names,
        secret_name: "portcullis-webhook-tls",
        material,
    }
}

#[test]
fn tls_secret_carries_certificate_key_and_bundle() {
    let m = create(&names(), &short_policy(), t0()).unwrap();
    let to = SecretRef {
        name: "portcullis-webhook-tls".into(),
        namespace: "portcullis-system".into(),
    };
    let d = &docs(&tls_secret_yaml(&to, &m).unwrap())[0];
    assert_eq!(d["kind"], "Secret");
    assert_eq!(d["type"], "kubernetes.io/tls");
    assert_eq!(d["metadata"]["namespace"], "portcullis-system");
    assert_eq!(decode(&d["data"]["tls.crt"]), m.cert_pem);
    assert_eq!(decode(&d["data"]["tls.key"]), m.key_pem);
    assert_eq!(decode(&d["data"]["ca.crt"]), m.ca_bundle_pem);
    assert!(
        d["data"].get("ca.key").is_none(),
        "the CA key never goes to the webhook"
    );
    let ca = &docs(&ca_secret_yaml(&to, &m).unwrap())[0];
    assert_eq!(ca["type"], "Opaque");
    assert_eq!(decode(&ca["data"]["ca.key"]), m.ca_key_pem);
}

#[test]
fn base_manifests_get_ca_bundle_and_secret_and_a_second_run_changes_nothing() {
    let m = create(&names(), &short_policy(), t0()).unwrap();
    let n = names();
    let p = patch_manifests("base", &base_manifests(), install(&n, &m)).unwrap();
    assert_eq!((p.webhooks, p.secrets), (3, 1));
    assert!(p.changed);
    let out = docs(&p.yaml);
    let mut seen = 0;
    for d in &out {
        match d["kind"].as_str().unwrap() {
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
                for w in d["webhooks"].as_sequence().unwrap() {
                    assert_eq!(decode(&w["clientConfig"]["caBundle"]), m.ca_bundle_pem);
                    seen += 1;
                }
            }
            "Secret" => {
                assert_eq!(decode(&d["data"]["tls.crt"]), m.cert_pem);
                assert_eq!(decode(&d["data"]["tls.key"]), m.key_pem);
                assert_eq!(decode(&d["data"]["ca.crt"]), m.ca_bundle_pem);
            }
            _ => {}
        }
    }
    assert_eq!(seen, 3);
    // Documents that are not ours pass through.
    let before: Vec<_> = docs(&base_manifests())
        .into_iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "Service")
        .collect();
    let after: Vec<_> = out
        .iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "Service")
        .cloned()
        .collect();
    assert_eq!(before, after);
    let again = patch_manifests("base", &p.yaml, install(&n, &m)).unwrap();
    assert!(!again.changed);
    assert_eq!(again.yaml, p.yaml);
}

#[test]
fn crds_converting_through_the_webhook_get_the_ca_bundle_and_others_are_left_alone() {
    let m = create(&names(), &short_policy(), t0()).unwrap();
    let n = names();
    let crds = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/portcullis/files/crds/"
    );
    let mut text = String::new();
    for f in [
        "keptntasks.lifecycle.keptn.sh.yaml",
        "keptnapps.lifecycle.keptn.sh.yaml",
        "keptnmetrics.metrics.keptn.sh.yaml",
    ] {
        text.push_str(&std::fs::read_to_string(format!("{crds}{f}")).unwrap());
    }
    text.push_str(
        "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: others.example.com}\n\
         spec:\n  conversion:\n    strategy: Webhook\n    webhook:\n      clientConfig:\n        service: {name: other, namespace: elsewhere}\n---\n",
    );
    text.push_str(&base_manifests());
    let p = patch_manifests("crds", &text, install(&n, &m)).unwrap();
    assert_eq!((p.webhooks, p.conversions, p.secrets), (3, 2, 1));
    for d in docs(&p.yaml)
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
    {
        let cc = &d["spec"]["conversion"]["webhook"]["clientConfig"];
        match d["metadata"]["name"].as_str().unwrap() {
            "keptntasks.lifecycle.keptn.sh" | "keptnapps.lifecycle.keptn.sh" => {
                assert_eq!(decode(&cc["caBundle"]), m.ca_bundle_pem);
                assert_eq!(cc["service"]["path"], "/convert");
            }
            _ => assert!(cc.get("caBundle").is_none(), "{:?}", d["metadata"]),
        }
    }
}

#[test]
fn webhooks_of_other_services_are_left_alone() {
    let m = create(&names(), &short_policy(), t0()).unwrap();
    let yaml = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: mixed}
webhooks:
  - name: ours.example.com
    clientConfig:
      service: {name: portcullis-webhook, namespace: portcullis-system, path: /mutate-v1-pod}
  - name: theirs.example.com
    clientConfig:
      service: {name: other, namespace: portcullis-system, path: /x}
      caBundle: b3RoZXI=
  - name: url.example.com
    clientConfig:
      url: https://example.com/hook
"#;
    let n = names();
    let p = patch_manifests("mixed", yaml, install(&n, &m)).unwrap();
    assert_eq!((p.webhooks, p.secrets), (1, 0));
    let d = &docs(&p.yaml)[0];
    let hooks = d["webhooks"].as_sequence().unwrap();
    assert_eq!(
        decode(&hooks[0]["clientConfig"]["caBundle"]),
        m.ca_bundle_pem
    );
    assert_eq!(hooks[1]["clientConfig"]["caBundle"], "b3RoZXI=");
    assert!(hooks[2]["clientConfig"].get("caBundle").is_none());
}

#[test]
fn a_manifest_without_our_webhooks_is_an_error() {
    let m = create(&names(), &short_policy(), t0()).unwrap();
    let other = ServiceName::new("nope", "portcullis-system", "").unwrap();
    let e = patch_manifests("base", &base_manifests(), install(&other, &m)).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, CertError::Manifest { .. }));
    assert!(
        text.contains("service nope") && text.contains("portcullis-webhook.portcullis-system"),
        "{text}"
    );
    let n = names();
    let e = patch_manifests(
        "cm",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        install(&n, &m),
    )
    .unwrap_err();
    assert!(e.to_string().contains("nothing to fill"), "{e}");
    let e = patch_manifests("broken", "kind: [unclosed", install(&n, &m)).unwrap_err();
    assert!(
        e.to_string().starts_with("manifest broken: document 1"),
        "{e}"
    );
}
