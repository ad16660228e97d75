//! The Job of a KeptnTask (B §5.4 with A15, A20).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{LocalObjectReference, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use shared::checks::check_suffix;
use shared::crd::{KeptnTask, KeptnTaskDefinition};
use shared::resolve::job_name;

use super::CheckError;
use super::runtime::{function_container, user_container};

pub use super::runtime::{FUNCTION_CONTAINER, FUNCTION_VOLUME};

/// Job annotation keys Keptn adds (the pod template does not get them).
const APP_ANNOTATION: &str = "keptn.sh/app";
const VERSION_ANNOTATION: &str = "keptn.sh/version";
const WORKLOAD_ANNOTATION: &str = "keptn.sh/workload";
const TASK_NAME_ANNOTATION: &str = "keptn.sh/task-name";

/// A15: the Job suffix of a task, derived from the task's uid and its definition name, so that
/// every reconcile (and every restarted gate) computes the same Job name.
pub fn job_suffix(task: &KeptnTask) -> Result<u32, CheckError> {
    let uid = task.metadata.uid.as_deref().ok_or(CheckError::Metadata {
        kind: "KeptnTask",
        field: "uid",
    })?;
    Ok(check_suffix(uid, &task.spec.task_definition, 0))
}

/// `CRN(taskName, suffix)` for a task (B §1.6 with A15).
pub fn job_name_for(task: &KeptnTask) -> Result<String, CheckError> {
    Ok(job_name(task_name_of(task)?, job_suffix(task)?))
}

fn task_name_of(task: &KeptnTask) -> Result<&str, CheckError> {
    task.metadata.name.as_deref().ok_or(CheckError::Metadata {
        kind: "KeptnTask",
        field: "name",
    })
}

/// `KEPTN_CONTEXT`: the task context as JSON with Keptn's key order (`workloadName`, `appName`,
/// `appVersion`, `workloadVersion`, `taskType`, `objectType`, then `metadata` when non-empty).
pub fn keptn_context_json(task: &KeptnTask) -> Result<String, CheckError> {
    // The field order of `TaskContext` is Keptn's order, and an empty metadata map is skipped.
    Ok(super::go_json(&task.spec.context)?)
}

/// Builds the Job that runs `task` (B §5.4–§5.6): `definition` is the task's
/// KeptnTaskDefinition, `parent` the definition its `functionRef` names (when it has one), and
/// `suffix` the Job name suffix ([`job_suffix`]).
pub fn build_job(
    task: &KeptnTask,
    definition: &KeptnTaskDefinition,
    parent: Option<&KeptnTaskDefinition>,
    images: &super::RunnerImages,
    suffix: u32,
) -> Result<Job, CheckError> {
    let task_name = task_name_of(task)?;
    let namespace = task
        .metadata
        .namespace
        .clone()
        .ok_or(CheckError::Metadata {
            kind: "KeptnTask",
            field: "namespace",
        })?;
    let owner = super::controller_ref(task).ok_or(CheckError::Metadata {
        kind: "KeptnTask",
        field: "uid",
    })?;
    let timeout = task
        .spec
        .timeout
        .to_std()
        .map_err(|source| CheckError::Duration {
            field: "spec.timeout",
            source,
        })?;
    // Whole seconds, truncated as Keptn does: a sub-second timeout gives a deadline of 0, which
    // the API server accepts and which fails the Job at once (DeadlineExceeded).
    let deadline = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);

    let context_json = keptn_context_json(task)?;
    let (container, volume) = match &definition.spec.container {
        Some(user) => user_container(user, context_json),
        None => function_container(task, definition, parent, images, context_json)?,
    };

    let context = &task.spec.context;
    let mut annotations = task.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(APP_ANNOTATION.into(), context.app_name.clone());
    if context.workload_name.is_empty() {
        annotations.insert(VERSION_ANNOTATION.into(), context.app_version.clone());
    } else {
        annotations.insert(WORKLOAD_ANNOTATION.into(), context.workload_name.clone());
        annotations.insert(VERSION_ANNOTATION.into(), context.workload_version.clone());
    }
    annotations.insert(TASK_NAME_ANNOTATION.into(), task_name.to_owned());

    let spec = &definition.spec;
    let image_pull_secrets: Vec<LocalObjectReference> = spec
        .image_pull_secrets
        .iter()
        .map(|s| LocalObjectReference {
            name: s.name.clone(),
        })
        .collect();
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(task_name, suffix)),
            namespace: Some(namespace),
            labels: non_empty(task.metadata.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(task.spec.retries),
            active_deadline_seconds: Some(deadline),
            ttl_seconds_after_finished: Some(spec.ttl_seconds_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: non_empty(task.metadata.labels.clone()),
                    annotations: non_empty(task.metadata.annotations.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("OnFailure".into()),
                    service_account_name: spec.service_account.as_ref().map(|s| s.name.clone()),
                    automount_service_account_token: spec
                        .automount_service_account_token
                        .as_ref()
                        .map(|a| a.type_),
                    image_pull_secrets: (!image_pull_secrets.is_empty())
                        .then_some(image_pull_secrets),
                    containers: vec![container],
                    volumes: volume.map(|v| vec![v]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    })
}

fn non_empty(map: Option<BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    map.filter(|m| !m.is_empty())
}
