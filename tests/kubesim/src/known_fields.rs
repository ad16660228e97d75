//! Unknown and mistyped fields of built-in kinds, found the way the API server's decoder finds
//! them: the object is decoded into the typed API struct (k8s-openapi's, which drops unknown
//! fields) and encoded again; whatever did not survive is unknown (`fieldValidation`, F3).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::api::{admissionregistration, apps, batch, coordination, core, policy, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;

fn round_trip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The object after a decode/encode through its typed struct, `None` for kinds without one
/// (custom resources have their schema instead).
pub fn typed_round_trip(group: &str, kind: &str, obj: &Value) -> Option<Result<Value, String>> {
    let r = match (group, kind) {
        ("", "Namespace") => round_trip::<core::v1::Namespace>(obj),
        ("", "Pod") => round_trip::<core::v1::Pod>(obj),
        ("", "Node") => round_trip::<core::v1::Node>(obj),
        ("", "Service") => round_trip::<core::v1::Service>(obj),
        ("", "Endpoints") => round_trip::<core::v1::Endpoints>(obj),
        ("", "Secret") => round_trip::<core::v1::Secret>(obj),
        ("", "ConfigMap") => round_trip::<core::v1::ConfigMap>(obj),
        ("", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(obj),
        ("", "Event") | ("events.k8s.io", "Event") => round_trip::<core::v1::Event>(obj),
        ("", "ResourceQuota") => round_trip::<core::v1::ResourceQuota>(obj),
        ("", "LimitRange") => round_trip::<core::v1::LimitRange>(obj),
        ("apps", "Deployment") => round_trip::<apps::v1::Deployment>(obj),
        ("apps", "ReplicaSet") => round_trip::<apps::v1::ReplicaSet>(obj),
        ("apps", "StatefulSet") => round_trip::<apps::v1::StatefulSet>(obj),
        ("apps", "DaemonSet") => round_trip::<apps::v1::DaemonSet>(obj),
        ("apps", "ControllerRevision") => round_trip::<apps::v1::ControllerRevision>(obj),
        ("batch", "Job") => round_trip::<batch::v1::Job>(obj),
        ("batch", "CronJob") => round_trip::<batch::v1::CronJob>(obj),
        ("coordination.k8s.io", "Lease") => round_trip::<coordination::v1::Lease>(obj),
        ("policy", "PodDisruptionBudget") => round_trip::<policy::v1::PodDisruptionBudget>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => round_trip::<rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            round_trip::<rbac::v1::ClusterRoleBinding>(obj)
        }
        ("rbac.authorization.k8s.io", "Role") => round_trip::<rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => round_trip::<rbac::v1::RoleBinding>(obj),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            round_trip::<admissionregistration::v1::MutatingWebhookConfiguration>(obj)
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            round_trip::<admissionregistration::v1::ValidatingWebhookConfiguration>(obj)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            round_trip::<apiextensions::v1::CustomResourceDefinition>(obj)
        }
        _ => return None,
    };
    Some(r)
}

/// Remove from `obj` what is absent from `known` (null values aside); returns the removed paths
/// (`spec.containers[0].foo`).
pub fn drop_unknown(obj: &mut Value, known: &Value) -> Vec<String> {
    let mut removed = Vec::new();
    walk(obj, known, "", &mut removed);
    removed
}

fn walk(obj: &mut Value, known: &Value, prefix: &str, removed: &mut Vec<String>) {
    match (obj, known) {
        (Value::Object(o), Value::Object(k)) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for key in keys {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match k.get(&key) {
                    Some(kv) => {
                        if let Some(ov) = o.get_mut(&key) {
                            walk(ov, kv, &path, removed);
                        }
                    }
                    None => {
                        if o.get(&key).is_some_and(|v| !v.is_null()) {
                            removed.push(path);
                        }
                        o.remove(&key);
                    }
                }
            }
        }
        (Value::Array(o), Value::Array(k)) if o.len() == k.len() => {
            for (i, (ov, kv)) in o.iter_mut().zip(k).enumerate() {
                walk(ov, kv, &format!("{prefix}[{i}]"), removed);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_pod_fields_are_found_and_dropped() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "creationTimestamp": null},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePolicy": "x"}], "nodeName": "n", "bogus": 1}});
        let known = typed_round_trip("", "Pod", &pod).unwrap().unwrap();
        let removed = drop_unknown(&mut pod, &known);
        assert_eq!(
            removed,
            vec![
                "spec.bogus".to_string(),
                "spec.containers[0].imagePolicy".to_string()
            ]
        );
        assert_eq!(pod["spec"]["nodeName"], "n");
        assert!(pod["spec"].get("bogus").is_none());
    }

    #[test]
    fn mistyped_fields_fail_to_decode() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "three"}});
        assert!(typed_round_trip("apps", "Deployment", &d).unwrap().is_err());
    }
}
