//! YAML out: the Secrets that carry the certificates, and the `caBundle` of webhook
//! configurations patched in existing manifests.

use base64::Engine;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::CertError;
use crate::pki::ServiceName;
use crate::rotation::Material;

/// Where a Secret goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

fn b64(text: &str) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()))
}

fn secret(secret: &SecretRef, type_: &str, data: Vec<(&str, Value)>) -> Result<String, CertError> {
    let mut labels = Mapping::new();
    labels.insert("app.kubernetes.io/part-of".into(), "portcullis".into());
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "portcullis-certs".into(),
    );
    let mut metadata = Mapping::new();
    metadata.insert("name".into(), secret.name.clone().into());
    metadata.insert("namespace".into(), secret.namespace.clone().into());
    metadata.insert("labels".into(), Value::Mapping(labels));
    let mut d = Mapping::new();
    for (k, v) in data {
        d.insert(k.into(), v);
    }
    let mut doc = Mapping::new();
    doc.insert("apiVersion".into(), "v1".into());
    doc.insert("kind".into(), "Secret".into());
    doc.insert("metadata".into(), Value::Mapping(metadata));
    doc.insert("type".into(), type_.into());
    doc.insert("data".into(), Value::Mapping(d));
    serde_yaml::to_string(&Value::Mapping(doc)).map_err(|e| CertError::Manifest {
        what: format!("Secret {}", secret.name),
        reason: e.to_string(),
    })
}

/// The webhook's serving Secret: `kubernetes.io/tls` with `tls.crt`, `tls.key` and the CA bundle
/// as `ca.crt`. The CA key is not in it.
pub fn tls_secret_yaml(to: &SecretRef, material: &Material) -> Result<String, CertError> {
    secret(
        to,
        "kubernetes.io/tls",
        vec![
            ("tls.crt", b64(&material.cert_pem)),
            ("tls.key", b64(&material.key_pem)),
            ("ca.crt", b64(&material.ca_bundle_pem)),
        ],
    )
}

/// The CA's own Secret (`ca.crt` bundle and `ca.key`), for keeping the state in the cluster;
/// nothing in Portcullis mounts it.
pub fn ca_secret_yaml(to: &SecretRef, material: &Material) -> Result<String, CertError> {
    secret(
        to,
        "Opaque",
        vec![
            ("ca.crt", b64(&material.ca_bundle_pem)),
            ("ca.key", b64(&material.ca_key_pem)),
        ],
    )
}

/// The result of [`patch_ca_bundle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patched {
    /// The manifest after patching (every document, in order).
    pub yaml: String,
    /// How many webhooks point at the Service.
    pub webhooks: usize,
    /// Whether any `caBundle` value differed.
    pub changed: bool,
}

/// Sets `clientConfig.caBundle` of every webhook, in the Mutating- and
/// ValidatingWebhookConfigurations of the multi-document `yaml`, whose `clientConfig.service`
/// is `service`. Other documents and webhooks pass unchanged (comments are not kept). A manifest
/// with no such webhook is an error: the wrong `--service` or file was most likely given.
pub fn patch_ca_bundle(
    what: &str,
    yaml: &str,
    service: &ServiceName,
    bundle_pem: &str,
) -> Result<Patched, CertError> {
    let bad = |reason: String| CertError::Manifest {
        what: what.to_string(),
        reason,
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle_pem.as_bytes());
    let mut out = Vec::new();
    let mut webhooks = 0;
    let mut changed = false;
    for (i, de) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let mut doc =
            Value::deserialize(de).map_err(|e| bad(format!("document {}: {e}", i + 1)))?;
        if doc.is_null() {
            continue;
        }
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        let group = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if group.starts_with("admissionregistration.k8s.io/")
            && matches!(
                kind,
                "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration"
            )
            && let Some(list) = doc.get_mut("webhooks").and_then(Value::as_sequence_mut)
        {
            for hook in list {
                let Some(cc) = hook.get_mut("clientConfig").and_then(Value::as_mapping_mut) else {
                    continue;
                };
                let svc = cc.get("service");
                let name = svc.and_then(|s| s.get("name")).and_then(Value::as_str);
                let ns = svc.and_then(|s| s.get("namespace")).and_then(Value::as_str);
                if name != Some(service.service()) || ns != Some(service.namespace()) {
                    continue;
                }
                webhooks += 1;
                if cc.get("caBundle").and_then(Value::as_str) != Some(encoded.as_str()) {
                    cc.insert("caBundle".into(), Value::String(encoded.clone()));
                    changed = true;
                }
            }
        }
        out.push(serde_yaml::to_string(&doc).map_err(|e| bad(e.to_string()))?);
    }
    if webhooks == 0 {
        return Err(bad(format!(
            "no webhook in a Mutating- or ValidatingWebhookConfiguration calls service {} in namespace {}",
            service.service(),
            service.namespace()
        )));
    }
    Ok(Patched {
        yaml: out.join("---\n"),
        webhooks,
        changed,
    })
}
