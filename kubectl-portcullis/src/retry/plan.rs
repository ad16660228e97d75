//! What `retry` changes, decided from plain objects. Pure.
//!
//! - An app: its `spec.revision` goes up by one. The KeptnApp controller names a KeptnAppVersion
//!   after the app's name, version and generation ([`shared::resolve::kav_name`]); the revision
//!   change bumps the generation, so a new KeptnAppVersion runs the app's checks, and the old
//!   revisions of the same version are deprecated ([`lifecycle::versions::plan_app`]).
//! - A workload: its current KeptnWorkloadVersion, when Failed, is deleted. The KeptnWorkload
//!   controller creates a missing version again under the same name
//!   ([`lifecycle::versions::plan_workload`] with no existing version), with a new uid, so its
//!   KeptnTasks and KeptnEvaluations get new names (A15 derives them from the owner's uid) and run
//!   again; the pods find it by name and wait for it.

use serde::Serialize;
use shared::crd::{KeptnApp, KeptnState, KeptnWorkload, KeptnWorkloadVersion};
use shared::resolve::{kav_name, workload_name};

use lifecycle::phase::{Stage, VersionStatus};
use lifecycle::versions::{WorkloadPlan, plan_workload, workload_version_name};

/// The annotation `retry workload` sets on the KeptnWorkload (an RFC 3339 time) so that its
/// controller reconciles it once the deleted version is gone: the gate's shared watch streams
/// pass on changes of versions, not their deletion.
pub const RETRIED_AT: &str = "portcullis.dev/retried-at";

/// A planned revision bump.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRetry {
    pub namespace: String,
    pub app: String,
    pub version: String,
    pub old_revision: i64,
    pub new_revision: i64,
    /// The KeptnAppVersion the app is at now (its current generation).
    pub previous_app_version: String,
    /// The KeptnAppVersion the new revision leads to, assuming the generation goes up by one
    /// (the patch response tells the real one).
    pub next_app_version: String,
}

/// The revision bump of `app`.
pub fn plan_app_retry(app: &KeptnApp) -> AppRetry {
    let name = app.metadata.name.clone().unwrap_or_default();
    let generation = app.metadata.generation.unwrap_or(1);
    AppRetry {
        namespace: app.metadata.namespace.clone().unwrap_or_default(),
        previous_app_version: kav_name(&name, &app.spec.version, generation),
        next_app_version: kav_name(&name, &app.spec.version, generation + 1),
        version: app.spec.version.clone(),
        old_revision: app.spec.revision,
        new_revision: app.spec.revision + 1,
        app: name,
    }
}

/// The merge patch of the bump, preconditioned on the resourceVersion that was read: a
/// concurrent change makes it fail (409) instead of skipping or doubling a revision.
pub fn app_patch(app: &KeptnApp, retry: &AppRetry) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"resourceVersion": app.metadata.resource_version},
        "spec": {"revision": retry.new_revision},
    })
}

/// The KeptnWorkload `query` names: its full name (`<app>-<workload>`), or the workload as
/// annotated (`keptn.sh/workload`) when exactly one app has it (or the one `app` names).
pub fn resolve_workload<'a>(
    query: &str,
    app: Option<&str>,
    workloads: &'a [KeptnWorkload],
) -> Result<&'a KeptnWorkload, String> {
    let named = |n: &str| {
        workloads
            .iter()
            .find(|w| w.metadata.name.as_deref() == Some(n))
    };
    if let Some(app) = app {
        return named(&workload_name(app, query))
            .or_else(|| named(query).filter(|w| w.spec.app == app))
            .ok_or_else(|| format!("no KeptnWorkload of app {app} named {query}"));
    }
    if let Some(w) = named(query) {
        return Ok(w);
    }
    let candidates: Vec<&KeptnWorkload> = workloads
        .iter()
        .filter(|w| w.metadata.name.as_deref() == Some(workload_name(&w.spec.app, query).as_str()))
        .collect();
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("no KeptnWorkload named {query}")),
        many => Err(format!(
            "{query} is a workload of several apps; name the KeptnWorkload ({}) or give --app",
            many.iter()
                .filter_map(|w| w.metadata.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A planned deletion of a failed workload version.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRetry {
    pub namespace: String,
    /// The KeptnWorkload.
    pub workload: String,
    pub version: String,
    /// The KeptnWorkloadVersion deleted (and re-created under the same name).
    pub workload_version: String,
    /// Its uid: the delete is preconditioned on it.
    pub uid: String,
    /// The phase it failed in.
    pub failed_phase: String,
    /// `KeptnTask <name> ('<definition>')` / `KeptnEvaluation ...` that failed.
    pub failed_checks: Vec<String>,
}

/// Whether `kwv`, the current version of `workload`, can be retried: it must exist, be Failed,
/// and the KeptnWorkload controller must create it again once it is gone.
pub fn plan_workload_retry(
    workload: &KeptnWorkload,
    kwv: Option<&KeptnWorkloadVersion>,
) -> Result<WorkloadRetry, String> {
    let name = workload_version_name(workload);
    let wl = workload.metadata.name.clone().unwrap_or_default();
    let Some(kwv) = kwv else {
        return Err(format!(
            "nothing to retry: KeptnWorkloadVersion {name} (KeptnWorkload {wl} at version {}) does not exist",
            workload.spec.version
        ));
    };
    let status = kwv.status.clone().unwrap_or_default();
    if status.status != KeptnState::Failed {
        let phase = if status.current_phase.is_empty() {
            "not started".to_owned()
        } else {
            format!("phase {}", status.current_phase)
        };
        let what = match status.status {
            KeptnState::Succeeded => "it passed",
            KeptnState::Progressing => "its checks are still running",
            _ => "it has not failed",
        };
        return Err(format!(
            "nothing to retry: KeptnWorkloadVersion {name} is {} ({phase}), {what}; only a Failed workload version is retried",
            status.status
        ));
    }
    match plan_workload(workload, None) {
        WorkloadPlan::Create(next) if next.metadata.name.as_deref() == Some(name.as_str()) => {}
        WorkloadPlan::AwaitPods => {
            return Err(format!(
                "KeptnWorkload {wl} names its Deployment, not a ReplicaSet: the gate would not re-create {name} until a new pod arrives; roll out a new version instead"
            ));
        }
        other => {
            return Err(format!(
                "the KeptnWorkload controller would not re-create {name} ({other:?}); roll out a new version instead"
            ));
        }
    }
    let uid = kwv
        .metadata
        .uid
        .clone()
        .ok_or_else(|| format!("KeptnWorkloadVersion {name} has no uid"))?;
    let mut failed_checks = Vec::new();
    for (stage, kind) in [
        (Stage::PreDeployTasks, "KeptnTask"),
        (Stage::PreDeployEvaluations, "KeptnEvaluation"),
        (Stage::PostDeployTasks, "KeptnTask"),
        (Stage::PostDeployEvaluations, "KeptnEvaluation"),
    ] {
        for item in status
            .items(stage)
            .iter()
            .filter(|i| i.status == KeptnState::Failed)
        {
            failed_checks.push(format!("{kind} {} ('{}')", item.name, item.definition_name));
        }
    }
    Ok(WorkloadRetry {
        namespace: workload.metadata.namespace.clone().unwrap_or_default(),
        workload: wl,
        version: workload.spec.version.clone(),
        workload_version: name,
        uid,
        failed_phase: status.current_phase.clone(),
        failed_checks,
    })
}

/// The merge patch that makes the KeptnWorkload controller reconcile the workload.
pub fn nudge_patch(at: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {RETRIED_AT: at}}})
}

#[cfg(test)]
mod tests;
