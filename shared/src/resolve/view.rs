//! The few fields of pods, pod templates and workloads that resolution reads, deserialisable
//! straight from the raw admission JSON (unknown fields are ignored, `null` reads as absent).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Labels and annotations of an object; everything else in `metadata` is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ObjectMetaView {
    /// `metadata.labels`; absent = empty.
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`; absent = empty.
    #[serde(deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
}

/// A container as far as version derivation (B §1.5) looks at it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContainerView {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// Image reference; absent (allowed in templates) = empty.
    #[serde(deserialize_with = "null_as_default")]
    pub image: String,
    /// `env` entries in order.
    #[serde(deserialize_with = "null_as_default")]
    pub env: Vec<EnvVarView>,
}

/// An environment variable; `valueFrom` is ignored and an absent `value` reads as empty, as in Keptn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct EnvVarView {
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    /// `value`; empty when absent or given through `valueFrom`.
    #[serde(deserialize_with = "null_as_default")]
    pub value: String,
}

/// A pod or a pod template (`spec.template` of a Deployment, StatefulSet or DaemonSet): both have
/// the shape `{metadata, spec: {containers}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PodView {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMetaView,
    #[serde(deserialize_with = "null_as_default")]
    pub spec: PodSpecView,
}

/// The containers of a pod spec; init and ephemeral containers play no part in resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PodSpecView {
    /// `spec.containers` in order.
    #[serde(deserialize_with = "null_as_default")]
    pub containers: Vec<ContainerView>,
}

/// A Deployment, StatefulSet or DaemonSet: its own metadata (the parent of A7) and its pod template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WorkloadView {
    #[serde(deserialize_with = "null_as_default")]
    pub metadata: ObjectMetaView,
    #[serde(deserialize_with = "null_as_default")]
    pub spec: WorkloadSpecView,
}

/// The pod template of a workload spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WorkloadSpecView {
    /// `spec.template`.
    #[serde(deserialize_with = "null_as_default")]
    pub template: PodView,
}

/// `null` is how some clients write an empty map or list; treat it like an absent field.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_reads_raw_pod_json_ignoring_other_fields() {
        let pod: PodView = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "namespace": "ns",
                "labels": {"app.kubernetes.io/name": "w"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "rs"}]
            },
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{
                    "name": "c",
                    "image": "nginx:1.25",
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                    ]
                }]
            }
        }))
        .unwrap();
        assert_eq!(
            pod.metadata.labels.get("app.kubernetes.io/name").unwrap(),
            "w"
        );
        assert!(pod.metadata.annotations.is_empty());
        assert_eq!(pod.spec.containers.len(), 1);
        let c = &pod.spec.containers[0];
        assert_eq!((c.name.as_str(), c.image.as_str()), ("c", "nginx:1.25"));
        assert_eq!(c.env[1].name, "B");
        assert_eq!(
            c.env[1].value, "",
            "valueFrom is ignored, the value reads as empty"
        );
    }

    #[test]
    fn view_treats_null_as_absent() {
        let meta: ObjectMetaView =
            serde_json::from_value(serde_json::json!({"labels": null, "annotations": {"a": "b"}}))
                .unwrap();
        assert!(meta.labels.is_empty());
        assert_eq!(meta.annotations.get("a").unwrap(), "b");
        let c: ContainerView =
            serde_json::from_value(serde_json::json!({"name": "c", "env": null})).unwrap();
        assert_eq!(c.image, "");
        assert!(c.env.is_empty());
    }

    #[test]
    fn view_reads_deployment_metadata_and_template() {
        let d: WorkloadView = serde_json::from_value(serde_json::json!({
            "kind": "Deployment",
            "metadata": {"name": "d", "annotations": {"keptn.sh/workload": "w"}},
            "spec": {
                "replicas": 2,
                "template": {
                    "metadata": {"labels": {"app": "x"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}
                }
            }
        }))
        .unwrap();
        assert_eq!(
            d.metadata.annotations.get("keptn.sh/workload").unwrap(),
            "w"
        );
        assert_eq!(d.spec.template.metadata.labels.get("app").unwrap(), "x");
        assert_eq!(d.spec.template.spec.containers[0].image, "i");
    }
}
