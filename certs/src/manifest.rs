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

/// The result of [`patch_manifests`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patched {
    /// The manifest after patching (every document, in order).
    pub yaml: String,
    /// How many webhooks call the Service.
    pub webhooks: usize,
    /// How many CRDs convert their versions through the Service.
    pub conversions: usize,
    /// How many serving Secrets were found (0 or 1 in a sane manifest).
    pub secrets: usize,
    /// Whether any value differed.
    pub changed: bool,
}

/// What [`patch_manifests`] writes into a manifest.
#[derive(Clone, Copy, Debug)]
pub struct Install<'a> {
    /// The webhook Service; webhooks calling it get the `caBundle`.
    pub service: &'a ServiceName,
    /// Name of the serving Secret (in the Service's namespace) to fill.
    pub secret_name: &'a str,
    /// The certificates.
    pub material: &'a Material,
}

/// Fills a multi-document manifest (e.g. `deploy/portcullis.yaml` or a `helm template` of the
/// chart) with the certificates: `clientConfig.caBundle` of every webhook in the Mutating- and
/// ValidatingWebhookConfigurations and of every CRD's conversion webhook that calls
/// `install.service`, and `tls.crt`, `tls.key`, `ca.crt` of the Secret `install.secret_name` in the
/// Service's namespace. Everything else passes unchanged, except that comments are not kept and a
/// YAML 1.1 octal such as `defaultMode: 0440` comes out as the string `'0440'`. A manifest with
/// neither, or whose webhooks all call other Services, is an error: the wrong file or `--service`
/// was given.
pub fn patch_manifests(what: &str, yaml: &str, install: Install<'_>) -> Result<Patched, CertError> {
    let bad = |reason: String| CertError::Manifest {
        what: what.to_string(),
        reason,
    };
    let service = install.service;
    let material = install.material;
    let bundle =
        base64::engine::general_purpose::STANDARD.encode(material.ca_bundle_pem.as_bytes());
    let mut out = Vec::new();
    let (mut webhooks, mut conversions, mut secrets, mut changed) = (0, 0, 0, false);
    // Services the manifest's webhooks call, for the error when none is ours.
    let mut called: Vec<String> = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let mut doc =
            Value::deserialize(de).map_err(|e| bad(format!("document {}: {e}", i + 1)))?;
        if doc.is_null() {
            continue;
        }
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let namespace = doc
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if api_version.starts_with("admissionregistration.k8s.io/")
            && matches!(
                kind.as_str(),
                "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration"
            )
            && let Some(list) = doc.get_mut("webhooks").and_then(Value::as_sequence_mut)
        {
            for hook in list {
                if let Some(cc) = hook.get_mut("clientConfig").and_then(Value::as_mapping_mut) {
                    match fill_client_config(cc, service, &bundle) {
                        Ok(c) => {
                            webhooks += 1;
                            changed |= c;
                        }
                        Err(other) => called.push(other),
                    }
                }
            }
        } else if api_version == "apiextensions.k8s.io/v1"
            && kind == "CustomResourceDefinition"
            && let Some(cc) = doc
                .get_mut("spec")
                .and_then(|s| s.get_mut("conversion"))
                .and_then(|c| c.get_mut("webhook"))
                .and_then(|w| w.get_mut("clientConfig"))
                .and_then(Value::as_mapping_mut)
        {
            // A CRD converting through another Service is someone else's; left as it is.
            if let Ok(c) = fill_client_config(cc, service, &bundle) {
                conversions += 1;
                changed |= c;
            }
        } else if api_version == "v1"
            && kind == "Secret"
            && name == install.secret_name
            && namespace == service.namespace()
            && let Some(secret) = doc.as_mapping_mut()
        {
            secrets += 1;
            // stringData would override data when the API server merges them.
            if let Some(Value::Mapping(sd)) = secret.get_mut("stringData") {
                for key in ["tls.crt", "tls.key", "ca.crt"] {
                    changed |= sd.remove(key).is_some();
                }
            }
            let data = secret
                .entry("data".into())
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !data.is_mapping() {
                *data = Value::Mapping(Mapping::new());
                changed = true;
            }
            if let Some(data) = data.as_mapping_mut() {
                let enc = |t: &str| base64::engine::general_purpose::STANDARD.encode(t.as_bytes());
                changed |= set_string(data, "tls.crt", &enc(&material.cert_pem));
                changed |= set_string(data, "tls.key", &enc(&material.key_pem));
                changed |= set_string(data, "ca.crt", &bundle);
            }
        }
        out.push(serde_yaml::to_string(&doc).map_err(|e| bad(e.to_string()))?);
    }
    if webhooks == 0 && conversions == 0 && !called.is_empty() {
        called.sort();
        called.dedup();
        return Err(bad(format!(
            "no webhook calls service {} in namespace {}; the webhooks here call {}",
            service.service(),
            service.namespace(),
            called.join(", ")
        )));
    }
    if webhooks == 0 && conversions == 0 && secrets == 0 {
        return Err(bad(format!(
            "nothing to fill: no webhook calls service {svc} in namespace {ns}, and there is no Secret {secret} in {ns}",
            svc = service.service(),
            ns = service.namespace(),
            secret = install.secret_name,
        )));
    }
    Ok(Patched {
        yaml: out.join("---\n"),
        webhooks,
        conversions,
        secrets,
        changed,
    })
}

/// Sets `caBundle` of a webhook client config that calls `service`; returns whether it changed,
/// or `Err("name.namespace")` of the Service it calls instead.
fn fill_client_config(
    cc: &mut Mapping,
    service: &ServiceName,
    bundle: &str,
) -> Result<bool, String> {
    let svc = cc.get("service");
    let svc_name = svc.and_then(|s| s.get("name")).and_then(Value::as_str);
    let svc_ns = svc.and_then(|s| s.get("namespace")).and_then(Value::as_str);
    if svc_name != Some(service.service()) || svc_ns != Some(service.namespace()) {
        return Err(format!(
            "{}.{}",
            svc_name.unwrap_or("(url)"),
            svc_ns.unwrap_or_default()
        ));
    }
    Ok(set_string(cc, "caBundle", bundle))
}

/// Sets `key` to `value`; returns whether it was different.
fn set_string(map: &mut Mapping, key: &str, value: &str) -> bool {
    if map.get(key).and_then(Value::as_str) == Some(value) {
        return false;
    }
    map.insert(key.into(), Value::String(value.to_string()));
    true
}
