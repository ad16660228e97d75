//! Deployment detection of the `WorkloadDeploy` phase (B §3.9.1). Pure over k8s-openapi types.

use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};

/// What the deployment phase sees of the KWV's `spec.resourceReference`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The referenced object was found; `true` when it counts as running.
    Running(bool),
    /// The reference still names the Deployment/StatefulSet/DaemonSet itself, as the workload
    /// admission writes it before the first pod (A7); the first pod's admission replaces it.
    Placeholder,
    /// A kind Keptn cannot observe (B §3.9.1: "unsupported Resource Reference").
    Unsupported(String),
    /// The object is not there (yet); the message says what was looked for.
    Missing(String),
}

/// A ReplicaSet not owned by an Argo Rollout runs when `spec.replicas == status.availableReplicas`.
pub fn replicaset_running(rs: &ReplicaSet) -> bool {
    let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    want == available
}

/// The kind/name of a ReplicaSet's Argo Rollout owner, if it has one.
pub fn rollout_owner(rs: &ReplicaSet) -> Option<String> {
    rs.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "Rollout")
        .map(|o| o.name.clone())
}

/// An Argo Rollout runs when `status.replicas == status.updatedReplicas` and `status.phase` is
/// `Healthy`.
pub fn rollout_running(rollout: &serde_json::Value) -> bool {
    let status = &rollout["status"];
    let replicas = status["replicas"].as_i64().unwrap_or(0);
    let updated = status["updatedReplicas"].as_i64().unwrap_or(0);
    replicas == updated && status["phase"].as_str() == Some("Healthy")
}

/// A StatefulSet runs when `spec.replicas == status.availableReplicas`.
pub fn statefulset_running(sts: &StatefulSet) -> bool {
    let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = sts
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    want == available
}

/// A DaemonSet runs when `desiredNumberScheduled == numberReady` (0 == 0 counts, as in Keptn).
pub fn daemonset_running(ds: &DaemonSet) -> bool {
    ds.status
        .as_ref()
        .is_none_or(|s| s.desired_number_scheduled == s.number_ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DaemonSetStatus, ReplicaSetSpec, ReplicaSetStatus, StatefulSetSpec, StatefulSetStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use serde_json::json;

    fn rs(replicas: Option<i32>, available: Option<i32>) -> ReplicaSet {
        ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas,
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                available_replicas: available,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn replicaset_rows() {
        assert!(replicaset_running(&rs(Some(2), Some(2))));
        assert!(!replicaset_running(&rs(Some(2), Some(1))));
        assert!(!replicaset_running(&rs(Some(1), None)), "no available yet");
        assert!(replicaset_running(&rs(Some(0), None)), "scaled to zero");
        assert!(replicaset_running(&rs(None, Some(1))), "replicas default 1");
    }

    #[test]
    fn rollout_owner_and_rollout_rows() {
        let mut r = rs(Some(1), Some(1));
        assert_eq!(rollout_owner(&r), None);
        r.metadata.owner_references = Some(vec![OwnerReference {
            kind: "Rollout".into(),
            name: "ro".into(),
            api_version: "argoproj.io/v1alpha1".into(),
            uid: "u".into(),
            ..Default::default()
        }]);
        assert_eq!(rollout_owner(&r).as_deref(), Some("ro"));
        let healthy = json!({"status": {"replicas": 3, "updatedReplicas": 3, "phase": "Healthy"}});
        let progressing =
            json!({"status": {"replicas": 3, "updatedReplicas": 3, "phase": "Progressing"}});
        let partial = json!({"status": {"replicas": 3, "updatedReplicas": 2, "phase": "Healthy"}});
        assert!(rollout_running(&healthy));
        assert!(!rollout_running(&progressing));
        assert!(!rollout_running(&partial));
        assert!(!rollout_running(&json!({})));
    }

    #[test]
    fn statefulset_rows() {
        let sts = |want, avail| StatefulSet {
            spec: Some(StatefulSetSpec {
                replicas: want,
                ..Default::default()
            }),
            status: Some(StatefulSetStatus {
                available_replicas: avail,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(statefulset_running(&sts(Some(3), Some(3))));
        assert!(!statefulset_running(&sts(Some(3), Some(2))));
        assert!(!statefulset_running(&sts(None, Some(0))));
    }

    #[test]
    fn daemonset_rows() {
        let ds = |desired, ready| DaemonSet {
            status: Some(DaemonSetStatus {
                desired_number_scheduled: desired,
                number_ready: ready,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(daemonset_running(&ds(2, 2)));
        assert!(!daemonset_running(&ds(2, 1)));
        assert!(
            daemonset_running(&ds(0, 0)),
            "0 == 0 right after creation counts"
        );
        assert!(daemonset_running(&DaemonSet::default()));
    }
}
