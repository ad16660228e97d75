//! What `status` shows, computed from plain objects: an app's current KeptnAppVersion with its
//! phases, the KeptnWorkloadVersions of that version, their KeptnTasks and KeptnEvaluations, and
//! the pods still gated. Pure: the objects come in a [`Snapshot`], the clock as `now`. `why`
//! reuses the per-object pieces ([`task_report`], [`evaluation_report`], [`pod_workload_version`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use lifecycle::phase::{COMPLETED, Level, Phase, Stage};
use lifecycle::traces::{PhaseTraceIds, TRACESTATE};
use serde::Serialize;
use shared::crd::{
    KeptnApp, KeptnAppVersion, KeptnEvaluation, KeptnEvaluationDefinition, KeptnState, KeptnTask,
    KeptnWorkloadRef, KeptnWorkloadVersion,
};
use shared::gate::is_gated;
use shared::resolve::{ObjectMetaView, ResourceNames, create_resource_name, kav_name};

/// The objects `status` reads, of one namespace or of all.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub apps: Vec<KeptnApp>,
    pub app_versions: Vec<KeptnAppVersion>,
    pub workload_versions: Vec<KeptnWorkloadVersion>,
    pub tasks: Vec<KeptnTask>,
    pub evaluations: Vec<KeptnEvaluation>,
    pub evaluation_definitions: Vec<KeptnEvaluationDefinition>,
    pub pods: Vec<Pod>,
}

/// Every app shown, in namespace and name order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub apps: Vec<AppReport>,
}

/// One KeptnApp and its current rollout.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppReport {
    pub namespace: String,
    pub name: String,
    /// `spec.version`.
    pub version: String,
    /// `spec.revision`.
    pub revision: i64,
    /// `status.currentVersion` (empty until the KeptnApp controller wrote it).
    pub current_version: String,
    /// The current KeptnAppVersion; `None` while the gate has not created it.
    pub app_version: Option<VersionReport>,
    /// The workloads of the app version (of the KeptnApp while there is none).
    pub workloads: Vec<WorkloadReport>,
    /// KeptnTasks of the app version and of its workload versions.
    pub tasks: Vec<TaskReport>,
    /// KeptnEvaluations of the app version and of its workload versions.
    pub evaluations: Vec<EvaluationReport>,
    /// Pods of the app's workload versions that still carry the scheduling gate.
    pub gated_pods: Vec<GatedPodReport>,
}

/// A KeptnAppVersion or KeptnWorkloadVersion.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionReport {
    pub name: String,
    /// `status.status`.
    pub status: String,
    /// `status.currentPhase` (empty: not started).
    pub current_phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    pub phases: Vec<PhaseReport>,
}

/// One phase of a version.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseReport {
    /// Short name, as in `status.currentPhase` (`AppPreDeployTasks`, `WorkloadDeploy`, ...).
    pub phase: String,
    /// The stage's status field (`preDeploymentStatus`, `deploymentStatus`, ...).
    pub status: String,
    /// Whether it is the version's `currentPhase`.
    pub current: bool,
    /// How many tasks or evaluations it ran (`None` for a deployment phase).
    pub checks: Option<usize>,
    /// How many of them failed.
    pub failed_checks: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// End minus start, or now minus start while it runs; absent when the times are unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Started and not finished: `duration` counts up to now.
    pub running: bool,
}

/// A workload of the app version.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    /// The workload as the app lists it (`keptn.sh/workload`).
    pub workload: String,
    pub version: String,
    /// Name of its KeptnWorkloadVersion.
    pub workload_version_name: String,
    /// `None` while the KeptnWorkloadVersion does not exist.
    pub workload_version: Option<VersionReport>,
}

/// A KeptnTask.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskReport {
    /// The KeptnAppVersion or KeptnWorkloadVersion that owns it.
    pub owner: String,
    pub name: String,
    pub definition: String,
    /// `pre`, `post`, `promotion`.
    pub check_type: String,
    pub status: String,
    /// The Job running it (empty until created).
    pub job_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
}

/// A KeptnEvaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationReport {
    pub owner: String,
    pub name: String,
    pub definition: String,
    /// `pre-eval`, `post-eval`.
    pub check_type: String,
    /// `status.overallStatus`.
    pub status: String,
    pub retry_count: i64,
    pub retries: i64,
    pub objectives: Vec<ObjectiveReport>,
}

/// One objective of an evaluation: the metric's value compared and the target.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveReport {
    pub metric: String,
    /// The value compared (empty when there was none).
    pub value: String,
    /// `evaluationTarget` of the definition, e.g. `<1` (`None` when unknown).
    pub target: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A pod that still carries the gate.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatedPodReport {
    pub name: String,
    pub workload_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<String>,
}

/// The report of the apps of `snapshot`: all of them, or the one named `app`.
pub fn build(snapshot: &Snapshot, app: Option<&str>, now: Timestamp) -> StatusReport {
    let mut apps: Vec<&KeptnApp> = snapshot
        .apps
        .iter()
        .filter(|a| app.is_none_or(|n| a.metadata.name.as_deref() == Some(n)))
        .collect();
    apps.sort_by_key(|a| (a.metadata.namespace.clone(), a.metadata.name.clone()));
    StatusReport {
        apps: apps
            .into_iter()
            .map(|a| app_report(snapshot, a, now))
            .collect(),
    }
}

fn app_report(snapshot: &Snapshot, app: &KeptnApp, now: Timestamp) -> AppReport {
    let namespace = app.metadata.namespace.clone().unwrap_or_default();
    let name = app.metadata.name.clone().unwrap_or_default();
    let same_ns = |meta: &ObjectMeta| meta.namespace.as_deref() == Some(namespace.as_str());
    let kav = current_app_version(app, &snapshot.app_versions);
    let listed: &[KeptnWorkloadRef] = match kav {
        Some(k) => &k.spec.app.workloads,
        None => &app.spec.workloads,
    };
    let app_name = kav.map_or(name.as_str(), |k| k.spec.app_name.as_str());
    let mut owners: Vec<(String, String)> = Vec::new();
    if let Some(k) = kav {
        owners.push((
            k.metadata.uid.clone().unwrap_or_default(),
            k.metadata.name.clone().unwrap_or_default(),
        ));
    }
    let mut workloads = Vec::new();
    let mut kwv_names = Vec::new();
    for wl in listed {
        // The name the KeptnAppVersion's AppDeploy phase looks the workload version up by.
        let kwv_name = create_resource_name(&[app_name, &wl.name, &wl.version]);
        let kwv = snapshot
            .workload_versions
            .iter()
            .find(|k| same_ns(&k.metadata) && k.metadata.name.as_deref() == Some(&kwv_name));
        if let Some(k) = kwv {
            owners.push((k.metadata.uid.clone().unwrap_or_default(), kwv_name.clone()));
        }
        kwv_names.push(kwv_name.clone());
        workloads.push(WorkloadReport {
            workload: wl.name.clone(),
            version: wl.version.clone(),
            workload_version_name: kwv_name,
            workload_version: kwv.map(|k| workload_version_report(k, now)),
        });
    }
    let owner_of = |meta: &ObjectMeta| -> Option<String> {
        let refs = meta.owner_references.as_deref().unwrap_or_default();
        owners
            .iter()
            .find(|(uid, _)| !uid.is_empty() && refs.iter().any(|r| &r.uid == uid))
            .map(|(_, name)| name.clone())
    };
    let order = |owner: &str| owners.iter().position(|(_, n)| n == owner);
    let mut tasks: Vec<TaskReport> = snapshot
        .tasks
        .iter()
        .filter(|t| same_ns(&t.metadata))
        .filter_map(|t| owner_of(&t.metadata).map(|o| task_report(&o, t)))
        .collect();
    tasks.sort_by_key(|t| {
        (
            order(&t.owner),
            check_order(&t.check_type),
            t.start_time.clone(),
            t.name.clone(),
        )
    });
    let mut evaluations: Vec<EvaluationReport> = snapshot
        .evaluations
        .iter()
        .filter(|e| same_ns(&e.metadata))
        .filter_map(|e| {
            owner_of(&e.metadata)
                .map(|o| evaluation_report(&o, e, &snapshot.evaluation_definitions))
        })
        .collect();
    evaluations.sort_by_key(|e| (order(&e.owner), check_order(&e.check_type), e.name.clone()));
    let mut gated_pods: Vec<GatedPodReport> = snapshot
        .pods
        .iter()
        .filter(|p| same_ns(&p.metadata) && pod_gated(p))
        .filter_map(|p| {
            let kwv = pod_workload_version(p, &snapshot.workload_versions)?;
            let ours = kwv_names.contains(&kwv) || pod_app(p).as_deref() == Some(name.as_str());
            ours.then(|| {
                let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                GatedPodReport {
                    name: p.metadata.name.clone().unwrap_or_default(),
                    workload_version: kwv,
                    created: created.map(|t| t.to_string()),
                    age: created.map(|t| human(t, now)),
                }
            })
        })
        .collect();
    gated_pods.sort_by(|a, b| (&a.workload_version, &a.name).cmp(&(&b.workload_version, &b.name)));
    AppReport {
        namespace,
        version: app.spec.version.clone(),
        revision: app.spec.revision,
        current_version: app
            .status
            .as_ref()
            .map(|s| s.current_version.clone())
            .unwrap_or_default(),
        app_version: kav.map(|k| app_version_report(k, now)),
        workloads,
        tasks,
        evaluations,
        gated_pods,
        name,
    }
}

/// Lifecycle order of check types, for sorting.
fn check_order(check_type: &str) -> usize {
    ["pre", "pre-eval", "post", "post-eval", "promotion"]
        .iter()
        .position(|c| *c == check_type)
        .unwrap_or(usize::MAX)
}

/// The KeptnAppVersion an app is at: the one its spec (version and generation) names, as the
/// KeptnApp controller creates it; else the newest of `status.currentVersion`; else its newest.
pub fn current_app_version<'a>(
    app: &KeptnApp,
    app_versions: &'a [KeptnAppVersion],
) -> Option<&'a KeptnAppVersion> {
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let of_app: Vec<&KeptnAppVersion> = app_versions
        .iter()
        .filter(|k| k.metadata.namespace == app.metadata.namespace && k.spec.app_name == name)
        .collect();
    let wanted = kav_name(
        name,
        &app.spec.version,
        app.metadata.generation.unwrap_or(1),
    );
    let newest = |version: Option<&str>| {
        of_app
            .iter()
            .filter(|k| version.is_none_or(|v| k.spec.app.version == v))
            .max_by_key(|k| {
                (
                    k.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    k.metadata.name.clone(),
                )
            })
            .copied()
    };
    let status_version = app
        .status
        .as_ref()
        .map(|s| s.current_version.as_str())
        .filter(|v| !v.is_empty());
    of_app
        .iter()
        .find(|k| k.metadata.name.as_deref() == Some(wanted.as_str()))
        .copied()
        .or_else(|| status_version.and_then(|v| newest(Some(v))))
        .or_else(|| newest(None))
}

/// A KeptnAppVersion's phases and times.
pub fn app_version_report(kav: &KeptnAppVersion, now: Timestamp) -> VersionReport {
    let status = kav.status.clone().unwrap_or_default();
    // Promotion runs only where the gate enables it; show it once the version shows signs of it.
    let promotion = !kav.spec.context.promotion_tasks.is_empty()
        || status.current_phase == "PromotionTasks"
        || !matches!(
            status.promotion_status,
            KeptnState::Pending | KeptnState::Deprecated
        );
    let phases = Phase::sequence(Level::App, promotion);
    version_report(
        kav.metadata.name.clone().unwrap_or_default(),
        &status,
        &phases,
        None,
        now,
    )
}

/// A KeptnWorkloadVersion's phases and times.
pub fn workload_version_report(kwv: &KeptnWorkloadVersion, now: Timestamp) -> VersionReport {
    let status = kwv.status.clone().unwrap_or_default();
    let phases = Phase::sequence(Level::Workload, false);
    let deploy_start = status.deployment_start_time.as_ref().map(|t| t.0);
    version_report(
        kwv.metadata.name.clone().unwrap_or_default(),
        &status,
        &phases,
        deploy_start,
        now,
    )
}

fn version_report<S: PhaseTraceIds>(
    name: String,
    status: &S,
    phases: &[Phase],
    deploy_start: Option<Timestamp>,
    now: Timestamp,
) -> VersionReport {
    let start = status.start_time().map(|t| t.0);
    let end = status.end_time().map(|t| t.0);
    VersionReport {
        name,
        status: status.overall().to_string(),
        current_phase: status.current_phase().to_owned(),
        start_time: start.map(|t| t.to_string()),
        end_time: end.map(|t| t.to_string()),
        duration: start.map(|s| human(s, end.unwrap_or(now))),
        phases: phase_reports(status, phases, deploy_start, now),
    }
}

/// The start time a `phaseTraceIDs` entry carries in its `tracestate` (`portcullis=s:<ns>`),
/// written while tracing is on.
pub fn trace_start(carrier: Option<&BTreeMap<String, String>>) -> Option<Timestamp> {
    carrier?.get(TRACESTATE)?.split(',').find_map(|member| {
        let (key, value) = member.trim().split_once('=')?;
        let nanos: i128 = (key == "portcullis")
            .then_some(value)?
            .strip_prefix("s:")?
            .parse()
            .ok()?;
        Timestamp::from_nanosecond(nanos).ok()
    })
}

/// Each phase with its state, its checks and, where the status tells, when it started and
/// ended: from its `phaseTraceIDs` entry, its tasks' or evaluations' times, the deployment's
/// start, else from its neighbours (the end of the phase before it, the start of the phase after
/// it, the version's start and end), skipping phases that passed at once because they list no
/// checks.
pub fn phase_reports<S: PhaseTraceIds>(
    status: &S,
    phases: &[Phase],
    deploy_start: Option<Timestamp>,
    now: Timestamp,
) -> Vec<PhaseReport> {
    let current = status.current_phase();
    let entered = if current == COMPLETED {
        phases.len()
    } else {
        phases
            .iter()
            .position(|p| p.short_name() == current)
            .map_or(0, |i| i + 1)
    };
    let version_ended =
        current == COMPLETED || (*status.overall() == KeptnState::Failed && !current.is_empty());
    let state = |i: usize| status.stage_state(phases[i].stage);
    let finished =
        |i: usize| i < entered && (i + 1 < entered || state(i).is_completed() || version_ended);
    // A check phase that lists nothing passes in the reconcile that reaches it.
    let instant: Vec<bool> = (0..phases.len())
        .map(|i| {
            i < entered
                && phases[i].stage.check().is_some()
                && status.items(phases[i].stage).is_empty()
                && state(i).is_succeeded(false)
        })
        .collect();
    let own_start: Vec<Option<Timestamp>> = (0..phases.len())
        .map(|i| {
            let phase = phases[i];
            if i >= entered {
                return None;
            }
            trace_start(status.phase_trace_ids().get(phase.short_name()))
                .or_else(|| {
                    status
                        .items(phase.stage)
                        .iter()
                        .filter_map(|item| item_time(&item.start_time))
                        .min()
                })
                .or(if phase.stage == Stage::Deploy {
                    deploy_start
                } else {
                    None
                })
        })
        .collect();
    let own_end: Vec<Option<Timestamp>> = (0..phases.len())
        .map(|i| {
            let items = status.items(phases[i].stage);
            (finished(i) && !items.is_empty() && items.iter().all(|item| item.end_time.is_some()))
                .then(|| {
                    items
                        .iter()
                        .filter_map(|item| item_time(&item.end_time))
                        .max()
                })
                .flatten()
        })
        .collect();
    // The start of the first phase after `i` that took time, or the version's end.
    let next_start = |i: usize| {
        for j in i + 1..entered {
            if let Some(t) = own_start[j] {
                return Some(t);
            }
            if !instant[j] {
                return None;
            }
        }
        if version_ended {
            status.end_time().map(|t| t.0)
        } else {
            None
        }
    };
    // The end of the last phase before `i` that took time, or the version's start.
    let previous_end = |i: usize| {
        for k in (0..i).rev() {
            if instant[k] {
                continue;
            }
            return own_end[k].or_else(|| next_start(k).filter(|_| finished(k)));
        }
        status.start_time().map(|t| t.0)
    };
    (0..phases.len())
        .map(|i| {
            let phase = phases[i];
            let items = status.items(phase.stage);
            let start = if i < entered {
                own_start[i].or_else(|| previous_end(i))
            } else {
                None
            };
            let end = if instant[i] {
                start
            } else if finished(i) {
                own_end[i].or_else(|| next_start(i))
            } else {
                None
            };
            let running = i < entered && !finished(i) && start.is_some();
            let elapsed = if instant[i] {
                Some(std::time::Duration::ZERO)
            } else {
                start
                    .zip(if running { Some(now) } else { end })
                    .map(|(s, e)| non_negative(s, e))
            };
            let failed = items
                .iter()
                .filter(|item| item.status == KeptnState::Failed)
                .count();
            PhaseReport {
                phase: phase.short_name().to_owned(),
                status: state(i).to_string(),
                current: phase.short_name() == current,
                checks: phase.stage.check().map(|_| items.len()),
                failed_checks: failed,
                start_time: start.map(|t| t.to_string()),
                end_time: end.map(|t| t.to_string()),
                duration: elapsed.map(format_duration),
                duration_seconds: elapsed.map(|d| d.as_secs_f64()),
                running,
            }
        })
        .collect()
}

fn item_time(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

fn non_negative(from: Timestamp, to: Timestamp) -> std::time::Duration {
    std::time::Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// `to - from` as Go prints durations, to the second (`3s`, `1m12s`), or to the millisecond below
/// one second (`350ms`); negative spans read `0s`.
pub fn human(from: Timestamp, to: Timestamp) -> String {
    format_duration(non_negative(from, to))
}

fn format_duration(d: std::time::Duration) -> String {
    let d = if d.as_secs() >= 1 {
        std::time::Duration::from_secs(d.as_secs())
    } else {
        std::time::Duration::from_millis(d.as_millis() as u64)
    };
    shared::crd::format_go_duration(d)
}

/// A KeptnTask as a row.
pub fn task_report(owner: &str, task: &KeptnTask) -> TaskReport {
    let status = task.status.clone().unwrap_or_default();
    TaskReport {
        owner: owner.to_owned(),
        name: task.metadata.name.clone().unwrap_or_default(),
        definition: task.spec.task_definition.clone(),
        check_type: task.spec.check_type.clone(),
        status: status.status.to_string(),
        job_name: status.job_name,
        reason: status.reason,
        message: status.message,
        start_time: status.start_time.map(|t| t.0.to_string()),
        end_time: status.end_time.map(|t| t.0.to_string()),
    }
}

/// A KeptnEvaluation as a row: each objective with the value compared and the definition's
/// target (from `definitions` in the evaluation's namespace first, else from the message).
pub fn evaluation_report(
    owner: &str,
    evaluation: &KeptnEvaluation,
    definitions: &[KeptnEvaluationDefinition],
) -> EvaluationReport {
    let status = evaluation.status.clone().unwrap_or_default();
    let name = &evaluation.spec.evaluation_definition;
    let definition = definitions
        .iter()
        .filter(|d| d.metadata.name.as_deref() == Some(name.as_str()))
        .min_by_key(|d| d.metadata.namespace != evaluation.metadata.namespace);
    let target_of = |metric: &str| {
        definition.and_then(|d| {
            d.spec
                .objectives
                .iter()
                .find(|o| o.keptn_metric_ref.name == metric)
                .map(|o| o.evaluation_target.clone())
        })
    };
    let mut objectives: Vec<ObjectiveReport> = status
        .evaluation_status
        .iter()
        .map(|(metric, item)| ObjectiveReport {
            metric: metric.clone(),
            value: item.value.clone(),
            target: target_of(metric).or_else(|| target_in_message(&item.message)),
            status: item.status.to_string(),
            message: item.message.clone(),
        })
        .collect();
    // Objectives not attempted yet.
    for objective in definition
        .map(|d| d.spec.objectives.as_slice())
        .unwrap_or_default()
    {
        let metric = &objective.keptn_metric_ref.name;
        if !status.evaluation_status.contains_key(metric) {
            objectives.push(ObjectiveReport {
                metric: metric.clone(),
                value: String::new(),
                target: Some(objective.evaluation_target.clone()),
                status: KeptnState::Pending.to_string(),
                message: String::new(),
            });
        }
    }
    EvaluationReport {
        owner: owner.to_owned(),
        name: evaluation.metadata.name.clone().unwrap_or_default(),
        definition: name.clone(),
        check_type: evaluation.spec.check_type.clone(),
        status: status.overall_status.to_string(),
        retry_count: status.retry_count,
        retries: evaluation.spec.retries,
        objectives,
    }
}

/// The target quoted in an objective's message (`value '5' did not meet objective '<1'`).
fn target_in_message(message: &str) -> Option<String> {
    let rest = message.split("objective '").nth(1)?;
    rest.strip_suffix('\'').map(str::to_owned)
}

/// Whether the pod still carries the gate.
pub fn pod_gated(pod: &Pod) -> bool {
    is_gated(
        pod.spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .into_iter()
            .flatten()
            .map(|g| g.name.as_str()),
    )
}

/// The identity the webhook stamped on the pod (A8), as names.
pub fn pod_names(pod: &Pod) -> Option<ResourceNames> {
    let view = ObjectMetaView {
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
    };
    ResourceNames::from_stamp(&view).ok().flatten()
}

fn pod_app(pod: &Pod) -> Option<String> {
    pod_names(pod).map(|n| n.app_name)
}

/// The KeptnWorkloadVersion a pod belongs to, as the gate finds it: from the stamped identity,
/// else the version whose `resourceReference` uid is the pod's first owner.
pub fn pod_workload_version(
    pod: &Pod,
    workload_versions: &[KeptnWorkloadVersion],
) -> Option<String> {
    if let Some(names) = pod_names(pod) {
        return Some(names.workload_version_name);
    }
    let owner = pod.metadata.owner_references.as_ref()?.first()?.uid.clone();
    workload_versions
        .iter()
        .find(|k| {
            k.metadata.namespace == pod.metadata.namespace
                && k.spec.workload.resource_reference.uid == owner
        })
        .and_then(|k| k.metadata.name.clone())
}

#[cfg(test)]
pub(crate) mod tests;
