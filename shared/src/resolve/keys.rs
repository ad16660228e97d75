//! Metadata keys read and written by the webhook (B §1.4, §1.9, A8, A13).

/// Workload name (primary key).
pub const WORKLOAD: &str = "keptn.sh/workload";
/// Workload name (Kubernetes recommended label, secondary).
pub const K8S_NAME: &str = "app.kubernetes.io/name";
/// Version (primary key).
pub const VERSION: &str = "keptn.sh/version";
/// Version (Kubernetes recommended label, secondary).
pub const K8S_VERSION: &str = "app.kubernetes.io/version";
/// Application name (primary key).
pub const APP: &str = "keptn.sh/app";
/// Application name (Kubernetes recommended label, secondary).
pub const K8S_PART_OF: &str = "app.kubernetes.io/part-of";
/// Name of the container whose image tag is the version.
pub const CONTAINER: &str = "keptn.sh/container";
/// Comma-separated pre-deployment task definition names.
pub const PRE_DEPLOYMENT_TASKS: &str = "keptn.sh/pre-deployment-tasks";
/// Comma-separated post-deployment task definition names.
pub const POST_DEPLOYMENT_TASKS: &str = "keptn.sh/post-deployment-tasks";
/// Comma-separated pre-deployment evaluation definition names.
pub const PRE_DEPLOYMENT_EVALUATIONS: &str = "keptn.sh/pre-deployment-evaluations";
/// Comma-separated post-deployment evaluation definition names.
pub const POST_DEPLOYMENT_EVALUATIONS: &str = "keptn.sh/post-deployment-evaluations";
/// Comma-separated `key=value` pairs handed to tasks as context metadata.
pub const METADATA: &str = "keptn.sh/metadata";
/// Marker set when the scheduling gate was removed; such pods are never gated again. Stated in
/// the gate contract, [`crate::gate::REMOVED_MARKER`]; listed here with the other keys.
pub use crate::gate::REMOVED_MARKER as SCHEDULING_GATE_REMOVED;
/// Annotation on the KeptnAppCreationRequest (and KeptnApp) marking a single-service app.
pub const APP_TYPE: &str = "keptn.sh/app-type";
