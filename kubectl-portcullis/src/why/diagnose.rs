//! Why a pod is held, or when it was released, from plain objects. Pure.
//!
//! The verdict is the gate's own: [`lifecycle::release::decide`] on the pod's
//! KeptnWorkloadVersion (found as the gate finds it: the stamped identity, else the owner) and
//! the KeptnAppVersion [`lifecycle::planner::find_app_version`] picks for it. This module only
//! explains the verdict: the phase, the failed or pending checks, missing definitions, a missing
//! app, and what to do about it (the README's troubleshooting table).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use lifecycle::phase::{Level, Phase, Stage, VersionStatus};
use lifecycle::planner::find_app_version;
use lifecycle::release::{Decision, decide};
use lifecycle::versions::{WorkloadPlan, plan_workload};
use serde::Serialize;
use shared::crd::{
    ItemStatus, KeptnApp, KeptnAppVersion, KeptnEvaluation, KeptnEvaluationDefinition, KeptnState,
    KeptnTask, KeptnWorkload, KeptnWorkloadVersion,
};
use shared::gate::{GATE, REMOVED_MARKER, is_marked_removed};

use crate::status::report::{
    EvaluationReport, TaskReport, evaluation_report, human, pod_gated, pod_names,
    pod_workload_version, task_report,
};

/// What `why` reads besides the pod: the objects of the pod's namespace (definitions also of the
/// install namespace), the Events about the pod, and the KeptnConfig's `blockDeployment`.
#[derive(Clone, Debug)]
pub struct World<'a> {
    pub workloads: &'a [KeptnWorkload],
    pub apps: &'a [KeptnApp],
    pub app_versions: &'a [KeptnAppVersion],
    pub workload_versions: &'a [KeptnWorkloadVersion],
    pub tasks: &'a [KeptnTask],
    pub evaluations: &'a [KeptnEvaluation],
    /// Names of the KeptnTaskDefinitions that resolve (pod namespace, then install namespace).
    pub task_definitions: &'a [String],
    /// KeptnEvaluationDefinitions of the pod namespace and the install namespace.
    pub evaluation_definitions: &'a [KeptnEvaluationDefinition],
    pub events: &'a [Event],
    pub blocking: bool,
    /// The install namespace, where definitions are looked up second.
    pub keptn_namespace: &'a str,
    pub now: Timestamp,
}

/// The pod's situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Gated, and a pre-deployment check failed: it stays gated until the checks run again.
    Held,
    /// Gated, waiting for checks that have not finished (or for objects that do not exist yet).
    Waiting,
    /// Gated, but its checks passed: the gate removes the gate now.
    Releasing,
    /// The gate removed the gate.
    Released,
    /// Managed (stamped), but never gated.
    NotGated,
    /// Not a pod of a Keptn workload.
    Unmanaged,
}

impl Verdict {
    /// The word shown (coloured by [`crate::output::Style::state`]).
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Held => "Held",
            Verdict::Waiting => "Waiting",
            Verdict::Releasing => "Releasing",
            Verdict::Released => "Released",
            Verdict::NotGated => "NotGated",
            Verdict::Unmanaged => "Unmanaged",
        }
    }
}

/// A version the pod depends on.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRef {
    pub name: String,
    /// `status.status`; `None` when the object does not exist.
    pub status: Option<String>,
    pub current_phase: String,
}

/// A definition named by the spec that does not resolve.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingDefinition {
    pub kind: String,
    pub name: String,
}

/// When and by whom the gate was removed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// Value of the removal marker annotation.
    pub marker: String,
    /// `managedFields` time of the entry owning the marker (written by the release patch).
    pub at: Option<String>,
    /// Who: that entry's field manager when it has a name; else the gate, the only writer of
    /// the marker.
    pub by: String,
    /// The field manager of that entry as recorded (`unknown` for a client without a user
    /// agent).
    pub field_manager: Option<String>,
    /// From the pod's creation to its release.
    pub held_for: Option<String>,
    /// `PodScheduled` time, once scheduled, and the node.
    pub scheduled_at: Option<String>,
    pub node: Option<String>,
}

/// An Event about the pod.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    pub time: Option<String>,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub from: String,
    pub message: String,
}

/// The answer of `why`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    pub namespace: String,
    pub pod: String,
    pub verdict: Verdict,
    /// Whether the pod carries the scheduling gate.
    pub gated: bool,
    /// The KeptnApp and KeptnWorkload names (from the stamp, else the workload version).
    pub app: Option<String>,
    pub workload: Option<String>,
    pub workload_version: Option<VersionRef>,
    pub app_version: Option<VersionRef>,
    /// The phase that holds the pod (failed, or not finished).
    pub phase: Option<String>,
    /// One sentence.
    pub summary: String,
    /// Further facts, one per line.
    pub details: Vec<String>,
    /// The tasks of the holding phase (failed or unfinished).
    pub tasks: Vec<TaskReport>,
    /// The evaluations of the holding phase (failed or unfinished).
    pub evaluations: Vec<EvaluationReport>,
    pub missing_definitions: Vec<MissingDefinition>,
    pub release: Option<Release>,
    pub events: Vec<EventLine>,
    /// What to do, one step per line.
    pub advice: Vec<String>,
}

/// The phase with this short name, of either level.
pub fn phase_named(short: &str) -> Option<Phase> {
    [Level::App, Level::Workload]
        .into_iter()
        .flat_map(|level| Phase::sequence(level, true))
        .find(|p| p.short_name() == short)
}

/// The README's last resort, for this pod: a JSON Patch that removes the gate at its index, with
/// a `test` first (as the gate's own release patch) so that it never removes another gate.
pub fn last_resort(pod: &Pod) -> String {
    let gates: Vec<&str> = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .into_iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    let i = shared::gate::gate_index(gates).unwrap_or(0);
    format!(
        "as a last resort remove the gate by hand (Kubernetes allows removing, never adding, scheduling gates): kubectl patch pod -n {} {} --type=json -p '[{{\"op\":\"test\",\"path\":\"/spec/schedulingGates/{i}/name\",\"value\":\"{GATE}\"}},{{\"op\":\"remove\",\"path\":\"/spec/schedulingGates/{i}\"}}]'",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Diagnoses `pod`.
pub fn diagnose(pod: &Pod, world: &World<'_>) -> Diagnosis {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let names = pod_names(pod);
    let gated = pod_gated(pod);
    let marked = is_marked_removed(
        pod.metadata.annotations.as_ref(),
        pod.metadata.labels.as_ref(),
    );
    let in_ns = |ns: &Option<String>| ns.as_deref() == Some(namespace.as_str());
    let kwv_name = pod_workload_version(pod, world.workload_versions);
    let kwv = kwv_name.as_ref().and_then(|n| {
        world
            .workload_versions
            .iter()
            .find(|k| in_ns(&k.metadata.namespace) && k.metadata.name.as_ref() == Some(n))
    });
    let kavs: Vec<&KeptnAppVersion> = world
        .app_versions
        .iter()
        .filter(|k| in_ns(&k.metadata.namespace))
        .collect();
    let kav = kwv.and_then(|k| find_app_version(&k.spec, kavs.iter().copied()));
    let mut d = Diagnosis {
        namespace: namespace.clone(),
        pod: name.clone(),
        verdict: Verdict::Waiting,
        gated,
        app: names
            .as_ref()
            .map(|n| n.app_name.clone())
            .or_else(|| kwv.map(|k| k.spec.workload.app.clone())),
        workload: names
            .as_ref()
            .map(|n| n.workload_name.clone())
            .or_else(|| kwv.map(|k| k.spec.workload_name.clone())),
        workload_version: kwv_name.as_ref().map(|n| VersionRef {
            name: n.clone(),
            status: kwv.map(|k| status_of(k.status.as_ref().map(|s| &s.status))),
            current_phase: kwv
                .and_then(|k| k.status.as_ref())
                .map(|s| s.current_phase.clone())
                .unwrap_or_default(),
        }),
        app_version: kav.map(|k| VersionRef {
            name: k.metadata.name.clone().unwrap_or_default(),
            status: Some(status_of(k.status.as_ref().map(|s| &s.status))),
            current_phase: k
                .status
                .as_ref()
                .map(|s| s.current_phase.clone())
                .unwrap_or_default(),
        }),
        phase: None,
        summary: String::new(),
        details: Vec::new(),
        tasks: Vec::new(),
        evaluations: Vec::new(),
        missing_definitions: Vec::new(),
        release: None,
        events: pod_events(pod, world.events),
        advice: Vec::new(),
    };
    if !gated {
        if marked {
            released(pod, kwv, &mut d, world.now);
        } else if kwv_name.is_some() {
            d.verdict = Verdict::NotGated;
            d.summary = format!(
                "pod {name} belongs to a Keptn workload but was never gated: it runs without pre-deployment checks"
            );
            d.details.push(format!(
                "it has neither the scheduling gate {GATE} nor the annotation {REMOVED_MARKER}: it was admitted without the webhook (unreachable, with failurePolicy Ignore), or created before the namespace was enabled"
            ));
            if let Some(e) = d
                .events
                .iter()
                .find(|e| e.from == "portcullis-gate" && e.reason != "SchedulingGateMissing")
            {
                // The gate reported on it while it was gated: the gate went without the marker.
                d.summary = format!(
                    "pod {name} was gated (the gate reported {} on it) and its gate was removed by someone else than the gate, without the marker {REMOVED_MARKER}: by hand?",
                    e.reason
                );
                d.details.clear();
            }
            for m in pod.metadata.managed_fields.iter().flatten() {
                if m.operation.as_deref() == Some("Update")
                    && m.subresource.as_deref().unwrap_or_default().is_empty()
                {
                    d.details.push(format!(
                        "pod metadata or spec last written by field manager {} at {}",
                        m.manager.as_deref().unwrap_or("?"),
                        m.time
                            .as_ref()
                            .map(|t| t.0.to_string())
                            .unwrap_or_else(|| "?".into())
                    ));
                }
            }
            d.advice.push("look for a Warning SchedulingGateMissing on the pod; check the webhook: kubectl -n portcullis-system get pods,endpoints".into());
        } else {
            d.verdict = Verdict::Unmanaged;
            d.summary = format!(
                "pod {name} is not managed by Portcullis: it carries no Keptn identity (keptn.sh/app, keptn.sh/workload, keptn.sh/version) and no KeptnWorkloadVersion names its owner; nothing holds it"
            );
            d.advice.push("to manage its workload: enable the namespace (keptn.sh/lifecycle-toolkit=enabled) and annotate the workload with keptn.sh/workload (README: Annotating a workload)".into());
        }
        return d;
    }
    let Some(kwv_name) = kwv_name else {
        d.summary = format!(
            "pod {name} carries the scheduling gate {GATE} but no Keptn identity, and no KeptnWorkloadVersion names its owner: no check will ever release it"
        );
        d.advice.push(format!(
            "the gate was not added by the Portcullis webhook, or the pod's keptn.sh/* annotations were removed; {}",
            last_resort(pod)
        ));
        return d;
    };
    match decide(kwv, kav, world.blocking) {
        Decision::Release => {
            d.verdict = Verdict::Releasing;
            d.summary = format!(
                "releasing: KeptnWorkloadVersion {kwv_name} passed its pre-deployment checks, the gate removes the pod's gate now"
            );
            d.advice.push(
                "if the pod stays gated, check that portcullis-gate runs and holds its Lease: kubectl -n portcullis-system get pods,leases".into(),
            );
        }
        Decision::Hold { reason, message } => {
            d.verdict = Verdict::Held;
            let short = reason.trim_end_matches("Failed");
            d.phase = Some(short.to_owned());
            // The gate's Event text, without its `/ Namespace: ..` tail.
            let message = message.split(" / Namespace: ").next().unwrap_or_default();
            d.summary = format!("held: {message}");
            if let (Some(phase), Some(kwv)) = (phase_named(short), kwv) {
                held(phase, kwv, kav, world, &mut d);
            }
        }
        Decision::Wait(_) => waiting(&kwv_name, kwv, kav, world, &mut d),
    }
    if d.events.iter().any(|e| e.reason == "SchedulingGateStale") {
        d.details.push("the gate reported the pod as stale (Warning SchedulingGateStale): gated longer than observabilityTimeout while its workload version is not moving".into());
    }
    if d.verdict != Verdict::Releasing {
        d.advice.push(last_resort(pod));
    }
    d
}

fn status_of(state: Option<&KeptnState>) -> String {
    state.cloned().unwrap_or_default().to_string()
}

/// A failed pre-deployment phase: its failed checks, and how to run them again.
fn held(
    phase: Phase,
    kwv: &KeptnWorkloadVersion,
    kav: Option<&KeptnAppVersion>,
    world: &World<'_>,
    d: &mut Diagnosis,
) {
    let ns = d.namespace.clone();
    let (owner, items) = match (phase.level, kav) {
        (Level::App, Some(kav)) => (
            kav.metadata.name.clone().unwrap_or_default(),
            kav.status
                .as_ref()
                .map(|s| s.items(phase.stage).to_vec())
                .unwrap_or_default(),
        ),
        _ => (
            kwv.metadata.name.clone().unwrap_or_default(),
            kwv.status
                .as_ref()
                .map(|s| s.items(phase.stage).to_vec())
                .unwrap_or_default(),
        ),
    };
    let failed: Vec<&ItemStatus> = items
        .iter()
        .filter(|i| i.status == KeptnState::Failed)
        .collect();
    checks(&owner, phase, &failed, world, d);
    for t in &d.tasks {
        let why = [t.reason.as_str(), t.message.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let job = if t.job_name.is_empty() {
            String::new()
        } else {
            format!(" in Job {}", t.job_name)
        };
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(": {why}")
        };
        d.details.push(format!(
            "KeptnTask {} (definition '{}') failed{job}{why}",
            t.name, t.definition
        ));
    }
    let jobs: Vec<String> = d
        .tasks
        .iter()
        .filter(|t| !t.job_name.is_empty())
        .map(|t| t.job_name.clone())
        .collect();
    for job in jobs {
        d.advice.push(format!(
            "read the task's output: kubectl logs -n {ns} job/{job}"
        ));
    }
    let mut metrics = Vec::new();
    let mut empty = Vec::new();
    for e in &d.evaluations {
        for o in e.objectives.iter().filter(|o| o.status == "Failed") {
            let message = if o.message.is_empty() {
                String::new()
            } else {
                format!(" ({})", o.message)
            };
            d.details.push(format!(
                "KeptnEvaluation {} (definition '{}'): metric {} value {} vs target {}{message}",
                e.name,
                e.definition,
                o.metric,
                if o.value.is_empty() {
                    "(none)"
                } else {
                    &o.value
                },
                o.target.as_deref().unwrap_or("(unknown)"),
            ));
            if o.message.starts_with("empty value for") {
                empty.push(o.metric.clone());
            }
            metrics.push(o.metric.clone());
        }
    }
    for metric in empty {
        d.advice.push(format!(
            "KeptnMetric {metric} has no status.value: check its metrics provider (kubectl get keptnmetric -n {ns} {metric} -o yaml)"
        ));
    }
    if !metrics.is_empty() {
        d.advice.push(format!(
            "look at what the evaluation compared: kubectl get keptnmetrics -n {ns} {}",
            metrics.join(" ")
        ));
    }
    d.advice.push(
        "a failed pre-deployment check keeps the pods gated by design: fix the cause first".into(),
    );
    let app = d.app.clone().unwrap_or_else(|| "APP".into());
    let workload = d.workload.clone().unwrap_or_else(|| "WORKLOAD".into());
    match phase.level {
        Level::App => d.advice.push(format!(
            "then run the app's checks again: kubectl portcullis retry app -n {ns} {app} (bumps the KeptnApp spec.revision)"
        )),
        Level::Workload => d.advice.push(format!(
            "then run the workload's checks again: kubectl portcullis retry workload -n {ns} {workload} (deletes the Failed KeptnWorkloadVersion; the gate re-creates it and the pods wait for it), or roll out a new version of the workload"
        )),
    }
}

/// The tasks or evaluations of `items` into the diagnosis, with their objects where they exist.
fn checks(owner: &str, phase: Phase, items: &[&ItemStatus], world: &World<'_>, d: &mut Diagnosis) {
    let ns = d.namespace.clone();
    let in_ns = |meta_ns: &Option<String>| meta_ns.as_deref() == Some(ns.as_str());
    let check_type = phase
        .stage
        .check()
        .map(|c| c.check_type)
        .unwrap_or_default()
        .to_owned();
    let is_task = matches!(
        phase.stage,
        Stage::PreDeployTasks | Stage::PostDeployTasks | Stage::Promotion
    );
    for item in items {
        if is_task {
            let task = world.tasks.iter().find(|t| {
                in_ns(&t.metadata.namespace) && t.metadata.name.as_ref() == Some(&item.name)
            });
            d.tasks.push(match task {
                Some(t) => task_report(owner, t),
                None => TaskReport {
                    owner: owner.to_owned(),
                    name: item.name.clone(),
                    definition: item.definition_name.clone(),
                    check_type: check_type.clone(),
                    status: item.status.to_string(),
                    job_name: String::new(),
                    reason: String::new(),
                    message: String::new(),
                    start_time: item.start_time.as_ref().map(|t| t.0.to_string()),
                    end_time: item.end_time.as_ref().map(|t| t.0.to_string()),
                },
            });
        } else {
            let evaluation = world.evaluations.iter().find(|e| {
                in_ns(&e.metadata.namespace) && e.metadata.name.as_ref() == Some(&item.name)
            });
            d.evaluations.push(match evaluation {
                Some(e) => evaluation_report(owner, e, world.evaluation_definitions),
                None => EvaluationReport {
                    owner: owner.to_owned(),
                    name: item.name.clone(),
                    definition: item.definition_name.clone(),
                    check_type: check_type.clone(),
                    status: item.status.to_string(),
                    retry_count: 0,
                    retries: 0,
                    objectives: Vec::new(),
                },
            });
        }
    }
}

/// Not decided yet: what the pod waits for.
fn waiting(
    kwv_name: &str,
    kwv: Option<&KeptnWorkloadVersion>,
    kav: Option<&KeptnAppVersion>,
    world: &World<'_>,
    d: &mut Diagnosis,
) {
    let ns = d.namespace.clone();
    let in_ns = |meta_ns: &Option<String>| meta_ns.as_deref() == Some(ns.as_str());
    let gate_runs = "check that portcullis-gate runs and holds its Lease: kubectl -n portcullis-system get pods,leases";
    let Some(kwv) = kwv else {
        let workload = d.workload.clone().unwrap_or_default();
        let wl = world.workloads.iter().find(|w| {
            in_ns(&w.metadata.namespace) && w.metadata.name.as_deref() == Some(&workload)
        });
        d.summary = format!("waiting: KeptnWorkloadVersion {kwv_name} does not exist");
        match wl {
            None => {
                d.details.push(format!(
                    "KeptnWorkload {workload} does not exist either: the webhook did not record the workload"
                ));
                d.advice.push("check the webhook (kubectl -n portcullis-system get pods,endpoints) and the workload's keptn.sh/* annotations".into());
            }
            Some(wl) if plan_workload(wl, None) == WorkloadPlan::AwaitPods => {
                d.details.push(format!(
                    "KeptnWorkload {workload} still names its Deployment: the gate creates the version once a pod names its ReplicaSet"
                ));
                d.advice.push(gate_runs.into());
            }
            Some(wl) => {
                d.details.push(format!(
                    "the gate creates it from KeptnWorkload {workload} (version {}): it was just deleted by a retry, or portcullis-gate is not running",
                    wl.spec.version
                ));
                d.advice.push(gate_runs.into());
            }
        }
        return;
    };
    let status = kwv.status.clone().unwrap_or_default();
    if status.current_phase.is_empty() {
        let app = kwv.spec.workload.app.clone();
        let Some(kav) = kav else {
            d.phase = Some("AppPreDeployEvaluations".into());
            let keptn_app = world
                .apps
                .iter()
                .find(|a| in_ns(&a.metadata.namespace) && a.metadata.name.as_deref() == Some(&app));
            d.summary = format!(
                "waiting: KeptnWorkloadVersion {kwv_name} has not started, no KeptnAppVersion of app {app} lists it"
            );
            match keptn_app {
                None => {
                    d.details.push(format!(
                        "KeptnApp {app} not found: the app is still being discovered (its discovery window after the first workload)"
                    ));
                    d.advice.push("wait keptnAppCreationRequestTimeoutSeconds (KeptnConfig, 30 s by default); check keptn.sh/app on the workload".into());
                }
                Some(a) => {
                    let listed = a
                        .spec
                        .workloads
                        .iter()
                        .map(|w| format!("{} {}", w.name, w.version))
                        .collect::<Vec<_>>()
                        .join(", ");
                    d.details.push(format!(
                        "KeptnApp {app} (version {}) lists {}, not this workload at version {}",
                        a.spec.version,
                        if listed.is_empty() {
                            "no workloads".to_owned()
                        } else {
                            listed
                        },
                        kwv.spec.workload.version
                    ));
                    d.advice.push("wait for app discovery to add it (keptnAppCreationRequestTimeoutSeconds); a KeptnApp written by hand must list the workload at its version; check keptn.sh/app".into());
                }
            }
            d.advice.push(gate_runs.into());
            return;
        };
        // Waiting for the app's pre-deployment checks.
        let app_status = kav.status.clone().unwrap_or_default();
        let stage = if app_status
            .pre_deployment_status
            .is_succeeded(world.blocking)
        {
            Stage::PreDeployEvaluations
        } else {
            Stage::PreDeployTasks
        };
        let phase = Phase::new(Level::App, stage);
        let kav_name = kav.metadata.name.clone().unwrap_or_default();
        d.phase = Some(phase.short_name().to_owned());
        d.summary = format!(
            "waiting: KeptnWorkloadVersion {kwv_name} starts once KeptnAppVersion {kav_name} has passed {} (now {})",
            phase.long_name(),
            app_status.stage_state(stage)
        );
        let definitions = match stage {
            Stage::PreDeployTasks => &kav.spec.context.pre_deployment_tasks,
            _ => &kav.spec.context.pre_deployment_evaluations,
        };
        pending(
            &kav_name,
            phase,
            app_status.items(stage),
            definitions,
            world,
            d,
        );
        return;
    }
    let stage = if status.pre_deployment_status.is_succeeded(world.blocking) {
        Stage::PreDeployEvaluations
    } else {
        Stage::PreDeployTasks
    };
    let phase = Phase::new(Level::Workload, stage);
    d.phase = Some(phase.short_name().to_owned());
    d.summary = format!(
        "waiting: KeptnWorkloadVersion {kwv_name} is in {} (now {})",
        phase.long_name(),
        status.stage_state(stage)
    );
    let definitions = match stage {
        Stage::PreDeployTasks => &kwv.spec.workload.pre_deployment_tasks,
        _ => &kwv.spec.workload.pre_deployment_evaluations,
    };
    pending(kwv_name, phase, status.items(stage), definitions, world, d);
}

/// A pre-deployment phase not finished: its unfinished checks, and definitions it waits for.
fn pending(
    owner: &str,
    phase: Phase,
    items: &[ItemStatus],
    definitions: &[String],
    world: &World<'_>,
    d: &mut Diagnosis,
) {
    let ns = d.namespace.clone();
    let unfinished: Vec<&ItemStatus> = items.iter().filter(|i| !i.status.is_completed()).collect();
    checks(owner, phase, &unfinished, world, d);
    let is_task = phase.stage == Stage::PreDeployTasks;
    let kind = if is_task {
        "KeptnTaskDefinition"
    } else {
        "KeptnEvaluationDefinition"
    };
    for definition in definitions {
        if items.iter().any(|i| &i.definition_name == definition) {
            continue;
        }
        let exists = if is_task {
            world.task_definitions.iter().any(|n| n == definition)
        } else {
            world
                .evaluation_definitions
                .iter()
                .any(|e| e.metadata.name.as_deref() == Some(definition.as_str()))
        };
        if !exists {
            d.missing_definitions.push(MissingDefinition {
                kind: kind.into(),
                name: definition.clone(),
            });
            d.details.push(format!(
                "{kind} '{definition}' exists neither in {ns} nor in {}: the phase stays Pending until it does (as Keptn, it waits forever)",
                world.keptn_namespace
            ));
            d.advice.push(format!(
                "create {kind} '{definition}' in namespace {ns} (or in the install namespace {})",
                world.keptn_namespace
            ));
        }
    }
    let mut follow = Vec::new();
    for t in &d.tasks {
        let job = if t.job_name.is_empty() {
            "no Job yet".to_owned()
        } else {
            follow.push(t.job_name.clone());
            format!("Job {}", t.job_name)
        };
        d.details.push(format!(
            "KeptnTask {} (definition '{}') is {} ({job})",
            t.name, t.definition, t.status
        ));
    }
    for job in follow {
        d.advice.push(format!(
            "follow the task: kubectl logs -n {ns} job/{job} -f"
        ));
    }
    for e in &d.evaluations {
        let objectives = e
            .objectives
            .iter()
            .map(|o| {
                format!(
                    "{} value {} vs target {}",
                    o.metric,
                    if o.value.is_empty() {
                        "(none)"
                    } else {
                        &o.value
                    },
                    o.target.as_deref().unwrap_or("(unknown)")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        d.details.push(format!(
            "KeptnEvaluation {} (definition '{}') is {} after {} of {} attempts{}",
            e.name,
            e.definition,
            e.status,
            e.retry_count,
            e.retries,
            if objectives.is_empty() {
                String::new()
            } else {
                format!(": {objectives}")
            }
        ));
    }
    if d.tasks.is_empty() && d.evaluations.is_empty() && d.missing_definitions.is_empty() {
        d.details
            .push("no check of the phase has started yet: the gate has not reconciled it".into());
    }
}

/// The gate was removed: when (the `managedFields` entry owning the marker annotation, which the
/// release patch adds) and by whom (that entry's field manager).
fn released(pod: &Pod, kwv: Option<&KeptnWorkloadVersion>, d: &mut Diagnosis, now: Timestamp) {
    let marker = [
        pod.metadata.annotations.as_ref(),
        pod.metadata.labels.as_ref(),
    ]
    .into_iter()
    .flatten()
    .find_map(|m| m.get(REMOVED_MARKER))
    .cloned()
    .unwrap_or_default();
    let key = format!("f:{REMOVED_MARKER}");
    let entry = pod.metadata.managed_fields.iter().flatten().find(|m| {
        m.fields_v1.as_ref().is_some_and(|f| {
            f.0.pointer("/f:metadata/f:annotations")
                .and_then(|a| a.get(&key))
                .is_some()
        })
    });
    let at = entry.and_then(|e| e.time.as_ref()).map(|t| t.0);
    let field_manager = entry.and_then(|e| e.manager.clone());
    let by = field_manager
        .clone()
        .filter(|m| !m.is_empty() && m != "unknown")
        .unwrap_or_else(|| "portcullis-gate".to_owned());
    let scheduled = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        })
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    d.verdict = Verdict::Released;
    d.summary = match at {
        Some(at) => format!(
            "released at {at} ({} ago) by {by}, which removed the scheduling gate {GATE}",
            human(at, now)
        ),
        None => format!(
            "released by {by}, which removed the scheduling gate {GATE}; no managedFields entry tells when"
        ),
    };
    d.details.push(format!(
        "the gate marks the pods it releases: {REMOVED_MARKER}={marker}{}",
        field_manager
            .as_deref()
            .map(|m| format!(" (field manager of that write: {m})"))
            .unwrap_or_default()
    ));
    if let Some(k) = kwv {
        let s = k.status.clone().unwrap_or_default();
        d.details.push(format!(
            "KeptnWorkloadVersion {} passed its pre-deployment checks (tasks {}, evaluations {}); it is now {} in phase {}",
            k.metadata.name.clone().unwrap_or_default(),
            s.pre_deployment_status,
            s.pre_deployment_evaluation_status,
            s.status,
            if s.current_phase.is_empty() {
                "-"
            } else {
                &s.current_phase
            }
        ));
    }
    let held_for = created.zip(at).map(|(c, a)| human(c, a));
    if let Some(held) = &held_for {
        d.details
            .push(format!("held for {held} after its creation"));
    }
    if let Some(t) = scheduled {
        d.details.push(format!(
            "scheduled at {t}{}",
            node.as_deref()
                .map(|n| format!(" on node {n}"))
                .unwrap_or_default()
        ));
    }
    d.release = Some(Release {
        marker,
        at: at.map(|t| t.to_string()),
        by,
        field_manager,
        held_for,
        scheduled_at: scheduled.map(|t| t.to_string()),
        node,
    });
}

/// Events about the pod, oldest first.
pub fn pod_events(pod: &Pod, events: &[Event]) -> Vec<EventLine> {
    let uid = pod.metadata.uid.as_deref();
    let name = pod.metadata.name.as_deref();
    let mut lines: Vec<(Option<Timestamp>, EventLine)> = events
        .iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Pod")
                    && r.name.as_deref() == name
                    && (r.uid.is_none() || uid.is_none() || r.uid.as_deref() == uid)
            })
        })
        .map(|e| {
            let time = e
                .series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or(e.event_time.as_ref().map(|t| t.0))
                .or(e.deprecated_last_timestamp.as_ref().map(|t| t.0))
                .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let from = e
                .reporting_controller
                .clone()
                .filter(|c| !c.is_empty())
                .or_else(|| {
                    e.deprecated_source
                        .as_ref()
                        .and_then(|s| s.component.clone())
                })
                .unwrap_or_default();
            (
                time,
                EventLine {
                    time: time.map(|t| t.to_string()),
                    type_: e.type_.clone().unwrap_or_default(),
                    reason: e.reason.clone().unwrap_or_default(),
                    from,
                    message: e.note.clone().unwrap_or_default(),
                },
            )
        })
        .collect();
    lines.sort_by_key(|(t, _)| *t);
    lines.into_iter().map(|(_, l)| l).collect()
}
