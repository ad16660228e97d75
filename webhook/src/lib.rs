//! Portcullis admission webhook (SPEC A1–A10, A22, B §1): gates pods of annotated workloads,
//! creates their KeptnWorkloads and KeptnAppCreationRequests, validates KeptnTaskDefinitions,
//! converts the older `lifecycle.keptn.sh` versions ([`conversion`], A24).
//!
//! A pure core decides from an AdmissionRequest and a [`snapshot::Snapshot`] of the watch caches
//! ([`pods`], [`workloads`], [`taskdefinition`], [`desired`], [`patch`]); a thin shell serves
//! HTTPS ([`server`], [`tls`]), keeps the caches ([`caches`]) and carries out the writes
//! ([`cluster`]).
//!
//! Decisions where the specification leaves room:
//! - Events are reported by the controller `portcullis-webhook` (instance: `POD_NAME`), attached
//!   to the KeptnWorkload or KeptnAppCreationRequest whose write failed, with Keptn's reasons
//!   (`CreateWorkloadFailed`, `UpdateWorkloadFailed`, `CreateAppCreationRequestFailed`).
//! - Objects missing from the caches are read directly, at most once each per review: the
//!   Namespace, the pod's ReplicaSet (A5) and the annotated parent. On a warm cache only the
//!   ReplicaSet of a brand-new rollout is ever missing.
//! - Pods whose ReplicaSet belongs to an Argo Rollout are treated as not annotated through the
//!   parent (Rollouts are not cached); a Rollout pod annotated itself is handled normally.
//! - A pod whose own `keptn.sh/container` names no container is rejected (Keptn would create a
//!   KeptnWorkload with an empty version); on the parent path it is admitted untouched, as Keptn.
//! - A workload's admission creates the KeptnWorkload pointing at the workload itself; when the
//!   KeptnWorkload already exists, its reference and owner are left for the pods to update.
//! - A KeptnAppCreationRequest is not created when one is pending or the KeptnApp already lists
//!   the workload at this version (or is user-defined): Keptn would create one that the
//!   controller deletes again without effect, so only the API call is saved (A10).
//! - Reinvocation: a pod that already carries the gate and the stamp is admitted unchanged.

pub mod conversion;
pub mod decision;
pub mod desired;
pub mod namespaces;
pub mod patch;
pub mod pods;
pub mod review;
pub mod snapshot;
pub mod taskdefinition;
pub mod workloads;

pub mod caches;
pub mod certificates;
pub mod cli;
pub mod cluster;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod metrics;
pub mod run;
pub mod server;
#[cfg(feature = "fixtures")]
pub mod strategies;
pub mod tls;

#[cfg(test)]
mod core_tests;
